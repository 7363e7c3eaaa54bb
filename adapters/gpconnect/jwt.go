package gpconnect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Identifier systems of the JWT's minimal resources.
const (
	SDSUserSystem        = "https://fhir.nhs.uk/Id/sds-user-id"
	SDSRoleProfileSystem = "https://fhir.nhs.uk/Id/sds-role-profile-id"
)

// Requester is the user and organisation on whose behalf gpgate asks a
// practice for a record: the requesting_practitioner and
// requesting_organization of the GP Connect JWT.
type Requester struct {
	UserID           string // local user id: the JWT sub and requesting_practitioner.id
	UserSystem       string // system of UserID as a local identifier (default: gpgate's)
	SDSUserID        string // from the smartcard, "UNK" when not known
	SDSRoleProfileID string // from the smartcard, "UNK" when not known
	Family           string
	Given            string
	Prefix           string
	OrgODS           string // the organisation the request originates from
	OrgName          string
}

type requesterKey struct{}

// WithRequester returns ctx carrying the requester of a fetch.
func WithRequester(ctx context.Context, r *Requester) context.Context {
	return context.WithValue(ctx, requesterKey{}, r)
}

// RequesterFrom returns the requester in ctx: the one set with
// WithRequester, else one derived from the fhir.Principal (the caller's
// clinician and organisation), else nil.
func RequesterFrom(ctx context.Context) *Requester {
	if r, ok := ctx.Value(requesterKey{}).(*Requester); ok && r != nil {
		return r
	}
	p := fhir.PrincipalFrom(ctx)
	if p == nil || p.ConsumerODS == "" {
		return nil
	}
	user := p.Practitioner
	if user == "" {
		user = p.ClientID
	}
	r := &Requester{UserID: user, SDSUserID: "UNK", SDSRoleProfileID: "UNK", OrgODS: p.ConsumerODS, OrgName: p.ConsumerODS}
	if p.Practitioner != "" {
		r.SDSUserID = p.Practitioner
	}
	if f := strings.Fields(p.Name); len(f) > 0 {
		r.Family, r.Given = f[len(f)-1], strings.Join(f[:len(f)-1], " ")
	}
	return r
}

// Device is the requesting_device claim: gpgate itself.
type Device struct {
	System  string // identifier system, e.g. https://<supplier>/Id/device-identifier
	ID      string
	Model   string
	Version string
}

// TokenTTL is the lifetime the specification fixes for the JWT.
const TokenTTL = 5 * time.Minute

// Token builds the GP Connect access token for one request, as Access
// Record Structured 1.6 requires: an unsecured JWT (alg "none", empty
// signature) whose claims are iss, sub, aud (the provider's service root),
// iat and exp (5 minutes later), reason_for_request "directcare",
// requested_scope "patient/*.read", and the requesting device,
// organisation and practitioner as minimal STU3 resources.
func Token(now time.Time, issuer, audience string, dev Device, r *Requester) (string, error) {
	if r == nil || r.UserID == "" || r.OrgODS == "" {
		return "", fmt.Errorf("gpconnect: token: a requesting practitioner and organisation are required")
	}
	sds, role := r.SDSUserID, r.SDSRoleProfileID
	if sds == "" {
		sds = "UNK"
	}
	if role == "" {
		role = "UNK"
	}
	userSys := r.UserSystem
	if userSys == "" {
		userSys = "https://gpgate.invalid/Id/user-id"
	}
	name := map[string]any{}
	if r.Family != "" {
		name["family"] = r.Family
	}
	if r.Given != "" {
		name["given"] = strings.Fields(r.Given)
	}
	if r.Prefix != "" {
		name["prefix"] = []string{r.Prefix}
	}
	if len(name) == 0 {
		name["family"] = "UNK"
	}
	orgName := r.OrgName
	if orgName == "" {
		orgName = r.OrgODS
	}
	iat := now.UTC().Truncate(time.Second)
	tok, err := jwt.NewBuilder().
		Issuer(issuer).
		Subject(r.UserID).
		Audience([]string{audience}).
		IssuedAt(iat).
		Expiration(iat.Add(TokenTTL)).
		Claim("reason_for_request", "directcare").
		Claim("requested_scope", "patient/*.read").
		Claim("requesting_device", map[string]any{
			"resourceType": "Device",
			"identifier":   []map[string]string{{"system": dev.System, "value": dev.ID}},
			"model":        dev.Model,
			"version":      dev.Version,
		}).
		Claim("requesting_organization", map[string]any{
			"resourceType": "Organization",
			"identifier":   []map[string]string{{"system": fhir.ODSSystem, "value": r.OrgODS}},
			"name":         orgName,
		}).
		Claim("requesting_practitioner", map[string]any{
			"resourceType": "Practitioner",
			"id":           r.UserID,
			"identifier": []map[string]string{
				{"system": SDSUserSystem, "value": sds},
				{"system": SDSRoleProfileSystem, "value": role},
				{"system": userSys, "value": r.UserID},
			},
			"name": []map[string]any{name},
		}).
		Build()
	if err != nil {
		return "", fmt.Errorf("gpconnect: token: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithInsecureNoSignature())
	if err != nil {
		return "", fmt.Errorf("gpconnect: token: %w", err)
	}
	return string(signed), nil
}
