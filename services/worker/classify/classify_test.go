package classify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/worker/classify/face"
	"github.com/elastiq/elastiq/services/worker/classify/internal/onnxtest"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{name: "face", change: func(c *Config) { c.Gallery = "g" }},
		{name: "face without gallery", change: func(c *Config) {}, want: "gallery is empty"},
		{name: "face bad threshold", change: func(c *Config) { c.Gallery, c.Threshold = "g", -3 }, want: "threshold"},
		{name: "exec", change: func(c *Config) { c.Backend, c.Command = Exec, []string{"true"} }},
		{name: "exec without command", change: func(c *Config) { c.Backend = Exec }, want: "needs a command (-exec-command)"},
		{name: "onnx", change: func(c *Config) { c.Backend, c.ONNX.Model, c.ONNX.Labels = ONNX, "m.onnx", "l.txt" }},
		{name: "onnx without model", change: func(c *Config) { c.Backend, c.ONNX.Labels = ONNX, "l.txt" }, want: "onnx model file is empty"},
		{name: "onnx without runtime", change: func(c *Config) {
			c.Backend, c.ModelDir, c.ONNX.Model, c.ONNX.Labels = ONNX, "", "m.onnx", "l.txt"
		}, want: "runtime dir is empty"},
		{name: "unknown backend", change: func(c *Config) { c.Backend = "tensorflow" }, want: `backend "tensorflow"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestFaceConfigDefaults(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ModelDir, cfg.Gallery = "/m", "/g"
	f := cfg.faceConfig()
	if f.CacheDir != "/m/cache" || f.Threshold != face.DefaultThreshold || f.UnknownLabel != "Unknown" || f.Sessions != 1 {
		t.Errorf("faceConfig() = %+v, want cache /m/cache, threshold %v, Unknown, 1 session", f, face.DefaultThreshold)
	}
	cfg.Sessions, cfg.MaxPixels = 3, 1000
	if o := cfg.onnxConfig(); o.RuntimeDir != "/m" || o.Sessions != 3 || o.MaxPixels != 1000 || o.Layout != "NCHW" {
		t.Errorf("onnxConfig() = %+v, want runtime /m, 3 sessions, 1000 pixels, NCHW", o)
	}
}

func TestOpenMissingModels(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ModelDir, cfg.Gallery = filepath.Join(t.TempDir(), "models"), t.TempDir()
	_, err := Open(ctxT(t), cfg, discard())
	if err == nil || !strings.Contains(err.Error(), cfg.ModelDir) || !strings.Contains(err.Error(), "scripts/fetch-models.sh") {
		t.Errorf("Open(no models) error = %v, want one naming %s and scripts/fetch-models.sh", err, cfg.ModelDir)
	}
}

func TestOpenBackends(t *testing.T) {
	photo := func(t *testing.T) []byte {
		b, err := os.ReadFile(filepath.Join(elastiqtest.CSE546(t), "face_images_100", "test_02.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		config func(t *testing.T) Config
		want   func(img []byte) string
	}{
		{name: "face", want: func([]byte) string { return "Bob" }, config: func(t *testing.T) Config {
			cfg := DefaultConfig()
			cfg.ModelDir = elastiqtest.ModelDir(t, ortenv.LibraryName, face.DetectModel, face.LandmarkModel, face.FeatureModel, face.MetricModel)
			cfg.Gallery, cfg.CacheDir = elastiqtest.CSE546(t), t.TempDir()
			return cfg
		}},
		{name: "exec", want: func(img []byte) string { return fmt.Sprintf("Bob-size-%d", len(img)) }, config: func(t *testing.T) Config {
			cfg := DefaultConfig()
			cfg.Backend = Exec
			cfg.Command = []string{"sh", "-c", `echo "Bob-size-$(wc -c < "$1" | tr -d ' ')"`, "sh", "{}"}
			return cfg
		}},
		{name: "onnx", want: func([]byte) string { return "warm" }, config: func(t *testing.T) Config {
			// Scores mean blue minus mean red as "cool" (listed first, so it
			// would win a tie) and the opposite as "warm": the CSE546 photo
			// of Bob is a warm, skin-toned image.
			dir := t.TempDir()
			cfg := DefaultConfig()
			cfg.Backend = ONNX
			cfg.ModelDir = elastiqtest.ModelDir(t, ortenv.LibraryName)
			cfg.ONNX.Model = onnxtest.Write(t, dir, "m.onnx", onnxtest.Model{Channels: 3, H: 32, W: 32,
				Weights: [][]float32{{-1, 1}, {0, 0}, {1, -1}}})
			cfg.ONNX.Labels = onnxtest.WriteLabels(t, dir, "labels.txt", "cool", "warm")
			return cfg
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := photo(t)
			c, err := Open(ctxT(t), tc.config(t), discard())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := c.Classify(ctxT(t), img)
			if want := tc.want(img); err != nil || got != want {
				t.Errorf("Classify = %q, %v; want %q", got, err, want)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}
