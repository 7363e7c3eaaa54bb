package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

type ooJSON struct {
	ResourceType string `json:"resourceType"`
	Meta         struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Issue []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Details  struct {
			Coding []struct {
				System, Code, Display string
			} `json:"coding"`
		} `json:"details"`
		Diagnostics *string  `json:"diagnostics"`
		Expression  []string `json:"expression"`
	} `json:"issue"`
}

// parseOO checks raw is R4 (jsonformat validation) and decodes it.
func parseOO(t *testing.T, raw []byte) ooJSON {
	t.Helper()
	if _, err := Parse(raw); err != nil {
		t.Fatalf("OperationOutcome is not valid R4: %v\n%s", err, raw)
	}
	var oo ooJSON
	if err := json.Unmarshal(raw, &oo); err != nil {
		t.Fatal(err)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Meta.Profile) != 1 || oo.Meta.Profile[0] != ProfileOperationOutcome {
		t.Fatalf("not a UK Core OperationOutcome: %s", raw)
	}
	return oo
}

// TestErrorCodes pins every code's status and issue type, and checks the table
// here covers every code the package declares.
func TestErrorCodes(t *testing.T) {
	want := map[Code]struct {
		status int
		issue  string
	}{
		CodeBadRequest:            {400, "invalid"},
		CodeInvalidNHSNumber:      {400, "value"},
		CodeInvalidParameter:      {422, "invalid"},
		CodeInvalidResource:       {422, "invalid"},
		CodeInvalidIdentifier:     {400, "value"},
		CodePatientNotFound:       {404, "not-found"},
		CodeNoRecordFound:         {404, "not-found"},
		CodeReferenceNotFound:     {404, "not-found"},
		CodeUnknownResourceType:   {404, "not-supported"},
		CodeAccessDenied:          {403, "forbidden"},
		CodeNoPatientConsent:      {403, "forbidden"},
		CodeNoOrganisationConsent: {403, "forbidden"},
		CodeUnauthorized:          {401, "login"},
		CodeMethodNotAllowed:      {405, "not-supported"},
		CodeNotAcceptable:         {406, "not-supported"},
		CodeUnsupportedMediaType:  {415, "not-supported"},
		CodeBodyTooLarge:          {413, "too-costly"},
		CodeTimeout:               {503, "timeout"},
		CodeNotImplemented:        {501, "not-supported"},
		CodeTooManyRequests:       {429, "throttled"},
		CodeInternal:              {500, "exception"},
	}
	if len(want) != len(codes) {
		t.Errorf("this test knows %d codes, the package declares %d", len(want), len(codes))
	}
	for code := range codes {
		if _, ok := want[code]; !ok {
			t.Errorf("code %s has no expectation here", code)
		}
	}
	for _, name := range sortedKeys(codesByName()) {
		code := Code(name)
		w := want[code]
		t.Run(name, func(t *testing.T) {
			e := Errorf(code, "the %s went %d ways", "parameter", 2).At("Condition.code")
			if e.Status() != w.status {
				t.Errorf("Status() = %d, want %d", e.Status(), w.status)
			}
			oo := parseOO(t, e.OperationOutcome())
			if len(oo.Issue) != 1 {
				t.Fatalf("issues = %+v", oo.Issue)
			}
			is := oo.Issue[0]
			if is.Severity != "error" || is.Code != w.issue {
				t.Errorf("severity/code = %s/%s, want error/%s", is.Severity, is.Code, w.issue)
			}
			if len(is.Details.Coding) != 1 {
				t.Fatalf("details = %+v", is.Details)
			}
			c := is.Details.Coding[0]
			if c.System != SpineErrorSystem || c.Code != string(code) || c.Display == "" {
				t.Errorf("details coding = %+v", c)
			}
			if len(is.Expression) != 1 || is.Expression[0] != "Condition.code" {
				t.Errorf("expression = %q", is.Expression)
			}
			if code == CodeInternal {
				if is.Diagnostics != nil {
					t.Errorf("INTERNAL_SERVER_ERROR carries diagnostics %q", *is.Diagnostics)
				}
			} else if is.Diagnostics == nil || *is.Diagnostics != "the parameter went 2 ways" {
				t.Errorf("diagnostics = %v", is.Diagnostics)
			}
			if s := e.Error(); !strings.HasPrefix(s, name+": ") {
				t.Errorf("Error() = %q", s)
			}
			// A coded error passes through AsError unchanged, wrapped or not.
			if AsError(e) != e || AsError(fmt.Errorf("handler: %w", e)) != e {
				t.Error("AsError did not return the coded error")
			}
		})
	}
}

