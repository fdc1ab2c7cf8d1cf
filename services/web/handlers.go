package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Form fields that carry the image. The course's two client generations use
// myfile and inputFile; /v1 also takes the conventional file.
const (
	fieldMyFile    = "myfile"
	fieldInputFile = "inputFile"
	fieldFile      = "file"
	// The two images of POST /v1/verify.
	fieldFirst  = "first"
	fieldSecond = "second"
)

// handlerFunc is a handler that returns its error for route to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route adapts h: an error it returns is answered in format by writeError.
func (s *Server) route(format errorFormat, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, r, s.log, format, err)
		}
	})
}

func methodNotAllowed(allowed ...string) handlerFunc {
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allow)
		return fail(errMethod, fmt.Sprintf("method %s not allowed; use %s", r.Method, allow))
	}
}

// StatusPath is the path of a request's status: GET it for the result.
func StatusPath(id elastiq.RequestID) string { return "/v1/recognitions/" + string(id) }

// handleRecognize is POST /: upload, wait for the result, answer it as
// plain text.
func (s *Server) handleRecognize(w http.ResponseWriter, r *http.Request) error {
	start := s.now()
	u, err := s.readImage(w, r, []string{fieldMyFile, fieldInputFile}, `missing form file field "myfile" (or inputFile)`)
	if err != nil {
		return err
	}
	req, sub, err := s.accept(r.Context(), u, nil, true)
	setRequestID(w, req.ID)
	if err != nil {
		return err
	}
	defer sub.cancel()
	res, err := s.awaitResult(r, sub, req.ID, "request "+string(req.ID)+" for "+u.fileName)
	if err != nil {
		return err
	}
	if res.Status != elastiq.StatusDone {
		reason := res.Error
		if reason == "" {
			reason = fmt.Sprintf("worker reported status %q", res.Status)
		}
		return fail(errFailed, fmt.Sprintf("could not recognise %s (request %s): %s", u.fileName, req.ID, reason))
	}
	body := res.Label
	if u.field == fieldInputFile {
		body = strings.TrimSuffix(u.fileName, path.Ext(u.fileName)) + ":" + res.Label
	}
	// Where the time went, for clients and benchmarks: the server's whole
	// handling (upload to answer) and the classifier's part of it.
	w.Header().Set("Server-Timing", fmt.Sprintf("total;dur=%.3f, classify;dur=%.3f",
		millis(s.now().Sub(start)), millis(res.Classify)))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, body) // a write error means the client is gone
	return nil
}

// awaitResult waits up to SyncTimeout for sub's result. Past it, the answer
// is 504 naming what (the request) and where to fetch its result; a client
// that goes away gets nothing, and the request goes on (its result will be
// cached and stored).
func (s *Server) awaitResult(r *http.Request, sub *subscription, id elastiq.RequestID, what string) (elastiq.Result, error) {
	timer := time.NewTimer(s.cfg.SyncTimeout)
	defer timer.Stop()
	select {
	case <-sub.Done():
		return sub.Result(), nil
	case <-timer.C:
		return elastiq.Result{}, fail(errPending, fmt.Sprintf("%s is still pending after %v; fetch its result at %s",
			what, s.cfg.SyncTimeout, StatusPath(id)))
	case <-r.Context().Done():
		return elastiq.Result{}, failCause(errClientGone, "client went away", fmt.Errorf("wait for %s: %w", id, r.Context().Err()))
	}
}

// Verified is the answer to POST /v1/verify.
type Verified struct {
	ID elastiq.RequestID `json:"id"`
	elastiq.Verification
	StatusURL string `json:"status_url"`
}

// handleVerify is POST /v1/verify[?threshold=T]: two images, in form file
// fields first and second; answers whether their largest faces are the same
// person, once a worker has compared them (within SyncTimeout; past it, 504
// with the ID and status URL, as POST / does).
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) error {
	opts, err := parseOptions(r.URL.Query())
	if err != nil {
		return err
	}
	a, b, err := readPair(w, r, s.cfg.MaxUploadBytes, fieldFirst, fieldSecond)
	if err != nil {
		return err
	}
	for _, u := range []*upload{&a, &b} {
		if err := s.images.check(u); err != nil {
			return err
		}
	}
	a.options = opts
	req, sub, err := s.accept(r.Context(), a, &b, true)
	setRequestID(w, req.ID)
	if err != nil {
		return err
	}
	defer sub.cancel()
	res, err := s.awaitResult(r, sub, req.ID, "verification "+string(req.ID))
	if err != nil {
		return err
	}
	if res.Status != elastiq.StatusDone || res.Verification == nil {
		reason := cmp.Or(res.Error, fmt.Sprintf("worker reported status %q without a verification", res.Status))
		return fail(errFailed, fmt.Sprintf("could not verify %s and %s (request %s): %s", a.fileName, b.fileName, req.ID, reason))
	}
	writeJSON(w, http.StatusOK, Verified{ID: req.ID, Verification: *res.Verification, StatusURL: StatusPath(req.ID)})
	return nil
}

