package dlibnet

import (
	"fmt"

	"github.com/elastiq/elastiq/services/worker/classify/internal/onnxgraph"
)

// The ONNX model's input and output: the face chip (1 x 3 x Size x Size,
// RGB, (p - Mean) / 256, as the input layer makes it) and the metric
// embedding, unnormalised (1 x Outputs).
const (
	InputName  = "input"
	OutputName = "embedding"
)

// ONNX returns the network as an ONNX model (opset 13). A convolution's
// affine layer is folded into its weights and bias. Where dlib adds tensors
// of different sizes it zero-pads the smaller at the high end of each
// dimension, and so does the model.
func (n *Net) ONNX() ([]byte, error) {
	b := &builder{g: onnxgraph.Graph{Name: "dlib-metric-net"}}
	b.g.Input(InputName, 1, 3, n.Size, n.Size)
	cur := value{InputName, [3]int{3, n.Size, n.Size}}
	tags := map[int]value{}
	for i := 0; i < len(n.Layers); i++ {
		l := n.Layers[i]
		switch l.Kind {
		case Conv:
			if l.Channels != cur.shape[0] {
				return nil, fmt.Errorf("layer %d: convolution of %d channels on %d", i, l.Channels, cur.shape[0])
			}
			w, bias := l.Weights, l.Bias
			if i+1 < len(n.Layers) && n.Layers[i+1].Kind == Affine && len(n.Layers[i+1].Gamma) == l.Filters {
				w, bias = fold(l, n.Layers[i+1])
				i++
			}
			cur = b.conv(cur, l, w, bias)
		case Affine:
			if len(l.Gamma) != cur.shape[0] {
				return nil, fmt.Errorf("layer %d: affine of %d channels on %d", i, len(l.Gamma), cur.shape[0])
			}
			cur = b.affine(cur, l)
		case ReLU:
			cur = b.op("Relu", cur.shape, cur.name)
		case MaxPool, AvgPool:
			cur = b.pool(cur, l)
		case Tag:
			tags[l.ID] = cur
		case Skip, AddPrev:
			other, ok := tags[l.ID]
			if !ok {
				return nil, fmt.Errorf("layer %d: %s of tag %d, which no layer below has", i, l.Kind, l.ID)
			}
			if l.Kind == Skip {
				cur = other
			} else {
				cur = b.add(cur, other)
			}
		case FC:
			if in := cur.shape[0] * cur.shape[1] * cur.shape[2]; in != l.Inputs {
				return nil, fmt.Errorf("layer %d: fully connected layer of %d inputs on %d", i, l.Inputs, in)
			}
			flat := b.op("Flatten", [3]int{l.Inputs, 1, 1}, cur.name)
			w := b.floats([]int64{int64(l.Inputs), int64(l.Outputs)}, l.Weights)
			out := OutputName
			if l.Bias != nil {
				out = b.next()
			}
			b.g.Node("MatMul", []string{flat.name, w}, []string{out})
			if l.Bias != nil {
				bias := b.floats([]int64{int64(l.Outputs)}, l.Bias)
				b.g.Node("Add", []string{out, bias}, []string{OutputName})
			}
			if i != len(n.Layers)-1 {
				return nil, fmt.Errorf("layer %d: layers after the fully connected one", i)
			}
			b.g.Output(OutputName, 1, l.Outputs)
			return b.g.Model("elastiq dlib2onnx", 13), nil
		default:
			return nil, fmt.Errorf("layer %d: %s", i, l.Kind)
		}
	}
	return nil, fmt.Errorf("no fully connected layer on top")
}

// fold returns the weights and bias of convolution c followed by affine
// layer a: a's gamma scales each filter and its bias, and beta adds on.
func fold(c, a Layer) (w, bias []float32) {
	w = make([]float32, len(c.Weights))
	bias = make([]float32, c.Filters)
	per := len(c.Weights) / c.Filters
	for f := range c.Filters {
		g := a.Gamma[f]
		for j := range per {
			w[f*per+j] = c.Weights[f*per+j] * g
		}
		var b float32
		if c.Bias != nil {
			b = c.Bias[f]
		}
		bias[f] = b*g + a.Beta[f]
	}
	return w, bias
}

