package consent

import (
	"errors"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func FuzzParseAgreement(f *testing.F) {
	f.Add([]byte(`{"provider":"Y99001","consumers":["RXX01"],"areas":["problems","medication"],"purposes":["TREAT"],"start":"2026-01-01","status":"active","breakGlass":true,"defaultRules":{"under16":true}}`))
	f.Add([]byte(`{"provider":"Y99001","consumerGroup":"trusts","areas":["all"]}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAgreement(b)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) || (fe.Code != fhir.CodeInvalidResource && fe.Code != fhir.CodeInvalidParameter) {
				t.Fatalf("uncoded or unexpected error %v", err)
			}
			return
		}
		// A parsed agreement is valid, and its JSON parses back to itself.
		again, err := ParseAgreement(AgreementJSON(a))
		if err != nil {
			t.Fatalf("round trip of %s: %v", AgreementJSON(a), err)
		}
		if string(AgreementJSON(again)) != string(AgreementJSON(a)) {
			t.Fatalf("round trip changed:\n%s\n%s", AgreementJSON(a), AgreementJSON(again))
		}
		if a.Areas == 0 || !ValidODS(a.Provider) || len(a.Purposes) == 0 {
			t.Fatalf("invalid agreement accepted: %+v", a)
		}
	})
}

func FuzzParseConsentBody(f *testing.F) {
	f.Add([]byte(consentBody))
	f.Add([]byte(breakGlassBody))
	f.Add([]byte(`{"resourceType":"Consent"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseConsentBody(b)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("uncoded error %v", err)
			}
			switch fe.Code {
			case fhir.CodeInvalidResource, fhir.CodeInvalidParameter, fhir.CodeInvalidNHSNumber, fhir.CodeInvalidIdentifier:
			default:
				t.Fatalf("unexpected code %s", fe.Code)
			}
			return
		}
		if !fhir.ValidID(r.PatientID) || r.Clinician == "" {
			t.Fatalf("accepted without patient or clinician: %+v", r)
		}
		if r.NHS != "" && fhir.PatientID(r.NHS) != r.PatientID {
			t.Fatalf("patient id and NHS number disagree: %+v", r)
		}
		if r.BreakGlass != (r.Reason != "") {
			t.Fatalf("reason without break-glass or the reverse: %+v", r)
		}
	})
}
