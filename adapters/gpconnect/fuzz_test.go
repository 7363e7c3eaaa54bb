package gpconnect

import (
	"os"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// FuzzConvert: any body either fails to parse with an error or converts to
// resources that are valid R4 with resolvable references; never a panic.
func FuzzConvert(f *testing.F) {
	f.Add(bundle("1234567890"))
	f.Add(bundle("9000000009", bpObs("bp", mmHg(120), mmHg(80)),
		map[string]any{"resourceType": "MedicationRequest", "id": "m", "intent": "order", "status": "active", "medicationReference": ref("Medication/x")}))
	f.Add([]byte(`{"resourceType":"OperationOutcome","issue":[{"details":{"coding":[{"code":"PATIENT_NOT_FOUND"}]}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p"}},{"resource":{"resourceType":"Observation","id":"o","code":{"coding":[{"system":"s","code":"c"}]},"related":[{"type":"has-member","target":{"reference":"Observation/o"}}]}}]}`))
	// contained resources, a reused id, an untyped test-group relation,
	// a PractitionerRole reference, out-of-range integers, zone-less times
	if b, err := os.ReadFile("testdata/contained-ended-allergies.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p"}},{"resource":{"resourceType":"List","contained":[{"resourceType":"AllergyIntolerance","id":"a","code":{"coding":[{"system":"s","code":"c"}]},"recorder":{"reference":"PractitionerRole/r"}},{"resourceType":"List","id":"a"}],"entry":[{"item":{"reference":"#a"}}]}},{"resource":{"resourceType":"PractitionerRole","id":"r","practitioner":{"reference":"PractitionerRole/r"}}},{"resource":{"resourceType":"DiagnosticReport","id":"d","code":{"coding":[{"system":"s","code":"c"}]},"result":[{"reference":"Observation/o"}]}},{"resource":{"resourceType":"Observation","id":"o","code":{"coding":[{"system":"s","code":"c"}]},"related":[{"target":{"reference":"Observation/o"}}],"effectiveDateTime":"2020-01-01T10:00"}},{"resource":{"resourceType":"Observation","id":"o","code":{"coding":[{"system":"s","code":"d"}]}}},{"resource":{"resourceType":"Immunization","id":"i","vaccineCode":{"coding":[{"system":"s","code":"c"}]},"vaccinationProtocol":[{"doseSequence":0}]}}]}`))
	if files, err := sharedGlob(); err == nil && len(files) > 0 {
		if b, err := os.ReadFile(files[0]); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Convert(body, Options{NHS: testNHS, Practice: "A12345"})
		if err != nil {
			return
		}
		ids := map[string]bool{}
		for _, r := range res.Resources {
			ids[r.Reference()] = true
		}
		for _, r := range res.Resources {
			if _, err := fhir.Canonicalize(r.JSON); err != nil {
				t.Fatalf("%s: %v", r.Reference(), err)
			}
			for _, to := range fhir.References(r.JSON) {
				if !ids[to] {
					t.Fatalf("%s: dangling reference %s", r.Reference(), to)
				}
			}
		}
	})
}

// FuzzParseRecordedName: a parsed name always starts with its ten digits.
func FuzzParseRecordedName(f *testing.F) {
	for _, s := range []string{"9465698490_Daniels_full_20210119.json", "9000000009.json", "x.json", "_.json", "9000000009__.JSON", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseRecordedName(s)
		if !ok {
			return
		}
		if len(n.NHS) != 10 || s[:10] != n.NHS {
			t.Fatalf("%q -> %+v", s, n)
		}
	})
}

// FuzzParseParameters: a request either fails with a coded error or names
// a valid NHS number and at least one section.
func FuzzParseParameters(f *testing.F) {
	f.Add(BuildParameters(testNHS, SectionsFor(fhir.AllAreas, true)))
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseParameters(body)
		if err != nil {
			if fhir.AsError(err).Code == fhir.CodeInternal {
				t.Fatalf("uncoded error: %v", err)
			}
			return
		}
		if !fhir.ValidNHSNumber(req.NHS) || req.Sections == 0 {
			t.Fatalf("accepted %+v", req)
		}
	})
}
