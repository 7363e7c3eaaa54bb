package main

// Black-box tests: the real server, started on :0 over a real demo region,
// spoken to over HTTP only.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

type testServer struct {
	base     string
	summary  *demo.Summary
	dir      string
	patients []fhir.NHSNumber // every indexed patient of the region

	mu       sync.Mutex
	tok      string
	tokUntil time.Time
	ptok     map[string]patientToken // patient-context tokens by patient id
	knownIDs map[string]bool         // nil: every id in a URL is a patient of the region
}

type patientToken struct {
	tok   string
	until time.Time
}

var patientIDInURL = regexp.MustCompile(`\bp[a-z2-7]{16}\b`)

// demoClinician is the SDS user id of the clinician the tests act as.
const demoClinician = "555000111222"

// recordConsent records a consent to view for patientID with the system
// token and returns the Consent id.
func (s *testServer) recordConsent(t testing.TB, patientID string) string {
	t.Helper()
	body := `{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/` + patientID + `"},` +
		`"performer":[{"identifier":{"system":"` + consent.SDSUserSystem + `","value":"` + demoClinician + `"}}]}`
	req, _ := http.NewRequest(http.MethodPost, s.base+"/Consent", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+s.token(t))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /Consent: %d %s", res.StatusCode, truncateBody(b))
	}
	var c struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &c)
	return c.ID
}

// patientToken returns a patient-context token for patientID, bound to a
// freshly recorded consent to view, as a clinician's EPR would hold.
func (s *testServer) patientToken(t testing.TB, patientID string) string {
	t.Helper()
	s.mu.Lock()
	pt, ok := s.ptok[patientID]
	s.mu.Unlock()
	if ok && time.Now().Before(pt.until) {
		return pt.tok
	}
	id := s.recordConsent(t, patientID)
	key, err := os.ReadFile(filepath.Join(s.dir, demoKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := smart.RequestToken(context.Background(), s.base+smart.PathToken, demoClientID, key, []string{"patient/*.rs"},
		&smart.B2B{SubjectID: demoClinician, ConsentReference: smart.StringList{id}})
	if err != nil {
		t.Fatalf("patient token: %v", err)
	}
	s.mu.Lock()
	if s.ptok == nil {
		s.ptok = map[string]patientToken{}
	}
	s.ptok[patientID] = patientToken{tok, time.Now().Add(time.Duration(exp) * time.Second / 2)}
	s.mu.Unlock()
	return tok
}

// token returns a system token of the demo client (registered in s.dir),
// renewed before it expires.
func (s *testServer) token(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != "" && time.Now().Before(s.tokUntil) {
		return s.tok
	}
	key, err := os.ReadFile(filepath.Join(s.dir, demoKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := smart.RequestToken(context.Background(), s.base+smart.PathToken, demoClientID, key, []string{"system/*.rs", "system/Consent.c"}, nil)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	s.tok, s.tokUntil = tok, time.Now().Add(time.Duration(exp)*time.Second/2)
	return tok
}

// startOn serves dir (a data directory with the demo client registered) on a
// free port until ctx ends.
func startOn(t testing.TB, ctx context.Context, o serveOpts) (*testServer, chan error) {
	t.Helper()
	if err := demoClient(context.Background(), o.data); err != nil {
		t.Fatal(err)
	}
	o.listen = "127.0.0.1:0"
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		errc <- serve(ctx, o, slog.New(slog.NewJSONHandler(io.Discard, nil)), func(u string) { ready <- u })
		close(done)
	}()
	if ctx.Done() != nil {
		// The caller stops the server by cancelling ctx; its temporary
		// directories are removed only once the server has let go of them
		// (the audit log writes its last signed head as it closes).
		t.Cleanup(func() {
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("server did not stop within 30 s of its context ending")
			}
		})
	}
	select {
	case u := <-ready:
		return &testServer{base: u, dir: o.data}, errc
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start")
	}
	return nil, nil
}

var (
	sharedOnce sync.Once
	shared     *testServer
	sharedErr  error
)

// demoPatients is the size of the region the black-box tests serve; the
// default region (1,000) is walked by TestEveryDemoPatientEverything.
const demoPatients = 1000

// startServer generates a demo region once per test binary and serves it on
// a free port for the whole run.
func startServer(t testing.TB) *testServer {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gpgate-blackbox-")
		if err != nil {
			sharedErr = err
			return
		}
		// fast: the walk test puts every emitted resource through jsonformat itself.
		sum, err := demoRegion(context.Background(), demoOpts{data: dir, seed: 1, practices: 3, patients: demoPatients, fast: true}, io.Discard)
		if err != nil {
			sharedErr = err
			return
		}
		if err := demoAgreements(context.Background(), dir, sum); err != nil {
			sharedErr = err
			return
		}
		patients, err := listPatients(dir)
		if err != nil {
			sharedErr = err
			return
		}
		s, _ := startOn(t, context.Background(), serveOpts{data: dir})
		s.summary, s.patients = sum, patients
		s.knownIDs = map[string]bool{}
		for _, n := range patients {
			s.knownIDs[fhir.PatientID(n)] = true
		}
		shared = s
	})
	if sharedErr != nil {
		t.Fatalf("start server: %v", sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	// Every server this test binary starts in-process uses the public test
	// key, so ids the tests compute (fhir.PatientID) are the served ones.
	newPatientIDKey = func() ([]byte, error) { return fhir.TestPatientIDKey, nil }
	// serve refuses a data directory group or others can read; the
	// directories tests make (t.TempDir) are private like a deployment's.
	syscall.Umask(0o077)
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if shared != nil {
		os.RemoveAll(shared.dir)
		// serve keeps the audit key and signed head beside the data
		// directory, not in it.
		os.Remove(auditKeyDefault(shared.dir))
		os.Remove(auditHeadDefault(shared.dir))
	}
	if live != nil {
		os.RemoveAll(filepath.Dir(live.dir)) // the live tests' folder (data, recorded links)
	}
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath)) // the binary the README test built
	}
	os.Exit(code)
}

