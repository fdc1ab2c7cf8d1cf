// Package imgproc decodes images and samples them into model input tensors:
// bilinear resizing, cropping and affine warps in one operation, with the
// channel order, layout and normalisation a model expects.
//
// It is the part of OpenCV the classifiers need, in plain Go: an Image is a
// packed 8-bit RGB buffer, and every transform is an Affine map from a
// destination pixel to a source position, sampled bilinearly. Downscaling by
// more than 2x first averages whole blocks of pixels, so a large photo is not
// aliased on its way to a small model input.
package imgproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // decoders register themselves with image.Decode
	_ "image/jpeg"
	_ "image/png"
	"math"
)

// Image is an 8-bit RGB image, row-major, 3 bytes per pixel.
type Image struct {
	W, H int
	Pix  []uint8
	// shrunk memoises box-filtered copies by integer factor. An Image is
	// used by one goroutine at a time.
	shrunk map[int]*Image
}

// ErrTooLarge is returned for an image whose header declares more pixels
// than the caller allows.
var ErrTooLarge = errors.New("image too large")

// Decode decodes a JPEG, PNG or GIF image. It reads the header first and
// refuses images of more than maxPixels pixels (0: no limit) before
// allocating them.
func Decode(data []byte, maxPixels int) (*Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("decode %s: empty image %dx%d", format, cfg.Width, cfg.Height)
	}
	if maxPixels > 0 && int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return nil, fmt.Errorf("decode %s: %dx%d pixels, limit %d: %w", format, cfg.Width, cfg.Height, maxPixels, ErrTooLarge)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", format, err)
	}
	return FromImage(img), nil
}

// FromImage converts any image.Image to packed RGB, with fast paths for the
// types the standard decoders return.
func FromImage(src image.Image) *Image {
	b := src.Bounds()
	m := New(b.Dx(), b.Dy())
	switch s := src.(type) {
	case *image.YCbCr:
		for y := 0; y < m.H; y++ {
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				yi := s.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := s.COffset(b.Min.X+x, b.Min.Y+y)
				row[3*x], row[3*x+1], row[3*x+2] = color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
			}
		}
	case *image.RGBA:
		for y := 0; y < m.H; y++ {
			srow := s.Pix[(y)*s.Stride:]
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = srow[4*x], srow[4*x+1], srow[4*x+2]
			}
		}
	case *image.Gray:
		for y := 0; y < m.H; y++ {
			srow := s.Pix[y*s.Stride:]
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				v := srow[x]
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	default:
		// NRGBA, paletted, 16-bit, CMYK...: composite over black, as
		// color.RGBAModel does.
		for y := 0; y < m.H; y++ {
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				r, g, bl, _ := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
				row[3*x], row[3*x+1], row[3*x+2] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
			}
		}
	}
	return m
}

// New returns a black w x h image.
func New(w, h int) *Image {
	return &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
}

// RGBA converts m to an image.RGBA (for encoding in tests and tools).
func (m *Image) RGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i := 0; i < m.W*m.H; i++ {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2], 255
	}
	return out
}

// Affine maps a destination pixel (x, y) to the source position
// (A*x + B*y + C, D*x + E*y + F). Positions are in pixel-centre
// coordinates: pixel (0, 0) covers [-0.5, 0.5).
type Affine struct{ A, B, C, D, E, F float64 }

// Apply maps (x, y).
func (t Affine) Apply(x, y float64) (float64, float64) {
	return t.A*x + t.B*y + t.C, t.D*x + t.E*y + t.F
}

// Invert returns the inverse map.
func (t Affine) Invert() (Affine, error) {
	det := t.A*t.E - t.B*t.D
	if math.Abs(det) < 1e-12 || math.IsNaN(det) {
		return Affine{}, errors.New("invert affine: singular")
	}
	a, b, d, e := t.E/det, -t.B/det, -t.D/det, t.A/det
	return Affine{A: a, B: b, C: -(a*t.C + b*t.F), D: d, E: e, F: -(d*t.C + e*t.F)}, nil
}

