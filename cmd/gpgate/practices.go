package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/adapters/gp2gp"
	"github.com/gpgate/gpgate/fhir"
)

// practicesFile is the practices file serve reads from the data directory
// when --practices is not given (`gpgate demo` and `gpgate practices add`
// write it).
const practicesFile = "practices.json"

// practicesConfig is the practices file: practices served by sources other
// than the embedded store (whose practices are always served), the PDS
// locator that finds which practice a patient is registered with, and the
// snapshot cache every live practice shares. README "Practices" documents
// it; validate checks it.
//
//	{"pds": {"recorded": "pds"},
//	 "practices": [
//	   {"ods": "A20047", "name": "Extract Practice", "kind": "gp2gp", "dir": "/srv/gp2gp/extracts", "pds": "/srv/gp2gp/pds"},
//	   {"ods": "A82038", "kind": "gpconnect", "recorded": "/srv/gpconnect"},
//	   {"ods": "B82617", "kind": "gpconnect", "url": "https://...", "cert": "client.pem", "key": "client.key", "ca": "ca.pem",
//	    "from_asid": "200000000359", "to_asid": "918999198993"},
//	   {"ods": "C81001", "kind": "fhirapi", "url": "https://gp.example/fhir/R4", "token_url": "https://gp.example/token",
//	    "client_id": "gpgate", "key": "upstream.jwk", "scope": "system/*.rs"}
//	 ]}
type practicesConfig struct {
	PDS       *pdsConfig       `json:"pds,omitempty"`
	Snapshots *snapshotConfig  `json:"snapshots,omitempty"`
	Practices []practiceConfig `json:"practices"`
}

// pdsConfig is the PDS locator: live (url, with an application-restricted
// token when token_url is set) or recorded (a folder of PDS Patients).
type pdsConfig struct {
	URL      string   `json:"url,omitempty"`
	Recorded string   `json:"recorded,omitempty"`
	TokenURL string   `json:"token_url,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Key      string   `json:"key,omitempty"`
	TTL      duration `json:"ttl,omitempty"`
}

// snapshotConfig bounds the snapshot cache shared by live practices.
type snapshotConfig struct {
	TTL        duration `json:"ttl,omitempty"`
	PartialTTL duration `json:"partial_ttl,omitempty"`
	MaxBytes   int64    `json:"max_bytes,omitempty"`
}

type practiceConfig struct {
	ODS  string `json:"ods"`
	Name string `json:"name,omitempty"`
	Kind string `json:"kind"`

	// gp2gp
	Dir      string `json:"dir,omitempty"`      // folder of extracts (with optional manifest.json)
	PDS      string `json:"pds,omitempty"`      // folder of PDS-style Patient JSON
	Manifest string `json:"manifest,omitempty"` // manifest path, default dir/manifest.json

	// gpconnect, recorded
	Recorded string `json:"recorded,omitempty"`

	// gpconnect live and fhirapi
	URL string `json:"url,omitempty"`
	Key string `json:"key,omitempty"` // gpconnect: TLS client key (PEM); fhirapi: client assertion signing key

	// gpconnect live
	Cert         string          `json:"cert,omitempty"`
	CA           string          `json:"ca,omitempty"`
	FromASID     string          `json:"from_asid,omitempty"`
	ToASID       string          `json:"to_asid,omitempty"`
	DiaryEntries bool            `json:"diary_entries,omitempty"`
	FanOut       *bool           `json:"fan_out,omitempty"`
	Emulator     *emulatorConfig `json:"emulator,omitempty"`

	// fhirapi
	TokenURL string `json:"token_url,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Scope    string `json:"scope,omitempty"`
	PageSize int    `json:"page_size,omitempty"`
	Retries  *int   `json:"retries,omitempty"` // extra tries of an idempotent read (default 2)

	// live kinds: the guard and the per-area deadline
	AreaTimeout   duration `json:"area_timeout,omitempty"`
	Deadline      duration `json:"deadline,omitempty"`
	MaxConcurrent int      `json:"max_concurrent,omitempty"`
	Failures      uint32   `json:"failures,omitempty"`
	OpenFor       duration `json:"open_for,omitempty"`
}

// emulatorConfig makes serve start a GP Connect provider emulator in
// process, on a loopback port, over mutual TLS, for a gpconnect practice
// (the demo's): the practice's client then talks to it as to a real
// provider.
type emulatorConfig struct {
	Recorded string `json:"recorded"`          // folder of recorded structured records
	Cert     string `json:"cert"`              // the emulator's server certificate (PEM)
	Key      string `json:"key"`               // its key
	ClientCA string `json:"client_ca"`         // CA client certificates must chain to
	Listen   string `json:"listen,omitempty"`  // default 127.0.0.1:0
	Latency  string `json:"latency,omitempty"` // injected latency, e.g. "200ms" (demos of the deadline)
}

