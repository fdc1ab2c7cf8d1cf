package web

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Managing the gallery (/v1/subjects): who the service recognises. A
// subject is a person, with one or more enrolled faces. Enrolling a face
// goes through the request queue like a recognition (a worker embeds it and
// stores it under gallery/faces/<subject>/<face ID>); listing and deleting
// work on the stored faces directly. Every change moves the gallery's
// revision forward, and every request sent afterwards carries it, so its
// worker answers with the change in (see elastiq.GalleryFacesPrefix).
//
// The routes need the admin token (Config.AdminToken) as a bearer token;
// without one configured they answer 403. Recognition stays open.

// revision is the gallery's latest change as this web tier knows it.
type revision struct {
	mu  sync.Mutex
	rev elastiq.RequestID
}

// bump records a change completed now: a revision later than every one
// before it. An ID's time is its order (to the millisecond; within one,
// the random rest decides), so a change in the same millisecond as the
// last one gets the next millisecond.
func (r *revision) bump(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last := r.rev.Time(); r.rev != "" && !now.Truncate(time.Millisecond).After(last) {
		now = last.Add(time.Millisecond)
	}
	r.rev = elastiq.NewRequestID(now)
}

func (r *revision) get() elastiq.RequestID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rev
}

// observe takes rev, a change made elsewhere, if it is later.
func (r *revision) observe(rev elastiq.RequestID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rev = max(r.rev, rev)
}

// RevisionCacheKey holds the gallery's latest change for web instances that
// share the cache (each with a response queue of its own): a change made
// through one is announced by the requests sent through every other.
const RevisionCacheKey = "gallery/revision"

// revisionShareTTL is how long the shared revision is kept: by then every
// worker has read the gallery again on its own (-gallery-sync, 5 min).
const revisionShareTTL = time.Hour

// galleryRevision is the latest change the requests sent now must be
// answered with: this instance's, or, with instances beside it, the shared
// one if later. A cache that does not answer leaves this instance's (the
// workers also read the gallery every few minutes).
func (s *Server) galleryRevision(ctx context.Context) elastiq.RequestID {
	if s.replyTo == "" {
		return s.revision.get()
	}
	b, err := s.cache.Get(ctx, RevisionCacheKey)
	if err == nil {
		if shared, err := elastiq.ParseRequestID(string(b)); err == nil {
			s.revision.observe(shared)
		}
	} else if !errors.Is(err, elastiq.ErrNotFound) {
		s.log.Warn("shared gallery revision unreadable; announcing this instance's", "err", err)
	}
	return s.revision.get()
}

// galleryChanged moves the revision on after a change completed, past the
// shared one too, and shares it.
func (s *Server) galleryChanged(ctx context.Context) {
	s.galleryRevision(ctx)
	s.revision.bump(s.now())
	if s.replyTo == "" {
		return
	}
	if err := s.cache.Set(ctx, RevisionCacheKey, []byte(s.revision.get()), revisionShareTTL); err != nil {
		s.log.Warn("gallery revision not shared: requests through other web instances may miss the change "+
			"until their workers read the gallery again", "err", err)
	}
}