func codesByName() map[string]codeInfo {
	m := make(map[string]codeInfo, len(codes))
	for c, ci := range codes {
		m[string(c)] = ci
	}
	return m
}

func TestInternalNeverLeaks(t *testing.T) {
	secret := "open /var/lib/gpgate/9434765919.db: permission denied"
	tests := []struct {
		name string
		err  *Error
	}{
		{"Internal(cause)", Internal(errors.New(secret))},
		{"INTERNAL with diagnostics", &Error{Code: CodeInternal, Diagnostics: secret, Cause: errors.New(secret)}},
		{"unknown code", &Error{Code: "SOMETHING_NEW", Diagnostics: secret, Cause: errors.New(secret)}},
		{"AsError(plain)", AsError(errors.New(secret))},
		{"AsError(wrapped plain)", AsError(fmt.Errorf("adapter: %w", errors.New(secret)))},
		{"AsError(unknown code)", AsError(&Error{Code: "NOPE", Diagnostics: secret})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Status() != 500 {
				t.Errorf("status = %d, want 500", tc.err.Status())
			}
			raw := tc.err.OperationOutcome()
			if strings.Contains(string(raw), "9434765919") || strings.Contains(string(raw), "permission") {
				t.Fatalf("OperationOutcome leaks the cause: %s", raw)
			}
			oo := parseOO(t, raw)
			if len(oo.Issue) != 1 || oo.Issue[0].Diagnostics != nil || oo.Issue[0].Severity != "error" {
				t.Errorf("issue = %+v", oo.Issue)
			}
			// The log line keeps the detail.
			if !strings.Contains(tc.err.Error(), "permission denied") {
				t.Errorf("Error() lost the cause: %q", tc.err.Error())
			}
		})
	}
}

func TestAsError(t *testing.T) {
	plain := errors.New("boom")
	e := AsError(plain)
	if e.Code != CodeInternal || e.Status() != 500 || e.Cause != plain || e.Diagnostics != "" {
		t.Errorf("AsError(plain) = %#v", e)
	}
	if !errors.Is(e, plain) {
		t.Error("the cause is not reachable with errors.Is")
	}
	if !errors.Is(AsError(fmt.Errorf("x: %w", io.EOF)), io.EOF) {
		t.Error("wrapped cause lost")
	}
	unknown := &Error{Code: "NOPE", Diagnostics: "d"}
	if got := AsError(unknown); got.Code != CodeInternal || !errors.Is(got, unknown) {
		t.Errorf("AsError(unknown code) = %#v", got)
	}
	coded := Errorf(CodePatientNotFound, "no patient")
	if AsError(coded) != coded || AsError(coded).Status() != 404 {
		t.Error("coded error not passed through")
	}
	// Error() with and without a cause.
	if s := coded.Error(); s != "PATIENT_NOT_FOUND: no patient" {
		t.Errorf("Error() = %q", s)
	}
	if s := Internal(plain).Error(); s != "INTERNAL_SERVER_ERROR: : boom" {
		t.Errorf("Error() = %q", s)
	}
}

