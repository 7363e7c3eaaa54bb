// Package gp2gp is a gpgate source that serves GP records (EMIS, TPP,
// Vision) from GP2GP HL7v3 EHR Extracts (RCMR_IN030000UK06/UK07), mapped to
// UK Core R4 with the semantics of NHS Digital's GP2GP translator.
//
// # Configuration
//
// A practice of kind gp2gp points at two folders:
//
//   - Dir: the extracts, one *.xml file per patient;
//   - PDSDir: PDS-style R4 Patient resources (*.json, one Patient each),
//     because extracts carry no demographics. A PDS file is matched to an
//     extract by its NHS number identifier; a patient without one gets an
//     identifier-only Patient whose NHS number is marked "not traced".
//
// The NHS number of an extract is recordTarget/patient/id/@extension. Test
// harness extracts carry placeholders there ("Test Harness", "1234567890",
// "{{nhsNumber}}"), so a manifest may bind files to NHS numbers.
//
// # Manifest
//
// The manifest is Dir/manifest.json (or Options.ManifestPath): a JSON object
// whose keys are extract paths — absolute, or relative to the manifest's own
// folder, so they may lie outside Dir — and whose values are NHS numbers
// (Modulus 11 checked):
//
//	{
//	  "PWTP2.xml": "9000000009",
//	  "/srv/gp2gp/incoming/PWTP3.xml": "9000000025"
//	}
//
// The source serves every Dir/*.xml file and every manifest entry. A file
// is bound to the manifest's number, else to its own valid NHS number; a file
// with neither is not listed (and logged). A file whose own valid NHS number
// disagrees with the manifest is refused (ErrNHSMismatch), as is every file
// when two claim the same patient (ErrAmbiguous). WriteManifest writes one.
//
// # gpgate over the shared test data
//
// The shared extracts all carry "Test Harness"; to serve them, write a
// manifest in an empty folder binding the absolute paths of
// ../shared/testdata/gp2gp/extracts/*.xml to PDS sandbox patients in
// ../shared/testdata/pds, and configure the practice with Dir = that folder,
// PDSDir = ../shared/testdata/pds:
//
//	PWTP2.xml  -> 9000000009 (Jane Smith)
//	PWTP3.xml  -> 9000000025
//	PWTP5.xml  -> 9000000033
//	PWTP6.xml  -> 9693632109
//	PWTP10.xml -> 9732110317
//
// # Freshness and caching
//
// Every Record and Patients call re-scans the folders (one stat per file, the
// header of a new or changed extract is read to find its NHS number), so new,
// changed and removed files take effect without a restart. A mapped record is
// cached under the identity (path, size, modification time in nanoseconds) of
// its extract and PDS file and its binding; any change maps it again, once,
// however many requests wait for it. The cache holds one version per file.
//
// # Mapping: a rule for every statement
//
// Every clinical statement of every ehrComposition is served as a UK Core R4
// resource, or withheld with a signal the answer carries; none is dropped
// without a rule (TestCensus checks it statement by statement, with its own
// XML walker, on every shared extract and feature file). Rules apply to
// classes of element, whatever the supplier (EMIS, TPP, Vision) or message
// version (RCMR_IN030000UK06, UK07); element names are read case-insensitively.
//
// Codes. A CodeableConcept keeps the statement's original coding and every
// translation the extract carries (OIDs translated by SystemForOID: Read v2,
// CTV3, SNOMED CT, EMIS local and drug codes, Multilex; others as
// urn:oid:). Where no coding is SNOMED CT (a local EMIS code, a Read code
// without translation) the generic transfer-degraded SNOMED CT concept of the
// kind of entry is added beside it (codes.go): record entry 196411000000103,
// medication 196421000000109, referral 196431000000106, plan 196451000000104,
// drug allergy 196461000000101, non-drug allergy 196471000000108, as NHS
// Digital's translator and GP Connect do. originalText and displayName-only
// codes are never read.
//
// Statement by statement (element: resource):
//
//   - ehrComposition: Encounter (finished; class ambulatory, home or
//     inpatient by its code; period; author and responsible party), except
//     non-consultation containers (196401000000100, 196391000000103) and
//     compositions holding only EhrEmpty. Its statements carry the Encounter.
//   - ObservationStatement: Observation (value PQ/IVL_PQ/CD/INT/BL,
//     interpretation, reference ranges, effective time, performer). Coded
//     as an immunisation procedure (data/immunisations.tsv: SNOMED CT
//     vaccination procedures, Read v2/CTV3 immunisation headings 653, 657,
//     65E, 65M, 65a, 65b, HPV 65F*) and outside a laboratory report:
//     Immunization (below). A problem's named statement is its own resource
//     too, referenced from the Condition.
//   - ObservationStatement/interpretationCode: every HL7 v3
//     ObservationInterpretation code (2.16.840.1.113883.5.83) to R4
//     v3-ObservationInterpretation, retired codes to their successor (H> HU,
//     L< LU, MS I, VS S); the PMIP EDIFACT flags GP2GP carries
//     (2.16.840.1.113883.2.1.6.5) HI H, LO L, OR A, PA to UK Core's
//     ObservationInterpretationCode PA. Another vocabulary is not mapped (the
//     value and reference range still say what the result is).
//   - CompoundStatement coded 14L..00 / SN53.00 (allergy category):
//     structure; each ObservationStatement in it is an AllergyIntolerance
//     (category medication or environment; code the statement's, else its
//     coded value, plus the degraded drug / non-drug allergy concept without
//     SNOMED CT).
//   - CompoundStatement blood-pressure battery (GP Connect's BP header codes)
//     with one systolic and one diastolic reading: one Observation, UK Core
//     blood-pressure profile (LOINC 85354-9, components 8480-6 / 8462-4,
//     mm[Hg]); its original codes are kept beside the LOINC ones.
//   - CompoundStatement CLUSTER coded 16488004 (laboratory reporting):
//     DiagnosticReport (category LAB; the lab's report id, root
//     2.16.840.1.113883.2.1.4.5.5, as identifier) whose results are the test
//     group and result Observations inside it (category laboratory) and whose
//     specimens are the Specimens inside it.
//   - CompoundStatement coded 123038009 (specimen): UK Core Specimen
//     (accessionIdentifier from the specimenRole id carrying an extension,
//     collection.collectedDateTime from its effectiveTime), referenced from
//     its DiagnosticReport and from every result and test group inside it.
//     The material description is free text: not read.
//   - CompoundStatement BATTERY or CLUSTER anywhere else (a test group in a
//     report, a test group directly under a consultation, a template or
//     cluster): grouping Observation with hasMember to the Observations
//     inside it. Without a code of its own it is served with the degraded
//     record entry concept when it has members (the grouping is what is
//     coded about it).
//   - CompoundStatement TOPIC, CATEGORY and uncoded containers: structure;
//     their statements are mapped in their place (GP Connect's consultation
//     Lists are not built).
//   - LinkSet: Condition (problem-list-item): code the named statement's
//     (degraded record entry when it names nothing coded); clinicalStatus
//     active (394774009) or inactive (394775005, with abatement); any other
//     LinkSet code (an unspecified problem) is served active and the record
//     carries a STATUS_DEFAULTED issue whose Expression names the Condition;
//     significance (UK Core ProblemSignificance); the named statement's
//     resource as UK Core ActualProblem; related statements as
//     RelatedClinicalContent.
//   - MedicationStatement / ehrSupplyAuthorise: MedicationRequest intent
//     plan + MedicationStatement; ehrSupplyPrescribe: MedicationRequest intent
//     order (basedOn its plan); ehrSupplyDiscontinue: status stopped with its
//     coded reason. An acute authorisation issued more than once is split
//     into one plan and statement per issue, as the translator does. Drugs
//     become Medication resources (one per distinct coding and
//     confidentiality); a drug without a code is the degraded medication
//     concept (the course, dates, dosage and quantities are what is coded
//     about it). Dosage instructions and quantities are part of the
//     prescription and stay.
//   - RequestStatement: ServiceRequest intent order, category referral
//     (3457005), priority, status; a self referral (qualifier value
//     SelfReferral) is an Observation, as GP Connect has it.
//   - PlanStatement: ServiceRequest intent plan (a recall, review or due
//     date: occurrence from its effectiveTime, authoredOn when recorded), or
//     a Flag when its code is configured as a risk or warning
//     (Options.FlagCodes).
//   - Immunisation (an ObservationStatement as above): UK Core Immunization,
//     status completed; the procedure codes in the UK Core
//     VaccinationProcedure extension (plus the generic immunisation procedure
//     127785005 without SNOMED CT); vaccineCode the null flavour UNK, as UK
//     Core's VaccineCode value set provides when no dm+d product is recorded
//     (GP2GP carries the product only in free text); occurrence the
//     statement's effective time, else its availability time.
//   - NarrativeStatement: free text, never read. Withheld; the record carries
//     UNCODED_ITEMS_WITHHELD. One that refers to an external document is an
//     attachment: withheld; the record carries ATTACHMENTS_WITHHELD.
//   - An ObservationStatement without a code (or without an id), an element
//     the message model does not have: withheld; UNCODED_ITEMS_WITHHELD.
//   - RegistrationStatement: registration history, administrative, outside
//     the dataset. EhrEmpty: nothing.
//
// Confidential entries. NOPAT (confidentialityCode) on a statement, on any
// ancestor up to its composition, or on the statement a problem names makes
// every resource made of it carry the NOPAT security label (meta.security,
// v3-ActCode). They are served to the record so that redaction (package
// consent) withholds them and tells the consumer, in the areas it asked
// for, that confidential items were withheld; the mapper never says which.
// Mapped.Confidential counts them.
//
// Free text (NarrativeStatement, pertinentAnnotation, originalText, text,
// string values, specimen descriptions) is never read.
//
// # Where gpgate differs from the translator
//
// Per dataset area the counts equal NHS Digital's translator output on the
// shared extracts (TestExtractsMatchTranslatorCounts) except:
//
//   - Observations: the translator makes a "Comment note" Observation of
//     every NarrativeStatement (free text, withheld here and signalled), and
//     keeps a blood-pressure triple as three Observations where gpgate
//     serves one UK Core blood-pressure panel.
//   - Medication: gpgate emits one Medication per distinct coding (the
//     translator one per statement).
//   - Consultation structure (topic and category Lists) is not built.
//   - An immunisation is recognised by the code table above (the translator
//     looks codes up in a SNOMED CT release: descendants of vaccination
//     concepts not listed are served as Observations here, not dropped).
//
// # Hostile input
//
// Extracts are parsed with encoding/xml under a size limit, with DOCTYPE and
// entity declarations, non-UTF-8 encodings, foreign namespaces, over-deep
// nesting and oversized attributes rejected. A rejected extract fails only its
// patient's Record, with an INTERNAL_SERVER_ERROR fhir.Error whose Cause
// (for the log) wraps one of the Err* sentinels.
package gp2gp
