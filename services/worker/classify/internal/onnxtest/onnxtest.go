// Package onnxtest writes small but real ONNX models for tests: the
// protobuf is encoded by hand (a few dozen bytes of ModelProto), and ONNX
// Runtime loads and runs it like any exported model.
//
// The model is a linear classifier on an image's per-channel means:
// ReduceMean over the spatial axes, then MatMul by a weight matrix, giving
// one score per class.
package onnxtest

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
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

// ONNX protobuf field numbers (onnx/onnx.proto).
const (
	modelIRVersion = 1
	modelProducer  = 2
	modelGraph     = 7
	modelOpset     = 8
	opsetVersion   = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeOpType    = 4
	nodeAttribute = 5

	attrName = 1
	attrInt  = 3
	attrInts = 8
	attrType = 20

	attrTypeInt  = 2
	attrTypeInts = 7

	tensorDims      = 1
	tensorDataType  = 2
	tensorFloatData = 4
	tensorName      = 8
	dataTypeFloat   = 1

	valueName      = 1
	valueType      = 2
	typeTensor     = 1
	tensorElemType = 1
	tensorShape    = 2
	shapeDim       = 1
	dimValue       = 1
	dimParam       = 2
)

// Encode returns the ModelProto bytes (IR version 8, opset 13).
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

	var mean pb
	mean.str(nodeInput, in)
	mean.str(nodeOutput, "means")
	mean.str(nodeOpType, "ReduceMean")
	var a1 pb
	a1.str(attrName, "axes")
	a1.ints(attrInts, axes)
	a1.int(attrType, attrTypeInts)
	mean.msg(nodeAttribute, a1)
	var a2 pb
	a2.str(attrName, "keepdims")
	a2.int(attrInt, 0)
	a2.int(attrType, attrTypeInt)
	mean.msg(nodeAttribute, a2)

	var mm pb
	mm.str(nodeInput, "means")
	mm.str(nodeInput, "weights")
	mm.str(nodeOutput, out)
	mm.str(nodeOpType, "MatMul")

	var w pb
	w.ints(tensorDims, []int64{int64(m.Channels), int64(classes)})
	w.int(tensorDataType, dataTypeFloat)
	var flat []float32
	for _, row := range m.Weights {
		flat = append(flat, row...)
	}
	w.floats(tensorFloatData, flat)
	w.str(tensorName, "weights")

	var g pb
	g.msg(graphNode, mean)
	g.msg(graphNode, mm)
	g.str(graphName, "mean-linear")
	g.msg(graphInitializer, w)
	g.msg(graphInput, valueInfo(in, dims))
	g.msg(graphOutput, valueInfo(out, []int{-1, classes}))

	var opset pb
	opset.int(opsetVersion, 13)
	var model pb
	model.int(modelIRVersion, 8)
	model.str(modelProducer, "elastiq onnxtest")
	model.msg(modelGraph, g)
	model.msg(modelOpset, opset)
	return model
}

// valueInfo declares a float tensor; a negative or zero dim is dynamic.
func valueInfo(name string, dims []int) pb {
	var shape pb
	for i, d := range dims {
		var dim pb
		if d > 0 {
			dim.int(dimValue, int64(d))
		} else {
			dim.str(dimParam, string(rune('N'+i)))
		}
		shape.msg(shapeDim, dim)
	}
	var tt pb
	tt.int(tensorElemType, dataTypeFloat)
	tt.msg(tensorShape, shape)
	var typ pb
	typ.msg(typeTensor, tt)
	var v pb
	v.str(valueName, name)
	v.msg(valueType, typ)
	return v
}

// pb is a protobuf message being encoded.
type pb []byte

func (b *pb) key(field, wire int) { *b = binary.AppendUvarint(*b, uint64(field<<3|wire)) }

func (b *pb) int(field int, v int64) {
	b.key(field, 0)
	*b = binary.AppendUvarint(*b, uint64(v))
}

func (b *pb) bytes(field int, v []byte) {
	b.key(field, 2)
	*b = binary.AppendUvarint(*b, uint64(len(v)))
	*b = append(*b, v...)
}

func (b *pb) str(field int, s string) { b.bytes(field, []byte(s)) }
func (b *pb) msg(field int, m pb)     { b.bytes(field, m) }

func (b *pb) ints(field int, vs []int64) {
	var p []byte
	for _, v := range vs {
		p = binary.AppendUvarint(p, uint64(v))
	}
	b.bytes(field, p)
}

func (b *pb) floats(field int, vs []float32) {
	var p []byte
	for _, v := range vs {
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(v))
	}
	b.bytes(field, p)
}