func TestWarningsRender(t *testing.T) {
	want := map[Code]struct{ issue, system string }{
		WarnConfidentialItems:   {"suppressed", ListWarningCodeSystem},
		WarnDataInTransit:       {"incomplete", ListWarningCodeSystem},
		WarnDataAwaitingFiling:  {"incomplete", ListWarningCodeSystem},
		WarnAreaUnavailable:     {"incomplete", SpineErrorSystem},
		WarnUnknownParamIgnored: {"informational", SpineErrorSystem},
		WarnUncodedItems:        {"suppressed", SpineErrorSystem},
		WarnAttachmentsWithheld: {"suppressed", SpineErrorSystem},
		WarnStatusDefaulted:     {"informational", SpineErrorSystem},
		EmptyNoContentRecorded:  {"informational", UKCoreListEmptyReasonSystem},
		EmptyNilKnown:           {"informational", ListEmptyReasonSystem},
		EmptyNotAsked:           {"informational", ListEmptyReasonSystem},
		EmptyNotStarted:         {"informational", ListEmptyReasonSystem},
		EmptyClosed:             {"informational", ListEmptyReasonSystem},
		EmptyWithheld:           {"suppressed", ListEmptyReasonSystem},
		EmptyUnavailable:        {"incomplete", ListEmptyReasonSystem},
	}
	if len(want) != len(warnings) {
		t.Errorf("this test knows %d warnings, the package declares %d", len(want), len(warnings))
	}
	var all []Issue
	for _, name := range sortedKeys(warningsByName()) {
		code := Code(name)
		w, ok := want[code]
		if !ok {
			t.Errorf("warning %s has no expectation here", code)
			continue
		}
		t.Run(name, func(t *testing.T) {
			if WarningSystem(code) != w.system {
				t.Errorf("WarningSystem = %s, want %s", WarningSystem(code), w.system)
			}
			is := Issue{Severity: "warning", Code: code, Diagnostics: "2 items withheld", Expression: "Condition"}
			all = append(all, is)
			oo := parseOO(t, OperationOutcome(is))
			if len(oo.Issue) != 1 {
				t.Fatalf("issues = %+v", oo.Issue)
			}
			got := oo.Issue[0]
			if got.Severity != "warning" || got.Code != w.issue {
				t.Errorf("severity/code = %s/%s, want warning/%s", got.Severity, got.Code, w.issue)
			}
			if c := got.Details.Coding; len(c) != 1 || c[0].System != w.system || c[0].Code != name || c[0].Display == "" {
				t.Errorf("details = %+v", got.Details)
			}
			if got.Diagnostics == nil || *got.Diagnostics != "2 items withheld" || len(got.Expression) != 1 {
				t.Errorf("diagnostics/expression = %v/%q", got.Diagnostics, got.Expression)
			}
		})
	}
	// Several issues, mixing an error, warnings and an undeclared code, in one outcome.
	all = append(all, Issue{Severity: "error", Code: CodeAccessDenied}, Issue{Severity: "information", Code: "SOMETHING_ELSE"})
	oo := parseOO(t, OperationOutcome(all...))
	if len(oo.Issue) != len(all) {
		t.Fatalf("%d issues, want %d", len(oo.Issue), len(all))
	}
	last := oo.Issue[len(oo.Issue)-1]
	if last.Code != "informational" || last.Details.Coding[0].System != SpineErrorSystem || last.Diagnostics != nil || last.Expression != nil {
		t.Errorf("undeclared code rendered as %+v", last)
	}
	if oo.Issue[len(oo.Issue)-2].Code != "forbidden" {
		t.Errorf("error issue rendered as %+v", oo.Issue[len(oo.Issue)-2])
	}
}

func warningsByName() map[string]bool {
	m := make(map[string]bool, len(warnings))
	for c := range warnings {
		m[string(c)] = true
	}
	return m
}

// TestOperationOutcomeEscapes checks caller-supplied text cannot break out of
// the JSON (diagnostics may quote a parameter name).
func TestOperationOutcomeEscapes(t *testing.T) {
	// (Control characters other than tab, CR and LF are not valid in an R4
	// string; callers keep them out of diagnostics, as safeName does.)
	diag := "bad \"name\"</script>\t\n\u2028\xff"
	raw := Errorf(CodeInvalidParameter, "%s", diag).At(`a"b`).OperationOutcome()
	oo := parseOO(t, raw)
	if d := oo.Issue[0].Diagnostics; d == nil || *d != "bad \"name\"</script>\t\n\u2028\ufffd" {
		t.Errorf("diagnostics = %q", *d)
	}
	if strings.Contains(string(raw), "</script>") {
		t.Errorf("HTML-significant characters not escaped: %s", raw)
	}
}