// parseOptions reads a recognition's options from its query: threshold (a
// cosine similarity, -1 to 1), min_z (0 to elastiq.MaxMinZ) and top_k (1
// to elastiq.MaxTopK).
func parseOptions(q url.Values) (elastiq.Options, error) {
	var o elastiq.Options
	if v := q.Get("threshold"); v != "" {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return o, fail(errInvalid, fmt.Sprintf("threshold %q: want a number from -1 to 1", v))
		}
		o.Threshold = &t
	}
	if v := q.Get("min_z"); v != "" {
		z, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return o, fail(errInvalid, fmt.Sprintf("min_z %q: want a number from 0 to %d", v, elastiq.MaxMinZ))
		}
		o.MinZ = &z
	}
	if v := q.Get("top_k"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			return o, fail(errInvalid, fmt.Sprintf("top_k %q: want a whole number from 1 to %d", v, elastiq.MaxTopK))
		}
		o.TopK = k
	}
	if err := o.Validate(); err != nil {
		return o, fail(errInvalid, err.Error())
	}
	return o, nil
}

// setRequestID names the request in the answer's X-Request-Id, once it
// has an ID: on success, and on a failure to accept it too, so that the
// client can quote it and the error's log line (writeError) carries it.
func setRequestID(w http.ResponseWriter, id elastiq.RequestID) {
	if id != "" {
		w.Header().Set("X-Request-Id", string(id))
	}
}

// Accepted is the answer to POST /v1/recognitions.
type Accepted struct {
	ID        elastiq.RequestID `json:"id"`
	StatusURL string            `json:"status_url"`
}

// handleSubmit is POST /v1/recognitions[?threshold=T&min_z=Z&top_k=K]: upload and
// answer 202 at once.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) error {
	opts, err := parseOptions(r.URL.Query())
	if err != nil {
		return err
	}
	u, err := s.readImage(w, r, []string{fieldFile, fieldMyFile, fieldInputFile}, `missing form file field "file" (or myfile, inputFile)`)
	if err != nil {
		return err
	}
	u.options = opts
	req, _, err := s.accept(r.Context(), u, nil, false)
	setRequestID(w, req.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", StatusPath(req.ID))
	writeJSON(w, http.StatusAccepted, Accepted{ID: req.ID, StatusURL: StatusPath(req.ID)})
	return nil
}

// handleGet is GET /v1/recognitions/{id}[?wait=30s].
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) error {
	id, err := elastiq.ParseRequestID(r.PathValue("id"))
	if err != nil {
		return fail(errInvalid, fmt.Sprintf("malformed request id %q", r.PathValue("id")))
	}
	wait, err := parseWait(r.URL.Query().Get("wait"), s.cfg.MaxWait)
	if err != nil {
		return err
	}
	var sub *subscription
	if wait > 0 {
		// Subscribe before looking up, so a result that arrives in
		// between is not missed.
		sub = s.hub.subscribe(id)
		defer sub.cancel()
	}
	res, replyTo, err := s.lookup(r.Context(), id)
	if err != nil {
		return err
	}
	if res.Status == elastiq.StatusPending && sub != nil {
		if res, err = s.awaitPending(r.Context(), sub, res, replyTo != s.replyTo, wait); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, recognitionOf(res))
	return nil
}

// Polls of a request whose result goes to another web instance: the cache
// (where that instance puts it) every foreignCachePoll, and output/ (where
// the worker puts it, also when that instance is gone) every
// foreignOutputPoll.
const (
	foreignCachePoll  = 250 * time.Millisecond
	foreignOutputPoll = 2 * time.Second
)

