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
// # Mapping
//
//   - LinkSet -> Condition (problem-list-item): active/inactive from the
//     LinkSet code, significance (UK Core ProblemSignificance), onset and
//     abatement, the named statement's code; related entries become UK Core
//     RelatedClinicalContent references, a named allergy or medication the
//     ActualProblem. A named ObservationStatement is folded into its Condition.
//   - ehrSupplyAuthorise -> MedicationRequest (intent plan) + MedicationStatement;
//     ehrSupplyPrescribe -> MedicationRequest (intent order, basedOn its plan);
//     ehrSupplyDiscontinue -> status stopped; an acute authorisation issued more
//     than once is split into one plan and statement per issue, as the translator
//     does. Drugs become Medication resources (one per distinct coding).
//   - Allergy category compounds (14L..00 drug, SN53.00 non-drug) -> AllergyIntolerance.
//   - Blood-pressure triples -> one Observation (UK Core BP profile, LOINC 85354-9
//     with 8480-6 / 8462-4 components, mm[Hg]); other ObservationStatements ->
//     Observation (value, interpretation, reference ranges); laboratory report
//     clusters (16488004) -> DiagnosticReport with test-group and result Observations.
//   - ehrComposition -> Encounter, except non-consultation containers and empty ones.
//   - RequestStatement -> ServiceRequest (referral); PlanStatement -> Flag only
//     when its code is in Options.FlagCodes (recalls are not risks or warnings).
//
// Codes keep the original coding and every translation the extract carries,
// with OIDs translated to FHIR URIs (SystemForOID). Free text
// (NarrativeStatement, pertinentAnnotation, originalText, text, string values)
// is never read; an uncoded entry is dropped. Entries marked NOPAT are
// withheld and the record carries a confidential-items warning.
//
// # Hostile input
//
// Extracts are parsed with encoding/xml under a size limit, with DOCTYPE and
// entity declarations, non-UTF-8 encodings, foreign namespaces, over-deep
// nesting and oversized attributes rejected. A rejected extract fails only its
// patient's Record, with an INTERNAL_SERVER_ERROR fhir.Error whose Cause
// (for the log) wraps one of the Err* sentinels.
package gp2gp
