package elastiq_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

func TestValidateSubject(t *testing.T) {
	for _, ok := range []string{"Paul", "Laura_Linney", "a", "x.y-z_1", strings.Repeat("a", elastiq.MaxSubjectLen)} {
		if err := elastiq.ValidateSubject(ok); err != nil {
			t.Errorf("ValidateSubject(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".hidden", "a/b", "a b", "é", "..", strings.Repeat("a", elastiq.MaxSubjectLen+1), "a\x00"} {
		if err := elastiq.ValidateSubject(bad); err == nil {
			t.Errorf("ValidateSubject(%q) = nil, want an error", bad)
		}
	}
}

func TestFaceKey(t *testing.T) {
	id := elastiq.NewRequestID(time.Now())
	key := elastiq.FaceKey("Laura_Linney", id)
	if !strings.HasPrefix(key, elastiq.SubjectPrefix("Laura_Linney")) {
		t.Errorf("FaceKey = %q, not under SubjectPrefix", key)
	}
	subject, got, err := elastiq.ParseFaceKey(key)
	if err != nil || subject != "Laura_Linney" || got != id {
		t.Errorf("ParseFaceKey(%q) = %q, %q, %v", key, subject, got, err)
	}
	for _, bad := range []string{"gallery/faces/Paul", "gallery/faces/a b/" + string(id), "input/" + string(id), "gallery/faces/Paul/x"} {
		if _, _, err := elastiq.ParseFaceKey(bad); err == nil {
			t.Errorf("ParseFaceKey(%q) = nil error", bad)
		}
	}
}

func TestEmbeddingRoundTrip(t *testing.T) {
	e := []float32{0, -1.5, 3.25, 1e-30}
	got, err := elastiq.DecodeEmbedding(elastiq.EncodeEmbedding(e))
	if err != nil || !slices.Equal(got, e) {
		t.Errorf("round trip = %v, %v; want %v", got, err, e)
	}
	if _, err := elastiq.DecodeEmbedding([]byte{1, 2, 3}); err == nil {
		t.Error("DecodeEmbedding of 3 bytes = nil error")
	}
}

func TestDerivedID(t *testing.T) {
	a, b := elastiq.DerivedID([]byte("Paul"), []byte{1}), elastiq.DerivedID([]byte("Paul"), []byte{1})
	if a != b || a == elastiq.DerivedID([]byte("Pau"), []byte("l\x01")) {
		t.Errorf("DerivedID: %s, %s: want equal for equal parts and different for other parts", a, b)
	}
	if _, err := elastiq.ParseRequestID(string(a)); err != nil {
		t.Errorf("DerivedID %q is not a well-formed ID: %v", a, err)
	}
}
