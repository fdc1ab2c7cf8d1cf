package scaler

import (
	"net/http"
	"strconv"
)

// MaxNudgesPerPost bounds the count one POST /nudge may report, so that a
// bad client cannot inflate the arrival rate without bound in one call.
const MaxNudgesPerPost = 100_000

// NudgeHandler serves the scaler's HTTP interface for programs in other
// processes or on other machines, the web tier's -scaler-url:
//
//   - POST /nudge?n=N: N requests were accepted (default 1): s.NudgeN(N),
//     an evaluation now and the arrivals the policy's rate is measured from.
//     204 No Content; 400 for an N that is not 1 to MaxNudgesPerPost.
//   - GET /healthz: 200 "ok".
func NudgeHandler(s *Scaler) http.Handler {
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
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	return mux
}
