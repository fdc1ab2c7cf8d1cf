package deploy

import (
	"bufio"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unitFile is a parsed unit: section -> key -> values (a key may repeat).
type parsedUnit map[string]map[string][]string

func parseUnit(t *testing.T, text string) parsedUnit {
	t.Helper()
	u := parsedUnit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if _, dup := u[section]; dup {
				t.Fatalf("section [%s] twice", section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %q: not key=value in a section", line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the single value of key in section.
func (u parsedUnit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) != 1 {
		t.Fatalf("[%s] %s = %q, want one value", section, key, vs)
	}
	return vs[0]
}

// TestUnits checks what every unit must have, and what each one is for.
func TestUnits(t *testing.T) {
	required := map[string]string{
		"Restart":                 "on-failure",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"SystemCallFilter":        "@system-service",
	}
	tests := []struct {
		unit      Unit
		user      string
		execStart string
		envFile   string
	}{
		{MemcachedUnit(), "memcached", "/usr/bin/memcached -l 127.0.0.1 -p 11211 -U 0 -m 64 -c 1024", ""},
		{WebUnit(), User, "/opt/elastiq/bin/web", "/etc/elastiq/web.env"},
		{ScalerUnit(), User, "/opt/elastiq/bin/scaler -terminate-workers-with-host", "/etc/elastiq/scaler.env"},
		{WorkerUnit(), User, "/opt/elastiq/bin/worker -self-stop -grace 25s", "/etc/elastiq/worker.env"},
	}
	if len(Units()) != len(tests) {
		t.Fatalf("Units() has %d units, the test knows %d", len(Units()), len(tests))
	}
	for i, tc := range tests {
		t.Run(tc.unit.Name, func(t *testing.T) {
			if Units()[i].Name != tc.unit.Name {
				t.Errorf("Units()[%d] = %s, want %s", i, Units()[i].Name, tc.unit.Name)
			}
			u := parseUnit(t, tc.unit.Text)
			if d := u.one(t, "Unit", "Description"); d == "" {
				t.Error("no Description")
			}
			if got := u.one(t, "Install", "WantedBy"); got != "multi-user.target" {
				t.Errorf("WantedBy = %q, want multi-user.target", got)
			}
			if got := u.one(t, "Service", "ExecStart"); got != tc.execStart {
				t.Errorf("ExecStart = %q, want %q", got, tc.execStart)
			}
			if got := u.one(t, "Service", "User"); got != tc.user {
				t.Errorf("User = %q, want %q", got, tc.user)
			}
			for k, want := range required {
				if got := u.one(t, "Service", k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tc.envFile != "" {
				if got := u.one(t, "Service", "EnvironmentFile"); got != tc.envFile {
					t.Errorf("EnvironmentFile = %q, want %q", got, tc.envFile)
				}
				if got := u["Unit"]["After"]; !contains(got, "network-online.target") {
					t.Errorf("After = %q, want network-online.target among them", got)
				}
			}
		})
	}
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// TestWorkerUnitStop: systemd waits longer than the worker's grace before
// it kills the worker; the gallery cache is the folder systemd makes.
func TestWorkerUnitStop(t *testing.T) {
	u := parseUnit(t, WorkerUnit().Text)
	fields := strings.Fields(u.one(t, "Service", "ExecStart"))
	var grace time.Duration
	for i, f := range fields {
		if f == "-grace" && i+1 < len(fields) {
			var err error
			if grace, err = time.ParseDuration(fields[i+1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop, err := time.ParseDuration(u.one(t, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	// The worker also waits for a receive in progress (up to 20 s) within
	// the grace; systemd must not kill it before grace plus a margin.
	if grace <= 0 || stop < grace+10*time.Second {
		t.Errorf("TimeoutStopSec = %v with -grace %v: want at least grace + 10s", stop, grace)
	}
	env := map[string]string{}
	for _, kv := range strings.Fields(u.one(t, "Service", "Environment")) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if got, want := env["ELASTIQ_GALLERY_CACHE"], "/var/cache/"+u.one(t, "Service", "CacheDirectory"); got != want {
		t.Errorf("ELASTIQ_GALLERY_CACHE = %q, want the CacheDirectory %q", got, want)
	}
	if env["ELASTIQ_MODELS"] != "/opt/elastiq/models" || env["ELASTIQ_GALLERY"] != "/opt/elastiq/gallery" {
		t.Errorf("Environment = %v, want the models and gallery of /opt/elastiq", env)
	}
	if _, ok := u["Service"]["MemoryDenyWriteExecute"]; ok {
		t.Error("the worker has MemoryDenyWriteExecute: ONNX Runtime is native code we do not control")
	}
}

// TestUnitsVerify runs systemd-analyze verify on every unit, with the
// programs of ExecStart replaced by an executable of a scratch folder (the
// real ones are not installed here): any warning fails the test. Then
// systemd-analyze security rates each sandbox: its exposure must be at most
// maxExposure (0 to 10, lower is safer; 2 is well inside systemd's "OK").
func TestUnitsVerify(t *testing.T) {
	const maxExposure = "20" // tenths
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		needTool(t, "systemd-analyze", "apt-get install systemd")
	}
	for _, u := range Units() {
		t.Run(u.Name, func(t *testing.T) {
			dir := t.TempDir()
			fake := filepath.Join(dir, "program")
			if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, line := range strings.Split(u.Text, "\n") {
				if rest, ok := strings.CutPrefix(line, "ExecStart="); ok {
					_, args, _ := strings.Cut(rest, " ")
					line = "ExecStart=" + fake + " " + args
				}
				lines = append(lines, line)
			}
			path := filepath.Join(dir, u.Name)
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", u.Name, err, out)
			}
			out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", "--threshold="+maxExposure, path).CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze security %s: %v (exposure above %s tenths)\n%s", u.Name, err, maxExposure, out)
			}
		})
	}
}

// needTool fails the test, saying how to get the tool, unless the run asked
// for unit tests only (go test -short, make test-unit).
func needTool(t *testing.T, tool, how string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s not found (-short, unit tests only): %s", tool, how)
	}
	t.Fatalf("%s not found: %s", tool, how)
}

var update = flag.Bool("update", false, "rewrite the generated files of ami/")

// TestGeneratedFiles: ami/provision.sh and ami/elastiq-worker.service are
// what this package renders (-update, or go generate, rewrites them).
func TestGeneratedFiles(t *testing.T) {
	script, err := ProvisionScript()
	if err != nil {
		t.Fatal(err)
	}
	files := []struct {
		path, text string
		mode       os.FileMode
	}{
		{filepath.Join("..", "..", "ami", "provision.sh"), script, 0o755},
		{filepath.Join("..", "..", "ami", WorkerService), WorkerUnit().Text, 0o644},
	}
	for _, f := range files {
		if *update {
			if err := os.WriteFile(f.path, []byte(f.text), f.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f.path, f.mode); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatalf("%v (go generate ./infra/deploy writes it)", err)
		}
		if string(got) != f.text {
			t.Errorf("%s differs from what infra/deploy renders: run go generate ./infra/deploy", f.path)
		}
		info, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		// git keeps only the executable bit.
		if exec := info.Mode()&0o100 != 0; exec != (f.mode&0o100 != 0) {
			t.Errorf("mode of %s = %v, want %v", f.path, info.Mode().Perm(), f.mode)
		}
	}
}