// value is a tensor of the graph: its name and its channels, height and
// width (the batch is 1).
type value struct {
	name  string
	shape [3]int
}

type builder struct {
	g onnxgraph.Graph
	n int
}

func (b *builder) next() string {
	b.n++
	return fmt.Sprintf("t%d", b.n)
}

func (b *builder) floats(dims []int64, data []float32) string {
	name := b.next()
	b.g.Floats(name, dims, data)
	return name
}

func (b *builder) op(op string, shape [3]int, in ...string) value {
	v := value{b.next(), shape}
	b.g.Node(op, in, []string{v.name})
	return v
}

// out is the size of a convolution's or pool's output along one axis.
func out(in, k, stride, pad int) int { return (in+2*pad-k)/stride + 1 }

func (b *builder) conv(x value, l Layer, w, bias []float32) value {
	wn := b.floats([]int64{int64(l.Filters), int64(l.Channels), int64(l.H), int64(l.W)}, w)
	in := []string{x.name, wn}
	if bias != nil {
		in = append(in, b.floats([]int64{int64(l.Filters)}, bias))
	}
	v := value{b.next(), [3]int{l.Filters, out(x.shape[1], l.H, l.StrideY, l.PadY), out(x.shape[2], l.W, l.StrideX, l.PadX)}}
	b.g.Node("Conv", in, []string{v.name},
		onnxgraph.Ints("kernel_shape", int64(l.H), int64(l.W)),
		onnxgraph.Ints("strides", int64(l.StrideY), int64(l.StrideX)),
		onnxgraph.Ints("pads", int64(l.PadY), int64(l.PadX), int64(l.PadY), int64(l.PadX)))
	return v
}

func (b *builder) affine(x value, l Layer) value {
	dims := []int64{1, int64(len(l.Gamma)), 1, 1}
	scaled := b.op("Mul", x.shape, x.name, b.floats(dims, l.Gamma))
	return b.op("Add", x.shape, scaled.name, b.floats(dims, l.Beta))
}

func (b *builder) pool(x value, l Layer) value {
	if l.H == 0 && l.W == 0 {
		op := "GlobalAveragePool"
		if l.Kind == MaxPool {
			op = "GlobalMaxPool"
		}
		return b.op(op, [3]int{x.shape[0], 1, 1}, x.name)
	}
	op := "AveragePool"
	if l.Kind == MaxPool {
		op = "MaxPool"
	}
	v := value{b.next(), [3]int{x.shape[0], out(x.shape[1], l.H, l.StrideY, l.PadY), out(x.shape[2], l.W, l.StrideX, l.PadX)}}
	b.g.Node(op, []string{x.name}, []string{v.name},
		onnxgraph.Ints("kernel_shape", int64(l.H), int64(l.W)),
		onnxgraph.Ints("strides", int64(l.StrideY), int64(l.StrideX)),
		onnxgraph.Ints("pads", int64(l.PadY), int64(l.PadX), int64(l.PadY), int64(l.PadX)))
	return v
}

// add adds x and y, each zero-padded at the high end to the larger size
// of every dimension first.
func (b *builder) add(x, y value) value {
	var shape [3]int
	for i := range shape {
		shape[i] = max(x.shape[i], y.shape[i])
	}
	return b.op("Add", shape, b.padTo(x, shape).name, b.padTo(y, shape).name)
}

func (b *builder) padTo(x value, shape [3]int) value {
	if x.shape == shape {
		return x
	}
	pads := b.next()
	b.g.Int64s(pads, []int64{8}, []int64{0, 0, 0, 0,
		0, int64(shape[0] - x.shape[0]), int64(shape[1] - x.shape[1]), int64(shape[2] - x.shape[2])})
	return b.op("Pad", shape, x.name, pads)
}
