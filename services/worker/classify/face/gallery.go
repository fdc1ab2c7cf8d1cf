package face

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/elastiq/elastiq/services/elastiq"
)

// pipelineVersion changes whenever pre- or post-processing changes what an
// enrolled embedding is, so older caches stop matching.
const pipelineVersion = "face-pipeline-4"

// LabelsFile is the labels CSV of the CSE546 gallery layout.
const LabelsFile = "labels.csv"

// Enrollment describes the enrolled gallery.
type Enrollment struct {
	// Faces is how many gallery images were enrolled, Identities how many
	// distinct labels they carry.
	Faces, Identities int
	// Skipped lists gallery images in which no usable face was found.
	Skipped []string
	// FromCache tells whether the embeddings came from the on-disk cache;
	// Embedded is how many images were run through the models to enroll.
	FromCache bool
	Embedded  int
	// Key identifies the models, pipeline and gallery content; CacheFile is
	// where the embeddings are cached ("" without a cache dir).
	Key       string
	CacheFile string
}

// Enrollment describes the gallery this classifier enrolled.
func (c *Classifier) Enrollment() Enrollment { return c.enrollment }

// gallery is the enrolled faces, searchable (index), with what the
// open-set decision needs (openset.go): the cohort of faces a query's z is
// computed over (none when too few people are enrolled) and the calibrated
// least z.
type gallery struct {
	x      index
	cohort []int
	minZ   float64
}

// newGallery enrols emb (Dim values a face) under labels and calibrates the
// open-set decision for falseMatchRate.
func newGallery(labels []string, emb []float32, falseMatchRate float64) *gallery {
	g := &gallery{}
	for i, l := range labels {
		g.x.add(l, emb[i*Dim:(i+1)*Dim])
	}
	g.prepare(falseMatchRate)
	return g
}

// nearestPeople returns the k enrolled people most similar to e, best
// first, each at the similarity of their most similar enrolled face (among
// the index's shortlist: the faces near enough to matter).
func (g *gallery) nearestPeople(e []float32, k int) []elastiq.Candidate {
	var out []elastiq.Candidate
	seen := make(map[int32]bool)
	for _, h := range g.x.search(e, Shortlist) {
		l := g.x.label[h.face]
		if seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, elastiq.Candidate{Label: g.x.labels[l], Similarity: float64(h.sim)})
		if len(out) == k {
			break
		}
	}
	return out
}

// LabelledImage is an image file and the label it should get: an enrolled
// photo, or a query of an evaluation (cmd/eval).
type LabelledImage struct {
	Label string
	Path  string // relative to the folder listed
}

// ListLabelled lists the labelled images of dir (a gallery, or a test set
// with its answers), sorted by path.
//
// Two layouts are understood. If dir holds a labels.csv, it is the CSE546
// layout: the CSV has the columns Image (the file name without extension)
// and Results (the label), and each image is found by that name anywhere
// under dir. Otherwise each sub-folder of dir is a label and holds that
// person's .jpg, .jpeg or .png images.
func ListLabelled(dir string) ([]LabelledImage, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list gallery: %w", err)
	}
	var images []LabelledImage
	if _, err := os.Stat(filepath.Join(dir, LabelsFile)); err == nil {
		images, err = listCSV(dir)
		if err != nil {
			return nil, err
		}
	} else {
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			files, err := os.ReadDir(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("list gallery: %w", err)
			}
			for _, f := range files {
				if !f.IsDir() && isImageFile(f.Name()) {
					images = append(images, LabelledImage{Label: e.Name(), Path: filepath.Join(e.Name(), f.Name())})
				}
			}
		}
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("list gallery %s: no images (want <gallery>/<Label>/*.jpg|png, or images with a %s)", dir, LabelsFile)
	}
	sort.Slice(images, func(i, j int) bool { return images[i].Path < images[j].Path })
	return images, nil
}