// duration is a Go duration written as a string ("8s", "1m30s").
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"8s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration such as \"8s\"", s)
	}
	*d = duration(v)
	return nil
}

func (d duration) or(def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// Defaults of the live kinds.
const (
	defaultDeadline    = 10 * time.Second
	defaultAreaTimeout = 8 * time.Second
)

// Which fields each kind takes (besides ods, name, kind). A field outside
// its kind's list is an error: a typo or a field of another kind must not be
// silently ignored.
var (
	guardFields = []string{"deadline", "max_concurrent", "failures", "open_for", "area_timeout"}
	kindFields  = map[string][]string{
		"gp2gp":              {"dir", "pds", "manifest"},
		"gpconnect-recorded": {"recorded"},
		"gpconnect":          append([]string{"url", "emulator", "cert", "key", "ca", "from_asid", "to_asid", "diary_entries", "fan_out"}, guardFields...),
		"fhirapi":            append([]string{"url", "token_url", "client_id", "key", "scope", "page_size", "retries"}, guardFields...),
	}
	configurableKinds = "gp2gp, gpconnect (recorded or live), fhirapi"
)

// readPracticesConfig reads and validates a practices file. Paths are as
// written (relative ones are relative to the file's folder: resolve).
func readPracticesConfig(path string) (*practicesConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parsePracticesConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parsePracticesConfig decodes strictly: unknown fields, fields of another
// kind, missing and malformed fields are errors naming the field and the
// practice.
func parsePracticesConfig(b []byte) (*practicesConfig, error) {
	var top struct {
		PDS       json.RawMessage   `json:"pds"`
		Snapshots json.RawMessage   `json:"snapshots"`
		Practices []json.RawMessage `json:"practices"`
	}
	if err := strictDecode(b, &top); err != nil {
		return nil, err
	}
	c := &practicesConfig{}
	if len(top.PDS) > 0 && string(top.PDS) != "null" {
		c.PDS = &pdsConfig{}
		if err := strictDecode(top.PDS, c.PDS); err != nil {
			return nil, fmt.Errorf("pds: %w", err)
		}
		if err := c.PDS.validate(); err != nil {
			return nil, fmt.Errorf("pds: %w", err)
		}
	}
	if len(top.Snapshots) > 0 && string(top.Snapshots) != "null" {
		c.Snapshots = &snapshotConfig{}
		if err := strictDecode(top.Snapshots, c.Snapshots); err != nil {
			return nil, fmt.Errorf("snapshots: %w", err)
		}
		if c.Snapshots.MaxBytes < 0 {
			return nil, fmt.Errorf("snapshots: \"max_bytes\" must be positive")
		}
	}
	seen := map[string]int{}
	for i, raw := range top.Practices {
		var head struct {
			ODS  string `json:"ods"`
			Kind string `json:"kind"`
		}
		_ = json.Unmarshal(raw, &head)
		label := fmt.Sprintf("practice %d", i+1)
		if head.ODS != "" {
			label += " (" + head.ODS + ")"
		}
		var p practiceConfig
		if err := strictDecode(raw, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(raw, &keys)
		if err := p.validate(keys); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if j, dup := seen[p.ODS]; dup {
			return nil, fmt.Errorf("%s: ODS code %s is already used by practice %d", label, p.ODS, j)
		}
		seen[p.ODS] = i + 1
		c.Practices = append(c.Practices, p)
	}
	return c, nil
}

// strictDecode decodes one JSON value, refusing unknown fields and
// trailing data, with messages that name the field.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("field %q: expected %s", te.Field, te.Type)
		}
		if s, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("unknown field %s", s)
		}
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON object")
	}
	return nil
}

func (c *pdsConfig) validate() error {
	switch {
	case (c.URL == "") == (c.Recorded == ""):
		return fmt.Errorf("exactly one of \"url\" (live PDS) and \"recorded\" (a folder of PDS Patients) is required")
	case c.URL != "" && !httpURL(c.URL):
		return fmt.Errorf("\"url\" must be an absolute http(s) URL")
	case c.Recorded != "" && (c.TokenURL != "" || c.ClientID != "" || c.Key != ""):
		return fmt.Errorf("\"token_url\", \"client_id\" and \"key\" go with \"url\", not \"recorded\"")
	}
	return tokenFields(c.TokenURL, c.ClientID, c.Key)
}

