package consent

// The coded-only allowlist: what of a resource may leave gpgate.
//
// Every element a consumer can receive is listed here, by its R4 path (the
// JSON key of a choice element is written out: Condition.onsetDateTime), with
// its R4 data type. Nothing else leaves: an element, an extension or a
// resource type that is not listed is dropped (or withheld, see below),
// whatever adapter produced it. The lists were drawn up by reading the R4
// resource and data type definitions and the UK Core 2.6.1 profiles
// (../shared/ukcore): the coded and structural elements of each type are
// listed — codes, Codings, statuses, dates and periods, quantities, ranges
// and ratios, references (never their display), identifiers, booleans,
// counts — plus the dosage and quantity of a prescription, the demographics
// of Patient, Organization and Practitioner(Role), and the labels a UK Core
// profile fixes. What is NOT listed is deliberate: narrative (text), note,
// comment, Annotation, Attachment, description, conclusion,
// patientInstruction, value[x] and onset[x] as string, CodeableConcept.text
// (except the fixed labels), Reference.display, HumanName.text,
// Address.text, Meta.source, element ids, contained resources and primitive
// extensions (_element) — except R4's data-absent-reason on a listed
// primitive (its code only: how a source says why a value R4 requires is
// missing, e.g. an immunisation recorded without a date).
//
// A type column is one of
//
//   - an R4 primitive: string, code, id, uri, url, canonical, oid, date,
//     dateTime, instant, time, boolean, decimal, integer, positiveInt,
//     unsignedInt (the value is checked against the R4 format; a string
//     element's text is kept as it is: only a few string elements are
//     listed, each for a reason given beside it);
//   - a data type of datatypeRows (Quantity, CodeableConcept, ...), or one of
//     its R4 profiles that share its elements (SimpleQuantity, Duration, Age,
//     Count, Distance are Quantity);
//   - BackboneElement: its elements are the rows below it;
//   - fixedLabel: a string kept only when it is a label a UK Core profile
//     fixes (fhir.IsProfileFixedText), on a CodeableConcept that has codings;
//   - reference: Reference.reference, dropped when it points into contained
//     resources ("#..."), which never leave;
//   - @Path: the element has the definition of Path (R4 contentReference);
//   - "-": known and never kept; meaningful only with "!" (below).
//
// A trailing "!" marks an element that must survive when present: if the
// input has it and the output would not (it held free text only, or an
// unknown value), the element that holds it is dropped, and for a
// resource's own element the resource is withheld (an uncoded entry, e.g. a
// Condition whose code is text only, or an element R4 requires). The
// primary code of every clinical type is marked so.
//
// Besides the rows, every resource may carry id, meta and language; every
// complex element may carry extensions of extensionTable; a modifierExtension
// (anywhere) or implicitRules withholds the resource, because dropping a
// modifier would change the meaning of what is left.

// row is one allowlisted element: R4 path and type.
type row struct{ Path, Type string }

// datatypeRows are the elements of the R4 data types gpgate keeps.
var datatypeRows = []row{
	{"Coding.system", "uri"},
	{"Coding.version", "string"}, // the code system's version label
	{"Coding.code", "code"},
	{"Coding.display", "string"}, // the code system's display term for the code
	{"Coding.userSelected", "boolean"},

	{"CodeableConcept.coding", "Coding"},
	{"CodeableConcept.text", "fixedLabel"},

	{"Quantity.value", "decimal"},
	{"Quantity.comparator", "code"},
	{"Quantity.unit", "string"}, // the unit as displayed, part of the quantity
	{"Quantity.system", "uri"},
	{"Quantity.code", "code"},

	{"Range.low", "SimpleQuantity"},
	{"Range.high", "SimpleQuantity"},

	{"Ratio.numerator", "Quantity"},
	{"Ratio.denominator", "Quantity"},

	{"Period.start", "dateTime"},
	{"Period.end", "dateTime"},

	{"Reference.reference", "reference"},
	{"Reference.type", "uri"},
	{"Reference.identifier", "Identifier"},

	{"Identifier.use", "code"},
	{"Identifier.type", "CodeableConcept"},
	{"Identifier.system", "uri"},
	{"Identifier.value", "string"}, // the identifier itself (NHS number, ODS code, ...)
	{"Identifier.period", "Period"},
	{"Identifier.assigner", "Reference"},

	// Demographics: names, addresses and contact points of patients,
	// practitioners and organisations (never the free-text rendering, text).
	{"HumanName.use", "code"},
	{"HumanName.family", "string"},
	{"HumanName.given", "string"},
	{"HumanName.prefix", "string"},
	{"HumanName.suffix", "string"},
	{"HumanName.period", "Period"},

	{"Address.use", "code"},
	{"Address.type", "code"},
	{"Address.line", "string"},
	{"Address.city", "string"},
	{"Address.district", "string"},
	{"Address.state", "string"},
	{"Address.postalCode", "string"},
	{"Address.country", "string"},
	{"Address.period", "Period"},

	{"ContactPoint.system", "code"},
	{"ContactPoint.value", "string"}, // the number or address itself
	{"ContactPoint.use", "code"},
	{"ContactPoint.rank", "positiveInt"},
	{"ContactPoint.period", "Period"},

	{"Timing.event", "dateTime"},
	{"Timing.repeat", "BackboneElement"},
	{"Timing.repeat.boundsDuration", "Duration"},
	{"Timing.repeat.boundsRange", "Range"},
	{"Timing.repeat.boundsPeriod", "Period"},
	{"Timing.repeat.count", "positiveInt"},
	{"Timing.repeat.countMax", "positiveInt"},
	{"Timing.repeat.duration", "decimal"},
	{"Timing.repeat.durationMax", "decimal"},
	{"Timing.repeat.durationUnit", "code"},
	{"Timing.repeat.frequency", "positiveInt"},
	{"Timing.repeat.frequencyMax", "positiveInt"},
	{"Timing.repeat.period", "decimal"},
	{"Timing.repeat.periodMax", "decimal"},
	{"Timing.repeat.periodUnit", "code"},
	{"Timing.repeat.dayOfWeek", "code"},
	{"Timing.repeat.timeOfDay", "time"},
	{"Timing.repeat.when", "code"},
	{"Timing.repeat.offset", "unsignedInt"},
	{"Timing.code", "CodeableConcept"},

	// The dosage of a prescription stays whole, its instruction text
	// included (DESIGN.md); patientInstruction is free text and goes.
	{"Dosage.sequence", "integer"},
	{"Dosage.text", "string"},
	{"Dosage.additionalInstruction", "CodeableConcept"},
	{"Dosage.timing", "Timing"},
	{"Dosage.asNeededBoolean", "boolean"},
	{"Dosage.asNeededCodeableConcept", "CodeableConcept"},
	{"Dosage.site", "CodeableConcept"},
	{"Dosage.route", "CodeableConcept"},
	{"Dosage.method", "CodeableConcept"},
	{"Dosage.doseAndRate", "BackboneElement"},
	{"Dosage.doseAndRate.type", "CodeableConcept"},
	{"Dosage.doseAndRate.doseRange", "Range"},
	{"Dosage.doseAndRate.doseQuantity", "SimpleQuantity"},
	{"Dosage.doseAndRate.rateRatio", "Ratio"},
	{"Dosage.doseAndRate.rateRange", "Range"},
	{"Dosage.doseAndRate.rateQuantity", "SimpleQuantity"},
	{"Dosage.maxDosePerPeriod", "Ratio"},
	{"Dosage.maxDosePerAdministration", "SimpleQuantity"},
	{"Dosage.maxDosePerLifetime", "SimpleQuantity"},

	{"Meta.versionId", "id"},
	{"Meta.lastUpdated", "instant"},
	{"Meta.profile", "canonical"},
	{"Meta.security", "Coding"},
	{"Meta.tag", "Coding"},
}

