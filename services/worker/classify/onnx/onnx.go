// Package onnx is the bring-your-own-model classifier backend: any ONNX
// image classifier with one float32 image input and one score output (a
// logit or probability per class), plus a labels file with one label per
// line in the model's class order. The answer is the top-1 label.
//
// The input's size, layout (NCHW or NHWC), channel order (RGB, BGR or
// grey) and normalisation are configuration, so a model exported from
// PyTorch, TensorFlow or elsewhere runs as trained. See the module README
// for exporting a PyTorch model with torch.onnx.export.
package onnx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
	"github.com/elastiq/elastiq/services/worker/classify/internal/pool"
)

// Config configures a Classifier.
type Config struct {
	// RuntimeDir holds libonnxruntime.so.1 (scripts/fetch-models.sh puts
	// it in .models/).
	RuntimeDir string
	// Model is the .onnx file; Labels the labels file, one per line.
	Model, Labels string
	// Input and Output name the tensors to use; empty means the model's
	// first input and first output.
	Input, Output string
	// Width and Height of the input image; 0 takes them from the model,
	// which must then declare them.
	Width, Height int
	// Layout is "NCHW" (PyTorch's) or "NHWC" (TensorFlow's).
	Layout string
	// Channels is "RGB", "BGR" or "GRAY" (luma, one channel).
	Channels string
	// Mean and Std normalise each channel as (pixel/255 - Mean) / Std,
	// torchvision's convention (ImageNet: Mean 0.485, 0.456, 0.406 and
	// Std 0.229, 0.224, 0.225). GRAY uses the first value of each.
	Mean, Std [3]float32
	// Resize is "stretch" (the whole image to Width x Height) or "crop"
	// (the largest centred region of the input's aspect ratio, then
	// resized: torchvision's Resize + CenterCrop).
	Resize string
	// Sessions is how many images are classified at once.
	Sessions int
	// MaxPixels refuses larger images before decoding them (0: no limit).
	MaxPixels int
	// DecodeBudget bounds the bytes decoded images hold at once (see
	// imgproc.Decoder); 0: no bound.
	DecodeBudget int64
}

// Layouts, channel orders and resize modes.
const (
	NCHW = "NCHW"
	NHWC = "NHWC"
	RGB  = "RGB"
	BGR  = "BGR"
	Gray = "GRAY"

	Stretch = "stretch"
	Crop    = "crop"
)

// DefaultConfig is an ImageNet-style RGB NCHW model.
func DefaultConfig() Config {
	return Config{
		Layout:    NCHW,
		Channels:  RGB,
		Mean:      [3]float32{0.485, 0.456, 0.406},
		Std:       [3]float32{0.229, 0.224, 0.225},
		Resize:    Stretch,
		Sessions:  1,
		MaxPixels: 50_000_000,
		// DecodeBudget is left 0 here: classify.Config's applies.
	}
}

// Validate checks the config without touching the disk.
func (c Config) Validate() error {
	var errs []error
	if c.RuntimeDir == "" {
		errs = append(errs, errors.New("runtime dir is empty"))
	}
	if c.Model == "" {
		errs = append(errs, errors.New("onnx model file is empty"))
	}
	if c.Labels == "" {
		errs = append(errs, errors.New("labels file is empty"))
	}
	if c.Width < 0 || c.Height < 0 {
		errs = append(errs, fmt.Errorf("input size %dx%d: want positive, or 0 for the model's", c.Width, c.Height))
	}
	if c.Layout != NCHW && c.Layout != NHWC {
		errs = append(errs, fmt.Errorf("layout %q: want %s or %s", c.Layout, NCHW, NHWC))
	}
	if c.Channels != RGB && c.Channels != BGR && c.Channels != Gray {
		errs = append(errs, fmt.Errorf("channels %q: want %s, %s or %s", c.Channels, RGB, BGR, Gray))
	}
	for i, s := range c.Std {
		if s == 0 && (i == 0 || c.Channels != Gray) {
			errs = append(errs, fmt.Errorf("std[%d] is 0", i))
		}
	}
	if c.Resize != Stretch && c.Resize != Crop {
		errs = append(errs, fmt.Errorf("resize %q: want %s or %s", c.Resize, Stretch, Crop))
	}
	if c.Sessions < 1 {
		errs = append(errs, fmt.Errorf("sessions %d: want at least 1", c.Sessions))
	}
	if c.MaxPixels < 0 {
		errs = append(errs, fmt.Errorf("max pixels %d: want 0 (no limit) or more", c.MaxPixels))
	}
	return errors.Join(errs...)
}

