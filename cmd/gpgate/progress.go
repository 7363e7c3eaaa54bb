package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress reports long work: on a terminal, one line redrawn in place
// with a bar, the rate and the time left; otherwise (a log, a pipe, CI) a
// plain line at every tenth of the work. It is gpgate's one progress
// reporter: every verb with long work uses it.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	label string // what is counted, e.g. "patients"
	what  string // who reports, e.g. "gpgate demo"
	total int
	done  int
	start time.Time
	drawn time.Time // last redraw (terminal)
	step  int       // next tenth to report (plain)
	now   func() time.Time
}

// newProgress starts reporting work of total items to w.
func newProgress(w io.Writer, what, label string, total int) *progress {
	return &progress{w: w, tty: isTerminal(w), what: what, label: label, total: total, now: time.Now, start: time.Now(), step: 1}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Add counts n more items done.
func (p *progress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	now := p.now()
	if p.tty {
		if now.Sub(p.drawn) >= 100*time.Millisecond || p.done >= p.total {
			p.drawn = now
			fmt.Fprintf(p.w, "\r%s %s", p.what, p.status(now, true))
		}
		return
	}
	for p.total > 0 && p.step <= 10 && p.done*10 >= p.step*p.total {
		fmt.Fprintf(p.w, "%s: %s\n", p.what, p.status(now, false))
		p.step++
	}
}

// Finish ends the report (on a terminal, the line is left as it is).
func (p *progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s %s\n", p.what, p.status(p.now(), true))
	}
}

// status is "[#####.....] 50% 500/1000 patients, 120/s, 4s left".
func (p *progress) status(now time.Time, bar bool) string {
	el := now.Sub(p.start)
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el.Seconds()
	}
	pct := 100
	if p.total > 0 {
		pct = min(100, p.done*100/p.total)
	}
	var b strings.Builder
	if bar {
		const width = 24
		fill := pct * width / 100
		b.WriteString("[" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "] ")
	}
	fmt.Fprintf(&b, "%3d%% %d/%d %s, %.0f/s", pct, p.done, p.total, p.label, rate)
	switch {
	case p.done >= p.total:
		fmt.Fprintf(&b, ", %s", el.Round(100*time.Millisecond))
	case rate > 0:
		left := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", %s left", left.Round(time.Second))
	}
	return b.String()
}
