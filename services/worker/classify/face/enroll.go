package face

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/elastiq/elastiq/services/elastiq"
)

var _ elastiq.FaceEnroller = (*Classifier)(nil)

// modelKey names the models and pipeline an embedding comes from: a face
// embedded by another is not comparable.
func modelKey(modelDir string, minScore float64) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nmin-score %g\n", pipelineVersion, minScore)
	for _, name := range []string{DetectModel, LandmarkModel, FeatureModel, MetricModel} {
		sum, err := fileSum(filepath.Join(modelDir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "model %s %s\n", name, sum)
	}
	return pipelineVersion + "/" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// EmbeddingModel names the models and pipeline of this classifier's
// embeddings.
func (c *Classifier) EmbeddingModel() string { return c.model }

// EmbedFace finds the face of image to enrol, the only one or, when
// largest, the largest, and embeds it as the gallery's faces are (the mean
// of the face and its mirror image).
func (c *Classifier) EmbedFace(ctx context.Context, image []byte, largest bool) (elastiq.Face, []float32, error) {
	img, release, err := c.decoder.Decode(ctx, image)
	defer release()
	if err != nil {
		return elastiq.Face{}, nil, fmt.Errorf("embed face: %w", err)
	}
	var f Face
	err = c.pool.Do(ctx, func(s *sessions) error {
		faces, err := s.analyzeFaces(img, true, 1)
		if err == nil {
			f = faces[0]
		}
		return err
	})
	if err != nil {
		return elastiq.Face{}, nil, fmt.Errorf("embed face: %w", err)
	}
	if f.Faces > 1 && !largest {
		return elastiq.Face{}, nil, fmt.Errorf("embed face: %d faces found: %w", f.Faces, elastiq.ErrSeveralFaces)
	}
	b := f.Box
	return elastiq.Face{Box: elastiq.Box{X1: b.X1, Y1: b.Y1, X2: b.X2, Y2: b.Y2}, Score: b.Score}, f.Embedding, nil
}

// SeedGallery is the folder's gallery as faces to store, each with an ID
// derived from its subject and embedding.
func (c *Classifier) SeedGallery() []elastiq.GalleryFace {
	return c.seed
}

// SetGallery replaces the enrolled faces with faces (those of this
// classifier's model). Recognitions under way finish with the gallery they
// started with.
func (c *Classifier) SetGallery(faces []elastiq.GalleryFace) {
	g := &gallery{}
	for _, f := range faces {
		if f.Model == c.model && len(f.Embedding) == Dim {
			g.x.add(f.Subject, f.Embedding)
		}
	}
	g.prepare(c.cfg.FalseMatchRate)
	c.gallery.Store(g)
}

// seedFaces makes the SeedGallery faces of an enrolment of images under
// key (enrollKey): the enrolled ones, each with an ID derived from the key,
// its label and its path, the same on every worker.
func seedFaces(key string, images []LabelledImage, e *cacheEntry, model string) []elastiq.GalleryFace {
	skipped := make(map[string]bool, len(e.Skipped))
	for _, p := range e.Skipped {
		skipped[p] = true
	}
	faces := make([]elastiq.GalleryFace, 0, len(e.Labels))
	for _, im := range images {
		if skipped[im.Path] {
			continue
		}
		i := len(faces)
		if i == len(e.Labels) || e.Labels[i] != im.Label {
			return nil // not this enrolment's images: seed nothing rather than mislabel
		}
		id := elastiq.DerivedID([]byte(key), []byte(im.Label), []byte(filepath.ToSlash(im.Path)))
		faces = append(faces, elastiq.GalleryFace{ID: id, Subject: im.Label, Embedding: e.Embeddings[i*Dim : (i+1)*Dim], Model: model})
	}
	return faces
}
