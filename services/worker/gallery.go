package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Gallery keeps a classifier's gallery in step with the faces stored under
// gallery/faces/ (elastiq.GalleryFacesPrefix), which the web tier lists and
// deletes and workers write when they enrol. It is shared by the workers of
// one process, which share its classifier.
//
// A worker calls Ensure with a request's GalleryRevision before answering
// it: if the gallery has not been read since that revision was minted (the
// web tier mints it once a change is complete), it is read again: the keys
// listed, the new faces fetched, the removed ones dropped. A sync that
// starts after a request was received sees every change made before the
// request was sent, so the request's revision is then covered. Besides, the
// gallery is read again every Interval (-gallery-sync), for changes this
// worker's requests did not announce.
type Gallery struct {
	store    elastiq.ObjectStore
	enroller elastiq.FaceEnroller
	log      *slog.Logger
	now      func() time.Time
	// Interval is the most time between two reads of the stored gallery.
	Interval time.Duration
	// SeedSettle is how long Start waits for a stored gallery that holds
	// only part of the seed to stop growing (another worker seeding it).
	SeedSettle time.Duration

	mu      sync.Mutex // one read at a time; guards the fields below
	through elastiq.RequestID
	synced  time.Time
	faces   map[string]elastiq.GalleryFace // by key
}

// DefaultGallerySync is Gallery.Interval by default. Requests announce
// every change made through their web tier (GalleryRevision), so the timed
// read is for the rest (a change made through another web tier): each read
// lists the stored faces, a LIST call a thousand faces on S3, so every few
// minutes rather than every few seconds.
const DefaultGallerySync = 5 * time.Minute

// DefaultSeedSettle is Gallery.SeedSettle by default: a seeding worker
// writes its faces back to back, so a listing that has not grown for this
// long is not being seeded; maxSeedWait bounds the whole wait.
const (
	DefaultSeedSettle = 2 * time.Second
	maxSeedWait       = time.Minute
)

// NewGallery returns the gallery of enroller, kept in step with store.
func NewGallery(store elastiq.ObjectStore, enroller elastiq.FaceEnroller, log *slog.Logger) *Gallery {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gallery{store: store, enroller: enroller, log: log.With("component", "gallery"), now: time.Now,
		Interval: DefaultGallerySync, SeedSettle: DefaultSeedSettle, faces: map[string]elastiq.GalleryFace{}}
}

// Start reads the stored gallery; when it holds no face, it first stores the
// classifier's seed faces (its -gallery folder), whose IDs derive from
// their content, so workers starting together write the same objects. When
// it holds part of the seed and nothing else, another worker may be
// seeding it right now: Start waits until the listing stops growing before
// it reads, rather than keep part of the seed as its gallery until the next
// read (Interval). A gallery whose seed faces were partly deleted, with no
// other face enrolled, costs one SeedSettle.
func (g *Gallery) Start(ctx context.Context) error {
	keys, err := g.store.List(ctx, elastiq.GalleryFacesPrefix)
	if err != nil {
		return fmt.Errorf("gallery: list %s: %w", elastiq.GalleryFacesPrefix, err)
	}
	seed := g.enroller.SeedGallery()
	switch {
	case len(keys) == 0:
		seeded := 0
		for _, f := range seed {
			if err := elastiq.ValidateSubject(f.Subject); err != nil {
				g.log.Warn("seed face not stored", "err", err)
				continue
			}
			if err := g.store.Put(ctx, elastiq.FaceKey(f.Subject, f.ID), FaceObject(f, elastiq.Face{}, "")); err != nil {
				return fmt.Errorf("gallery: seed: %w", err)
			}
			seeded++
		}
		g.log.Info("gallery seeded from the classifier's folder", "faces", seeded)
	case len(keys) < len(seed) && onlySeed(keys, seed):
		if err := g.awaitSeed(ctx, len(keys), len(seed)); err != nil {
			return err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.syncLocked(ctx, "")
}

// onlySeed reports whether every key is one of the seed faces'.
func onlySeed(keys []string, seed []elastiq.GalleryFace) bool {
	seedKeys := make(map[string]bool, len(seed))
	for _, f := range seed {
		seedKeys[elastiq.FaceKey(f.Subject, f.ID)] = true
	}
	for _, k := range keys {
		if !seedKeys[k] {
			return false
		}
	}
	return true
}

// awaitSeed lists the stored faces every SeedSettle until their number
// stops growing or reaches the seed's, for at most maxSeedWait.
func (g *Gallery) awaitSeed(ctx context.Context, n, seed int) error {
	deadline := g.now().Add(maxSeedWait)
	for n < seed && g.now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(g.SeedSettle):
		}
		keys, err := g.store.List(ctx, elastiq.GalleryFacesPrefix)
		if err != nil {
			return fmt.Errorf("gallery: list %s: %w", elastiq.GalleryFacesPrefix, err)
		}
		if len(keys) <= n {
			break // settled
		}
		g.log.Info("waiting for the gallery being seeded", "faces", len(keys), "seed", seed)
		n = len(keys)
	}
	return nil
}

