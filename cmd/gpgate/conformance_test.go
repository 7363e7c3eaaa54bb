package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/conformance"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// notExercisable are declared parameters the demo region has no data to
// exercise beyond acceptance, with the reason. Anything else skipped fails.
var notExercisable = map[string]string{
	"MedicationStatement?code": "demo medication is a medicationReference; HL7's clinical-code searches medication as a CodeableConcept only",
	"MedicationRequest?code":   "demo medication is a medicationReference; HL7's clinical-code searches medication as a CodeableConcept only",
}

func runSuite(t *testing.T, base, dir string, nhs []string, discover int) *conformance.Report {
	t.Helper()
	var out bytes.Buffer
	rep, err := conformance.Run(context.Background(), conformance.RunOptions{
		Base: base, ClientID: demoClientID, KeyFile: filepath.Join(dir, demoKeyFile),
		AuditClientID: "demo-auditor", AuditKeyFile: filepath.Join(dir, "demo-auditor.jwk"),
		NHS: nhs, Discover: discover, Out: &out,
	})
	if err != nil {
		t.Fatalf("conformance.Run: %v", err)
	}
	t.Logf("suite output:\n%s", out.String())
	return rep
}

// TestConformanceSuite runs the black-box suite against the real server over
// the demo region and requires every check to pass, every declared search
// parameter to be exercised, and the report to round-trip as JSON.
func TestConformanceSuite(t *testing.T) {
	s := startServer(t)
	rep := runSuite(t, s.base, s.dir, nil, 3)
	for _, c := range rep.Checks {
		if !c.Pass {
			t.Errorf("check %s failed: %v", c.Name, c.Failures)
		}
		if c.Name == "search-parameters" {
			for _, sk := range c.Skipped {
				key, _, _ := strings.Cut(sk, ":")
				if notExercisable[key] == "" {
					t.Errorf("declared parameter not exercised: %s", sk)
				}
			}
		}
	}
	if len(rep.Patients) != 3 || rep.Resources < 100 {
		t.Errorf("suite exercised %d patients, %d resources", len(rep.Patients), rep.Resources)
	}
	var buf bytes.Buffer
	if err := rep.Write(&buf); err != nil {
		t.Fatal(err)
	}
	var back conformance.Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back.Checks) != len(rep.Checks) || back.OK != rep.OK {
		t.Fatalf("report does not round-trip: %v", err)
	}
}

