package worker

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// galleryClassifier is a test double of a face classifier with a gallery:
// an image "face of X" has one face, embedded as a vector made from X;
// "faces of X and Y" has two (X the larger); anything else none. It
// recognises the subject of a stored face with exactly that vector.
type galleryClassifier struct {
	mu    sync.Mutex
	faces []elastiq.GalleryFace
	seed  []elastiq.GalleryFace
	sets  int // SetGallery calls
}

var (
	_ elastiq.Classifier   = (*galleryClassifier)(nil)
	_ elastiq.FaceEnroller = (*galleryClassifier)(nil)
)

func vectorOf(name string) []float32 {
	sum := sha256.Sum256([]byte(name))
	v := make([]float32, 8)
	for i := range v {
		v[i] = float32(sum[i])
	}
	return v
}

func (c *galleryClassifier) Classify(ctx context.Context, image []byte) (string, error) {
	name, ok := strings.CutPrefix(string(image), "face of ")
	if !ok {
		return "", errors.New("no face found")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.faces {
		if string(elastiq.EncodeEmbedding(f.Embedding)) == string(elastiq.EncodeEmbedding(vectorOf(name))) {
			return f.Subject, nil
		}
	}
	return "Unknown", nil
}

func (c *galleryClassifier) EmbedFace(ctx context.Context, image []byte, largest bool) (elastiq.Face, []float32, error) {
	if two, ok := strings.CutPrefix(string(image), "faces of "); ok {
		if !largest {
			return elastiq.Face{}, nil, elastiq.ErrSeveralFaces
		}
		first, _, _ := strings.Cut(two, " and ")
		return elastiq.Face{Box: elastiq.Box{X2: 20, Y2: 20}, Score: 0.9}, vectorOf(first), nil
	}
	name, ok := strings.CutPrefix(string(image), "face of ")
	if !ok {
		return elastiq.Face{}, nil, errors.New("no face found in the image")
	}
	return elastiq.Face{Box: elastiq.Box{X1: 1, Y1: 2, X2: 11, Y2: 12}, Score: 0.99}, vectorOf(name), nil
}

func (c *galleryClassifier) SetGallery(faces []elastiq.GalleryFace) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faces = faces
	c.sets++
}

func (c *galleryClassifier) setCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sets
}

// TestGallerySyncWithoutChange: a read of the stored gallery that finds it
// unchanged does not hand it to the classifier again (which would rebuild
// its index for nothing); one that finds a change does; the first read
// always does, even of an empty gallery.
func TestGallerySyncWithoutChange(t *testing.T) {
	_, c, g := newGalleryHarness(t)
	if n := c.setCalls(); n != 1 {
		t.Fatalf("SetGallery calls after Start = %d, want 1", n)
	}
	g.Interval = 0 // every Ensure reads the store
	if err := g.Ensure(t.Context(), elastiq.NewRequestID(time.Now())); err != nil {
		t.Fatal(err)
	}
	if n := c.setCalls(); n != 1 {
		t.Errorf("SetGallery calls after an unchanged read = %d, want 1", n)
	}
	f := elastiq.GalleryFace{ID: elastiq.DerivedID([]byte("Zed")), Subject: "Zed", Embedding: vectorOf("Zed"), Model: "test-model"}
	if err := g.store.Put(t.Context(), elastiq.FaceKey(f.Subject, f.ID), FaceObject(f, elastiq.Face{}, "")); err != nil {
		t.Fatal(err)
	}
	if err := g.Ensure(t.Context(), elastiq.NewRequestID(time.Now())); err != nil {
		t.Fatal(err)
	}
	if n := c.setCalls(); n != 2 || len(c.faces) != 2 {
		t.Errorf("after a face was added: %d SetGallery calls, %d faces; want 2 and 2", n, len(c.faces))
	}

	empty := &galleryClassifier{}
	if err := NewGallery(elastiqtest.NewStore(), empty, nil).Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := empty.setCalls(); n != 1 {
		t.Errorf("SetGallery calls after starting on an empty gallery = %d, want 1", n)
	}
}

func (c *galleryClassifier) SeedGallery() []elastiq.GalleryFace { return c.seed }
func (c *galleryClassifier) EmbeddingModel() string             { return "test-model" }

