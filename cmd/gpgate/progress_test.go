package main

import (
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	t.Run("a line per tenth when not a terminal", func(t *testing.T) {
		var b strings.Builder
		p := newProgress(&b, "gpgate demo", "patients", 20)
		p.now, p.start = now, clock
		for i := 0; i < 20; i++ {
			clock = clock.Add(100 * time.Millisecond)
			p.Add(1)
		}
		p.Finish()
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 10 {
			t.Fatalf("%d lines:\n%s", len(lines), b.String())
		}
		if lines[0] != "gpgate demo:  10% 2/20 patients, 10/s, 2s left" || lines[9] != "gpgate demo: 100% 20/20 patients, 10/s, 2s" {
			t.Fatalf("lines:\n%s", b.String())
		}
	})
	t.Run("a bar redrawn on a terminal", func(t *testing.T) {
		var b strings.Builder
		p := newProgress(&b, "gpgate demo", "patients", 4)
		p.now, p.start, p.tty = now, clock, true
		for i := 0; i < 4; i++ {
			clock = clock.Add(time.Second)
			p.Add(1)
		}
		p.Finish()
		out := b.String()
		if strings.Count(out, "\r") != 5 || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "[######..................]  25% 1/4 patients, 1/s, 3s left") ||
			!strings.Contains(out, "[########################] 100% 4/4 patients, 1/s, 4s") {
			t.Fatalf("%q", out)
		}
	})
	t.Run("nothing to do", func(t *testing.T) {
		var b strings.Builder
		p := newProgress(&b, "x", "items", 0)
		p.Add(0)
		p.Finish()
		if b.Len() != 0 {
			t.Fatalf("%q", b.String())
		}
	})
}