// Classifier answers the top-1 label of an ONNX image classifier. It is
// safe for concurrent use.
type Classifier struct {
	cfg     Config
	spec    imgproc.Spec
	labels  []string
	release func() error
	pool    *pool.Pool[*session]
	decoder *imgproc.Decoder
}

type session struct {
	model      *ortenv.Model
	restoreFPU func()
}

// Open loads the labels and the model, checks that they agree, and starts
// cfg.Sessions sessions.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open onnx classifier: %w", err)
	}
	lib := filepath.Join(cfg.RuntimeDir, ortenv.LibraryName)
	if _, err := os.Stat(lib); err != nil {
		return nil, fmt.Errorf("open onnx classifier: %s missing in %s: run scripts/fetch-models.sh to fetch it (%w)", ortenv.LibraryName, cfg.RuntimeDir, err)
	}
	labels, err := readLabels(cfg.Labels)
	if err != nil {
		return nil, fmt.Errorf("open onnx classifier: %w", err)
	}
	if _, err := os.Stat(cfg.Model); err != nil {
		return nil, fmt.Errorf("open onnx classifier: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open onnx classifier: %w", err)
	}
	release, err := ortenv.Acquire(lib)
	if err != nil {
		return nil, fmt.Errorf("open onnx classifier: %w", err)
	}
	c := &Classifier{cfg: cfg, labels: labels, release: release, decoder: imgproc.NewDecoder(cfg.MaxPixels, cfg.DecodeBudget)}
	in, out, err := c.shapes()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open onnx classifier %s: %w", cfg.Model, err), release())
	}
	c.pool, err = pool.New(cfg.Sessions, func() (*session, error) {
		s := &session{restoreFPU: ortenv.FlushDenormals()}
		var err error
		if s.model, err = ortenv.NewModel(cfg.Model, in, out); err != nil {
			s.restoreFPU()
			return nil, err
		}
		return s, nil
	}, func(s *session) {
		s.model.Destroy()
		s.restoreFPU()
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open onnx classifier: %w", err), release())
	}
	logger.Info("onnx classifier loaded", "model", cfg.Model, "input", in.Name, "shape", in.Shape,
		"output", out.Name, "labels", len(labels))
	return c, nil
}

// readLabels reads one label per line, ignoring trailing empty lines.
func readLabels(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n \t"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
		if lines[i] == "" {
			return nil, fmt.Errorf("read labels %s: line %d is empty", path, i+1)
		}
	}
	return lines, nil
}

// shapes resolves the input and output tensors against the model's
// declared ones and sets c.spec.
func (c *Classifier) shapes() (in, out ortenv.IO, err error) {
	ins, outs, err := ort.GetInputOutputInfo(c.cfg.Model)
	if err != nil {
		return in, out, err
	}
	inInfo, err := pick(ins, c.cfg.Input, "input")
	if err != nil {
		return in, out, err
	}
	outInfo, err := pick(outs, c.cfg.Output, "output")
	if err != nil {
		return in, out, err
	}
	if inInfo.DataType != ort.TensorElementDataTypeFloat {
		return in, out, fmt.Errorf("input %s is %v: only float32 inputs are supported", inInfo.Name, inInfo.DataType)
	}
	dims := inInfo.Dimensions
	if len(dims) != 4 {
		return in, out, fmt.Errorf("input %s has shape %v: want 4 dimensions (%s)", inInfo.Name, dims, c.cfg.Layout)
	}
	cIdx, hIdx, wIdx := 1, 2, 3
	if c.cfg.Layout == NHWC {
		hIdx, wIdx, cIdx = 1, 2, 3
	}
	format := map[string]imgproc.Format{RGB: imgproc.RGB, BGR: imgproc.BGR, Gray: imgproc.Gray}[c.cfg.Channels]
	shape := make([]int64, 4)
	shape[0] = 1
	if dims[0] > 1 {
		return in, out, fmt.Errorf("input %s has batch size %d: want 1 or dynamic", inInfo.Name, dims[0])
	}
	shape[cIdx] = int64(format.Channels())
	if dims[cIdx] > 0 && dims[cIdx] != shape[cIdx] {
		return in, out, fmt.Errorf("input %s has shape %v: %d channels at %s position %d, config says %s", inInfo.Name, dims, dims[cIdx], c.cfg.Layout, cIdx, c.cfg.Channels)
	}
	for _, d := range []struct {
		idx  int
		conf int
		name string
	}{{hIdx, c.cfg.Height, "height"}, {wIdx, c.cfg.Width, "width"}} {
		switch model := dims[d.idx]; {
		case model > 0 && d.conf > 0 && model != int64(d.conf):
			return in, out, fmt.Errorf("input %s has shape %v: %s %d, config says %d", inInfo.Name, dims, d.name, model, d.conf)
		case model > 0:
			shape[d.idx] = model
		case d.conf > 0:
			shape[d.idx] = int64(d.conf)
		default:
			return in, out, fmt.Errorf("input %s has a dynamic %s: set it in the config", inInfo.Name, d.name)
		}
	}
	var n int64 = 1
	outShape := make([]int64, len(outInfo.Dimensions))
	for i, d := range outInfo.Dimensions {
		outShape[i] = max(d, 1)
		n *= outShape[i]
	}
	if outInfo.DataType != ort.TensorElementDataTypeFloat {
		return in, out, fmt.Errorf("output %s is %v: want float32 scores", outInfo.Name, outInfo.DataType)
	}
	if n != int64(len(c.labels)) {
		return in, out, fmt.Errorf("output %s has %d scores (shape %v) but %s has %d labels", outInfo.Name, n, outInfo.Dimensions, c.cfg.Labels, len(c.labels))
	}
	mean, std := c.cfg.Mean, c.cfg.Std
	c.spec = imgproc.Spec{W: int(shape[wIdx]), H: int(shape[hIdx]), Format: format, Layout: imgproc.NCHW}
	if c.cfg.Layout == NHWC {
		c.spec.Layout = imgproc.NHWC
	}
	for i := range 3 {
		c.spec.Mean[i], c.spec.Std[i] = mean[i]*255, std[i]*255
	}
	return ortenv.IO{Name: inInfo.Name, Shape: shape}, ortenv.IO{Name: outInfo.Name, Shape: outShape}, nil
}

