package face

import (
	"math"
	"slices"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Open-set decisions: is the nearest enrolled person the one in the photo,
// or is it someone who is not enrolled?
//
// A fixed similarity threshold leaks as the gallery grows, because a
// stranger's best similarity is a maximum over every enrolled person and
// grows with their number: at the default threshold on the LFW sample,
// 0.1% of strangers were named with 10 people enrolled and 5% with 107
// (services/worker/classify/README.md has the figures and the command
// behind them).
//
// So a name also has to stand out. A face's z is how many standard
// deviations its best similarity lies above its similarities to a cohort of
// other enrolled faces, those of the nearest person left out (test-score
// normalisation). Below the Certain similarity a name needs z of at least
// the gallery's MinZ. MinZ is calibrated from the gallery alone, each time
// it changes (calibrate): enrolled faces are searched against the others
// as if their person were not enrolled, which is what a stranger is, and
// the largest z among those impostors is fitted with a Gumbel distribution,
// the limit law of a maximum. MinZ is where that distribution leaves
// FalseMatchRate above it. The raw similarity could not be calibrated so:
// photos sent to be recognised score higher against the gallery than the
// gallery's own photos score against each other, while their z does not.

const (
	// MinZPeople is the fewest enrolled people for which z is computed;
	// with fewer, the threshold alone decides.
	MinZPeople = 20
	// cohortSize bounds the faces a query's z is computed over (a spread
	// sample of the gallery when it holds more), so that z costs the same
	// at 100,000 faces as at 500.
	cohortSize = 512
	// calibrationProbes bounds the enrolled faces that calibrate MinZ.
	calibrationProbes = 256
	// eulerGamma is the Euler–Mascheroni constant: the Gumbel
	// distribution's mean is its location plus eulerGamma times its scale.
	eulerGamma = 0.5772156649015329
)

// MinZ is the least z the current gallery is calibrated to (0: none, the
// threshold alone decides; fewer than MinZPeople people are enrolled, or
// FalseMatchRate is 0).
func (c *Classifier) MinZ() float64 { return c.gallery.Load().minZ }

// rule is how a face's nearest person is named: at a similarity of at
// least threshold, and, below certain, a z of at least minZ (0: no z
// needed).
type rule struct {
	threshold, certain, minZ float64
}

// name reports whether a face nearest to someone at similarity sim, with
// z (nil when the gallery has too few people for one), names them.
func (r rule) name(sim float64, z *float64) bool {
	switch {
	case sim < r.threshold:
		return false
	case sim >= r.certain || r.minZ <= 0 || z == nil:
		return true
	default:
		return *z >= r.minZ
	}
}

// prepare picks g's cohort and calibrates its MinZ for falseMatchRate (0:
// no z rule). Call it once the faces are added.
func (g *gallery) prepare(falseMatchRate float64) {
	n := g.x.len()
	if len(g.x.labels) < MinZPeople {
		return
	}
	g.cohort = spread(n, cohortSize)
	if falseMatchRate > 0 {
		g.minZ = g.calibrate(falseMatchRate)
	}
}

// spread returns at most m indices spread evenly over [0, n).
func spread(n, m int) []int {
	out := make([]int, min(n, m))
	for i := range out {
		out[i] = i * n / len(out)
	}
	return out
}

// z is how far sim, the similarity of query q to its nearest person
// (label index nearest), stands above q's similarities to the cohort's
// faces of other people, in standard deviations; also leaving out the
// faces of label index skip (-1: none). It is nil without a cohort.
func (g *gallery) z(q []float32, sim float64, nearest, skip int32) *float64 {
	if len(g.cohort) == 0 {
		return nil
	}
	var n int
	var mean, m2 float64 // Welford's running mean and sum of squares
	for _, f := range g.cohort {
		if l := g.x.label[f]; l == nearest || l == skip {
			continue
		}
		s := float64(g.x.similarity(f, q))
		n++
		d := s - mean
		mean += d / float64(n)
		m2 += d * (s - mean)
	}
	if n < 2 || m2 <= 0 {
		return nil
	}
	z := (sim - mean) / math.Sqrt(m2/float64(n-1))
	return &z
}

// faceZ is z for a query whose nearest person is label (by name).
func (g *gallery) faceZ(q []float32, sim float64, label string) *float64 {
	l, ok := g.x.byLabel[label]
	if !ok {
		return nil
	}
	return g.z(q, sim, l, -1)
}

// nearestZ is z for a query whose nearest people are cands (nil when
// there are none).
func (g *gallery) nearestZ(q []float32, cands []elastiq.Candidate) *float64 {
	if len(cands) == 0 {
		return nil
	}
	return g.faceZ(q, cands[0].Similarity, cands[0].Label)
}

// calibrate returns the z that impostors exceed with probability
// falseMatchRate: each probe (up to calibrationProbes enrolled faces,
// spread over the gallery) is searched as if its person were not enrolled,
// its best impostor's z kept, and the sample of those maxima fitted with a
// Gumbel distribution by its mean and standard deviation.
func (g *gallery) calibrate(falseMatchRate float64) float64 {
	var zs []float64
	for _, p := range spread(g.x.len(), calibrationProbes) {
		q := g.x.embedding(p)
		own := g.x.label[p]
		hits := g.x.search(q, Shortlist)
		i := slices.IndexFunc(hits, func(h hit) bool { return g.x.label[h.face] != own })
		if i < 0 {
			continue
		}
		h := hits[i]
		if z := g.z(q, float64(h.sim), g.x.label[h.face], own); z != nil {
			zs = append(zs, *z)
		}
	}
	if len(zs) < 2 {
		return 0
	}
	var mean, sd float64
	for _, z := range zs {
		mean += z
	}
	mean /= float64(len(zs))
	for _, z := range zs {
		sd += (z - mean) * (z - mean)
	}
	sd = math.Sqrt(sd / float64(len(zs)-1))
	scale := sd * math.Sqrt(6) / math.Pi
	location := mean - eulerGamma*scale
	return location - scale*math.Log(-math.Log(1-falseMatchRate))
}