// needRows name, per data type, backbone element or resource, the elements
// of which at least one must be left for it to be kept at all (a resource
// not kept is withheld): a
// CodeableConcept without a coding, a Coding without a code, a Reference
// that points nowhere, a reference range without a bound (R4 obs-3), a
// Condition stage without summary or assessment (con-1), a patient contact
// without any detail (pat-1) are dropped whole.
var needRows = []row{
	{"CodeableConcept", "coding"},
	{"Coding", "code"},
	{"Reference", "reference|identifier"},
	{"Observation.referenceRange", "low|high"},
	{"Condition.stage", "summary|assessment"},
	{"Patient.contact", "name|telecom|address|organization"},
	{"Patient.link", "other"},
	{"Patient.link", "type"},
	{"Observation.component", "code"},
	{"AllergyIntolerance.reaction", "manifestation"},
	{"Immunization.protocolApplied", "doseNumberPositiveInt|doseNumberString"},

	// A resource without an element R4 requires of it (minimum
	// cardinality 1) is not valid R4: whatever the source sent, such an
	// entry is withheld, not sent broken. A required primitive may stand
	// as its data-absent-reason ("_element").
	{"Condition", "subject"},
	{"MedicationStatement", "status"},
	{"MedicationStatement", "medicationCodeableConcept|medicationReference"},
	{"MedicationStatement", "subject"},
	{"MedicationRequest", "status"},
	{"MedicationRequest", "intent"},
	{"MedicationRequest", "medicationCodeableConcept|medicationReference"},
	{"MedicationRequest", "subject"},
	{"AllergyIntolerance", "patient"},
	{"Observation", "status"},
	{"Observation", "code"},
	{"Encounter", "status"},
	{"Encounter", "class"},
	{"Flag", "status"},
	{"Flag", "code"},
	{"Flag", "subject"},
	{"Procedure", "status"},
	{"Procedure", "subject"},
	{"DiagnosticReport", "status"},
	{"DiagnosticReport", "code"},
	{"ServiceRequest", "status"},
	{"ServiceRequest", "intent"},
	{"ServiceRequest", "subject"},
	{"Immunization", "status"},
	{"Immunization", "vaccineCode"},
	{"Immunization", "patient"},
	{"Immunization", "occurrenceDateTime|occurrenceString"},
	{"List", "status"},
	{"List", "mode"},
	{"Consent", "status"},
	{"Consent", "scope"},
	{"Consent", "category"},
}

