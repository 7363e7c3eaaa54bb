package gpconnect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"unicode"

	"github.com/gpgate/gpgate/fhir"
)

// Why a recorded file is not served (the log's reason; never shown).
var (
	ErrNoNHSNumber = errors.New("gpconnect: recorded file names no valid NHS number, in its body or its name")
	ErrNHSMismatch = errors.New("gpconnect: recorded file's valid NHS number disagrees with its name")
	ErrConflict    = errors.New("gpconnect: several recorded files claim one NHS number and cannot be told apart")
)

// RecordedName is what a recorded response's file name says:
// <nhs>_<name>_<kind>_<date>.json (kind "full", date YYYYMMDD), as NHS
// Digital names its published test records. Only the NHS number part is
// required; Name, Kind and Date are "" when absent.
type RecordedName struct {
	NHS  string // the leading ten digits, as written (not checked)
	Name string // the patient's surname part
	Kind string
	Date string
}

// ParseRecordedName reads a recorded file's base name. ok is false when
// the name does not start with ten digits followed by "_" or ".json".
func ParseRecordedName(base string) (RecordedName, bool) {
	stem, ok := strings.CutSuffix(base, ".json")
	if !ok {
		if stem, ok = strings.CutSuffix(base, ".JSON"); !ok {
			return RecordedName{}, false
		}
	}
	parts := strings.Split(stem, "_")
	if len(parts[0]) != 10 {
		return RecordedName{}, false
	}
	for i := 0; i < 10; i++ {
		if parts[0][i] < '0' || parts[0][i] > '9' {
			return RecordedName{}, false
		}
	}
	n := RecordedName{NHS: parts[0]}
	if len(parts) > 1 {
		n.Name = parts[1]
	}
	if len(parts) > 2 {
		n.Kind = parts[2]
	}
	if len(parts) > 3 && len(parts[3]) == 8 {
		n.Date = parts[3]
	}
	return n, true
}

// Option configures a Recorded source.
type Option func(*Recorded)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(r *Recorded) { r.log = l } }

// WithMaxBytes bounds one recorded file (default DefaultMaxBytes).
func WithMaxBytes(n int64) Option { return func(r *Recorded) { r.max = n } }

// WithClock sets the clock used for timings in the log.
func WithClock(now func() time.Time) Option { return func(r *Recorded) { r.now = now } }

// Recorded serves records from a folder of recorded structured-record
// responses (*.json, one Bundle each). See the package documentation for
// how a file is bound to a patient. It is safe for concurrent use; every
// call re-scans the folder (one stat per file), so added, changed and
// removed files take effect at once, and converted records are cached by
// file identity (path, size, modification time).
type Recorded struct {
	dir string
	ods string
	log *slog.Logger
	max int64
	now func() time.Time

	mu    sync.Mutex
	files map[string]*recFile // path -> what a scan learned
}

type recFile struct {
	key      fileKey
	nhs      fhir.NHSNumber // bound patient ("" when refused)
	err      error          // why it is refused
	digest   string         // sha256 of the compacted body (identical responses)
	families []string
	name     RecordedName

	once sync.Once
	rec  *fhir.Record
	cerr error
}

type fileKey struct {
	Size  int64
	MTime int64
}

// NewRecorded returns a recorded source over dir for practice ods.
func NewRecorded(dir, ods string, opts ...Option) (*Recorded, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("gpconnect: %s is not a readable folder", dir)
	}
	if !fhir.ValidODS(ods) {
		return nil, fmt.Errorf("gpconnect: invalid practice ODS code")
	}
	r := &Recorded{dir: dir, ods: ods, max: DefaultMaxBytes, now: time.Now, files: map[string]*recFile{}}
	for _, o := range opts {
		o(r)
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r.log = r.log.With("source", "gpconnect-recorded", "practice", ods)
	return r, nil
}

// Patients lists the NHS numbers the folder serves.
func (r *Recorded) Patients(ctx context.Context) ([]fhir.NHSNumber, error) {
	idx, err := r.scan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]fhir.NHSNumber, 0, len(idx))
	for n := range idx {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Record converts the patient's recorded response, restricted to areas
// (the Patient is always included).
func (r *Recorded) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	idx, err := r.scan(ctx)
	if err != nil {
		return nil, err
	}
	path, ok := idx[nhs]
	if !ok {
		return nil, fhir.Errorf(fhir.CodePatientNotFound, "no GP Connect record is held for this patient at this practice")
	}
	r.mu.Lock()
	f := r.files[path]
	r.mu.Unlock()
	f.once.Do(func() { f.rec, f.cerr = r.convert(path, f) })
	if f.cerr != nil {
		return nil, f.cerr
	}
	return filter(f.rec, areas), nil
}

// Raw returns the recorded response bound to nhs as the file holds it
// (its Patient may carry a placeholder NHS number), for a provider
// emulator that answers with it.
func (r *Recorded) Raw(ctx context.Context, nhs fhir.NHSNumber) ([]byte, error) {
	idx, err := r.scan(ctx)
	if err != nil {
		return nil, err
	}
	path, ok := idx[nhs]
	if !ok {
		return nil, fhir.Errorf(fhir.CodePatientNotFound, "no GP Connect record is held for this patient at this practice")
	}
	body, err := readLimited(path, r.max)
	if err != nil {
		return nil, r.reject(path, err)
	}
	return body, nil
}

