package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Workload is an arrival pattern: the arrival times after a quiet lead-in.
type Workload struct {
	Name string
	// LeadIn is how long the system runs idle before the first arrival
	// (the policies settle into their idle fleet: empty for classic, the
	// warm pool for backlog). Costs in it are reported apart.
	LeadIn time.Duration
	// Arrivals returns the arrival times after LeadIn, ascending, drawn
	// from rng.
	Arrivals func(rng *rand.Rand) []time.Duration
}

// Times draws the workload's arrivals for seed.
func (w Workload) Times(seed uint64) []time.Duration {
	if w.Arrivals == nil {
		return nil
	}
	ts := w.Arrivals(rand.New(rand.NewPCG(seed, 0xa771fa1)))
	slices.Sort(ts)
	return ts
}

// DefaultLeadIn is the idle time before the standard workloads: long
// enough for a warm pool to be launched, boot and stop.
const DefaultLeadIn = 10 * time.Minute

// Burst is n requests at once after leadIn (the course's workload is 100).
func Burst(n int, leadIn time.Duration) Workload {
	name := fmt.Sprintf("burst-%d", n)
	if leadIn == 0 {
		name += "-cold"
	}
	return Workload{Name: name, LeadIn: leadIn, Arrivals: func(*rand.Rand) []time.Duration {
		return make([]time.Duration, n)
	}}
}

// Poisson is a Poisson process of rate requests per second for d.
func Poisson(rate float64, d time.Duration, leadIn time.Duration) Workload {
	return Workload{
		Name:   fmt.Sprintf("poisson-%g/s", rate),
		LeadIn: leadIn,
		Arrivals: func(rng *rand.Rand) []time.Duration {
			return thin(rng, d, rate, func(time.Duration) float64 { return rate })
		},
	}
}

// Day is one day of traffic compressed into d: the rate follows
// trough + (peak-trough) * sin²(π(h-4)/24) over the hour of day h, lowest
// at 04:00 and highest at 16:00. Only the arrivals are compressed (one hour
// of day lasts d/24); instance and service times are not, so the curve is
// 24h/d times steeper for the fleet than a real day.
func Day(trough, peak float64, d time.Duration, leadIn time.Duration) Workload {
	rate := func(t time.Duration) float64 {
		h := 24 * t.Seconds() / d.Seconds()
		s := math.Sin(math.Pi * (h - 4) / 24)
		return trough + (peak-trough)*s*s
	}
	return Workload{
		Name:   fmt.Sprintf("day-%g-%g/s", trough, peak),
		LeadIn: leadIn,
		Arrivals: func(rng *rand.Rand) []time.Duration {
			return thin(rng, d, max(trough, peak), rate)
		},
	}
}

// thin draws a non-homogeneous Poisson process on [0, d) with rate(t) <=
// bound by thinning a homogeneous one of rate bound.
func thin(rng *rand.Rand, d time.Duration, bound float64, rate func(time.Duration) float64) []time.Duration {
	if bound <= 0 {
		return nil
	}
	var out []time.Duration
	for t := 0.0; ; {
		t += rng.ExpFloat64() / bound
		at := time.Duration(t * float64(time.Second))
		if at >= d {
			return out
		}
		if rng.Float64()*bound < rate(at) {
			out = append(out, at)
		}
	}
}

// Standard is the comparison's workload set: the course's burst of 100
// (after idle and cold), a burst of 1000, Poisson at four rates for an
// hour, and a day compressed into two hours.
func Standard() []Workload {
	return []Workload{
		Burst(100, DefaultLeadIn),
		Burst(100, 0),
		Burst(1000, DefaultLeadIn),
		Poisson(0.05, time.Hour, DefaultLeadIn),
		Poisson(0.5, time.Hour, DefaultLeadIn),
		Poisson(2, time.Hour, DefaultLeadIn),
		Poisson(5, time.Hour, DefaultLeadIn),
		Day(0.05, 4, 2*time.Hour, DefaultLeadIn),
	}
}
