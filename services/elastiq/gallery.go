package elastiq

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// The gallery of enrolled faces lives with the objects, so every worker
// reads the same one and it survives restarts: one object per face,
//
//	gallery/faces/<subject>/<face ID>
//
// whose body is the face's embedding (little-endian float32) and whose
// metadata says which model made it, where the face was and from what file.
// A face's ID is the ID of the request that enrolled it, or, for the faces
// seeded from a folder (-gallery), one derived from their content.
//
// Workers compute embeddings (the web tier never links the model) and write
// faces; the web tier lists and deletes them. A worker answers a request
// with a gallery at least as new as the request's GalleryRevision: the ID
// of the web tier's latest change, minted once the change was complete, so
// a recognition submitted after an enrolment's 201 is answered with that
// enrolment.
const GalleryFacesPrefix = "gallery/faces/"

// Metadata keys of a face object.
const (
	MetaFaceModel = "model"     // the embedding's model and pipeline version
	MetaFaceBox   = "box"       // x1,y1,x2,y2 in the source image's pixels
	MetaFaceScore = "score"     // the detector's confidence
	MetaFaceFile  = "file-name" // the source image's file name
)

// MaxSubjectLen is the longest subject name.
const MaxSubjectLen = 100

// ValidateSubject checks a subject's name: 1 to MaxSubjectLen letters,
// digits, '_', '-' and '.', not starting with '.' (LFW's Laura_Linney, the
// course's Paul).
func ValidateSubject(name string) error {
	if name == "" || len(name) > MaxSubjectLen {
		return fmt.Errorf("subject name of %d characters: want 1 to %d", len(name), MaxSubjectLen)
	}
	if name[0] == '.' {
		return fmt.Errorf("subject name %q: must not start with '.'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("subject name %q: want letters, digits, '_', '-' and '.' only", name)
		}
	}
	return nil
}

// FaceKey is the object key of one enrolled face.
func FaceKey(subject string, id RequestID) string {
	return GalleryFacesPrefix + subject + "/" + string(id)
}

// SubjectPrefix is the key prefix of a subject's faces.
func SubjectPrefix(subject string) string { return GalleryFacesPrefix + subject + "/" }

// ParseFaceKey returns the subject and face ID of a face key.
func ParseFaceKey(key string) (string, RequestID, error) {
	rest, ok := strings.CutPrefix(key, GalleryFacesPrefix)
	subject, id, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return "", "", fmt.Errorf("key %q: not a face (%s<subject>/<id>)", key, GalleryFacesPrefix)
	}
	if err := ValidateSubject(subject); err != nil {
		return "", "", fmt.Errorf("key %q: %w", key, err)
	}
	fid, err := ParseRequestID(id)
	if err != nil {
		return "", "", fmt.Errorf("key %q: %w", key, err)
	}
	return subject, fid, nil
}

// DerivedID is an ID made from content, the same wherever it is made: the
// IDs of the faces seeded from a folder, so that workers seeding the same
// gallery at once write the same objects.
func DerivedID(parts ...[]byte) RequestID {
	h := sha256.New()
	for _, p := range parts {
		binary.Write(h, binary.BigEndian, uint64(len(p)))
		h.Write(p)
	}
	return RequestID(idEncoding.EncodeToString(h.Sum(nil)[:16]))
}

// GalleryFace is one enrolled face: its ID, its subject and its embedding
// (unit length), with the model that made it.
type GalleryFace struct {
	ID        RequestID
	Subject   string
	Embedding []float32
	Model     string
}

// EncodeEmbedding is an embedding as a face object's body.
func EncodeEmbedding(e []float32) []byte {
	b := make([]byte, 4*len(e))
	for i, v := range e {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// DecodeEmbedding reads a face object's body.
func DecodeEmbedding(b []byte) ([]float32, error) {
	if len(b) == 0 || len(b)%4 != 0 {
		return nil, fmt.Errorf("embedding of %d bytes: want a multiple of 4", len(b))
	}
	e := make([]float32, len(b)/4)
	for i := range e {
		e[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return e, nil
}

// KindEnroll is a request to enrol the largest face of its image under
// Request.Subject (see FaceEnroller).
const KindEnroll = "enroll"

// Enrolled is the answer to a KindEnroll request: the face enrolled.
type Enrolled struct {
	Subject string    `json:"subject"`
	FaceID  RequestID `json:"face_id"`
	Box     Box       `json:"box"`
	Score   float64   `json:"score"`
}

// ErrSeveralFaces is the error of an enrolment whose image shows more than
// one face and whose request did not say to take the largest.
var ErrSeveralFaces = errors.New("several faces in the image: send one face, or ask for the largest (face=largest)")

// FaceEnroller is a classifier whose gallery can change while it runs: it
// embeds the face of an image to enrol, and takes a whole new gallery.
type FaceEnroller interface {
	// EmbedFace finds the face to enrol in image: the only one, or the
	// largest when largest is set (else several are ErrSeveralFaces).
	EmbedFace(ctx context.Context, image []byte, largest bool) (Face, []float32, error)
	// SetGallery replaces the faces recognised; faces of another model
	// than EmbeddingModel are left out.
	SetGallery(faces []GalleryFace)
	// SeedGallery is the gallery the classifier was opened with (its
	// folder's faces, with DerivedID IDs), to seed an empty stored one.
	SeedGallery() []GalleryFace
	// EmbeddingModel names the model and pipeline of its embeddings.
	EmbeddingModel() string
}
