package main

// Black-box tests of live practices, over HTTP: the real server over a
// practices file (written by `gpgate demo`'s GP Connect setup and `gpgate
// practices add`) with
//
//	Y98001  GP Connect, live, the in-process emulator serve starts (the demo's practice)
//	Y98002  GP Connect, live, an emulator the test controls (faults), over mutual TLS
//	Y98003  GP Connect, live, an emulator the test kills (circuit breaker)
//	Y98004  FHIR API, an httptest upstream serving a generated record
//
// and a recorded PDS that places every live patient. One server for all the
// tests of this file; the GP Connect ones skip when ../shared is absent.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/adapters/gpconnect/emulator"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

const (
	liveFaultODS = "Y98002"
	liveDeadODS  = "Y98003"
	liveAPIODS   = "Y98004"
	// livePlacedOnly is placed by PDS at Y98004 and fetched by no test.
	livePlacedOnly fhir.NHSNumber = "9434765919"
)

type liveWorld struct {
	*testServer
	gpc       bool               // the GP Connect practices are there (../shared present)
	demoPats  []fhir.NHSNumber   // Y98001
	faultPats []fhir.NHSNumber   // Y98002
	deadPat   fhir.NHSNumber     // Y98003
	emFault   *emulator.Emulator // Y98002's provider
	emDead    *emulator.Emulator // Y98003's provider
	api       *upstream          // Y98004's upstream
	ids       *countingIDs       // the durable id map, counted
	wb        *adapters.WriteBehind
}

var (
	liveOnce sync.Once
	live     *liveWorld
	liveErr  error
)

func startLive(t *testing.T) *liveWorld {
	t.Helper()
	liveOnce.Do(func() { live, liveErr = setupLive(t) })
	if liveErr != nil {
		t.Fatalf("live server: %v", liveErr)
	}
	return live
}

func (w *liveWorld) needGPC(t *testing.T) {
	t.Helper()
	if !w.gpc {
		t.Skip("../shared/testdata/gpconnect-stu3 is absent beside the repository: skipping the GP Connect practices")
	}
}

