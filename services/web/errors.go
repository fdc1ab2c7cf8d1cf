package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// Kinds of failure a handler can return. Each maps to one HTTP status, in
// statusOf and nowhere else.
var (
	errInvalid      = errors.New("invalid request")
	errTooLarge     = errors.New("upload too large")
	errNotFound     = errors.New("not found")
	errMethod       = errors.New("method not allowed")
	errUnavailable  = errors.New("service unavailable")
	errPending      = errors.New("still pending")
	errFailed       = errors.New("recognition failed")
	errClientGone   = errors.New("client closed request")
	errTimeout      = errors.New("request timeout")
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
)

// statusClientClosed is nginx's status for a client that went away before
// the answer; it is never seen by that client, only in metrics.
const statusClientClosed = 499

// statusOf maps an error returned by a handler to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errInvalid):
		return http.StatusBadRequest
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, errUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, errPending):
		return http.StatusGatewayTimeout
	case errors.Is(err, errFailed):
		// The upload passed validation, so a failed classification is the
		// service's failure to answer, not a malformed request (422 would
		// tell clients not to retry, yet a classifier timeout is worth
		// a retry; the result's error string does not tell them apart).
		return http.StatusInternalServerError
	case errors.Is(err, errClientGone):
		return statusClientClosed
	case errors.Is(err, errTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// problem is an error a handler answers with: its kind decides the status,
// msg is what the client reads, and cause (if any) is logged, never shown.
type problem struct {
	kind  error
	msg   string
	cause error
}

func (p *problem) Error() string {
	if p.cause != nil {
		return p.msg + ": " + p.cause.Error()
	}
	return p.msg
}

func (p *problem) Unwrap() []error { return []error{p.kind, p.cause} }

// fail returns a problem of kind with a client message.
func fail(kind error, msg string) error { return &problem{kind: kind, msg: msg} }

// failCause returns a problem whose cause is logged but not shown.
func failCause(kind error, msg string, cause error) error {
	return &problem{kind: kind, msg: msg, cause: cause}
}

// publicMessage is what the client reads for err.
func publicMessage(err error) string {
	if p, ok := errors.AsType[*problem](err); ok {
		return p.msg
	}
	return "internal error"
}

// errorFormat is how a route writes errors: plain text for the course's
// `POST /` contract, JSON {"error": ...} for /v1.
type errorFormat int

const (
	plainErrors errorFormat = iota
	jsonErrors
)

// writeError answers err and logs it if it is the server's fault. Handlers
// return errors and never log them themselves.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, format errorFormat, err error) {
	status := statusOf(err)
	// The request's ID, once it has one (the handler set the header), so
	// that one grep of it tells the request's whole story.
	if id := w.Header().Get("X-Request-Id"); id != "" {
		log = log.With("id", id)
	}
	switch {
	case status == statusClientClosed:
		log.Debug("client went away", "method", r.Method, "path", r.URL.Path, "err", err)
	case errors.Is(err, errFailed):
		// The image's fault (no face found, ...), not the server's: one
		// client must not fill the log with errors.
		log.Info("recognition failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case status >= 500:
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	msg := publicMessage(err)
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if format == jsonErrors {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(struct {
			Error string `json:"error"`
		}{msg}) // a write error means the client is gone: nothing to do
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}