func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// listCSV reads the CSE546 layout: labels.csv plus images under dir.
func listCSV(dir string) ([]LabelledImage, error) {
	byStem := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isImageFile(d.Name()) {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		stem := strings.TrimSuffix(d.Name(), filepath.Ext(d.Name()))
		if other, dup := byStem[stem]; dup {
			return fmt.Errorf("image name %s is ambiguous: %s and %s", stem, other, rel)
		}
		byStem[stem] = rel
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list gallery %s: %w", dir, err)
	}
	f, err := os.Open(filepath.Join(dir, LabelsFile))
	if err != nil {
		return nil, fmt.Errorf("list gallery: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	imgCol, ok1 := col["image"]
	labelCol, ok2 := col["results"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("read %s: header %q: want columns Image and Results", f.Name(), header)
	}
	var images []LabelledImage
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		name, label := strings.TrimSpace(rec[imgCol]), strings.TrimSpace(rec[labelCol])
		if name == "" || label == "" {
			continue
		}
		path, ok := byStem[strings.TrimSuffix(name, filepath.Ext(name))]
		if !ok {
			return nil, fmt.Errorf("read %s: image %s: no such .jpg or .png under %s", f.Name(), name, dir)
		}
		images = append(images, LabelledImage{Label: label, Path: path})
	}
	return images, nil
}

// enrollKey hashes everything an enrolled embedding depends on: the models,
// pipeline and detector threshold (model, a modelKey) and each image's
// label, path and bytes.
func enrollKey(model, dir string, images []LabelledImage) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", model)
	for _, im := range images {
		sum, err := fileSum(filepath.Join(dir, im.Path))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "image %q %q %s\n", im.Label, filepath.ToSlash(im.Path), sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cacheEntry is the on-disk enrollment cache (gob).
type cacheEntry struct {
	Key        string
	Labels     []string
	Embeddings []float32
	Skipped    []string
}

func readCache(path, key string) (*cacheEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e cacheEntry
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if e.Key != key || len(e.Embeddings) != len(e.Labels)*Dim || len(e.Labels) == 0 {
		return nil, fmt.Errorf("cache %s: stale or damaged", path)
	}
	return &e, nil
}

// writeCache writes e to path atomically (temp file, then rename).
func writeCache(path string, e *cacheEntry) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write enrollment cache: %w", err)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(e); err != nil {
		return fmt.Errorf("write enrollment cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".enroll-*")
	if err != nil {
		return fmt.Errorf("write enrollment cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write enrollment cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write enrollment cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write enrollment cache: %w", err)
	}
	return nil
}

// enroll fills c.gallery from the cache or by embedding every image.
func (c *Classifier) enroll(ctx context.Context) error {
	images, err := ListLabelled(c.cfg.Gallery)
	if err != nil {
		return err
	}
	key, err := enrollKey(c.model, c.cfg.Gallery, images)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	c.enrollment = Enrollment{Key: key}
	if c.cfg.CacheDir != "" {
		c.enrollment.CacheFile = filepath.Join(c.cfg.CacheDir, "face-enroll-"+key[:32]+".gob")
		e, err := readCache(c.enrollment.CacheFile, key)
		switch {
		case err == nil:
			c.useEntry(e, true)
			c.seed = seedFaces(key, images, e, c.model)
			c.log.Info("enrolled gallery from cache", "gallery", c.cfg.Gallery, "faces", c.enrollment.Faces,
				"identities", c.enrollment.Identities, "cache", c.enrollment.CacheFile)
			return nil
		case errors.Is(err, fs.ErrNotExist):
		default:
			c.log.Warn("enrollment cache unusable, enrolling again", "err", err)
		}
	}
	e, err := c.embedGallery(ctx, images)
	if err != nil {
		return err
	}
	e.Key = key
	c.useEntry(e, false)
	c.seed = seedFaces(key, images, e, c.model)
	c.enrollment.Embedded = len(images)
	c.log.Info("enrolled gallery", "gallery", c.cfg.Gallery, "faces", c.enrollment.Faces,
		"identities", c.enrollment.Identities, "skipped", len(e.Skipped))
	if c.cfg.CacheDir != "" {
		if err := writeCache(c.enrollment.CacheFile, e); err != nil {
			// A worker still works without its cache; it just boots slower next time.
			c.log.Warn("enrollment not cached", "err", err)
		}
	}
	return nil
}

func (c *Classifier) useEntry(e *cacheEntry, fromCache bool) {
	c.gallery.Store(newGallery(e.Labels, e.Embeddings, c.cfg.FalseMatchRate))
	ids := map[string]bool{}
	for _, l := range e.Labels {
		ids[l] = true
	}
	c.enrollment.Faces, c.enrollment.Identities = len(e.Labels), len(ids)
	c.enrollment.Skipped, c.enrollment.FromCache = e.Skipped, fromCache
}

// embedGallery embeds every image on all sessions at once. Images without
// a usable face are skipped with a warning; enrolling nothing is an error.
func (c *Classifier) embedGallery(ctx context.Context, images []LabelledImage) (*cacheEntry, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	embs := make([][]float32, len(images))
	errs := make([]error, len(images))
	next := make(chan int)
	var wg sync.WaitGroup
	for range c.cfg.Sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := os.ReadFile(filepath.Join(c.cfg.Gallery, images[i].Path))
				if err != nil {
					errs[i] = fmt.Errorf("enroll: %w", err)
					continue
				}
				f, err := c.Analyze(ctx, b)
				embs[i], errs[i] = f.Embedding, err
			}
		}()
	}
feed:
	for i := range images {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	e := &cacheEntry{Embeddings: make([]float32, 0, len(images)*Dim)}
	var firstErr error
	for i, im := range images {
		if errs[i] != nil {
			c.log.Warn("gallery image not enrolled", "image", im.Path, "label", im.Label, "err", errs[i])
			e.Skipped = append(e.Skipped, im.Path)
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		e.Labels = append(e.Labels, im.Label)
		e.Embeddings = append(e.Embeddings, embs[i]...)
	}
	if len(e.Labels) == 0 {
		return nil, fmt.Errorf("enroll %s: no face enrolled (first error: %w)", c.cfg.Gallery, firstErr)
	}
	return e, nil
}
