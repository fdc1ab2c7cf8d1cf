package imgproc

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"testing"
)

func encodeWith(t *testing.T, img image.Image, enc func(*bytes.Buffer, image.Image) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := enc(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 6, 4))
	gray := image.NewGray(image.Rect(0, 0, 6, 4))
	nrgba := image.NewNRGBA(image.Rect(0, 0, 6, 4))
	paletted := image.NewPaletted(image.Rect(0, 0, 6, 4), color.Palette{color.Gray{77}})
	for y := 0; y < 4; y++ {
		for x := 0; x < 6; x++ {
			rgba.SetRGBA(x, y, color.RGBA{200, 100, 50, 255})
			gray.SetGray(x, y, color.Gray{77})
			nrgba.SetNRGBA(x, y, color.NRGBA{10, 20, 30, 255})
		}
	}
	pngEnc := func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }
	for _, tc := range []struct {
		name  string
		data  []byte
		want  [3]uint8
		exact bool
	}{
		{name: "png rgba", data: encodeWith(t, rgba, pngEnc), want: [3]uint8{200, 100, 50}, exact: true},
		{name: "png gray", data: encodeWith(t, gray, pngEnc), want: [3]uint8{77, 77, 77}, exact: true},
		{name: "png nrgba", data: encodeWith(t, nrgba, pngEnc), want: [3]uint8{10, 20, 30}, exact: true},
		{name: "jpeg", data: encodeWith(t, rgba, func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, &jpeg.Options{Quality: 100}) }), want: [3]uint8{200, 100, 50}},
		{name: "gif", data: encodeWith(t, paletted, func(b *bytes.Buffer, m image.Image) error { return gif.Encode(b, m, nil) }), want: [3]uint8{77, 77, 77}, exact: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.data, 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if m.W != 6 || m.H != 4 || len(m.Pix) != 6*4*3 {
				t.Fatalf("Decode = %dx%d (%d bytes), want 6x4 (72 bytes)", m.W, m.H, len(m.Pix))
			}
			for c := range 3 {
				got := m.Pix[3*(2*6+3)+c]
				if d := int(got) - int(tc.want[c]); d != 0 && (tc.exact || d < -3 || d > 3) {
					t.Errorf("pixel (3, 2) channel %d = %d, want %d", c, got, tc.want[c])
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 100, 50))
	data := encodeWith(t, img, func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) })
	if _, err := Decode(data, 100*50-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode(5000 px, limit 4999) = %v, want ErrTooLarge", err)
	}
	if _, err := Decode(data, 100*50); err != nil {
		t.Errorf("Decode(5000 px, limit 5000) = %v, want nil", err)
	}
	for _, junk := range [][]byte{nil, []byte("GIF89a"), data[:len(data)-20]} {
		if _, err := Decode(junk, 0); err == nil {
			t.Errorf("Decode(%q...) = nil error, want one", junk[:min(len(junk), 8)])
		}
	}
}

// twoPixels is a 2x1 image: red, then blue.
func twoPixels() *Image {
	m := New(2, 1)
	copy(m.Pix, []uint8{255, 0, 0, 0, 0, 255})
	return m
}

