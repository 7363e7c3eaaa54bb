package users

import (
	"strings"
	"testing"
)

// cheap parameters for tests; DefaultParams is exercised once.
var testParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse battery staple", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string: %s", h)
	}
	h2, _ := Hash("correct horse battery staple", testParams)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	cases := []struct {
		name string
		pw   string
		hash string
		want bool
	}{
		{"right password", "correct horse battery staple", h, true},
		{"wrong password", "correct horse battery stapler", h, false},
		{"empty password", "", h, false},
		{"case differs", "Correct horse battery staple", h, false},
		{"not argon2id", "x", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43), false},
		{"wrong version", "x", strings.Replace(h, "v=19", "v=16", 1), false},
		{"memory bomb refused", "correct horse battery staple", strings.Replace(h, "m=64", "m=99999999", 1), false},
		{"truncated", "correct horse battery staple", h[:len(h)-10], false},
		{"garbage", "x", "garbage", false},
		{"empty hash", "x", "", false},
		{"too long password", strings.Repeat("a", MaxPasswordLen+1), h, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Verify(c.pw, c.hash); got != c.want {
				t.Fatalf("Verify = %v, want %v", got, c.want)
			}
		})
	}
}

func TestDefaultParams(t *testing.T) {
	h, err := Hash("a long enough passphrase", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !Verify("a long enough passphrase", h) || Verify("a long enough passphrasf", h) {
		t.Fatal("default parameters do not round-trip")
	}
	if NeedsRehash(h, DefaultParams) || !NeedsRehash(h, testParams) {
		t.Fatal("NeedsRehash wrong")
	}
	if VerifyDummy("anything", DefaultParams) || VerifyDummy("anything", testParams) {
		t.Fatal("VerifyDummy matched")
	}
}

func TestWeakParamsRefused(t *testing.T) {
	for _, p := range []Params{{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}, {Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32}} {
		if _, err := Hash("x", p); err == nil {
			t.Errorf("weak params %+v accepted", p)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	cases := []struct {
		pw string
		ok bool
	}{
		{"short", false},
		{"elevenchars", false},
		{"twelve chars", true},
		{"ünïcödé pässwörd", true},
		{strings.Repeat("x", MaxPasswordLen+1), false},
	}
	for _, c := range cases {
		t.Run(c.pw[:min(len(c.pw), 12)], func(t *testing.T) {
			if err := CheckPasswordPolicy(c.pw); (err == nil) != c.ok {
				t.Fatalf("CheckPasswordPolicy(%q) = %v", c.pw, err)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	h, _ := Hash("seed password here", testParams)
	f.Add("seed password here", h)
	f.Add("x", "$argon2id$v=19$m=64,t=1,p=1$AAAA$AAAA")
	f.Add("", "$$$$$")
	f.Fuzz(func(t *testing.T, pw, enc string) {
		// must never panic nor spend unbounded memory; a decodable hash
		// with a tiny memory parameter is fine to run.
		if p, _, _, err := decode(enc); err == nil && p.Memory > 4096 {
			return
		}
		Verify(pw, enc)
	})
}
