package face

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
)

// Model files, as scripts/fetch-models.sh installs them from the
// faceplugin-face-recognition-js npm package.
const (
	DetectModel   = "fr_detect.onnx"
	LandmarkModel = "fr_landmark.onnx"
	FeatureModel  = "fr_feature.onnx"
)

// Dim is the length of an embedding.
const Dim = 512

// The models' inputs, as their graphs declare them and the faceplugin
// package's JavaScript prepares them (lib/fr_detect.js, fr_landmark.js,
// fr_feature.js).
var (
	// UltraFace RFB-320: the whole image stretched to 320x240, RGB,
	// (p - 127) / 128. Outputs per prior "scores" (background, face) and
	// "boxes" (x1, y1, x2, y2 as fractions of the image).
	detectSpec = imgproc.Spec{W: 320, H: 240, Layout: imgproc.NCHW, Format: imgproc.RGB,
		Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}
	// 68-point landmarks from the face box resized to 64x64 grey, p / 256.
	// Output "output": 68 (x, y) pairs as fractions of the box. The
	// faceplugin package first squares the box (side = its height); on the
	// CSE546 faces that made the landmarks, and so the embeddings, less
	// stable: an image and its mirror image embedded at cosine 0.06 at
	// worst with squared boxes, 0.85 with the detector's own box.
	landmarkSpec = imgproc.Spec{W: 64, H: 64, Layout: imgproc.NCHW, Format: imgproc.Gray,
		Std: [3]float32{256, 256, 256}}
	// Embedding from the 112x112 face aligned to arcFaceTemplate, RGB,
	// (p - 127) / 128. Output "output": 512 values, not normalised.
	featureSpec = imgproc.Spec{W: 112, H: 112, Layout: imgproc.NCHW, Format: imgproc.RGB,
		Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}
)

const detectPriors = 4420

// ErrNoFace is returned (wrapped) when the detector finds no face.
var ErrNoFace = errors.New("no face found in the image")

// sessions is one worker's set of the three models. It is used only on the
// OS thread of the pool worker that made it.
type sessions struct {
	detect, landmark, feature *ortenv.Model
	minScore, maxIoU          float64
	restoreFPU                func()
}

// openSessions loads the models; call it on a locked OS thread, which it
// switches to flushing denormals until close.
func openSessions(dir string, minScore float64) (*sessions, error) {
	s := &sessions{minScore: minScore, maxIoU: 0.3, restoreFPU: ortenv.FlushDenormals()}
	var err error
	if s.detect, err = ortenv.NewModel(filepath.Join(dir, DetectModel),
		ortenv.IO{Name: "input", Shape: []int64{1, 3, 240, 320}},
		ortenv.IO{Name: "scores", Shape: []int64{1, detectPriors, 2}},
		ortenv.IO{Name: "boxes", Shape: []int64{1, detectPriors, 4}}); err != nil {
		s.close()
		return nil, err
	}
	if s.landmark, err = ortenv.NewModel(filepath.Join(dir, LandmarkModel),
		ortenv.IO{Name: "input", Shape: []int64{1, 1, 64, 64}},
		ortenv.IO{Name: "output", Shape: []int64{1, 136}}); err != nil {
		s.close()
		return nil, err
	}
	if s.feature, err = ortenv.NewModel(filepath.Join(dir, FeatureModel),
		ortenv.IO{Name: "input", Shape: []int64{1, 3, 112, 112}},
		ortenv.IO{Name: "output", Shape: []int64{1, Dim}}); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *sessions) close() {
	for _, m := range []*ortenv.Model{s.detect, s.landmark, s.feature} {
		if m != nil {
			m.Destroy()
		}
	}
	s.restoreFPU()
}

// Face is what the pipeline found in an image: the chosen (largest) face's
// box, its five alignment points and its L2-normalised embedding.
type Face struct {
	Box       Box
	Faces     int // faces detected
	Points    [5]Point
	Embedding []float32
}

// analyze runs detect, landmarks, align and embed on img.
func (s *sessions) analyze(img *imgproc.Image) (Face, error) {
	boxes, err := s.detectFaces(img)
	if err != nil {
		return Face{}, err
	}
	i := largest(boxes)
	if i < 0 {
		return Face{}, ErrNoFace
	}
	f := Face{Box: boxes[i], Faces: len(boxes)}
	lm, err := s.landmarks(img, f.Box)
	if err != nil {
		return Face{}, err
	}
	f.Points = fivePoints(lm)
	if f.Embedding, err = s.embed(img, f.Points); err != nil {
		return Face{}, err
	}
	return f, nil
}

func (s *sessions) detectFaces(img *imgproc.Image) ([]Box, error) {
	detectSpec.Fill(s.detect.In.GetData(), img, imgproc.RectTo(0, 0, float64(img.W), float64(img.H), detectSpec.W, detectSpec.H))
	if err := s.detect.Run(); err != nil {
		return nil, fmt.Errorf("detect faces: %w", err)
	}
	return decodeDetections(s.detect.Out[0].GetData(), s.detect.Out[1].GetData(), img.W, img.H, s.minScore, s.maxIoU), nil
}

// landmarks returns the 68 points (x0, y0, x1, ...) in image pixels.
func (s *sessions) landmarks(img *imgproc.Image, b Box) ([]float64, error) {
	w, h := b.X2-b.X1, b.Y2-b.Y1
	landmarkSpec.Fill(s.landmark.In.GetData(), img, imgproc.RectTo(b.X1, b.Y1, w, h, landmarkSpec.W, landmarkSpec.H))
	if err := s.landmark.Run(); err != nil {
		return nil, fmt.Errorf("find landmarks: %w", err)
	}
	out := s.landmark.Out[0].GetData()
	lm := make([]float64, len(out))
	for i, v := range out {
		if i%2 == 0 {
			lm[i] = b.X1 + float64(v)*w
		} else {
			lm[i] = b.Y1 + float64(v)*h
		}
	}
	return lm, nil
}

// embed aligns the face whose points are pts and returns its unit-length
// embedding.
func (s *sessions) embed(img *imgproc.Image, pts [5]Point) ([]float32, error) {
	toTemplate := similarity(pts, arcFaceTemplate)
	fromTemplate, err := toTemplate.Invert()
	if err != nil {
		return nil, fmt.Errorf("align face: %w", err)
	}
	featureSpec.Fill(s.feature.In.GetData(), img, fromTemplate)
	if err := s.feature.Run(); err != nil {
		return nil, fmt.Errorf("embed face: %w", err)
	}
	out := s.feature.Out[0].GetData()
	emb := make([]float32, len(out))
	var norm float64
	for _, v := range out {
		norm += float64(v) * float64(v)
	}
	norm = math.Sqrt(norm)
	if norm == 0 || math.IsNaN(norm) {
		return nil, errors.New("embed face: degenerate embedding")
	}
	for i, v := range out {
		emb[i] = float32(float64(v) / norm)
	}
	return emb, nil
}
