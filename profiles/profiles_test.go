package profiles

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func readGood(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "good", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoodResources: every golden good resource satisfies the profile it
// claims with no problem at all, not even a warning.
func TestGoodResources(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "good", "*.json"))
	if err != nil || len(files) < 20 {
		t.Fatalf("golden files: %v, %d", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if ps := CheckJSON(raw); len(ps) != 0 {
				t.Errorf("want no problems, got:\n%s", dump(ps))
			}
			if filepath.Base(f) == "bundle-collection.json" {
				if ps := CheckBundle(raw, ResolveReferences()); len(ps) != 0 {
					t.Errorf("CheckBundle(ResolveReferences): want no problems, got:\n%s", dump(ps))
				}
			}
			if strings.HasPrefix(filepath.Base(f), "bundle-") {
				return
			}
			r, err := fhir.NewResource(raw)
			if err != nil {
				t.Fatal(err)
			}
			if ps := Check(r); len(ps) != 0 {
				t.Errorf("Check: want no problems, got:\n%s", dump(ps))
			}
		})
	}
}

func dump(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

const del = "\x00delete"

// edit sets (or with del, deletes) the element at a dotted path with
// indexes ("identifier[0].value") in a decoded resource, creating objects
// on the way.
func edit(t testing.TB, root obj, path string, v any) {
	t.Helper()
	segs := strings.Split(path, ".")
	var cur any = root
	for i, s := range segs {
		name, idx := s, -1
		if j := strings.Index(s, "["); j >= 0 {
			name = s[:j]
			n, err := strconv.Atoi(strings.TrimSuffix(s[j+1:], "]"))
			if err != nil {
				t.Fatalf("bad path %q", path)
			}
			idx = n
		}
		o, ok := cur.(obj)
		if !ok {
			t.Fatalf("edit %q: %q is not an object", path, name)
		}
		last := i == len(segs)-1
		if idx < 0 {
			if last {
				if v == del {
					delete(o, name)
				} else {
					o[name] = v
				}
				return
			}
			if _, ok := o[name]; !ok {
				o[name] = obj{}
			}
			cur = o[name]
			continue
		}
		l, _ := o[name].([]any)
		if idx >= len(l) {
			t.Fatalf("edit %q: index %d out of range", path, idx)
		}
		if last {
			if v == del {
				o[name] = append(l[:idx:idx], l[idx+1:]...)
			} else {
				l[idx] = v
			}
			return
		}
		cur = l[idx]
	}
}

// parse decodes JSON text for a test edit value.
func parse(s string) any {
	var v any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		panic(err)
	}
	return v
}

type edits []struct {
	path string
	v    any
}

func e(path string, v any) edits { return edits{{path, v}} }
func (es edits) and(path string, v any) edits {
	return append(es, struct {
		path string
		v    any
	}{path, v})
}

