package fhir

// Operation is a FHIR operation gpgate serves.
type Operation struct {
	Name     string // without $
	Type     string // resource type it is invoked on
	Instance bool   // invoked on an instance (Patient/{id}/$name)
	Method   string // GET or POST
	// Definition is the canonical of gpgate's OperationDefinition for the
	// operation, relative to the server's base URL: every deployment serves
	// its own copy there (GET {base}/{Definition}), so the
	// CapabilityStatement names a definition a client can fetch and that
	// declares exactly the parameters this server honours.
	Definition string
}

// Operations lists the operations gpgate serves; routes and the
// CapabilityStatement are both built from it.
var Operations = []Operation{
	{Name: "everything", Type: "Patient", Instance: true, Method: "GET",
		Definition: "OperationDefinition/Patient-everything"}, // derived from HL7's Patient-everything
	{Name: "getstructuredrecord", Type: "Patient", Instance: false, Method: "POST",
		Definition: "OperationDefinition/Patient-getstructuredrecord"},
}
