package face

import (
	"math"
	"testing"

	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
)

func TestSimilarityRecoversTransform(t *testing.T) {
	for _, tc := range []struct {
		name         string
		scale, angle float64 // angle in degrees
		tx, ty       float64
	}{
		{name: "identity", scale: 1},
		{name: "shrink rotate shift", scale: 0.4, angle: 25, tx: 13, ty: -7},
		{name: "enlarge rotate back", scale: 3.2, angle: -40, tx: -100, ty: 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// src = the template moved by the transform; similarity(src,
			// template) must undo it exactly.
			a := tc.angle * math.Pi / 180
			c, s := tc.scale*math.Cos(a), tc.scale*math.Sin(a)
			var src [5]Point
			for i, p := range arcFaceTemplate {
				src[i] = Point{c*p.X - s*p.Y + tc.tx, s*p.X + c*p.Y + tc.ty}
			}
			m := similarity(src[:], arcFaceTemplate[:])
			for i, p := range src {
				x, y := m.Apply(p.X, p.Y)
				if math.Abs(x-arcFaceTemplate[i].X) > 1e-9 || math.Abs(y-arcFaceTemplate[i].Y) > 1e-9 {
					t.Errorf("similarity maps point %d to (%.6f, %.6f), want %v", i, x, y, arcFaceTemplate[i])
				}
			}
		})
	}
}

func TestSimilarityLeastSquares(t *testing.T) {
	// With one point moved the points no longer fit exactly: the result
	// must be the best similarity, so nudging any of its four parameters
	// (scale-rotation a, b and the shift) makes the squared error worse.
	src := arcFaceTemplate
	src[4].X -= 2
	src[1].Y += 1
	sse := func(m imgproc.Affine) float64 {
		var e float64
		for i, p := range src {
			x, y := m.Apply(p.X, p.Y)
			e += (x-arcFaceTemplate[i].X)*(x-arcFaceTemplate[i].X) + (y-arcFaceTemplate[i].Y)*(y-arcFaceTemplate[i].Y)
		}
		return e
	}
	m := similarity(src[:], arcFaceTemplate[:])
	best := sse(m)
	if best <= 0 {
		t.Fatalf("squared error %v, want > 0 for points that do not fit exactly", best)
	}
	for _, d := range []float64{1e-3, -1e-3} {
		for name, n := range map[string]imgproc.Affine{
			"a":  {A: m.A + d, B: m.B, C: m.C, D: m.D, E: m.E + d, F: m.F},
			"b":  {A: m.A, B: m.B - d, C: m.C, D: m.D + d, E: m.E, F: m.F},
			"tx": {A: m.A, B: m.B, C: m.C + d, D: m.D, E: m.E, F: m.F},
			"ty": {A: m.A, B: m.B, C: m.C, D: m.D, E: m.E, F: m.F + d},
		} {
			if e := sse(n); e < best {
				t.Errorf("nudging %s by %g lowers the squared error from %.6f to %.6f", name, d, best, e)
			}
		}
	}
}

func TestDecodeDetections(t *testing.T) {
	// Four priors: two overlapping boxes on one face, one on another face,
	// and one below the score threshold.
	scores := []float32{
		0.1, 0.9,
		0.2, 0.8,
		0.05, 0.95,
		0.5, 0.5,
	}
	boxes := []float32{
		0.10, 0.10, 0.30, 0.40,
		0.11, 0.11, 0.31, 0.41,
		0.60, 0.50, 0.70, 0.70,
		0.00, 0.00, 1.00, 1.00,
	}
	got := decodeDetections(scores, boxes, 200, 100, 0.7, 0.3)
	if len(got) != 2 {
		t.Fatalf("decodeDetections = %d boxes %+v, want 2", len(got), got)
	}
	if got[0].Score < 0.949 || math.Abs(got[0].X1-120) > 1e-3 || math.Abs(got[0].Y2-70) > 1e-3 {
		t.Errorf("first box = %+v, want the 0.95 one at x1 120, y2 70 (pixels)", got[0])
	}
	if got[1].Score < 0.899 || math.Abs(got[1].X1-20) > 1e-3 {
		t.Errorf("second box = %+v, want the 0.9 one at x1 20 (its 0.8 twin suppressed)", got[1])
	}
	if i := largest(got); i != 1 {
		t.Errorf("largest = %d, want 1 (40x30 px beats 20x20 px)", i)
	}
	if i := largest(nil); i != -1 {
		t.Errorf("largest(nil) = %d, want -1", i)
	}
}

