package face

import (
	"errors"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
)

// TestGalleryChanges: the folder's gallery is offered as seeds with stable
// IDs; a new gallery replaces it whole; a face embedded for enrolment is
// recognised once in the gallery; a photo of two faces is refused unless
// the largest is asked for; faces of another model are left out.
func TestGalleryChanges(t *testing.T) {
	c := openFace(t, nil)
	ctx := ctxT(t)
	seed := c.SeedGallery()
	if len(seed) != 100 || seed[0].Subject == "" || seed[0].Model != c.EmbeddingModel() {
		t.Fatalf("SeedGallery = %d faces (first %+v), want the 100 CSE546 faces of model %s", len(seed), seed[0].Subject, c.EmbeddingModel())
	}
	if again := openFace(t, nil).SeedGallery(); again[7].ID != seed[7].ID {
		t.Errorf("seed IDs differ between two classifiers on the same folder: %s, %s", again[7].ID, seed[7].ID)
	}

	photo := photoBytes(t, "test_00") // Paul
	face, emb, err := c.EmbedFace(ctx, photo, false)
	if err != nil || len(emb) != Dim || face.Box.X2 <= face.Box.X1 || face.Score < c.cfg.MinScore {
		t.Fatalf("EmbedFace(test_00) = %+v, %d values, %v", face, len(emb), err)
	}
	c.SetGallery([]elastiq.GalleryFace{{ID: "x", Subject: "Somebody", Embedding: emb, Model: c.EmbeddingModel()}})
	if m, err := c.Recognize(ctx, photo); err != nil || m.Label != "Somebody" {
		t.Errorf("after SetGallery(Somebody), Recognize(test_00) = %q, %v; want Somebody", m.Label, err)
	}
	c.SetGallery([]elastiq.GalleryFace{{ID: "x", Subject: "Somebody", Embedding: emb, Model: "another model"}})
	if m, err := c.Recognize(ctx, photo); err != nil || m.Label != c.cfg.UnknownLabel {
		t.Errorf("with a face of another model only, Recognize(test_00) = %q, %v; want %s", m.Label, err, c.cfg.UnknownLabel)
	}
	c.SetGallery(seed)
	if m, err := c.Recognize(ctx, photo); err != nil || m.Label != "Paul" {
		t.Errorf("after SetGallery(seed), Recognize(test_00) = %q, %v; want Paul", m.Label, err)
	}

	// Two faces side by side, one larger.
	a, b := readPhoto(t, "test_00"), readPhoto(t, "test_01")
	canvas := greyCanvas(4*a.W, 2*a.H)
	canvas.Paste(a, a.W/2, a.H/2)
	canvas.Paste(b, 5*a.W/2, a.H/2)
	two := encodePNG(t, canvas.RGBA())
	if _, _, err := c.EmbedFace(ctx, two, false); !errors.Is(err, elastiq.ErrSeveralFaces) {
		t.Errorf("EmbedFace(two faces) = %v, want ErrSeveralFaces", err)
	}
	if _, emb, err := c.EmbedFace(ctx, two, true); err != nil || len(emb) != Dim {
		t.Errorf("EmbedFace(two faces, largest) = %d values, %v; want an embedding", len(emb), err)
	}
	if _, _, err := c.EmbedFace(ctx, encodePNG(t, greyCanvas(200, 200).RGBA()), false); !errors.Is(err, ErrNoFace) {
		t.Errorf("EmbedFace(no face) = %v, want ErrNoFace", err)
	}
}
