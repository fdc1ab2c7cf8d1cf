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
	return nms(cand, maxIoU)
}

// nms keeps the best-scoring of boxes that overlap by more than maxIoU
// (hard non-maximum suppression), best first.
func nms(cand []Box, maxIoU float64) []Box {
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

// dlibTemplate is where landmarks 17 to 67 (brows, nose, eyes and mouth;
// chipPoints) sit in the 150x150 face chip dlib's face-recognition network
// was trained on: dlib's mean face shape (get_face_chip_details) with 25%
// padding on each side.
var dlibTemplate = func() []Point {
	xs := [...]float64{0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
		0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
		0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
		0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
		0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
		0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
		0.553364, 0.490127, 0.42689}
	ys := [...]float64{0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
		0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
		0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
		0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
		0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
		0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
		0.784792, 0.824182, 0.831803, 0.824182}
	const size, pad = 150.0, 0.25
	t := make([]Point, len(xs))
	for i := range xs {
		t[i] = Point{(pad + xs[i]) / (2*pad + 1) * size, (pad + ys[i]) / (2*pad + 1) * size}
	}
	return t
}()

// chipPoints returns landmarks 17 to 67 of the 68, which dlibTemplate
// places.
func chipPoints(lm []float64) []Point {
	pts := make([]Point, 0, 51)
	for i := 17; i < 68; i++ {
		pts = append(pts, Point{lm[2*i], lm[2*i+1]})
	}
	return pts
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
func similarity(src, dst []Point) imgproc.Affine {
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

// Where the detector draws its box around the 68 landmarks, as fractions
// of their extent: flush with them at the sides and the chin, the right
// edge 3% further out, and the top 38% of their height above the brows
// (the forehead). Measured on the CSE546 photos, whose faces the detector
// finds in full: medians over the 10 distinct photos (spreads 3 to 9%).
const (
	boxRight = 0.03
	boxTop   = 0.38
)

// frame is a face's box turned by Angle (radians, clockwise in image
// coordinates, y down) about its centre: the region the landmark model
// looks at, upright in its input however the face is turned.
type frame struct {
	CX, CY, W, H, Angle float64
}

func frameOf(b Box) frame {
	return frame{CX: (b.X1 + b.X2) / 2, CY: (b.Y1 + b.Y2) / 2, W: b.X2 - b.X1, H: b.Y2 - b.Y1}
}

// toImage maps (u, v), fractions of the frame's width and height from its
// top-left corner, to image pixels.
func (f frame) toImage(u, v float64) (float64, float64) {
	sin, cos := math.Sincos(f.Angle)
	x, y := (u-0.5)*f.W, (v-0.5)*f.H
	return f.CX + cos*x - sin*y, f.CY + sin*x + cos*y
}

// sampler maps a w x h model input onto the frame (pixel-centre
// coordinates, as imgproc.RectTo).
func (f frame) sampler(w, h int) imgproc.Affine {
	sin, cos := math.Sincos(f.Angle)
	sx, sy := f.W/float64(w), f.H/float64(h)
	// Input pixel (x, y) is at (u, v) = ((x+0.5)/w, (y+0.5)/h).
	x0, y0 := 0.5*sx-f.W/2, 0.5*sy-f.H/2
	return imgproc.Affine{
		A: cos * sx, B: -sin * sy, C: f.CX + cos*x0 - sin*y0 - 0.5,
		D: sin * sx, E: cos * sy, F: f.CY + sin*x0 + cos*y0 - 0.5,
	}
}

// overlap is the IoU of two frames' upright boxes, times the cosine of
// the angle between them: 1 for the same frame.
func overlap(a, b frame) float64 {
	box := func(f frame) Box {
		return Box{X1: f.CX - f.W/2, Y1: f.CY - f.H/2, X2: f.CX + f.W/2, Y2: f.CY + f.H/2}
	}
	return iou(box(a), box(b)) * math.Max(0, math.Cos(a.Angle-b.Angle))
}

// frameAround returns the frame the detector would draw around the
// landmarks lm (x0, y0, x1, y1, ...), turned as the eyes are.
func frameAround(lm []float64) frame {
	pts := fivePoints(lm)
	angle := math.Atan2(pts[1].Y-pts[0].Y, pts[1].X-pts[0].X)
	sin, cos := math.Sincos(-angle)
	// The landmarks' extent with the face turned upright.
	u1, v1, u2, v2 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for i := 0; i+1 < len(lm); i += 2 {
		u, v := cos*lm[i]-sin*lm[i+1], sin*lm[i]+cos*lm[i+1]
		u1, u2 = math.Min(u1, u), math.Max(u2, u)
		v1, v2 = math.Min(v1, v), math.Max(v2, v)
	}
	w, h := u2-u1, v2-v1
	u2 += boxRight * w
	v1 -= boxTop * h
	// Back to the image: the centre turns with the face.
	cu, cv := (u1+u2)/2, (v1+v2)/2
	sin, cos = math.Sincos(angle)
	return frame{CX: cos*cu - sin*cv, CY: sin*cu + cos*cv, W: u2 - u1, H: v2 - v1, Angle: angle}
}
