package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestSubmitOptions: POST /v1/recognitions?threshold=&min_z=&top_k= puts the
// options in the request and in its input's metadata (so a recovered
// request keeps them); bad ones are refused with 400 before anything is
// stored or queued; GET shows the threshold and faces of the result.
func TestSubmitOptions(t *testing.T) {
	faces, _ := loadFaces(t)
	h := newHarness(t, testConfig(), nil, nil)
	for _, tt := range []struct{ query, want string }{
		{"threshold=high", "threshold"},
		{"threshold=1.5", "threshold"},
		{"min_z=-1", "min_z"},
		{"min_z=lots", "min_z"},
		{"top_k=0", "top_k"},
		{"top_k=21", "top_k"},
		{"top_k=two", "top_k"},
	} {
		r := h.upload(t, "/v1/recognitions?"+tt.query, "file", faces[0].name, faces[0].data)
		checkErrorReply(t, "POST ?"+tt.query, true, r, http.StatusBadRequest, tt.want)
	}
	if sent, _ := h.requests.counts(); sent != 0 {
		t.Fatalf("requests sent after bad options = %d, want 0", sent)
	}

	r := h.upload(t, "/v1/recognitions?threshold=0.55&min_z=3.5&top_k=2", "file", faces[0].name, faces[0].data)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST with options = %d %q, want 202", r.status, r.body)
	}
	msgs, err := h.requests.Receive(t.Context(), 1, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive the request: %v, %d messages", err, len(msgs))
	}
	req, err := elastiq.DecodeRequest(msgs[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if o := req.Options; o.Threshold == nil || *o.Threshold != 0.55 || o.MinZ == nil || *o.MinZ != 3.5 || o.TopK != 2 {
		t.Errorf("request options = %+v, want threshold 0.55, min_z 3.5, top_k 2", o)
	}
	obj, err := h.store.Head(t.Context(), req.InputKey)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := elastiq.RequestFromInput(req.InputKey, obj); err != nil || rec.Options.TopK != 2 || rec.Options.MinZ == nil {
		t.Errorf("request from the stored input = %+v, %v; want its options", rec, err)
	}

	// The worker's answer, with its evidence, as GET shows it.
	threshold, certain, minZ, z := 0.55, 0.5, 3.5, 6.25
	res := elastiq.Result{ID: req.ID, FileName: req.FileName, Status: elastiq.StatusDone, Label: "Paul",
		SubmittedAt: req.SubmittedAt, Threshold: &threshold, Certain: &certain, MinZ: &minZ, Faces: []elastiq.Face{{
			Box: elastiq.Box{X1: 10, Y1: 12, X2: 50, Y2: 60}, Score: 0.98, Label: "Paul", Similarity: 0.91, Z: &z,
			Candidates: []elastiq.Candidate{{Label: "Paul", Similarity: 0.91}, {Label: "Bob", Similarity: 0.2}},
		}}}
	body, err := elastiq.EncodeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.responses.Send(t.Context(), body); err != nil {
		t.Fatal(err)
	}
	var rec Recognition
	elastiqtest.Eventually(t, "the result", func() bool {
		rec = h.recognition(t, StatusPath(req.ID))
		return rec.Status == elastiq.StatusDone
	})
	if rec.Threshold == nil || *rec.Threshold != 0.55 || len(rec.Faces) != 1 || len(rec.Faces[0].Candidates) != 2 ||
		rec.Faces[0].Box.X2 != 50 {
		t.Errorf("GET = %+v, want the threshold and the face with its two candidates", rec)
	}
	if g := h.get(t, StatusPath(req.ID)); !strings.Contains(g.body, `"threshold":0.55,"certain":0.5,"min_z":3.5`) ||
		!strings.Contains(g.body, `"similarity":0.91,"z":6.25,"candidates":[{"label":"Paul"`) {
		t.Errorf("GET body = %s, want the rule, the face's z and its candidates in JSON", g.body)
	}
}