func (s *testServer) notable(t testing.TB, k demo.NotableKind) demo.Notable {
	t.Helper()
	for _, n := range s.summary.Notable {
		if n.Kind == k {
			return n
		}
	}
	t.Fatalf("demo region has no %s patient", k)
	return demo.Notable{}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (s *testServer) do(t testing.TB, method, path string, body []byte, headers ...string) response {
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = s.base + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if strings.HasPrefix(u, s.base) {
		// A request about one patient goes with that patient's
		// consent-bound token; anything else with the system token.
		if pid := patientIDInURL.FindString(u); pid != "" && !strings.Contains(u, "/AuditEvent") && s.known(pid) {
			req.Header.Set("Authorization", "Bearer "+s.patientToken(t, pid))
		} else {
			req.Header.Set("Authorization", "Bearer "+s.token(t))
		}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

func (s *testServer) get(t testing.TB, path string, headers ...string) response {
	return s.do(t, http.MethodGet, path, nil, headers...)
}

type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   *struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

func (b *bundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

type resourceHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
}

func decodeBundle(t testing.TB, r response) *bundle {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, truncateBody(r.body))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var b bundle
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("bundle: %v", err)
	}
	if b.ResourceType != "Bundle" {
		t.Fatalf("resourceType %q, want Bundle", b.ResourceType)
	}
	return &b
}

func truncateBody(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Details  struct {
			Coding []struct {
				System string `json:"system"`
				Code   string `json:"code"`
			} `json:"coding"`
		} `json:"details"`
		Diagnostics string `json:"diagnostics"`
	} `json:"issue"`
}

// expectOutcome checks status and GP Connect code of an error answer.
func expectOutcome(t testing.TB, r response, status int, code fhir.Code) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, truncateBody(r.body))
	}
	var oo outcome
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome: %s", truncateBody(r.body))
	}
	got := ""
	if len(oo.Issue[0].Details.Coding) > 0 {
		got = oo.Issue[0].Details.Coding[0].Code
	}
	if got != string(code) {
		t.Fatalf("code %q, want %q: %s", got, code, truncateBody(r.body))
	}
	if _, err := fhir.Parse(r.body); err != nil {
		t.Fatalf("OperationOutcome is not valid R4: %v", err)
	}
}

func patientSearch(nhs string) string {
	return "/Patient?identifier=" + url.QueryEscape(fhir.NHSNumberSystem+"|"+nhs)
}

func listPatients(dir string) ([]fhir.NHSNumber, error) {
	store, err := embedded.Open(filepath.Join(dir, recordsFile))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	ps, err := store.Practices()
	if err != nil {
		return nil, err
	}
	var out []fhir.NHSNumber
	for _, p := range ps {
		ns, err := store.Source(p.ODS).Patients(context.Background())
		if err != nil {
			return nil, err
		}
		out = append(out, ns...)
	}
	return out, nil
}

// known reports whether pid is a patient of the region (tests also use ids
// of patients that do not exist, which get the system token).
func (s *testServer) known(pid string) bool {
	if s.knownIDs == nil {
		return true
	}
	return s.knownIDs[pid]
}
