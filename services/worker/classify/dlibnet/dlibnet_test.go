package dlibnet

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
)

// TestONNXMatchesDlib writes a small network of every layer kind in dlib's
// serialisation (testNet, with this test's own writer), converts it, runs
// the ONNX model on ONNX Runtime and compares its output with forward, a
// direct implementation of dlib's layers. The network has the face
// network's residual blocks, including the two additions dlib zero-pads: 4
// channels onto 8, and a 4x4 pooled input onto a 3x3 block output.
func TestONNXMatchesDlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	layers, size := testNet(rng)
	data := encode(layers, size)

	net, err := Read(data)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(net.Layers) != len(layers) || net.Size != size {
		t.Fatalf("Read: %d layers of input %d, want %d of %d", len(net.Layers), net.Size, len(layers), size)
	}
	// The file does not store tag numbers or skips; Read infers them.
	for i, l := range net.Layers {
		if l.Kind != layers[i].Kind || l.ID != layers[i].ID {
			t.Errorf("Read: layer %d is %s %d, want %s %d", i, l.Kind, l.ID, layers[i].Kind, layers[i].ID)
		}
	}
	model, err := net.ONNX()
	if err != nil {
		t.Fatalf("ONNX: %v", err)
	}
	path := filepath.Join(t.TempDir(), "net.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		t.Fatal(err)
	}
	release, err := ortenv.Acquire(filepath.Join(elastiqtest.ModelDir(t, ortenv.LibraryName), ortenv.LibraryName))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	fc := layers[len(layers)-1]
	m, err := ortenv.NewModel(path,
		ortenv.IO{Name: InputName, Shape: []int64{1, 3, int64(size), int64(size)}},
		ortenv.IO{Name: OutputName, Shape: []int64{1, int64(fc.Outputs)}})
	if err != nil {
		t.Fatalf("load the converted model: %v", err)
	}
	defer m.Destroy()

	for trial := range 3 {
		in := make([]float32, 3*size*size)
		for i := range in {
			in[i] = float32(rng.NormFloat64())
		}
		copy(m.In.GetData(), in)
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
		got := m.Out[0].GetData()
		want := forward(layers, tensor{3, size, size, in})
		var scale float64
		for _, v := range want.v {
			scale = max(scale, math.Abs(float64(v)))
		}
		if scale == 0 {
			t.Fatal("forward: all zero, the test network is degenerate")
		}
		for i := range want.v {
			if d := math.Abs(float64(got[i] - want.v[i])); d > 1e-4*scale {
				t.Errorf("trial %d: output %d = %v, want %v (dlib's layers)", trial, i, got[i], want.v[i])
			}
		}
	}
}

