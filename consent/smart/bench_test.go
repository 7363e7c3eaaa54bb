package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func BenchmarkVerifyWarm(b *testing.B) {
	f := newFixture(b, nil)
	tok := f.token("system/*.rs", nil).AccessToken
	v := f.srv.Verifier()
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold is a cache miss: parse, one ES384 signature
// verification, claim checks, scope parsing.
func BenchmarkVerifyCold(b *testing.B) {
	f := newFixture(b, nil)
	tok := f.token("system/*.rs", nil).AccessToken
	v := f.srv.Verifier()
	ctx := context.Background()
	now := f.clock.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.verify(ctx, tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignAccessToken is the signing part of issuance (ES384).
func BenchmarkSignAccessToken(b *testing.B) {
	f := newFixture(b, nil)
	p := &fakePrincipal
	now := f.clock.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.srv.sign(p, nil, "", "system/*.rs", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenEndpoint is a whole token request through the handler:
// form parsing, assertion verification (one ES384 verification), replay
// check, scope narrowing, signing.
func BenchmarkTokenEndpoint(b *testing.B) {
	f := newFixture(b, nil)
	h := f.srv.TokenHandler()
	bodies := make([]string, b.N)
	for i := range bodies {
		bodies[i] = tokenForm(f.sign(f.claims(), nil), "system/Patient.rs system/Consent.c").Encode()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if w := f.post(h, bodies[i]); w.Code != http.StatusOK {
			b.Fatalf("HTTP %d %s", w.Code, w.Body.String())
		}
	}
}

func BenchmarkParseScopes(b *testing.B) {
	const s = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs system/*.rs user/Condition.read"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseScopes(s); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzTokenForm(f *testing.F) {
	fx := newFixture(f, nil)
	valid := tokenForm(fx.sign(fx.claims(), nil), "system/Patient.rs").Encode()
	for _, s := range []string{valid, "", "grant_type=client_credentials", "a=%zz", "scope=" + strings.Repeat("x ", 100),
		"grant_type=client_credentials&client_assertion_type=" + AssertionTypeJWTBearer + "&client_assertion=a.b.c",
		"grant_type=client_credentials&client_assertion_type=" + AssertionTypeJWTBearer + "&client_assertion=eyJhbGciOiJFUzM4NCJ9.e30.x&scope=system/*.rs",
		"grant_type=client_credentials&grant_type=client_credentials", "&&&=&=="} {
		f.Add(s)
	}
	h := fx.srv.TokenHandler()
	f.Fuzz(func(t *testing.T, body string) {
		w := fx.post(h, body)
		if w.Code >= 500 {
			t.Fatalf("HTTP %d for %q: %s", w.Code, body, w.Body.String())
		}
		var a tokenAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatalf("answer is not JSON: %s", w.Body.String())
		}
		if w.Code == http.StatusOK {
			if a.AccessToken == "" {
				t.Fatal("200 without a token")
			}
		} else if a.Error == "" || a.AccessToken != "" {
			t.Fatalf("HTTP %d answer %s", w.Code, w.Body.String())
		}
	})
}

var fakePrincipal = fhirPrincipal()

// BenchmarkRawES384Verify is the floor under BenchmarkVerifyCold: one
// crypto/ecdsa P-384 verification of a SHA-384 digest, nothing else.
func BenchmarkRawES384Verify(b *testing.B) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	d := sha512.Sum384([]byte("header.payload"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !ecdsa.VerifyASN1(&k.PublicKey, d[:], sig) {
			b.Fatal("no")
		}
	}
}
