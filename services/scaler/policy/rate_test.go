package policy

import (
	"math"
	"testing"
	"time"
)

func TestRateEstimate(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// steady feeds perSecond arrivals every second for d, starting at t0.
	steady := func(r *RateEstimate, perSecond int, d time.Duration) float64 {
		var got float64
		for i := time.Duration(0); i <= d; i += time.Second {
			got = r.Add(at(i), perSecond)
		}
		return got
	}
	tests := []struct {
		name string
		feed func(r *RateEstimate) float64
		want float64
	}{
		{name: "nothing yet", feed: func(r *RateEstimate) float64 { return r.Add(t0, 60) }, want: 0},
		{name: "steady rate", feed: func(r *RateEstimate) float64 { return steady(r, 2, 5*time.Minute) }, want: 2},
		{name: "steady rate shows within 30 s", feed: func(r *RateEstimate) float64 { return steady(r, 3, 30*time.Second) }, want: 3},
		{
			name: "a burst is not a rate",
			feed: func(r *RateEstimate) float64 {
				r.Add(t0, 0)
				r.Add(at(15*time.Second), 1000)
				return r.Add(at(45*time.Second), 0)
			},
			want: 0,
		},
		{
			name: "burst on a steady rate",
			feed: func(r *RateEstimate) float64 {
				steady(r, 1, time.Minute)
				r.Add(at(61*time.Second), 1000)
				return r.Add(at(75*time.Second), 10)
			},
			want: 1,
		},
		{
			name: "gone after a long gap",
			feed: func(r *RateEstimate) float64 {
				steady(r, 5, time.Minute)
				return r.Add(at(time.Hour), 0)
			},
			want: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &RateEstimate{}
			got := tt.feed(r)
			if math.Abs(got-tt.want) > 0.01 || math.Abs(r.Rate()-got) > 0.01 {
				t.Errorf("rate = %.4f (Rate() %.4f), want %.4f", got, r.Rate(), tt.want)
			}
		})
	}
}
