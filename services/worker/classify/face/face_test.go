package face

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
)

var _ elastiq.Classifier = (*Classifier)(nil)

// distinct are the ten distinct CSE546 photos (test_k is the same file as
// test_(k+10)) with their labels.
var distinct = []struct {
	file, label string
}{
	{"test_00", "Paul"}, {"test_01", "Emily"}, {"test_02", "Bob"}, {"test_03", "German"}, {"test_04", "Emily"},
	{"test_05", "Gerry"}, {"test_06", "Gerry"}, {"test_07", "Ranil"}, {"test_08", "Bill"}, {"test_09", "Wang"},
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// openFace opens a classifier on the CSE546 gallery with its own cache
// dir; change adjusts the config first.
func openFace(t *testing.T, change func(*Config)) *Classifier {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ModelDir = elastiqtest.ModelDir(t, ortenv.LibraryName, DetectModel, LandmarkModel, FeatureModel)
	cfg.Gallery = elastiqtest.CSE546(t)
	cfg.CacheDir = t.TempDir()
	if change != nil {
		change(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func photoPath(t testing.TB, file string) string {
	return filepath.Join(elastiqtest.CSE546(t), "face_images_100", file+".jpg")
}

// photoBytes reads a CSE546 photo.
func photoBytes(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(photoPath(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readPhoto reads and decodes a CSE546 photo.
func readPhoto(t testing.TB, file string) *imgproc.Image {
	t.Helper()
	img, err := imgproc.Decode(photoBytes(t, file), 0)
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// greyCanvas is a w x h mid-grey image.
func greyCanvas(w, h int) *imgproc.Image {
	m := imgproc.New(w, h)
	for i := range m.Pix {
		m.Pix[i] = 128
	}
	return m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestCSE546EveryImage checks the whole pipeline on the bundled workload.
// The gallery holds the query images themselves, so this shows that every
// image is decoded, detected, aligned, embedded and matched to its own
// label, not how well the model tells people apart.
func TestCSE546EveryImage(t *testing.T) {
	c := openFace(t, nil)
	if e := c.Enrollment(); e.Faces != 100 || e.Identities != 8 || len(e.Skipped) != 0 {
		t.Fatalf("Enrollment() = %d faces, %d identities, skipped %v; want 100, 8, none", e.Faces, e.Identities, e.Skipped)
	}
	ctx := ctxT(t)
	for _, img := range elastiqtest.Workload(t) {
		got, err := c.Classify(ctx, img.Data)
		if err != nil || got != img.Label {
			t.Errorf("Classify(%s) = %q, %v; want %q", img.Name, got, err, img.Label)
		}
	}
}

func TestNoFace(t *testing.T) {
	c := openFace(t, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	gradient := image.NewRGBA(image.Rect(0, 0, 320, 240))
	noise := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			if x < 320 && y < 240 {
				gradient.Set(x, y, color.RGBA{uint8(x * 255 / 320), uint8(y * 255 / 240), 128, 255})
			}
			noise.Set(x, y, color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
		}
	}
	for _, tc := range []struct {
		name  string
		image []byte
	}{
		{name: "gradient", image: encodePNG(t, gradient)},
		{name: "noise", image: encodePNG(t, noise)},
		{name: "flat grey", image: encodePNG(t, greyCanvas(64, 64).RGBA())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Classify(ctxT(t), tc.image)
			if !errors.Is(err, ErrNoFace) {
				t.Fatalf("Classify(%s) = %q, %v; want an error wrapping ErrNoFace", tc.name, got, err)
			}
			if !strings.Contains(err.Error(), "no face found") {
				t.Errorf("error %q does not say no face was found", err)
			}
		})
	}
}

// TestSeveralFaces pastes two CSE546 photos of different people, one
// larger than the other, on canvases of several sizes: the larger face
// must win wherever it is.
func TestSeveralFaces(t *testing.T) {
	c := openFace(t, nil)
	for _, tc := range []struct {
		name           string
		w, h           int
		big, small     string // CSE546 files
		bigPx, smallPx int
		bigLeft        bool
		want           string
	}{
		{name: "400x300 big left", w: 400, h: 300, big: "test_00", small: "test_02", bigPx: 200, smallPx: 120, bigLeft: true, want: "Paul"},
		{name: "400x300 big right", w: 400, h: 300, big: "test_00", small: "test_02", bigPx: 200, smallPx: 120, want: "Paul"},
		{name: "800x400 swapped", w: 800, h: 400, big: "test_02", small: "test_00", bigPx: 320, smallPx: 180, bigLeft: true, want: "Bob"},
		{name: "1024x768", w: 1024, h: 768, big: "test_09", small: "test_08", bigPx: 400, smallPx: 250, want: "Wang"},
		{name: "1920x1080", w: 1920, h: 1080, big: "test_07", small: "test_05", bigPx: 700, smallPx: 400, bigLeft: true, want: "Ranil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			canvas := greyCanvas(tc.w, tc.h)
			bigX, smallX := tc.w/20, tc.w/20+tc.bigPx+tc.w/20
			if !tc.bigLeft {
				smallX, bigX = tc.w/20, tc.w/20+tc.smallPx+tc.w/20
			}
			canvas.Paste(readPhoto(t, tc.big).Resize(tc.bigPx, tc.bigPx), bigX, (tc.h-tc.bigPx)/2)
			canvas.Paste(readPhoto(t, tc.small).Resize(tc.smallPx, tc.smallPx), smallX, (tc.h-tc.smallPx)/2)
			m, err := c.Recognize(ctxT(t), encodePNG(t, canvas.RGBA()))
			if err != nil {
				t.Fatalf("Recognize: %v", err)
			}
			if m.Face.Faces < 2 {
				t.Errorf("Recognize found %d faces, want at least 2 (the test needs both)", m.Face.Faces)
			}
			if m.Label != tc.want {
				t.Errorf("Recognize = %q (similarity %.3f, box %+v), want %q", m.Label, m.Similarity, m.Face.Box, tc.want)
			}
			if b := m.Face.Box; b.X1 < float64(bigX)-float64(tc.bigPx)/4 || b.X2 > float64(bigX+tc.bigPx)+float64(tc.bigPx)/4 {
				t.Errorf("chosen face box %+v is not on the big photo at x %d..%d", b, bigX, bigX+tc.bigPx)
			}
		})
	}
}

// writeFolderGallery writes the distinct CSE546 photos whose label keep
// accepts as a <gallery>/<Label>/<file>.jpg folder.
func writeFolderGallery(t *testing.T, keep func(label string) bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range distinct {
		if !keep(p.label) {
			continue
		}
		b, err := os.ReadFile(photoPath(t, p.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, p.label), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.label, p.file+".jpg"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestUnknownPerson leaves each person out of the gallery in turn: their
// photos must answer the unknown label, and everyone else their own.
//
// The default threshold (0.40) comes from similarities measured on these
// photos: between photos of different people the cosine similarity was at
// most 0.31, while the same photo rescaled, re-placed on a larger canvas or
// mirrored stayed at 0.85 or more.
func TestUnknownPerson(t *testing.T) {
	people := []string{"Paul", "Emily", "Bob", "German", "Gerry", "Ranil", "Bill", "Wang"}
	for _, out := range people {
		t.Run("without "+out, func(t *testing.T) {
			gallery := writeFolderGallery(t, func(l string) bool { return l != out })
			c := openFace(t, func(cfg *Config) { cfg.Gallery = gallery })
			if got := c.Enrollment().Identities; got != len(people)-1 {
				t.Fatalf("Enrollment().Identities = %d, want %d", got, len(people)-1)
			}
			for _, p := range distinct {
				b, err := os.ReadFile(photoPath(t, p.file))
				if err != nil {
					t.Fatal(err)
				}
				m, err := c.Recognize(ctxT(t), b)
				if err != nil {
					t.Fatalf("Recognize(%s): %v", p.file, err)
				}
				want := p.label
				if p.label == out {
					want = DefaultUnknownLabel
					t.Logf("%s (%s) left out: nearest %s at %.3f", p.file, p.label, m.Nearest, m.Similarity)
				}
				if m.Label != want {
					t.Errorf("Recognize(%s) = %q (nearest %s at %.3f), want %q", p.file, m.Label, m.Nearest, m.Similarity, want)
				}
			}
		})
	}
}

func TestCorruptImage(t *testing.T) {
	c := openFace(t, func(cfg *Config) { cfg.MaxPixels = 4000 * 4000 })
	good, err := os.ReadFile(photoPath(t, "test_00"))
	if err != nil {
		t.Fatal(err)
	}
	// A valid PNG header that declares 100000 x 100000 pixels.
	var huge bytes.Buffer
	if err := png.Encode(&huge, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	hugePNG := huge.Bytes()
	copy(hugePNG[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	binary.BigEndian.PutUint32(hugePNG[29:33], crc32.ChecksumIEEE(hugePNG[12:29])) // IHDR's CRC
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, greyCanvas(64, 64).RGBA(), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		image []byte
		want  string
	}{
		{name: "empty", image: nil, want: "decode image"},
		{name: "not an image", image: []byte("hello, this is text"), want: "decode image"},
		{name: "truncated jpeg", image: good[:len(good)/2], want: "decode jpeg"},
		{name: "jpeg header only", image: jpg.Bytes()[:30], want: "decode"},
		{name: "absurd dimensions", image: hugePNG, want: "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Classify(ctxT(t), tc.image)
			if err == nil {
				t.Fatalf("Classify(%s) = %q, nil; want an error", tc.name, got)
			}
			if errors.Is(err, ErrNoFace) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Classify(%s) error = %q, want one containing %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestEnrollmentCache(t *testing.T) {
	gallery := writeFolderGallery(t, func(string) bool { return true })
	cache := t.TempDir()
	open := func() *Classifier {
		return openFace(t, func(cfg *Config) { cfg.Gallery, cfg.CacheDir = gallery, cache })
	}
	query, err := os.ReadFile(photoPath(t, "test_09"))
	if err != nil {
		t.Fatal(err)
	}

	first := open()
	e1 := first.Enrollment()
	if e1.FromCache || e1.Embedded != len(distinct) || e1.CacheFile == "" {
		t.Fatalf("first Enrollment() = %+v, want %d embedded, not from cache", e1, len(distinct))
	}
	if _, err := os.Stat(e1.CacheFile); err != nil {
		t.Fatalf("cache file: %v", err)
	}
	m1, err := first.Recognize(ctxT(t), query)
	if err != nil {
		t.Fatal(err)
	}

	second := open()
	e2 := second.Enrollment()
	if !e2.FromCache || e2.Embedded != 0 || e2.Key != e1.Key || e2.Faces != e1.Faces {
		t.Fatalf("second Enrollment() = %+v, want from cache, 0 embedded, key %s", e2, e1.Key)
	}
	m2, err := second.Recognize(ctxT(t), query)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Label != m1.Label || m2.Similarity != m1.Similarity {
		t.Errorf("from cache: Recognize = %s %.6f, want %s %.6f", m2.Label, m2.Similarity, m1.Label, m1.Similarity)
	}

	// Changing an image's content, or adding one, invalidates the cache.
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{name: "image replaced", do: func() error {
			b, err := os.ReadFile(photoPath(t, "test_08"))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(gallery, "Wang", "test_09.jpg"), b, 0o644)
		}},
		{name: "image added", do: func() error {
			b, err := os.ReadFile(photoPath(t, "test_00"))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(gallery, "Paul", "again.jpg"), b, 0o644)
		}},
		{name: "label renamed", do: func() error {
			return os.Rename(filepath.Join(gallery, "Bob"), filepath.Join(gallery, "Robert"))
		}},
	} {
		t.Run(change.name, func(t *testing.T) {
			if err := change.do(); err != nil {
				t.Fatal(err)
			}
			c := open()
			if e := c.Enrollment(); e.FromCache || e.Embedded == 0 || e.Key == e1.Key {
				t.Errorf("after %s: Enrollment() = %+v, want enrolled again under a new key", change.name, e)
			}
		})
	}

	// A damaged cache file is ignored and rewritten.
	if err := os.WriteFile(e1.CacheFile, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(gallery); err != nil {
		t.Fatal(err)
	}
	gallery = writeFolderGallery(t, func(string) bool { return true })
	c := open()
	if e := c.Enrollment(); e.FromCache || e.Key != e1.Key {
		t.Errorf("damaged cache: Enrollment() = %+v, want enrolled again under key %s", e, e1.Key)
	}
}

// TestConcurrent classifies the whole workload from many goroutines on two
// sessions, as a worker with several consumers does.
func TestConcurrent(t *testing.T) {
	c := openFace(t, func(cfg *Config) { cfg.Sessions = 2 })
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := distinct[i%10]
			b, err := os.ReadFile(photoPath(t, p.file))
			if err != nil {
				errs <- err
				return
			}
			got, err := c.Classify(ctx, b)
			if err != nil || got != p.label {
				errs <- fmt.Errorf("Classify(%s) = %q, %v; want %q", p.file, got, err, p.label)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseAndShare opens two classifiers in one process (they share the
// ONNX Runtime environment), closes one, and checks that the other still
// works and that the closed one refuses work.
func TestCloseAndShare(t *testing.T) {
	gallery := writeFolderGallery(t, func(string) bool { return true })
	a := openFace(t, func(cfg *Config) { cfg.Gallery = gallery })
	cfg := DefaultConfig()
	cfg.ModelDir, cfg.Gallery = a.cfg.ModelDir, gallery
	b, err := Open(ctxT(t), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open second: %v", err)
	}
	img, err := os.ReadFile(photoPath(t, "test_02"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, err := b.Classify(ctxT(t), img); err == nil {
		t.Errorf("Classify after Close = %q, nil; want an error", got)
	}
	if got, err := a.Classify(ctxT(t), img); err != nil || got != "Bob" {
		t.Errorf("other classifier: Classify = %q, %v; want Bob", got, err)
	}
}

func TestClassifyCancelled(t *testing.T) {
	c := openFace(t, nil)
	img, err := os.ReadFile(photoPath(t, "test_02"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := c.Classify(ctx, img); !errors.Is(err, context.Canceled) {
		t.Errorf("Classify(cancelled ctx) = %q, %v; want context.Canceled", got, err)
	}
}

func TestOpenErrors(t *testing.T) {
	valid := DefaultConfig()
	valid.ModelDir, valid.Gallery = t.TempDir(), t.TempDir()
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{name: "missing models", change: func(*Config) {}, want: "run scripts/fetch-models.sh"},
		{name: "no model dir", change: func(c *Config) { c.ModelDir = "" }, want: "model dir is empty"},
		{name: "no gallery", change: func(c *Config) { c.Gallery = "" }, want: "gallery is empty"},
		{name: "threshold", change: func(c *Config) { c.Threshold = 2 }, want: "threshold"},
		{name: "sessions", change: func(c *Config) { c.Sessions = 0 }, want: "sessions"},
		{name: "unknown label", change: func(c *Config) { c.UnknownLabel = "" }, want: "unknown label"},
		{name: "min score", change: func(c *Config) { c.MinScore = 1 }, want: "min score"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.change(&cfg)
			c, err := Open(ctxT(t), cfg, testLogger(t))
			if err == nil {
				c.Close()
				t.Fatalf("Open(%s) = nil error, want one containing %q", tc.name, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%s) error = %q, want one containing %q", tc.name, err, tc.want)
			}
		})
	}
}
