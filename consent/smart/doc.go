// Package smart is gpgate's SMART Backend Services authorization server and
// its resource-server token verifier.
//
// Consumer systems are registered clients (ClientStore: id, consumer ODS
// code, JWKS or JWKS URL, allowed scopes, enabled). A client gets an access
// token at POST [base]/auth/token with grant_type=client_credentials and a
// private_key_jwt client assertion, optionally carrying the UDAP
// extensions.hl7-b2b object (clinician, purpose of use, consent reference).
// Access tokens are JWTs (typ at+jwt) signed with gpgate's own key
// (KeyStore; ES384 by default, rotatable, published at [base]/auth/jwks),
// live at most 5 minutes and carry the granted scopes and the hl7-b2b
// claims. A token with patient/ scopes is issued only through a Narrower
// (consent to view) when the assertion names a consent_reference.
//
// The Verifier turns a bearer token into a *fhir.Principal, caching
// verified tokens until they expire. Scope, Permits and Narrow implement
// SMART v1 and v2 (granular) scopes.
//
// Wiring (all paths relative to the FHIR base URL, Options.BaseURL):
//
//	GET  /.well-known/smart-configuration  Server.ConfigurationHandler (or Configuration bytes)
//	POST /auth/token                       Server.TokenHandler
//	POST /auth/introspect                  Server.IntrospectHandler
//	GET  /auth/jwks                        Server.JWKSHandler
//	every FHIR route                       Server.Verifier().Verify / Middleware
package smart