// TestBadResources: each case breaks one rule of a good resource, and the
// checker reports exactly that rule at that path, with that severity.
func TestBadResources(t *testing.T) {
	cases := []struct {
		name, file string
		edits      edits
		rule, path string
		sev        Severity
	}{
		// claims
		{"unknown profile", "condition.json", e("meta.profile[0]", "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Conditon"), "gpgate-profile-known", "Condition.meta.profile[0]", Error},
		{"profile of another type", "condition.json", e("meta.profile[0]", fhir.ProfileFlag), "gpgate-profile-type", "Condition.meta.profile[0]", Error},
		{"no profile claimed", "condition.json", e("meta", del), "gpgate-profile-claimed", "Condition.meta.profile", Warning},
		{"versioned claim of a known profile is fine but subject still required", "condition.json", e("meta.profile[0]", fhir.ProfileCondition+"|2.6.1").and("subject", del), "Condition.subject", "Condition.subject", Error},
		{"unclaimed resource still gets R4 base rules", "flag.json", e("meta", del).and("status", "open"), "Flag.status", "Flag.status", Error},

		// coded only
		{"narrative", "condition.json", e("text", parse(`{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`)), "gpgate-coded-only", "Condition.text", Error},
		{"note", "condition.json", e("note", parse(`[{"text":"seen in clinic"}]`)), "gpgate-coded-only", "Condition.note", Error},
		{"reaction note", "allergyintolerance.json", e("reaction[0].note", parse(`[{"text":"rash"}]`)), "gpgate-coded-only", "AllergyIntolerance.reaction[0].note", Error},
		{"comment", "observation-lab.json", e("comment", "see letter"), "gpgate-coded-only", "Observation.comment", Error},
		{"uncoded code", "condition.json", e("code", parse(`{"text":"bad back"}`)), "gpgate-coded-only", "Condition.code", Error},
		{"uncoded category", "condition.json", e("category[0]", parse(`{"coding":[],"text":"problem"}`)), "gpgate-coded-only", "Condition.category[0]", Error},
		{"note in extension", "diagnosticreport.json", e("extension", parse(`[{"url":"http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note","valueAnnotation":{"text":"x"}}]`)), "gpgate-coded-only", "DiagnosticReport.extension[0].valueAnnotation", Error},
		{"narrative in contained", "medicationstatement.json", e("contained", parse(`[{"resourceType":"Medication","id":"x","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}]`)), "gpgate-coded-only", "MedicationStatement.contained[0].text", Error},
		{"conclusion warns", "diagnosticreport.json", e("conclusion", "normal"), "gpgate-coded-only", "DiagnosticReport.conclusion", Warning},

		// Patient, NHS number
		{"NHS number bad check digit", "patient.json", e("identifier[0].value", "9000000008"), "gpgate-nhs-number", "Patient.identifier[0].value", Error},
		{"NHS number 9 digits", "patient.json", e("identifier[0].value", "900000000"), "gpgate-nhs-number", "Patient.identifier[0].value", Error},
		{"NHS number spaced", "patient.json", e("identifier[0].value", "900 000 0009"), "gpgate-nhs-number", "Patient.identifier[0].value", Error},
		{"NHS number missing value", "patient.json", e("identifier[0].value", del), "Patient.identifier:nhsNumber.value", "Patient.identifier[0].value", Error},
		{"two NHS numbers", "patient.json", e("identifier", parse(`[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"},{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]`)), "Patient.identifier:nhsNumber", "Patient.identifier[1]", Error},
		{"NHS number in a reference", "condition.json", e("subject", parse(`{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"1234567890"}}`)), "gpgate-nhs-number", "Condition.subject.identifier.value", Error},
		{"verification status bad code", "patient.json", e("identifier[0].extension[0].valueCodeableConcept.coding[0].code", "09"), "Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus.value[x]", "Patient.identifier[0].extension[0].valueCodeableConcept.coding[0]", Error},
		{"verification status other system", "patient.json", e("identifier[0].extension[0].valueCodeableConcept.coding[0].system", "http://example.org/x"), "Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus.value[x]", "Patient.identifier[0].extension[0].valueCodeableConcept", Error},
		{"verification status wrong type", "patient.json", e("identifier[0].extension[0]", parse(`{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus","valueCode":"01"}`)), "Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus.value[x]", "Patient.identifier[0].extension[0].valueCode", Error},
		{"gender", "patient.json", e("gender", "F"), "Patient.gender", "Patient.gender", Error},
		{"telecom use", "patient.json", e("telecom[0].use", "personal"), "Patient.telecom.use", "Patient.telecom[0].use", Error},
		{"link without other", "patient.json", e("link", parse(`[{"type":"seealso"}]`)), "Patient.link.other", "Patient.link[0].other", Error},
		{"contact with nothing", "patient.json", e("contact", parse(`[{"gender":"male"}]`)), "pat-1", "Patient.contact[0]", Error},
		{"extension without url", "patient.json", e("extension", parse(`[{"valueBoolean":true}]`)), "Extension.url", "Patient.extension[0].url", Error},
		{"extension with value and nested", "patient.json", e("extension", parse(`[{"url":"http://x","valueBoolean":true,"extension":[{"url":"y","valueBoolean":true}]}]`)), "ext-1", "Patient.extension[0]", Error},

		// Organization, Practitioner
		{"ODS code lower case", "organization.json", e("identifier[0].value", "y12345"), "gpgate-ods-code", "Organization.identifier[0].value", Error},
		{"ODS code missing value", "organization.json", e("identifier[0].value", del), "Organization.identifier:odsOrganisationCode.value", "Organization.identifier[0].value", Error},
		{"organization without name or identifier", "organization.json", e("identifier", del).and("name", del), "org-1", "Organization", Error},
		{"organization home telecom", "organization.json", e("telecom[0].use", "home"), "org-3", "Organization.telecom[0].use", Error},
		{"SDS user id with space", "practitioner.json", e("identifier[0].value", "G135 79135"), "gpgate-sds-id", "Practitioner.identifier[0].value", Error},
		{"qualification without code", "practitioner.json", e("qualification", parse(`[{"period":{"start":"2000"}}]`)), "Practitioner.qualification.code", "Practitioner.qualification[0].code", Error},

		// Condition, AllergyIntolerance
		{"condition without subject", "condition.json", e("subject", del), "Condition.subject", "Condition.subject", Error},
		{"clinical status code", "condition.json", e("clinicalStatus.coding[0].code", "current"), "Condition.clinicalStatus", "Condition.clinicalStatus.coding[0]", Error},
		{"clinical status no coding from system", "condition.json", e("clinicalStatus", parse(`{"coding":[{"system":"http://snomed.info/sct","code":"55561003"}]}`)), "Condition.clinicalStatus", "Condition.clinicalStatus", Error},
		{"abated but active", "condition.json", e("abatementDateTime", "2020-01-01"), "con-4", "Condition.clinicalStatus", Error},
		{"entered in error with status", "condition.json", e("verificationStatus.coding[0].code", "entered-in-error"), "con-5", "Condition.clinicalStatus", Error},
		{"problem without clinical status", "condition.json", e("clinicalStatus", del), "con-3", "Condition.clinicalStatus", Warning},
		{"allergy without code", "allergyintolerance.json", e("code", del), "AllergyIntolerance.code", "AllergyIntolerance.code", Error},
		{"allergy without clinical status", "allergyintolerance.json", e("clinicalStatus", del), "ait-1", "AllergyIntolerance.clinicalStatus", Error},
		{"allergy category", "allergyintolerance.json", e("category[0]", "drug"), "AllergyIntolerance.category", "AllergyIntolerance.category[0]", Error},
		{"reaction without manifestation", "allergyintolerance.json", e("reaction[0].manifestation", del), "AllergyIntolerance.reaction.manifestation", "AllergyIntolerance.reaction[0].manifestation", Error},
		{"reaction severity", "allergyintolerance.json", e("reaction[0].severity", "bad"), "AllergyIntolerance.reaction.severity", "AllergyIntolerance.reaction[0].severity", Error},

		// Medication
		{"medication without code", "medication.json", e("code", del), "Medication.code", "Medication.code", Error},
		{"statement identifier without system", "medicationstatement.json", e("identifier[0].system", del), "MedicationStatement.identifier.system", "MedicationStatement.identifier[0].system", Error},
		{"statement status", "medicationstatement.json", e("status", "current"), "MedicationStatement.status", "MedicationStatement.status", Error},
		{"statement without medication", "medicationstatement.json", e("medicationReference", del), "MedicationStatement.medication[x]", "MedicationStatement.medication[x]", Error},
		{"request without substitution", "medicationrequest.json", e("substitution", del), "MedicationRequest.substitution", "MedicationRequest.substitution", Error},
		{"request substitution without allowed", "medicationrequest.json", e("substitution", parse(`{"reason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"CT"}]}}`)), "MedicationRequest.substitution.allowed[x]", "MedicationRequest.substitution.allowed[x]", Error},
		{"request intent", "medicationrequest.json", e("intent", "issue"), "MedicationRequest.intent", "MedicationRequest.intent", Error},
		{"dosage text is not free text", "medicationrequest.json", e("dosageInstruction[0]", parse(`{"text":"two puffs when needed"}`)).and("subject", del), "MedicationRequest.subject", "MedicationRequest.subject", Error},

		// Observation: blood pressure
		{"bp not final", "observation-bp.json", e("status", "preliminary"), "Observation.status", "Observation.status", Error},
		{"bp category", "observation-bp.json", e("category[0].coding[0].code", "exam"), "Observation.category.coding.code", "Observation.category[0].coding[0].code", Error},
		{"bp without loinc panel", "observation-bp.json", e("code.coding[0].code", "55284-4"), "Observation.code.coding:loinc.code", "Observation.code.coding[0].code", Error},
		{"bp without snomed", "observation-bp.json", e("code.coding", parse(`[{"system":"http://loinc.org","code":"85354-9"}]`)), "Observation.code.coding:snomedCT", "Observation.code.coding:snomedCT", Error},
		{"bp without effective", "observation-bp.json", e("effectiveDateTime", del), "Observation.effective[x]", "Observation.effective[x]", Error},
		{"bp with a value", "observation-bp.json", e("valueQuantity", parse(`{"value":1}`)), "Observation.value[x]", "Observation.valueQuantity", Error},
		{"bp without diastolic", "observation-bp.json", e("component[1]", del), "Observation.component:DiastolicBP", "Observation.component:DiastolicBP", Error},
		{"bp systolic unit", "observation-bp.json", e("component[0].valueQuantity.code", "mmHg"), "Observation.component:SystolicBP.value[x].code", "Observation.component[0].valueQuantity.code", Error},
		{"bp systolic as string", "observation-bp.json", e("component[0].valueQuantity", del).and("component[0].valueString", "128"), "Observation.component:SystolicBP.value[x]", "Observation.component[0].valueString", Error},
		{"bp component text", "observation-bp.json", e("component[1].code.text", "Diastolic"), "Observation.component:DiastolicBP.code.text", "Observation.component[1].code.text", Error},
		{"bp extra component", "observation-bp.json", e("component", append(parse(readComponent(t)).([]any), parse(`{"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"},{"system":"http://snomed.info/sct","code":"364075005"}]},"valueQuantity":{"value":70,"system":"http://unitsofmeasure.org","code":"/min"}}`))), "Observation.component", "Observation.component[2]", Error},
		{"bp comparator", "observation-bp.json", e("component[0].valueQuantity.comparator", "~"), "Observation.component:SystolicBP.value[x].comparator", "Observation.component[0].valueQuantity.comparator", Error},

		// Observation: lab and base
		{"lab without laboratory category", "observation-lab.json", e("category[0].coding[0].code", "vital-signs"), "Observation.category:laboratory", "Observation.category:laboratory", Error},
		{"lab without value", "observation-lab.json", e("valueQuantity", del), "ukcore-obs-lab-001", "Observation.value[x]", Warning},
		{"value and data absent reason", "observation-lab.json", e("dataAbsentReason", parse(`{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"unknown"}]}`)), "obs-6", "Observation.dataAbsentReason", Error},
		{"reference range empty", "observation-lab.json", e("referenceRange[0]", parse(`{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/referencerange-meaning","code":"normal"}]}}`)), "obs-3", "Observation.referenceRange[0]", Error},
		{"observation status", "observation-lab.json", e("status", "done"), "Observation.status", "Observation.status", Error},

		// other types
		{"encounter without class", "encounter.json", e("class", del), "Encounter.class", "Encounter.class", Error},
		{"encounter status", "encounter.json", e("status", "completed"), "Encounter.status", "Encounter.status", Error},
		{"procedure performer without actor", "procedure.json", e("performer[0].actor", del), "Procedure.performer.actor", "Procedure.performer[0].actor", Error},
		{"flag without code", "flag.json", e("code", del), "Flag.code", "Flag.code", Error},
		{"referral intent", "servicerequest.json", e("intent", "referral"), "ServiceRequest.intent", "ServiceRequest.intent", Error},
		{"report without code", "diagnosticreport.json", e("code", del), "DiagnosticReport.code", "DiagnosticReport.code", Error},
		{"specimen status", "specimen.json", e("status", "gone"), "Specimen.status", "Specimen.status", Error},
		{"list warning code", "list.json", e("extension[0].valueCodeableConcept.coding[0].code", "withheld"), "List.extension:listWarningCode.value[x]", "List.extension[0].valueCodeableConcept.coding[0]", Error},
		{"list warning without value", "list.json", e("extension[0]", parse(`{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ListWarningCode","extension":[{"url":"x","valueBoolean":true}]}`)), "List.extension:listWarningCode.value[x]", "List.extension[0].value[x]", Error},
		{"list warning other system", "list.json", e("extension[0].valueCodeableConcept.coding[0].system", "http://example.org/w"), "List.extension:listWarningCode.value[x]", "List.extension[0].valueCodeableConcept", Warning},
		{"list entry without item", "list.json", e("entry[0]", parse(`{"flag":{"coding":[{"system":"http://example.org","code":"x"}]}}`)), "List.entry.item", "List.entry[0].item", Error},
		{"list mode", "list.json", e("mode", "full"), "List.mode", "List.mode", Error},
		{"list empty reason with entries", "list.json", e("emptyReason", parse(`{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/list-empty-reason","code":"nilknown"}]}`)), "lst-1", "List.emptyReason", Error},
		{"list empty reason code", "list-empty.json", e("emptyReason.coding[0].code", "none"), "List.emptyReason", "List.emptyReason.coding[0]", Error},
		{"empty list without reason", "list-empty.json", e("emptyReason", del), "gpgate-list-empty-reason", "List.emptyReason", Warning},
		{"list entry date in snapshot", "list.json", e("entry[0].date", "2024-01-01"), "lst-3", "List.entry[0].date", Error},
		{"consent without scope", "consent.json", e("scope", del), "Consent.scope", "Consent.scope", Error},
		{"consent without policy", "consent.json", e("policyRule", del), "ppc-1", "Consent.policyRule", Error},
		{"consent provision type", "consent.json", e("provision.type", "allow"), "Consent.provision.type", "Consent.provision.type", Error},
		{"audit without source observer", "auditevent.json", e("source", parse(`{"site":"x"}`)), "AuditEvent.source.observer", "AuditEvent.source.observer", Error},
		{"audit agent without requestor", "auditevent.json", e("agent[0].requestor", del), "AuditEvent.agent.requestor", "AuditEvent.agent[0].requestor", Error},
		{"audit outcome", "auditevent.json", e("outcome", "1"), "AuditEvent.outcome", "AuditEvent.outcome", Error},
		{"outcome issue code", "operationoutcome.json", e("issue[0].code", "bad-nhs-number"), "OperationOutcome.issue.code", "OperationOutcome.issue[0].code", Error},
		{"outcome without issue", "operationoutcome.json", e("issue", del), "OperationOutcome.issue", "OperationOutcome.issue", Error},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := parse(string(readGood(t, tc.file))).(obj)
			for _, ed := range tc.edits {
				edit(t, root, ed.path, ed.v)
			}
			raw, err := json.Marshal(root)
			if err != nil {
				t.Fatal(err)
			}
			ps := CheckJSON(raw)
			found := false
			for _, p := range ps {
				if p.Rule == tc.rule && p.Path == tc.path && p.Severity == tc.sev {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s %s at %s, got:\n%s", tc.sev, tc.rule, tc.path, dump(ps))
			}
			// nothing else breaks: a case tests one rule (a deleted element
			// may also break the invariants that mention it).
			for _, p := range ps {
				if p.Rule != tc.rule && p.Severity == Error && !related(tc.rule, p.Rule) {
					t.Errorf("unexpected extra problem: %s", p)
				}
			}
		})
	}
}