// resourceRows are the elements of each resource type gpgate serves (the
// types of fhir.AreaTable, and List and Consent, which gpgate builds).
var resourceRows = []row{
	// Demographics.
	{"Patient.identifier", "Identifier"},
	{"Patient.active", "boolean"},
	{"Patient.name", "HumanName"},
	{"Patient.telecom", "ContactPoint"},
	{"Patient.gender", "code"},
	{"Patient.birthDate", "date"},
	{"Patient.deceasedBoolean", "boolean"},
	{"Patient.deceasedDateTime", "dateTime"},
	{"Patient.address", "Address"},
	{"Patient.maritalStatus", "CodeableConcept"},
	{"Patient.multipleBirthBoolean", "boolean"},
	{"Patient.multipleBirthInteger", "integer"},
	{"Patient.contact", "BackboneElement"},
	{"Patient.contact.relationship", "CodeableConcept"},
	{"Patient.contact.name", "HumanName"},
	{"Patient.contact.telecom", "ContactPoint"},
	{"Patient.contact.address", "Address"},
	{"Patient.contact.gender", "code"},
	{"Patient.contact.organization", "Reference"},
	{"Patient.contact.period", "Period"},
	{"Patient.communication", "BackboneElement"},
	{"Patient.communication.language", "CodeableConcept!"},
	{"Patient.communication.preferred", "boolean"},
	{"Patient.generalPractitioner", "Reference"},
	{"Patient.managingOrganization", "Reference"},
	{"Patient.link", "BackboneElement"},
	{"Patient.link.other", "Reference!"},
	{"Patient.link.type", "code!"},

	{"Organization.identifier", "Identifier"},
	{"Organization.active", "boolean"},
	{"Organization.type", "CodeableConcept"},
	{"Organization.name", "string"}, // the organisation's registered name
	{"Organization.telecom", "ContactPoint"},
	{"Organization.address", "Address"},
	{"Organization.partOf", "Reference"},

	{"Practitioner.identifier", "Identifier"},
	{"Practitioner.active", "boolean"},
	{"Practitioner.name", "HumanName"},
	{"Practitioner.telecom", "ContactPoint"},
	{"Practitioner.address", "Address"},
	{"Practitioner.gender", "code"},
	{"Practitioner.birthDate", "date"},
	{"Practitioner.qualification", "BackboneElement"},
	{"Practitioner.qualification.identifier", "Identifier"},
	{"Practitioner.qualification.code", "CodeableConcept!"},
	{"Practitioner.qualification.period", "Period"},
	{"Practitioner.qualification.issuer", "Reference"},
	{"Practitioner.communication", "CodeableConcept"},

	{"PractitionerRole.identifier", "Identifier"},
	{"PractitionerRole.active", "boolean"},
	{"PractitionerRole.period", "Period"},
	{"PractitionerRole.practitioner", "Reference"},
	{"PractitionerRole.organization", "Reference"},
	{"PractitionerRole.code", "CodeableConcept"},
	{"PractitionerRole.specialty", "CodeableConcept"},
	{"PractitionerRole.location", "Reference"},
	{"PractitionerRole.healthcareService", "Reference"},
	{"PractitionerRole.telecom", "ContactPoint"},

	// Problems and diagnoses.
	{"Condition.identifier", "Identifier"},
	{"Condition.clinicalStatus", "CodeableConcept"},
	{"Condition.verificationStatus", "CodeableConcept"},
	{"Condition.category", "CodeableConcept"},
	{"Condition.severity", "CodeableConcept"},
	{"Condition.code", "CodeableConcept!"},
	{"Condition.bodySite", "CodeableConcept"},
	{"Condition.subject", "Reference!"},
	{"Condition.encounter", "Reference"},
	{"Condition.onsetDateTime", "dateTime"},
	{"Condition.onsetAge", "Age"},
	{"Condition.onsetPeriod", "Period"},
	{"Condition.onsetRange", "Range"},
	{"Condition.abatementDateTime", "dateTime"},
	{"Condition.abatementAge", "Age"},
	{"Condition.abatementPeriod", "Period"},
	{"Condition.abatementRange", "Range"},
	{"Condition.recordedDate", "dateTime"},
	{"Condition.recorder", "Reference"},
	{"Condition.asserter", "Reference"},
	{"Condition.stage", "BackboneElement"},
	{"Condition.stage.summary", "CodeableConcept"},
	{"Condition.stage.assessment", "Reference"},
	{"Condition.stage.type", "CodeableConcept"},
	{"Condition.evidence", "BackboneElement"},
	{"Condition.evidence.code", "CodeableConcept"},
	{"Condition.evidence.detail", "Reference"},

	// Medication.
	{"MedicationStatement.identifier", "Identifier"},
	{"MedicationStatement.basedOn", "Reference"},
	{"MedicationStatement.partOf", "Reference"},
	{"MedicationStatement.status", "code!"},
	{"MedicationStatement.statusReason", "CodeableConcept"},
	{"MedicationStatement.category", "CodeableConcept"},
	{"MedicationStatement.medicationCodeableConcept", "CodeableConcept!"},
	{"MedicationStatement.medicationReference", "Reference!"},
	{"MedicationStatement.subject", "Reference!"},
	{"MedicationStatement.context", "Reference"},
	{"MedicationStatement.effectiveDateTime", "dateTime"},
	{"MedicationStatement.effectivePeriod", "Period"},
	{"MedicationStatement.dateAsserted", "dateTime"},
	{"MedicationStatement.informationSource", "Reference"},
	{"MedicationStatement.derivedFrom", "Reference"},
	{"MedicationStatement.reasonCode", "CodeableConcept"},
	{"MedicationStatement.reasonReference", "Reference"},
	{"MedicationStatement.dosage", "Dosage"},

	{"MedicationRequest.identifier", "Identifier"},
	{"MedicationRequest.status", "code!"},
	{"MedicationRequest.statusReason", "CodeableConcept"},
	{"MedicationRequest.intent", "code!"},
	{"MedicationRequest.category", "CodeableConcept"},
	{"MedicationRequest.priority", "code"},
	{"MedicationRequest.doNotPerform", "boolean"},
	{"MedicationRequest.reportedBoolean", "boolean"},
	{"MedicationRequest.reportedReference", "Reference"},
	{"MedicationRequest.medicationCodeableConcept", "CodeableConcept!"},
	{"MedicationRequest.medicationReference", "Reference!"},
	{"MedicationRequest.subject", "Reference!"},
	{"MedicationRequest.encounter", "Reference"},
	{"MedicationRequest.supportingInformation", "Reference"},
	{"MedicationRequest.authoredOn", "dateTime"},
	{"MedicationRequest.requester", "Reference"},
	{"MedicationRequest.performer", "Reference"},
	{"MedicationRequest.performerType", "CodeableConcept"},
	{"MedicationRequest.recorder", "Reference"},
	{"MedicationRequest.reasonCode", "CodeableConcept"},
	{"MedicationRequest.reasonReference", "Reference"},
	{"MedicationRequest.instantiatesCanonical", "canonical"},
	{"MedicationRequest.instantiatesUri", "uri"},
	{"MedicationRequest.basedOn", "Reference"},
	{"MedicationRequest.groupIdentifier", "Identifier"},
	{"MedicationRequest.courseOfTherapyType", "CodeableConcept"},
	{"MedicationRequest.insurance", "Reference"},
	{"MedicationRequest.dosageInstruction", "Dosage"},
	{"MedicationRequest.dispenseRequest", "BackboneElement"},
	{"MedicationRequest.dispenseRequest.initialFill", "BackboneElement"},
	{"MedicationRequest.dispenseRequest.initialFill.quantity", "SimpleQuantity"},
	{"MedicationRequest.dispenseRequest.initialFill.duration", "Duration"},
	{"MedicationRequest.dispenseRequest.dispenseInterval", "Duration"},
	{"MedicationRequest.dispenseRequest.validityPeriod", "Period"},
	{"MedicationRequest.dispenseRequest.numberOfRepeatsAllowed", "unsignedInt"},
	{"MedicationRequest.dispenseRequest.quantity", "SimpleQuantity"},
	{"MedicationRequest.dispenseRequest.expectedSupplyDuration", "Duration"},
	{"MedicationRequest.dispenseRequest.performer", "Reference"},
	{"MedicationRequest.substitution", "BackboneElement!"}, // UK Core requires it
	{"MedicationRequest.substitution.allowedBoolean", "boolean!"},
	{"MedicationRequest.substitution.allowedCodeableConcept", "CodeableConcept!"},
	{"MedicationRequest.substitution.reason", "CodeableConcept"},
	{"MedicationRequest.priorPrescription", "Reference"},
	{"MedicationRequest.detectedIssue", "Reference"},
	{"MedicationRequest.eventHistory", "Reference"},

	{"Medication.identifier", "Identifier"},
	{"Medication.code", "CodeableConcept!"},
	{"Medication.status", "code"},
	{"Medication.manufacturer", "Reference"},
	{"Medication.form", "CodeableConcept"},
	{"Medication.amount", "Ratio"},
	{"Medication.ingredient", "BackboneElement"},
	{"Medication.ingredient.itemCodeableConcept", "CodeableConcept!"},
	{"Medication.ingredient.itemReference", "Reference!"},
	{"Medication.ingredient.isActive", "boolean"},
	{"Medication.ingredient.strength", "Ratio"},
	{"Medication.batch", "BackboneElement"},
	{"Medication.batch.lotNumber", "string"}, // the manufacturer's batch number
	{"Medication.batch.expirationDate", "dateTime"},

	// Allergies and adverse reactions.
	{"AllergyIntolerance.identifier", "Identifier"},
	{"AllergyIntolerance.clinicalStatus", "CodeableConcept"},
	{"AllergyIntolerance.verificationStatus", "CodeableConcept"},
	{"AllergyIntolerance.type", "code"},
	{"AllergyIntolerance.category", "code"},
	{"AllergyIntolerance.criticality", "code"},
	{"AllergyIntolerance.code", "CodeableConcept!"},
	{"AllergyIntolerance.patient", "Reference!"},
	{"AllergyIntolerance.encounter", "Reference"},
	{"AllergyIntolerance.onsetDateTime", "dateTime"},
	{"AllergyIntolerance.onsetAge", "Age"},
	{"AllergyIntolerance.onsetPeriod", "Period"},
	{"AllergyIntolerance.onsetRange", "Range"},
	{"AllergyIntolerance.recordedDate", "dateTime"},
	{"AllergyIntolerance.recorder", "Reference"},
	{"AllergyIntolerance.asserter", "Reference"},
	{"AllergyIntolerance.lastOccurrence", "dateTime"},
	{"AllergyIntolerance.reaction", "BackboneElement"},
	{"AllergyIntolerance.reaction.substance", "CodeableConcept"},
	{"AllergyIntolerance.reaction.manifestation", "CodeableConcept!"},
	{"AllergyIntolerance.reaction.onset", "dateTime"},
	{"AllergyIntolerance.reaction.severity", "code"},
	{"AllergyIntolerance.reaction.exposureRoute", "CodeableConcept"},

	// Risks and warnings.
	{"Flag.identifier", "Identifier"},
	{"Flag.status", "code!"},
	{"Flag.category", "CodeableConcept"},
	{"Flag.code", "CodeableConcept!"},
	{"Flag.subject", "Reference!"},
	{"Flag.period", "Period"},
	{"Flag.encounter", "Reference"},
	{"Flag.author", "Reference"},

	// Procedures.
	{"Procedure.identifier", "Identifier"},
	{"Procedure.instantiatesCanonical", "canonical"},
	{"Procedure.instantiatesUri", "uri"},
	{"Procedure.basedOn", "Reference"},
	{"Procedure.partOf", "Reference"},
	{"Procedure.status", "code!"},
	{"Procedure.statusReason", "CodeableConcept"},
	{"Procedure.category", "CodeableConcept"},
	{"Procedure.code", "CodeableConcept!"},
	{"Procedure.subject", "Reference!"},
	{"Procedure.encounter", "Reference"},
	{"Procedure.performedDateTime", "dateTime"},
	{"Procedure.performedPeriod", "Period"},
	{"Procedure.performedAge", "Age"},
	{"Procedure.performedRange", "Range"},
	{"Procedure.recorder", "Reference"},
	{"Procedure.asserter", "Reference"},
	{"Procedure.performer", "BackboneElement"},
	{"Procedure.performer.function", "CodeableConcept"},
	{"Procedure.performer.actor", "Reference!"},
	{"Procedure.performer.onBehalfOf", "Reference"},
	{"Procedure.location", "Reference"},
	{"Procedure.reasonCode", "CodeableConcept"},
	{"Procedure.reasonReference", "Reference"},
	{"Procedure.bodySite", "CodeableConcept"},
	{"Procedure.outcome", "CodeableConcept"},
	{"Procedure.report", "Reference"},
	{"Procedure.complication", "CodeableConcept"},
	{"Procedure.complicationDetail", "Reference"},
	{"Procedure.followUp", "CodeableConcept"},
	{"Procedure.focalDevice", "BackboneElement"},
	{"Procedure.focalDevice.action", "CodeableConcept"},
	{"Procedure.focalDevice.manipulated", "Reference!"},
	{"Procedure.usedReference", "Reference"},
	{"Procedure.usedCode", "CodeableConcept"},

	// Investigations and examination findings.
	{"Observation.identifier", "Identifier"},
	{"Observation.basedOn", "Reference"},
	{"Observation.partOf", "Reference"},
	{"Observation.status", "code!"},
	{"Observation.category", "CodeableConcept"},
	{"Observation.code", "CodeableConcept!"},
	{"Observation.subject", "Reference"},
	{"Observation.focus", "Reference"},
	{"Observation.encounter", "Reference"},
	{"Observation.effectiveDateTime", "dateTime"},
	{"Observation.effectivePeriod", "Period"},
	{"Observation.effectiveTiming", "Timing"},
	{"Observation.effectiveInstant", "instant"},
	{"Observation.issued", "instant"},
	{"Observation.performer", "Reference"},
	{"Observation.valueQuantity", "Quantity"},
	{"Observation.valueCodeableConcept", "CodeableConcept"},
	{"Observation.valueBoolean", "boolean"},
	{"Observation.valueInteger", "integer"},
	{"Observation.valueRange", "Range"},
	{"Observation.valueRatio", "Ratio"},
	{"Observation.valueTime", "time"},
	{"Observation.valueDateTime", "dateTime"},
	{"Observation.valuePeriod", "Period"},
	{"Observation.dataAbsentReason", "CodeableConcept"},
	{"Observation.interpretation", "CodeableConcept"},
	{"Observation.bodySite", "CodeableConcept"},
	{"Observation.method", "CodeableConcept"},
	{"Observation.specimen", "Reference"},
	{"Observation.device", "Reference"},
	{"Observation.referenceRange", "BackboneElement"},
	{"Observation.referenceRange.low", "SimpleQuantity"},
	{"Observation.referenceRange.high", "SimpleQuantity"},
	{"Observation.referenceRange.type", "CodeableConcept"},
	{"Observation.referenceRange.appliesTo", "CodeableConcept"},
	{"Observation.referenceRange.age", "Range"},
	{"Observation.hasMember", "Reference"},
	{"Observation.derivedFrom", "Reference"},
	{"Observation.component", "BackboneElement"},
	{"Observation.component.code", "CodeableConcept!"},
	{"Observation.component.valueQuantity", "Quantity"},
	{"Observation.component.valueCodeableConcept", "CodeableConcept"},
	{"Observation.component.valueBoolean", "boolean"},
	{"Observation.component.valueInteger", "integer"},
	{"Observation.component.valueRange", "Range"},
	{"Observation.component.valueRatio", "Ratio"},
	{"Observation.component.valueTime", "time"},
	{"Observation.component.valueDateTime", "dateTime"},
	{"Observation.component.valuePeriod", "Period"},
	{"Observation.component.dataAbsentReason", "CodeableConcept"},
	{"Observation.component.interpretation", "CodeableConcept"},
	{"Observation.component.referenceRange", "@Observation.referenceRange"},

	{"DiagnosticReport.identifier", "Identifier"},
	{"DiagnosticReport.basedOn", "Reference"},
	{"DiagnosticReport.status", "code!"},
	{"DiagnosticReport.category", "CodeableConcept"},
	{"DiagnosticReport.code", "CodeableConcept!"},
	{"DiagnosticReport.subject", "Reference"},
	{"DiagnosticReport.encounter", "Reference"},
	{"DiagnosticReport.effectiveDateTime", "dateTime"},
	{"DiagnosticReport.effectivePeriod", "Period"},
	{"DiagnosticReport.issued", "instant"},
	{"DiagnosticReport.performer", "Reference"},
	{"DiagnosticReport.resultsInterpreter", "Reference"},
	{"DiagnosticReport.specimen", "Reference"},
	{"DiagnosticReport.result", "Reference"},
	{"DiagnosticReport.imagingStudy", "Reference"},
	{"DiagnosticReport.media", "BackboneElement"},
	{"DiagnosticReport.media.link", "Reference!"},
	{"DiagnosticReport.conclusionCode", "CodeableConcept"},

	{"Specimen.identifier", "Identifier"},
	{"Specimen.accessionIdentifier", "Identifier"},
	{"Specimen.status", "code"},
	{"Specimen.type", "CodeableConcept"},
	{"Specimen.subject", "Reference"},
	{"Specimen.receivedTime", "dateTime"},
	{"Specimen.parent", "Reference"},
	{"Specimen.request", "Reference"},
	{"Specimen.collection", "BackboneElement"},
	{"Specimen.collection.collector", "Reference"},
	{"Specimen.collection.collectedDateTime", "dateTime"},
	{"Specimen.collection.collectedPeriod", "Period"},
	{"Specimen.collection.duration", "Duration"},
	{"Specimen.collection.quantity", "SimpleQuantity"},
	{"Specimen.collection.method", "CodeableConcept"},
	{"Specimen.collection.bodySite", "CodeableConcept"},
	{"Specimen.collection.fastingStatusCodeableConcept", "CodeableConcept"},
	{"Specimen.collection.fastingStatusDuration", "Duration"},
	{"Specimen.processing", "BackboneElement"},
	{"Specimen.processing.procedure", "CodeableConcept"},
	{"Specimen.processing.additive", "Reference"},
	{"Specimen.processing.timeDateTime", "dateTime"},
	{"Specimen.processing.timePeriod", "Period"},
	{"Specimen.container", "BackboneElement"},
	{"Specimen.container.identifier", "Identifier"},
	{"Specimen.container.type", "CodeableConcept"},
	{"Specimen.container.capacity", "SimpleQuantity"},
	{"Specimen.container.specimenQuantity", "SimpleQuantity"},
	{"Specimen.container.additiveCodeableConcept", "CodeableConcept"},
	{"Specimen.container.additiveReference", "Reference"},
	{"Specimen.condition", "CodeableConcept"},

	// Immunisations.
	{"Immunization.identifier", "Identifier"},
	{"Immunization.status", "code!"},
	{"Immunization.statusReason", "CodeableConcept"},
	{"Immunization.vaccineCode", "CodeableConcept!"},
	{"Immunization.patient", "Reference!"},
	{"Immunization.encounter", "Reference"},
	{"Immunization.occurrenceDateTime", "dateTime!"},
	{"Immunization.occurrenceString", "-!"}, // occurrence[x] is required: text only withholds
	{"Immunization.recorded", "dateTime"},
	{"Immunization.primarySource", "boolean"},
	{"Immunization.reportOrigin", "CodeableConcept"},
	{"Immunization.location", "Reference"},
	{"Immunization.manufacturer", "Reference"},
	{"Immunization.lotNumber", "string"}, // the vaccine's batch number
	{"Immunization.expirationDate", "date"},
	{"Immunization.site", "CodeableConcept"},
	{"Immunization.route", "CodeableConcept"},
	{"Immunization.doseQuantity", "SimpleQuantity"},
	{"Immunization.performer", "BackboneElement"},
	{"Immunization.performer.function", "CodeableConcept"},
	{"Immunization.performer.actor", "Reference!"},
	{"Immunization.reasonCode", "CodeableConcept"},
	{"Immunization.reasonReference", "Reference"},
	{"Immunization.isSubpotent", "boolean"},
	{"Immunization.subpotentReason", "CodeableConcept"},
	{"Immunization.programEligibility", "CodeableConcept"},
	{"Immunization.fundingSource", "CodeableConcept"},
	{"Immunization.reaction", "BackboneElement"},
	{"Immunization.reaction.date", "dateTime"},
	{"Immunization.reaction.detail", "Reference"},
	{"Immunization.reaction.reported", "boolean"},
	{"Immunization.protocolApplied", "BackboneElement"},
	{"Immunization.protocolApplied.authority", "Reference"},
	{"Immunization.protocolApplied.targetDisease", "CodeableConcept"},
	{"Immunization.protocolApplied.doseNumberPositiveInt", "positiveInt!"},
	{"Immunization.protocolApplied.doseNumberString", "-!"}, // doseNumber[x] is required
	{"Immunization.protocolApplied.seriesDosesPositiveInt", "positiveInt"},

	// Encounters, admissions and referrals.
	{"Encounter.identifier", "Identifier"},
	{"Encounter.status", "code!"},
	{"Encounter.statusHistory", "BackboneElement"},
	{"Encounter.statusHistory.status", "code!"},
	{"Encounter.statusHistory.period", "Period!"},
	{"Encounter.class", "Coding!"},
	{"Encounter.classHistory", "BackboneElement"},
	{"Encounter.classHistory.class", "Coding!"},
	{"Encounter.classHistory.period", "Period!"},
	{"Encounter.type", "CodeableConcept"},
	{"Encounter.serviceType", "CodeableConcept"},
	{"Encounter.priority", "CodeableConcept"},
	{"Encounter.subject", "Reference"},
	{"Encounter.episodeOfCare", "Reference"},
	{"Encounter.basedOn", "Reference"},
	{"Encounter.participant", "BackboneElement"},
	{"Encounter.participant.type", "CodeableConcept"},
	{"Encounter.participant.period", "Period"},
	{"Encounter.participant.individual", "Reference"},
	{"Encounter.appointment", "Reference"},
	{"Encounter.period", "Period"},
	{"Encounter.length", "Duration"},
	{"Encounter.reasonCode", "CodeableConcept"},
	{"Encounter.reasonReference", "Reference"},
	{"Encounter.diagnosis", "BackboneElement"},
	{"Encounter.diagnosis.condition", "Reference!"},
	{"Encounter.diagnosis.use", "CodeableConcept"},
	{"Encounter.diagnosis.rank", "positiveInt"},
	{"Encounter.account", "Reference"},
	{"Encounter.hospitalization", "BackboneElement"},
	{"Encounter.hospitalization.preAdmissionIdentifier", "Identifier"},
	{"Encounter.hospitalization.origin", "Reference"},
	{"Encounter.hospitalization.admitSource", "CodeableConcept"},
	{"Encounter.hospitalization.reAdmission", "CodeableConcept"},
	{"Encounter.hospitalization.dietPreference", "CodeableConcept"},
	{"Encounter.hospitalization.specialCourtesy", "CodeableConcept"},
	{"Encounter.hospitalization.specialArrangement", "CodeableConcept"},
	{"Encounter.hospitalization.destination", "Reference"},
	{"Encounter.hospitalization.dischargeDisposition", "CodeableConcept"},
	{"Encounter.location", "BackboneElement"},
	{"Encounter.location.location", "Reference!"},
	{"Encounter.location.status", "code"},
	{"Encounter.location.physicalType", "CodeableConcept"},
	{"Encounter.location.period", "Period"},
	{"Encounter.serviceProvider", "Reference"},
	{"Encounter.partOf", "Reference"},

	{"ServiceRequest.identifier", "Identifier"},
	{"ServiceRequest.instantiatesCanonical", "canonical"},
	{"ServiceRequest.instantiatesUri", "uri"},
	{"ServiceRequest.basedOn", "Reference"},
	{"ServiceRequest.replaces", "Reference"},
	{"ServiceRequest.requisition", "Identifier"},
	{"ServiceRequest.status", "code!"},
	{"ServiceRequest.intent", "code!"},
	{"ServiceRequest.category", "CodeableConcept"},
	{"ServiceRequest.priority", "code"},
	{"ServiceRequest.doNotPerform", "boolean"},
	{"ServiceRequest.code", "CodeableConcept!"},
	{"ServiceRequest.orderDetail", "CodeableConcept"},
	{"ServiceRequest.quantityQuantity", "Quantity"},
	{"ServiceRequest.quantityRatio", "Ratio"},
	{"ServiceRequest.quantityRange", "Range"},
	{"ServiceRequest.subject", "Reference!"},
	{"ServiceRequest.encounter", "Reference"},
	{"ServiceRequest.occurrenceDateTime", "dateTime"},
	{"ServiceRequest.occurrencePeriod", "Period"},
	{"ServiceRequest.occurrenceTiming", "Timing"},
	{"ServiceRequest.asNeededBoolean", "boolean"},
	{"ServiceRequest.asNeededCodeableConcept", "CodeableConcept"},
	{"ServiceRequest.authoredOn", "dateTime"},
	{"ServiceRequest.requester", "Reference"},
	{"ServiceRequest.performerType", "CodeableConcept"},
	{"ServiceRequest.performer", "Reference"},
	{"ServiceRequest.locationCode", "CodeableConcept"},
	{"ServiceRequest.locationReference", "Reference"},
	{"ServiceRequest.reasonCode", "CodeableConcept"},
	{"ServiceRequest.reasonReference", "Reference"},
	{"ServiceRequest.insurance", "Reference"},
	{"ServiceRequest.supportingInfo", "Reference"},
	{"ServiceRequest.specimen", "Reference"},
	{"ServiceRequest.bodySite", "CodeableConcept"},
	{"ServiceRequest.relevantHistory", "Reference"},

	// Built by gpgate itself; listed so that they too leave coded only if
	// they are ever redacted.
	{"List.identifier", "Identifier"},
	{"List.status", "code!"},
	{"List.mode", "code!"},
	{"List.code", "CodeableConcept"},
	{"List.subject", "Reference"},
	{"List.encounter", "Reference"},
	{"List.date", "dateTime"},
	{"List.source", "Reference"},
	{"List.orderedBy", "CodeableConcept"},
	{"List.entry", "BackboneElement"},
	{"List.entry.flag", "CodeableConcept"},
	{"List.entry.deleted", "boolean"},
	{"List.entry.date", "dateTime"},
	{"List.entry.item", "Reference!"},
	{"List.emptyReason", "CodeableConcept"},

	{"Consent.identifier", "Identifier"},
	{"Consent.status", "code!"},
	{"Consent.scope", "CodeableConcept!"},
	{"Consent.category", "CodeableConcept!"},
	{"Consent.patient", "Reference"},
	{"Consent.dateTime", "dateTime"},
	{"Consent.performer", "Reference"},
	{"Consent.organization", "Reference"},
	{"Consent.sourceReference", "Reference"},
	{"Consent.policy", "BackboneElement"},
	{"Consent.policy.authority", "uri"},
	{"Consent.policy.uri", "uri"},
	{"Consent.policyRule", "CodeableConcept"},
	{"Consent.verification", "BackboneElement"},
	{"Consent.verification.verified", "boolean!"},
	{"Consent.verification.verifiedWith", "Reference"},
	{"Consent.verification.verificationDate", "dateTime"},
	{"Consent.provision", "BackboneElement"},
	{"Consent.provision.type", "code"},
	{"Consent.provision.period", "Period"},
	{"Consent.provision.actor", "BackboneElement"},
	{"Consent.provision.actor.role", "CodeableConcept!"},
	{"Consent.provision.actor.reference", "Reference!"},
	{"Consent.provision.action", "CodeableConcept"},
	{"Consent.provision.securityLabel", "Coding"},
	{"Consent.provision.purpose", "Coding"},
	{"Consent.provision.class", "Coding"},
	{"Consent.provision.code", "CodeableConcept"},
	{"Consent.provision.dataPeriod", "Period"},
	{"Consent.provision.data", "BackboneElement"},
	{"Consent.provision.data.meaning", "code!"},
	{"Consent.provision.data.reference", "Reference!"},
	{"Consent.provision.provision", "@Consent.provision"},
}

