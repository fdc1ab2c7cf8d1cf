package policy

import (
	"math"
	"testing"
	"time"
)

func TestRateEstimate(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		feed func(r *RateEstimate) float64
		want float64
	}{
		{name: "first call spans the window", feed: func(r *RateEstimate) float64 { return r.Add(t0, 60) }, want: 1},
		{
			name: "steady rate converges to it",
			feed: func(r *RateEstimate) float64 {
				var got float64
				for i := range 3600 {
					got = r.Add(t0.Add(time.Duration(i)*time.Second), 2)
				}
				return got
			},
			want: 2,
		},
		{
			name: "burst adds n/window",
			feed: func(r *RateEstimate) float64 {
				r.Add(t0, 0)
				r.Add(t0.Add(time.Second), 0)
				return r.Add(t0.Add(time.Second+time.Millisecond), 120)
			},
			want: 2,
		},
		{
			name: "decays by 1/e per window",
			feed: func(r *RateEstimate) float64 {
				r.Add(t0, 60)
				return r.Add(t0.Add(time.Minute), 0)
			},
			want: math.Exp(-1),
		},
		{
			name: "same instant adds n/window",
			feed: func(r *RateEstimate) float64 {
				r.Add(t0, 0)
				return r.Add(t0, 30)
			},
			want: 0.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &RateEstimate{Window: time.Minute}
			got := tt.feed(r)
			if math.Abs(got-tt.want) > 0.01 || r.Rate() != got {
				t.Errorf("rate = %.4f (Rate() %.4f), want %.4f", got, r.Rate(), tt.want)
			}
		})
	}
	if got := (&RateEstimate{}).Add(t0, 5); got != 0 {
		t.Errorf("zero Window: Add = %v, want 0", got)
	}
}
