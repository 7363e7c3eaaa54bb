package main

import (
	"io"
	"net"
	"net/http"
	"sync"
)

// baseline is the bare-bytes baseline: a plain net/http server on loopback
// that answers each request gpgate was asked at setup with the exact bytes
// gpgate answered. Driving it exactly as gpgate is driven measures what
// HTTP, the loopback and the load generator cost on this machine, so
// gpgate/baseline is the share of the machine gpgate's own work leaves.
type baseline struct {
	mu      sync.RWMutex
	answers map[string][]byte
	srv     *http.Server
	url     string
}

func newBaseline() *baseline { return &baseline{answers: map[string][]byte{}} }

func baselineKey(method, path string, body []byte) string {
	return method + " " + path + "\x00" + string(body)
}

func (b *baseline) put(method, path string, body, answer []byte) {
	b.mu.Lock()
	b.answers[baselineKey(method, path, body)] = answer
	b.mu.Unlock()
}

func (b *baseline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	if len(body) == 0 {
		body = nil
	}
	b.mu.RLock()
	a, ok := b.answers[baselineKey(r.Method, r.URL.RequestURI(), body)]
	b.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	_, _ = w.Write(a)
}

// start serves on a free loopback port.
func (b *baseline) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.srv = &http.Server{Handler: b}
	b.url = "http://" + ln.Addr().String()
	go b.srv.Serve(ln)
	return nil
}

func (b *baseline) close() {
	if b.srv != nil {
		b.srv.Close()
	}
}