// admin wraps a gallery route with the bearer token check.
func (s *Server) admin(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.AdminToken == "" {
			return fail(errForbidden, "managing the gallery is turned off: start the web tier with -admin-token or -admin-token-file")
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="elastiq gallery"`)
			return fail(errUnauthorized, "managing the gallery needs the admin token: Authorization: Bearer <token>")
		}
		return h(w, r)
	}
}

// subjectName reads and checks the {name} of the path.
func subjectName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := elastiq.ValidateSubject(name); err != nil {
		return "", fail(errInvalid, err.Error())
	}
	return name, nil
}

// EnrolledFace is the answer to POST /v1/subjects/{name}/faces.
type EnrolledFace struct {
	ID      elastiq.RequestID `json:"id"`
	Subject string            `json:"subject"`
	Box     elastiq.Box       `json:"box"`
	Score   float64           `json:"score"`
}

// handleEnroll is POST /v1/subjects/{name}/faces[?face=largest]: one image
// in form field file; its face is enrolled under name once a worker has
// embedded it (201, with the face's ID). An image without a face, or with
// several unless face=largest, is 400 with the reason.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) error {
	name, err := subjectName(r)
	if err != nil {
		return err
	}
	largest := false
	switch v := r.URL.Query().Get("face"); v {
	case "":
	case "largest":
		largest = true
	default:
		return fail(errInvalid, fmt.Sprintf("face=%q: the only choice is face=largest", v))
	}
	u, err := readUpload(w, r, s.cfg.MaxUploadBytes, []string{"file"}, "missing form file field \"file\"")
	if err != nil {
		return err
	}
	if err := s.images.check(&u); err != nil {
		return err
	}
	u.subject, u.largestFace = name, largest
	req, sub, err := s.accept(r.Context(), u, nil, true)
	setRequestID(w, req.ID)
	if err != nil {
		return err
	}
	defer sub.cancel()
	res, err := s.awaitResult(r, sub, req.ID, "enrolment "+string(req.ID))
	if err != nil {
		return err
	}
	if res.Status != elastiq.StatusDone || res.Enrolled == nil {
		reason := cmp.Or(res.Error, fmt.Sprintf("worker reported status %q without an enrolment", res.Status))
		return fail(errInvalid, fmt.Sprintf("%s not enrolled: %s", u.fileName, strings.TrimPrefix(reason, "cannot enrol: ")))
	}
	ctx, cancel := s.ioContext(r)
	defer cancel()
	s.galleryChanged(ctx)
	e := res.Enrolled
	w.Header().Set("Location", "/v1/subjects/"+name+"/faces/"+string(e.FaceID))
	writeJSON(w, http.StatusCreated, EnrolledFace{ID: e.FaceID, Subject: e.Subject, Box: e.Box, Score: e.Score})
	return nil
}

// subjectFaces lists the stored faces by subject.
func (s *Server) subjectFaces(r *http.Request, prefix string) (map[string][]elastiq.RequestID, error) {
	ctx, cancel := s.ioContext(r)
	defer cancel()
	keys, err := s.store.List(ctx, prefix)
	if err != nil {
		return nil, failCause(errUnavailable, "could not read the gallery; try again", fmt.Errorf("list %s: %w", prefix, err))
	}
	faces := map[string][]elastiq.RequestID{}
	for _, k := range keys {
		if subject, id, err := elastiq.ParseFaceKey(k); err == nil {
			faces[subject] = append(faces[subject], id)
		}
	}
	return faces, nil
}

// Subject is one person of the gallery, as GET /v1/subjects lists them.
type Subject struct {
	Name  string `json:"name"`
	Faces int    `json:"faces"`
}

// Subjects is a page of GET /v1/subjects; Next, when set, is the after=
// of the next page.
type Subjects struct {
	Subjects []Subject `json:"subjects"`
	Next     string    `json:"next,omitempty"`
}

// maxSubjectsPage is the largest limit= of GET /v1/subjects.
const maxSubjectsPage = 1000

// handleSubjects is GET /v1/subjects[?limit=N&after=NAME]: the subjects in
// name order, N a page (100 by default).
func (s *Server) handleSubjects(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSubjectsPage {
			return fail(errInvalid, fmt.Sprintf("limit %q: want a whole number from 1 to %d", v, maxSubjectsPage))
		}
		limit = n
	}
	after := q.Get("after")
	faces, err := s.subjectFaces(r, elastiq.GalleryFacesPrefix)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(faces))
	for name := range faces {
		if name > after {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	page := Subjects{Subjects: []Subject{}}
	for _, name := range names[:min(limit, len(names))] {
		page.Subjects = append(page.Subjects, Subject{Name: name, Faces: len(faces[name])})
	}
	if len(names) > limit {
		page.Next = names[limit-1]
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// SubjectFace is one enrolled face of a subject.
type SubjectFace struct {
	ID         elastiq.RequestID `json:"id"`
	EnrolledAt time.Time         `json:"enrolled_at,omitzero"`
}

// SubjectDetail is the answer to GET /v1/subjects/{name}.
type SubjectDetail struct {
	Name  string        `json:"name"`
	Faces []SubjectFace `json:"faces"`
}

// subject reads the {name} of the path and lists that subject's faces (none
// for no such subject).
func (s *Server) subject(r *http.Request) (string, []elastiq.RequestID, error) {
	name, err := subjectName(r)
	if err != nil {
		return "", nil, err
	}
	faces, err := s.subjectFaces(r, elastiq.SubjectPrefix(name))
	return name, faces[name], err
}

// handleSubject is GET /v1/subjects/{name}: the subject's faces, oldest
// first (a face seeded from a folder has no enrolment time).
func (s *Server) handleSubject(w http.ResponseWriter, r *http.Request) error {
	name, ids, err := s.subject(r)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fail(errNotFound, fmt.Sprintf("no subject %q", name))
	}
	d := SubjectDetail{Name: name}
	for _, id := range ids {
		f := SubjectFace{ID: id}
		if t := id.Time(); t.After(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) && !t.After(s.now().Add(time.Hour)) {
			f.EnrolledAt = t.UTC() // a request's ID; a seed's is a hash
		}
		d.Faces = append(d.Faces, f)
	}
	slices.SortFunc(d.Faces, func(a, b SubjectFace) int { return cmp.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, d)
	return nil
}

// handleDeleteSubject is DELETE /v1/subjects/{name}: all its faces (204).
func (s *Server) handleDeleteSubject(w http.ResponseWriter, r *http.Request) error {
	name, ids, err := s.subject(r)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fail(errNotFound, fmt.Sprintf("no subject %q", name))
	}
	return s.deleteFaces(w, r, name, ids)
}

// handleDeleteFace is DELETE /v1/subjects/{name}/faces/{id} (204).
func (s *Server) handleDeleteFace(w http.ResponseWriter, r *http.Request) error {
	id, err := elastiq.ParseRequestID(r.PathValue("id"))
	if err != nil {
		return fail(errInvalid, err.Error())
	}
	name, ids, err := s.subject(r)
	if err != nil {
		return err
	}
	if !slices.Contains(ids, id) {
		return fail(errNotFound, fmt.Sprintf("no face %s of subject %q", id, name))
	}
	return s.deleteFaces(w, r, name, []elastiq.RequestID{id})
}

// deleteFaces deletes the faces, then moves the revision on: a request
// sent after the answer is answered without them.
func (s *Server) deleteFaces(w http.ResponseWriter, r *http.Request, name string, ids []elastiq.RequestID) error {
	ctx, cancel := s.ioContext(r)
	defer cancel()
	var errs []error
	for _, id := range ids {
		if err := s.store.Delete(ctx, elastiq.FaceKey(name, id)); err != nil {
			errs = append(errs, err)
		}
	}
	s.galleryChanged(ctx) // some may be gone even if others failed
	if err := errors.Join(errs...); err != nil {
		return failCause(errUnavailable, "could not delete every face; try again", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
