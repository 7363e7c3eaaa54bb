package gp2gp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Options configures a GP2GP source.
type Options struct {
	Dir             string // folder of extracts (*.xml), one per patient
	PDSDir          string // folder of PDS-style R4 Patient resources (*.json)
	ManifestPath    string // optional; defaults to Dir/manifest.json when that file exists
	Practice        string // ODS code of the practice the extracts belong to
	Now             func() time.Time
	Logger          *slog.Logger
	MaxExtractBytes int64         // per-file limit; DefaultMaxExtractBytes when 0
	FlagCodes       []fhir.Coding // codes that are risks or warnings: PlanStatements with them become Flags
}

// Source serves patients' records from a folder of GP2GP extracts. It is
// safe for concurrent use. Every call re-scans the folders (a stat per file),
// so new, changed and removed files take effect without a restart; parsed
// records are cached by file identity (path, size, modification time) of the
// extract, its PDS file and the manifest binding, and are never served stale.
type Source struct {
	opt   Options
	log   *slog.Logger
	flags map[string]bool

	mu      sync.Mutex
	headers map[string]*header   // extract path -> what a scan learned
	pds     map[string]*pdsEntry // PDS file path -> patient
	records map[string]*recEntry // extract path + NHS -> mapped record
}

type fileKey struct {
	Path  string
	Size  int64
	MTime int64
}

func (k fileKey) String() string { return fmt.Sprintf("%s|%d|%d", k.Path, k.Size, k.MTime) }

type header struct {
	key fileKey
	nhs fhir.NHSNumber // the extract's own valid NHS number, or ""
	err error          // the file could not be read far enough to know
}

type pdsEntry struct {
	key fileKey
	nhs fhir.NHSNumber
	raw []byte
}

type recEntry struct {
	key  string
	once sync.Once
	rec  *fhir.Record
	err  error
}

// binding is one extract bound to one patient by the latest scan.
type binding struct {
	path string
	key  fileKey
	err  error // refused (mismatch, ambiguity, no NHS number)
}

