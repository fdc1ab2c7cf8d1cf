// Package onnxgraph encodes ONNX models: a graph of operator nodes, float
// and int64 initializers, and float tensor inputs and outputs, written as
// a ModelProto in the protobuf wire format by hand (onnx/onnx.proto's field
// numbers), with no generated code. ONNX Runtime loads what it writes like
// any exported model.
package onnxgraph

import (
	"encoding/binary"
	"math"
)

// ONNX protobuf field numbers and enum values (onnx/onnx.proto).
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
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5

	attrName   = 1
	attrFloat  = 2
	attrInt    = 3
	attrInts   = 8
	attrType   = 20
	typeFloat  = 1
	typeInt    = 2
	typeInts   = 7
	tensorDims = 1

	tensorDataType  = 2
	tensorFloatData = 4
	tensorInt64Data = 7
	tensorName      = 8
	dataTypeFloat   = 1
	dataTypeInt64   = 7

	valueName      = 1
	valueType      = 2
	typeTensor     = 1
	tensorElemType = 1
	tensorShape    = 2
	shapeDim       = 1
	dimValue       = 1
	dimParam       = 2
)

// IRVersion is the ONNX IR version the models declare (ONNX 1.10 and
// later, opsets up to 15).
const IRVersion = 8

// Graph is a model's graph being built. The zero value is an empty graph.
type Graph struct {
	Name                          string
	nodes, inits, inputs, outputs []pb
}

// Input declares a float tensor input; a dim of 0 or less is dynamic.
func (g *Graph) Input(name string, dims ...int) { g.inputs = append(g.inputs, valueInfo(name, dims)) }

// Output declares a float tensor output; a dim of 0 or less is dynamic.
func (g *Graph) Output(name string, dims ...int) {
	g.outputs = append(g.outputs, valueInfo(name, dims))
}

// Floats adds a float32 initializer (a constant tensor) of shape dims,
// data in row-major order.
func (g *Graph) Floats(name string, dims []int64, data []float32) {
	var t pb
	t.ints(tensorDims, dims)
	t.int(tensorDataType, dataTypeFloat)
	t.floats(tensorFloatData, data)
	t.str(tensorName, name)
	g.inits = append(g.inits, t)
}

// Int64s adds an int64 initializer of shape dims.
func (g *Graph) Int64s(name string, dims []int64, data []int64) {
	var t pb
	t.ints(tensorDims, dims)
	t.int(tensorDataType, dataTypeInt64)
	t.ints(tensorInt64Data, data)
	t.str(tensorName, name)
	g.inits = append(g.inits, t)
}

// Node adds an operator of the default domain, taking the tensors named
// in and making those named out.
func (g *Graph) Node(op string, in, out []string, attrs ...Attr) {
	var n pb
	for _, s := range in {
		n.str(nodeInput, s)
	}
	for _, s := range out {
		n.str(nodeOutput, s)
	}
	n.str(nodeName, out[0])
	n.str(nodeOpType, op)
	for _, a := range attrs {
		n.msg(nodeAttribute, a.pb)
	}
	g.nodes = append(g.nodes, n)
}

// Model encodes the graph as a ModelProto importing the default operator
// set at version opset.
func (g *Graph) Model(producer string, opset int64) []byte {
	var gr pb
	for _, n := range g.nodes {
		gr.msg(graphNode, n)
	}
	gr.str(graphName, g.Name)
	for _, t := range g.inits {
		gr.msg(graphInitializer, t)
	}
	for _, v := range g.inputs {
		gr.msg(graphInput, v)
	}
	for _, v := range g.outputs {
		gr.msg(graphOutput, v)
	}
	var set pb
	set.int(opsetVersion, opset)
	var m pb
	m.int(modelIRVersion, IRVersion)
	m.str(modelProducer, producer)
	m.msg(modelGraph, gr)
	m.msg(modelOpset, set)
	return m
}

// Attr is a node attribute.
type Attr struct{ pb pb }

// Int is an integer attribute.
func Int(name string, v int64) Attr {
	var a pb
	a.str(attrName, name)
	a.int(attrInt, v)
	a.int(attrType, typeInt)
	return Attr{a}
}

// Ints is a list-of-integers attribute.
func Ints(name string, vs ...int64) Attr {
	var a pb
	a.str(attrName, name)
	a.ints(attrInts, vs)
	a.int(attrType, typeInts)
	return Attr{a}
}

// Float is a float attribute.
func Float(name string, v float32) Attr {
	var a pb
	a.str(attrName, name)
	a.key(attrFloat, 5)
	a = binary.LittleEndian.AppendUint32(a, math.Float32bits(v))
	a.int(attrType, typeFloat)
	return Attr{a}
}

// valueInfo declares a float tensor; a dim of 0 or less is dynamic.
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

// ints writes a packed repeated int64 field.
func (b *pb) ints(field int, vs []int64) {
	var p []byte
	for _, v := range vs {
		p = binary.AppendUvarint(p, uint64(v))
	}
	b.bytes(field, p)
}

// floats writes a packed repeated float field.
func (b *pb) floats(field int, vs []float32) {
	p := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(v))
	}
	b.bytes(field, p)
}
