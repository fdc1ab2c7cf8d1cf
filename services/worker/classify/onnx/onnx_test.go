package onnx

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/worker/classify/internal/onnxtest"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
)

var _ elastiq.Classifier = (*Classifier)(nil)

// colourWeights score red, green and blue by their channel's mean and
// "dark" by minus the mean of all three: with the normalisation
// (p/255 - 0.5) / 0.5, a pure colour scores 1 on its class and 1/3 on
// dark, and black scores 1 on dark.
var colourWeights = [][]float32{
	{1, 0, 0, -1.0 / 3},
	{0, 1, 0, -1.0 / 3},
	{0, 0, 1, -1.0 / 3},
}

var colourLabels = []string{"red", "green", "blue", "dark"}

func solid(w, h int, c color.RGBA) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, c)
		}
	}
	return encode(img)
}

func encode(img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

var (
	red   = color.RGBA{255, 0, 0, 255}
	green = color.RGBA{0, 255, 0, 255}
	blue  = color.RGBA{0, 0, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	white = color.RGBA{255, 255, 255, 255}
)

// baseConfig is a model dir with the runtime, the colour model and its
// labels, normalised to [-1, 1].
func baseConfig(t *testing.T, m onnxtest.Model, labels ...string) Config {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.RuntimeDir = elastiqtest.ModelDir(t, ortenv.LibraryName)
	cfg.Model = onnxtest.Write(t, dir, "model.onnx", m)
	cfg.Labels = onnxtest.WriteLabels(t, dir, "labels.txt", labels...)
	cfg.Mean = [3]float32{0.5, 0.5, 0.5}
	cfg.Std = [3]float32{0.5, 0.5, 0.5}
	return cfg
}

func open(t *testing.T, cfg Config) *Classifier {
	t.Helper()
	c, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
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

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestClassify(t *testing.T) {
	nchw := onnxtest.Model{Channels: 3, H: 8, W: 8, Weights: colourWeights}
	nhwc := onnxtest.Model{NHWC: true, Channels: 3, H: 8, W: 8, Weights: colourWeights}
	dynamic := onnxtest.Model{Channels: 3, Weights: colourWeights}
	for _, tc := range []struct {
		name   string
		model  onnxtest.Model
		change func(*Config)
		images map[string][]byte // want label -> image
	}{
		{name: "NCHW RGB", model: nchw, images: map[string][]byte{
			"red": solid(20, 10, red), "green": solid(8, 8, green), "blue": solid(640, 480, blue), "dark": solid(3, 3, black),
		}},
		{name: "NCHW BGR swaps red and blue", model: nchw, change: func(c *Config) { c.Channels = BGR }, images: map[string][]byte{
			"blue": solid(20, 10, red), "green": solid(8, 8, green), "red": solid(64, 64, blue),
		}},
		{name: "NHWC RGB", model: nhwc, change: func(c *Config) { c.Layout = NHWC }, images: map[string][]byte{
			"red": solid(20, 10, red), "blue": solid(64, 48, blue), "dark": solid(5, 5, black),
		}},
		{name: "dynamic size from config", model: dynamic, change: func(c *Config) { c.Width, c.Height = 32, 24 }, images: map[string][]byte{
			"green": solid(100, 100, green),
		}},
		{name: "normalisation matters", model: nchw, change: func(c *Config) { c.Mean = [3]float32{} }, images: map[string][]byte{
			// Without centring black is all zeros, every score is 0 and
			// the first class wins instead of dark.
			"red": solid(8, 8, black),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t, tc.model, colourLabels...)
			if tc.change != nil {
				tc.change(&cfg)
			}
			c := open(t, cfg)
			for want, img := range tc.images {
				p, err := c.Predict(ctxT(t), img)
				if err != nil || p.Label != want {
					t.Errorf("Predict(%s image) = %+v, %v; want %s", want, p, err, want)
				}
			}
		})
	}
}

func TestGray(t *testing.T) {
	cfg := baseConfig(t, onnxtest.Model{Channels: 1, H: 4, W: 4, Weights: [][]float32{{-1, 1}}}, "dark", "light")
	cfg.Channels = Gray
	c := open(t, cfg)
	for _, tc := range []struct {
		image []byte
		want  string
	}{
		{image: solid(10, 10, white), want: "light"},
		{image: solid(10, 10, black), want: "dark"},
		// Luma of (0, 200, 0) is 0.587*200 = 117 < 127.5: dark, although
		// its green channel alone would be light.
		{image: solid(10, 10, color.RGBA{0, 200, 0, 255}), want: "dark"},
		{image: solid(10, 10, color.RGBA{200, 200, 200, 255}), want: "light"},
	} {
		got, err := c.Classify(ctxT(t), tc.image)
		if err != nil || got != tc.want {
			t.Errorf("Classify = %q, %v; want %q", got, err, tc.want)
		}
	}
}

// TestCrop: blue | red | blue in thirds. Stretched, the image is two thirds
// blue; centre-cropped to the square input it is all red.
func TestCrop(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 300, 100))
	for y := 0; y < 100; y++ {
		for x := 0; x < 300; x++ {
			c := blue
			if x >= 100 && x < 200 {
				c = red
			}
			img.SetRGBA(x, y, c)
		}
	}
	for _, tc := range []struct {
		resize, want string
	}{
		{resize: Stretch, want: "blue"},
		{resize: Crop, want: "red"},
	} {
		t.Run(tc.resize, func(t *testing.T) {
			cfg := baseConfig(t, onnxtest.Model{Channels: 3, H: 16, W: 16, Weights: colourWeights}, colourLabels...)
			cfg.Resize = tc.resize
			if got, err := open(t, cfg).Classify(ctxT(t), encode(img)); err != nil || got != tc.want {
				t.Errorf("Classify(resize %s) = %q, %v; want %q", tc.resize, got, err, tc.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	nchw := onnxtest.Model{Channels: 3, H: 8, W: 8, Weights: colourWeights}
	for _, tc := range []struct {
		name   string
		model  onnxtest.Model
		labels []string
		change func(*Config)
		want   string
	}{
		{name: "label count", model: nchw, labels: colourLabels[:3], want: "4 scores"},
		{name: "layout mismatch", model: nchw, labels: colourLabels, change: func(c *Config) { c.Layout = NHWC }, want: "channels"},
		{name: "size mismatch", model: nchw, labels: colourLabels, change: func(c *Config) { c.Width = 16 }, want: "width 8, config says 16"},
		{name: "dynamic size unset", model: onnxtest.Model{Channels: 3, Weights: colourWeights}, labels: colourLabels, want: "dynamic height"},
		{name: "gray model, rgb config", model: onnxtest.Model{Channels: 1, H: 4, W: 4, Weights: [][]float32{{1, -1}}}, labels: []string{"a", "b"}, want: "1 channels"},
		{name: "unknown input", model: nchw, labels: colourLabels, change: func(c *Config) { c.Input = "pixels" }, want: `no input named "pixels"`},
		{name: "missing runtime", model: nchw, labels: colourLabels, change: func(c *Config) { c.RuntimeDir = t.TempDir() }, want: "run scripts/fetch-models.sh"},
		{name: "missing model", model: nchw, labels: colourLabels, change: func(c *Config) { c.Model += ".gone" }, want: "no such file"},
		{name: "bad layout", model: nchw, labels: colourLabels, change: func(c *Config) { c.Layout = "CHW" }, want: "layout"},
		{name: "zero std", model: nchw, labels: colourLabels, change: func(c *Config) { c.Std[1] = 0 }, want: "std[1] is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t, tc.model, tc.labels...)
			if tc.change != nil {
				tc.change(&cfg)
			}
			c, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
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

func TestLabelsFile(t *testing.T) {
	cfg := baseConfig(t, onnxtest.Model{Channels: 3, H: 8, W: 8, Weights: colourWeights}, "a", "", "c", "d")
	if _, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "line 2 is empty") {
		t.Errorf("Open with an empty label line: error = %v, want one naming line 2", err)
	}
}

func TestCorruptImage(t *testing.T) {
	c := open(t, baseConfig(t, onnxtest.Model{Channels: 3, H: 8, W: 8, Weights: colourWeights}, colourLabels...))
	good := solid(8, 8, red)
	for _, img := range [][]byte{nil, []byte("not an image"), good[:len(good)/2]} {
		if got, err := c.Classify(ctxT(t), img); err == nil || !strings.Contains(err.Error(), "decode") {
			t.Errorf("Classify(%d bytes of junk) = %q, %v; want a decode error", len(img), got, err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	cfg := baseConfig(t, onnxtest.Model{Channels: 3, H: 8, W: 8, Weights: colourWeights}, colourLabels...)
	cfg.Sessions = 2
	c := open(t, cfg)
	images := []struct {
		img  []byte
		want string
	}{{solid(9, 9, red), "red"}, {solid(9, 9, green), "green"}, {solid(9, 9, blue), "blue"}, {solid(9, 9, black), "dark"}}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			im := images[i%len(images)]
			if got, err := c.Classify(ctxT(t), im.img); err != nil || got != im.want {
				errs <- fmt.Errorf("Classify = %q, %v; want %q", got, err, im.want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
