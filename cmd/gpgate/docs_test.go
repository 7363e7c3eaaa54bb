package main

// The documentation's examples, run: docs/api.md's raw HTTP exchanges
// against a demo server, and the error tables of docs/api.md and
// README.md against the codes gpgate answers with. A change to the wire
// contract that the docs do not follow fails here.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

// repoFile reads a file of the repository (cmd/gpgate is two below it).
func repoFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fence is one fenced code block of a Markdown file.
type fence struct {
	info string // the info string: "http", "json assertion system", "sh"...
	text string
	line int
	// skip is the reason an HTML comment `<!-- readme-test: skip ... -->`
	// just before the block gives, if any; needs the path (from the
	// repository) a `<!-- readme-test: needs PATH -->` comment names.
	skip, needs string
}

var testComment = regexp.MustCompile(`^<!--\s*readme-test:\s*(skip|needs)\b(.*?)-->\s*$`)

func fences(md string) []fence {
	var out []fence
	var cur *fence
	var body []string
	lastComment, lastNeeds := "", ""
	sc := bufio.NewScanner(strings.NewReader(md))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if cur == nil {
			if info, ok := strings.CutPrefix(line, "```"); ok {
				cur = &fence{info: strings.TrimSpace(info), line: n, skip: lastComment, needs: lastNeeds}
				body = nil
				continue
			}
			if m := testComment.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				arg := strings.TrimSpace(m[2])
				if m[1] == "needs" {
					lastNeeds = arg
				} else if lastComment = arg; arg == "" {
					lastComment = "skipped"
				}
			} else if strings.TrimSpace(line) != "" {
				lastComment, lastNeeds = "", ""
			}
			continue
		}
		if strings.TrimSpace(line) == "```" {
			cur.text = strings.Join(body, "\n")
			out = append(out, *cur)
			cur, lastComment, lastNeeds = nil, "", ""
			continue
		}
		body = append(body, line)
	}
	return out
}

// docVars are the {{name}} values of the examples.
type docVars map[string]string

var placeholder = regexp.MustCompile(`\{\{([^{}]+)\}\}`)

// fill substitutes every {{name}} of s; sign signs {{assertion:NAME}}.
func (v docVars) fill(t *testing.T, s string, sign func(name string) string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-2]
		switch {
		case strings.HasPrefix(name, "assertion:"):
			return sign(strings.TrimPrefix(name, "assertion:"))
		case name == "jti":
			var b [12]byte
			_, _ = rand.Read(b[:])
			return hex.EncodeToString(b[:])
		case name == "now":
			return time.Now().UTC().Format(time.RFC3339)
		case strings.HasPrefix(name, "now+"):
			d, err := time.ParseDuration(strings.TrimPrefix(name, "now+"))
			if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			return time.Now().Add(d).UTC().Format(time.RFC3339)
		}
		val, ok := v[name]
		if !ok {
			t.Fatalf("%s is used before an answer gives it", m)
		}
		return val
	})
}

// match matches actual against a template of literal text, "..." (any
// text) and {{name}} (a known value, or a new one captured).
func (v docVars) match(tmpl, actual string) bool {
	var re strings.Builder
	var names []string
	re.WriteString(`(?s)^`)
	rest := tmpl
	for rest != "" {
		i := strings.Index(rest, "{{")
		j := strings.Index(rest, "...")
		switch {
		case i < 0 && j < 0:
			re.WriteString(regexp.QuoteMeta(rest))
			rest = ""
		case j >= 0 && (i < 0 || j < i):
			re.WriteString(regexp.QuoteMeta(rest[:j]) + `.*`)
			rest = rest[j+3:]
		default:
			re.WriteString(regexp.QuoteMeta(rest[:i]))
			k := strings.Index(rest[i:], "}}")
			name := rest[i+2 : i+k]
			if val, ok := v[name]; ok {
				re.WriteString(regexp.QuoteMeta(val))
			} else {
				re.WriteString(`(.+?)`)
				names = append(names, name)
			}
			rest = rest[i+k+2:]
		}
	}
	re.WriteString(`$`)
	m := regexp.MustCompile(re.String()).FindStringSubmatch(actual)
	if m == nil {
		return false
	}
	for i, name := range names {
		v[name] = m[i+1]
	}
	return true
}

