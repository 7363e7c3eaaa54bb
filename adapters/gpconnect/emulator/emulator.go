// Package emulator is a GP Connect provider emulator: an http.Handler that
// answers Access Record Structured's $gpc.getstructuredrecord from a
// folder of recorded responses, as an EMIS or TPP practice system behind
// the Spine Secure Proxy would. It checks what a provider checks (the
// Spine headers, the JWT claims, the Parameters), answers only the
// sections asked for, and can be told to misbehave (latency, Spine
// errors, garbage, another patient's record, a dead connection) so that
// gpgate's client, deadlines and circuit breaking can be tested over real
// HTTP(S) without a network.
package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Config configures an emulator.
type Config struct {
	Dir string // recorded structured-record responses (see gpconnect.NewRecorded)
	ODS string // the emulated practice's ODS code (default "A99999")
	// ASID is the emulated provider's ASID: requests whose Ssp-To differs
	// are refused ("" accepts any).
	ASID string
	// Audience, when set, is the service root the JWT's aud must name.
	Audience string
	Now      func() time.Time
	Logger   *slog.Logger
}

// Fault is how the emulator misbehaves; the zero Fault is a healthy
// provider. It applies to every request until changed.
type Fault struct {
	Latency      time.Duration // delay before answering (the request's context cancels it)
	Status       int           // answer with this HTTP status and Spine Code instead of the record
	Code         string        // Spine error code of the OperationOutcome (with Status)
	Garbage      bool          // answer 200 with a body that is not JSON
	OtherPatient bool          // answer with another patient's record
	Dead         bool          // close the connection without answering
	// Sections, when not zero, limits the fault to requests that ask for
	// any of these sections (a slow medication section, say); others are
	// answered normally.
	Sections gpconnect.Sections
}

// Emulator is the provider. It is safe for concurrent use.
type Emulator struct {
	cfg      Config
	rec      *gpconnect.Recorded
	log      *slog.Logger
	fault    atomic.Pointer[Fault]
	requests atomic.Int64
	lastReq  atomic.Pointer[Requester]
}

// Requester is who the last request's JWT named: the requesting
// organisation's ODS code and the practitioner's SDS user id.
type Requester struct {
	OrgODS, SDSUserID string
}

// LastRequester returns who the last structured-record request named
// (zero before any, or when its JWT could not be read).
func (e *Emulator) LastRequester() Requester {
	if r := e.lastReq.Load(); r != nil {
		return *r
	}
	return Requester{}
}

func (e *Emulator) noteRequester(r *http.Request) {
	var out Requester
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if t, err := jwt.ParseInsecure([]byte(tok)); err == nil {
			claims := t.PrivateClaims()
			org, _ := claims["requesting_organization"].(obj)
			pr, _ := claims["requesting_practitioner"].(obj)
			out = Requester{OrgODS: identifiers(org)[fhir.ODSSystem], SDSUserID: identifiers(pr)[gpconnect.SDSUserSystem]}
		}
	}
	e.lastReq.Store(&out)
}

type obj = map[string]any