// newGalleryHarness is a worker whose classifier is a galleryClassifier
// seeded with Paul, over a started Gallery.
func newGalleryHarness(t *testing.T) (*harness, *galleryClassifier, *Gallery) {
	t.Helper()
	c := &galleryClassifier{seed: []elastiq.GalleryFace{
		{ID: elastiq.DerivedID([]byte("Paul")), Subject: "Paul", Embedding: vectorOf("Paul"), Model: "test-model"},
	}}
	h := &harness{requests: newFakeQueue(), responses: newFakeQueue(), store: elastiqtest.NewStore()}
	g := NewGallery(h.store, c, nil)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig("w-test")
	cfg.IdleTimeout = 200 * time.Millisecond
	cfg.ErrorBackoff, cfg.MaxErrorBackoff = time.Millisecond, 10*time.Millisecond
	w, err := New(cfg, Deps{Requests: h.requests, Responses: h.responses, Store: h.store, Classifier: c, Gallery: g})
	if err != nil {
		t.Fatal(err)
	}
	h.worker = w
	return h, c, g
}

// send runs one request through the worker and returns its result.
func (h *harness) send(t *testing.T, req elastiq.Request, image string) elastiq.Result {
	t.Helper()
	req.InputKey, req.SubmittedAt = elastiq.InputKey(req.ID), time.Now().UTC()
	if err := h.store.Put(t.Context(), req.InputKey, elastiq.Object{Body: []byte(image), Metadata: elastiq.InputMetadata(req)}); err != nil {
		t.Fatal(err)
	}
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := h.responses.sentResults()
	h.requests.push(body)
	h.runUntilIdle(t)
	sent, err := h.responses.sentResults()
	if err != nil || len(sent) != len(before)+1 {
		t.Fatalf("responses = %d, %v; want one more than %d", len(sent), err, len(before))
	}
	return sent[len(sent)-1]
}

func TestGalleryEnrolAndRecognise(t *testing.T) {
	h, _, _ := newGalleryHarness(t)
	ctx := t.Context()
	seeded, err := h.store.List(ctx, elastiq.GalleryFacesPrefix)
	if err != nil || len(seeded) != 1 || !strings.HasPrefix(seeded[0], elastiq.SubjectPrefix("Paul")) {
		t.Fatalf("stored gallery after Start = %q, %v; want Paul's seed face", seeded, err)
	}
	newID := func() elastiq.RequestID { return elastiq.NewRequestID(time.Now()) }
	recognise := func(image string) string {
		t.Helper()
		r := h.send(t, elastiq.Request{ID: newID(), GalleryRevision: newID()}, image)
		if r.Status != elastiq.StatusDone {
			t.Fatalf("recognise %q = %+v", image, r)
		}
		return r.Label
	}
	if got := recognise("face of Paul"); got != "Paul" {
		t.Errorf("the seed face: %q, want Paul", got)
	}
	if got := recognise("face of Zed"); got != "Unknown" {
		t.Errorf("before the enrolment: %q, want Unknown", got)
	}

	enrol := elastiq.Request{ID: newID(), Kind: elastiq.KindEnroll, Subject: "Zed", FileName: "zed.jpg"}
	r := h.send(t, enrol, "face of Zed")
	want := elastiq.Enrolled{Subject: "Zed", FaceID: enrol.ID, Box: elastiq.Box{X1: 1, Y1: 2, X2: 11, Y2: 12}, Score: 0.99}
	if r.Status != elastiq.StatusDone || r.Label != "Zed" || r.Enrolled == nil || *r.Enrolled != want {
		t.Fatalf("enrol Zed = %+v (enrolled %+v), want done, Zed, %+v", r, r.Enrolled, want)
	}
	obj, err := h.store.Get(ctx, elastiq.FaceKey("Zed", enrol.ID))
	if err != nil || obj.Metadata[elastiq.MetaFaceModel] != "test-model" || obj.Metadata[elastiq.MetaFaceFile] != "zed.jpg" ||
		obj.Metadata[elastiq.MetaFaceBox] != "1.0,2.0,11.0,12.0" {
		t.Fatalf("stored face = %+v, %v", obj.Metadata, err)
	}
	// A recognition sent after the enrolment's answer names the new face.
	if got := recognise("face of Zed"); got != "Zed" {
		t.Errorf("after the enrolment: %q, want Zed", got)
	}
	// The web tier deletes it: the next request's revision brings that in.
	if err := h.store.Delete(ctx, elastiq.FaceKey("Zed", enrol.ID)); err != nil {
		t.Fatal(err)
	}
	if got := recognise("face of Zed"); got != "Unknown" {
		t.Errorf("after the deletion: %q, want Unknown", got)
	}
}