// ExtensionDef is one extension gpgate lets through: its URL, the value
// types it may carry (from its definition), or its sub-extensions when it is
// complex, and the resource types it may appear in.
type ExtensionDef struct {
	URL string
	// Value lists the value[x] types kept (JSON key "value"+type). A value
	// of another type (a string where the definition also allows one) is
	// dropped.
	Value []string
	// Also lists value types accepted beyond the UK Core 2.6.1 definition:
	// the forms PDS and earlier UK Core versions use for the same extension.
	Also []string
	// Sub are the sub-extensions of a complex extension (URL relative).
	Sub []ExtensionDef
	// In lists the resource types the extension may appear in; empty: any.
	In []string
}

const (
	ukExt  = "https://fhir.hl7.org.uk/StructureDefinition/"
	pdsExt = "https://fhir.nhs.uk/StructureDefinition/"
)

// extensionTable are the extensions that leave gpgate: the UK Core
// extensions its adapters emit (adapters/gp2gp, adapters/embedded/demo),
// those of PDS demographics it accepts, and the coded UK Core extensions of
// the resource types it serves. Free-text parts are left out (ContactPreference
// times as string, AllergyIntoleranceEnd.reasonEnded,
// MedicationChangeSummary.detailsOfAmendment, EncounterTransport's reason,
// CodingSCTDescId.descriptionDisplay, DiagnosticReportNote), and so are
// extensions that say more than the record needs to (ReligiousAffiliation).
var extensionTable = []ExtensionDef{
	// Patient demographics (UK Core, and PDS's Patient).
	{URL: ukExt + "Extension-UKCore-NHSNumberVerificationStatus", Value: []string{"CodeableConcept"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-NHSNumberUnavailableReason", Value: []string{"CodeableConcept"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-EthnicCategory", Value: []string{"CodeableConcept"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-BirthSex", Value: []string{"CodeableConcept"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-ResidentialStatus", Value: []string{"CodeableConcept"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-DeathNotificationStatus", In: []string{"Patient"}, Sub: []ExtensionDef{
		{URL: "deathNotificationStatus", Value: []string{"CodeableConcept"}},
		{URL: "systemEffectiveDate", Value: []string{"dateTime"}},
	}},
	{URL: ukExt + "Extension-UKCore-NHSCommunication", In: []string{"Patient", "Practitioner"}, Sub: []ExtensionDef{
		{URL: "language", Value: []string{"CodeableConcept"}},
		{URL: "preferred", Value: []string{"boolean"}},
		{URL: "modeOfCommunication", Value: []string{"CodeableConcept"}},
		{URL: "communicationProficiency", Value: []string{"CodeableConcept"}},
		{URL: "interpreterRequired", Value: []string{"boolean"}},
	}},
	{URL: ukExt + "Extension-UKCore-ContactPreference", In: []string{"Patient"}, Sub: []ExtensionDef{
		{URL: "PreferredContactMethod", Value: []string{"CodeableConcept"}},
		{URL: "PreferredContactTimes", Value: []string{"Timing"}}, // not the string form
		{URL: "PreferredWrittenCommunicationFormat", Value: []string{"CodeableConcept"}},
	}},
	{URL: ukExt + "Extension-UKCore-NominatedPharmacy", Value: []string{"Reference"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-PreferredDispenserOrganization", Value: []string{"Reference"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-MedicalApplianceSupplier", Value: []string{"Reference"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-ContactRank", Value: []string{"positiveInt"}, In: []string{"Patient"}},
	{URL: ukExt + "Extension-UKCore-CopyCorrespondenceIndicator", Value: []string{"boolean"}, In: []string{"Patient"}},
	// AddressKey: a PAF or UPRN key of the address (an identifier).
	{URL: ukExt + "Extension-UKCore-AddressKey", Sub: []ExtensionDef{
		{URL: "type", Value: []string{"CodeableConcept"}, Also: []string{"Coding"}}, // PDS: valueCoding
		{URL: "value", Value: []string{"string"}},
	}},
	{URL: ukExt + "Extension-UKCore-OtherContactSystem", Value: []string{"CodeableConcept"}, Also: []string{"Coding"}}, // PDS: valueCoding
	// PDS (not UK Core): the patient's removal from a practice's list.
	{URL: pdsExt + "Extension-PDS-RemovalFromRegistration", In: []string{"Patient"}, Sub: []ExtensionDef{
		{URL: "removalFromRegistrationCode", Value: []string{"CodeableConcept"}},
		{URL: "effectiveTime", Value: []string{"Period"}},
	}},
	// R4 core (PDS uses it): place of birth, as an address.
	{URL: "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", Value: []string{"Address"}, In: []string{"Patient"}},

	// Coding: the SNOMED CT description id (never its display).
	{URL: ukExt + "Extension-UKCore-CodingSCTDescId", Sub: []ExtensionDef{
		{URL: "descriptionId", Value: []string{"Identifier"}, Also: []string{"id"}}, // GP Connect: valueId
	}},

	// Problems (adapters/gp2gp emits these three).
	{URL: ukExt + "Extension-UKCore-ProblemSignificance", Value: []string{"code"}, In: []string{"Condition"}},
	{URL: ukExt + "Extension-UKCore-ActualProblem", Value: []string{"Reference"}, In: []string{"Condition"}},
	{URL: ukExt + "Extension-UKCore-RelatedClinicalContent", Value: []string{"Reference"}, In: []string{"Condition"}},
	{URL: ukExt + "Extension-UKCore-ConditionEpisode", Value: []string{"CodeableConcept"}, In: []string{"Condition"}},
	{URL: ukExt + "Extension-UKCore-RelatedProblemHeader", In: []string{"Condition", "List"}, Sub: []ExtensionDef{
		{URL: "type", Value: []string{"code"}},
		{URL: "target", Value: []string{"Reference"}},
	}},

	// Allergies.
	{URL: ukExt + "Extension-UKCore-AllergyIntoleranceEnd", In: []string{"AllergyIntolerance"}, Sub: []ExtensionDef{
		{URL: "endDate", Value: []string{"dateTime"}},
	}},
	{URL: ukExt + "Extension-UKCore-Evidence", Value: []string{"Reference"}, In: []string{"AllergyIntolerance"}},

	// Medication: part of the prescription.
	{URL: ukExt + "Extension-UKCore-MedicationRepeatInformation", In: []string{"MedicationRequest"}, Sub: []ExtensionDef{
		{URL: "numberOfPrescriptionsIssued", Value: []string{"unsignedInt"}},
		{URL: "authorisationExpiryDate", Value: []string{"dateTime"}},
	}},
	{URL: ukExt + "Extension-UKCore-PrescriptionType", Value: []string{"CodeableConcept"}, In: []string{"MedicationRequest"}},
	// The prescribed quantity as the prescriber wrote it: part of the
	// prescription's quantity, kept like Dosage.text (DESIGN.md).
	{URL: ukExt + "Extension-UKCore-MedicationQuantityText", Value: []string{"string"}, In: []string{"MedicationRequest"}},
	{URL: ukExt + "Extension-UKCore-MedicationStatementLastIssueDate", Value: []string{"dateTime"}, In: []string{"MedicationStatement"}},
	{URL: ukExt + "Extension-UKCore-MedicationDosageLastChanged", Value: []string{"dateTime"}, In: []string{"MedicationStatement"}},
	{URL: ukExt + "Extension-UKCore-MedicationPrescribingOrganizationType", Value: []string{"CodeableConcept"}, In: []string{"MedicationStatement"}},
	{URL: ukExt + "Extension-UKCore-MedicationChangeSummary", In: []string{"MedicationStatement"}, Sub: []ExtensionDef{
		{URL: "status", Value: []string{"Coding"}},
		{URL: "indicationForChange", Value: []string{"CodeableConcept"}},
		{URL: "dateChanged", Value: []string{"dateTime"}},
	}},
	{URL: ukExt + "Extension-UKCore-PharmacistVerifiedIndicator", Value: []string{"boolean"}, In: []string{"MedicationStatement"}},
	{URL: ukExt + "Extension-UKCore-MedicationTradeFamily", Value: []string{"CodeableConcept"}, In: []string{"Medication"}},

	// Immunisations.
	{URL: ukExt + "Extension-UKCore-VaccinationProcedure", Value: []string{"CodeableConcept"}, In: []string{"Immunization"}},
	{URL: ukExt + "Extension-UKCore-ParentPresent", Value: []string{"boolean"}, In: []string{"Immunization"}},

	// Investigations.
	{URL: ukExt + "Extension-UKCore-SampleCategory", Value: []string{"CodeableConcept"}, In: []string{"Specimen"}},

	// Encounters and referrals.
	{URL: ukExt + "Extension-UKCore-AdmissionMethod", Value: []string{"CodeableConcept"}, In: []string{"Encounter"}},
	{URL: ukExt + "Extension-UKCore-DischargeMethod", Value: []string{"CodeableConcept"}, In: []string{"Encounter"}},
	{URL: ukExt + "Extension-UKCore-OutcomeOfAttendance", Value: []string{"CodeableConcept"}, In: []string{"Encounter"}},
	{URL: ukExt + "Extension-UKCore-EmergencyCareDischargeStatus", Value: []string{"CodeableConcept"}, In: []string{"Encounter"}},
	{URL: ukExt + "Extension-UKCore-SourceOfServiceRequest", Value: []string{"CodeableConcept"}, In: []string{"ServiceRequest"}},
	{URL: ukExt + "Extension-UKCore-ServiceRequestMethod", Value: []string{"CodeableConcept"}, In: []string{"ServiceRequest"}},
	{URL: ukExt + "Extension-UKCore-PriorityReason", Value: []string{"CodeableConcept"}, In: []string{"ServiceRequest"}},

	// Lists gpgate builds: the withheld-items warning.
	{URL: ukExt + "Extension-UKCore-ListWarningCode", Value: []string{"CodeableConcept"}, In: []string{"List"}},
}
