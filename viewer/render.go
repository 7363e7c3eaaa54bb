package viewer

import (
	"bytes"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// page is everything a template may render. Its parts are view models
// built from coded fields; no resource JSON reaches a template.
type page struct {
	Title   string
	Session *session
	Message *message
	Next    string // the "continue" page's destination
	SignIn  *signInData
	Find    *findData
	Patient *patientData
	Record  *recordPage
}

type message struct {
	Kind    string // info | warning | error
	Heading string
	Body    string
}

type pages struct {
	t map[string]*template.Template
}

var funcs = template.FuncMap{
	"base": func() string { return Base },
	"join": strings.Join,
	"dict": dict,
}

// dict builds a map for passing several values to a sub-template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: keys must be strings")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// parsePages parses the layout with each page template.
func parsePages(v *Viewer) (*pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	var shared []string
	var pageFiles []string
	for _, n := range names {
		if strings.HasPrefix(n, "templates/_") {
			shared = append(shared, n)
		} else {
			pageFiles = append(pageFiles, n)
		}
	}
	ps := &pages{t: map[string]*template.Template{}}
	for _, f := range pageFiles {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, append(shared, f)...)
		if err != nil {
			return nil, err
		}
		ps.t[name] = t
	}
	return ps, nil
}

// render executes a page into a buffer first, so a template error never
// sends half a page.
func (v *Viewer) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t := v.pages.t[name]
	var buf bytes.Buffer
	if t == nil {
		v.log.Error("viewer template missing", "template", name)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		v.log.Error("viewer template failed", "template", name, "err", err)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers an error from the core or the viewer itself: coded errors
// in words, anything else as a generic failure with the detail in the log.
func (v *Viewer) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	fe := fhir.AsError(err)
	status := fe.Status()
	m := &message{Kind: "error", Heading: "Something went wrong", Body: "The viewer could not complete this request. Try again; if it keeps failing, tell your administrator."}
	switch fe.Code {
	case fhir.CodeTimeout:
		m = &message{Kind: "error", Heading: "The GP system did not answer in time", Body: "Try again in a moment."}
	case fhir.CodeInternal:
		v.log.Error("viewer request failed", "err", fe.Cause)
	default:
		v.log.Warn("viewer request refused", "code", string(fe.Code))
	}
	v.render(w, r, status, "message", &page{Title: m.Heading, Session: s, Message: m})
}