func TestGalleryEnrolFailures(t *testing.T) {
	h, _, _ := newGalleryHarness(t)
	for _, tt := range []struct {
		name, subject, image string
		largest              bool
		wantErr              string
	}{
		{name: "no face", subject: "Zed", image: "a landscape", wantErr: "cannot enrol: no face found in the image"},
		{name: "several faces", subject: "Zed", image: "faces of Zed and Amy", wantErr: "cannot enrol: several faces"},
		{name: "bad subject", subject: "Zed Smith", image: "face of Zed", wantErr: "cannot enrol: subject name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.send(t, elastiq.Request{ID: elastiq.NewRequestID(time.Now()), Kind: elastiq.KindEnroll, Subject: tt.subject}, tt.image)
			if r.Status != elastiq.StatusFailed || !strings.HasPrefix(r.Error, tt.wantErr) || r.Enrolled != nil {
				t.Errorf("enrol = %q %q, want failed %q", r.Status, r.Error, tt.wantErr)
			}
		})
	}
	if keys, _ := h.store.List(t.Context(), elastiq.SubjectPrefix("Zed")); len(keys) != 0 {
		t.Errorf("faces stored by failed enrolments: %q", keys)
	}
	r := h.send(t, elastiq.Request{ID: elastiq.NewRequestID(time.Now()), Kind: elastiq.KindEnroll, Subject: "Zed", LargestFace: true}, "faces of Zed and Amy")
	if r.Status != elastiq.StatusDone || r.Enrolled == nil {
		t.Errorf("enrol the largest of two faces = %+v, want done", r)
	}
}

// TestGalleryEnrolStoreOutage: a store that fails the face's write leaves
// the enrolment for redelivery (no result), as any store error.
func TestGalleryEnrolStoreOutage(t *testing.T) {
	h, _, _ := newGalleryHarness(t)
	h.worker.cfg.StoreRetry = 0
	req := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), Kind: elastiq.KindEnroll, Subject: "Zed"}
	req.InputKey = elastiq.InputKey(req.ID)
	if err := h.store.Put(t.Context(), req.InputKey, elastiq.Object{Body: []byte("face of Zed")}); err != nil {
		t.Fatal(err)
	}
	body, _ := elastiq.EncodeRequest(req)
	h.store.SetPutErr(errors.New("disk full"))
	h.requests.push(body)
	h.runUntilIdle(t)
	if sent, _ := h.responses.sentResults(); len(sent) != 0 || len(h.requests.deletedReceipts()) != 0 {
		t.Errorf("after a failed face write: %d results sent, %d messages deleted; want none", len(sent), len(h.requests.deletedReceipts()))
	}
}

// TestGalleryStartWaitsForSeed: a worker that starts while another is
// seeding the stored gallery (part of the seed stored, the rest on its way)
// waits for the seed to be complete before its first read, instead of
// keeping part of it as its gallery; one that finds part of the seed and no
// growth (seed faces deleted through the API) reads what is there.
func TestGalleryStartWaitsForSeed(t *testing.T) {
	var seed []elastiq.GalleryFace
	for _, name := range []string{"Ann", "Bob", "Cid", "Dee", "Eve", "Fay"} {
		seed = append(seed, elastiq.GalleryFace{ID: elastiq.DerivedID([]byte(name)), Subject: name, Embedding: vectorOf(name), Model: "test-model"})
	}
	put := func(store elastiq.ObjectStore, f elastiq.GalleryFace) {
		if err := store.Put(context.Background(), elastiq.FaceKey(f.Subject, f.ID), FaceObject(f, elastiq.Face{}, "")); err != nil {
			t.Error(err)
		}
	}
	for _, tc := range []struct {
		name         string
		stored, late int // seed faces stored before Start, and while it runs
	}{
		{name: "being seeded", stored: 2, late: 4},
		{name: "seed faces deleted", stored: 2, late: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := elastiqtest.NewStore()
			for _, f := range seed[:tc.stored] {
				put(store, f)
			}
			done := make(chan struct{})
			go func() { // another worker, seeding
				defer close(done)
				for _, f := range seed[tc.stored : tc.stored+tc.late] {
					time.Sleep(20 * time.Millisecond)
					put(store, f)
				}
			}()
			c := &galleryClassifier{seed: seed}
			g := NewGallery(store, c, nil)
			g.SeedSettle = 300 * time.Millisecond
			if err := g.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			<-done
			if want := tc.stored + tc.late; len(c.faces) != want {
				t.Errorf("Start read %d faces, want %d", len(c.faces), want)
			}
		})
	}
}
