package web

import "net/http"

// routes lists every route of the web tier.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	// The course's workload contract: field myfile answers the bare label,
	// field inputFile answers "test_00:Paul". Other methods on / get the
	// ServeMux's own 405.
	mux.Handle("POST /{$}", s.route(plainErrors, s.handleRecognize))

	mux.Handle("POST /v1/recognitions", s.route(jsonErrors, s.handleSubmit))
	mux.Handle("GET /v1/recognitions/{id}", s.route(jsonErrors, s.handleGet))
	mux.Handle("POST /v1/verify", s.route(jsonErrors, s.handleVerify))
	// Wrong methods on /v1 answer 405 in JSON like every other /v1 error.
	mux.Handle("/v1/recognitions", s.route(jsonErrors, methodNotAllowed(http.MethodPost)))
	mux.Handle("/v1/recognitions/{id}", s.route(jsonErrors, methodNotAllowed(http.MethodGet, http.MethodHead)))
	mux.Handle("/v1/verify", s.route(jsonErrors, methodNotAllowed(http.MethodPost)))

	// The gallery: who is recognised (subjects.go), with the admin token.
	mux.Handle("POST /v1/subjects/{name}/faces", s.route(jsonErrors, s.admin(s.handleEnroll)))
	mux.Handle("GET /v1/subjects", s.route(jsonErrors, s.admin(s.handleSubjects)))
	mux.Handle("GET /v1/subjects/{name}", s.route(jsonErrors, s.admin(s.handleSubject)))
	mux.Handle("DELETE /v1/subjects/{name}", s.route(jsonErrors, s.admin(s.handleDeleteSubject)))
	mux.Handle("DELETE /v1/subjects/{name}/faces/{id}", s.route(jsonErrors, s.admin(s.handleDeleteFace)))
	mux.Handle("/v1/subjects", s.route(jsonErrors, methodNotAllowed(http.MethodGet, http.MethodHead)))
	mux.Handle("/v1/subjects/{name}", s.route(jsonErrors, methodNotAllowed(http.MethodGet, http.MethodHead, http.MethodDelete)))
	mux.Handle("/v1/subjects/{name}/faces", s.route(jsonErrors, methodNotAllowed(http.MethodPost)))
	mux.Handle("/v1/subjects/{name}/faces/{id}", s.route(jsonErrors, methodNotAllowed(http.MethodDelete)))

	mux.Handle("GET /healthz", s.route(plainErrors, s.handleHealthz))
	mux.Handle("GET /metrics", s.route(plainErrors, s.handleMetrics))

	// The live dashboard: the page and its files, and the timeline it
	// draws (dashboard.go).
	mux.Handle("GET /dashboard", dashboardAssets())
	mux.Handle("GET /dashboard/", dashboardAssets())
	mux.Handle("GET /dashboard/series", s.route(jsonErrors, s.handleDashboardSeries))
	return mux
}