// RectTo maps a dstW x dstH image onto the source rectangle with top-left
// (x0, y0) and size w x h (a crop-and-resize, OpenCV's resize convention).
func RectTo(x0, y0, w, h float64, dstW, dstH int) Affine {
	sx, sy := w/float64(dstW), h/float64(dstH)
	return Affine{A: sx, C: x0 + 0.5*sx - 0.5, E: sy, F: y0 + 0.5*sy - 0.5}
}

// scale is the largest source distance one destination pixel spans.
func (t Affine) scale() float64 {
	return math.Max(math.Hypot(t.A, t.D), math.Hypot(t.B, t.E))
}

// shrink returns m box-filtered by an integer factor k (memoised).
func (m *Image) shrink(k int) *Image {
	if s, ok := m.shrunk[k]; ok {
		return s
	}
	w, h := (m.W+k-1)/k, (m.H+k-1)/k
	out := New(w, h)
	var sum [3]int
	for oy := 0; oy < h; oy++ {
		y1 := min((oy+1)*k, m.H)
		for ox := 0; ox < w; ox++ {
			x1 := min((ox+1)*k, m.W)
			sum = [3]int{}
			for y := oy * k; y < y1; y++ {
				row := m.Pix[(y*m.W+ox*k)*3 : (y*m.W+x1)*3]
				for i := 0; i < len(row); i += 3 {
					sum[0] += int(row[i])
					sum[1] += int(row[i+1])
					sum[2] += int(row[i+2])
				}
			}
			n := (y1 - oy*k) * (x1 - ox*k)
			o := (oy*w + ox) * 3
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = uint8((sum[0]+n/2)/n), uint8((sum[1]+n/2)/n), uint8((sum[2]+n/2)/n)
		}
	}
	if m.shrunk == nil {
		m.shrunk = make(map[int]*Image)
	}
	m.shrunk[k] = out
	return out
}

// Layout of a tensor's dimensions.
type Layout int

const (
	NCHW Layout = iota
	NHWC
)

// Format is a tensor's channel order.
type Format int

const (
	RGB Format = iota
	BGR
	Gray // one channel: luma 0.299 R + 0.587 G + 0.114 B
)

// Channels is how many channels f has.
func (f Format) Channels() int {
	if f == Gray {
		return 1
	}
	return 3
}

// Spec describes a model's image input: size, layout, channel order and
// normalisation value = (pixel - Mean[c]) / Std[c], with pixel in 0..255
// and c the tensor's channel index.
type Spec struct {
	W, H   int
	Layout Layout
	Format Format
	Mean   [3]float32
	Std    [3]float32
}

// Len is the number of float32 values of one image tensor.
func (s Spec) Len() int { return s.W * s.H * s.Format.Channels() }

// Fill writes the s.W x s.H tensor whose pixel (x, y) samples src at
// t.Apply(x, y) bilinearly into dst (len s.Len()). Positions outside src
// replicate its border.
func (s Spec) Fill(dst []float32, src *Image, t Affine) {
	if k := int(t.scale()); k >= 2 {
		// Average k x k blocks first, then sample the smaller image: the
		// same map expressed in the shrunk image's pixel-centre coordinates.
		src = src.shrink(k)
		f := 1 / float64(k)
		t = Affine{A: t.A * f, B: t.B * f, C: (t.C+0.5)*f - 0.5, D: t.D * f, E: t.E * f, F: (t.F+0.5)*f - 0.5}
	}
	w := s.writer(dst)
	if t.B == 0 && t.D == 0 {
		// A crop or resize: the source column depends only on x and the
		// row only on y, so both are computed once.
		xs := make([]tap, s.W)
		for x := range xs {
			xs[x] = taps(t.A*float64(x)+t.C, src.W, 3)
		}
		for y := 0; y < s.H; y++ {
			ty := taps(t.E*float64(y)+t.F, src.H, 3*src.W)
			for x, tx := range xs {
				w.put(y*s.W+x, src.Pix, ty, tx)
			}
		}
		return
	}
	for y := 0; y < s.H; y++ {
		for x := 0; x < s.W; x++ {
			sx, sy := t.Apply(float64(x), float64(y))
			w.put(y*s.W+x, src.Pix, taps(sy, src.H, 3*src.W), taps(sx, src.W, 3))
		}
	}
}