// related lists rules that one edit legitimately breaks together.
func related(want, got string) bool {
	pairs := map[string][]string{
		"org-1":                        {"Organization.identifier"},
		"Extension.url":                {"ext-1"},
		"gpgate-profile-type":          {"Flag.status", "Flag.code"},
		"gpgate-nhs-number":            {},
		"Observation.component":        {},
		"ukcore-obs-lab-001":           {},
		"Patient.identifier:nhsNumber": {},
	}
	for _, r := range pairs[want] {
		if strings.HasPrefix(got, r) {
			return true
		}
	}
	return false
}

func readComponent(t *testing.T) string {
	root := parse(string(readGood(t, "observation-bp.json"))).(obj)
	b, _ := json.Marshal(root["component"])
	return string(b)
}

func TestNotJSON(t *testing.T) {
	for _, in := range []string{``, `null`, `[]`, `{}`, `{"resourceType":1}`, `{"resourceType":"Patient"} x`, `"Patient"`} {
		t.Run(in, func(t *testing.T) {
			ps := CheckJSON([]byte(in))
			if len(ps) != 1 || ps[0].Rule != "json" || ps[0].Severity != Error {
				t.Errorf("want one json problem, got %v", ps)
			}
		})
	}
	if ps := Check(nil); !HasErrors(ps) {
		t.Error("Check(nil) must be a problem")
	}
}