// New returns an emulator over cfg.Dir.
func New(cfg Config) (*Emulator, error) {
	if cfg.ODS == "" {
		cfg.ODS = "A99999"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rec, err := gpconnect.NewRecorded(cfg.Dir, cfg.ODS, gpconnect.WithLogger(cfg.Logger))
	if err != nil {
		return nil, err
	}
	e := &Emulator{cfg: cfg, rec: rec, log: cfg.Logger.With("component", "gpconnect-emulator")}
	e.fault.Store(&Fault{})
	return e, nil
}

// SetFault changes how the emulator answers from now on.
func (e *Emulator) SetFault(f Fault) { e.fault.Store(&f) }

// Requests is the number of structured-record requests received.
func (e *Emulator) Requests() int64 { return e.requests.Load() }

// Patients lists the NHS numbers the emulator holds records for.
func (e *Emulator) Patients(ctx context.Context) ([]fhir.NHSNumber, error) {
	return e.rec.Patients(ctx)
}

const operationPath = "/Patient/$gpc.getstructuredrecord"

// ServeHTTP answers POST {base}/Patient/$gpc.getstructuredrecord.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, operationPath) {
		writeOutcome(w, http.StatusNotFound, "NOT_IMPLEMENTED", "not-supported", "only $gpc.getstructuredrecord is served")
		return
	}
	if r.Method != http.MethodPost {
		writeOutcome(w, http.StatusMethodNotAllowed, "BAD_REQUEST", "not-supported", "the operation is invoked with POST")
		return
	}
	e.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeOutcome(w, http.StatusBadRequest, "BAD_REQUEST", "invalid", "the request body could not be read")
		return
	}
	req, perr := gpconnect.ParseParameters(body)
	f := *e.fault.Load()
	if f.Sections != 0 && (perr != nil || req.Sections&f.Sections == 0) {
		f = Fault{}
	}
	e.noteRequester(r)
	if f.Dead {
		panic(http.ErrAbortHandler) // net/http closes the connection without an answer
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if status, code, msg := e.checkHeaders(r); status != 0 {
		writeOutcome(w, status, code, "invalid", msg)
		return
	}
	if perr != nil {
		fe := fhir.AsError(perr)
		writeOutcome(w, fe.Status(), string(fe.Code), "invalid", fe.Diagnostics)
		return
	}
	if f.Status != 0 {
		code := f.Code
		if code == "" {
			code = "INTERNAL_SERVER_ERROR"
		}
		writeOutcome(w, f.Status, code, "exception", "injected failure")
		return
	}
	if f.Garbage {
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
		_, _ = w.Write([]byte("<html><body>502 upstream gone \x00\xff</body>"))
		return
	}
	nhs := fhir.NHSNumber(req.NHS)
	serve := nhs
	if f.OtherPatient {
		serve = e.other(r.Context(), nhs)
	}
	doc, err := e.record(r.Context(), serve)
	if err != nil {
		fe := fhir.AsError(err)
		writeOutcome(w, fe.Status(), string(fe.Code), "not-found", "no record")
		return
	}
	out, err := json.Marshal(filter(doc, req, serve))
	if err != nil {
		writeOutcome(w, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "exception", "encode")
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(out)
}

// checkHeaders checks the Spine headers, the media types and the JWT;
// it returns the HTTP status, Spine code and message of the refusal, or 0.
func (e *Emulator) checkHeaders(r *http.Request) (int, string, string) {
	h := r.Header
	switch {
	case h.Get("Ssp-TraceID") == "":
		return http.StatusBadRequest, "BAD_REQUEST", "Ssp-TraceID is required"
	case h.Get("Ssp-From") == "":
		return http.StatusBadRequest, "BAD_REQUEST", "Ssp-From is required"
	case h.Get("Ssp-To") == "" || (e.cfg.ASID != "" && h.Get("Ssp-To") != e.cfg.ASID):
		return http.StatusForbidden, "ACCESS_DENIED", "Ssp-To does not name this provider"
	case h.Get("Ssp-InteractionID") != gpconnect.InteractionID:
		return http.StatusForbidden, "ACCESS_DENIED", "Ssp-InteractionID is not the structured record interaction"
	case !strings.HasPrefix(h.Get("Content-Type"), "application/fhir+json"):
		return http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/fhir+json"
	case h.Get("Accept") != "" && !strings.Contains(h.Get("Accept"), "application/fhir+json"):
		return http.StatusNotAcceptable, "NOT_ACCEPTABLE", "the answer is application/fhir+json"
	}
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok {
		return http.StatusBadRequest, "BAD_REQUEST", "a bearer JWT is required"
	}
	if err := e.checkJWT(tok); err != nil {
		return http.StatusBadRequest, "BAD_REQUEST", "JWT: " + err.Error()
	}
	return 0, "", ""
}

// checkJWT checks the claims GP Connect requires of the consumer's
// unsecured JWT.
func (e *Emulator) checkJWT(s string) error {
	msg, err := jws.Parse([]byte(s))
	if err != nil {
		return fmt.Errorf("not a JWS: %w", err)
	}
	if len(msg.Signatures()) != 1 || msg.Signatures()[0].ProtectedHeaders().Algorithm() != jwa.NoSignature {
		return errors.New(`alg must be "none"`)
	}
	if !strings.HasSuffix(s, ".") {
		return errors.New("the signature must be empty")
	}
	tok, err := jwt.ParseInsecure([]byte(s))
	if err != nil {
		return err
	}
	now := e.cfg.Now()
	switch {
	case tok.Issuer() == "":
		return errors.New("iss is required")
	case tok.Subject() == "":
		return errors.New("sub is required")
	case len(tok.Audience()) == 0 || (e.cfg.Audience != "" && tok.Audience()[0] != e.cfg.Audience):
		return errors.New("aud must name the provider's service root")
	case tok.IssuedAt().IsZero() || tok.Expiration().IsZero():
		return errors.New("iat and exp are required")
	case tok.Expiration().Sub(tok.IssuedAt()) != 5*time.Minute:
		return errors.New("exp must be iat + 5 minutes")
	case !now.Before(tok.Expiration()):
		return errors.New("expired")
	case tok.IssuedAt().After(now.Add(time.Minute)):
		return errors.New("issued in the future")
	}
	claims := tok.PrivateClaims()
	if claims["reason_for_request"] != "directcare" {
		return errors.New(`reason_for_request must be "directcare"`)
	}
	if sc, _ := claims["requested_scope"].(string); !strings.HasPrefix(sc, "patient/*.read") {
		return errors.New(`requested_scope must be "patient/*.read"`)
	}
	dev, _ := claims["requesting_device"].(obj)
	if dev["resourceType"] != "Device" || len(identifiers(dev)) == 0 {
		return errors.New("requesting_device must be a Device with an identifier")
	}
	org, _ := claims["requesting_organization"].(obj)
	if org["resourceType"] != "Organization" || identifiers(org)[fhir.ODSSystem] == "" {
		return errors.New("requesting_organization must be an Organization with an ODS code")
	}
	pr, _ := claims["requesting_practitioner"].(obj)
	ids := identifiers(pr)
	switch {
	case pr["resourceType"] != "Practitioner":
		return errors.New("requesting_practitioner must be a Practitioner")
	case pr["id"] != tok.Subject():
		return errors.New("requesting_practitioner.id must equal sub")
	case ids[gpconnect.SDSUserSystem] == "" || ids[gpconnect.SDSRoleProfileSystem] == "":
		return errors.New("requesting_practitioner needs SDS user and role profile identifiers (UNK when unknown)")
	case pr["name"] == nil:
		return errors.New("requesting_practitioner needs a name")
	}
	return nil
}

func identifiers(r obj) map[string]string {
	out := map[string]string{}
	l, _ := r["identifier"].([]any)
	for _, x := range l {
		xo, _ := x.(obj)
		s, _ := xo["system"].(string)
		v, _ := xo["value"].(string)
		if s != "" && v != "" {
			out[s] = v
		}
	}
	return out
}

// other picks a patient other than nhs (the first in order), or nhs itself
// when the folder holds no other.
func (e *Emulator) other(ctx context.Context, nhs fhir.NHSNumber) fhir.NHSNumber {
	ps, err := e.rec.Patients(ctx)
	if err != nil {
		return nhs
	}
	for _, p := range ps {
		if p != nhs {
			return p
		}
	}
	return nhs
}

// record returns the decoded recorded response for nhs.
func (e *Emulator) record(ctx context.Context, nhs fhir.NHSNumber) (obj, error) {
	raw, err := e.rec.Raw(ctx, nhs)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var doc obj
	if err := d.Decode(&doc); err != nil {
		return nil, fhir.Internal(err)
	}
	return doc, nil
}

// writeOutcome answers with a GP Connect (STU3) OperationOutcome.
func writeOutcome(w http.ResponseWriter, status int, code, issueType, diag string) {
	oo := obj{
		"resourceType": "OperationOutcome",
		"meta":         obj{"profile": []string{"https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1"}},
		"issue": []obj{{
			"severity": "error",
			"code":     issueType,
			"details": obj{"coding": []obj{{
				"system": "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1",
				"code":   code,
			}}},
			"diagnostics": diag,
		}},
	}
	b, _ := json.Marshal(oo)
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
