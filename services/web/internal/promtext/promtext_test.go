package promtext

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteParseRoundTrip(t *testing.T) {
	c := NewCounterVec("route", "code")
	c.Inc("POST /", "200")
	c.Inc("POST /", "200")
	c.Add(3, `odd "route"\`+"\n", "404")
	h := NewHistogram(0.001, 0.01, 0.1, 1)
	for _, v := range []float64{0.0005, 0.001, 0.05, 0.5, 7} {
		h.Observe(v)
	}

	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Counter("app_requests_total", "Requests by route\nand code.", c.Samples()...)
	w.Gauge("app_depth", "Queue depth.", Sample{Labels: []Label{{Name: "state", Value: "visible"}}, Value: 4})
	w.Histogram("app_latency_seconds", "Latency.", h.Snapshot())
	if err := w.Err(); err != nil {
		t.Fatalf("Writer.Err() = %v", err)
	}

	fams, err := Parse(&buf)
	if err != nil {
		t.Fatalf("Parse(written) error: %v\n%s", err, buf.String())
	}
	if len(fams) != 3 {
		t.Fatalf("Parse(written) = %d families, want 3", len(fams))
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, s := range f.Samples {
			got[s.Name+"|"+s.Labels["route"]+s.Labels["code"]+s.Labels["state"]+s.Labels["le"]] = s.Value
		}
	}
	for key, want := range map[string]float64{
		"app_requests_total|POST /200":            2,
		"app_requests_total|odd \"route\"\\\n404": 3,
		"app_depth|visible":                       4,
		"app_latency_seconds_bucket|0.001":        2, // le is inclusive
		"app_latency_seconds_bucket|0.01":         2,
		"app_latency_seconds_bucket|0.1":          3,
		"app_latency_seconds_bucket|1":            4,
		"app_latency_seconds_bucket|+Inf":         5,
		"app_latency_seconds_count|":              5,
		"app_latency_seconds_sum|":                7.5515,
	} {
		if got[key] != want {
			t.Errorf("sample %q = %v, want %v", key, got[key], want)
		}
	}
	if fams[0].Help != `Requests by route\nand code.` {
		t.Errorf("help = %q, want the newline escaped", fams[0].Help)
	}
}

func TestParseRejects(t *testing.T) {
	const head = "# HELP m help\n# TYPE m counter\n"
	tests := []struct {
		name, text string
	}{
		{name: "sample without header", text: "m 1\n"},
		{name: "type without help", text: "# TYPE m counter\nm 1\n"},
		{name: "unknown type", text: "# HELP m h\n# TYPE m summary\n"},
		{name: "foreign sample", text: head + "other 1\n"},
		{name: "bad value", text: head + "m one\n"},
		{name: "timestamp", text: head + "m 1 1700000000\n"},
		{name: "unterminated label", text: head + `m{a="x} 1` + "\n"},
		{name: "bad escape", text: head + `m{a="\t"} 1` + "\n"},
		{name: "duplicate series", text: head + `m{a="x"} 1` + "\n" + `m{a="x"} 2` + "\n"},
		{name: "negative counter", text: head + "m -1\n"},
		{name: "family twice", text: head + head},
		{name: "empty line", text: head + "\nm 1\n"},
		{name: "histogram not cumulative", text: "# HELP h h\n# TYPE h histogram\n" +
			`h_bucket{le="1"} 5` + "\n" + `h_bucket{le="+Inf"} 4` + "\nh_sum 1\nh_count 4\n"},
		{name: "histogram count mismatch", text: "# HELP h h\n# TYPE h histogram\n" +
			`h_bucket{le="+Inf"} 4` + "\nh_sum 1\nh_count 5\n"},
		{name: "histogram without +Inf", text: "# HELP h h\n# TYPE h histogram\n" +
			`h_bucket{le="1"} 4` + "\nh_sum 1\nh_count 4\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(tt.text)); err == nil {
				t.Errorf("Parse(%q) = nil error, want an error", tt.text)
			}
		})
	}
}
