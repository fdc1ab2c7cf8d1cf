package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// BenchmarkDistributedBurst sends the course's 100 images at once through
// the distributed mode on this machine: the web program and two warm worker
// processes (one classifier session each) with the deployment's IAM users
// on a moto server (not enforcing IAM: its policy evaluation, in Python on
// every call, would dominate; TestDistributedMode runs under it), and
// memcached. moto serves one call at a time, so the burst's time follows the
// number of calls.
// It reports the time of a burst (ns/op) and the S3 and SQS calls the
// programs made per request (calls/request: what AWS bills), empty long
// polls included.
func BenchmarkDistributedBurst(b *testing.B) {
	d := deploy(b, 15*time.Second, 5, false)
	for i := range 2 {
		name := fmt.Sprintf("worker-%d", i+1)
		args := append(d.st.Args(), "-name", name, "-idle", "0", "-log-level", "warn")
		start(b, name, filepath.Join(d.bin, "worker"), d.workerKeys.Env(), append(args, d.faceFlags...)).
			await(b, regexp.MustCompile(`taking requests`))
	}
	url := d.startWeb(b)
	images := workload(b)
	burst(b.Context(), b, url, images) // warm: models, connections, caches
	before := len(d.st.Recorder.Calls())
	for b.Loop() {
		burst(b.Context(), b, url, images)
	}
	total, _ := callsPerRequest(d.st.Recorder.Calls()[before:], b.N*len(images), d.webKeys, d.workerKeys)
	b.ReportMetric(total, "calls/request")
}