func TestFillLayouts(t *testing.T) {
	ident := RectTo(0, 0, 2, 1, 2, 1)
	for _, tc := range []struct {
		name string
		spec Spec
		want []float32
	}{
		{name: "NCHW RGB", spec: Spec{W: 2, H: 1, Layout: NCHW, Format: RGB, Std: [3]float32{255, 255, 255}},
			want: []float32{1, 0, 0, 0, 0, 1}},
		{name: "NHWC RGB", spec: Spec{W: 2, H: 1, Layout: NHWC, Format: RGB, Std: [3]float32{255, 255, 255}},
			want: []float32{1, 0, 0, 0, 0, 1}},
		{name: "NCHW BGR", spec: Spec{W: 2, H: 1, Layout: NCHW, Format: BGR, Std: [3]float32{255, 255, 255}},
			want: []float32{0, 1, 0, 0, 1, 0}},
		{name: "NHWC BGR", spec: Spec{W: 2, H: 1, Layout: NHWC, Format: BGR, Std: [3]float32{255, 255, 255}},
			want: []float32{0, 0, 1, 1, 0, 0}},
		{name: "gray", spec: Spec{W: 2, H: 1, Format: Gray, Std: [3]float32{1}},
			want: []float32{0.299 * 255, 0.114 * 255}},
		{name: "mean and std per channel", spec: Spec{W: 2, H: 1, Layout: NHWC, Format: RGB,
			Mean: [3]float32{127.5, 0, 255}, Std: [3]float32{127.5, 1, 255}},
			want: []float32{1, 0, -1, -1, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, tc.spec.Len())
			tc.spec.Fill(got, twoPixels(), ident)
			for i := range tc.want {
				if math.Abs(float64(got[i]-tc.want[i])) > 1e-3 {
					t.Fatalf("Fill = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func grayRow(vals ...uint8) *Image {
	m := New(len(vals), 1)
	for i, v := range vals {
		m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2] = v, v, v
	}
	return m
}

func fillGray(src *Image, w, h int, t Affine) []float32 {
	s := Spec{W: w, H: h, Layout: NHWC, Format: RGB, Std: [3]float32{1, 1, 1}}
	out := make([]float32, s.Len())
	s.Fill(out, src, t)
	var g []float32
	for i := 0; i < len(out); i += 3 {
		g = append(g, out[i])
	}
	return g
}

func TestFillSampling(t *testing.T) {
	block := New(4, 4) // 2x2 blocks of 0, 40 / 80, 120
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			v := uint8(40*(x/2) + 80*(y/2))
			block.Pix[3*(y*4+x)], block.Pix[3*(y*4+x)+1], block.Pix[3*(y*4+x)+2] = v, v, v
		}
	}
	for _, tc := range []struct {
		name string
		src  *Image
		w, h int
		t    Affine
		want []float32
	}{
		// OpenCV's resize convention: pixel centres align, the border repeats.
		{name: "upscale 2x", src: grayRow(0, 255), w: 4, h: 1, t: RectTo(0, 0, 2, 1, 4, 1),
			want: []float32{0, 63.75, 191.25, 255}},
		{name: "downscale 2x averages blocks", src: block, w: 2, h: 2, t: RectTo(0, 0, 4, 4, 2, 2),
			want: []float32{0, 40, 80, 120}},
		{name: "crop", src: grayRow(10, 20, 30, 40), w: 2, h: 1, t: RectTo(1, 0, 2, 1, 2, 1),
			want: []float32{20, 30}},
		{name: "mirror by affine", src: grayRow(10, 20, 30), w: 3, h: 1, t: Affine{A: -1, C: 2, E: 1},
			want: []float32{30, 20, 10}},
		{name: "rotate 90 degrees", src: block, w: 4, h: 4, t: Affine{B: 1, D: -1, F: 3},
			// dst (x, y) reads src (y, 3-x): the first row is src column 0 bottom up.
			want: []float32{80, 80, 0, 0, 80, 80, 0, 0, 120, 120, 40, 40, 120, 120, 40, 40}},
		{name: "outside repeats the border", src: grayRow(5, 9), w: 2, h: 1, t: Affine{A: 1, C: 10, E: 1},
			want: []float32{9, 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fillGray(tc.src, tc.w, tc.h, tc.t)
			for i := range tc.want {
				if math.Abs(float64(got[i]-tc.want[i])) > 0.01 {
					t.Fatalf("Fill = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestAffineInvert(t *testing.T) {
	a := Affine{A: 1.5, B: -0.4, C: 7, D: 0.4, E: 1.5, F: -3}
	inv, err := a.Invert()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]float64{{0, 0}, {10, -4}, {3.5, 99}} {
		x, y := a.Apply(p[0], p[1])
		bx, by := inv.Apply(x, y)
		if math.Abs(bx-p[0]) > 1e-9 || math.Abs(by-p[1]) > 1e-9 {
			t.Errorf("inv(a(%v)) = (%v, %v), want %v", p, bx, by, p)
		}
	}
	if _, err := (Affine{A: 1, B: 2, D: 2, E: 4}).Invert(); err == nil {
		t.Error("Invert(singular) = nil error, want one")
	}
}

func TestResizePaste(t *testing.T) {
	canvas := New(5, 3)
	canvas.Paste(grayRow(100, 200).Resize(4, 2), 3, 2)
	// Only the top-left 2x1 of the pasted 4x2 image fits at (3, 2).
	want := [][3]int{{3, 2, 100}, {4, 2, 125}, {2, 2, 0}, {4, 1, 0}}
	for _, w := range want {
		if got := canvas.Pix[3*(w[1]*5+w[0])]; int(got) != w[2] {
			t.Errorf("pixel (%d, %d) = %d, want %d", w[0], w[1], got, w[2])
		}
	}
	rgba := canvas.RGBA()
	if c := rgba.RGBAAt(3, 2); c != (color.RGBA{100, 100, 100, 255}) {
		t.Errorf("RGBA() at (3, 2) = %v, want grey 100", c)
	}
}

func TestFromYCbCr(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		t.Run(ratio.String(), func(t *testing.T) {
			// An odd origin checks the chroma offsets of sub-images.
			src := image.NewYCbCr(image.Rect(3, 5, 20, 16), ratio)
			for _, p := range [][]uint8{src.Y, src.Cb, src.Cr} {
				for i := range p {
					p[i] = uint8(rng.IntN(256))
				}
			}
			m := FromImage(src)
			for y := 0; y < m.H; y++ {
				for x := 0; x < m.W; x++ {
					c := src.YCbCrAt(3+x, 5+y)
					r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
					got := m.Pix[3*(y*m.W+x) : 3*(y*m.W+x)+3]
					if got[0] != r || got[1] != g || got[2] != b {
						t.Fatalf("pixel (%d, %d) = %v, want %v", x, y, got, []uint8{r, g, b})
					}
				}
			}
		})
	}
}

// TestFillLargeShrinksOnlyTheCrop checks a downscaled crop of a big image
// against block averages computed directly.
func TestFillLargeShrinksOnlyTheCrop(t *testing.T) {
	big := New(400, 300)
	for y := 0; y < 300; y++ {
		for x := 0; x < 400; x++ {
			v := uint8((x/10 + y/10) % 2 * 200)
			big.Pix[3*(y*400+x)], big.Pix[3*(y*400+x)+1], big.Pix[3*(y*400+x)+2] = v, v, v
		}
	}
	// 4x4 output from the 40x40 crop at (100, 50): each output pixel is a
	// 10x10 checker square, all 0 or all 200.
	got := fillGray(big, 4, 4, RectTo(100, 50, 40, 40, 4, 4))
	for y := range 4 {
		for x := range 4 {
			want := float32((x + y + 1) % 2 * 200)
			if math.Abs(float64(got[y*4+x]-want)) > 0.5 {
				t.Fatalf("Fill crop = %v, want checker of 0 and 200 starting with %v", got, float32(200))
			}
		}
	}
}
