// Package promtext writes (and, for tests and tools, reads back) the subset of
// the Prometheus text exposition format 0.0.4 that elastiq exports: counters,
// gauges and histograms with labels. It is a few hundred lines instead of the
// Prometheus client library and its dependencies.
package promtext

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ContentType is the media type of the text format this package writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Label is one label pair of a sample.
type Label struct {
	Name, Value string
}

// Sample is one value of a counter or gauge family.
type Sample struct {
	Labels []Label
	Value  float64
}

// CounterVec is a set of counters that share a name and label names. It is
// safe for concurrent use.
type CounterVec struct {
	names []string

	mu     sync.Mutex
	values map[string]*counterEntry
}

type counterEntry struct {
	labels []string
	value  float64
}

// NewCounterVec returns a counter set keyed by the given label names.
func NewCounterVec(labelNames ...string) *CounterVec {
	return &CounterVec{names: labelNames, values: make(map[string]*counterEntry)}
}

// Add adds delta to the counter with the given label values, one per label
// name, in order. It panics if the number of values is wrong: that is a
// programming error, like a bad format string.
func (c *CounterVec) Add(delta float64, labelValues ...string) {
	if len(labelValues) != len(c.names) {
		panic(fmt.Sprintf("promtext: %d label values for %d label names", len(labelValues), len(c.names)))
	}
	key := strings.Join(labelValues, "\xff")
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.values[key]
	if !ok {
		e = &counterEntry{labels: slices.Clone(labelValues)}
		c.values[key] = e
	}
	e.value += delta
}

// Inc adds one to the counter with the given label values.
func (c *CounterVec) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Value returns the counter with the given label values (0 if never set).
func (c *CounterVec) Value(labelValues ...string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.values[strings.Join(labelValues, "\xff")]; ok {
		return e.value
	}
	return 0
}

// Samples returns the counters, sorted by label values.
func (c *CounterVec) Samples() []Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Sample, 0, len(keys))
	for _, k := range keys {
		e := c.values[k]
		labels := make([]Label, len(c.names))
		for i, n := range c.names {
			labels[i] = Label{Name: n, Value: e.labels[i]}
		}
		out = append(out, Sample{Labels: labels, Value: e.value})
	}
	return out
}

// Histogram counts observations into cumulative buckets. It is safe for
// concurrent use.
type Histogram struct {
	upper []float64

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// NewHistogram returns a histogram with the given bucket upper bounds, which
// must be finite and strictly increasing; a +Inf bucket is implied.
func NewHistogram(upperBounds ...float64) *Histogram {
	for i, u := range upperBounds {
		if math.IsInf(u, 0) || math.IsNaN(u) || (i > 0 && u <= upperBounds[i-1]) {
			panic(fmt.Sprintf("promtext: bucket bounds %v must be finite and strictly increasing", upperBounds))
		}
	}
	return &Histogram{upper: slices.Clone(upperBounds), counts: make([]uint64, len(upperBounds)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.upper, v) // first bound >= v: le is inclusive
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[i]++
	h.sum += v
	h.count++
}

// HistogramSnapshot is a histogram's state at one moment.
type HistogramSnapshot struct {
	// Upper bounds and cumulative counts, the +Inf bucket last.
	Upper      []float64
	Cumulative []uint64
	Sum        float64
	Count      uint64
}

// Snapshot returns the histogram's current state.
func (h *Histogram) Snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := HistogramSnapshot{
		Upper:      append(slices.Clone(h.upper), math.Inf(1)),
		Cumulative: make([]uint64, len(h.counts)),
		Sum:        h.sum,
		Count:      h.count,
	}
	var run uint64
	for i, c := range h.counts {
		run += c
		s.Cumulative[i] = run
	}
	return s
}

// Writer writes metric families. The first write error sticks and is
// reported by Err; later writes do nothing.
type Writer struct {
	w   io.Writer
	err error
}

// NewWriter returns a Writer to w. Wrap w in a bufio.Writer for many families.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Err returns the first write error.
func (w *Writer) Err() error { return w.err }

// Counter writes a counter family.
func (w *Writer) Counter(name, help string, samples ...Sample) {
	w.family(name, "counter", help, samples)
}

// Gauge writes a gauge family.
func (w *Writer) Gauge(name, help string, samples ...Sample) {
	w.family(name, "gauge", help, samples)
}

// Histogram writes a histogram family from a snapshot.
func (w *Writer) Histogram(name, help string, s HistogramSnapshot) {
	w.header(name, "histogram", help)
	for i, u := range s.Upper {
		w.sample(name+"_bucket", []Label{{Name: "le", Value: formatFloat(u)}}, float64(s.Cumulative[i]))
	}
	w.sample(name+"_sum", nil, s.Sum)
	w.sample(name+"_count", nil, float64(s.Count))
}

func (w *Writer) family(name, typ, help string, samples []Sample) {
	w.header(name, typ, help)
	for _, s := range samples {
		w.sample(name, s.Labels, s.Value)
	}
}

func (w *Writer) header(name, typ, help string) {
	w.printf("# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func (w *Writer) sample(name string, labels []Label, v float64) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.Name)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l.Value))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
	w.printf("%s", b.String())
}

func (w *Writer) printf(format string, args ...any) {
	if w.err != nil {
		return
	}
	_, w.err = fmt.Fprintf(w.w, format, args...)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