// tap is where one axis of a bilinear sample reads: byte offsets of the
// two neighbours and the weight of the second.
type tap struct {
	o0, o1 int
	f      float32
}

// taps clamps position p (pixel-centre coordinates) to [0, n-1] and returns
// its neighbours' offsets for stride bytes per step.
func taps(p float64, n, stride int) tap {
	p = math.Min(math.Max(p, 0), float64(n-1))
	i := int(p)
	j := min(i+1, n-1)
	return tap{o0: i * stride, o1: j * stride, f: float32(p - float64(i))}
}

// writer stores normalised pixels into a tensor.
type writer struct {
	dst                   []float32
	gray                  bool
	order                 [3]int // source channel of each tensor channel
	scale, offset         [3]float32
	pixStride, chanStride int
}

func (s Spec) writer(dst []float32) writer {
	nc := s.Format.Channels()
	w := writer{dst: dst, gray: s.Format == Gray, order: [3]int{0, 1, 2}, pixStride: 1, chanStride: s.W * s.H}
	if s.Format == BGR {
		w.order = [3]int{2, 1, 0}
	}
	if s.Layout == NHWC {
		w.pixStride, w.chanStride = nc, 1
	}
	for c := range nc {
		w.scale[c] = 1 / s.Std[c]
		w.offset[c] = -s.Mean[c] / s.Std[c]
	}
	return w
}

// put samples pix bilinearly at the taps ty (row) and tx (column) and
// stores the result as tensor pixel i.
func (w *writer) put(i int, pix []uint8, ty, tx tap) {
	p00, p01 := pix[ty.o0+tx.o0:ty.o0+tx.o0+3], pix[ty.o0+tx.o1:ty.o0+tx.o1+3]
	p10, p11 := pix[ty.o1+tx.o0:ty.o1+tx.o0+3], pix[ty.o1+tx.o1:ty.o1+tx.o1+3]
	var v [3]float32
	for c := range 3 {
		top := float32(p00[c]) + tx.f*(float32(p01[c])-float32(p00[c]))
		bot := float32(p10[c]) + tx.f*(float32(p11[c])-float32(p10[c]))
		v[c] = top + ty.f*(bot-top)
	}
	if w.gray {
		w.dst[i] = (0.299*v[0]+0.587*v[1]+0.114*v[2])*w.scale[0] + w.offset[0]
		return
	}
	o := i * w.pixStride
	for c := range 3 {
		w.dst[o+c*w.chanStride] = v[w.order[c]]*w.scale[c] + w.offset[c]
	}
}

// Resize returns m resized to w x h (bilinear, block-averaged when
// shrinking by 2x or more).
func (m *Image) Resize(w, h int) *Image {
	spec := Spec{W: w, H: h, Layout: NHWC, Format: RGB, Std: [3]float32{1, 1, 1}}
	buf := make([]float32, spec.Len())
	spec.Fill(buf, m, RectTo(0, 0, float64(m.W), float64(m.H), w, h))
	out := New(w, h)
	for i, v := range buf {
		out.Pix[i] = uint8(math.Round(math.Min(math.Max(float64(v), 0), 255)))
	}
	return out
}

// Paste copies src into m with its top-left corner at (x, y), clipped to m.
func (m *Image) Paste(src *Image, x, y int) {
	for sy := 0; sy < src.H; sy++ {
		dy := y + sy
		if dy < 0 || dy >= m.H {
			continue
		}
		for sx := 0; sx < src.W; sx++ {
			dx := x + sx
			if dx < 0 || dx >= m.W {
				continue
			}
			copy(m.Pix[(dy*m.W+dx)*3:(dy*m.W+dx)*3+3], src.Pix[(sy*src.W+sx)*3:])
		}
	}
}
