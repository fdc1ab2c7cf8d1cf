package main

import (
	"encoding/csv"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStateGauges(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]map[string]float64
		wantErr string
	}{
		{
			name: "web tier metrics",
			text: `# HELP elastiq_request_queue_messages Approximate messages on the request queue, by state.
# TYPE elastiq_request_queue_messages gauge
elastiq_request_queue_messages{state="visible"} 42
elastiq_request_queue_messages{state="in_flight"} 3
# HELP elastiq_fleet_instances Worker instances, by state.
# TYPE elastiq_fleet_instances gauge
elastiq_fleet_instances{state="pending"} 2
elastiq_fleet_instances{state="running"} 1
elastiq_fleet_instances{state="shutting-down"} 0
elastiq_web_http_requests_total{pattern="POST /",code="200"} 100
`,
			want: map[string]map[string]float64{
				metricQueue:     {"visible": 42, "in_flight": 3},
				metricInstances: {"pending": 2, "running": 1, "shutting-down": 0},
			},
		},
		{
			name: "other labels, escapes, timestamp, float",
			text: `elastiq_fleet_instances{zone="a\"b,c}",state="running"} 1.5e+00 1700000000000` + "\n",
			want: map[string]map[string]float64{metricInstances: {"running": 1.5}},
		},
		{
			name: "no labels",
			text: "elastiq_request_queue_messages 7\n",
			want: map[string]map[string]float64{metricQueue: {"": 7}},
		},
		{
			name: "a prefix of a name is another metric",
			text: "elastiq_fleet_instances_total 9\n",
			want: map[string]map[string]float64{},
		},
		{name: "bad value", text: "elastiq_fleet_instances{state=\"running\"} many\n", wantErr: "line 1"},
		{name: "unterminated label", text: "elastiq_fleet_instances{state=\"running} 1\n", wantErr: "line 1"},
		{name: "no value", text: "# c\nelastiq_fleet_instances{state=\"running\"}\n", wantErr: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStateGauges(strings.NewReader(tt.text), metricQueue, metricInstances)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseStateGauges() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStateGauges() error = %v", err)
			}
			if !maps.EqualFunc(got, tt.want, maps.Equal) {
				t.Errorf("parseStateGauges() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteSeries(t *testing.T) {
	rows := []sample{
		{At: 0, Sent: 100, Scraped: true,
			Queue:     map[string]float64{"visible": 100, "in_flight": 0},
			Instances: map[string]float64{"pending": 3}},
		{At: 1500 * time.Millisecond, Sent: 100, Answered: 40, Correct: 39, Scraped: false},
		{At: 3 * time.Second, Sent: 100, Answered: 100, Correct: 99, Scraped: true,
			Queue:     map[string]float64{"visible": 0, "in_flight": 0},
			Instances: map[string]float64{"running": 3, "hibernated": 1}},
	}
	var buf strings.Builder
	if err := writeSeries(&buf, rows); err != nil {
		t.Fatal(err)
	}
	want := `t_s,sent,answered,correct,queue_visible,queue_in_flight,instances_pending,instances_running,instances_stopping,instances_stopped,instances_shutting-down,instances_terminated,instances_hibernated
0.000,100,0,0,100,0,3,0,0,0,0,0,0
1.500,100,40,39,,,,,,,,,
3.000,100,100,99,0,0,0,3,0,0,0,0,1
`
	if buf.String() != want {
		t.Errorf("writeSeries() =\n%s\nwant\n%s", buf.String(), want)
	}
}

// -series records the service's queue and fleet from GET /metrics, from
// before the first request until after the last answer.
func TestRunSeries(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	svc.metrics = func() string {
		return `elastiq_request_queue_messages{state="visible"} 5
elastiq_request_queue_messages{state="in_flight"} 2
elastiq_fleet_instances{state="running"} 4
`
	}
	url := svc.start(t)
	series := filepath.Join(t.TempDir(), "series.csv")

	out := mustRun(t, nil, "-url", url, "-dataset", dataset, "-series", series, "-series-every", "10ms", "-series-after", "50ms")
	if strings.Contains(out.stderr, "series:") {
		t.Errorf("stderr warns about the series, want no warning")
	}
	rows := readCSV(t, series)
	if len(rows) < 3 {
		t.Fatalf("series has %d rows, want a header and at least 2 samples", len(rows))
	}
	if got, want := strings.Join(rows[0][:8], ","), "t_s,sent,answered,correct,queue_visible,queue_in_flight,instances_pending,instances_running"; got != want {
		t.Errorf("series header starts %q, want %q", got, want)
	}
	if got, want := strings.Join(rows[len(rows)-1][1:8], ","), "100,100,100,5,2,0,4"; got != want {
		t.Errorf("last sample = %q, want %q (all answered, the service's gauges)", got, want)
	}
}

// Against a service without /metrics, the series still records the load
// generator's own columns and warns once.
func TestRunSeriesWithoutMetrics(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	url := svc.start(t)
	series := filepath.Join(t.TempDir(), "series.csv")

	out := mustRun(t, nil, "-url", url, "-dataset", dataset, "-series", series, "-series-every", "10ms", "-series-after", "50ms")
	if got := strings.Count(out.stderr, "series: scrape "+url+"/metrics: HTTP 404"); got != 1 {
		t.Errorf("stderr has %d warnings about the scrape, want 1", got)
	}
	rows := readCSV(t, series)
	if got, want := strings.Join(rows[len(rows)-1][1:6], ","), "100,100,100,,"; got != want {
		t.Errorf("last sample = %q, want %q", got, want)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return rows
}
