package web

import (
	"bytes"
	"image"
	"image/png"
	"math/rand/v2"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
)

// TestInlineImage: an image up to InlineMaxBytes travels in its request; a
// larger one does not; both are stored under input/ all the same.
func TestInlineImage(t *testing.T) {
	faces, labels := distinctFaces(t, 1)
	small := faces[0]
	// A noisy 64x64 image: a PNG several times the small one's size.
	large := face{name: "noise.png", data: noisePNG(t, 64)}

	cfg := testConfig()
	cfg.InlineMaxBytes = len(small.data)
	h := newHarness(t, cfg, nil, labels)
	for _, f := range []face{small, large} {
		h.submit(t, "file", f)
	}
	h.requests.mu.Lock()
	msgs := append([]elastiq.Message(nil), h.requests.visible...)
	h.requests.mu.Unlock()
	if len(msgs) != 2 {
		t.Fatalf("%d requests queued, want 2", len(msgs))
	}
	for i, want := range [][]byte{small.data, nil} { // in the order sent
		req, err := elastiq.DecodeRequest(msgs[i].Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(req.Image, want) {
			t.Errorf("request %d carries %d image bytes, want %d", i, len(req.Image), len(want))
		}
		if _, err := h.store.Get(t.Context(), req.InputKey); err != nil {
			t.Errorf("input of request %d: %v; want it stored whether inlined or not", i, err)
		}
	}
}

// noisePNG is a side x side grey PNG of random pixels: a valid image that
// barely compresses (side squared bytes and a little more).
func noisePNG(t *testing.T, side int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, side, side))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
