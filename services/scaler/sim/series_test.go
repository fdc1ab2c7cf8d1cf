package sim

import (
	"strings"
	"testing"
	"time"
)

// A series as loadgen writes it, the second row not scraped.
const loadgenSeries = `t_s,sent,answered,correct,queue_visible,queue_in_flight,instances_pending,instances_running,instances_stopping,instances_stopped,instances_shutting-down,instances_terminated
0.000,3,0,0,15,0,0,0,0,0,0,0
0.101,100,0,0,,,,,,,,
0.200,100,0,0,100,0,19,0,0,0,0,0
3.101,100,7,7,74,19,0,19,0,0,0,0
4.001,100,100,100,0,0,0,19,0,0,0,0
64.5,100,100,100,0,0,0,0,0,19,0,0
`

func TestReadSeries(t *testing.T) {
	samples, err := ReadSeries(strings.NewReader(loadgenSeries))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 5 {
		t.Fatalf("ReadSeries: %d samples, want 5 (one row not scraped)", len(samples))
	}
	want := Sample{At: 3101 * time.Millisecond, Visible: 74, InFlight: 19, Running: 19, Arrived: 100, Completed: 7}
	if samples[2] != want {
		t.Errorf("ReadSeries sample 2 = %+v, want %+v", samples[2], want)
	}
	r := SeriesResult("demo", samples)
	if r.Drain != 4001*time.Millisecond || r.Requests != 100 || r.MaxFleet != 19 || r.Duration != 64500*time.Millisecond {
		t.Errorf("SeriesResult = drain %v, requests %d, max fleet %d, duration %v; want 4.001s, 100, 19, 1m4.5s",
			r.Drain, r.Requests, r.MaxFleet, r.Duration)
	}
	for _, bad := range []string{"", "t_s,sent\n0,1\n", loadgenSeries[:strings.Index(loadgenSeries, "\n")] + "\nx,1,0,0,0,0,0,0,0,0,0,0\n"} {
		if _, err := ReadSeries(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadSeries(%.30q) = nil error, want one", bad)
		}
	}
}
