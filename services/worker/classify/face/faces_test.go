package face

import (
	"errors"
	"strings"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
)

// TestRecognizeFaces: every face of a photo with two people, largest
// first, each with its box, label and nearest people; the request's
// threshold and top k apply, and bad options are refused.
func TestRecognizeFaces(t *testing.T) {
	c := openFace(t, nil)
	canvas := greyCanvas(800, 400)
	canvas.Paste(readPhoto(t, "test_02").Resize(320, 320), 40, 40)   // Bob, big, left
	canvas.Paste(readPhoto(t, "test_00").Resize(180, 180), 400, 110) // Paul, small, right
	img := encodePNG(t, canvas.RGBA())

	r, err := c.RecognizeFaces(ctxT(t), img, elastiq.Options{})
	if err != nil {
		t.Fatalf("RecognizeFaces: %v", err)
	}
	if len(r.Faces) != 2 || r.Label != "Bob" || r.Threshold != DefaultThreshold {
		t.Fatalf("RecognizeFaces = label %q at %v with %d faces %+v; want Bob at %v with 2", r.Label, r.Threshold, len(r.Faces), r.Faces, DefaultThreshold)
	}
	for i, want := range []struct {
		label  string
		x1, x2 float64
	}{{"Bob", 40, 360}, {"Paul", 400, 580}} {
		f := r.Faces[i]
		if f.Label != want.label || f.Box.X1 < want.x1-40 || f.Box.X2 > want.x2+40 || f.Score < DefaultMinScore {
			t.Errorf("face %d = %s at %+v (score %.2f), want %s within x %v..%v", i, f.Label, f.Box, f.Score, want.label, want.x1, want.x2)
		}
		if len(f.Candidates) != DefaultTopK || f.Candidates[0].Label != want.label || f.Candidates[0].Similarity != f.Similarity {
			t.Errorf("face %d candidates = %+v, want %d, %s first at the face's similarity %.3f", i, f.Candidates, DefaultTopK, want.label, f.Similarity)
		}
		seen := map[string]bool{}
		for j, cand := range f.Candidates {
			if seen[cand.Label] || (j > 0 && cand.Similarity > f.Candidates[j-1].Similarity) {
				t.Errorf("face %d candidates = %+v, want distinct people, best first", i, f.Candidates)
			}
			seen[cand.Label] = true
		}
	}

	// A stricter threshold than any match: both unknown, with evidence.
	strict, one := 0.999, 1
	r, err = c.RecognizeFaces(ctxT(t), img, elastiq.Options{Threshold: &strict, TopK: one})
	if err != nil {
		t.Fatal(err)
	}
	if r.Threshold != strict || r.Label != DefaultUnknownLabel {
		t.Errorf("at threshold %v: label %q at %v, want %q", strict, r.Label, r.Threshold, DefaultUnknownLabel)
	}
	for i, f := range r.Faces {
		if f.Label != DefaultUnknownLabel || len(f.Candidates) != 1 || f.Similarity <= 0 {
			t.Errorf("at threshold %v, face %d = %+v; want unknown with its one nearest person", strict, i, f)
		}
	}

	bad := 2.0
	if _, err := c.RecognizeFaces(ctxT(t), img, elastiq.Options{Threshold: &bad}); err == nil || !strings.Contains(err.Error(), "threshold") {
		t.Errorf("RecognizeFaces with threshold 2 = %v, want an error naming the threshold", err)
	}
}

// TestVerify: two photos of one person are the same at the threshold, of
// two people different; a photo without a face is an error naming which.
func TestVerify(t *testing.T) {
	c := openFace(t, nil)
	photo := func(file string) []byte { return photoBytes(t, file) }
	for _, tt := range []struct {
		first, second string
		same          bool
	}{
		{"test_00", "test_00", true},  // Paul, the same photo
		{"test_00", "test_02", false}, // Paul and Bob
		{"test_07", "test_08", false}, // Ranil and Bill
	} {
		first := photo(tt.first)
		second := photo(tt.second)
		if tt.first == tt.second {
			// A changed copy: twice the size.
			m := readPhoto(t, tt.second)
			second = alterations[1].apply(t, m)
		}
		v, err := c.Verify(ctxT(t), first, second, elastiq.Options{})
		if err != nil {
			t.Fatalf("Verify(%s, %s): %v", tt.first, tt.second, err)
		}
		if v.Same != tt.same || v.Threshold != DefaultThreshold || (v.Similarity >= DefaultThreshold) != tt.same {
			t.Errorf("Verify(%s, %s) = same %v at %.3f (threshold %v), want same %v", tt.first, tt.second, v.Same, v.Similarity, v.Threshold, tt.same)
		}
		if v.Faces[0].Box.X2 <= v.Faces[0].Box.X1 || v.Faces[1].Score < DefaultMinScore {
			t.Errorf("Verify faces = %+v, want both boxes and scores", v.Faces)
		}
	}
	_, err := c.Verify(ctxT(t), photo("test_00"), encodePNG(t, greyCanvas(64, 64).RGBA()), elastiq.Options{})
	if !errors.Is(err, ErrNoFace) || !strings.Contains(err.Error(), "second image") {
		t.Errorf("Verify with a faceless second image = %v, want ErrNoFace naming the second image", err)
	}
}