func tokenFields(tokenURL, clientID, key string) error {
	n := 0
	for _, s := range []string{tokenURL, clientID, key} {
		if s != "" {
			n++
		}
	}
	switch {
	case n != 0 && n != 3:
		return fmt.Errorf("\"token_url\", \"client_id\" and \"key\" go together (SMART Backend Services to the upstream)")
	case tokenURL != "" && !httpURL(tokenURL):
		return fmt.Errorf("\"token_url\" must be an absolute http(s) URL")
	}
	return nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// kindKey names the field list a practice is checked against.
func (p *practiceConfig) kindKey() string {
	if p.Kind == "gpconnect" && p.Recorded != "" {
		return "gpconnect-recorded"
	}
	return p.Kind
}

// validate checks one practice entry; keys are the fields present.
func (p *practiceConfig) validate(keys map[string]json.RawMessage) error {
	if p.ODS == "" {
		return fmt.Errorf("\"ods\" is required")
	}
	if !fhir.ValidODS(p.ODS) {
		return fmt.Errorf("\"ods\" %q is not an ODS code (3 to 12 capital letters and digits)", p.ODS)
	}
	switch p.Kind {
	case "":
		return fmt.Errorf("\"kind\" is required (%s)", configurableKinds)
	case embedded.Kind:
		return fmt.Errorf("kind %q is not configurable: embedded practices come from the store in the data directory", p.Kind)
	}
	allowed, ok := kindFields[p.kindKey()]
	if !ok {
		return fmt.Errorf("unknown kind %q (configurable kinds: %s)", p.Kind, configurableKinds)
	}
	var stray []string
	for k := range keys {
		if k != "ods" && k != "name" && k != "kind" && !slices.Contains(allowed, k) {
			stray = append(stray, k)
		}
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		what := "kind " + p.Kind
		if p.kindKey() == "gpconnect-recorded" {
			what = "a recorded gpconnect practice"
		}
		return fmt.Errorf("field %q is not used by %s (its fields: %s)", stray[0], what, strings.Join(allowed, ", "))
	}
	need := func(field, v string) error {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%q is required for kind %s", field, p.Kind)
		}
		return nil
	}
	switch p.kindKey() {
	case "gp2gp":
		return need("dir", p.Dir)
	case "gpconnect-recorded":
		return nil
	case "gpconnect":
		switch {
		case p.URL == "" && p.Emulator == nil:
			return fmt.Errorf("\"url\" (the provider's FHIR service root), \"emulator\" or \"recorded\" is required for kind gpconnect")
		case p.URL != "" && p.Emulator != nil:
			return fmt.Errorf("\"url\" and \"emulator\" exclude each other (the emulator's URL is chosen at start)")
		case p.URL != "" && !strings.HasPrefix(p.URL, "https://"):
			return fmt.Errorf("\"url\" must be https:// (GP Connect is mutual TLS)")
		}
		if p.URL != "" && !httpURL(p.URL) {
			return fmt.Errorf("\"url\" is not an absolute URL")
		}
		for _, f := range []struct{ name, v string }{{"cert", p.Cert}, {"key", p.Key}, {"ca", p.CA}, {"from_asid", p.FromASID}, {"to_asid", p.ToASID}} {
			if err := need(f.name, f.v); err != nil {
				return err
			}
		}
		if p.Emulator != nil {
			e := p.Emulator
			for _, f := range []struct{ name, v string }{{"emulator.recorded", e.Recorded}, {"emulator.cert", e.Cert}, {"emulator.key", e.Key}, {"emulator.client_ca", e.ClientCA}} {
				if err := need(f.name, f.v); err != nil {
					return err
				}
			}
			if e.Latency != "" {
				if d, err := time.ParseDuration(e.Latency); err != nil || d < 0 {
					return fmt.Errorf("\"emulator.latency\" %q is not a duration", e.Latency)
				}
			}
		}
	case "fhirapi":
		if err := need("url", p.URL); err != nil {
			return err
		}
		if !httpURL(p.URL) {
			return fmt.Errorf("\"url\" must be an absolute http(s) URL")
		}
		if err := tokenFields(p.TokenURL, p.ClientID, p.Key); err != nil {
			return err
		}
		if p.PageSize < 0 || p.PageSize > 1000 {
			return fmt.Errorf("\"page_size\" must be 1..1000")
		}
		if p.Retries != nil && (*p.Retries < 0 || *p.Retries > 10) {
			return fmt.Errorf("\"retries\" must be 0..10")
		}
	}
	if p.MaxConcurrent < 0 || p.MaxConcurrent > 1000 {
		return fmt.Errorf("\"max_concurrent\" must be 1..1000")
	}
	if p.Failures > 1000 {
		return fmt.Errorf("\"failures\" must be 1..1000")
	}
	if dl, at := p.deadline(), p.areaTimeout(); at >= dl {
		return fmt.Errorf("\"area_timeout\" (%s) must be shorter than \"deadline\" (%s): a slow area is left out before the whole answer fails", at, dl)
	}
	return nil
}

// live reports whether the practice is read live (guarded, snapshotted).
func (p *practiceConfig) live() bool {
	return p.Kind == "fhirapi" || (p.Kind == "gpconnect" && p.Recorded == "")
}

