package smart

import "github.com/gpgate/gpgate/fhir"

func fhirPrincipal() fhir.Principal {
	return fhir.Principal{ClientID: "c1", ConsumerODS: "A12345", TokenID: "jti-1"}
}