// matchJSON checks that actual holds what the documented answer shows:
// every member shown (arrays: every element shown matches some element),
// "..." for any value.
func (v docVars) matchJSON(exp, act any, path string) error {
	switch e := exp.(type) {
	case map[string]any:
		a, ok := act.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: not an object", path)
		}
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			av, ok := a[k]
			if !ok {
				return fmt.Errorf("%s.%s is missing", path, k)
			}
			if err := v.matchJSON(e[k], av, path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		a, ok := act.([]any)
		if !ok {
			return fmt.Errorf("%s: not an array", path)
		}
		for i, ee := range e {
			var last error
			found := false
			for _, ae := range a {
				trial := docVars{}
				for k, x := range v {
					trial[k] = x
				}
				if last = trial.matchJSON(ee, ae, fmt.Sprintf("%s[%d]", path, i)); last == nil {
					for k, x := range trial {
						v[k] = x
					}
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("no element of %s matches the one shown: %v", path, last)
			}
		}
	case string:
		if e == "..." {
			return nil
		}
		a, ok := act.(string)
		if !ok || !v.match(e, a) {
			return fmt.Errorf("%s = %v, documented %q", path, act, e)
		}
	default:
		if fmt.Sprint(exp) != fmt.Sprint(act) {
			return fmt.Errorf("%s = %v, documented %v", path, act, exp)
		}
	}
	return nil
}

// httpMessage splits a raw HTTP message into its first line, headers and
// body.
func httpMessage(raw string) (first string, headers [][2]string, body string) {
	lines := strings.Split(raw, "\n")
	first = strings.TrimSpace(lines[0])
	i := 1
	for ; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		if strings.TrimSpace(l) == "" {
			i++
			break
		}
		k, val, _ := strings.Cut(l, ":")
		headers = append(headers, [2]string{strings.TrimSpace(k), strings.TrimSpace(val)})
	}
	if i < len(lines) {
		body = strings.Join(lines[i:], "\n")
	}
	return first, headers, strings.TrimSpace(body)
}

