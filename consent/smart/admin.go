package smart

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Admin is the client registry and the signing keys as the admin API
// speaks them (JSON, not FHIR). The record-access core authorises and
// audits each call (system scopes naming Client or SigningKey); Admin only
// does the work. Changes reach token verification at once (Server.Clients).
type Admin struct{ s *Server }

// Admin returns the server's admin API.
func (s *Server) Admin() Admin { return Admin{s} }

// clientWire is a client as the admin API shows it (public keys only are
// ever stored).
type clientWire struct {
	ID      string          `json:"id"`
	ODS     string          `json:"ods"`
	Name    string          `json:"name,omitempty"`
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURL string          `json:"jwks_url,omitempty"`
	Scopes  []string        `json:"scopes"`
	Enabled bool            `json:"enabled"`
	Created string          `json:"created,omitempty"`
	Updated string          `json:"updated,omitempty"`
}

func wireClient(c *Client) clientWire {
	f := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	return clientWire{ID: c.ID, ODS: c.ODS, Name: c.Name, JWKS: c.JWKS, JWKSURL: c.JWKSURL, Scopes: c.Scopes,
		Enabled: c.Enabled, Created: f(c.Created), Updated: f(c.Updated)}
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return b, nil
}

// ListClients answers {"clients":[...]}, by id.
func (a Admin) ListClients(ctx context.Context) ([]byte, error) {
	cs, err := a.s.clients.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	out := struct {
		Clients []clientWire `json:"clients"`
	}{Clients: []clientWire{}}
	for _, c := range cs {
		out.Clients = append(out.Clients, wireClient(c))
	}
	return marshal(out)
}

// GetClient answers one client (REFERENCE_NOT_FOUND for an unknown id).
func (a Admin) GetClient(ctx context.Context, id string) ([]byte, error) {
	c, err := a.s.clients.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return marshal(wireClient(c))
}

// AddClient registers a client from {"id","ods","name","jwks"|"jwks_url",
// "scopes":[...],"enabled"} (enabled defaults to true).
func (a Admin) AddClient(ctx context.Context, body []byte) ([]byte, error) {
	var w struct {
		clientWire
		Enabled *bool `json:"enabled"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fhir.Errorf(fhir.CodeInvalidResource, "the client is not JSON of the client shape: %s", fhir.JSONError(err))
	}
	c := &Client{ID: w.ID, ODS: w.ODS, Name: w.Name, JWKS: w.JWKS, JWKSURL: w.JWKSURL, Scopes: w.Scopes, Enabled: w.Enabled == nil || *w.Enabled}
	if err := ValidateClient(c); err != nil {
		return nil, asInvalid(err)
	}
	if err := a.s.Clients().AddClient(ctx, c); err != nil {
		return nil, asInvalid(err)
	}
	return a.GetClient(ctx, c.ID)
}

// asInvalid makes a validation error (BAD_REQUEST from the stores) an
// INVALID_PARAMETER, as the other admin APIs answer a bad value.
func asInvalid(err error) error {
	if fe := fhir.AsError(err); fe.Code == fhir.CodeBadRequest {
		return fhir.Errorf(fhir.CodeInvalidParameter, "%s", fe.Diagnostics)
	}
	return err
}

// SetClient applies action to client id: "disable", "enable", or
// "rotate-key" with body the new public JWK Set (give old and new keys for
// a rollover without refusals, then the new key alone). Tokens of a
// disabled client, and tokens got with a key no longer in its set, are
// refused from the next request on.
func (a Admin) SetClient(ctx context.Context, id, action string, body []byte) ([]byte, error) {
	st := a.s.Clients()
	var err error
	switch action {
	case "disable":
		err = st.DisableClient(ctx, id)
	case "enable":
		err = st.EnableClient(ctx, id)
	case "rotate-key":
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, fhir.Errorf(fhir.CodeInvalidParameter, "rotate-key needs the new public JWK Set as the body").At("jwks")
		}
		err = st.RotateClientKey(ctx, id, body)
	default:
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "action must be disable, enable or rotate-key").At("action")
	}
	if err != nil {
		return nil, asInvalid(err)
	}
	a.s.log.Info("smart: client changed", "client", id, "action", action)
	return a.GetClient(ctx, id)
}

// RotateSigningKey makes a new signing key active (body {"alg":"ES384"}
// or empty for the configured algorithm); the previous key keeps verifying
// the tokens it signed until they expire. Answers {"kid","alg","retained_until"}.
func (a Admin) RotateSigningKey(ctx context.Context, body []byte) ([]byte, error) {
	var w struct {
		Alg string `json:"alg"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return nil, fhir.Errorf(fhir.CodeInvalidResource, "the body is not {\"alg\": ...}: %s", fhir.JSONError(err))
		}
	}
	if w.Alg != "" && w.Alg != "ES384" && w.Alg != "RS384" {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "alg must be ES384 or RS384").At("alg")
	}
	kid, err := a.s.RotateSigningKey(ctx, w.Alg)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	alg := w.Alg
	if alg == "" {
		alg = a.s.alg
	}
	return marshal(map[string]string{"kid": kid, "alg": alg,
		"previous_keys_verify_until": a.s.now().Add(a.s.retain()).UTC().Format(time.RFC3339)})
}

// MethodNotAllowed answers a method the token endpoint does not take (GET
// /auth/token and the like): 405 with Allow: POST, as an OAuth error.
func MethodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeOAuthError(w, oauthErr(http.StatusMethodNotAllowed, ErrInvalidRequest, "use POST"))
}

// SigningKeyID is the kid of the active token-signing key ("" when there
// is none: no token can be issued), for readiness checks.
func (s *Server) SigningKeyID() string {
	if r := s.ring.Load(); r != nil && r.active != nil {
		return r.active.kid
	}
	return ""
}
