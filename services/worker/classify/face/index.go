package face

import (
	"cmp"
	"container/heap"
	"math"
	"math/bits"
	"slices"
)

// index holds enrolled embeddings for nearest-face search at the scale of
// a large gallery. Each face is kept twice, compactly:
//
//   - Dim (640) sign bits (80 bytes): the first pass ranks every face by
//     the Hamming distance of its bits to the query's, which estimates the
//     angle between them (SimHash) for a few nanoseconds a face;
//   - Dim int8 values and a scale (644 bytes): the second pass computes
//     the cosine similarity of the best Shortlist faces of the first pass,
//     and of every face when there are no more than that.
//
// 728 bytes a face with its label's index, against 2560 for float32. The
// int8 similarity differs from the float32 one by about 0.001 (TestIndex
// measures it); the first pass can only miss a face whose similarity is
// far below the shortlist's, which at a similarity that names someone
// does not happen at 100,000 faces (BenchmarkSearch's recall).
type index struct {
	// short is the first pass's shortlist; 0 is Shortlist.
	short   int
	labels  []string // distinct labels
	byLabel map[string]int32
	label   []int32  // per face: its index in labels
	bits    []uint64 // per face: words
	codes   []int8   // per face: Dim values
	scales  []float32
}

const (
	words = Dim / 64
	// Shortlist is how many faces the first pass keeps for the second.
	Shortlist = 512
)

// hit is a face and its similarity to the query.
type hit struct {
	face int
	sim  float32
}

func (x *index) len() int { return len(x.label) }

// add enrolls a unit-length embedding under label.
func (x *index) add(label string, e []float32) {
	li, ok := x.byLabel[label]
	if !ok {
		if x.byLabel == nil {
			x.byLabel = make(map[string]int32)
		}
		li = int32(len(x.labels))
		x.labels = append(x.labels, label)
		x.byLabel[label] = li
	}
	x.label = append(x.label, li)
	var maxAbs float32
	for _, v := range e {
		maxAbs = max(maxAbs, float32(math.Abs(float64(v))))
	}
	scale := maxAbs / 127
	if scale == 0 {
		scale = 1
	}
	x.scales = append(x.scales, scale)
	for _, v := range e {
		x.codes = append(x.codes, int8(math.Round(float64(v/scale))))
	}
	x.bits = append(x.bits, signBits(e)...)
}

// signBits packs the signs of e, one bit a dimension.
func signBits(e []float32) []uint64 {
	out := make([]uint64, words)
	for i, v := range e {
		if v >= 0 {
			out[i/64] |= 1 << (i % 64)
		}
	}
	return out
}

// similarity is the cosine of face f to the unit-length query q.
func (x *index) similarity(f int, q []float32) float32 {
	code := x.codes[f*Dim : (f+1)*Dim]
	var dot float32
	for i, c := range code {
		dot += float32(c) * q[i]
	}
	return dot * x.scales[f]
}

// embedding is face f's embedding as the index keeps it: its int8 codes,
// scaled.
func (x *index) embedding(f int) []float32 {
	e := make([]float32, Dim)
	for i, c := range x.codes[f*Dim : (f+1)*Dim] {
		e[i] = float32(c) * x.scales[f]
	}
	return e
}

// search returns the k faces most similar to the unit-length query q, best
// first.
func (x *index) search(q []float32, k int) []hit {
	n, m := x.len(), cmp.Or(x.short, Shortlist)
	var cands []int
	if n <= m {
		cands = make([]int, n)
		for i := range cands {
			cands[i] = i
		}
	} else {
		cands = x.shortlist(signBits(q), m)
	}
	hits := make([]hit, len(cands))
	for i, f := range cands {
		hits[i] = hit{face: f, sim: x.similarity(f, q)}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(b.sim, a.sim); c != 0 {
			return c
		}
		return cmp.Compare(a.face, b.face)
	})
	return hits[:min(k, len(hits))]
}

// shortlist returns the m faces whose bits are nearest qb in Hamming
// distance.
func (x *index) shortlist(qb []uint64, m int) []int {
	h := make(farthest, 0, m)
	for f := range x.len() {
		b := x.bits[f*words : (f+1)*words : (f+1)*words]
		d := 0
		for i, w := range b {
			d += bits.OnesCount64(w ^ qb[i])
		}
		switch {
		case len(h) < m:
			heap.Push(&h, distance{f, d})
		case d < h[0].d:
			h[0] = distance{f, d}
			heap.Fix(&h, 0)
		}
	}
	out := make([]int, len(h))
	for i, e := range h {
		out[i] = e.face
	}
	return out
}

type distance struct{ face, d int }

// farthest is a max-heap of distances: its top is the one to drop first.
type farthest []distance

func (h farthest) Len() int           { return len(h) }
func (h farthest) Less(i, j int) bool { return h[i].d > h[j].d }
func (h farthest) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *farthest) Push(v any)        { *h = append(*h, v.(distance)) }
func (h *farthest) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// bytesPerFace is the index's memory for each face, its label's entry
// aside (shared by the person's faces).
func (x *index) bytesPerFace() int { return 4 + 8*words + Dim + 4 }