func TestAPIDoc(t *testing.T) {
	s := startServer(t)
	doc := repoFile(t, "docs/api.md")
	key, err := os.ReadFile(filepath.Join(s.dir, demoKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	k, err := smart.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	vars := docVars{"base": s.base, "kid": k.KeyID()}
	claims := map[string]string{}
	sign := func(name string) string {
		tmpl, ok := claims[name]
		if !ok {
			t.Fatalf("no assertion %q is documented before its use", name)
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(vars.fill(t, tmpl, nil)), &c); err != nil {
			t.Fatalf("assertion %s: %v", name, err)
		}
		if c["iss"] != demoClientID {
			t.Fatalf("assertion %s: the examples sign as %s", name, demoClientID)
		}
		for _, n := range []string{"iat", "exp", "nbf"} { // NumericDate
			if s, ok := c[n].(string); ok {
				at, err := time.Parse(time.RFC3339, s)
				if err != nil {
					t.Fatalf("assertion %s %s: %v", name, n, err)
				}
				c[n] = at.Unix()
			}
		}
		payload, _ := json.Marshal(c)
		hdr := jws.NewHeaders()
		_ = hdr.Set(jws.KeyIDKey, k.KeyID())
		_ = hdr.Set(jws.TypeKey, "JWT")
		b, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(k.Algorithm().String()), k, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	var last *http.Response
	var lastBody []byte
	var lastReq string
	exchanges := 0
	for _, f := range fences(doc) {
		fields := strings.Fields(f.info)
		switch {
		case len(fields) == 3 && fields[0] == "json" && fields[1] == "assertion":
			claims[fields[2]] = f.text
		case f.info == "http" && strings.HasPrefix(f.text, "HTTP/"):
			if last == nil {
				t.Fatalf("docs/api.md:%d: a response with no request before it", f.line)
			}
			checkDocResponse(t, vars, f, last, lastBody, lastReq)
			last = nil
		case f.info == "http":
			if last != nil {
				t.Fatalf("docs/api.md:%d: the request before this one shows no response", f.line)
			}
			first, headers, body := httpMessage(f.text)
			parts := strings.Fields(first)
			if len(parts) != 3 {
				t.Fatalf("docs/api.md:%d: request line %q", f.line, first)
			}
			lastReq = fmt.Sprintf("docs/api.md:%d %s %s", f.line, parts[0], parts[1])
			body = vars.fill(t, body, sign)
			req, err := http.NewRequest(parts[0], s.base+vars.fill(t, parts[1], sign), strings.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", lastReq, err)
			}
			for _, h := range headers {
				req.Header.Set(h[0], vars.fill(t, h[1], sign))
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", lastReq, err)
			}
			lastBody, _ = io.ReadAll(res.Body)
			res.Body.Close()
			if res.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(lastBody))
				if err != nil {
					t.Fatalf("%s: %v", lastReq, err)
				}
				if lastBody, err = io.ReadAll(zr); err != nil {
					t.Fatalf("%s: %v", lastReq, err)
				}
			}
			last = res
			exchanges++
		}
	}
	if last != nil {
		t.Fatalf("%s: no documented response", lastReq)
	}
	if exchanges < 12 {
		t.Fatalf("only %d exchanges found in docs/api.md", exchanges)
	}
	checkErrorTable(t, "docs/api.md", doc)
}

func checkDocResponse(t *testing.T, vars docVars, f fence, res *http.Response, body []byte, req string) {
	t.Helper()
	first, headers, want := httpMessage(f.text)
	parts := strings.Fields(first)
	if len(parts) < 2 {
		t.Fatalf("docs/api.md:%d: status line %q", f.line, first)
	}
	if code, _ := strconv.Atoi(parts[1]); code != res.StatusCode {
		t.Fatalf("%s: status %d, documented %d: %s", req, res.StatusCode, code, truncateBody(body))
	}
	for _, h := range headers {
		got := res.Header.Get(h[0])
		if mt, _, ok := strings.Cut(got, ";"); ok && !strings.Contains(h[1], ";") {
			got = strings.TrimSpace(mt) // a media type documented without its parameters
		}
		if !vars.match(h[1], got) {
			t.Fatalf("%s: %s: %q, documented %q", req, h[0], got, h[1])
		}
	}
	if want == "" {
		return
	}
	var exp, act any
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("docs/api.md:%d: the documented body is not JSON: %v", f.line, err)
	}
	if err := json.Unmarshal(body, &act); err != nil {
		t.Fatalf("%s: the answer is not JSON: %v", req, err)
	}
	if err := vars.matchJSON(exp, act, "body"); err != nil {
		t.Fatalf("%s: %v\nanswer: %s", req, err, truncateBody(body))
	}
}

var codeRow = regexp.MustCompile("^\\|\\s*`([A-Z_]+)`\\s*\\|\\s*(\\d{3})\\s*\\|")

// checkErrorTable checks that the document's table of error codes lists
// exactly the codes gpgate answers with, each with its status.
func checkErrorTable(t *testing.T, name, md string) {
	t.Helper()
	got := map[fhir.Code]int{}
	for _, line := range strings.Split(md, "\n") {
		if m := codeRow.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			st, _ := strconv.Atoi(m[2])
			got[fhir.Code(m[1])] = st
		}
	}
	want := fhir.Codes()
	for c, st := range want {
		if g, ok := got[c]; !ok {
			t.Errorf("%s: the error table lacks %s (%d)", name, c, st)
		} else if g != st {
			t.Errorf("%s: %s is documented %d, answered %d", name, c, g, st)
		}
	}
	for c := range got {
		if _, ok := want[c]; !ok {
			t.Errorf("%s: the error table lists %s, which gpgate never answers", name, c)
		}
	}
}
