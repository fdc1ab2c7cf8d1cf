package imgproc

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"sync"

	"github.com/elastiq/elastiq/services/elastiq/imagecheck"
)

// A Decoder decodes images within two limits: the pixels of one image, and
// the bytes that decoded images hold at once (its budget). Decoding ran
// before the model sessions were taken, so nothing else bounded how many
// images were decoded at once: twenty PNGs of 400 KB, each decoding to
// 550 MB, took a process to 5.6 GB.
//
// What a decode holds is read from the file's headers before a pixel is
// decoded (imagecheck.Info.DecodeBytes). A decode waits until its bytes fit
// in the budget and holds them until its caller is done with the image; an
// image that needs more than the whole budget is refused with ErrTooLarge.
// Small images pass a large one that waits, so a photo never queues behind
// a bomb; the large one goes as soon as the budget has room for it.
type Decoder struct {
	maxPixels int
	budget    int64 // 0: no limit

	mu    sync.Mutex
	held  int64
	freed chan struct{} // closed, and replaced, whenever bytes are released
}

// NewDecoder returns a decoder refusing images of more than maxPixels pixels
// (0: no limit) and holding at most budget bytes of decoded images at once
// (0: no limit).
func NewDecoder(maxPixels int, budget int64) *Decoder {
	return &Decoder{maxPixels: maxPixels, budget: budget, freed: make(chan struct{})}
}

// Held is the bytes the decoded images in use hold, as their headers tell.
func (d *Decoder) Held() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held
}

// Decode waits until data's decode fits in the budget, then decodes it.
// The caller calls release when it no longer uses the image (release is
// never nil, also on an error). It gives up waiting when ctx ends.
func (d *Decoder) Decode(ctx context.Context, data []byte) (img *Image, release func(), err error) {
	need := DecodeBytes(data)
	if err := d.acquire(ctx, need); err != nil {
		return nil, func() {}, err
	}
	release = sync.OnceFunc(func() { d.release(need) })
	img, err = Decode(data, d.maxPixels)
	if err != nil {
		release()
	}
	return img, release, err
}

// DecodeBytes is what decoding data holds, from its headers: for a JPEG or
// PNG what imagecheck measures; for any other format Go decodes (GIF) or a
// file imagecheck refuses, 8 bytes a pixel and the RGB copy, with half again
// for what cannot be seen from the header. A file without a readable header
// costs nothing: it fails before allocating pixels.
func DecodeBytes(data []byte) int64 {
	if info, err := imagecheck.Inspect(data); err == nil {
		return info.DecodeBytes
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0
	}
	return int64(cfg.Width) * int64(cfg.Height) * (8 + 3) * 3 / 2
}

func (d *Decoder) acquire(ctx context.Context, n int64) error {
	if d.budget <= 0 || n == 0 {
		return nil
	}
	if n > d.budget {
		return fmt.Errorf("decoding it needs %d MiB, more than the decode budget of %d MiB: %w", n>>20, d.budget>>20, ErrTooLarge)
	}
	for {
		d.mu.Lock()
		if d.held+n <= d.budget {
			d.held += n
			d.mu.Unlock()
			return nil
		}
		freed := d.freed
		d.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d MiB of the decode budget: %w", n>>20, context.Cause(ctx))
		}
	}
}

func (d *Decoder) release(n int64) {
	if d.budget <= 0 || n == 0 {
		return
	}
	d.mu.Lock()
	d.held -= n
	close(d.freed)
	d.freed = make(chan struct{})
	d.mu.Unlock()
}