func pick(infos []ort.InputOutputInfo, name, kind string) (ort.InputOutputInfo, error) {
	if len(infos) == 0 {
		return ort.InputOutputInfo{}, fmt.Errorf("model has no %s", kind)
	}
	if name == "" {
		return infos[0], nil
	}
	var names []string
	for _, i := range infos {
		if i.Name == name {
			return i, nil
		}
		names = append(names, i.Name)
	}
	return ort.InputOutputInfo{}, fmt.Errorf("no %s named %q (the model has %q)", kind, name, names)
}

// Close stops the sessions and releases the runtime.
func (c *Classifier) Close() error {
	c.pool.Close()
	return c.release()
}

// Classify returns the label of the highest score.
func (c *Classifier) Classify(ctx context.Context, image []byte) (string, error) {
	p, err := c.Predict(ctx, image)
	if err != nil {
		return "", err
	}
	return p.Label, nil
}

// Prediction is the top-1 class with its raw score.
type Prediction struct {
	Label string
	Index int
	Score float32
}

// Predict decodes image, runs the model and returns the top-1 class.
func (c *Classifier) Predict(ctx context.Context, image []byte) (Prediction, error) {
	img, release, err := c.decoder.Decode(ctx, image)
	defer release()
	if err != nil {
		return Prediction{}, fmt.Errorf("onnx classify: %w", err)
	}
	t := c.inputMap(img)
	var p Prediction
	err = c.pool.Do(ctx, func(s *session) error {
		c.spec.Fill(s.model.In.GetData(), img, t)
		if err := s.model.Run(); err != nil {
			return err
		}
		scores := s.model.Out[0].GetData()
		for i, v := range scores {
			if i == 0 || v > p.Score {
				p.Index, p.Score = i, v
			}
		}
		return nil
	})
	if err != nil {
		return Prediction{}, fmt.Errorf("onnx classify: %w", err)
	}
	p.Label = c.labels[p.Index]
	return p, nil
}

// inputMap maps the model input onto img: all of it, or its largest
// centred region of the input's aspect ratio.
func (c *Classifier) inputMap(img *imgproc.Image) imgproc.Affine {
	x, y, w, h := 0.0, 0.0, float64(img.W), float64(img.H)
	if c.cfg.Resize == Crop {
		aspect := float64(c.spec.W) / float64(c.spec.H)
		if w/h > aspect {
			w = h * aspect
		} else {
			h = w / aspect
		}
		x, y = (float64(img.W)-w)/2, (float64(img.H)-h)/2
	}
	return imgproc.RectTo(x, y, w, h, c.spec.W, c.spec.H)
}