func setupLive(t *testing.T) (*liveWorld, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gpgate-live-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	w := &liveWorld{ids: &countingIDs{written: map[string]bool{}}}
	var out, errb strings.Builder
	cmd := func(args ...string) error {
		out.Reset()
		errb.Reset()
		if code := run(ctx, args, &out, &errb); code != 0 {
			return fmt.Errorf("gpgate %s: exit %d: %s %s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return nil
	}
	ods := []string{liveAPIODS}
	if gpcDir := findSharedGPConnect(); gpcDir != "" {
		w.gpc = true
		ods = append(ods, demoGPCODS, liveFaultODS, liveDeadODS)
		folders, pats, err := splitRecorded(gpcDir, dir, 2, 1)
		if err != nil {
			return nil, err
		}
		w.demoPats, w.deadPat, w.faultPats = pats[0], pats[1][0], pats[2]
		// The demo's own setup: certificates, the in-process emulator entry, PDS.
		g, err := demoGPConnect(ctx, data, folders[0], io.Discard)
		if err != nil || g.ODS != demoGPCODS {
			return nil, fmt.Errorf("demo GP Connect setup: %v", err)
		}
		pki := filepath.Join(data, demoPKIDir)
		var urlFault, urlDead string
		if w.emFault, urlFault, err = startProvider(folders[2], liveFaultODS, pki); err != nil {
			return nil, err
		}
		if w.emDead, urlDead, err = startProvider(folders[1], liveDeadODS, pki); err != nil {
			return nil, err
		}
		tlsFlags := []string{"--cert", filepath.Join(pki, "client.pem"), "--key", filepath.Join(pki, "client.key"), "--ca", filepath.Join(pki, "ca.pem"),
			"--from-asid", demoGPCFromASID}
		if err := cmd(append([]string{"practices", "add", "--data", data, "--ods", liveFaultODS, "--kind", "gpconnect", "--name", "Faulty practice",
			"--url", urlFault, "--to-asid", "918999198002", "--deadline", "8s", "--area-timeout", "3s", "--failures", "1000"}, tlsFlags...)...); err != nil {
			return nil, err
		}
		if err := cmd(append([]string{"practices", "add", "--data", data, "--ods", liveDeadODS, "--kind", "gpconnect", "--name", "Dying practice",
			"--url", urlDead, "--to-asid", "918999198003", "--deadline", "6s", "--area-timeout", "3s", "--failures", "2", "--open-for", "1s"}, tlsFlags...)...); err != nil {
			return nil, err
		}
		pdsDir := filepath.Join(data, demoPDSDir)
		if err := writePDSPatients(pdsDir, liveFaultODS, w.faultPats); err != nil {
			return nil, err
		}
		if err := writePDSPatients(pdsDir, liveDeadODS, []fhir.NHSNumber{w.deadPat}); err != nil {
			return nil, err
		}
	} else if err := cmd("practices", "pds", "--data", data, "--recorded", filepath.Join(data, demoPDSDir)); err != nil {
		return nil, err
	}
	// The FHIR API practice over a generated record.
	if w.api, err = newUpstream(); err != nil {
		return nil, err
	}
	if err := cmd("practices", "add", "--data", data, "--ods", liveAPIODS, "--kind", "fhirapi", "--name", "FHIR API practice",
		"--url", w.api.srv.URL+"/fhir", "--page-size", "20", "--deadline", "6s", "--area-timeout", "4s"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(data, demoPDSDir), 0o700); err != nil {
		return nil, err
	}
	if err := writePDSPatients(filepath.Join(data, demoPDSDir), liveAPIODS, []fhir.NHSNumber{w.api.rec.NHS, livePlacedOnly}); err != nil {
		return nil, err
	}
	st, err := openState(data)
	if err != nil {
		return nil, err
	}
	for _, a := range consent.DemoAgreements(ods, time.Now()) {
		if _, err := st.consent.Add(ctx, a); err != nil {
			st.Close()
			return nil, err
		}
	}
	st.Close()
	testHooks.idmap = func(m adapters.IDMap) adapters.IDMap { w.ids.inner = m; return w.ids }
	testHooks.writeBehind = func(wb *adapters.WriteBehind) { w.wb = wb }
	w.testServer, _ = startOn(t, context.Background(), serveOpts{data: data})
	return w, nil
}

// splitRecorded links the shared records into folders of n[0], n[1] patients
// and the rest (symbolic links in the test's temporary folder).
func splitRecorded(src, dir string, n ...int) ([]string, [][]fhir.NHSNumber, error) {
	rec, err := gpconnect.NewRecorded(src, "Y98001")
	if err != nil {
		return nil, nil, err
	}
	pats, err := rec.Patients(context.Background())
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(pats, func(i, j int) bool { return pats[i] < pats[j] })
	if len(pats) < n[0]+n[1]+4 {
		return nil, nil, fmt.Errorf("%d shared records: too few", len(pats))
	}
	bounds := []int{0, n[0], n[0] + n[1], len(pats)}
	var folders []string
	var groups [][]fhir.NHSNumber
	for g := 0; g < 3; g++ {
		f := filepath.Join(dir, "recorded-"+strconv.Itoa(g))
		if err := os.MkdirAll(f, 0o700); err != nil {
			return nil, nil, err
		}
		group := pats[bounds[g]:bounds[g+1]]
		for _, nhs := range group {
			files, _ := filepath.Glob(filepath.Join(src, string(nhs)+"_*.json"))
			for _, file := range files {
				if err := os.Symlink(file, filepath.Join(f, filepath.Base(file))); err != nil {
					return nil, nil, err
				}
			}
		}
		folders, groups = append(folders, f), append(groups, group)
	}
	return folders, groups, nil
}

// startProvider serves an emulator over TLS with client certificates from
// the demo CA required, as a practice's GP Connect endpoint.
func startProvider(dir, ods, pki string) (*emulator.Emulator, string, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "server.pem"), filepath.Join(pki, "server.key"))
	if err != nil {
		return nil, "", err
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	u := "https://" + ln.Addr().String() + "/" + ods + "/STU3/1/gpconnect/structured/fhir"
	em, err := emulator.New(emulator.Config{Dir: dir, ODS: ods, Audience: u})
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog(),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return em, u, nil
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// countingIDs counts the writes that reach the durable id map.
type countingIDs struct {
	inner   adapters.IDMap
	mu      sync.Mutex
	writes  int
	written map[string]bool
}

func (c *countingIDs) Put(ctx context.Context, id string, n fhir.NHSNumber) error {
	return c.PutBatch(ctx, map[string]fhir.NHSNumber{id: n})
}

func (c *countingIDs) PutBatch(ctx context.Context, es map[string]fhir.NHSNumber) error {
	c.mu.Lock()
	c.writes++
	for id := range es {
		c.written[id] = true
	}
	c.mu.Unlock()
	return c.inner.(adapters.BatchPutter).PutBatch(ctx, es)
}

func (c *countingIDs) Get(ctx context.Context, id string) (fhir.NHSNumber, error) {
	return c.inner.Get(ctx, id)
}

func (c *countingIDs) state() (int, map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := map[string]bool{}
	for k, v := range c.written {
		cp[k] = v
	}
	return c.writes, cp
}

// everything follows $everything to its last page and returns the
// resources by type, the warnings' texts and the number of pages.
func (w *liveWorld) everything(t *testing.T, pid string, count int) (map[string]int, []string, int) {
	t.Helper()
	types := map[string]int{}
	var warnings []string
	coded := codedTally{}
	pages := 0
	for next := "/Patient/" + pid + "/$everything?_count=" + strconv.Itoa(count); next != ""; pages++ {
		r := w.get(t, next)
		b := decodeBundle(t, r)
		if err := parseAll(b); err != nil {
			t.Fatal(err)
		}
		coded.page(r.body, b)
		for _, e := range b.Entry {
			var h resourceHead
			_ = json.Unmarshal(e.Resource, &h)
			if h.ResourceType == "OperationOutcome" {
				var oo outcome
				_ = json.Unmarshal(e.Resource, &oo)
				for _, is := range oo.Issue {
					for _, c := range is.Details.Coding {
						warnings = append(warnings, c.Code+": "+is.Diagnostics)
					}
				}
				continue
			}
			types[h.ResourceType]++
		}
		next = b.link("next")
	}
	coded.check(t)
	return types, warnings, pages
}

// find runs the Patient search by NHS number with the system token and
// returns the response.
func (w *liveWorld) find(t *testing.T, nhs fhir.NHSNumber, headers ...string) response {
	t.Helper()
	return w.get(t, patientSearch(string(nhs)), headers...)
}

func TestLiveGPConnect(t *testing.T) {
	w := startLive(t)
	w.needGPC(t)
	t.Run("the demo practice through the in-process emulator", func(t *testing.T) {
		r := w.find(t, w.demoPats[0])
		if b := decodeBundle(t, r); b.Total == nil || *b.Total != 1 {
			t.Fatalf("Patient search: %s", truncateBody(r.body))
		}
		types, _, _ := w.everything(t, fhir.PatientID(w.demoPats[0]), 200)
		if types["Patient"] != 1 || types["AllergyIntolerance"]+types["MedicationRequest"]+types["Condition"] == 0 {
			t.Errorf("$everything: %v", types)
		}
	})
	t.Run("read, $everything and paging read the practice once", func(t *testing.T) {
		nhs := w.faultPats[0]
		pid := fhir.PatientID(nhs)
		w.emFault.SetFault(emulator.Fault{})
		before := w.emFault.Requests()
		// A system token naming the clinician: the provider hears of them.
		key, _ := os.ReadFile(filepath.Join(w.dir, demoKeyFile))
		tok, _, err := smart.RequestToken(context.Background(), w.base+smart.PathToken, demoClientID, key, []string{"system/*.rs"}, &smart.B2B{SubjectID: demoClinician})
		if err != nil {
			t.Fatal(err)
		}
		if r := w.find(t, nhs, "Authorization", "Bearer "+tok); r.status != http.StatusOK {
			t.Fatalf("Patient search: %d %s", r.status, truncateBody(r.body))
		}
		if got := w.emFault.LastRequester(); got.OrgODS != demoClientODS || got.SDSUserID != demoClinician {
			t.Errorf("the provider was told the requester is %+v, want organisation %s, practitioner %s", got, demoClientODS, demoClinician)
		}
		types, warnings, pages := w.everything(t, pid, 25)
		if pages < 3 || types["Patient"] != 1 {
			t.Fatalf("$everything: %d pages, %v", pages, types)
		}
		for _, wn := range warnings {
			if strings.HasPrefix(wn, string(fhir.WarnAreaUnavailable)) {
				t.Errorf("warning from a healthy practice: %s", wn)
			}
		}
		cond := decodeBundle(t, w.get(t, "/Condition?patient="+pid))
		if len(cond.Entry) > 0 {
			var h resourceHead
			_ = json.Unmarshal(cond.Entry[0].Resource, &h)
			if r := w.get(t, "/Condition/"+h.ID); r.status != http.StatusOK {
				t.Errorf("read: %d", r.status)
			}
		}
		if n := w.emFault.Requests() - before; n != int64(len(gpconnect.FanOut)) {
			t.Errorf("provider calls for a search, %d pages, a search and a read = %d, want %d (one fanned-out fetch)", pages, n, len(gpconnect.FanOut))
		}
	})
	t.Run("a slow area is left out with a warning", func(t *testing.T) {
		nhs := w.faultPats[1]
		w.emFault.SetFault(emulator.Fault{Latency: time.Minute, Sections: gpconnect.SectionMedication})
		defer w.emFault.SetFault(emulator.Fault{})
		if r := w.find(t, nhs); r.status != http.StatusOK {
			t.Fatalf("Patient search: %d %s", r.status, truncateBody(r.body))
		}
		types, warnings, _ := w.everything(t, fhir.PatientID(nhs), 500)
		found := false
		for _, wn := range warnings {
			if strings.HasPrefix(wn, string(fhir.WarnAreaUnavailable)) && strings.Contains(wn, "medication") {
				found = true
			}
			if strings.HasPrefix(wn, string(fhir.WarnAreaUnavailable)) && strings.Contains(wn, "allergies") {
				t.Errorf("allergies answered but are marked unavailable: %s", wn)
			}
		}
		if !found {
			t.Errorf("no AREA_UNAVAILABLE warning for medication in %v", warnings)
		}
		if types["Patient"] != 1 || types["Condition"]+types["AllergyIntolerance"]+types["Encounter"] == 0 {
			t.Errorf("the areas that answered are missing: %v", types)
		}
	})
	nhs := w.faultPats[2]
	others := append(append([]fhir.NHSNumber{}, w.faultPats[:2]...), w.faultPats[3:]...)
	faults := []struct {
		name   string
		fault  emulator.Fault
		status int
		code   fhir.Code
	}{
		{"slow everywhere: the whole record is unavailable", emulator.Fault{Latency: time.Minute}, 503, fhir.CodeTimeout},
		{"Spine PATIENT_NOT_FOUND: refused like an unknown patient", emulator.Fault{Status: 404, Code: "PATIENT_NOT_FOUND"}, 403, fhir.CodeNoOrganisationConsent},
		{"Spine NO_PATIENT_CONSENT: dissent", emulator.Fault{Status: 403, Code: "NO_PATIENT_CONSENT"}, 403, fhir.CodeNoPatientConsent},
		{"Spine INTERNAL_SERVER_ERROR: unavailable", emulator.Fault{Status: 500, Code: "INTERNAL_SERVER_ERROR"}, 503, fhir.CodeTimeout},
		{"Spine TEMPORARILY_UNAVAILABLE", emulator.Fault{Status: 503, Code: "TEMPORARILY_UNAVAILABLE"}, 503, fhir.CodeTimeout},
		{"Spine BAD_REQUEST: gpgate's fault, nothing passed on", emulator.Fault{Status: 400, Code: "BAD_REQUEST"}, 500, fhir.CodeInternal},
		{"garbage", emulator.Fault{Garbage: true}, 503, fhir.CodeTimeout},
		{"another patient's record is refused", emulator.Fault{OtherPatient: true}, 500, fhir.CodeInternal},
		{"a dead connection", emulator.Fault{Dead: true}, 503, fhir.CodeTimeout},
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			w.emFault.SetFault(tc.fault)
			defer w.emFault.SetFault(emulator.Fault{})
			r := w.find(t, nhs)
			expectOutcome(t, r, tc.status, tc.code)
			for _, o := range others {
				if strings.Contains(string(r.body), string(o)) || strings.Contains(string(r.body), fhir.PatientID(o)) {
					t.Errorf("the answer names another patient: %s", truncateBody(r.body))
				}
			}
			if strings.Contains(string(r.body), "injected") || strings.Contains(string(r.body), "upstream gone") {
				t.Errorf("provider text passed on: %s", truncateBody(r.body))
			}
		})
	}
	t.Run("after the faults the record is served", func(t *testing.T) {
		w.emFault.SetFault(emulator.Fault{})
		if r := w.find(t, nhs); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, truncateBody(r.body))
		}
	})
	// Last (it fills the record cache): every recorded patient, whole: each resource valid R4
	// and coded only (everything checks both), each page within UK Core.
	t.Run("every patient's $everything is valid R4 and UK Core", func(t *testing.T) {
		w.emFault.SetFault(emulator.Fault{})
		for _, nhs := range append(append([]fhir.NHSNumber{}, w.demoPats...), w.faultPats...) {
			if r := w.find(t, nhs); r.status != http.StatusOK {
				continue // a dissent or an unknown number: refused, nothing to check
			}
			pid := fhir.PatientID(nhs)
			types, _, _ := w.everything(t, pid, 1000)
			if types["Patient"] != 1 {
				t.Errorf("%s: $everything without its Patient: %v", nhs, types)
			}
			if ps := profiles.CheckJSON(w.get(t, "/Patient/"+pid+"/$everything?_count=1000").body); profiles.HasErrors(ps) {
				t.Errorf("%s: $everything breaks R4 or UK Core: %v", nhs, ps)
			}
		}
	})
}

