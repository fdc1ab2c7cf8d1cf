// Package classify opens the classifier a worker uses, by name:
//
//   - "face" (the default): the built-in face recognizer (package face),
//     ONNX models fetched by scripts/fetch-models.sh, with an enrolled gallery.
//   - "exec": a command run once per image (package command), as the
//     original CSE546 app tier ran its Python script.
//   - "onnx": the user's own ONNX image classifier (package onnx).
//
// Every backend implements elastiq.Classifier and io.Closer.
package classify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/worker/classify/command"
	"github.com/elastiq/elastiq/services/worker/classify/face"
	"github.com/elastiq/elastiq/services/worker/classify/onnx"
)

// Backend names.
const (
	Face = "face"
	Exec = "exec"
	ONNX = "onnx"
)

// Classifier is what Open returns.
type Classifier interface {
	elastiq.Classifier
	io.Closer
}

var (
	_ Classifier = (*face.Classifier)(nil)
	_ Classifier = (*command.Classifier)(nil)
	_ Classifier = (*onnx.Classifier)(nil)
)

// Config selects and configures a backend. Fields that do not apply to the
// chosen backend are ignored.
type Config struct {
	// Backend is "face", "exec" or "onnx".
	Backend string

	// ModelDir holds libonnxruntime.so.1 and, for "face", the face models
	// (scripts/fetch-models.sh fills it; default ".models").
	ModelDir string
	// Gallery is the folder of enrolled faces ("face"): <Label>/*.jpg|png,
	// or images plus a labels.csv (the CSE546 layout).
	Gallery string
	// CacheDir keeps the gallery's embeddings between starts ("face");
	// empty means <ModelDir>/cache.
	CacheDir string
	// Threshold is the least cosine similarity that still answers the
	// nearest enrolled label ("face"); below it the answer is UnknownLabel.
	Threshold    float64
	UnknownLabel string
	// Certain and FalseMatchRate are the rest of the open-set rule
	// ("face"): below the Certain similarity a name also needs a z
	// calibrated on the gallery to let FalseMatchRate of strangers through
	// (0: no z rule). See face.Config.
	Certain, FalseMatchRate float64
	// Sessions is how many images are classified at once ("face", "onnx"):
	// each session runs on its own OS thread.
	Sessions int
	// MaxPixels refuses larger images before decoding ("face", "onnx").
	MaxPixels int
	// DecodeBudget bounds the bytes decoded images hold at once ("face",
	// "onnx"): decodes wait for room, and an image needing more than all of
	// it fails (see imgproc.Decoder).
	DecodeBudget int64

	// Command is the program and arguments run per image ("exec"); "{}"
	// stands for the image file's path.
	Command []string
	// Timeout bounds one classification ("exec"; 0 = none).
	Timeout time.Duration

	// ONNX configures the "onnx" backend; an empty RuntimeDir means
	// ModelDir, and zero Sessions and MaxPixels mean the fields above.
	ONNX onnx.Config
}

// DefaultConfig is the face backend on the models in .models and no
// gallery (the caller must name one).
func DefaultConfig() Config {
	f := face.DefaultConfig()
	o := onnx.DefaultConfig()
	o.Sessions, o.MaxPixels = 0, 0 // inherit Sessions and MaxPixels
	return Config{
		Backend:        Face,
		ModelDir:       ".models",
		Threshold:      f.Threshold,
		Certain:        f.Certain,
		FalseMatchRate: f.FalseMatchRate,
		UnknownLabel:   f.UnknownLabel,
		Sessions:       f.Sessions,
		MaxPixels:      f.MaxPixels,
		DecodeBudget:   f.DecodeBudget,
		Timeout:        time.Minute,
		ONNX:           o,
	}
}

// Validate checks the config of the chosen backend without touching the
// disk.
func (c Config) Validate() error {
	var err error
	switch c.Backend {
	case Face:
		err = c.faceConfig().Validate()
	case Exec:
		err = c.execConfig().Validate()
		if len(c.Command) == 0 {
			err = fmt.Errorf("%s backend needs a command (-exec-command): %w", Exec, err)
		}
	case ONNX:
		err = c.onnxConfig().Validate()
	default:
		err = fmt.Errorf("backend %q: want %s, %s or %s", c.Backend, Face, Exec, ONNX)
	}
	if err != nil {
		return fmt.Errorf("classifier config: %w", err)
	}
	return nil
}

func (c Config) faceConfig() face.Config {
	cache := c.CacheDir
	if cache == "" && c.ModelDir != "" {
		cache = filepath.Join(c.ModelDir, "cache")
	}
	f := face.DefaultConfig()
	f.ModelDir, f.Gallery, f.CacheDir = c.ModelDir, c.Gallery, cache
	f.Threshold, f.UnknownLabel, f.Sessions, f.MaxPixels = c.Threshold, c.UnknownLabel, c.Sessions, c.MaxPixels
	f.DecodeBudget, f.Certain, f.FalseMatchRate = c.DecodeBudget, c.Certain, c.FalseMatchRate
	return f
}

func (c Config) execConfig() command.Config {
	return command.Config{Command: c.Command, Timeout: c.Timeout}
}

func (c Config) onnxConfig() onnx.Config {
	o := c.ONNX
	if o.RuntimeDir == "" {
		o.RuntimeDir = c.ModelDir
	}
	if o.Sessions == 0 {
		o.Sessions = c.Sessions
	}
	if o.MaxPixels == 0 {
		o.MaxPixels = c.MaxPixels
	}
	if o.DecodeBudget == 0 {
		o.DecodeBudget = c.DecodeBudget
	}
	return o
}

// Open validates cfg and opens its backend. For "face" that loads the
// models and enrolls the gallery (from its cache when current), which can
// take a while on a large gallery; ctx bounds it. A missing model file is an
// error that names the folder and says to run scripts/fetch-models.sh.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = logger.With("component", "classifier", "backend", cfg.Backend)
	switch cfg.Backend {
	case Face:
		return face.Open(ctx, cfg.faceConfig(), logger)
	case Exec:
		return command.New(cfg.execConfig(), logger)
	case ONNX:
		return onnx.Open(ctx, cfg.onnxConfig(), logger)
	}
	return nil, errors.New("open classifier: unreachable")
}
