package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// faceRecognizer is a test double of a classifier that reports every face:
// it labels by content as labelByContent does, answers one face with the
// request's threshold and top k echoed in its evidence, and records the
// options it was given.
type faceRecognizer struct {
	classifierFunc
	got chan elastiq.Options
}

var _ elastiq.FaceRecognizer = faceRecognizer{}

func (f faceRecognizer) RecognizeFaces(ctx context.Context, image []byte, opts elastiq.Options) (elastiq.Recognition, error) {
	f.got <- opts
	label, err := labelByContent(ctx, image)
	if err != nil {
		return elastiq.Recognition{}, err
	}
	threshold, minZ := 0.4, 4.0
	if opts.Threshold != nil {
		threshold = *opts.Threshold
	}
	if opts.MinZ != nil {
		minZ = *opts.MinZ
	}
	face := elastiq.Face{Box: elastiq.Box{X1: 1, Y1: 2, X2: 3, Y2: 4}, Score: 0.9, Label: label, Similarity: 0.8}
	for range max(opts.TopK, 1) {
		face.Candidates = append(face.Candidates, elastiq.Candidate{Label: label, Similarity: 0.8})
	}
	return elastiq.Recognition{Label: label, Threshold: threshold, Certain: 0.5, MinZ: minZ, Faces: []elastiq.Face{face}}, nil
}

// TestWorkerRecognizesFaces: with a classifier that reports faces, the
// request's options reach it and the result carries every face and the
// rule its label was decided by.
func TestWorkerRecognizesFaces(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	fr := faceRecognizer{classifierFunc: labelByContent, got: make(chan elastiq.Options, 1)}
	h.worker.deps.Classifier = fr
	threshold, minZ := 0.55, 3.0
	req := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: "ann.jpg", SubmittedAt: time.Now(),
		Image: []byte("face of Ann"), Options: elastiq.Options{Threshold: &threshold, MinZ: &minZ, TopK: 2}}
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	h.requests.push(body)
	h.runUntilIdle(t)
	if got := <-fr.got; got.Threshold == nil || *got.Threshold != threshold || got.MinZ == nil || *got.MinZ != minZ || got.TopK != 2 {
		t.Errorf("options given to the classifier = %+v, want threshold %v, min z %v, top k 2", got, threshold, minZ)
	}
	sent, err := h.responses.sentResults()
	if err != nil || len(sent) != 1 {
		t.Fatalf("responses = %+v, %v; want one", sent, err)
	}
	res := sent[0]
	if res.Label != "Ann" || res.Threshold == nil || *res.Threshold != threshold || len(res.Faces) != 1 ||
		res.Certain == nil || *res.Certain != 0.5 || res.MinZ == nil || *res.MinZ != minZ ||
		len(res.Faces[0].Candidates) != 2 || res.Faces[0].Box.X2 != 3 {
		t.Errorf("result = %+v, want Ann at threshold %v, certain 0.5 and min z %v, with one face and its 2 candidates", res, threshold, minZ)
	}
}

// faceVerifier is a test double of a classifier that compares faces: the
// same person when the images name the same one ("face of Ann").
type faceVerifier struct{ classifierFunc }

var _ elastiq.FaceVerifier = faceVerifier{}

func (f faceVerifier) Verify(ctx context.Context, first, second []byte, opts elastiq.Options) (elastiq.Verification, error) {
	a, err := labelByContent(ctx, first)
	if err != nil {
		return elastiq.Verification{}, err
	}
	b, err := labelByContent(ctx, second)
	if err != nil {
		return elastiq.Verification{}, err
	}
	v := elastiq.Verification{Threshold: 0.4, Similarity: 0.1}
	if a == b {
		v.Similarity, v.Same = 0.9, true
	}
	return v, nil
}

// TestWorkerVerifies: a verification reads its second image (inline or
// from the store) and answers same or different with its evidence; a
// classifier that cannot compare faces answers failed with the reason.
func TestWorkerVerifies(t *testing.T) {
	for _, tt := range []struct {
		name          string
		first, second string
		inline        bool
		classifier    elastiq.Classifier
		want          string
		status        elastiq.Status
	}{
		{name: "same, second inline", first: "face of Ann", second: "face of Ann", inline: true, want: "same", status: elastiq.StatusDone},
		{name: "different, second stored", first: "face of Ann", second: "face of Bob", want: "different", status: elastiq.StatusDone},
		{name: "no verifier", first: "face of Ann", second: "face of Ann", inline: true, status: elastiq.StatusFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, labelByContent, nil)
			if tt.status == elastiq.StatusDone {
				h.worker.deps.Classifier = faceVerifier{labelByContent}
			}
			req := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: "a.jpg", SubmittedAt: time.Now(),
				Image: []byte(tt.first), Kind: elastiq.KindVerify}
			req.SecondKey = elastiq.SecondInputKey(req.ID)
			if tt.inline {
				req.Second = []byte(tt.second)
			} else if err := h.store.Put(t.Context(), req.SecondKey, elastiq.Object{Body: []byte(tt.second)}); err != nil {
				t.Fatal(err)
			}
			body, err := elastiq.EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			h.requests.push(body)
			h.runUntilIdle(t)
			sent, err := h.responses.sentResults()
			if err != nil || len(sent) != 1 {
				t.Fatalf("responses = %+v, %v; want one", sent, err)
			}
			res := sent[0]
			if res.Status != tt.status || res.Label != tt.want {
				t.Errorf("result = %s %q (%s), want %s %q", res.Status, res.Label, res.Error, tt.status, tt.want)
			}
			if tt.status == elastiq.StatusDone && (res.Verification == nil || res.Verification.Same != (tt.want == "same")) {
				t.Errorf("verification = %+v, want same %v", res.Verification, tt.want == "same")
			}
			if tt.status == elastiq.StatusFailed && !strings.Contains(res.Error, "cannot compare faces") {
				t.Errorf("error = %q, want it to say the classifier cannot compare faces", res.Error)
			}
		})
	}
}
