package awstest

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvPython names the Python interpreter that runs moto (default python3),
// as in scripts/test-servers.sh.
const EnvPython = "PYTHON"

// motoStartTimeout is how long moto may take to import and listen; it
// imports slowly on a loaded machine.
const motoStartTimeout = time.Minute

var motoListening = regexp.MustCompile(`Running on (http://127\.0\.0\.1:\d+)`)

// StartMoto starts a moto server of the test's own on a free loopback port
// and returns its URL; the server is killed at the end of the test. A test
// uses it instead of the shared server (Endpoint) when it changes the
// server's global state, as turning on IAM enforcement does. moto is the one
// scripts/test-servers.sh installs; when it cannot be started the test fails
// (or skips under -short).
func StartMoto(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short, unit tests only: starts a moto server")
	}
	python := cmp.Or(os.Getenv(EnvPython), "python3")
	cmd := exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0")
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	var out bytes.Buffer
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto (%s -m moto.server; scripts/test-servers.sh start installs it): %v", python, err)
	}
	exited := make(chan struct{})
	url := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := motoListening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case url <- m[1]:
				default:
				}
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})
	select {
	case u := <-url:
		if err := awaitMoto(u); err != nil {
			t.Fatalf("moto at %s: %v", u, err)
		}
		return u
	case <-exited:
		t.Fatalf("moto (%s -m moto.server) exited before it listened: %v\n%s", python, cmd.ProcessState, out.String())
	case <-time.After(motoStartTimeout):
		t.Fatalf("moto did not listen within %v", motoStartTimeout)
	}
	return ""
}

// awaitMoto waits until moto answers its own API.
func awaitMoto(url string) error {
	deadline := time.Now().Add(motoStartTimeout)
	for {
		resp, err := http.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /moto-api/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// EnforceIAM makes the moto server at url check every later request against
// the IAM policies of the caller's user (moto's reset-auth: the count of
// requests let through unchecked becomes zero). From then on only the keys
// of users created on the server are accepted, so create an administrator
// first.
func EnforceIAM(url string) error {
	resp, err := http.Post(strings.TrimRight(url, "/")+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil {
		return fmt.Errorf("enforce IAM: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("enforce IAM: POST /moto-api/reset-auth: %s", resp.Status)
	}
	return nil
}
