// Package gpconnect is a gpgate source over GP Connect Access Record:
// Structured 1.6 (FHIR STU3, POST {base}/Patient/$gpc.getstructuredrecord),
// as EMIS Web and TPP SystmOne expose it: live (Client) or over a folder
// of recorded responses (Recorded). Both convert the STU3 structured
// record Bundle to UK Core R4 (Convert) with the rules below; the package
// emulator answers the operation from recorded responses for tests and
// demos.
//
// # Live mode
//
// NewClient(Config{URL, CertFile, KeyFile, CAFile, ODS, FromASID, ToASID,
// ...}) POSTs a Parameters resource to URL + "/Patient/$gpc.getstructuredrecord"
// over HTTPS with gpgate's client certificate, trusting only the CA bundle,
// with the Spine headers Ssp-TraceID (a new UUID), Ssp-From, Ssp-To and
// Ssp-InteractionID (InteractionID), Accept and Content-Type
// application/fhir+json, and the GP Connect JWT as bearer (Token): unsecured
// (alg "none", empty signature, built with jwx), iss, sub, aud = URL, iat,
// exp = iat + 5 minutes, reason_for_request "directcare", requested_scope
// "patient/*.read", requesting_device (Config.Device), requesting_organization
// and requesting_practitioner (a Requester from the context: WithRequester,
// else derived from the fhir.Principal, else Config.Requester; none is an
// error). The parameters come from the areas asked for (SectionsFor):
// allergies (with resolved allergies), medication (with prescription
// issues), problems, investigations and uncategorised data, immunisations,
// consultations and referrals (events), uncategorised data (examination:
// blood pressure); diary entries only when Config.DiaryEntries.
//
// With Config.Groups (FanOut is the default grouping) a fetch fans out:
// one call per group of the sections asked, in parallel, each within
// Config.AreaTimeout. The answers are merged as STU3 and converted once, so
// when every group answers the record is exactly a single call's (tested
// over every shared record); a group that fails or runs out of time is
// left out and each area it holds carries a WarnAreaUnavailable warning
// (a partial answer, clearly marked, not a failure of the whole record).
// An answer about the patient, or another patient's record, from any group
// is the answer for the whole fetch; every group failing is a failure.
//
// The answer must be a structured record for the NHS number asked for; a
// record for another patient (any other NHS number in its Patient, a
// placeholder included) is refused with an internal error whose cause is
// ErrWrongPatient, logged without identifiers. Provider errors map to
// gpgate's coded errors (OutcomeError): PATIENT_NOT_FOUND,
// NO_PATIENT_CONSENT, INVALID_NHS_NUMBER pass through (answers about the
// patient); a refusal of gpgate's own request (INVALID_PARAMETER,
// INVALID_RESOURCE, BAD_REQUEST, ACCESS_DENIED, other 4xx) is
// INTERNAL_SERVER_ERROR with cause ErrRejected (a configuration fault);
// INTERNAL_SERVER_ERROR, 5xx, 429, a transport failure, a missed deadline
// and an answer that is not a record are SERVICE_UNAVAILABLE with cause
// ErrUnavailable (what a circuit breaker counts). Provider diagnostics are
// never passed on.
//
// # Recorded mode
//
// NewRecorded(dir, ods) serves dir/*.json, one structured-record Bundle per
// file, re-scanned on every call (added, changed and removed files take
// effect at once; conversions are cached by file size and modification
// time). A file is bound to a patient by:
//
//   - its Patient's NHS number when that passes Modulus 11 — and a file
//     whose name carries another number (<nhs>_<name>_full_<date>.json,
//     ParseRecordedName) is refused (ErrNHSMismatch);
//   - otherwise the number its name carries (NHS Digital's published
//     records carry the placeholder 1234567890 in the body and the test
//     number in the name), when that passes Modulus 11;
//   - otherwise it is not served (ErrNoNHSNumber).
//
// Two or more files bound to one number are a conflict, settled the same
// way whatever the order of the folder: files whose JSON is identical once
// whitespace is removed are one response recorded twice, served from the
// first file name in byte order; otherwise the single file whose name part
// matches a family name of its own Patient is served; otherwise none is
// (ErrConflict) — a wrong record is worse than no record. Refusals are
// logged with a hash of the file name, never the name (it carries the NHS
// number and surname). Record.Version is a hash of the source bytes.
//
// # Mapping (STU3 -> UK Core R4)
//
// Every resource is built from the source's coded and structural elements
// only, validated and rendered by fhir.Canonicalize, claims its UK Core
// profile (fhir.ProfileFor; ProfileBloodPressure for blood pressure), has
// the id fhir.ResourceID(fhir.PatientID(nhs), local) where local is the
// source id when it is [A-Za-z0-9.-]{1,46}, else a hash of it, and refers
// to the patient as "Patient/<patient id>". A reference is kept only when
// it points at a resource the record emits, of a type the R4 element
// allows; an entry that cannot do without one (a prescription whose drug
// is not emitted) is dropped, and conversion repeats until no entry is
// dropped, so no reference dangles.
//
// Contained resources (providers put ended allergies inside their List)
// are entries like any other, reachable as "#id" (when no other container
// uses the id) and "<container>#id", and carry their container's security
// labels. A second resource reusing the id of an earlier one of its type
// with other content is kept under a derived id. A reference to a
// PractitionerRole (not emitted) means its practitioner, else its
// organisation. Integers out of their R4 range are left out; a dateTime
// whose time has no zone keeps its day; an allergy without a clinical
// status is resolved when ended (end extension or ended-allergies List),
// else active; an untyped relation of an Observation a laboratory report
// reaches is membership.
//
// Codes keep every coding of the source (Read v2, CTV3, SNOMED CT, EMIS and
// dm+d drug codes, LOINC) with system and code, display cleaned; STU3 URLs
// of HL7 code systems become their R4 terminology.hl7.org URLs and
// CareConnect systems their UK Core successors (stu3Systems). A
// CodeableConcept never carries text (only the labels UK Core fixes on the
// blood-pressure components). Free text is never read: narrative, note,
// comment, description, conclusion, patientInstruction, string values,
// text-only reference ranges, List titles and notes, reasons as strings.
// An entry whose code has no coding (an uncoded entry) is dropped; a
// transfer-degraded code is kept as coded. meta.security labels are kept
// (system translated) so the redactor withholds restricted entries.
//
//   - Patient: the NHS number asked for, with UK Core verification status
//     (the provider's for its own number; "02 present but not traced" when
//     the record is served under a number its body does not carry), names,
//     gender, birth date, deceased, addresses and telecoms (no text), the
//     general practitioner and managing organisation.
//   - Organization: valid ODS code, name, telecoms, addresses.
//     Practitioner: SDS user / role profile, GMC, GMP, NMC identifiers,
//     names, gender. PractitionerRole, Location, DocumentReference and
//     List are not emitted.
//   - AllergyIntolerance (current and resolved/ended): clinical and
//     verification status as R4 CodeableConcepts, the end date of an ended
//     allergy as UK Core AllergyIntoleranceEnd on clinicalStatus (its
//     reason is free text), assertedDate -> recordedDate, the associated
//     encounter extension -> encounter, coded reactions.
//   - Condition (ProblemHeader): category problem-list-item, clinical and
//     verification status, onset, abatement (when not active), context ->
//     encounter, asserter; ProblemSignificance, ActualProblem,
//     RelatedClinicalContent and RelatedProblemHeader as their UK Core
//     extensions (links to Lists and documents are dropped); a header
//     without its own code takes its actual problem's.
//   - MedicationStatement, MedicationRequest (intent plan: authorisations;
//     intent order: issues), Medication: status (taken "n" -> not-taken),
//     basedOn, priorPrescription, dosage (text, timing, route, dose — part of
//     the prescription), dispense quantity, validity, expected supply,
//     repeats allowed, UK Core PrescriptionType with courseOfTherapyType
//     (acute, continuous), MedicationRepeatInformation (issued count, expiry),
//     LastIssueDate; substitution defaults to not allowed (UK Core requires it).
//   - Encounter (consultations): status, coded type, participants,
//     period, length, service provider. The consultation List / topic /
//     category structure is navigation and is not emitted. R4 requires a
//     class: a coded home-visit type is HH, a remote one VR, any other coded
//     type AMB, and an uncoded type (EMIS sends only text) v3-NullFlavor UNK.
//   - Observation (uncategorised data, test results, test groups, filing
//     comments, comment notes): status, category (laboratory added to an
//     uncategorised result a non-imaging DiagnosticReport reaches, directly
//     or through test groups), context -> encounter, effective, issued,
//     performer, coded/numeric values and data absent reason, interpretation
//     (a list in R4), reference ranges, specimen, related has-member ->
//     hasMember and derived-from -> derivedFrom, components.
//   - Blood pressure: an Observation whose two components are one systolic
//     and one diastolic pressure (codes in SNOMED CT, Read v2, LOINC), both
//     with a value, status final and an effective time, becomes the UK Core
//     BP Observation: category vital-signs, LOINC 85354-9 + SNOMED 75367002
//     before the original codings, components LOINC 8480-6 / 8462-4 + SNOMED
//     with the fixed labels (fhir.TextSystolicBP), values in mm[Hg]. Any
//     other reading (one value missing) keeps its shape under the base
//     Observation profile.
//   - DiagnosticReport, Specimen: status, category, code, effective, issued,
//     performer, specimens, results, coded diagnoses -> conclusionCode;
//     specimen type (when coded), collection, received time.
//   - Immunization: notGiven -> status not-done (with reasonNotGiven),
//     vaccineCode (v3-NullFlavor UNK when only the procedure is coded),
//     VaccinationProcedure and ParentPresent as UK Core extensions,
//     DateRecorded -> recorded, date -> occurrenceDateTime (a missing date is
//     a data-absent-reason "unknown": R4 requires the occurrence), lot,
//     expiry, site, route, dose, performers, vaccination protocol with a dose
//     number -> protocolApplied.
//   - ReferralRequest -> ServiceRequest (category 3457005 Patient referral):
//     status (suspended -> on-hold, cancelled -> revoked), intent, priority,
//     service requested or type -> code, reasonCode, recipients -> performer,
//     requester agent -> requester, supporting information.
//   - ProcedureRequest -> ServiceRequest. GP Connect sends diary entries
//     with intent plan and test requests (the request an investigation
//     report is based on) with intent order: a ProcedureRequest a
//     DiagnosticReport is based on, with an order intent, or with category
//     SNOMED 108252007 / 363679005 is a test request, category 108252007
//     Laboratory procedure (363679005 Imaging for an imaging report or
//     category), with reasons, performer, requester, specimens and
//     supporting entries; any other is a diary entry (intent plan, no
//     category). Either is dropped when uncoded; notes never leave.
//   - Observation, DiagnosticReport issued: R4 issued is an instant; an
//     issued given only to the day (or without a zone) becomes
//     effectiveDateTime (that day) when the source has no effective[x],
//     and is otherwise left out; the entry stays.
//
// The List warning codes (extension ListWarningCode: confidential-items,
// data-in-transit, data-awaiting-filing) become one fhir.Issue warning per
// code on the Record, naming the dataset areas whose sections carried it;
// unknown codes are ignored. The coded emptyReason of an empty section
// List (GP Connect / UK Core no-content-recorded, base list-empty-reason
// nilknown, withheld, unavailable, ...) becomes one fhir.Issue per area and
// reason (fhir.EmptyNoContentRecorded, fhir.EmptyWithheld, ...), its
// Expression the area name; the section Lists gpgate builds carry it as
// their emptyReason. "Nothing recorded" reasons are left out for an area
// another List has entries in; withheld and unavailable always stand.
// OperationOutcomes inside the Bundle (warnings
// about parameters) are logged. Record.Sharing is left SharingUnknown:
// consent decides it from the coded entries.
package gpconnect
