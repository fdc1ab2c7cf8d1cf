package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// SVG layout, in pixels.
const (
	svgWidth   = 960
	svgLeft    = 70
	svgRight   = 150 // legend
	svgTop     = 60
	svgPanel   = 170
	svgGap     = 45
	svgPlotW   = svgWidth - svgLeft - svgRight
	svgHeight  = svgTop + 3*svgPanel + 2*svgGap + 40
	svgMaxXTix = 10
)

// series is one line or stacked band of a panel.
type series struct {
	name, color string
	value       func(Sample) float64
}

// WriteSVG draws r's timeline: queue depth (visible and in flight),
// instances by state (stacked), and arrivals and completions so far.
func WriteSVG(w io.Writer, r Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("%s on %s: %d requests, drain %v", r.Policy, r.Workload, r.Requests, roughly(r.Drain))
	if r.P99 > 0 {
		title += fmt.Sprintf(", p99 %v", roughly(r.P99))
	}
	if r.InstanceSeconds > 0 {
		title += fmt.Sprintf(", %.0f instance-s", r.InstanceSeconds)
	}
	title += fmt.Sprintf(", max fleet %d", r.MaxFleet)
	fmt.Fprintf(bw, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", svgLeft, html.EscapeString(title))
	end := r.Duration
	if n := len(r.Samples); n > 0 {
		end = max(end, r.Samples[n-1].At)
	}
	panels := []struct {
		title   string
		stacked bool
		series  []series
	}{
		{title: "queue (messages)", series: []series{
			{"visible", "#d62728", func(s Sample) float64 { return float64(s.Visible) }},
			{"in flight", "#ff7f0e", func(s Sample) float64 { return float64(s.InFlight) }},
		}},
		{title: "instances by state", stacked: true, series: []series{
			{"running", "#2ca02c", func(s Sample) float64 { return float64(s.Running) }},
			{"pending", "#bcbd22", func(s Sample) float64 { return float64(s.Pending) }},
			{"stopping", "#7f7f7f", func(s Sample) float64 { return float64(s.Stopping) }},
			{"stopped", "#aec7e8", func(s Sample) float64 { return float64(s.Stopped) }},
		}},
		{title: "requests so far", series: []series{
			{"arrived", "#1f77b4", func(s Sample) float64 { return float64(s.Arrived) }},
			{"completed", "#9467bd", func(s Sample) float64 { return float64(s.Completed) }},
		}},
	}
	for i, p := range panels {
		top := svgTop + i*(svgPanel+svgGap)
		panel(bw, top, p.title, p.stacked, p.series, r.Samples, end)
	}
	fmt.Fprintf(bw, `<text x="%d" y="%d" text-anchor="middle">time (minutes)</text>`+"\n",
		svgLeft+svgPlotW/2, svgHeight-8)
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

// panel draws one panel with its axes, series and legend.
func panel(w io.Writer, top int, title string, stacked bool, ss []series, samples []Sample, end time.Duration) {
	total := func(s Sample, upTo int) float64 {
		var v float64
		for _, x := range ss[:upTo+1] {
			v += x.value(s)
		}
		return v
	}
	var ymax float64
	for _, s := range samples {
		for j, x := range ss {
			v := x.value(s)
			if stacked {
				v = total(s, j)
			}
			ymax = max(ymax, v)
		}
	}
	ymax = niceCeil(ymax)
	xOf := func(t time.Duration) float64 {
		if end <= 0 {
			return svgLeft
		}
		return svgLeft + float64(svgPlotW)*t.Seconds()/end.Seconds()
	}
	yOf := func(v float64) float64 { return float64(top+svgPanel) - float64(svgPanel)*v/ymax }

	fmt.Fprintf(w, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", svgLeft, top-8, html.EscapeString(title))
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", svgLeft, top, svgPlotW, svgPanel)
	for k := 0; k <= 5; k++ { // y grid
		v := ymax * float64(k) / 5
		y := yOf(v)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, svgLeft, y, svgLeft+svgPlotW, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-6, y+4, trimFloat(v))
	}
	step := niceCeil(end.Minutes() / svgMaxXTix)
	for m := 0.0; m <= end.Minutes()+1e-9 && step > 0; m += step { // x ticks
		x := xOf(time.Duration(m * float64(time.Minute)))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/>`, x, top+svgPanel, x, top+svgPanel+4)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+svgPanel+16, trimFloat(m))
	}
	for j := len(ss) - 1; j >= 0; j-- {
		x := ss[j]
		var pts strings.Builder
		for _, s := range samples {
			v := x.value(s)
			if stacked {
				v = total(s, j)
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", xOf(s.At), yOf(v))
		}
		if stacked && len(samples) > 0 { // close the band down to the axis
			fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f", xOf(samples[len(samples)-1].At), yOf(0), xOf(samples[0].At), yOf(0))
			fmt.Fprintf(w, `<polygon points="%s" fill="%s" stroke="none"/>`+"\n", pts.String(), x.color)
		} else {
			fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", pts.String(), x.color)
		}
		ly := top + 14 + 18*j
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			svgLeft+svgPlotW+12, ly-10, x.color, svgLeft+svgPlotW+30, ly, html.EscapeString(x.name))
	}
}

// roughly rounds d to seconds from a minute up, else to tenths.
func roughly(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
