package face

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

func TestRuleName(t *testing.T) {
	z := func(v float64) *float64 { return &v }
	r := rule{threshold: 0.40, certain: 0.50, minZ: 4}
	for _, c := range []struct {
		sim  float64
		z    *float64
		rule rule
		want bool
	}{
		{0.39, z(9), r, false},   // below the threshold, whatever z
		{0.45, z(3.9), r, false}, // below certain: z too low
		{0.45, z(4), r, true},    // below certain: z enough
		{0.50, z(1), r, true},    // certain: z not needed
		{0.45, nil, r, true},     // too few people for z: the threshold decides
		{0.45, z(1), rule{threshold: 0.40, certain: 0.50}, true}, // no z rule
		{0.30, z(1), rule{threshold: 0.20, certain: 0.25, minZ: 4}, true},
	} {
		if got := c.rule.name(c.sim, c.z); got != c.want {
			t.Errorf("%+v.name(%v, %v) = %v, want %v", c.rule, c.sim, c.z, got, c.want)
		}
	}
}

// syntheticGallery is n random people, one face each.
func syntheticGallery(rng *rand.Rand, n int, falseMatchRate float64) *gallery {
	faces := randomFaces(rng, n)
	labels := make([]string, n)
	emb := make([]float32, 0, n*Dim)
	for i, f := range faces {
		labels[i] = fmt.Sprint("person-", i)
		emb = append(emb, f...)
	}
	return newGallery(labels, emb, falseMatchRate)
}

// TestCalibrate: on galleries of random people, strangers (new random
// faces) reach the calibrated z at about the false-match rate asked for,
// and the people themselves, in new photos, reach it nearly always. Each
// gallery's least z comes from a fit to 100 probes, so one gallery's rate
// can be off by more than the fit's mean is; five galleries are averaged.
func TestCalibrate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const galleries, people, queries, rate = 5, 100, 1000, 0.01
	var named, found int
	for range galleries {
		g := syntheticGallery(rng, people, rate)
		if g.minZ <= 0 || len(g.cohort) != people {
			t.Fatalf("min z %v, cohort %d: want a calibrated z over all %d faces", g.minZ, len(g.cohort), people)
		}
		r := rule{threshold: -1, certain: 2, minZ: g.minZ} // z alone decides
		var gNamed int
		for range queries {
			q := unit(rng, nil, 0)
			h := g.nearestPeople(q, 1)[0]
			if r.name(h.Similarity, g.faceZ(q, h.Similarity, h.Label)) {
				gNamed++
			}
			// A new photo of an enrolled person, as similar as LFW's often are.
			p := rng.IntN(people)
			q = unit(rng, g.x.embedding(p), 0.45)
			h = g.nearestPeople(q, 1)[0]
			if h.Label == g.x.labels[p] && r.name(h.Similarity, g.faceZ(q, h.Similarity, h.Label)) {
				found++
			}
		}
		t.Logf("min z %.2f: %d of %d strangers named", g.minZ, gNamed, queries)
		named += gNamed
	}
	total := galleries * queries
	got := float64(named) / float64(total)
	t.Logf("for %g: %d of %d strangers named (%.2f%%), %d of %d enrolled people named right",
		rate, named, total, 100*got, found, total)
	if got < rate/3 || got > 3*rate {
		t.Errorf("strangers named at %.2f%%, want about %g%% (within a factor of 3)", 100*got, 100*rate)
	}
	if found < total*99/100 {
		t.Errorf("%d of %d enrolled people named right, want at least 99%%", found, total)
	}
}

// TestSmallGallery: with fewer than MinZPeople people there is no z, and
// the threshold alone decides; a FalseMatchRate of 0 keeps the cohort (z
// is still reported) but needs no z.
func TestSmallGallery(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := syntheticGallery(rng, MinZPeople-1, DefaultFalseMatchRate)
	q := unit(rng, nil, 0)
	if g.minZ != 0 || g.faceZ(q, 0.5, "person-0") != nil {
		t.Errorf("%d people: min z %v, z %v; want none", MinZPeople-1, g.minZ, g.faceZ(q, 0.5, "person-0"))
	}
	g = syntheticGallery(rng, MinZPeople, 0)
	if g.minZ != 0 || g.faceZ(q, 0.5, "person-0") == nil {
		t.Errorf("false-match rate 0: min z %v, z %v; want none, and a z", g.minZ, g.faceZ(q, 0.5, "person-0"))
	}
}

