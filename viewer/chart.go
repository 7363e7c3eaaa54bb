package viewer

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// bpChart is the blood-pressure chart as numbers for the SVG template:
// systolic and diastolic over time, each with its own marker shape (not
// colour alone), axes in mmHg and years. The readings table below it is
// the accessible equivalent.
type bpChart struct {
	W, H                     int
	Left, Right, Top, Bottom float64
	Mid                      float64 // vertical middle of the plot, for the axis title
	YTicks, XTicks           []tick
	Sys, Dia                 []point
	SysLine, DiaLine         string
	Summary                  string
}

type tick struct {
	Pos   float64
	Label string
}

type point struct {
	X, Y  float64
	Label string
}

func f1(x float64) string { return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64) }

func newBPChart(rows []bpRow, loc *time.Location) *bpChart {
	var rs []bpRow
	for _, r := range rows {
		if (r.hasSys || r.hasDia) && !r.at.IsZero() {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	c := &bpChart{W: 760, H: 300, Left: 56, Right: 744, Top: 16, Bottom: 260, Mid: 138}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rs {
		for _, v := range []struct {
			ok bool
			x  float64
		}{{r.hasSys, r.sys}, {r.hasDia, r.dia}} {
			if v.ok {
				lo, hi = math.Min(lo, v.x), math.Max(hi, v.x)
			}
		}
	}
	ymin := math.Max(0, math.Floor((lo-10)/20)*20)
	ymax := math.Ceil((hi+10)/20) * 20
	if ymax-ymin < 60 {
		ymax = ymin + 60
	}
	t0, t1 := rs[0].at, rs[len(rs)-1].at
	span := t1.Sub(t0).Seconds()
	x := func(t time.Time) float64 {
		if span <= 0 {
			return (c.Left + c.Right) / 2
		}
		return c.Left + (c.Right-c.Left)*t.Sub(t0).Seconds()/span
	}
	y := func(v float64) float64 { return c.Bottom - (c.Bottom-c.Top)*(v-ymin)/(ymax-ymin) }
	for v := ymin; v <= ymax; v += 20 {
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: strconv.Itoa(int(v))})
	}
	y0, y1 := t0.In(loc).Year(), t1.In(loc).Year()
	step := max(1, (y1-y0+1)/8)
	for yr := y0; yr <= y1+1; yr += step {
		t := time.Date(yr, 1, 1, 0, 0, 0, 0, loc)
		if t.Before(t0) || t.After(t1) {
			continue
		}
		c.XTicks = append(c.XTicks, tick{Pos: x(t), Label: strconv.Itoa(yr)})
	}
	if len(c.XTicks) == 0 {
		c.XTicks = append(c.XTicks, tick{Pos: x(t0), Label: t0.In(loc).Format(ukMonth)})
	}
	var sysPts, diaPts []string
	for _, r := range rs {
		px := x(r.at)
		if r.hasSys {
			p := point{X: px, Y: y(r.sys), Label: r.Date + ": systolic " + r.Systolic + " mmHg"}
			c.Sys = append(c.Sys, p)
			sysPts = append(sysPts, f1(p.X)+","+f1(p.Y))
		}
		if r.hasDia {
			p := point{X: px, Y: y(r.dia), Label: r.Date + ": diastolic " + r.Diastolic + " mmHg"}
			c.Dia = append(c.Dia, p)
			diaPts = append(diaPts, f1(p.X)+","+f1(p.Y))
		}
	}
	c.SysLine, c.DiaLine = strings.Join(sysPts, " "), strings.Join(diaPts, " ")
	last := rs[len(rs)-1]
	c.Summary = strconv.Itoa(len(rs)) + " blood pressure readings from " + t0.In(loc).Format(ukDate) + " to " +
		t1.In(loc).Format(ukDate) + "; the latest " + last.Systolic + "/" + last.Diastolic + " mmHg."
	return c
}
