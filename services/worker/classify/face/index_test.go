package face

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// randomFaces returns n random unit vectors: faces of n different people
// as the embedding spreads them (nearly orthogonal in 512 dimensions).
func randomFaces(rng *rand.Rand, n int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = unit(rng, nil, 0)
	}
	return out
}

// unit returns a random unit vector, or with near set, one whose cosine to
// near is about cos.
func unit(rng *rand.Rand, near []float32, cos float64) []float32 {
	v := make([]float32, Dim)
	var n float64
	for i := range v {
		v[i] = float32(rng.NormFloat64())
		n += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	if near == nil {
		return v
	}
	// Random vectors are nearly orthogonal to near: mix them.
	sin := math.Sqrt(1 - cos*cos)
	n = 0
	for i := range v {
		v[i] = float32(cos)*near[i] + float32(sin)*v[i]
		n += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}

func exactNearest(faces [][]float32, q []float32) (int, float64) {
	best, bestSim := -1, -2.0
	for i, f := range faces {
		var dot float64
		for j := range f {
			dot += float64(f[j]) * float64(q[j])
		}
		if dot > bestSim {
			best, bestSim = i, dot
		}
	}
	return best, bestSim
}

// TestIndex: the index finds the face the exact float search finds, at
// its similarity within 0.01, through its shortlist and without; and its
// hits come best first.
func TestIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	faces := randomFaces(rng, 5000)
	x := &index{}
	for i, f := range faces {
		x.add(fmt.Sprint("p", i), f)
	}
	for _, short := range []int{0, 64} {
		x.short = short
		maxErr := 0.0
		for q := range 200 {
			target := faces[rng.IntN(len(faces))]
			cos := 0.3 + 0.5*float64(q%5)/4 // 0.3 to 0.8
			query := unit(rng, target, cos)
			want, wantSim := exactNearest(faces, query)
			hits := x.search(query, 5)
			if hits[0].face != want {
				t.Fatalf("shortlist %d, query at cos %.2f: nearest %d (%.3f), want %d (%.3f)", short, cos, hits[0].face, hits[0].sim, want, wantSim)
			}
			maxErr = max(maxErr, math.Abs(float64(hits[0].sim)-wantSim))
			for i := 1; i < len(hits); i++ {
				if hits[i].sim > hits[i-1].sim {
					t.Fatalf("hits %+v not best first", hits)
				}
			}
		}
		if maxErr > 0.01 {
			t.Errorf("shortlist %d: similarity off by up to %.4f, want under 0.01", short, maxErr)
		}
		t.Logf("shortlist %d: 200 queries, same nearest face as the float search, similarity off by at most %.4f", short, maxErr)
	}
	if got := x.bytesPerFace(); got > 1024 {
		t.Errorf("bytesPerFace = %d, want at most 1 KiB", got)
	}
}

// BenchmarkSearch: the nearest face among 1k, 10k and 100k enrolled faces,
// one query at a time on one core. It reports milliseconds per query, the
// index's bytes per face (as measured by the heap and as laid out), and
// the recall of the first pass: how often a face planted at similarity 0.4
// to the query (a match at the default threshold) is found.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("faces=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, uint64(n)))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			x := &index{}
			planted := make([][]float32, 0, 100)
			for i := range n {
				f := unit(rng, nil, 0)
				if i < 100 {
					planted = append(planted, f)
				}
				x.add(fmt.Sprint("p", i), f)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			queries := make([][]float32, len(planted))
			for i, f := range planted {
				queries[i] = unit(rng, f, 0.4)
			}
			found := 0
			for i, q := range queries {
				if x.search(q, 1)[0].face == i {
					found++
				}
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				x.search(queries[i%len(queries)], 1)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/face")
			b.ReportMetric(float64(x.bytesPerFace()), "B/face")
			b.ReportMetric(float64(found)/float64(len(queries)), "recall@0.4")
		})
	}
}

// TestIndexLFW: on the LFW sample's real embeddings, the index answers what
// the exact float32 search answers at the default threshold, through a
// shortlist of 16 of the 107 enrolled faces too, at a similarity within
// 0.01.
func TestIndexLFW(t *testing.T) {
	e := embedLFW(t)
	ge, gl, qe := e.gallery, e.galleryLabels, e.queries
	for _, short := range []int{0, 16} {
		x := &index{short: short}
		for i, e := range ge {
			x.add(gl[i], e)
		}
		maxErr := 0.0
		for _, q := range qe {
			want, wantSim := exactNearest(ge, q)
			h := x.search(q, 1)[0]
			answer := func(label string, sim float64) string {
				if sim < DefaultThreshold {
					return DefaultUnknownLabel
				}
				return label
			}
			if a, w := answer(gl[h.face], float64(h.sim)), answer(gl[want], wantSim); a != w {
				t.Errorf("shortlist %d: index answers %s (%.3f), float search %s (%.3f)", short, a, h.sim, w, wantSim)
			}
			if gl[h.face] != gl[want] {
				// Below the threshold two people can tie: the nearest may
				// differ, by no more than quantisation.
				t.Logf("shortlist %d: nearest %s at %.3f against %s at %.3f (both answer %s)", short, gl[h.face], h.sim,
					gl[want], wantSim, answer(gl[want], wantSim))
				if math.Abs(float64(h.sim)-wantSim) > 0.01 {
					t.Errorf("shortlist %d: a different nearest person %.3f apart, want a tie within 0.01", short, math.Abs(float64(h.sim)-wantSim))
				}
			}
			maxErr = max(maxErr, math.Abs(float64(h.sim)-wantSim))
		}
		if maxErr > 0.01 {
			t.Errorf("shortlist %d: similarity off by up to %.4f, want under 0.01", short, maxErr)
		}
		t.Logf("shortlist %d: %d queries against %d faces, same answers as float32, similarity off by at most %.4f", short, len(qe), len(ge), maxErr)
	}
}
