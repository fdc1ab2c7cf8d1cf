package e2e

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/png"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	iampolicy "github.com/elastiq/elastiq/infra/iam"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/motoec2"
)

// What each policy grants that TestDistributedMode's programs do not use,
// keyed "Sid action", with the reason. Everything else a policy grants must
// be used, and every exception must stay unused (a stale one fails too).
var (
	webUnused = map[string]string{
		"Bundle s3:GetObject": "the web instance's boot script reads the bundle (infra/deploy), not a program",
		"Inputs s3:DeleteObject": "the web tier deletes an upload only when its request cannot be queued; " +
			"web's unit tests cover it (TestBackendFailures, \"queue fails\")",
		"TagOnLaunch ec2:CreateTags": "AWS authorizes the tags RunInstances puts on a new instance as ec2:CreateTags " +
			"(with ec2:CreateAction=RunInstances); moto does not check it",
		"PassWorkerRole iam:PassRole": "launching from a template with an instance profile passes the worker role; " +
			"moto checks no iam:PassRole and the test's template has no profile",
	}
	workerUnused = map[string]string{}

	// What moto cannot tell apart, keyed and explained as above: used, but
	// dropping it alone fails nothing here.
	webMotoBlind = map[string]string{
		"LaunchFromTemplate ec2:RunInstances": "on AWS RunInstances needs both RunInstances statements (one names the " +
			"template, image and network resources, the other the tagged instance); moto authorizes it once on \"*\", " +
			"so dropping either is left to infra/iam's unit tests",
		"LaunchTaggedWorkers ec2:RunInstances": "as LaunchFromTemplate's",
	}
)

// sometimes starts the reason of an exception to checkPolicyUse that a run
// may or may not use (its use depends on timing).
const sometimes = "sometimes: "

// checkPolicyUse checks, from the calls the recorder saw, that the program
// signing with keys was denied nothing, and that it used every action of
// every statement of its policy on every resource the statement names
// (EC2 actions, which moto authorizes on "*", on any resource), except
// those in unused, which must stay unused unless their reason starts with
// sometimes. So a permission the deployment lacks fails the test,
// and so does one it grants for nothing.
func checkPolicyUse(t *testing.T, st *awsstack.Enforcing, keys awsstack.Keys, policy iampolicy.Document, unused map[string]string) {
	t.Helper()
	var mine []awsstack.Call
	for _, c := range st.Recorder.Calls() {
		if c.AccessKeyID != keys.AccessKeyID {
			continue
		}
		if c.Denied() {
			t.Errorf("%s: %s on %s was denied (%d)", keys.User, c.Action, c.Resource, c.Status)
		}
		// A 404 was allowed too: the object or queue was not there.
		if c.Status < 300 || c.Status == 404 {
			mine = append(mine, c)
		}
	}
	used := func(action, resource string) bool {
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(resource), `\*`, ".*") + "$")
		for _, c := range mine {
			if c.Action == action && (strings.HasPrefix(action, "ec2:") || re.MatchString(c.Resource)) {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for _, s := range policy.Statement {
		for _, a := range s.Action {
			key := s.Sid + " " + a
			seen[key] = true
			var idle []string
			for _, r := range s.Resource {
				if !used(a, r) {
					idle = append(idle, r)
				}
			}
			why, excused := unused[key]
			switch {
			case len(idle) > 0 && !excused:
				t.Errorf("%s: statement %s grants %s on %v, which the programs never used: "+
					"a step is missing from the test, or the grant is not needed", keys.User, s.Sid, a, idle)
			case len(idle) == 0 && excused && !strings.HasPrefix(why, sometimes):
				t.Errorf("%s: statement %s's %s is listed as unused (%s) but was used: drop the exception", keys.User, s.Sid, a, why)
			}
		}
	}
	for key := range unused {
		if !seen[key] {
			t.Errorf("%s: exception %q names no action of the policy", keys.User, key)
		}
	}
}

// EnvDropAction names one action to drop from a program's policy, as
// "USER SID ACTION" (USER web, worker, or in the load-balanced layout
// scaler), for scripts/iam-teeth.sh: with any action dropped that is not
// listed as unused, TestDistributedMode (or TestLoadBalancedWebTier) must
// fail. "list" makes the test print the actions (listActions) and stop.
const EnvDropAction = "ELASTIQ_E2E_DROP_ACTION"

// listActions prints, for scripts/iam-teeth.sh, one line per action of each
// policy: "ACTION USER SID ACTION", and " skip: REASON" after the ones that
// dropping alone cannot fail the test (skip's).
func listActions(policies map[string]iampolicy.Document, skip map[string]map[string]string) {
	for _, user := range slices.Sorted(maps.Keys(policies)) {
		for _, s := range policies[user].Statement {
			for _, a := range s.Action {
				line := fmt.Sprintf("ACTION %s %s %s", user, s.Sid, a)
				if why, ok := skip[user][s.Sid+" "+a]; ok {
					line += " skip: " + why
				}
				fmt.Println(line)
			}
		}
	}
}

// dropAction returns policy without the action EnvDropAction names for
// user, if any.
func dropAction(t testing.TB, user string, policy iampolicy.Document) iampolicy.Document {
	f := strings.Fields(os.Getenv(EnvDropAction))
	if len(f) != 3 || f[0] != user {
		return policy
	}
	var out iampolicy.Document
	out.Version = policy.Version
	dropped := false
	for _, s := range policy.Statement {
		if s.Sid == f[1] {
			i := slices.Index(s.Action, f[2])
			if i >= 0 {
				s.Action = slices.Delete(slices.Clone(s.Action), i, i+1)
				dropped = true
			}
			if len(s.Action) == 0 {
				continue
			}
		}
		out.Statement = append(out.Statement, s)
	}
	if !dropped {
		t.Fatalf("%s=%q: %s's policy has no statement %s with %s", EnvDropAction, os.Getenv(EnvDropAction), user, f[1], f[2])
	}
	t.Logf("%s: dropped %s from statement %s", user, f[2], f[1])
	return out
}

// watchDenials returns a context that ends, with the denial as its cause,
// when the server denies a call signed with any of keys.
func watchDenials(t *testing.T, st *awsstack.Enforcing, keys ...awsstack.Keys) context.Context {
	ctx, cancel := context.WithCancelCause(t.Context())
	users := map[string]string{}
	for _, k := range keys {
		users[k.AccessKeyID] = k.User
	}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		seen := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			calls := st.Recorder.Calls()
			for _, c := range calls[seen:] {
				if user, ok := users[c.AccessKeyID]; ok && c.Denied() {
					cancel(fmt.Errorf("%s: %s on %s was denied (%d)", user, c.Action, c.Resource, c.Status))
					return
				}
			}
			seen = len(calls)
		}
	}()
	t.Cleanup(func() { cancel(nil) })
	return ctx
}

