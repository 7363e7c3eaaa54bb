package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// DefaultAlg is the default signature algorithm for generated keys.
const DefaultAlg = "ES384"

// GenerateClientKey makes a key pair for a client: the private key as a JWK
// (with kid, alg and use=sig; keep it secret), the public JWK Set to register
// with gpgate, and the kid (the RFC 7638 SHA-256 thumbprint). alg is ES384
// (default when ""), ES256, RS384 or RS256 (RSA keys are 3072 bits).
func GenerateClientKey(alg string) (privateJWK []byte, publicJWKS []byte, kid string, err error) {
	priv, err := generateKey(alg)
	if err != nil {
		return nil, nil, "", err
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		return nil, nil, "", err
	}
	privateJWK, err = json.Marshal(priv)
	if err != nil {
		return nil, nil, "", err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, nil, "", err
	}
	publicJWKS, err = json.Marshal(set)
	if err != nil {
		return nil, nil, "", err
	}
	return privateJWK, publicJWKS, priv.KeyID(), nil
}

func generateKey(alg string) (jwk.Key, error) {
	if alg == "" {
		alg = DefaultAlg
	}
	var raw any
	var err error
	switch alg {
	case "ES384":
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS384", "RS256":
		raw, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, fmt.Errorf("smart: unsupported key algorithm %q (ES384, ES256, RS384, RS256)", alg)
	}
	if err != nil {
		return nil, err
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	if err := jwk.AssignKeyID(k); err != nil {
		return nil, err
	}
	_ = k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg))
	_ = k.Set(jwk.KeyUsageKey, jwk.ForSignature)
	return k, nil
}

// ParsePrivateKey reads a private key given as a JWK or as PEM (PKCS#8,
// SEC 1 or PKCS#1). A key without kid gets its thumbprint; without alg,
// ES256/ES384 by curve or RS384 for RSA.
func ParsePrivateKey(b []byte) (jwk.Key, error) {
	k, err := jwk.ParseKey(b)
	if err != nil {
		k, err = jwk.ParseKey(b, jwk.WithPEM(true))
		if err != nil {
			return nil, fmt.Errorf("smart: private key is neither a JWK nor PEM: %w", err)
		}
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, err
	}
	var alg jwa.SignatureAlgorithm
	switch pk := raw.(type) {
	case *ecdsa.PrivateKey:
		switch pk.Curve {
		case elliptic.P256():
			alg = jwa.ES256
		case elliptic.P384():
			alg = jwa.ES384
		default:
			return nil, fmt.Errorf("smart: EC key must be P-256 or P-384")
		}
	case *rsa.PrivateKey:
		alg = jwa.RS384
		if a := k.Algorithm().String(); a == "RS256" {
			alg = jwa.RS256
		}
	default:
		return nil, fmt.Errorf("smart: not an EC or RSA private key")
	}
	if a := k.Algorithm().String(); a == "" {
		_ = k.Set(jwk.AlgorithmKey, alg)
	} else if a != alg.String() {
		return nil, fmt.Errorf("smart: key alg %s does not fit the key", a)
	}
	if k.KeyID() == "" {
		if err := jwk.AssignKeyID(k); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// signer is the active signing key.
type signer struct {
	kid string
	alg jwa.SignatureAlgorithm
	key any // raw private key
}

// pubKey is one key tokens may be verified with.
type pubKey struct {
	alg jwa.SignatureAlgorithm
	key any // raw public key
}

// keyRing is an immutable view of gpgate's keys at one time.
type keyRing struct {
	active *signer
	pub    map[string]pubKey
	jwks   []byte
	stored []SigningKey
}

// buildRing makes the ring from stored keys: the active key signs; retired
// keys are published until retired + retain.
func buildRing(keys []SigningKey, now time.Time, retain time.Duration) (*keyRing, error) {
	r := &keyRing{pub: map[string]pubKey{}, stored: keys}
	set := jwk.NewSet()
	for _, sk := range keys {
		if !sk.Retired.IsZero() && now.After(sk.Retired.Add(retain)) {
			continue
		}
		k, err := jwk.ParseKey(sk.JWK)
		if err != nil {
			return nil, fmt.Errorf("smart: stored signing key %s: %w", sk.KID, err)
		}
		alg := jwa.SignatureAlgorithm(sk.Alg)
		if alg != jwa.ES384 && alg != jwa.RS384 {
			return nil, fmt.Errorf("smart: stored signing key %s has alg %s", sk.KID, sk.Alg)
		}
		pub, err := jwk.PublicKeyOf(k)
		if err != nil {
			return nil, err
		}
		_ = pub.Set(jwk.KeyIDKey, sk.KID)
		_ = pub.Set(jwk.AlgorithmKey, alg)
		_ = pub.Set(jwk.KeyUsageKey, jwk.ForSignature)
		var rawPub any
		if err := pub.Raw(&rawPub); err != nil {
			return nil, err
		}
		r.pub[sk.KID] = pubKey{alg: alg, key: rawPub}
		if err := set.AddKey(pub); err != nil {
			return nil, err
		}
		if sk.Retired.IsZero() {
			var rawPriv any
			if err := k.Raw(&rawPriv); err != nil {
				return nil, err
			}
			r.active = &signer{kid: sk.KID, alg: alg, key: rawPriv}
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	r.jwks = b
	return r, nil
}

func newSigningKey(alg string, now time.Time) (SigningKey, error) {
	if alg != "ES384" && alg != "RS384" {
		return SigningKey{}, fmt.Errorf("smart: signing alg must be ES384 or RS384, not %q", alg)
	}
	k, err := generateKey(alg)
	if err != nil {
		return SigningKey{}, err
	}
	b, err := json.Marshal(k)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{KID: k.KeyID(), Alg: alg, JWK: b, Created: now}, nil
}

// loadRing reads the keys from ks and builds the ring; with create, it
// makes and stores a key of alg when there is no active one.
func loadRing(ctx context.Context, ks KeyStore, alg string, now time.Time, retain time.Duration, create bool) (*keyRing, error) {
	keys, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("smart: load signing keys: %w", err)
	}
	r, err := buildRing(keys, now, retain)
	if err != nil {
		return nil, err
	}
	if r.active != nil || !create {
		return r, nil
	}
	sk, err := newSigningKey(alg, now)
	if err != nil {
		return nil, err
	}
	keys = append(pruneKeys(keys, now, retain), sk)
	if err := ks.SetSigningKeys(ctx, keys); err != nil {
		// Another node starting at the same time made the key first:
		// use that one.
		if r2, err2 := loadRing(ctx, ks, alg, now, retain, false); errors.Is(err, ErrSigningKeysChanged) && err2 == nil && r2.active != nil {
			return r2, nil
		}
		return nil, fmt.Errorf("smart: store signing key: %w", err)
	}
	return buildRing(keys, now, retain)
}

func pruneKeys(keys []SigningKey, now time.Time, retain time.Duration) []SigningKey {
	out := make([]SigningKey, 0, len(keys)+1)
	for _, k := range keys {
		if !k.Retired.IsZero() && now.After(k.Retired.Add(retain)) {
			continue
		}
		out = append(out, k)
	}
	return out
}