// Ensure reads the stored gallery again unless it was read after revision
// was minted and within Interval.
func (g *Gallery) Ensure(ctx context.Context, revision elastiq.RequestID) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if revision <= g.through && g.now().Sub(g.synced) < g.Interval {
		return nil // read since, also by another request's Ensure meanwhile
	}
	return g.syncLocked(ctx, revision)
}

// syncLocked reads the stored gallery and hands it to the classifier;
// revision, announced before the read began, is then covered.
func (g *Gallery) syncLocked(ctx context.Context, revision elastiq.RequestID) error {
	started := g.now()
	keys, err := g.store.List(ctx, elastiq.GalleryFacesPrefix)
	if err != nil {
		return fmt.Errorf("gallery: list %s: %w", elastiq.GalleryFacesPrefix, err)
	}
	next := make(map[string]elastiq.GalleryFace, len(keys))
	added := 0
	for _, key := range keys {
		if f, ok := g.faces[key]; ok {
			next[key] = f
			continue
		}
		subject, id, err := elastiq.ParseFaceKey(key)
		if err != nil {
			g.log.Warn("not a face; ignored", "key", key, "err", err)
			continue
		}
		obj, err := g.store.Get(ctx, key)
		if errors.Is(err, elastiq.ErrNotFound) {
			continue // deleted since the list
		}
		if err != nil {
			return fmt.Errorf("gallery: get %s: %w", key, err)
		}
		emb, err := elastiq.DecodeEmbedding(obj.Body)
		if err != nil {
			g.log.Warn("face unreadable; ignored", "key", key, "err", err)
			continue
		}
		next[key] = elastiq.GalleryFace{ID: id, Subject: subject, Embedding: emb, Model: obj.Metadata[elastiq.MetaFaceModel]}
		added++
	}
	removed := len(g.faces) + added - len(next)
	faces := make([]elastiq.GalleryFace, 0, len(next))
	others := 0
	for _, f := range next {
		faces = append(faces, f)
		if f.Model != g.enroller.EmbeddingModel() {
			others++
		}
	}
	// A classifier rebuilds its search index and calibration from the
	// faces (1.4 s at 100,000 faces: BenchmarkSearchAndDecide's
	// gallery-ms): only a change, or the first read, is handed over.
	if added > 0 || removed > 0 || g.synced.IsZero() {
		g.enroller.SetGallery(faces)
	}
	if added > 0 || removed > 0 {
		g.log.Info("gallery read", "faces", len(faces), "added", added, "removed", removed, "other_model", others)
	}
	if others > 0 && (added > 0 || removed > 0) {
		g.log.Warn("faces embedded by another model are not recognised; enrol them again", "count", others, "model", g.enroller.EmbeddingModel())
	}
	g.faces, g.synced = next, started
	g.through = max(g.through, revision)
	return nil
}

// FaceObject is the stored form of an enrolled face.
func FaceObject(f elastiq.GalleryFace, where elastiq.Face, fileName string) elastiq.Object {
	md := map[string]string{elastiq.MetaFaceModel: f.Model}
	if where.Box != (elastiq.Box{}) {
		b := where.Box
		md[elastiq.MetaFaceBox] = strings.Join([]string{fmtFloat(b.X1), fmtFloat(b.Y1), fmtFloat(b.X2), fmtFloat(b.Y2)}, ",")
		md[elastiq.MetaFaceScore] = fmtFloat(where.Score)
	}
	if fileName != "" {
		md[elastiq.MetaFaceFile] = fileName
	}
	return elastiq.Object{Body: elastiq.EncodeEmbedding(f.Embedding), ContentType: "application/octet-stream", Metadata: md}
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
