package fhir

// Operation is a FHIR operation gpgate serves.
type Operation struct {
	Name       string // without $
	Type       string // resource type it is invoked on
	Instance   bool   // invoked on an instance (Patient/{id}/$name)
	Method     string // GET or POST
	Definition string // canonical of its OperationDefinition
}

// Operations lists the operations gpgate serves; routes and the
// CapabilityStatement are both built from it.
var Operations = []Operation{
	{Name: "everything", Type: "Patient", Instance: true, Method: "GET",
		Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
	{Name: "getstructuredrecord", Type: "Patient", Instance: false, Method: "POST",
		Definition: "https://gpgate.dev/fhir/OperationDefinition/GPGate-GetStructuredRecord"},
}