func (r *Recorded) convert(path string, f *recFile) (*fhir.Record, error) {
	start := r.now()
	body, err := readLimited(path, r.max)
	if err != nil {
		return nil, r.reject(path, err)
	}
	res, err := Convert(body, Options{NHS: f.nhs, Practice: r.ods})
	if err != nil {
		return nil, r.reject(path, err)
	}
	r.log.Info("gpconnect record converted", "file", fileRef(path), "bytes", len(body),
		"resources", len(res.Resources), "dropped", res.Dropped, "took", r.now().Sub(start))
	return &fhir.Record{
		NHS: f.nhs, PatientID: fhir.PatientID(f.nhs), Practice: r.ods,
		Version: version(body), Resources: res.Resources, Warnings: res.Warnings,
	}, nil
}

func (r *Recorded) reject(path string, err error) error {
	r.log.Warn("gpconnect recorded file rejected", "file", fileRef(path), "err", redact(err.Error()))
	return &fhir.Error{Code: fhir.CodeInternal, Diagnostics: "the GP Connect record held for this patient could not be read", Cause: err}
}

// scan binds each file to a patient (re-reading only changed files) and
// resolves conflicts; it returns NHS number -> path of the served files.
func (r *Recorded) scan(ctx context.Context) (map[fhir.NHSNumber]string, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("gpconnect: read folder: %w", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	claims := map[fhir.NHSNumber][]string{}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".json") {
			continue
		}
		p := filepath.Join(r.dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		seen[p] = true
		k := fileKey{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
		f := r.files[p]
		if f == nil || f.key != k {
			f = r.bind(p, k)
			r.files[p] = f
			if f.err != nil {
				r.log.Warn("gpconnect recorded file not served", "file", fileRef(p), "err", f.err)
			}
		}
		if f.err == nil {
			claims[f.nhs] = append(claims[f.nhs], p)
		}
	}
	for p := range r.files {
		if !seen[p] {
			delete(r.files, p)
		}
	}
	idx := make(map[fhir.NHSNumber]string, len(claims))
	for n, paths := range claims {
		if p := r.choose(paths); p != "" {
			idx[n] = p
		}
	}
	return idx, nil
}

// bind reads one file and decides which patient it is for.
func (r *Recorded) bind(path string, k fileKey) *recFile {
	f := &recFile{key: k}
	name, named := ParseRecordedName(filepath.Base(path))
	f.name = name
	body, err := readLimited(path, r.max)
	if err != nil {
		f.err = err
		return f
	}
	b, err := Parse(body)
	if err != nil {
		f.err = err
		return f
	}
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil {
		sum := sha256.Sum256(compact.Bytes())
		f.digest = hex.EncodeToString(sum[:])
	}
	f.families = b.PatientFamilies()
	own := b.PatientNHS()
	switch {
	case fhir.ValidNHSNumber(own) && named && name.NHS != own:
		f.err = ErrNHSMismatch
	case fhir.ValidNHSNumber(own):
		f.nhs = fhir.NHSNumber(own)
	case named && fhir.ValidNHSNumber(name.NHS):
		f.nhs = fhir.NHSNumber(name.NHS)
	default:
		f.err = ErrNoNHSNumber
	}
	return f
}

// choose picks the file served for one NHS number among those claiming it:
// identical responses (same JSON once whitespace is removed) are one
// response, served from the first file name in byte order; otherwise the
// one file whose name part matches a family name of its Patient is served;
// otherwise none is (ErrConflict, logged): a wrong record is worse than none.
func (r *Recorded) choose(paths []string) string {
	sort.Strings(paths)
	if len(paths) == 1 {
		return paths[0]
	}
	distinct := map[string]string{} // digest -> first path
	var order []string
	for _, p := range paths {
		d := r.files[p].digest
		if d == "" {
			d = "path:" + p
		}
		if _, ok := distinct[d]; !ok {
			distinct[d] = p
			order = append(order, p)
		}
	}
	if len(order) == 1 {
		r.log.Info("gpconnect recorded files are one response recorded more than once", "files", len(paths))
		return order[0]
	}
	var match []string
	for _, p := range order {
		f := r.files[p]
		for _, fam := range f.families {
			if f.name.Name != "" && letters(fam) == letters(f.name.Name) {
				match = append(match, p)
				break
			}
		}
	}
	if len(match) == 1 {
		r.log.Warn("gpconnect recorded files conflict; serving the one whose name matches its patient", "files", len(paths))
		return match[0]
	}
	r.log.Warn("gpconnect recorded files conflict; none served", "files", len(paths), "err", ErrConflict)
	return ""
}

func letters(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if unicode.IsLetter(c) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func filter(rec *fhir.Record, areas fhir.Areas) *fhir.Record {
	out := *rec
	out.Resources = make([]*fhir.Resource, 0, len(rec.Resources))
	for _, x := range rec.Resources {
		if x.Type == "Patient" || areas.Any(x.Ix.Area) {
			out.Resources = append(out.Resources, x)
		}
	}
	out.Warnings = append([]fhir.Issue(nil), rec.Warnings...)
	return &out
}

// version is the record version: a hash of the source bytes.
func version(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:12])
}

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
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrMalformed, max)
	}
	return data, nil
}

// fileRef names a file in the log without its name (recorded file names
// carry NHS numbers and surnames).
func fileRef(path string) string {
	sum := sha256.Sum256([]byte(filepath.Base(path)))
	return "f" + hex.EncodeToString(sum[:4])
}

// redact hides digit runs that could be NHS numbers in a log value.
func redact(s string) string { return longDigits.ReplaceAllString(s, "*") }

var longDigits = regexp.MustCompile(`[0-9]{6,}`)