// New returns a source over opt.Dir. The folders must exist; their content is
// read lazily and re-read when it changes.
func New(opt Options) (*Source, error) {
	if opt.Dir == "" || opt.PDSDir == "" || opt.Practice == "" {
		return nil, fmt.Errorf("gp2gp: Dir, PDSDir and Practice are required")
	}
	for _, d := range []string{opt.Dir, opt.PDSDir} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("gp2gp: %s is not a readable folder", d)
		}
	}
	if opt.ManifestPath == "" {
		if _, err := os.Stat(filepath.Join(opt.Dir, "manifest.json")); err == nil {
			opt.ManifestPath = filepath.Join(opt.Dir, "manifest.json")
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.MaxExtractBytes <= 0 {
		opt.MaxExtractBytes = DefaultMaxExtractBytes
	}
	s := &Source{
		opt: opt, log: opt.Logger.With("source", "gp2gp", "practice", opt.Practice),
		flags:   map[string]bool{},
		headers: map[string]*header{}, pds: map[string]*pdsEntry{}, records: map[string]*recEntry{},
	}
	for _, c := range opt.FlagCodes {
		s.flags[c.System+"|"+c.Code] = true
	}
	if opt.ManifestPath != "" {
		if _, err := ReadManifest(opt.ManifestPath); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Manifest binds extract files to NHS numbers: keys are paths (absolute, or
// relative to the manifest's folder), values NHS numbers.
type Manifest map[string]fhir.NHSNumber

// ReadManifest reads and checks a manifest file (see the package doc).
func ReadManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gp2gp: manifest: %w", err)
	}
	var raw map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("gp2gp: manifest %s: not a JSON object of path -> NHS number: %w", filepath.Base(path), err)
	}
	base := filepath.Dir(path)
	out := Manifest{}
	for p, n := range raw {
		nhs, err := fhir.ParseNHSNumber(n)
		if err != nil {
			return nil, fmt.Errorf("gp2gp: manifest %s: entry %s: invalid NHS number", filepath.Base(path), p)
		}
		if p == "" {
			return nil, fmt.Errorf("gp2gp: manifest %s: empty path", filepath.Base(path))
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		out[filepath.Clean(p)] = nhs
	}
	return out, nil
}

// WriteManifest writes a manifest binding each extract path to an NHS
// number; paths inside the manifest's folder are written relative to it.
func WriteManifest(path string, bindings map[string]fhir.NHSNumber) error {
	base := filepath.Dir(path)
	out := map[string]string{}
	for p, n := range bindings {
		if !fhir.ValidNHSNumber(string(n)) {
			return fmt.Errorf("gp2gp: write manifest: invalid NHS number for %s", filepath.Base(p))
		}
		if filepath.IsAbs(p) {
			if rel, err := filepath.Rel(base, p); err == nil && !strings.HasPrefix(rel, "..") {
				p = rel
			}
		}
		out[p] = string(n)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Patients lists the NHS numbers of the patients whose extracts are bound
// and not refused, after re-scanning the folder.
func (s *Source) Patients(ctx context.Context) ([]fhir.NHSNumber, error) {
	idx, err := s.scan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]fhir.NHSNumber, 0, len(idx))
	for n, b := range idx {
		if b.err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Record returns the patient's record mapped from their extract, restricted
// to areas (the Patient is always included).
func (s *Source) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	idx, err := s.scan(ctx)
	if err != nil {
		return nil, err
	}
	b, ok := idx[nhs]
	if !ok {
		return nil, fhir.Errorf(fhir.CodePatientNotFound, "no GP2GP extract is held for this patient at this practice")
	}
	if b.err != nil {
		return nil, s.reject(b.path, b.err)
	}
	pds, err := s.pdsFor(nhs)
	if err != nil {
		return nil, err
	}
	var pkey string
	var praw []byte
	if pds != nil {
		pkey, praw = pds.key.String(), pds.raw
	}
	key := b.key.String() + "#" + pkey
	ck := b.path + "#" + string(nhs)
	s.mu.Lock()
	e := s.records[ck]
	if e == nil || e.key != key {
		e = &recEntry{key: key}
		s.records[ck] = e
	}
	s.mu.Unlock()
	e.once.Do(func() { e.rec, e.err = s.build(ctx, b, nhs, praw, key) })
	if e.err != nil {
		if errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded) {
			s.mu.Lock()
			if s.records[ck] == e {
				delete(s.records, ck) // not a property of the file: retry next time
			}
			s.mu.Unlock()
		}
		return nil, e.err
	}
	return filter(e.rec, areas), nil
}

func filter(r *fhir.Record, areas fhir.Areas) *fhir.Record {
	out := *r
	out.Resources = make([]*fhir.Resource, 0, len(r.Resources))
	for _, x := range r.Resources {
		if x.Type == "Patient" || areas.Any(x.Ix.Area) {
			out.Resources = append(out.Resources, x)
		}
	}
	out.Warnings = append([]fhir.Issue(nil), r.Warnings...)
	return &out
}

func (s *Source) build(ctx context.Context, b binding, nhs fhir.NHSNumber, pds []byte, key string) (*fhir.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := s.opt.Now()
	data, err := readLimited(b.path, s.opt.MaxExtractBytes)
	if err != nil {
		return nil, s.reject(b.path, err)
	}
	x, err := ParseExtract(data, s.opt.MaxExtractBytes)
	if err != nil {
		return nil, s.reject(b.path, err)
	}
	if own, ok := x.NHSNumber(); ok && own != nhs {
		return nil, s.reject(b.path, ErrNHSMismatch)
	}
	m, err := x.Map(MapOptions{NHS: nhs, Practice: s.opt.Practice, Patient: pds, Flags: s.flags})
	if err != nil {
		return nil, s.reject(b.path, err)
	}
	sum := sha256.Sum256([]byte(key))
	rec := &fhir.Record{
		NHS:       nhs,
		PatientID: fhir.PatientID(nhs),
		Practice:  s.opt.Practice,
		Version:   hex.EncodeToString(sum[:8]),
		Resources: m.Resources,
		Warnings:  m.Warnings,
	}
	s.log.Info("gp2gp extract mapped", "file", redact(filepath.Base(b.path)), "bytes", len(data),
		"resources", len(m.Resources), "confidential", m.Confidential,
		"uncoded", m.Uncoded, "attachments", m.Attachments, "took", s.opt.Now().Sub(start))
	return rec, nil
}

// reject turns a refusal into the caller's error: an internal error (the
// caller learns only that the record could not be read) whose cause says why,
// for the log.
func (s *Source) reject(path string, err error) error {
	s.log.Warn("gp2gp extract rejected", "file", redact(filepath.Base(path)), "err", redactErr(err))
	return &fhir.Error{Code: fhir.CodeInternal, Diagnostics: "the GP2GP extract held for this patient could not be read", Cause: err}
}

var longDigits = regexp.MustCompile(`[0-9]{10,}`)

// redact hides anything that could be an NHS number in a log value.
func redact(s string) string { return longDigits.ReplaceAllString(s, "**********") }

func redactErr(err error) string { return redact(err.Error()) }

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w (limit %d bytes)", ErrTooLarge, max)
	}
	return data, nil
}

func statKey(path string) (fileKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileKey{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileKey{}, fmt.Errorf("not a regular file")
	}
	return fileKey{Path: path, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}, nil
}