// lfwEmbeddings are the LFW sample's gallery and query faces, embedded as
// the gallery is (the mean of the face and its mirror image), for the
// tests that search them; faceless photos are left out.
type lfwEmbeddings struct {
	gallery, queries           [][]float32
	galleryLabels, queryLabels []string
}

var lfwOnce struct {
	sync.Mutex
	e *lfwEmbeddings
}

// embedLFW embeds the LFW sample once per test binary.
func embedLFW(t *testing.T) *lfwEmbeddings {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: runs the models on 371 photos")
	}
	lfwOnce.Lock()
	defer lfwOnce.Unlock()
	if lfwOnce.e != nil {
		return lfwOnce.e
	}
	dir := elastiqtest.LFWSample(t)
	c := openFace(t, func(cfg *Config) { cfg.Sessions = 2 })
	embed := func(dir string) ([][]float32, []string) {
		images, err := ListLabelled(dir)
		if err != nil {
			t.Fatal(err)
		}
		var embs [][]float32
		var labels []string
		for _, im := range images {
			b, err := os.ReadFile(filepath.Join(dir, im.Path))
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.Analyze(ctxT(t), b)
			if err != nil {
				continue // no face: nothing to search for
			}
			embs, labels = append(embs, f.Embedding), append(labels, im.Label)
		}
		return embs, labels
	}
	e := &lfwEmbeddings{}
	e.gallery, e.galleryLabels = embed(filepath.Join(dir, "gallery"))
	e.queries, e.queryLabels = embed(dir)
	lfwOnce.e = e
	return e
}

