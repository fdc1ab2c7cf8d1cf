package motofleet_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/embedded/motofleet"
)

// TestRunner follows one instance through launch, crash, stop, start and
// termination on the shared moto server. The worker is a test double: a
// shell that asks its metadata service for its instance ID and sleeps.
func TestRunner(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg, stack, fleet := testFleet(t, ctx)
	ids := make(chan string, 10) // what each worker read from its metadata service
	r, err := motofleet.Start(motofleet.Config{
		AWS: cfg, Stack: stack, Poll: 50 * time.Millisecond,
		LaunchReady: 300 * time.Millisecond, StartReady: 100 * time.Millisecond, RestartDelay: 200 * time.Millisecond,
		StopGrace: 5 * time.Second,
		Command: func(id, imds string) *exec.Cmd {
			ids <- instanceID(t, imds)
			return exec.Command("sleep", "600")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			r.Close(context.Background())
		}
	})

	launched, err := fleet.Launch(ctx, 1, "runner-test")
	if err != nil {
		t.Fatal(err)
	}
	id := launched[0].ID
	t0 := time.Now()
	if got := <-ids; got != id {
		t.Errorf("the worker's metadata service says %q, want %q", got, id)
	}
	if d := time.Since(t0); d < 250*time.Millisecond {
		t.Errorf("worker started %v after the launch, want after LaunchReady (300ms)", d)
	}
	pid := awaitPID(t, r, id, 0)

	// A crash: started again after RestartDelay.
	if err := r.Kill(id); err != nil {
		t.Fatal(err)
	}
	<-ids
	pid = awaitPID(t, r, id, pid)

	// A stop: SIGTERM, and no worker until the instance runs again.
	if err := fleet.Stop(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	elastiqtest.Eventually(t, "the stopped instance's worker ended", func() bool {
		w := r.Workers()
		return len(w) == 1 && w[0].State == elastiq.InstanceStopped && w[0].PID == 0
	})
	if err := fleet.Start(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	<-ids
	awaitPID(t, r, id, pid)
	starts := r.Starts()

	// Close terminates the instance and ends its worker.
	closed = true
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if list, err := fleet.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("after Close, List() = %v, %v; want no instance", list, err)
	}
	if starts != 3 {
		t.Errorf("Starts() = %d, want 3 (launch, restart after the crash, start)", starts)
	}
}

// testFleet returns the shared test server's configuration, a stack name
// of the test's own, and a fleet of that stack's workers with a launch
// template.
func testFleet(t *testing.T, ctx context.Context) (aws.Config, string, *ec2fleet.Fleet) {
	t.Helper()
	cfg := elastiqtest.AWSConfig(t)
	stack := elastiqtest.UniqueName(t)
	fleet, err := ec2fleet.New(cfg, ec2fleet.Config{Tags: ec2fleet.WorkerTags(stack),
		LaunchTemplateID: elastiqtest.LaunchTemplate(ctx, t, cfg)})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, stack, fleet
}

// awaitPID waits until instance id's worker runs with a PID other than old.
func awaitPID(t *testing.T, r *motofleet.Runner, id string, old int) int {
	t.Helper()
	var pid int
	elastiqtest.Eventually(t, "a worker runs for "+id, func() bool {
		for _, w := range r.Workers() {
			if w.ID == id && w.PID != 0 && w.PID != old {
				pid = w.PID
				return true
			}
		}
		return false
	})
	return pid
}

// instanceID asks an IMDSv2 service for the instance ID.
func instanceID(t *testing.T, imds string) string {
	req, _ := http.NewRequest(http.MethodPut, imds+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return ""
	}
	token, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, imds+"/latest/meta-data/instance-id", nil)
	req.Header.Set("X-aws-ec2-metadata-token", string(token))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	id, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(id))
}

// TestRunnerStartBetweenLooks: a worker that stops its own instance and
// exits 0 gets a new worker when the instance runs again, even when the
// scaler started it again before the runner looked (moto stops and starts at
// once). The worker is a test double: a shell that exits 0 when told to.
func TestRunnerStartBetweenLooks(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg, stack, fleet := testFleet(t, ctx)
	quit := filepath.Join(t.TempDir(), "quit")
	r, err := motofleet.Start(motofleet.Config{
		AWS: cfg, Stack: stack, Poll: time.Second, StartReady: 100 * time.Millisecond, StopGrace: 5 * time.Second,
		Command: func(id, imds string) *exec.Cmd {
			return exec.Command("sh", "-c", `while [ ! -e "$1" ]; do sleep 0.02; done; rm -f "$1"`, "sh", quit)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	launched, err := fleet.Launch(ctx, 1, "between-looks")
	if err != nil {
		t.Fatal(err)
	}
	id := launched[0].ID
	awaitPID(t, r, id, 0)

	// Between two looks: the worker stops its instance and exits 0, and
	// the scaler starts the instance again.
	if err := fleet.Stop(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(quit, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	elastiqtest.Eventually(t, "the worker exited", func() bool {
		w := r.Workers()
		return len(w) == 1 && w[0].PID == 0
	})
	if err := fleet.Start(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	awaitPID(t, r, id, 0)
	if n := r.Starts(); n != 2 {
		t.Errorf("Starts() = %d, want 2", n)
	}
}