// TestNHSNumberNotInMessages: a problem about an NHS number never quotes it.
func TestNHSNumberNotInMessages(t *testing.T) {
	root := parse(string(readGood(t, "patient.json"))).(obj)
	edit(t, root, "identifier[0].value", "9434765918") // bad check digit
	raw, _ := json.Marshal(root)
	ps := CheckJSON(raw)
	if !HasErrors(ps) {
		t.Fatal("want an error")
	}
	for _, p := range ps {
		if strings.Contains(p.String(), "9434765918") {
			t.Errorf("problem quotes the NHS number: %s", p)
		}
	}
}

func TestProfilesListed(t *testing.T) {
	want := []string{fhir.ProfilePatient, fhir.ProfileOrganization, fhir.ProfilePractitioner, fhir.ProfileCondition,
		fhir.ProfileAllergyIntolerance, fhir.ProfileMedicationStatement, fhir.ProfileMedicationRequest, fhir.ProfileMedication,
		fhir.ProfileObservation, fhir.ProfileObservationLab, fhir.ProfileBloodPressure, fhir.ProfileEncounter, fhir.ProfileProcedure,
		fhir.ProfileFlag, fhir.ProfileServiceRequest, fhir.ProfileDiagnosticReport, fhir.ProfileSpecimen, fhir.ProfileImmunization, fhir.ProfileList,
		fhir.ProfileConsent, fhir.ProfileAuditEvent, fhir.ProfileBundle, fhir.ProfileFor("OperationOutcome")}
	got := map[string]bool{}
	for _, u := range Profiles() {
		got[u] = true
	}
	for _, u := range want {
		if !got[u] {
			t.Errorf("profile %s not checked", u)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Profiles() has %d, want %d", len(got), len(want))
	}
	// every type fhir.ProfileFor names has its base rules here
	for _, typ := range []string{"Patient", "Organization", "Practitioner", "Condition", "AllergyIntolerance",
		"MedicationStatement", "MedicationRequest", "Medication", "Observation", "Encounter", "Procedure", "Flag",
		"ServiceRequest", "DiagnosticReport", "Specimen", "Immunization", "List", "Consent", "AuditEvent", "Bundle", "OperationOutcome"} {
		if baseOf[typ] == nil {
			t.Errorf("no base rules for %s", typ)
		}
	}
}