// scan lists the extracts (Dir/*.xml and every manifest entry), learns each
// one's own NHS number (re-reading only files whose identity changed), applies
// the manifest and returns NHS number -> binding.
func (s *Source) scan(ctx context.Context) (map[fhir.NHSNumber]binding, error) {
	var man Manifest
	if s.opt.ManifestPath != "" {
		var err error
		if man, err = ReadManifest(s.opt.ManifestPath); err != nil {
			return nil, fhir.Internal(err)
		}
	}
	paths := map[string]bool{}
	ents, err := os.ReadDir(s.opt.Dir)
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("gp2gp: read %s: %w", s.opt.Dir, err))
	}
	for _, e := range ents {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			paths[filepath.Clean(filepath.Join(s.opt.Dir, e.Name()))] = true
		}
	}
	for p := range man {
		paths[p] = true
	}
	idx := map[fhir.NHSNumber]binding{}
	claimed := map[fhir.NHSNumber]int{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.headers {
		if !paths[p] {
			delete(s.headers, p)
		}
	}
	for p := range s.records {
		if !paths[p[:strings.LastIndexByte(p, '#')]] {
			delete(s.records, p)
		}
	}
	for _, p := range sortedKeys(paths) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, err := statKey(p)
		if err != nil {
			if _, listed := man[p]; listed {
				s.log.Warn("gp2gp manifest entry unreadable", "file", redact(filepath.Base(p)))
			}
			continue
		}
		h := s.headers[p]
		if h == nil || h.key != k {
			h = &header{key: k}
			h.nhs, h.err = peekNHS(p, s.opt.MaxExtractBytes)
			s.headers[p] = h
		}
		nhs, bound := man[p]
		b := binding{path: p, key: k}
		switch {
		case bound && h.nhs != "" && h.nhs != nhs:
			b.err = ErrNHSMismatch
			// Refused under both numbers: neither may be served from it.
			idx[h.nhs] = b
			claimed[h.nhs]++
		case bound:
		case h.nhs != "":
			nhs = h.nhs
		default:
			if h.err == nil {
				h.err = ErrNoNHSNumber
			}
			s.log.Warn("gp2gp extract not bound to a patient", "file", redact(filepath.Base(p)), "err", redactErr(h.err))
			continue
		}
		if claimed[nhs]++; claimed[nhs] > 1 {
			b.err = ErrAmbiguous // every extract claiming the number is refused
		}
		if b.err != nil {
			s.log.Warn("gp2gp extract refused", "file", redact(filepath.Base(p)), "err", b.err)
		}
		idx[nhs] = b
	}
	return idx, nil
}

// peekNHS reads just far enough into an extract to find
// recordTarget/patient/id/@extension and returns it when it is a valid NHS
// number. Any failure is left for the full parse to report.
func peekNHS(path string, max int64) (fhir.NHSNumber, error) {
	data, err := readLimited(path, max)
	if err != nil {
		return "", err
	}
	if hasDoctype(data) {
		return "", ErrHostile
	}
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	var stack []string
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", nil
			}
			return "", fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name.Local)
			if len(stack) > maxDepth {
				return "", ErrLimits
			}
			n := len(stack)
			if t.Name.Local == "id" && n >= 3 && stack[n-2] == "patient" && stack[n-3] == "recordTarget" {
				for _, a := range t.Attr {
					if a.Name.Local == "extension" {
						if v, err := fhir.ParseNHSNumber(strings.TrimSpace(a.Value)); err == nil {
							return v, nil
						}
					}
				}
			}
			if t.Name.Local == "ehrFolder" {
				return "", nil // past the header: no NHS number in it
			}
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
}

// pdsFor returns the PDS Patient for nhs, or nil (the record then carries an
// identifier-only Patient). PDS files are indexed by the NHS number
// identifier inside them.
func (s *Source) pdsFor(nhs fhir.NHSNumber) (*pdsEntry, error) {
	ents, err := os.ReadDir(s.opt.PDSDir)
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("gp2gp: read PDS folder: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var found *pdsEntry
	for _, e := range ents {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".json") {
			continue
		}
		p := filepath.Join(s.opt.PDSDir, e.Name())
		seen[p] = true
		k, err := statKey(p)
		if err != nil {
			continue
		}
		pe := s.pds[p]
		if pe == nil || pe.key != k {
			pe = &pdsEntry{key: k}
			if raw, err := readLimited(p, 1<<20); err == nil {
				pe.nhs, pe.raw = pdsNHS(raw), raw
			}
			s.pds[p] = pe
		}
		if pe.nhs == nhs && found == nil {
			found = pe
		}
	}
	for p := range s.pds {
		if !seen[p] {
			delete(s.pds, p)
		}
	}
	return found, nil
}

func pdsNHS(raw []byte) fhir.NHSNumber {
	var p struct {
		ResourceType string `json:"resourceType"`
		Identifier   []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if json.Unmarshal(raw, &p) != nil || p.ResourceType != "Patient" {
		return ""
	}
	for _, id := range p.Identifier {
		if id.System == fhir.NHSNumberSystem {
			if n, err := fhir.ParseNHSNumber(id.Value); err == nil {
				return n
			}
		}
	}
	return ""
}