// TestCapabilityStatementMatchesTables: what the CapabilityStatement
// declares is exactly what fhir's tables register (the suite proves the
// server honours it, and refuses what is not declared under strict
// handling), and every operation's definition is served at its canonical.
func TestCapabilityStatementMatchesTables(t *testing.T) {
	s := startServer(t)
	r := s.get(t, "/metadata")
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type        string `json:"type"`
				SearchParam []struct {
					Name, Type, Definition string
				} `json:"searchParam"`
				Operation []struct{ Name, Definition string } `json:"operation"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(r.body, &cs); err != nil {
		t.Fatal(err)
	}
	declared := map[string]string{}
	ops := map[string]string{}
	for _, res := range cs.Rest[0].Resource {
		for _, p := range res.SearchParam {
			declared[res.Type+"?"+p.Name] = p.Type + " " + p.Definition
		}
		for _, o := range res.Operation {
			ops[res.Type+"$"+o.Name] = o.Definition
		}
	}
	want := map[string]string{}
	for typ, defs := range fhir.SearchParams {
		for _, d := range append(append([]fhir.SearchParam(nil), defs...), fhir.CommonParams...) {
			want[typ+"?"+d.Name] = string(d.Type) + " " + d.Definition
		}
	}
	for k, v := range want {
		if declared[k] != v {
			t.Errorf("%s: registered as %q, declared as %q", k, v, declared[k])
		}
	}
	for k := range declared {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k, "AuditEvent?") {
			t.Errorf("%s is declared but not registered", k)
		}
	}
	for _, op := range fhir.Operations {
		k := op.Type + "$" + op.Name
		if ops[k] != conformance.Canonical(s.base, op) {
			t.Errorf("%s: declared definition %q, want %q", k, ops[k], conformance.Canonical(s.base, op))
			continue
		}
		d := s.get(t, ops[k])
		if d.status != http.StatusOK {
			t.Fatalf("GET %s: %d", ops[k], d.status)
		}
		if ps := profiles.CheckJSON(d.body); profiles.HasErrors(ps) {
			t.Errorf("%s: %v", ops[k], profiles.Errors(ps))
		}
		if _, err := fhir.Parse(d.body); err != nil {
			t.Errorf("%s is not valid R4: %v", ops[k], err)
		}
	}
	if len(ops) != len(fhir.Operations) {
		t.Errorf("declared operations %v, registered %d", ops, len(fhir.Operations))
	}
}

// corruptingProxy serves the real server through a proxy that rewrites
// response bodies, so the suite sees a deliberately broken resource.
func corruptingProxy(t *testing.T, corrupt func([]byte) []byte) (ln net.Listener, setTarget func(string)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var target *url.URL
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Accept-Encoding") // the corruption needs the plain bytes
		},
		ModifyResponse: func(res *http.Response) error {
			b, err := io.ReadAll(res.Body)
			if err != nil {
				return err
			}
			res.Body.Close()
			b = corrupt(b)
			res.Body = io.NopCloser(bytes.NewReader(b))
			res.ContentLength = int64(len(b))
			res.Header.Set("Content-Length", strconv.Itoa(len(b)))
			res.Header.Del("ETag") // the bytes changed
			return nil
		},
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln, func(u string) {
		var err error
		if target, err = url.Parse(u); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConformanceSuiteCatchesBrokenResources proves the checkers can fail:
// a small region is served through a proxy that breaks one kind of resource
// (free text, a required element removed, a wrong profile claimed), and the
// suite must fail the right check; the profiles package must reject the
// broken resource too.
func TestConformanceSuiteCatchesBrokenResources(t *testing.T) {
	cases := []struct {
		name, check, from, to string
	}{
		{"free text", "no-free-text", `"onsetDateTime":`, `"note":[{"text":"patient worried"}],"onsetDateTime":`},
		{"required element missing", "uk-core-profiles", `"intent":"plan",`, ``},
		{"wrong profile claimed", "uk-core-profiles", `StructureDefinition/UKCore-AllergyIntolerance"`, `StructureDefinition/UKCore-Condition"`},
	}
	dir := t.TempDir()
	sum, err := demoRegion(context.Background(), demoOpts{data: dir, seed: 1, practices: 1, patients: 12, fast: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demoAgreements(context.Background(), dir, sum); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			broken := 0
			ln, setTarget := corruptingProxy(t, func(b []byte) []byte {
				if bytes.Contains(b, []byte(tc.from)) {
					broken++
				}
				return bytes.ReplaceAll(b, []byte(tc.from), []byte(tc.to))
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			proxyURL := "http://" + ln.Addr().String()
			// The server's public base is the proxy: links, fullUrls, the
			// token audience and the OperationDefinition canonicals name it.
			addr := freeAddr(t)
			setTarget("http://" + addr)
			if err := demoClient(ctx, dir); err != nil {
				t.Fatal(err)
			}
			ready := make(chan string, 1)
			errc := make(chan error, 1)
			go func() {
				errc <- serve(ctx, serveOpts{data: dir, listen: addr, baseURL: proxyURL}, slog.New(slog.NewJSONHandler(io.Discard, nil)), func(u string) { ready <- u })
			}()
			defer func() { cancel(); <-errc }()
			select {
			case <-ready:
			case err := <-errc:
				t.Fatalf("serve: %v", err)
			}
			rep := runSuite(t, proxyURL, dir, []string{"9990000018", "9990000026"}, 0)
			if broken == 0 {
				t.Fatalf("the corruption %q never applied", tc.from)
			}
			failed := map[string]bool{}
			for _, n := range rep.Failures() {
				failed[n] = true
			}
			if rep.OK || !failed[tc.check] {
				t.Fatalf("suite did not fail %s on a broken resource (failed: %v)", tc.check, rep.Failures())
			}
		})
	}
	// The profiles package rejects each corruption on its own.
	cond := []byte(`{"resourceType":"Condition","id":"c1","meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Condition"]},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"subject":{"reference":"Patient/p1"},"onsetDateTime":"2020-01-01"}`)
	if ps := profiles.CheckJSON(cond); profiles.HasErrors(ps) {
		t.Fatalf("the unbroken Condition fails: %v", ps)
	}
	for _, bad := range [][]byte{
		bytes.Replace(cond, []byte(`"onsetDateTime":`), []byte(`"note":[{"text":"x"}],"onsetDateTime":`), 1),
		bytes.Replace(cond, []byte(`"subject":{"reference":"Patient/p1"},`), nil, 1),
		bytes.Replace(cond, []byte(`UKCore-Condition"`), []byte(`UKCore-AllergyIntolerance"`), 1),
	} {
		if ps := profiles.CheckJSON(bad); !profiles.HasErrors(ps) {
			t.Errorf("profiles accepts a broken Condition: %s", bad)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