func TestFivePoints(t *testing.T) {
	lm := make([]float64, 136)
	for i := range 68 {
		lm[2*i], lm[2*i+1] = float64(i), float64(100+i)
	}
	got := fivePoints(lm)
	want := [5]Point{
		{39, 139}, // mean of 37, 38, 40, 41
		{45, 145}, // mean of 43, 44, 46, 47
		{30, 130}, // nose tip
		{54, 154}, // mean of 48, 60
		{59, 159}, // mean of 54, 64
	}
	if got != want {
		t.Errorf("fivePoints = %v, want %v", got, want)
	}
}

// TestFrame: a frame's sampler and toImage agree, and frameAround turns
// with the face.
func TestFrame(t *testing.T) {
	for _, deg := range []float64{0, 20, -30, 90} {
		f := frame{CX: 100, CY: 80, W: 64, H: 48, Angle: deg * math.Pi / 180}
		// The sampler maps input pixel centres to where toImage maps
		// their fractions (minus imgproc's half-pixel convention).
		s := f.sampler(64, 64)
		for _, p := range [][2]int{{0, 0}, {31, 17}, {63, 63}} {
			sx, sy := s.Apply(float64(p[0]), float64(p[1]))
			tx, ty := f.toImage((float64(p[0])+0.5)/64, (float64(p[1])+0.5)/64)
			if math.Abs(sx+0.5-tx) > 1e-9 || math.Abs(sy+0.5-ty) > 1e-9 {
				t.Errorf("angle %v, input %v: sampler (%.3f, %.3f) + 0.5, toImage (%.3f, %.3f)", deg, p, sx, sy, tx, ty)
			}
		}
		if x, y := f.toImage(0.5, 0.5); math.Abs(x-100) > 1e-9 || math.Abs(y-80) > 1e-9 {
			t.Errorf("angle %v: centre at (%.3f, %.3f), want (100, 80)", deg, x, y)
		}

		// Landmarks of an upright face, turned by the angle about a
		// point: the frame around them turns by it too and keeps its
		// size.
		var upright, lm []float64
		for i := range 68 {
			upright = append(upright, 40+float64(i%17)*3, 50+float64(i/17)*10)
		}
		// Eyes level in the upright face: points 36-47 on one row each side.
		for i := 36; i < 42; i++ {
			upright[2*i], upright[2*i+1] = 50+float64(i-36), 60
		}
		for i := 42; i < 48; i++ {
			upright[2*i], upright[2*i+1] = 80+float64(i-42), 60
		}
		sin, cos := math.Sincos(f.Angle)
		for i := 0; i < len(upright); i += 2 {
			x, y := upright[i]-60, upright[i+1]-70
			lm = append(lm, 200+cos*x-sin*y, 150+sin*x+cos*y)
		}
		a, b := frameAround(upright), frameAround(lm)
		if math.Abs(b.Angle-f.Angle) > 1e-9 || math.Abs(b.W-a.W) > 1e-9 || math.Abs(b.H-a.H) > 1e-9 {
			t.Errorf("frameAround of landmarks turned %v degrees = %+v, want the upright one's %+v turned", deg, b, a)
		}
		if got := overlap(b, b); math.Abs(got-1) > 1e-9 {
			t.Errorf("overlap of a frame with itself = %v, want 1", got)
		}
	}
}
