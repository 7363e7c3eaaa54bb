// Command viewerdemo serves the Shared Record Viewer over the fake core
// (viewer/viewertest) with a small synthetic region, for the viewer's
// end-to-end browser tests and for trying it out until the viewer is wired
// into `gpgate serve`. It listens on loopback only and writes a fixture
// (JSON) naming its URL, accounts and patients for the tests.
//
// Its data is made hostile on purpose: every resource carries free text in
// every element that may hold it, and the core leaks resources outside
// the agreement with their terms replaced by a marker, so the browser
// tests fail if a page shows either.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/viewer"
	"github.com/gpgate/gpgate/viewer/users"
	"github.com/gpgate/gpgate/viewer/viewertest"
)

// Fixture tells the browser tests where things are.
type Fixture struct {
	URL      string            `json:"url"`
	Users    map[string]Login  `json:"users"`
	Patients map[string]string `json:"patients"`
	// NotShared lists the record views the "limited" user's agreement
	// does not share (in full) for the "limited" patient (or, without one,
	// the "full" patient).
	NotShared []string `json:"notShared"`
	Canaries  []string `json:"canaries"`
}

// Login is an account for the tests.
type Login struct {
	Username string `json:"username"`
	Password string `json:"password"`
	SDSID    string `json:"sdsId"`
	Org      string `json:"org"`
}

// The organisations of the fixture's users.
const (
	consumer        = "RXX01" // full agreements with break-glass
	limitedOrg      = "RXX03" // shares less with the limited patient's practice
	noBreakGlassOrg = "RXX04" // everything, without break-glass
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	fixture := flag.String("fixture", "", "write the test fixture (JSON) to this file")
	patients := flag.Int("patients", 8, "patients in the synthetic region")
	honest := flag.Bool("honest", false, "serve clean data from a core that does not leak (for a demonstration)")
	idle := flag.Duration("idle", 15*time.Minute, "session idle timeout")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *fixture, *patients, *honest, *idle, log); err != nil {
		fmt.Fprintln(os.Stderr, "viewerdemo:", err)
		os.Exit(1)
	}
}

func run(listen, fixturePath string, n int, honest bool, idle time.Duration, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("viewerdemo listens on loopback only")
	}
	now := time.Now().UTC().Truncate(24 * time.Hour)
	limited := fhir.AreaDemographics | fhir.AreaSummary | fhir.AreaExamination | fhir.AreaRisks
	// As the real server's e2e region: the clinician's organisation shares
	// everything with break-glass (Y99001, Y99002: the dissenting patient's,
	// Y99004) and nothing with Y99003; RXX03 shares less with Y99002 (the
	// "limited" patient's practice); RXX04 shares everything without
	// break-glass.
	core := &viewertest.Core{Leak: !honest, Agreements: []viewertest.Agreement{
		{Consumer: consumer, Practice: "Y99001", Areas: fhir.AllAreas, BreakGlass: true},
		{Consumer: consumer, Practice: "Y99002", Areas: fhir.AllAreas, BreakGlass: true},
		{Consumer: consumer, Practice: "Y99004", Areas: fhir.AllAreas, BreakGlass: true},
		{Consumer: limitedOrg, Practice: "Y99002", Areas: limited, BreakGlass: false},
		{Consumer: noBreakGlassOrg, Practice: "Y99001", Areas: fhir.AllAreas, BreakGlass: false},
	}}
	fx := Fixture{Users: map[string]Login{}, Patients: map[string]string{},
		Canaries: []string{viewertest.FreeTextCanary, viewertest.NotSharedCanary}}
	fx.NotShared = viewer.NotSharedViews(limited)
	idx := 0
	_, err = demo.Generate(demo.Options{Patients: n, Practices: 4, Now: now, SkipValidation: true}, func(p demo.Practice, rec *fhir.Record) error {
		i := idx
		idx++
		rec.Sharing = consent.SharingFromRecord(rec) // as the real core reads it from the record's codes
		if !honest {
			viewertest.AddFreeText(rec)
			viewertest.MarkConfidential(rec, 97)
			for _, a := range core.Agreements {
				if a.Practice == rec.Practice {
					viewertest.MarkNotShared(rec, a.Areas, now)
				}
			}
		}
		core.Records = append(core.Records, rec)
		switch i {
		case 0:
			fx.Patients["full"] = spaced(string(rec.NHS))
		case 1:
			fx.Patients["limited"] = spaced(string(rec.NHS))
		case 2:
			fx.Patients["otherOrg"] = spaced(string(rec.NHS))
		case 3:
			fx.Patients["invalid"] = spaced(string(rec.NHS)) // the demo's invalid check digit
		}
		if rec.Sharing == fhir.SharingDissent {
			fx.Patients["dissent"] = spaced(string(rec.NHS))
		}
		return nil
	})
	if err != nil {
		return err
	}
	fx.Patients["unknown"] = unknownNHS(core)
	if fx.Patients["dissent"] == "" {
		return errors.New("the region has no dissenting patient: use -patients 6 or more")
	}
	us := &viewertest.Users{}
	pw := "correct horse battery staple"
	for _, u := range []struct {
		key string
		u   users.User
	}{
		{"clinician", users.User{Username: "clinician", Name: "Dr Alex Clinician", Org: consumer, Role: "Doctor", SDSID: "555000000001"}},
		{"limited", users.User{Username: "paramedic", Name: "Sam Paramedic", Org: limitedOrg, Role: "Paramedic", SDSID: "555000000003"}},
		{"noBreakGlass", users.User{Username: "ooh", Name: "Dr Jo Outofhours", Org: noBreakGlassOrg, Role: "Doctor", SDSID: "555000000004"}},
		{"locked", users.User{Username: "locum", Name: "Dr Lee Locum", Org: consumer, Role: "Doctor", SDSID: "555000000009"}},
	} {
		if err := us.Add(u.u, pw, users.DefaultParams, now); err != nil {
			return err
		}
		fx.Users[u.key] = Login{Username: u.u.Username, Password: pw, SDSID: u.u.SDSID, Org: u.u.Org}
	}
	v, err := viewer.New(viewer.Config{Core: core, Users: us, Log: log, InsecureCookies: true, IdleTimeout: idle})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fx.URL = "http://" + ln.Addr().String() + viewer.Base + "/"
	if fixturePath != "" {
		b, _ := json.MarshalIndent(fx, "", "  ")
		if err := os.WriteFile(fixturePath, b, 0o600); err != nil {
			return err
		}
	}
	mux := http.NewServeMux()
	mux.Handle(viewer.Base+"/", v)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, viewer.Base+"/", http.StatusSeeOther)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("viewerdemo listening", "url", fx.URL)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func spaced(n string) string {
	if len(n) != 10 {
		return n
	}
	return n[:3] + " " + n[3:6] + " " + n[6:]
}

// unknownNHS is a valid NHS number no patient of the region has.
func unknownNHS(core *viewertest.Core) string {
	for i := 123456780; ; i++ {
		nine := fmt.Sprintf("%09d", i)
		c, ok := fhir.CheckDigit(nine)
		if !ok {
			continue
		}
		n := nine + string(c)
		taken := false
		for _, r := range core.Records {
			taken = taken || string(r.NHS) == n
		}
		if !taken {
			return spaced(n)
		}
	}
}
