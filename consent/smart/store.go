package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Client is a registered consumer system (a SMART backend service).
type Client struct {
	ID   string `json:"id"`
	ODS  string `json:"ods"` // consumer organisation ODS code
	Name string `json:"name"`
	// Exactly one of JWKS (an inline public JWK Set) and JWKSURL.
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURL string          `json:"jwks_url,omitempty"`
	Scopes  []string        `json:"scopes"` // allowed scopes, SMART v1 or v2
	Enabled bool            `json:"enabled"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
}

// ClientStore holds the client registry. The token endpoint uses GetClient;
// the admin verbs use the rest. GetClient answers ErrClientNotFound (wrapped
// in a *fhir.Error) for an unknown id.
type ClientStore interface {
	AddClient(ctx context.Context, c *Client) error
	GetClient(ctx context.Context, id string) (*Client, error)
	ListClients(ctx context.Context) ([]*Client, error)
	DisableClient(ctx context.Context, id string) error
	EnableClient(ctx context.Context, id string) error
	RotateClientKey(ctx context.Context, id string, newJWKS []byte) error
}

// SigningKey is one of gpgate's own token signing keys, as stored.
type SigningKey struct {
	KID     string          `json:"kid"`
	Alg     string          `json:"alg"` // ES384 | RS384
	JWK     json.RawMessage `json:"jwk"` // private JWK
	Created time.Time       `json:"created"`
	// Retired is when the key stopped signing (zero: the active key). A
	// retired key is still published until Retired + the longest token
	// lifetime, so tokens it signed keep verifying until they expire.
	Retired time.Time `json:"retired,omitzero"`
}

// KeyStore holds gpgate's signing keys. SetSigningKeys replaces the whole
// set atomically, but refuses (ErrSigningKeysChanged) to drop a stored key
// that is not retired and not in keys: another node made or rotated a key
// since this one read the set, and last-writer-wins would invalidate that
// node's tokens. The caller re-reads and uses what is stored.
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	SetSigningKeys(ctx context.Context, keys []SigningKey) error
}

// ErrSigningKeysChanged is returned by SetSigningKeys when the stored set
// changed since the caller read it (see KeyStore).
var ErrSigningKeysChanged = errors.New("smart: signing keys changed concurrently")

// CheckKeysReplace is the KeyStore rule every implementation applies,
// under its write lock: nil when next may replace stored.
func CheckKeysReplace(stored, next []SigningKey) error {
	in := make(map[string]bool, len(next))
	for _, k := range next {
		in[k.KID] = true
	}
	for _, k := range stored {
		if k.Retired.IsZero() && !in[k.KID] {
			return ErrSigningKeysChanged
		}
	}
	return nil
}

// ErrClientNotFound is wrapped (as Cause of a REFERENCE_NOT_FOUND
// *fhir.Error) by stores for an unknown client id; test with errors.Is.
var ErrClientNotFound = errors.New("client not registered")

// ClientNotFound builds the error a store returns for an unknown id.
func ClientNotFound(id string) error {
	return &fhir.Error{Code: fhir.CodeReferenceNotFound, Diagnostics: fmt.Sprintf("client %q is not registered", trunc(id)), Cause: ErrClientNotFound}
}

var (
	clientIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	odsRe      = regexp.MustCompile(`^[A-Z0-9]{3,12}$`)
)

// Supported signature algorithms for client assertions and (ES384, RS384)
// for gpgate's tokens.
var assertionAlgs = map[jwa.SignatureAlgorithm]bool{
	jwa.RS384: true, jwa.ES384: true, jwa.RS256: true, jwa.ES256: true,
}

// ValidateClient checks a client before it is stored: id, ODS code, exactly
// one of JWKS and JWKSURL (https, or http to a loopback host), public keys
// only, allowed scopes that parse. Every ClientStore implementation should
// call it.
func ValidateClient(c *Client) error {
	if c == nil {
		return fhir.Errorf(fhir.CodeBadRequest, "no client")
	}
	if !clientIDRe.MatchString(c.ID) {
		return fhir.Errorf(fhir.CodeBadRequest, "client id must be 1..128 of [A-Za-z0-9._:-]")
	}
	if !odsRe.MatchString(c.ODS) {
		return fhir.Errorf(fhir.CodeBadRequest, "consumer ODS code must be 3..12 of [A-Z0-9]")
	}
	if len(c.Name) > 200 {
		return fhir.Errorf(fhir.CodeBadRequest, "client name longer than 200 characters")
	}
	switch {
	case len(c.JWKS) > 0 && c.JWKSURL != "":
		return fhir.Errorf(fhir.CodeBadRequest, "give either an inline JWKS or a JWKS URL, not both")
	case len(c.JWKS) > 0:
		if _, err := ParseClientJWKS(c.JWKS); err != nil {
			return err
		}
	case c.JWKSURL != "":
		if err := validateJWKSURL(c.JWKSURL); err != nil {
			return err
		}
	default:
		return fhir.Errorf(fhir.CodeBadRequest, "a client needs a JWKS or a JWKS URL")
	}
	if len(c.Scopes) == 0 || len(c.Scopes) > maxScopes {
		return fhir.Errorf(fhir.CodeBadRequest, "a client needs 1..%d allowed scopes", maxScopes)
	}
	for _, s := range c.Scopes {
		if _, err := ParseScope(s); err != nil {
			return fhir.Errorf(fhir.CodeBadRequest, "allowed scope: %v", err)
		}
	}
	return nil
}

func validateJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fhir.Errorf(fhir.CodeBadRequest, "JWKS URL is not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
	}
	return fhir.Errorf(fhir.CodeBadRequest, "JWKS URL must be https (http only to a loopback host)")
}

// ParseClientJWKS parses a client's public JWK Set: at least one key, every
// key public, with a unique kid, an EC P-256/P-384 or RSA (>= 2048 bit) key,
// and an alg (when given) among RS384, ES384, RS256, ES256.
func ParseClientJWKS(b []byte) (jwk.Set, error) {
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fhir.Errorf(fhir.CodeBadRequest, "JWKS does not parse: %v", err)
	}
	if set.Len() == 0 {
		return nil, fhir.Errorf(fhir.CodeBadRequest, "JWKS has no keys")
	}
	if set.Len() > 20 {
		return nil, fhir.Errorf(fhir.CodeBadRequest, "JWKS has more than 20 keys")
	}
	kids := map[string]bool{}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if err := checkPublicKey(k); err != nil {
			return nil, err
		}
		if kids[k.KeyID()] {
			return nil, fhir.Errorf(fhir.CodeBadRequest, "JWKS has two keys with kid %q", trunc(k.KeyID()))
		}
		kids[k.KeyID()] = true
	}
	return set, nil
}

func checkPublicKey(k jwk.Key) error {
	if k.KeyID() == "" {
		return fhir.Errorf(fhir.CodeBadRequest, "every JWKS key needs a kid")
	}
	if a := k.Algorithm().String(); a != "" && !assertionAlgs[jwa.SignatureAlgorithm(a)] {
		return fhir.Errorf(fhir.CodeBadRequest, "key %q: alg %s not supported (RS384, ES384, RS256, ES256)", trunc(k.KeyID()), trunc(a))
	}
	if u := k.KeyUsage(); u != "" && u != "sig" {
		return fhir.Errorf(fhir.CodeBadRequest, "key %q: use must be sig", trunc(k.KeyID()))
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return fhir.Errorf(fhir.CodeBadRequest, "key %q: %v", trunc(k.KeyID()), err)
	}
	switch pk := raw.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return fhir.Errorf(fhir.CodeBadRequest, "key %q: RSA keys must be at least 2048 bits", trunc(k.KeyID()))
		}
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() && pk.Curve != elliptic.P384() {
			return fhir.Errorf(fhir.CodeBadRequest, "key %q: EC keys must be P-256 or P-384", trunc(k.KeyID()))
		}
	default:
		return fhir.Errorf(fhir.CodeBadRequest, "key %q: only public RSA and EC keys are accepted", trunc(k.KeyID()))
	}
	return nil
}
