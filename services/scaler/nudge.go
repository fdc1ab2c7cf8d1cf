package scaler

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// MaxNudgesPerPost bounds the count one POST /nudge may report, so that a
// bad client cannot inflate the arrival rate without bound in one call.
const MaxNudgesPerPost = 100_000

// Handler serves the scaler's HTTP interface for programs in other
// processes or on other machines, the web tier's -scaler-url:
//
//   - POST /nudge?n=N: N requests were accepted (default 1): s.NudgeN(N),
//     an evaluation now and the arrivals the policy's rate is measured from.
//     204 No Content; 400 for an N that is not 1 to MaxNudgesPerPost.
//   - GET /report?since=T: s.ScalingReport as JSON (elastiq.ScalingReport):
//     the fleet's usage and the decisions that acted after T (RFC 3339;
//     default: all that are kept). 400 for a T that does not parse.
//   - GET /healthz: 200 "ok".
func Handler(s *Scaler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /nudge", func(w http.ResponseWriter, r *http.Request) {
		n := 1
		if v := r.URL.Query().Get("n"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxNudgesPerPost {
				http.Error(w, "n: want a whole number from 1 to "+strconv.Itoa(MaxNudgesPerPost), http.StatusBadRequest)
				return
			}
		}
		s.NudgeN(n)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			var err error
			if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
				http.Error(w, "since: want a time in RFC 3339 form, such as 2026-11-29T12:00:00Z", http.StatusBadRequest)
				return
			}
		}
		rep, err := s.ScalingReport(r.Context(), since)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	return mux
}
