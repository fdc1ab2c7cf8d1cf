package policy

import (
	"slices"
	"time"
)

// RateEstimate turns counts of arrivals, reported at irregular times, into
// a sustained arrival rate that a single burst does not move: arrivals are
// counted in buckets of Bucket, and the rate is the median count of the
// last Buckets complete ones, per second. With the defaults (10 s, 3) a
// steady flow shows within 20 to 30 s and a burst inside one bucket is
// ignored (it is backlog, not rate). It reads no clock: the live scaler and
// the simulator feed it the same way.
type RateEstimate struct {
	// Bucket is the counting interval and Buckets how many complete ones
	// the median is taken over; zero values mean 10 s and 3.
	Bucket  time.Duration
	Buckets int

	start  time.Time // of the current bucket
	counts []int     // complete buckets, latest last
	cur    int       // arrivals in the current bucket
}

// Add records n arrivals since the previous call, at now, and returns the
// estimate in arrivals per second.
func (r *RateEstimate) Add(now time.Time, n int) float64 {
	size, keep := r.size()
	if r.start.IsZero() {
		r.start = now
	}
	for !now.Before(r.start.Add(size)) {
		r.counts = append(r.counts, r.cur)
		r.cur = 0
		r.start = r.start.Add(size)
		if len(r.counts) > keep {
			r.counts = r.counts[1:]
		}
		if now.Sub(r.start) > time.Duration(keep)*size { // long gap: all empty
			r.counts = make([]int, keep)
			r.start = now
		}
	}
	r.cur += n
	return r.Rate()
}

// Rate is the latest estimate: zero until Buckets buckets are complete.
func (r *RateEstimate) Rate() float64 {
	size, keep := r.size()
	if len(r.counts) < keep {
		return 0
	}
	c := slices.Clone(r.counts)
	slices.Sort(c)
	return float64(c[len(c)/2]) / size.Seconds()
}

func (r *RateEstimate) size() (time.Duration, int) {
	size, keep := r.Bucket, r.Buckets
	if size <= 0 {
		size = 10 * time.Second
	}
	if keep <= 0 {
		keep = 3
	}
	return size, keep
}