// logCallsPerRequest logs callsPerRequest.
func logCallsPerRequest(t *testing.T, calls []awsstack.Call, requests int, keys ...awsstack.Keys) {
	t.Helper()
	total, byAction := callsPerRequest(calls, requests, keys...)
	t.Logf("S3 and SQS calls per request: %.2f (%s)", total, byAction)
}

// callsPerRequest counts the calls to S3 and SQS that the programs signing
// with keys made, per request, in all and by program and action, empty long
// polls included (they are billed too). The fleet's and the metrics' calls
// (EC2, queue attributes) are left out: they depend on time, not on
// requests.
func callsPerRequest(calls []awsstack.Call, requests int, keys ...awsstack.Keys) (total float64, byAction string) {
	user := map[string]string{}
	for _, k := range keys {
		user[k.AccessKeyID] = k.User
	}
	counts := map[string]int{}
	n := 0
	for _, c := range calls {
		u, ok := user[c.AccessKeyID]
		if !ok || strings.HasPrefix(c.Action, "ec2:") || c.Action == "sqs:GetQueueAttributes" {
			continue
		}
		counts[u+" "+c.Action]++
		n++
	}
	var parts []string
	for _, a := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", a, float64(counts[a])/float64(requests)))
	}
	return float64(n) / float64(requests), strings.Join(parts, ", ")
}

// policyJSON is doc as IAM takes it.
func policyJSON(t testing.TB, doc iampolicy.Document) string {
	s, err := doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// launchTemplate creates the workers' launch template and returns its ID
// and the image it launches.
func launchTemplate(t testing.TB, cfg aws.Config) (id, image string) {
	ctx, cancel := context.WithTimeout(t.Context(), elastiqtest.Timeout)
	defer cancel()
	lt, err := motoec2.LaunchTemplate(ctx, cfg, elastiqtest.UniqueName(t))
	if err != nil {
		t.Fatal(err)
	}
	return lt.ID, lt.ImageID
}

// noise is a side x side PNG of random gray pixels: a valid image with no
// face, about side*side bytes.
func noise(t *testing.T, side int) image {
	img := stdimage.NewGray(stdimage.Rect(0, 0, side, side))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return image{name: "noise.png", data: buf.Bytes()}
}

// script writes an executable shell script into dir and returns its path.
func script(t testing.TB, dir, name, body string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// dumpLogs logs the end of every worker log in dir.
func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("worker %s:\n%s", filepath.Base(f), b)
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}
