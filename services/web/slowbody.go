package web

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// paceBody holds a request body to a pace: it may go at most stall without
// a byte, and must average at least minRate bytes a second after the first
// stall (a slow but honest upload of 10 MiB at 64 KiB/s takes 160 s and is
// served; a client that opens uploads and stalls, or trickles a byte now
// and then, holds its connection and buffer for at most stall). It sets the
// connection's read deadline as bytes arrive; a body read past it fails
// with os.ErrDeadlineExceeded, which the handlers answer 408 (errTimeout).
type paceBody struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	stall    time.Duration
	minRate  float64 // bytes a second
	received int64
	ended    bool
}

// paceUploads applies paceBody to the requests of next that have a body.
func (s *Server) paceUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			p := &paceBody{body: r.Body, rc: http.NewResponseController(w), start: time.Now(),
				stall: s.cfg.BodyStallTimeout, minRate: float64(s.cfg.MinUploadRate)}
			p.extend()
			r.Body = p
		}
		next.ServeHTTP(w, r)
	})
}

// Read reads at the pace. At the end of the body the deadline is lifted:
// the server then watches the idle connection for the client going away
// (while a request waits for its result), and must not take the deadline
// for that. A body that does not end (it declared more than it sent, and
// stalls) keeps it, so that the server's discard of its rest, before the
// answer, cannot wait on the stall.
func (p *paceBody) Read(b []byte) (int, error) {
	n, err := p.body.Read(b)
	if p.ended {
		return n, err
	}
	if n > 0 {
		p.received += int64(n)
		p.extend()
	}
	if errors.Is(err, io.EOF) {
		p.ended = true
		_ = p.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (p *paceBody) Close() error { return p.body.Close() }

// extend moves the read deadline to the earlier of a stall from now and
// the time the bytes received so far allow at the minimum rate.
func (p *paceBody) extend() {
	deadline := time.Now().Add(p.stall)
	if p.minRate > 0 {
		byRate := p.start.Add(p.stall + time.Duration(float64(p.received)/p.minRate*float64(time.Second)))
		if byRate.Before(deadline) {
			deadline = byRate
		}
	}
	// A connection that cannot take deadlines (a test's recorder) reads
	// without them.
	_ = p.rc.SetReadDeadline(deadline)
}

// isBodyTimeout tells whether err is a body read cut by paceBody.
func isBodyTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
