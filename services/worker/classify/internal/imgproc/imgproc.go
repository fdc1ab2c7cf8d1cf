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
	_ "image/gif" // decoders register themselves with image.Decode
	_ "image/jpeg"
	_ "image/png"
	"math"
)

// Image is an 8-bit RGB image, row-major, 3 bytes per pixel.
type Image struct {
	W, H int
	Pix  []uint8
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
		fromYCbCr(m, s)
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
	case *image.NRGBA:
		for y := 0; y < m.H; y++ {
			srow := s.Pix[y*s.Stride:]
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				p := srow[4*x : 4*x+4]
				a := uint32(p[3])
				for c := range 3 {
					v := uint32(p[c]) * 0x101 * a / 0xff // color.NRGBA.RGBA
					row[3*x+c] = uint8(v >> 8)
				}
			}
		}
	case *image.NRGBA64:
		for y := 0; y < m.H; y++ {
			srow := s.Pix[y*s.Stride:]
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				p := srow[8*x : 8*x+8]
				a := uint32(p[6])<<8 | uint32(p[7])
				for c := range 3 {
					v := (uint32(p[2*c])<<8 | uint32(p[2*c+1])) * a / 0xffff // color.NRGBA64.RGBA
					row[3*x+c] = uint8(v >> 8)
				}
			}
		}
	case *image.RGBA64:
		for y := 0; y < m.H; y++ {
			srow := s.Pix[y*s.Stride:]
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = srow[8*x], srow[8*x+2], srow[8*x+4]
			}
		}
	case *image.Gray16:
		for y := 0; y < m.H; y++ {
			srow := s.Pix[y*s.Stride:]
			row := m.Pix[y*m.W*3:]
			for x := 0; x < m.W; x++ {
				v := srow[2*x]
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	default:
		// Paletted, CMYK...: composite over black, as color.RGBAModel
		// does.
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

// fromYCbCr converts a decoded JPEG, the common case, without a call per
// pixel: the chroma offset of each row is computed once, and the JFIF
// conversion is inlined in 16.16 fixed point.
func fromYCbCr(m *Image, s *image.YCbCr) {
	b := s.Rect
	hs, vs := 1, 1
	switch s.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		hs = 2
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio440:
		vs = 2
	case image.YCbCrSubsampleRatio411:
		hs = 4
	case image.YCbCrSubsampleRatio410:
		hs, vs = 4, 2
	}
	for y := 0; y < m.H; y++ {
		sy := b.Min.Y + y
		yRow := s.Y[(sy-b.Min.Y)*s.YStride:]
		cRow := (sy/vs - b.Min.Y/vs) * s.CStride
		row := m.Pix[y*m.W*3 : (y+1)*m.W*3]
		for x := 0; x < m.W; x++ {
			ci := cRow + (b.Min.X+x)/hs - b.Min.X/hs
			yy := int32(yRow[x]) * 0x10101
			cb, cr := int32(s.Cb[ci])-128, int32(s.Cr[ci])-128
			row[3*x] = clamp8(yy + 91881*cr)
			row[3*x+1] = clamp8(yy - 22554*cb - 46802*cr)
			row[3*x+2] = clamp8(yy + 116130*cb)
		}
	}
}

// clamp8 turns a 16.16 fixed-point value into a byte, saturating.
func clamp8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 0xffffff {
		return 255
	}
	return uint8(v >> 16)
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

// shrinkRegion returns the region [x0, x1) x [y0, y1) of m box-filtered
// by an integer factor k: each output pixel averages a k x k block. The
// region may extend past m; pixels outside repeat its border.
func (m *Image) shrinkRegion(k, x0, y0, x1, y1 int) *Image {
	w, h := (x1-x0+k-1)/k, (y1-y0+k-1)/k
	out := New(w, h)
	for oy := 0; oy < h; oy++ {
		by0, by1 := y0+oy*k, min(y0+(oy+1)*k, y1)
		for ox := 0; ox < w; ox++ {
			bx0, bx1 := x0+ox*k, min(x0+(ox+1)*k, x1)
			inside := bx0 >= 0 && by0 >= 0 && bx1 <= m.W && by1 <= m.H
			var r, g, b int
			for y := by0; y < by1; y++ {
				if inside {
					row := m.Pix[(y*m.W+bx0)*3 : (y*m.W+bx1)*3]
					for i := 0; i < len(row); i += 3 {
						r += int(row[i])
						g += int(row[i+1])
						b += int(row[i+2])
					}
					continue
				}
				cy := min(max(y, 0), m.H-1)
				for x := bx0; x < bx1; x++ {
					o := (cy*m.W + min(max(x, 0), m.W-1)) * 3
					r += int(m.Pix[o])
					g += int(m.Pix[o+1])
					b += int(m.Pix[o+2])
				}
			}
			n := (by1 - by0) * (bx1 - bx0)
			o := (oy*w + ox) * 3
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = uint8((r+n/2)/n), uint8((g+n/2)/n), uint8((b+n/2)/n)
		}
	}
	return out
}

// shrinkFor box-filters the part of src that the w x h destination of t
// reads, by factor k, and returns it with t re-expressed in its
// coordinates. Only that part is averaged, so a face crop from a large
// photo costs the size of the face, not of the photo. The blocks start at
// the destination's own left and top edge, so a crop scaled by exactly k
// gets exact block averages.
func shrinkFor(src *Image, t Affine, w, h, k int) (*Image, Affine) {
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, c := range [][2]float64{{-0.5, -0.5}, {float64(w) - 0.5, -0.5}, {-0.5, float64(h) - 0.5}, {float64(w) - 0.5, float64(h) - 0.5}} {
		x, y := t.Apply(c[0], c[1])
		minX, maxX = math.Min(minX, x), math.Max(maxX, x)
		minY, maxY = math.Min(minY, y), math.Max(maxY, y)
	}
	// Edges in pixel-index terms, one block of margin so bilinear taps
	// near the edge read averaged pixels too; the region stays within a
	// block of the image.
	x0 := max(int(math.Floor(minX+0.5))-k, -k)
	y0 := max(int(math.Floor(minY+0.5))-k, -k)
	x1 := min(int(math.Ceil(maxX+0.5))+k, src.W+k)
	y1 := min(int(math.Ceil(maxY+0.5))+k, src.H+k)
	if x1 <= x0 || y1 <= y0 {
		// Entirely outside the image: its nearest border block will do.
		x0, y0 = min(max(x0, -k), src.W), min(max(y0, -k), src.H)
		x1, y1 = x0+k, y0+k
	}
	f := 1 / float64(k)
	// Source pixel-centre sx is region pixel-centre (sx - x0 + 0.5)/k - 0.5.
	return src.shrinkRegion(k, x0, y0, x1, y1), Affine{
		A: t.A * f, B: t.B * f, C: (t.C-float64(x0)+0.5)*f - 0.5,
		D: t.D * f, E: t.E * f, F: (t.F-float64(y0)+0.5)*f - 0.5,
	}
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
		// Average k x k blocks first, then sample the smaller image.
		src, t = shrinkFor(src, t, s.W, s.H, k)
	}
	w := s.writer(dst)
	if t.B == 0 && t.D == 0 {
		s.fillScaled(w, src, t)
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
	w.store(i, v)
}

// store normalises the RGB value v and writes it as tensor pixel i.
func (w *writer) store(i int, v [3]float32) {
	if w.gray {
		w.dst[i] = (0.299*v[0]+0.587*v[1]+0.114*v[2])*w.scale[0] + w.offset[0]
		return
	}
	o := i * w.pixStride
	for c := range 3 {
		w.dst[o+c*w.chanStride] = v[w.order[c]]*w.scale[c] + w.offset[c]
	}
}

// fillScaled is Fill for a crop or resize (no rotation or shear): bilinear
// sampling is separable, so each output row first blends its two source rows
// once, then every output pixel blends two columns of that blend. This is
// the detector's whole-image resize, the hottest loop of the face pipeline.
func (s Spec) fillScaled(w writer, src *Image, t Affine) {
	xs := make([]tap, s.W)
	for x := range xs {
		xs[x] = taps(t.A*float64(x)+t.C, src.W, 3)
	}
	rowLen := 3 * src.W
	row := make([]float32, rowLen)
	for y := 0; y < s.H; y++ {
		ty := taps(t.E*float64(y)+t.F, src.H, rowLen)
		r0, r1 := src.Pix[ty.o0:ty.o0+rowLen], src.Pix[ty.o1:ty.o1+rowLen]
		for i := range row {
			a := float32(r0[i])
			row[i] = a + ty.f*(float32(r1[i])-a)
		}
		base := y * s.W
		for x, tx := range xs {
			p0, p1 := row[tx.o0:tx.o0+3], row[tx.o1:tx.o1+3]
			w.store(base+x, [3]float32{
				p0[0] + tx.f*(p1[0]-p0[0]),
				p0[1] + tx.f*(p1[1]-p0[1]),
				p0[2] + tx.f*(p1[2]-p0[2]),
			})
		}
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
