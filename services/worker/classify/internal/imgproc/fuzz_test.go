package imgproc

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode with a pixel limit: it must
// return an image within the limit or an error, never panic or allocate
// past the limit. make test runs it for a fixed time; its corpus is in
// testdata/fuzz.
func FuzzDecode(f *testing.F) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(1, 1, color.White)
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		f.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(p.Bytes())
	f.Add(j.Bytes())
	f.Add([]byte("GIF89a\x01\x00\x01\x00"))
	const maxPixels = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, maxPixels)
		if err != nil {
			return
		}
		if m.W <= 0 || m.H <= 0 || m.W*m.H > maxPixels || len(m.Pix) != 3*m.W*m.H {
			t.Fatalf("Decode = %dx%d with %d bytes, want within %d pixels and 3 bytes a pixel", m.W, m.H, len(m.Pix), maxPixels)
		}
	})
}