// TestLiveCircuit: a dead practice opens its circuit: callers are refused at
// once without calls to the practice; once it is back, the next probe
// closes the circuit.
func TestLiveCircuit(t *testing.T) {
	w := startLive(t)
	w.needGPC(t)
	em := w.emDead
	em.SetFault(emulator.Fault{Dead: true})
	before := em.Requests()
	for i := 0; i < 2; i++ { // failures: 2
		expectOutcome(t, w.find(t, w.deadPat), 503, fhir.CodeTimeout)
	}
	tripped := em.Requests()
	if tripped-before != 2*int64(len(gpconnect.FanOut)) {
		t.Errorf("calls while failing = %d, want %d", tripped-before, 2*len(gpconnect.FanOut))
	}
	for i := 0; i < 5; i++ {
		expectOutcome(t, w.find(t, w.deadPat), 503, fhir.CodeTimeout)
	}
	if n := em.Requests() - tripped; n != 0 {
		t.Errorf("calls to the practice while its circuit is open = %d, want 0", n)
	}
	em.SetFault(emulator.Fault{})
	deadline := time.Now().Add(20 * time.Second) // open for 1s, then one probe
	for {
		r := w.find(t, w.deadPat)
		if r.status == http.StatusOK {
			break
		}
		expectOutcome(t, r, 503, fhir.CodeTimeout)
		if time.Now().After(deadline) {
			t.Fatal("the circuit did not close after the practice recovered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := em.Requests() - tripped; n != int64(len(gpconnect.FanOut)) {
		t.Errorf("calls to recover = %d, want one fetch (%d)", n, len(gpconnect.FanOut))
	}
}

func TestLiveFHIRAPI(t *testing.T) {
	w := startLive(t)
	nhs := w.api.rec.NHS
	if r := w.find(t, nhs); r.status != http.StatusOK {
		t.Fatalf("Patient search: %d %s", r.status, truncateBody(r.body))
	}
	types, warnings, pages := w.everything(t, fhir.PatientID(nhs), 50)
	want := map[string]int{}
	for _, r := range w.api.rec.Resources {
		want[r.Type]++
	}
	for _, typ := range []string{"Patient", "Condition", "MedicationStatement", "MedicationRequest", "AllergyIntolerance", "Observation", "Encounter", "Immunization"} {
		if types[typ] != want[typ] {
			t.Errorf("%s: %d served, the upstream holds %d", typ, types[typ], want[typ])
		}
	}
	if len(warnings) > 0 {
		t.Logf("warnings: %v", warnings)
	}
	if n := w.api.count("/fhir/Patient"); n != 1 {
		t.Errorf("upstream Patient searches for a search and %d pages = %d, want 1", pages, n)
	}
}

// TestLivePDS: PDS (recorded) places live patients; a patient it does not
// place, and one it places at a practice the caller has no agreement with,
// are refused alike — and neither refusal writes to the id map.
func TestLivePDS(t *testing.T) {
	w := startLive(t)
	key, err := os.ReadFile(filepath.Join(w.dir, "demo-111.jwk")) // RXX02: agreement suspended
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := smart.RequestToken(context.Background(), w.base+smart.PathToken, "demo-111", key, []string{"system/*.rs"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	known := livePlacedOnly
	bearer := "Bearer " + tok
	if err := w.wb.Flush(context.Background()); err != nil { // what earlier tests fetched
		t.Fatal(err)
	}
	writes0, _ := w.ids.state()
	var bodies []string
	for _, nhs := range []fhir.NHSNumber{known, "9000000009", known, "9000000009"} {
		r := w.find(t, nhs, "Authorization", bearer)
		expectOutcome(t, r, http.StatusForbidden, fhir.CodeNoOrganisationConsent)
		var oo outcome
		_ = json.Unmarshal(r.body, &oo)
		bodies = append(bodies, oo.Issue[0].Diagnostics)
	}
	if bodies[0] != bodies[1] {
		t.Errorf("refusals differ for a placed and an unplaced patient:\n%s\n%s", bodies[0], bodies[1])
	}
	if err := w.wb.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	writes1, written := w.ids.state()
	if writes1 != writes0 || written[fhir.PatientID(known)] {
		t.Fatalf("id map writes after refusals: %d (patient written: %v), want none", writes1-writes0, written[fhir.PatientID(known)])
	}
	// A patient found by a caller an agreement serves: written.
	if r := w.find(t, w.api.rec.NHS); r.status != http.StatusOK {
		t.Fatalf("Patient search: %d %s", r.status, truncateBody(r.body))
	}
	if err := w.wb.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, written := w.ids.state(); !written[fhir.PatientID(w.api.rec.NHS)] {
		t.Error("a patient whose record was fetched is not in the id map")
	}
	t.Run("unknown to PDS: refused like a patient without an agreement", func(t *testing.T) {
		expectOutcome(t, w.find(t, "9000000009"), http.StatusForbidden, fhir.CodeNoOrganisationConsent)
	})
}

func TestPracticesVerb(t *testing.T) {
	w := startLive(t)
	ctx := context.Background()
	runOut := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := run(ctx, args, &out, &errb)
		return code, out.String() + errb.String()
	}
	code, out := runOut("practices", "list", "--data", w.dir)
	if code != 0 || !strings.Contains(out, liveAPIODS) || strings.Contains(out, "FAIL") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	if w.gpc {
		code, out = runOut("practices", "test", liveFaultODS, "--data", w.dir, "--nhs", string(w.faultPats[3]))
		for _, want := range []string{"ok    tls", "ok    patient", "ok    pds", "ok    reachability"} {
			if !strings.Contains(out, want) {
				t.Errorf("test %s: no %q line:\n%s", liveFaultODS, want, out)
			}
		}
		if code != 0 {
			t.Errorf("test %s: exit %d\n%s", liveFaultODS, code, out)
		}
		w.emFault.SetFault(emulator.Fault{Status: 500, Code: "INTERNAL_SERVER_ERROR"})
		code, out = runOut("practices", "test", liveFaultODS, "--data", w.dir, "--nhs", string(w.faultPats[4]))
		w.emFault.SetFault(emulator.Fault{})
		if code == 0 || !strings.Contains(out, "FAIL  patient") {
			t.Errorf("test of a failing practice: exit %d\n%s", code, out)
		}
	}
	code, out = runOut("practices", "test", liveAPIODS, "--data", w.dir, "--nhs", string(w.api.rec.NHS))
	if code != 0 || !strings.Contains(out, "ok    patient") {
		t.Errorf("test %s: exit %d\n%s", liveAPIODS, code, out)
	}
	code, out = runOut("practices", "add", "--data", w.dir, "--ods", "Y98009", "--kind", "gpconnect", "--url", "https://gp.example/fhir")
	if code == 0 || !strings.Contains(out, `"cert"`) || !strings.Contains(out, "Y98009") {
		t.Errorf("add without a certificate: exit %d: %s", code, out)
	}
	code, out = runOut("practices", "test", "Y98999", "--data", w.dir)
	if code == 0 || !strings.Contains(out, "not in") {
		t.Errorf("test of an unknown practice: exit %d: %s", code, out)
	}
}

// upstream is an R4 server holding one generated record, answering the
// searches of adapters/fhirapi (paged by _count and _offset).
type upstream struct {
	srv  *httptest.Server
	rec  *fhir.Record
	mu   sync.Mutex
	hits map[string]int
}

func newUpstream() (*upstream, error) {
	var recs []*fhir.Record
	_, err := demo.Generate(demo.Options{Seed: 7, Practices: 1, Patients: 12, SkipValidation: true}, func(_ demo.Practice, r *fhir.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The most moderate record with a valid number and several areas.
	sort.Slice(recs, func(i, j int) bool { return len(recs[i].Resources) < len(recs[j].Resources) })
	u := &upstream{hits: map[string]int{}}
	for _, r := range recs {
		if fhir.ValidNHSNumber(string(r.NHS)) && len(r.Resources) >= 60 && r.Sharing != fhir.SharingDissent {
			u.rec = r
			break
		}
	}
	if u.rec == nil {
		return nil, fmt.Errorf("no suitable generated record")
	}
	u.srv = httptest.NewServer(u)
	return u, nil
}

func (u *upstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[path]
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hits[r.URL.Path]++
	u.mu.Unlock()
	typ := strings.TrimPrefix(r.URL.Path, "/fhir/")
	q := r.URL.Query()
	var matches, includes []*fhir.Resource
	switch typ {
	case "metadata":
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"CapabilityStatement","status":"active","date":"2026-01-01","kind":"instance","fhirVersion":"4.0.1","format":["json"]}`))
		return
	case "Patient":
		if q.Get("identifier") != fhir.NHSNumberSystem+"|"+string(u.rec.NHS) {
			break
		}
		matches = u.rec.Select("Patient", fhir.AllAreas)
		includes = append(u.rec.Select("Organization", fhir.AllAreas), u.rec.Select("Practitioner", fhir.AllAreas)...)
	default:
		if q.Get("patient") != u.rec.PatientID {
			break
		}
		matches = u.rec.Select(typ, fhir.AllAreas)
		if q.Get("_include") != "" {
			includes = u.rec.Select("Medication", fhir.AllAreas)
		}
	}
	count, _ := strconv.Atoi(q.Get("_count"))
	offset, _ := strconv.Atoi(q.Get("_offset"))
	if count <= 0 {
		count = 100
	}
	end := min(offset+count, len(matches))
	if offset > len(matches) {
		offset = end
	}
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   map[string]any  `json:"search"`
	}
	base := "http://" + r.Host + "/fhir/"
	var entries []entry
	for _, x := range matches[offset:end] {
		entries = append(entries, entry{base + x.Type + "/" + x.ID, x.JSON, map[string]any{"mode": "match"}})
	}
	if offset == 0 {
		for _, x := range includes {
			entries = append(entries, entry{base + x.Type + "/" + x.ID, x.JSON, map[string]any{"mode": "include"}})
		}
	}
	links := []map[string]string{}
	if end < len(matches) {
		q.Set("_offset", strconv.Itoa(end))
		links = append(links, map[string]string{"relation": "next", "url": base + typ + "?" + q.Encode()})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(matches), "link": links, "entry": entries})
	w.Header().Set("Content-Type", "application/fhir+json")
	_, _ = w.Write(b)
}
