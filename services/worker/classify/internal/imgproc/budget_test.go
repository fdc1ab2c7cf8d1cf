package imgproc

import (
	"context"
	"errors"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/imagecheck"
)

// opaque hides an image's concrete type, so FromImage takes its generic
// path, the reference for its fast ones.
type opaque struct{ image.Image }

func TestFromImageFastPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := image.Rect(0, 0, 13, 7)
	fill := func(pix []uint8) {
		for i := range pix {
			pix[i] = uint8(rng.IntN(256))
		}
	}
	nrgba, nrgba64, rgba64, gray16 := image.NewNRGBA(r), image.NewNRGBA64(r), image.NewRGBA64(r), image.NewGray16(r)
	fill(nrgba.Pix)
	fill(nrgba64.Pix)
	fill(gray16.Pix)
	for y := range r.Dy() { // premultiplied: no channel above alpha
		for x := range r.Dx() {
			a := uint16(rng.IntN(0x10000))
			rgba64.SetRGBA64(x, y, color.RGBA64{uint16(rng.IntN(int(a) + 1)), uint16(rng.IntN(int(a) + 1)), uint16(rng.IntN(int(a) + 1)), a})
		}
	}
	for _, src := range []image.Image{nrgba, nrgba64, rgba64, gray16} {
		got, want := FromImage(src), FromImage(opaque{src})
		if string(got.Pix) != string(want.Pix) {
			t.Errorf("FromImage(%T) = %v, want %v", src, got.Pix[:12], want.Pix[:12])
		}
	}
}

// bomb is a w×h 16-bit RGBA PNG, and what decoding it holds.
func bomb(t *testing.T, w, h int) ([]byte, int64) {
	t.Helper()
	data := elastiqtest.DecodeBomb(t, w, h)
	info, err := imagecheck.Inspect(data)
	if err != nil {
		t.Fatal(err)
	}
	return data, info.DecodeBytes
}

func TestDecoderBudget(t *testing.T) {
	big, need := bomb(t, 300, 200)
	small, smallNeed := bomb(t, 4, 4)
	d := NewDecoder(0, need+smallNeed) // one big and one small at once
	ctx := context.Background()

	img, release, err := d.Decode(ctx, big)
	if err != nil || img.W != 300 {
		t.Fatalf("Decode(big) = %v, %v", img, err)
	}
	if d.Held() != need {
		t.Errorf("Held = %d with one image, want %d", d.Held(), need)
	}
	// A second big one waits; a small one passes it.
	second := make(chan error, 1)
	go func() {
		_, rel, err := d.Decode(ctx, big)
		rel()
		second <- err
	}()
	_, relSmall, err := d.Decode(ctx, small)
	if err != nil {
		t.Fatalf("Decode(small) while a big one waits: %v", err)
	}
	relSmall()
	select {
	case err := <-second:
		t.Fatalf("the second big decode ended (%v) while the first held the budget", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	release() // releasing twice gives back once
	if err := <-second; err != nil {
		t.Fatalf("second big decode after the release: %v", err)
	}
	if d.Held() != 0 {
		t.Errorf("Held = %d after every release, want 0", d.Held())
	}

	// A decode that can never fit is refused at once; one waiting gives up
	// with its context.
	if _, rel, err := NewDecoder(0, need-1).Decode(ctx, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode(needs %d, budget %d) = %v, want ErrTooLarge", need, need-1, err)
	} else {
		rel()
	}
	_, hold, _ := d.Decode(ctx, big)
	defer hold()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, rel, err := d.Decode(cctx, big); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Decode waiting past its deadline = %v, want DeadlineExceeded", err)
	} else {
		rel()
	}
	// Undecodable bytes hold nothing and fail.
	if _, rel, err := d.Decode(ctx, []byte("not an image")); err == nil {
		t.Error("Decode(junk) = nil error")
	} else {
		rel()
	}
	if d.Held() != need {
		t.Errorf("Held = %d, want %d (the one held image)", d.Held(), need)
	}
}
