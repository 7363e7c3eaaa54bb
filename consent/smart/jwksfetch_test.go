package smart

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseFetchedJWKS(t *testing.T) {
	priv, pub, kid, err := GenerateClientKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(pub, &set); err != nil {
		t.Fatal(err)
	}
	sig := string(set.Keys[0])
	enc := strings.Replace(strings.Replace(sig, `"use":"sig"`, `"use":"enc"`, 1), kid, "enc-1", 1)
	weak := `{"kty":"EC","crv":"P-521","kid":"p521","x":"AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt","y":"AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}`
	cases := []struct {
		name string
		keys []string
		ok   bool
		n    int
	}{
		{"one signing key", []string{sig}, true, 1},
		{"signing and encryption keys", []string{sig, enc}, true, 1},
		{"unsupported curve is skipped", []string{weak, sig}, true, 1},
		{"only unusable keys", []string{enc}, false, 0},
		{"a private key", []string{sig, string(priv)}, false, 0},
		{"a symmetric key", []string{sig, `{"kty":"oct","k":"c2VjcmV0","kid":"s"}`}, false, 0},
		{"duplicate kid", []string{sig, sig}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := parseFetchedJWKS([]byte(`{"keys":[` + strings.Join(c.keys, ",") + `]}`))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && s.Len() != c.n {
				t.Fatalf("%d keys kept, want %d", s.Len(), c.n)
			}
		})
	}
}
