package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// BenchmarkDistributedBurst sends the course's 100 images at once through
// the distributed mode on this machine: the web program and two warm worker
// processes with the deployment's IAM users on a moto server (not enforcing
// IAM: its policy evaluation, in Python on every call, would dominate;
// TestDistributedMode runs under it), and memcached. moto serves one call at
// a time, so the burst's time follows the number of calls.
//
// It reports the time of a burst (ns/op) and the S3 and SQS calls the
// programs made per request (calls/request: what AWS bills), empty long
// polls included, with the face model (one classifier session per worker)
// and with a test double of it (a script that looks the label up by the
// image's checksum), which shows what the pipeline itself costs.
func BenchmarkDistributedBurst(b *testing.B) {
	images := workload(b)
	b.Run("classifier=face", func(b *testing.B) {
		d := deploy(b, 15*time.Second, 5, false, oneWeb)
		benchBurst(b, d, images, d.faceFlags)
	})
	b.Run("classifier=lookup", func(b *testing.B) {
		d := deploy(b, 15*time.Second, 5, false, oneWeb)
		var table strings.Builder
		for _, img := range images {
			fmt.Fprintf(&table, "%x %s\n", sha256.Sum256(img.data), img.label)
		}
		dir := b.TempDir()
		labels := filepath.Join(dir, "labels")
		if err := os.WriteFile(labels, []byte(table.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		lookup := script(b, dir, "lookup.sh", `grep "^$(sha256sum "$1" | cut -d' ' -f1) " `+labels+` | cut -d' ' -f2`)
		benchBurst(b, d, images, []string{"-classifier", "exec", "-exec-command", lookup + " {}"})
	})
}

// benchBurst starts two workers with classifier flags and the web program,
// then times bursts of images.
func benchBurst(b *testing.B, d *deployment, images []image, classifier []string) {
	for i := range 2 {
		name := fmt.Sprintf("worker-%d", i+1)
		args := append(d.st.Args(), "-name", name, "-idle", "0", "-log-level", "warn")
		start(b, name, filepath.Join(d.bin, "worker"), d.workerKeys.Env(), append(args, classifier...)).
			await(b, regexp.MustCompile(`taking requests`))
	}
	_, url := d.startWeb(b)
	burst(b.Context(), b, url, images) // warm: models, connections, caches
	before := len(d.st.Recorder.Calls())
	for b.Loop() {
		burst(b.Context(), b, url, images)
	}
	total, _ := callsPerRequest(d.st.Recorder.Calls()[before:], b.N*len(images), d.webKeys, d.workerKeys)
	b.ReportMetric(total, "calls/request")
}
