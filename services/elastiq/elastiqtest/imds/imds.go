// Package imds is a test double of the EC2 instance metadata service, for
// tests and for the demo fleet (motofleet) whose workers ask it who they
// are. It has IMDSv2 only: a session token from PUT /latest/api/token, then
// the instance ID to GET /latest/meta-data/instance-id with that token;
// anything else is 401.
package imds

import (
	"io"
	"net/http"
)

// token is the one session token the double hands out.
const token = "elastiq-imds-double"

// Handler answers as the metadata service of instance id.
func Handler(id string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
			io.WriteString(w, token)
		case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/instance-id" &&
			r.Header.Get("X-aws-ec2-metadata-token") == token:
			io.WriteString(w, id)
		default:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		}
	})
}
