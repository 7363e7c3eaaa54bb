package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
)

// summary is the median over rounds of one (scenario, concurrency, target).
type summary struct {
	result
	Rounds int `json:"rounds"`
}

type cellKey struct {
	scenario string
	conc     int
	target   string
}

// summarise takes the median of every figure over the rounds (each figure
// on its own: the median throughput and the median p99 need not come from
// the same round) and the median of the per-round ratios.
func summarise(rs []result) map[cellKey]summary {
	groups := map[cellKey][]result{}
	for _, r := range rs {
		k := cellKey{r.Scenario, r.Concurrency, r.Target}
		groups[k] = append(groups[k], r)
	}
	out := map[cellKey]summary{}
	for k, g := range groups {
		pick := func(f func(result) float64) float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			return median(v)
		}
		s := summary{Rounds: len(g)}
		s.Target, s.Scenario, s.Concurrency = k.target, k.scenario, k.conc
		s.Throughput = pick(func(r result) float64 { return r.Throughput })
		s.MBps = pick(func(r result) float64 { return r.MBps })
		s.P50 = pick(func(r result) float64 { return r.P50 })
		s.P95 = pick(func(r result) float64 { return r.P95 })
		s.P99 = pick(func(r result) float64 { return r.P99 })
		s.Max = pick(func(r result) float64 { return r.Max })
		for _, r := range g {
			s.Ops += r.Ops
			s.Errors += r.Errors
			if s.FirstError == "" {
				s.FirstError = r.FirstError
			}
		}
		out[k] = s
	}
	return out
}

// ratio is the median over rounds of a's throughput over b's, pairing the
// rounds in order (each round runs both back to back).
func ratio(rs []result, scenario string, conc int, a, b string) (float64, bool) {
	var xs, ys []float64
	for _, r := range rs {
		if r.Scenario != scenario || r.Concurrency != conc {
			continue
		}
		switch r.Target {
		case a:
			xs = append(xs, r.Throughput)
		case b:
			ys = append(ys, r.Throughput)
		}
	}
	n := min(len(xs), len(ys))
	if n == 0 {
		return 0, false
	}
	v := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if ys[i] > 0 {
			v = append(v, xs[i]/ys[i])
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// printReport writes one table per scenario: each concurrency, gpgate's
// figures, the baseline's and the peer's, and the ratios.
func printReport(w io.Writer, scenarios []*scenario, concs []int, rs []result, havePeer bool) {
	sum := summarise(rs)
	for _, s := range scenarios {
		fmt.Fprintf(w, "\n## %s — %s\n\n", s.name, s.desc)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		hdr := "c\tgpgate ops/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\terrors\tbaseline ops/s\tbaseline p99 ms\tgpgate/baseline\t"
		if havePeer && len(s.peer) > 0 {
			hdr += "peer ops/s\tpeer p99 ms\tgpgate/peer\t"
		}
		fmt.Fprintln(tw, hdr)
		for _, c := range concs {
			g, ok := sum[cellKey{s.name, c, "gpgate"}]
			if !ok {
				continue
			}
			b := sum[cellKey{s.name, c, "baseline"}]
			line := fmt.Sprintf("%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.0f\t%.2f\t%s\t", c, g.Throughput, g.P50, g.P95, g.P99, g.Max, g.Errors, b.Throughput, b.P99, pct(rs, s.name, c, "gpgate", "baseline"))
			if havePeer && len(s.peer) > 0 {
				p := sum[cellKey{s.name, c, "peer"}]
				r, ok := ratio(rs, s.name, c, "gpgate", "peer")
				rs := "-"
				if ok {
					rs = fmt.Sprintf("%.1fx", r)
				}
				line += fmt.Sprintf("%.0f\t%.2f\t%s\t", p.Throughput, p.P99, rs)
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
		for _, c := range concs {
			for _, t := range []string{"gpgate", "baseline", "peer"} {
				if x := sum[cellKey{s.name, c, t}]; x.FirstError != "" {
					fmt.Fprintf(w, "  %s c=%d: %d errors; first: %s\n", t, c, x.Errors, x.FirstError)
				}
			}
		}
	}
}

func pct(rs []result, scenario string, conc int, a, b string) string {
	r, ok := ratio(rs, scenario, conc, a, b)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", r*100)
}

// machine describes where the figures were taken.
func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// rss reads a process's resident set from /proc: now, peak, and how much
// of it is anonymous (heap, stacks) and file-backed (mapped files, such as
// the embedded store's bbolt file).
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	v := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, val, ok := strings.Cut(l, ":"); ok {
			v[k] = strings.TrimSpace(val)
		}
	}
	return fmt.Sprintf("%s (peak %s; anonymous %s, file-backed %s)", v["VmRSS"], v["VmHWM"], v["RssAnon"], v["RssFile"])
}