// awaitPending waits up to wait for a pending request's result: woken by
// sub when the result comes to this instance's queue; for a request
// another instance accepted (foreign), whose result goes to that
// instance's queue, by polling the cache and output/. Past wait, it is still
// pending.
func (s *Server) awaitPending(ctx context.Context, sub *subscription, pending elastiq.Result, foreign bool, wait time.Duration) (elastiq.Result, error) {
	id := pending.ID
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var poll <-chan time.Time
	if foreign {
		t := time.NewTicker(foreignCachePoll)
		defer t.Stop()
		poll = t.C
	}
	lastOutput := s.now()
	for {
		select {
		case <-sub.Done():
			return sub.Result(), nil
		case <-timer.C:
			return pending, nil
		case <-poll:
			output := s.now().Sub(lastOutput) >= foreignOutputPoll
			if output {
				lastOutput = s.now()
			}
			pctx, cancel := context.WithTimeout(ctx, s.cfg.IOTimeout)
			res, ok, err := s.finished(pctx, id, output)
			cancel()
			if ok || err != nil {
				return res, err
			}
		case <-ctx.Done():
			return elastiq.Result{}, failCause(errClientGone, "client went away", fmt.Errorf("wait for %s: %w", id, ctx.Err()))
		}
	}
}

// parseWait reads ?wait= as a Go duration ("30s") or whole seconds ("30"),
// capped at max.
func parseWait(v string, max time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, fail(errInvalid, fmt.Sprintf("wait %q: want a duration like 30s", v))
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, fail(errInvalid, fmt.Sprintf("wait %q: want a duration >= 0", v))
	}
	return min(d, max), nil
}

// handleHealthz is GET /healthz: 200 "ok", or 503 naming what is
// unhealthy (the object store, after an upload could not be stored).
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkStore(r.Context()); err != nil {
		return failCause(errUnavailable, "unhealthy: the object store failed: "+err.Error(), err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
	return nil
}

// readImage reads the upload from one of fields and validates it as an
// image, before anything is stored or sent.
func (s *Server) readImage(w http.ResponseWriter, r *http.Request, fields []string, missing string) (upload, error) {
	u, err := readUpload(w, r, s.cfg.MaxUploadBytes, fields, missing)
	if err != nil {
		return upload{}, err
	}
	if err := s.images.check(&u); err != nil {
		return upload{}, err
	}
	return u, nil
}

// accept stores a validated upload under input/<id> and sends its request.
// With subscribe, the returned subscription (registered before the send, so
// no result is missed) must be canceled by the caller. The client going away
// does not cut accept short: once started, a request is either wholly
// accepted or reported as failed.
func (s *Server) accept(ctx context.Context, u upload, second *upload, subscribe bool) (elastiq.Request, *subscription, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.IOTimeout)
	defer cancel()
	now := s.now()
	id := elastiq.NewRequestID(now)
	req := elastiq.Request{
		ID:          id,
		InputKey:    elastiq.InputKey(id),
		FileName:    u.fileName,
		ContentType: u.contentType,
		SubmittedAt: now,
		Options:     u.options,
		// The worker answers with the gallery's changes made so far.
		GalleryRevision: s.galleryRevision(ctx),
		ReplyTo:         s.replyTo,
	}
	if second != nil {
		req.Kind, req.SecondKey = elastiq.KindVerify, elastiq.SecondInputKey(id)
	}
	if u.subject != "" {
		req.Kind, req.Subject, req.LargestFace = elastiq.KindEnroll, u.subject, u.largestFace
	}
	msg := req
	if len(u.body) <= s.cfg.InlineMaxBytes && (second == nil || len(second.body) <= s.cfg.InlineMaxBytes) {
		msg.Image = u.body
		if second != nil {
			msg.Second = second.body
		}
	}
	body, err := elastiq.EncodeRequest(msg)
	if err != nil {
		return req, nil, fmt.Errorf("encode request %s: %w", id, err)
	}
	// Not accepted, so not kept: a restart's recovery must not run it.
	var stored []string
	undo := func(err error) error {
		for _, key := range stored {
			if derr := s.store.Delete(ctx, key); derr != nil {
				err = errors.Join(err, fmt.Errorf("delete input %s: %w", key, derr))
			}
		}
		return err
	}
	// The second image first: the first, with the request's metadata, is
	// what recovery reads as accepted.
	if second != nil {
		obj := elastiq.Object{Body: second.body, ContentType: second.contentType,
			Metadata: map[string]string{elastiq.MetaFileName: second.fileName}}
		if err := s.store.Put(ctx, req.SecondKey, obj); err != nil {
			return req, nil, failCause(errUnavailable, "could not store the upload, so it was not accepted; try again",
				fmt.Errorf("put input %s: %w", req.SecondKey, err))
		}
		stored = append(stored, req.SecondKey)
	}
	obj := elastiq.Object{Body: u.body, ContentType: u.contentType, Metadata: elastiq.InputMetadata(req)}
	err = s.store.Put(ctx, req.InputKey, obj)
	s.storeHealth.record(err, s.now())
	if err != nil {
		return req, nil, failCause(errUnavailable, "could not store the upload, so it was not accepted; try again",
			undo(fmt.Errorf("put input %s: %w", req.InputKey, err)))
	}
	stored = append(stored, req.InputKey)
	var sub *subscription
	if subscribe {
		sub = s.hub.subscribe(id)
	}
	if err := s.requests.Send(ctx, body); err != nil {
		if sub != nil {
			sub.cancel()
		}
		return req, nil, failCause(errUnavailable, "could not queue the request, so it was not accepted; try again",
			undo(fmt.Errorf("send request %s: %w", id, err)))
	}
	s.log.Info("request accepted", "id", id, "file", u.fileName, "bytes", len(u.body), "inline", msg.Image != nil,
		"kind", cmp.Or(req.Kind, "recognize"))
	s.dash.accepted()
	if s.onAccepted != nil {
		s.onAccepted()
	}
	return req, sub, nil
}