// TestReadRejects checks that a damaged file is an error, not a network.
func TestReadRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	layers, size := testNet(rng)
	data := encode(layers, size)
	renamed := strings.Replace(string(data), "relu_", "gelu_", 1)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "need 1 bytes"},
		{"truncated", data[:len(data)-100], "bytes"},
		{"trailing", append(append([]byte{}, data...), 0), "after the network"},
		{"unknown layer", []byte(renamed), `layer "gelu_"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Read(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// testNet is a network like the face network's, small: its layers from the
// input up, and the input's size.
func testNet(rng *rand.Rand) ([]Layer, int) {
	conv := func(in, out, k, stride int) Layer {
		pad := k / 2
		if stride != 1 {
			pad = 0
		}
		l := Layer{Kind: Conv, Filters: out, Channels: in, H: k, W: k, StrideY: stride, StrideX: stride, PadY: pad, PadX: pad}
		l.Weights = randoms(rng, out*in*k*k, 1/math.Sqrt(float64(in*k*k)))
		l.Bias = randoms(rng, out, 0.1)
		return l
	}
	affine := func(c int) Layer {
		l := Layer{Kind: Affine, Gamma: randoms(rng, c, 0.5), Beta: randoms(rng, c, 0.1)}
		for i := range l.Gamma {
			l.Gamma[i] += 1
		}
		return l
	}
	relu, tag1 := Layer{Kind: ReLU}, Layer{Kind: Tag, ID: 1}
	add1, add2 := Layer{Kind: AddPrev, ID: 1}, Layer{Kind: AddPrev, ID: 2}
	pool := func(kind Kind, k, stride int) Layer {
		return Layer{Kind: kind, H: k, W: k, StrideY: stride, StrideX: stride}
	}
	layers := []Layer{
		conv(3, 4, 3, 2), affine(4), relu, pool(MaxPool, 3, 2), // 37 -> 18 -> 8
		tag1, conv(4, 4, 3, 1), affine(4), relu, conv(4, 4, 3, 1), affine(4), add1, relu,
		// down: the block 8 -> 3 and 4 -> 8 channels, the pooled input 8 -> 4
		tag1, conv(4, 8, 3, 2), affine(8), relu, conv(8, 8, 3, 1), affine(8),
		{Kind: Tag, ID: 2}, {Kind: Skip, ID: 1}, pool(AvgPool, 2, 2), add2, relu,
		{Kind: AvgPool, StrideY: 1, StrideX: 1}, // the whole input
		{Kind: FC, Inputs: 8, Outputs: 5, Weights: randoms(rng, 8*5, 0.5)},
	}
	return layers, 37
}

func randoms(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// tensor is one sample: c x h x w values.
type tensor struct {
	c, h, w int
	v       []float32
}

func (t tensor) at(c, y, x int) float32 {
	if c >= t.c || y < 0 || y >= t.h || x < 0 || x >= t.w {
		return 0
	}
	return t.v[(c*t.h+y)*t.w+x]
}

// forward runs layers on in as dlib's CPU code computes them.
func forward(layers []Layer, in tensor) tensor {
	cur := in
	tags := map[int]tensor{}
	for _, l := range layers {
		switch l.Kind {
		case Conv:
			oh, ow := (cur.h+2*l.PadY-l.H)/l.StrideY+1, (cur.w+2*l.PadX-l.W)/l.StrideX+1
			out := tensor{l.Filters, oh, ow, make([]float32, l.Filters*oh*ow)}
			for f := range l.Filters {
				for y := range oh {
					for x := range ow {
						s := l.Bias[f]
						for c := range l.Channels {
							for ky := range l.H {
								for kx := range l.W {
									s += l.Weights[((f*l.Channels+c)*l.H+ky)*l.W+kx] * cur.at(c, y*l.StrideY-l.PadY+ky, x*l.StrideX-l.PadX+kx)
								}
							}
						}
						out.v[(f*oh+y)*ow+x] = s
					}
				}
			}
			cur = out
		case Affine:
			out := tensor{cur.c, cur.h, cur.w, make([]float32, len(cur.v))}
			for i, v := range cur.v {
				c := i / (cur.h * cur.w)
				out.v[i] = l.Gamma[c]*v + l.Beta[c]
			}
			cur = out
		case ReLU:
			out := tensor{cur.c, cur.h, cur.w, make([]float32, len(cur.v))}
			for i, v := range cur.v {
				out.v[i] = max(v, 0)
			}
			cur = out
		case MaxPool, AvgPool:
			kh, kw, sy, sx := l.H, l.W, l.StrideY, l.StrideX
			if kh == 0 {
				kh, kw = cur.h, cur.w
			}
			oh, ow := (cur.h-kh)/sy+1, (cur.w-kw)/sx+1
			out := tensor{cur.c, oh, ow, make([]float32, cur.c*oh*ow)}
			for c := range cur.c {
				for y := range oh {
					for x := range ow {
						m, s := float32(math.Inf(-1)), float32(0)
						for ky := range kh {
							for kx := range kw {
								v := cur.at(c, y*sy+ky, x*sx+kx)
								m, s = max(m, v), s+v
							}
						}
						if l.Kind == AvgPool {
							m = s / float32(kh*kw)
						}
						out.v[(c*oh+y)*ow+x] = m
					}
				}
			}
			cur = out
		case Tag:
			tags[l.ID] = cur
		case Skip:
			cur = tags[l.ID]
		case AddPrev:
			other := tags[l.ID]
			out := tensor{max(cur.c, other.c), max(cur.h, other.h), max(cur.w, other.w), nil}
			out.v = make([]float32, out.c*out.h*out.w)
			for c := range out.c {
				for y := range out.h {
					for x := range out.w {
						out.v[(c*out.h+y)*out.w+x] = cur.at(c, y, x) + other.at(c, y, x)
					}
				}
			}
			cur = out
		case FC:
			out := tensor{l.Outputs, 1, 1, make([]float32, l.Outputs)}
			for o := range l.Outputs {
				for i, v := range cur.v {
					out.v[o] += v * l.Weights[i*l.Outputs+o]
				}
			}
			cur = out
		}
	}
	return cur
}

// encode writes layers (from the input up, on an input of size x size) as
// dlib serialises a network with a metric loss: this test's own writer,
// the inverse of Read.
func encode(layers []Layer, size int) []byte {
	var e encoder
	e.int(1)
	e.str("loss_metric_2")
	e.float(0.04)
	e.float(0.6)
	for i := len(layers) - 1; i >= 1; i-- {
		if layers[i].Kind == Tag || layers[i].Kind == Skip {
			e.int(1)
		} else {
			e.int(2)
		}
	}
	e.int(3)
	e.str("input_rgb_image_sized")
	for _, m := range []float64{122.782, 117.001, 104.298} {
		e.float(m)
	}
	e.int(int64(size))
	e.int(int64(size))
	for i, l := range layers {
		if l.Kind == Tag || l.Kind == Skip {
			continue
		}
		e.layer(l)
		e.bool(true)
		e.bool(true)
		e.bool(false)
		for range 3 {
			e.tensor(nil, 0, 0, 0, 0)
		}
		if i == 0 {
			e.int(1)
		}
	}
	return e.b
}

type encoder struct{ b []byte }

func (e *encoder) int(v int64) {
	c := byte(0)
	if v < 0 {
		c, v = 0x80, -v
	}
	var mag []byte
	for u := uint64(v); u != 0; u >>= 8 {
		mag = append(mag, byte(u))
	}
	if len(mag) == 0 {
		mag = []byte{0}
	}
	e.b = append(append(e.b, c|byte(len(mag))), mag...)
}

func (e *encoder) str(s string) {
	e.int(int64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, '1')
	} else {
		e.b = append(e.b, '0')
	}
}

func (e *encoder) float(v float64) {
	frac, exp := math.Frexp(v)
	e.int(int64(frac * (1 << 53)))
	e.int(int64(exp - 53))
}

func (e *encoder) tensor(v []float32, dims ...int) {
	e.int(2)
	for _, d := range dims {
		e.int(int64(d))
	}
	for _, x := range v {
		e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(x))
	}
}

func (e *encoder) alias(dims ...int) {
	e.int(1)
	for _, d := range dims {
		e.int(int64(d))
	}
}

func (e *encoder) layer(l Layer) {
	switch l.Kind {
	case Conv:
		e.str("con_4")
		params := append(append([]float32{}, l.Weights...), l.Bias...)
		e.tensor(params, len(params), 1, 1, 1)
		for _, v := range []int{l.Filters, l.H, l.W, l.StrideY, l.StrideX, l.PadY, l.PadX} {
			e.int(int64(v))
		}
		e.alias(l.Filters, l.Channels, l.H, l.W)
		e.alias(1, l.Filters, 1, 1)
		for _, m := range []float64{1, 1, 1, 0} {
			e.float(m)
		}
	case Affine:
		e.str("affine_")
		params := append(append([]float32{}, l.Gamma...), l.Beta...)
		e.tensor(params, len(params), 1, 1, 1)
		e.alias(1, len(l.Gamma), 1, 1)
		e.alias(1, len(l.Gamma), 1, 1)
		e.int(0)
	case ReLU:
		e.str("relu_")
	case MaxPool, AvgPool:
		e.str(string(l.Kind) + "_2")
		for _, v := range []int{l.H, l.W, l.StrideY, l.StrideX, l.PadY, l.PadX} {
			e.int(int64(v))
		}
	case AddPrev:
		e.str("add_prev_")
	case FC:
		e.str("fc_2")
		e.int(int64(l.Outputs))
		e.int(int64(l.Inputs))
		e.tensor(l.Weights, l.Inputs, l.Outputs, 1, 1)
		e.alias(l.Inputs, l.Outputs, 1, 1)
		e.alias(0, 0, 0, 0)
		e.int(1)
		for _, m := range []float64{1, 1, 1, 0} {
			e.float(m)
		}
	}
}
