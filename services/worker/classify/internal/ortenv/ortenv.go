// Package ortenv shares the ONNX Runtime environment between the
// classifiers of one process.
//
// ONNX Runtime has one environment per process, and onnxruntime_go keeps it
// (and the shared library's path) in package-level state: initialising it
// twice fails, and destroying it under a live session is undefined. This
// package reference-counts it, so several classifiers (and tests) can open
// and close independently: the first Acquire loads the library and creates
// the environment, the last release destroys it. This counter is the one
// piece of package-level mutable state in the classifier module, and it
// exists only because the native environment is itself process-global.
package ortenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryName is the ONNX Runtime shared library's file name, as
// scripts/fetch-models.sh installs it.
const LibraryName = "libonnxruntime.so.1"

var (
	mu      sync.Mutex
	refs    int
	libPath string
)

// Acquire makes sure the ONNX Runtime environment is initialised from the
// shared library at lib, and returns the function that releases this
// reference. Every Acquire in a process must name the same library while
// the environment is alive.
func Acquire(lib string) (release func() error, err error) {
	abs, err := filepath.Abs(lib)
	if err != nil {
		return nil, fmt.Errorf("onnx runtime library %s: %w", lib, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if refs == 0 {
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("onnx runtime library: %w", err)
		}
		ort.SetSharedLibraryPath(abs)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("init onnx runtime from %s: %w", abs, err)
		}
		libPath = abs
	} else if abs != libPath {
		return nil, fmt.Errorf("init onnx runtime from %s: already loaded from %s in this process", abs, libPath)
	}
	refs++
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = releaseEnv() })
		return err
	}, nil
}

func releaseEnv() error {
	mu.Lock()
	defer mu.Unlock()
	refs--
	if refs > 0 {
		return nil
	}
	libPath = ""
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("destroy onnx runtime environment: %w", err)
	}
	return nil
}

// SessionOptions returns the options every classifier session uses: one
// intra-op and one inter-op thread (a session runs on the one OS thread its
// owner locked, so N sessions use N cores and do not fight over them) and
// denormals flushed to zero, so that every session computes in the same
// mode (fr_feature.onnx holds thousands of denormal weights; the figures are
// in classify's README). The caller destroys the options.
func SessionOptions() (*ort.SessionOptions, error) {
	o, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("new session options: %w", err)
	}
	for _, step := range []func() error{
		func() error { return o.SetIntraOpNumThreads(1) },
		func() error { return o.SetInterOpNumThreads(1) },
		func() error { return o.AddSessionConfigEntry("session.set_denormal_as_zero", "1") },
		func() error { return o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0") },
	} {
		if err := step(); err != nil {
			o.Destroy()
			return nil, fmt.Errorf("set session options: %w", err)
		}
	}
	return o, nil
}

// IO names one float32 tensor of a model and its shape.
type IO struct {
	Name  string
	Shape []int64
}

// Model is a session with its input and output tensors bound once, so a run
// allocates nothing: write In's data, Run, read the outputs. A Model is used
// by one goroutine at a time.
type Model struct {
	session *ort.AdvancedSession
	In      *ort.Tensor[float32]
	Out     []*ort.Tensor[float32]
}

// NewModel loads the ONNX file at path with SessionOptions and binds one
// input and the given outputs.
func NewModel(path string, in IO, outs ...IO) (*Model, error) {
	m := &Model{}
	var err error
	if m.In, err = ort.NewEmptyTensor[float32](ort.NewShape(in.Shape...)); err != nil {
		return nil, fmt.Errorf("load %s: input %s %v: %w", path, in.Name, in.Shape, err)
	}
	names := make([]string, len(outs))
	values := make([]ort.Value, len(outs))
	for i, o := range outs {
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(o.Shape...))
		if err != nil {
			m.Destroy()
			return nil, fmt.Errorf("load %s: output %s %v: %w", path, o.Name, o.Shape, err)
		}
		m.Out = append(m.Out, t)
		names[i], values[i] = o.Name, t
	}
	opts, err := SessionOptions()
	if err != nil {
		m.Destroy()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer opts.Destroy()
	m.session, err = ort.NewAdvancedSession(path, []string{in.Name}, names, []ort.Value{m.In}, values, opts)
	if err != nil {
		m.Destroy()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}

// Run runs the model on the current contents of In.
func (m *Model) Run() error { return m.session.Run() }

// Destroy releases the session and tensors.
func (m *Model) Destroy() {
	if m.session != nil {
		m.session.Destroy()
	}
	if m.In != nil {
		m.In.Destroy()
	}
	for _, t := range m.Out {
		t.Destroy()
	}
}