// Recognition is the JSON state of a request: GET /v1/recognitions/{id}.
type Recognition struct {
	ID       elastiq.RequestID `json:"id"`
	FileName string            `json:"file_name"`
	Status   elastiq.Status    `json:"status"`
	Label    string            `json:"label"`
	Error    string            `json:"error"`
	Timings  Timings           `json:"timings"`
	Worker   string            `json:"worker"`
	// Deliveries is how many times the request was delivered to a worker
	// before this answer (more than 1: a worker failed or was too slow).
	Deliveries int `json:"deliveries,omitempty"`
	// Threshold is the similarity the label was decided at, and Faces
	// every face found, largest first, with its box, detection score,
	// label, similarity and nearest people (from the face classifier).
	Threshold *float64 `json:"threshold,omitempty"`
	// Certain and MinZ are the rest of the rule the labels were decided
	// by: below the Certain similarity, a name also needs a face's z to
	// reach MinZ (0: no z needed).
	Certain *float64       `json:"certain,omitempty"`
	MinZ    *float64       `json:"min_z,omitempty"`
	Faces   []elastiq.Face `json:"faces,omitempty"`
	// Verification is the answer of POST /v1/verify.
	Verification *elastiq.Verification `json:"verification,omitempty"`
}

// Timings of a request. Times not reached yet are omitted, and so are the
// durations that need them.
type Timings struct {
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	// QueueMS is from submission to a worker starting on it.
	QueueMS *float64 `json:"queue_ms,omitempty"`
	// ClassifyMS is the classifier alone.
	ClassifyMS *float64 `json:"classify_ms,omitempty"`
	// TotalMS is from submission to the worker finishing.
	TotalMS *float64 `json:"total_ms,omitempty"`
}

func recognitionOf(r elastiq.Result) Recognition {
	t := Timings{SubmittedAt: r.SubmittedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
	ms := func(d time.Duration) *float64 {
		v := float64(d) / float64(time.Millisecond)
		return &v
	}
	if !r.SubmittedAt.IsZero() && !r.StartedAt.IsZero() {
		t.QueueMS = ms(r.StartedAt.Sub(r.SubmittedAt))
	}
	if r.Status != elastiq.StatusPending {
		t.ClassifyMS = ms(r.Classify)
	}
	if !r.SubmittedAt.IsZero() && !r.FinishedAt.IsZero() {
		t.TotalMS = ms(r.FinishedAt.Sub(r.SubmittedAt))
	}
	return Recognition{
		ID:         r.ID,
		FileName:   r.FileName,
		Status:     r.Status,
		Label:      r.Label,
		Error:      r.Error,
		Timings:    t,
		Worker:     r.Worker,
		Deliveries: r.Deliveries,
		Threshold:  r.Threshold,
		Certain:    r.Certain,
		MinZ:       r.MinZ,
		Faces:      r.Faces,

		Verification: r.Verification,
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a write error means the client is gone
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
