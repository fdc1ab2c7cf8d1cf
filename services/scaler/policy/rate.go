package policy

import (
	"math"
	"time"
)

// RateEstimate turns counts of arrivals, reported at irregular times, into
// an arrival rate: an exponentially weighted moving average with time
// constant Window, so a burst of n raises it by about n/Window and it
// decays by 1/e every Window without arrivals. It reads no clock: the live
// scaler and the simulator feed it the same way. The zero value is not
// usable; set Window.
type RateEstimate struct {
	// Window is the averaging time constant.
	Window time.Duration

	rate float64
	last time.Time
}

// Add records n arrivals since the previous call, at now, and returns the
// estimate in arrivals per second. The first call only starts the clock;
// its arrivals count as if they spanned Window.
func (r *RateEstimate) Add(now time.Time, n int) float64 {
	w := r.Window.Seconds()
	if w <= 0 {
		return 0
	}
	if r.last.IsZero() {
		r.last = now
		r.rate = float64(n) / w
		return r.rate
	}
	dt := now.Sub(r.last).Seconds()
	if dt <= 0 {
		r.rate += float64(n) / w
		return r.rate
	}
	r.last = now
	decay := math.Exp(-dt / w)
	// The exact EWMA of a rate that was n/dt over the last dt.
	r.rate = r.rate*decay + float64(n)/dt*(1-decay)
	return r.rate
}

// Rate is the latest estimate.
func (r *RateEstimate) Rate() float64 { return r.rate }