func (p *practiceConfig) deadline() time.Duration { return p.Deadline.or(defaultDeadline) }

func (p *practiceConfig) areaTimeout() time.Duration {
	if p.AreaTimeout > 0 {
		return time.Duration(p.AreaTimeout)
	}
	if dl := p.deadline(); dl <= defaultAreaTimeout {
		return dl * 4 / 5
	}
	return defaultAreaTimeout
}

func (p *practiceConfig) guard(log *slog.Logger) adapters.GuardOptions {
	return adapters.GuardOptions{Deadline: p.deadline(), MaxConcurrent: p.MaxConcurrent, Failures: p.Failures,
		OpenFor: time.Duration(p.OpenFor), Logger: log}
}

// resolve makes the file's relative paths absolute against base (the
// practices file's folder).
func (c *practicesConfig) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if c.PDS != nil {
		abs(&c.PDS.Recorded)
		abs(&c.PDS.Key)
	}
	for i := range c.Practices {
		p := &c.Practices[i]
		for _, f := range []*string{&p.Dir, &p.PDS, &p.Manifest, &p.Recorded, &p.Cert, &p.Key, &p.CA} {
			abs(f)
		}
		if p.Emulator != nil {
			e := *p.Emulator
			for _, f := range []*string{&e.Recorded, &e.Cert, &e.Key, &e.ClientCA} {
				abs(f)
			}
			p.Emulator = &e
		}
	}
}

// writePracticesConfig writes the file atomically (0600: it names key files).
func writePracticesConfig(path string, c *practicesConfig) error {
	if c.Practices == nil {
		c.Practices = []practiceConfig{}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if _, err := parsePracticesConfig(b); err != nil {
		return fmt.Errorf("refusing to write an invalid practices file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".practices-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// practicesPath is the practices file serve and the practices verb use:
// the flag when given, else DATA/practices.json when it exists ("" when
// neither).
func practicesPath(flagValue, data string) string {
	if flagValue != "" {
		return flagValue
	}
	p := filepath.Join(data, practicesFile)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// registered is what registerPractices set up.
type registered struct {
	count   int
	reindex []string // practices whose patient lists change on disk
	live    []string // practices read live (guarded)
}

// registerPractices registers every practice of the embedded store (when
// there is one) and of the practices file (when given): gp2gp folders and
// recorded GP Connect folders are indexed; live GP Connect and FHIR API
// practices go through adapters.Live (guard + the shared snapshot cache).
func registerPractices(ctx context.Context, reg *adapters.Registry, store *embedded.Store, cfg *practicesConfig, env *sourceEnv) (registered, error) {
	var out registered
	wrap := func(_ string, src adapters.Source) adapters.Source { return src }
	if env != nil && env.wrap != nil {
		wrap = env.wrap // serve times every source for metrics
	}
	if store != nil {
		practices, err := store.Practices()
		if err != nil {
			return out, err
		}
		for _, p := range practices {
			if err := reg.Register(ctx, adapters.Practice{ODS: p.ODS, Name: p.Name, Kind: embedded.Kind, Source: wrap(p.ODS, store.Source(p.ODS))}); err != nil {
				return out, err
			}
			out.count++
		}
	}
	if cfg == nil {
		return out, nil
	}
	for _, p := range cfg.Practices {
		src, err := env.source(ctx, p)
		if err != nil {
			return out, fmt.Errorf("practice %s: %w", p.ODS, err)
		}
		switch {
		case p.live():
			out.live = append(out.live, p.ODS)
		default:
			out.reindex = append(out.reindex, p.ODS)
		}
		name := p.Name
		if name == "" {
			name = p.ODS
		}
		if err := reg.Register(ctx, adapters.Practice{ODS: p.ODS, Name: name, Kind: p.Kind, Source: wrap(p.ODS, src)}); err != nil {
			return out, err
		}
		out.count++
	}
	return out, nil
}

// reindexLoop picks up new and removed patients of folder practices, in
// the registry serving now (SIGHUP replaces it).
func reindexLoop(ctx context.Context, regs *liveRegistry, folders func() []string, every time.Duration, log *slog.Logger) {
	tickEvery(ctx, every, func() {
		reg := regs.get()
		for _, o := range folders() {
			if err := reg.Reindex(ctx, o); err != nil {
				log.Warn("reindex failed", "practice", o, "err", err)
			}
		}
	})
}

// tickEvery calls fn every interval until ctx ends (and returns then).
func tickEvery(ctx context.Context, every time.Duration, fn func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// gp2gpSource builds a gp2gp folder source.
func gp2gpSource(p practiceConfig, log *slog.Logger) (adapters.Source, error) {
	return gp2gp.New(gp2gp.Options{Dir: p.Dir, PDSDir: p.PDS, ManifestPath: p.Manifest, Practice: p.ODS, Logger: log})
}
