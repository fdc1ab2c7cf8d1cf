package face

import (
	"math"
	"sort"

	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
)

// Box is a detected face in image pixels.
type Box struct {
	X1, Y1, X2, Y2 float64
	Score          float64
}

// Area is the box's area in square pixels.
func (b Box) Area() float64 { return math.Max(0, b.X2-b.X1) * math.Max(0, b.Y2-b.Y1) }

func iou(a, b Box) float64 {
	w := math.Min(a.X2, b.X2) - math.Max(a.X1, b.X1)
	h := math.Min(a.Y2, b.Y2) - math.Max(a.Y1, b.Y1)
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	return inter / (a.Area() + b.Area() - inter)
}

// decodeDetections turns the detector's outputs into boxes in a w x h
// image: scores holds (background, face) per prior and boxes holds
// (x1, y1, x2, y2) per prior, as fractions of the image (RFB-320 decodes its
// priors inside the graph). Priors scoring below minScore are dropped, and
// hard non-maximum suppression at maxIoU keeps the best of overlapping boxes.
func decodeDetections(scores, boxes []float32, w, h int, minScore, maxIoU float64) []Box {
	var cand []Box
	for i := 0; 2*i+1 < len(scores) && 4*i+3 < len(boxes); i++ {
		s := float64(scores[2*i+1])
		if s < minScore {
			continue
		}
		b := Box{
			X1: float64(boxes[4*i]) * float64(w), Y1: float64(boxes[4*i+1]) * float64(h),
			X2: float64(boxes[4*i+2]) * float64(w), Y2: float64(boxes[4*i+3]) * float64(h),
			Score: s,
		}
		if b.Area() > 0 {
			cand = append(cand, b)
		}
	}
	sort.SliceStable(cand, func(i, j int) bool { return cand[i].Score > cand[j].Score })
	var kept []Box
	for _, c := range cand {
		overlaps := false
		for _, k := range kept {
			if iou(c, k) > maxIoU {
				overlaps = true
				break
			}
		}
		if !overlaps {
			kept = append(kept, c)
		}
	}
	return kept
}

// largest returns the index of the box with the largest area, or -1.
func largest(boxes []Box) int {
	best, bestArea := -1, 0.0
	for i, b := range boxes {
		if a := b.Area(); a > bestArea {
			best, bestArea = i, a
		}
	}
	return best
}

// Point is an image position in pixels.
type Point struct{ X, Y float64 }

// arcFaceTemplate is where the five alignment points (left eye, right eye,
// nose tip, left and right mouth corner) sit in the 112x112 crop the
// embedding model was trained on (the InsightFace/ArcFace reference).
var arcFaceTemplate = [5]Point{
	{38.2946, 51.6963},
	{73.5318, 51.5014},
	{56.0252, 71.7366},
	{41.5493, 92.3655},
	{70.7299, 92.2041},
}

// fivePoints reduces the 68-point (iBUG 300-W) landmarks to the alignment
// points: each eye is the mean of its two upper and two lower lid points,
// the nose its tip, each mouth corner the mean of the outer and inner lip
// corners. lm holds x0, y0, x1, y1, ...
func fivePoints(lm []float64) [5]Point {
	p := func(i int) Point { return Point{lm[2*i], lm[2*i+1]} }
	mean := func(idx ...int) Point {
		var s Point
		for _, i := range idx {
			s.X += p(i).X
			s.Y += p(i).Y
		}
		return Point{s.X / float64(len(idx)), s.Y / float64(len(idx))}
	}
	return [5]Point{
		mean(37, 38, 40, 41),
		mean(43, 44, 46, 47),
		p(30),
		mean(48, 60),
		mean(54, 64),
	}
}

// similarity returns the least-squares similarity transform (rotation,
// uniform scale, translation; Umeyama 1991 without reflection) that maps
// the points src onto dst.
func similarity(src, dst [5]Point) imgproc.Affine {
	n := float64(len(src))
	var ms, md Point
	for i := range src {
		ms.X += src[i].X / n
		ms.Y += src[i].Y / n
		md.X += dst[i].X / n
		md.Y += dst[i].Y / n
	}
	// For 2-D similarity the Umeyama solution reduces to
	// a = sum(s.d)/sum(|s|^2), b = sum(s x d)/sum(|s|^2) with the points
	// centred, giving x' = a x - b y, y' = b x + a y.
	var dot, cross, norm float64
	for i := range src {
		sx, sy := src[i].X-ms.X, src[i].Y-ms.Y
		dx, dy := dst[i].X-md.X, dst[i].Y-md.Y
		dot += sx*dx + sy*dy
		cross += sx*dy - sy*dx
		norm += sx*sx + sy*sy
	}
	if norm == 0 {
		return imgproc.Affine{A: 1, E: 1, C: md.X - ms.X, F: md.Y - ms.Y}
	}
	a, b := dot/norm, cross/norm
	return imgproc.Affine{
		A: a, B: -b, C: md.X - (a*ms.X - b*ms.Y),
		D: b, E: a, F: md.Y - (b*ms.X + a*ms.Y),
	}
}