// TestOpenSetGrowth measures the open-set decision as the gallery grows:
// galleries of 10 to 107 of the LFW sample's people, drawn at random, each
// queried with every query photo; the photos of people not drawn count as
// strangers, with the 40 who are never enrolled. The calibrated rule must
// keep the strangers named near its false-match rate at every size, where
// a fixed threshold lets more through the more people are enrolled, and
// still name nearly everyone enrolled. go test -v prints the table that
// services/worker/classify/README.md quotes.
func TestOpenSetGrowth(t *testing.T) {
	e := embedLFW(t)
	people := slices.Compact(slices.Sorted(slices.Values(e.galleryLabels)))
	rng := rand.New(rand.NewPCG(5, 6))
	var table strings.Builder
	fmt.Fprintf(&table, "%8s %6s %8s | %-27s | %-27s\n", "people", "draws", "min z", "threshold alone: right, strangers named", "calibrated: right, strangers named")
	for _, n := range []int{10, 25, 50, 80, len(people)} {
		draws := 30
		if n == len(people) {
			draws = 1
		}
		var minZ float64
		var right, enrolled, strangers [2]int
		var named [2]int
		for range draws {
			chosen := make(map[string]bool, n)
			for _, i := range rng.Perm(len(people))[:n] {
				chosen[people[i]] = true
			}
			var labels []string
			var emb []float32
			for i, l := range e.galleryLabels {
				if chosen[l] {
					labels, emb = append(labels, l), append(emb, e.gallery[i]...)
				}
			}
			g := newGallery(labels, emb, DefaultFalseMatchRate)
			minZ += g.minZ / float64(draws)
			rules := [2]rule{
				{threshold: DefaultThreshold, certain: DefaultCertain},
				{threshold: DefaultThreshold, certain: DefaultCertain, minZ: g.minZ},
			}
			for i, q := range e.queries {
				h := g.nearestPeople(q, 1)[0]
				z := g.faceZ(q, h.Similarity, h.Label)
				for k, r := range rules {
					name := r.name(h.Similarity, z)
					if chosen[e.queryLabels[i]] {
						enrolled[k]++
						if name && h.Label == e.queryLabels[i] {
							right[k]++
						}
						continue
					}
					strangers[k]++
					if name {
						named[k]++
					}
				}
			}
		}
		pct := func(a, b int) float64 { return 100 * float64(a) / float64(b) }
		fmt.Fprintf(&table, "%8d %6d %8.2f | %11.1f%% %14.2f%% | %11.1f%% %14.2f%%\n", n, draws, minZ,
			pct(right[0], enrolled[0]), pct(named[0], strangers[0]), pct(right[1], enrolled[1]), pct(named[1], strangers[1]))
		if n >= MinZPeople && pct(named[1], strangers[1]) > 1 {
			t.Errorf("%d people: %.2f%% of strangers named, want at most 1%% (false-match rate %g)", n, pct(named[1], strangers[1]), DefaultFalseMatchRate)
		}
		if pct(right[1], enrolled[1]) < 93 {
			t.Errorf("%d people: %.1f%% of enrolled people's photos named right, want at least 93%%", n, pct(right[1], enrolled[1]))
		}
	}
	t.Logf("LFW sample, %d query faces, galleries drawn from %d people:\n%s", len(e.queries), len(people), table.String())

	// Why z and not the similarity is calibrated on the gallery: the
	// strangers' best similarities are higher than the gallery's own
	// impostors', their z alike.
	g := newGallery(e.galleryLabels, slices.Concat(e.gallery...), DefaultFalseMatchRate)
	var gallerySim, galleryZ, strangerSim, strangerZ, wrongSim float64
	for p := range g.x.len() {
		own := g.x.label[p]
		for _, h := range g.x.search(g.x.embedding(p), Shortlist) {
			if g.x.label[h.face] != own {
				gallerySim = max(gallerySim, float64(h.sim))
				galleryZ = max(galleryZ, *g.z(g.x.embedding(p), float64(h.sim), g.x.label[h.face], own))
				break
			}
		}
	}
	for i, q := range e.queries {
		h := g.nearestPeople(q, 1)[0]
		switch {
		case e.queryLabels[i] == DefaultUnknownLabel:
			strangerSim, strangerZ = max(strangerSim, h.Similarity), max(strangerZ, *g.faceZ(q, h.Similarity, h.Label))
		case h.Label != e.queryLabels[i]:
			wrongSim = max(wrongSim, h.Similarity)
		}
	}
	t.Logf("all %d people: largest impostor similarity %.3f and z %.2f among the gallery's photos (each as if not enrolled), %.3f and %.2f among the strangers; largest similarity of an enrolled person's photo nearest to someone else %.3f",
		g.x.len(), gallerySim, galleryZ, strangerSim, strangerZ, wrongSim)
	if wrongSim >= DefaultCertain || strangerSim >= DefaultCertain {
		t.Errorf("a wrong person nearest at %.3f, a stranger at %.3f: want both below Certain %v", wrongSim, strangerSim, DefaultCertain)
	}
}

// BenchmarkSearchAndDecide: what a query costs with the open-set rule, the
// nearest person and its z, among 1k, 10k and 100k enrolled people (one
// face each), one query at a time on one core; and the calibration a
// gallery change costs (newGallery's, which BenchmarkSearch does not pay).
func BenchmarkSearchAndDecide(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("faces=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(7, uint64(n)))
			labels := make([]string, n)
			emb := make([]float32, 0, n*Dim)
			for i := range n {
				labels[i] = fmt.Sprint("p", i)
				emb = append(emb, unit(rng, nil, 0)...)
			}
			start := time.Now()
			g := newGallery(labels, emb, DefaultFalseMatchRate)
			built := time.Since(start)
			start = time.Now()
			g.calibrate(DefaultFalseMatchRate)
			calibrated := time.Since(start)
			queries := make([][]float32, 100)
			for i := range queries {
				queries[i] = unit(rng, emb[i*Dim:(i+1)*Dim], 0.45)
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				q := queries[i%len(queries)]
				h := g.nearestPeople(q, 1)[0]
				g.faceZ(q, h.Similarity, h.Label)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64(calibrated.Microseconds())/1000, "calibrate-ms")
			b.ReportMetric(float64(built.Microseconds())/1000, "gallery-ms")
			b.ReportMetric(g.minZ, "min-z")
		})
	}
}
