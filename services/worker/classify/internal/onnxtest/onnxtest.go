// Package onnxtest writes small but real ONNX models for tests: the
// protobuf is encoded by hand (a few dozen bytes of ModelProto), and ONNX
// Runtime loads and runs it like any exported model.
//
// The model is a linear classifier on an image's per-channel means:
// ReduceMean over the spatial axes, then MatMul by a weight matrix, giving
// one score per class.
package onnxtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/elastiq/elastiq/services/worker/classify/internal/onnxgraph"
)

// Model describes the classifier to write.
type Model struct {
	// NHWC puts channels last; otherwise the input is NCHW.
	NHWC bool
	// Channels is 1 or 3; H and W the input's size, 0 for a dynamic
	// dimension. The batch dimension is always dynamic ("N").
	Channels, H, W int
	// Weights[c][k] multiplies channel c's mean into class k's score.
	Weights [][]float32
	// InputName and OutputName default to "image" and "scores".
	InputName, OutputName string
}

// Write encodes m as dir/name and returns the path.
func Write(t testing.TB, dir, name string, m Model) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, m.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteLabels writes one label per line and returns the path.
func WriteLabels(t testing.TB, dir, name string, labels ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	var b []byte
	for _, l := range labels {
		b = append(append(b, l...), '\n')
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Encode returns the ModelProto bytes (opset 13).
func (m Model) Encode() []byte {
	in, out := m.InputName, m.OutputName
	if in == "" {
		in = "image"
	}
	if out == "" {
		out = "scores"
	}
	classes := len(m.Weights[0])
	dims := []int{-1, m.Channels, m.H, m.W}
	axes := []int64{2, 3}
	if m.NHWC {
		dims = []int{-1, m.H, m.W, m.Channels}
		axes = []int64{1, 2}
	}
	var flat []float32
	for _, row := range m.Weights {
		flat = append(flat, row...)
	}
	g := onnxgraph.Graph{Name: "mean-linear"}
	g.Input(in, dims...)
	g.Output(out, -1, classes)
	g.Floats("weights", []int64{int64(m.Channels), int64(classes)}, flat)
	g.Node("ReduceMean", []string{in}, []string{"means"}, onnxgraph.Ints("axes", axes...), onnxgraph.Int("keepdims", 0))
	g.Node("MatMul", []string{"means", "weights"}, []string{out})
	return g.Model("elastiq onnxtest", 13)
}
