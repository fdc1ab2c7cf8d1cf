package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sumOf is a fake SHA-256 for objects whose content the test does not
// fetch.
func sumOf(c byte) string { return strings.Repeat(string(c), 64) }

func testWebConfig() WebConfig {
	return WebConfig{
		Region:             "eu-west-3",
		Bucket:             "elastiq-dev-bucket-1a2b",
		RequestQueueURL:    "https://sqs.eu-west-3.amazonaws.com/123456789012/elastiq-dev-requests",
		ResponseQueueURL:   "https://sqs.eu-west-3.amazonaws.com/123456789012/elastiq-dev-responses",
		DeadLetterQueueURL: "https://sqs.eu-west-3.amazonaws.com/123456789012/elastiq-dev-dead-letters",
		StackName:          "dev",
		LaunchTemplateID:   "lt-0123456789abcdef0",
		Port:               80,
		MaxWorkers:         19,
		Policy:             "backlog",
		TerminateAfter:     2 * time.Minute,
		Web:                Object{Name: WebName, SHA256: sumOf('a')},
		Scaler:             Object{Name: ScalerName, SHA256: sumOf('b')},
	}
}

func testWorkerConfig() WorkerConfig {
	return WorkerConfig{
		Region:           "eu-west-3",
		Bucket:           "elastiq-dev-bucket-1a2b",
		RequestQueueURL:  "https://sqs.eu-west-3.amazonaws.com/123456789012/elastiq-dev-requests",
		ResponseQueueURL: "https://sqs.eu-west-3.amazonaws.com/123456789012/elastiq-dev-responses",
		IdleStop:         time.Minute,
		Worker:           Object{Name: WorkerName, SHA256: sumOf('c')},
		Models:           Object{Name: ModelsName, SHA256: sumOf('d')},
	}
}

// TestScriptsSyntax: every rendered script is valid bash and starts as
// cloud-init and the brief want.
func TestScriptsSyntax(t *testing.T) {
	baked := testWorkerConfig()
	baked.BakedImage = true
	noIdle := testWorkerConfig()
	noIdle.IdleStop = 0
	versioned := testWebConfig()
	versioned.LaunchTemplateVersion = 3
	tests := []struct {
		name   string
		render func() (string, error)
	}{
		{"web", func() (string, error) { return WebUserData(testWebConfig()) }},
		{"web with template version", func() (string, error) { return WebUserData(versioned) }},
		{"worker", func() (string, error) { return WorkerUserData(testWorkerConfig()) }},
		{"worker without idle", func() (string, error) { return WorkerUserData(noIdle) }},
		{"worker on baked image", func() (string, error) { return WorkerUserData(baked) }},
		{"provision", ProvisionScript},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			script, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(script, "#!/bin/bash\n") {
				t.Errorf("script starts %q, want #!/bin/bash", firstLine(script))
			}
			if !strings.Contains(script, "\nset -euo pipefail\n") {
				t.Error("script has no set -euo pipefail line")
			}
			bashSyntax(t, script)
			if len(script) > MaxUserData/2 {
				t.Errorf("script of %d bytes: want well under EC2's user data limit of %d", len(script), MaxUserData)
			}
		})
	}
}

func firstLine(s string) string { line, _, _ := strings.Cut(s, "\n"); return line }

// bashSyntax fails t unless bash -n accepts script.
func bashSyntax(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		web     func(*WebConfig)
		worker  func(*WorkerConfig)
		wantErr string
	}{
		{name: "web: no bucket", web: func(c *WebConfig) { c.Bucket = "" }, wantErr: "bucket: required"},
		{name: "web: quote in a URL", web: func(c *WebConfig) { c.RequestQueueURL += "'" }, wantErr: "request queue URL"},
		{name: "web: newline in the stack name", web: func(c *WebConfig) { c.StackName = "dev\nrm -rf /" }, wantErr: "stack name"},
		{name: "web: dollar in the region", web: func(c *WebConfig) { c.Region = "$(reboot)" }, wantErr: "region"},
		{name: "web: port 0", web: func(c *WebConfig) { c.Port = 0 }, wantErr: "port 0"},
		{name: "web: port 70000", web: func(c *WebConfig) { c.Port = 70000 }, wantErr: "port 70000"},
		{name: "web: no workers", web: func(c *WebConfig) { c.MaxWorkers = 0 }, wantErr: "max workers 0"},
		{name: "web: no terminate-after", web: func(c *WebConfig) { c.TerminateAfter = 0 }, wantErr: "terminate after"},
		{name: "web: negative template version", web: func(c *WebConfig) { c.LaunchTemplateVersion = -1 }, wantErr: "launch template version"},
		{name: "web: short sha256", web: func(c *WebConfig) { c.Web.SHA256 = "abc" }, wantErr: "sha256"},
		{name: "web: objects swapped", web: func(c *WebConfig) { c.Web, c.Scaler = c.Scaler, c.Web }, wantErr: `want name "web"`},
		{name: "worker: bad response queue", worker: func(c *WorkerConfig) { c.ResponseQueueURL = "https://q\"x" }, wantErr: "response queue URL"},
		{name: "worker: upper-case sha256", worker: func(c *WorkerConfig) { c.Models.SHA256 = strings.ToUpper(c.Models.SHA256) }, wantErr: "sha256"},
		{name: "worker: negative idle", worker: func(c *WorkerConfig) { c.IdleStop = -time.Second }, wantErr: "idle stop"},
		{name: "worker: no objects", worker: func(c *WorkerConfig) { c.Worker, c.Models = Object{}, Object{} }, wantErr: "want name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.web != nil {
				c := testWebConfig()
				tc.web(&c)
				_, err = WebUserData(c)
			} else {
				c := testWorkerConfig()
				tc.worker(&c)
				_, err = WorkerUserData(c)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("user data error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	t.Run("baked worker needs no objects", func(t *testing.T) {
		c := testWorkerConfig()
		c.BakedImage, c.Worker, c.Models = true, Object{}, Object{}
		if _, err := WorkerUserData(c); err != nil {
			t.Errorf("WorkerUserData(baked, no objects) = %v, want nil", err)
		}
	})
}

// sandbox runs the scripts as on an instance, but with ELASTIQ_TEST_ROOT
// set to a scratch folder and stub commands first on PATH (test doubles):
// aws copies from a folder standing for S3 (s3://BUCKET/KEY is
// s3dir/BUCKET/KEY); dnf, useradd, systemctl, systemd-analyze, curl and
// journalctl only record their arguments. Every stub call is a line
// "NAME ARGS..." in the calls file.
type sandbox struct {
	root, s3, calls, bin string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	dir := t.TempDir()
	s := &sandbox{root: filepath.Join(dir, "root"), s3: filepath.Join(dir, "s3"), calls: filepath.Join(dir, "calls"), bin: filepath.Join(dir, "bin")}
	for _, d := range []string{s.root, s.s3, s.bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	record := `echo "$(basename "$0") $*" >>"$STUB_CALLS"` + "\n"
	stubs := map[string]string{
		// aws s3 cp --only-show-errors --region R s3://B/K DEST
		"aws": record + `[[ "$1 $2 $3 $4" == "s3 cp --only-show-errors --region" ]] || { echo "aws stub: unexpected $*" >&2; exit 2; }
src="$STUB_S3/${6#s3://}"
[[ -f "$src" ]] || { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key not found" >&2; exit 1; }
cp "$src" "$7"
`,
		"dnf": record, "useradd": record, "systemctl": record, "systemd-analyze": record, "curl": record, "journalctl": record,
		// sleep: a failed fetch is retried at once in the tests.
		"sleep": record,
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(s.bin, name), []byte("#!/bin/bash\nset -euo pipefail\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// put stores an object in the fake S3.
func (s *sandbox) put(t *testing.T, bucket, key string, data []byte) {
	t.Helper()
	p := filepath.Join(s.s3, bucket, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs script with args in the sandbox; it returns the combined output
// and the exit error.
func (s *sandbox) run(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "ELASTIQ_TEST_ROOT="+s.root, "STUB_S3="+s.s3, "STUB_CALLS="+s.calls,
		"PATH="+s.bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRun runs script with args in the sandbox and fails t if it fails.
func (s *sandbox) mustRun(t *testing.T, script string, args ...string) {
	t.Helper()
	if out, err := s.run(t, script, args...); err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
}

// wantFile checks a file under the sandbox's root: content and mode.
func (s *sandbox) wantFile(t *testing.T, path string, mode os.FileMode, want string) {
	t.Helper()
	if got := s.file(t, path, mode); got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

// callLines returns the recorded stub calls.
func (s *sandbox) callLines(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(s.calls)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// file reads a file under the sandbox's root and checks its mode.
func (s *sandbox) file(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(s.root, filepath.FromSlash(path))
	info, err := os.Stat(p)
	if err != nil {
		t.Fatalf("the script did not write %s: %v", path, err)
	}
	if info.Mode().Perm() != mode {
		t.Errorf("mode of %s = %v, want %v", path, info.Mode().Perm(), mode)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// parseEnv parses an environment file (KEY=value lines, # comments).
func parseEnv(t *testing.T, text string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env line %q: no =", line)
		}
		if _, dup := env[k]; dup {
			t.Errorf("env: %s set twice", k)
		}
		env[k] = v
	}
	return env
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stub calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// awsCall is the aws stub's record of a fetch of o into dest (a file under
// the script's temporary folder, which the test does not know: "*").
func awsCall(region, bucket string, o Object) string {
	return "aws s3 cp --only-show-errors --region " + region + " s3://" + bucket + "/" + o.Key()
}

// trimDest removes the destination argument of aws calls.
func trimDest(calls []string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		if strings.HasPrefix(c, "aws ") {
			c = c[:strings.LastIndex(c, " ")]
		}
		out[i] = c
	}
	return out
}

// objectWith returns the object of data under name.
func objectWith(name string, data []byte) Object {
	return Object{Name: name, SHA256: sumBytes(data)}
}

const useraddCall = "useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /sbin/nologin elastiq"

func TestWebUserDataRuns(t *testing.T) {
	s := newSandbox(t)
	c := testWebConfig()
	c.LaunchTemplateVersion = 7
	web, scaler := []byte("#!/bin/true web\n"), []byte("#!/bin/true scaler\n")
	c.Web, c.Scaler = objectWith(WebName, web), objectWith(ScalerName, scaler)
	s.put(t, c.Bucket, c.Web.Key(), web)
	s.put(t, c.Bucket, c.Scaler.Key(), scaler)
	// An object of another stack's bucket with the same key must not be
	// what the script fetches.
	s.put(t, "other-bucket", c.Web.Key(), []byte("wrong"))

	script, err := WebUserData(c)
	if err != nil {
		t.Fatal(err)
	}
	s.mustRun(t, script)

	s.wantFile(t, "/opt/elastiq/bin/web", 0o755, string(web))
	s.wantFile(t, "/opt/elastiq/bin/scaler", 0o755, string(scaler))
	wantWebEnv := map[string]string{
		"ELASTIQ_ADDR":                  "0.0.0.0:80",
		"ELASTIQ_REGION":                c.Region,
		"ELASTIQ_BUCKET":                c.Bucket,
		"ELASTIQ_REQUEST_QUEUE_URL":     c.RequestQueueURL,
		"ELASTIQ_RESPONSE_QUEUE_URL":    c.ResponseQueueURL,
		"ELASTIQ_DEAD_LETTER_QUEUE_URL": c.DeadLetterQueueURL,
		"ELASTIQ_MEMCACHED":             "127.0.0.1:11211",
		"ELASTIQ_STACK":                 "dev",
		"ELASTIQ_SCALER_URL":            "http://127.0.0.1:8081",
	}
	if got := parseEnv(t, s.file(t, "/etc/elastiq/web.env", 0o644)); !reflect.DeepEqual(got, wantWebEnv) {
		t.Errorf("web.env = %v, want %v", got, wantWebEnv)
	}
	wantScalerEnv := map[string]string{
		"ELASTIQ_REGION":                  c.Region,
		"ELASTIQ_REQUEST_QUEUE_URL":       c.RequestQueueURL,
		"ELASTIQ_STACK":                   "dev",
		"ELASTIQ_LAUNCH_TEMPLATE_ID":      c.LaunchTemplateID,
		"ELASTIQ_ADDR":                    "127.0.0.1:8081",
		"ELASTIQ_METRICS_ADDR":            "0.0.0.0:9102",
		"ELASTIQ_LAUNCH_TEMPLATE_VERSION": "7",
		"ELASTIQ_MAX_WORKERS":             "19",
		"ELASTIQ_POLICY":                  "backlog",
		"ELASTIQ_TERMINATE_AFTER":         "2m0s",
	}
	if got := parseEnv(t, s.file(t, "/etc/elastiq/scaler.env", 0o644)); !reflect.DeepEqual(got, wantScalerEnv) {
		t.Errorf("scaler.env = %v, want %v", got, wantScalerEnv)
	}
	for _, u := range []Unit{MemcachedUnit(), WebUnit(), ScalerUnit()} {
		s.wantFile(t, "/etc/systemd/system/"+u.Name, 0o644, u.Text)
	}
	if _, err := os.Stat(filepath.Join(s.root, "etc/systemd/system", WorkerService)); err == nil {
		t.Errorf("the web instance got %s", WorkerService)
	}
	wantCalls(t, trimDest(s.callLines(t)),
		"dnf install -y memcached",
		useraddCall,
		awsCall(c.Region, c.Bucket, c.Web),
		awsCall(c.Region, c.Bucket, c.Scaler),
		"systemctl daemon-reload",
		"systemctl enable --now memcached.service elastiq-web.service elastiq-scaler.service",
		"curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:80/healthz",
	)
}

// loadBalancedConfig is testWebConfig in the load-balanced layout: a
// reply queue per web instance, a shared cache, the scaler apart.
func loadBalancedConfig() WebConfig {
	c := testWebConfig()
	c.ResponseQueueURL = ""
	c.ReplyQueuePrefix = "elastiq-prod-reply-"
	c.Memcached = []string{"prod-cache.0001.use1.cache.amazonaws.com:11211", "prod-cache.0002.use1.cache.amazonaws.com:11211"}
	c.ScalerHost = "172.31.7.9"
	return c
}

// TestLoadBalancedUserDataRuns: in the load-balanced layout a web instance
// runs the web tier alone, with its own reply queue, the shared cache and
// the scaler's instance; the scaler's instance runs the scaler alone,
// serving the web instances and sweeping their queues.
func TestLoadBalancedUserDataRuns(t *testing.T) {
	c := loadBalancedConfig()
	web, scaler := []byte("#!/bin/true web\n"), []byte("#!/bin/true scaler\n")
	c.Web, c.Scaler = objectWith(WebName, web), objectWith(ScalerName, scaler)

	s := newSandbox(t)
	s.put(t, c.Bucket, c.Web.Key(), web)
	script, err := WebUserData(c)
	if err != nil {
		t.Fatal(err)
	}
	s.mustRun(t, script)
	s.wantFile(t, "/opt/elastiq/bin/web", 0o755, string(web))
	wantWebEnv := map[string]string{
		"ELASTIQ_ADDR":                  "0.0.0.0:80",
		"ELASTIQ_REGION":                c.Region,
		"ELASTIQ_BUCKET":                c.Bucket,
		"ELASTIQ_REQUEST_QUEUE_URL":     c.RequestQueueURL,
		"ELASTIQ_REPLY_QUEUE_PREFIX":    c.ReplyQueuePrefix,
		"ELASTIQ_DEAD_LETTER_QUEUE_URL": c.DeadLetterQueueURL,
		"ELASTIQ_MEMCACHED":             strings.Join(c.Memcached, ","),
		"ELASTIQ_STACK":                 "dev",
		"ELASTIQ_SCALER_URL":            "http://172.31.7.9:8081",
	}
	if got := parseEnv(t, s.file(t, "/etc/elastiq/web.env", 0o644)); !reflect.DeepEqual(got, wantWebEnv) {
		t.Errorf("web.env = %v, want %v", got, wantWebEnv)
	}
	for _, absent := range []string{"etc/systemd/system/" + MemcachedService, "etc/systemd/system/" + ScalerService, "etc/elastiq/scaler.env", "opt/elastiq/bin/scaler"} {
		if _, err := os.Stat(filepath.Join(s.root, absent)); err == nil {
			t.Errorf("a load-balanced web instance got /%s", absent)
		}
	}
	wantCalls(t, trimDest(s.callLines(t)),
		useraddCall,
		awsCall(c.Region, c.Bucket, c.Web),
		"systemctl daemon-reload",
		"systemctl enable --now elastiq-web.service",
		"curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:80/healthz",
	)

	s = newSandbox(t)
	s.put(t, c.Bucket, c.Scaler.Key(), scaler)
	script, err = ScalerUserData(c)
	if err != nil {
		t.Fatal(err)
	}
	bashSyntax(t, script)
	s.mustRun(t, script)
	s.wantFile(t, "/opt/elastiq/bin/scaler", 0o755, string(scaler))
	s.wantFile(t, "/etc/systemd/system/"+ScalerService, 0o644, ScalerUnit().Text)
	env := parseEnv(t, s.file(t, "/etc/elastiq/scaler.env", 0o644))
	if env["ELASTIQ_ADDR"] != "0.0.0.0:8081" || env["ELASTIQ_REPLY_QUEUE_PREFIX"] != c.ReplyQueuePrefix || env["ELASTIQ_LAUNCH_TEMPLATE_ID"] != c.LaunchTemplateID {
		t.Errorf("scaler.env = %v, want it serving the web instances on 0.0.0.0:8081 and sweeping %s*", env, c.ReplyQueuePrefix)
	}
	wantCalls(t, trimDest(s.callLines(t)),
		useraddCall,
		awsCall(c.Region, c.Bucket, c.Scaler),
		"systemctl daemon-reload",
		"systemctl enable --now elastiq-scaler.service",
		"curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:9102/healthz",
	)
	// Its own address is not needed to render it.
	noHost := c
	noHost.ScalerHost = ""
	if _, err := ScalerUserData(noHost); err != nil {
		t.Errorf("ScalerUserData without the scaler's address: %v", err)
	}
	// The workers name no response queue: each request names its own.
	w := testWorkerConfig()
	w.ResponseQueueURL = ""
	if env := parseEnv(t, w.WorkerEnv()); env["ELASTIQ_RESPONSE_QUEUE_URL"] != "" || env["ELASTIQ_REQUEST_QUEUE_URL"] != w.RequestQueueURL {
		t.Errorf("worker.env without a response queue = %v", env)
	}
	if _, err := WorkerUserData(w); err != nil {
		t.Errorf("WorkerUserData without a response queue: %v", err)
	}
	both := c
	both.ResponseQueueURL = testWebConfig().ResponseQueueURL
	if _, err := WebUserData(both); err == nil {
		t.Error("WebUserData with a response queue and a reply queue prefix = nil error, want one")
	}
}

func TestWorkerUserDataRuns(t *testing.T) {
	models := testModelsTarball(t)
	worker := []byte("#!/bin/true worker\n")
	t.Run("plain image", func(t *testing.T) {
		s := newSandbox(t)
		c := testWorkerConfig()
		c.Worker, c.Models = objectWith(WorkerName, worker), objectWith(ModelsName, models)
		s.put(t, c.Bucket, c.Worker.Key(), worker)
		s.put(t, c.Bucket, c.Models.Key(), models)
		script, err := WorkerUserData(c)
		if err != nil {
			t.Fatal(err)
		}
		s.mustRun(t, script)
		s.wantFile(t, "/opt/elastiq/bin/worker", 0o755, string(worker))
		checkModelsInstalled(t, s)
		checkWorkerEnv(t, s, c)
		s.wantFile(t, "/etc/systemd/system/elastiq-worker.service", 0o644, WorkerUnit().Text)
		wantCalls(t, trimDest(s.callLines(t)),
			useraddCall,
			awsCall(c.Region, c.Bucket, c.Worker),
			awsCall(c.Region, c.Bucket, c.Models),
			"systemctl daemon-reload",
			"systemctl enable --now elastiq-worker.service",
		)
	})
	t.Run("baked image", func(t *testing.T) {
		s := newSandbox(t)
		// The image of ami/: what provision.sh installed.
		for path, text := range map[string]string{"/opt/elastiq/bin/worker": string(worker), "/etc/systemd/system/elastiq-worker.service": WorkerUnit().Text} {
			p := filepath.Join(s.root, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		c := testWorkerConfig()
		c.BakedImage = true
		script, err := WorkerUserData(c)
		if err != nil {
			t.Fatal(err)
		}
		s.mustRun(t, script)
		checkWorkerEnv(t, s, c)
		wantCalls(t, s.callLines(t), "systemctl daemon-reload", "systemctl enable --now elastiq-worker.service")
	})
	t.Run("baked image without the worker", func(t *testing.T) {
		s := newSandbox(t)
		c := testWorkerConfig()
		c.BakedImage = true
		script, err := WorkerUserData(c)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.run(t, script)
		if err == nil || !strings.Contains(out, "this image has no elastiq worker") {
			t.Errorf("worker user data on a plain image: err %v, output %q; want a failure naming the image", err, out)
		}
		wantCalls(t, s.callLines(t))
	})
}

func checkWorkerEnv(t *testing.T, s *sandbox, c WorkerConfig) {
	t.Helper()
	want := map[string]string{
		"ELASTIQ_REGION":             c.Region,
		"ELASTIQ_BUCKET":             c.Bucket,
		"ELASTIQ_REQUEST_QUEUE_URL":  c.RequestQueueURL,
		"ELASTIQ_RESPONSE_QUEUE_URL": c.ResponseQueueURL,
		"ELASTIQ_IDLE":               "1m0s",
		"ELASTIQ_METRICS_ADDR":       "0.0.0.0:9101",
	}
	if got := parseEnv(t, s.file(t, "/etc/elastiq/worker.env", 0o644)); !reflect.DeepEqual(got, want) {
		t.Errorf("worker.env = %v, want %v", got, want)
	}
}

// testModelsTarball is a small model bundle in Build's format.
func testModelsTarball(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	models, gallery := filepath.Join(dir, "models"), filepath.Join(dir, "gallery")
	files := map[string]string{}
	for _, name := range modelFiles {
		files[filepath.Join(models, name)] = "model file " + name
	}
	files[filepath.Join(gallery, "labels.csv")] = "Image,Results\ntest_00,Paul\n"
	files[filepath.Join(gallery, "face_images_100", "test_00.jpg")] = "jpeg"
	for p, text := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(dir, ModelsName)
	if err := packModels(dst, models, gallery); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkModelsInstalled checks the files of testModelsTarball under
// /opt/elastiq.
func checkModelsInstalled(t *testing.T, s *sandbox) {
	t.Helper()
	for _, name := range modelFiles {
		s.wantFile(t, "/opt/elastiq/models/"+name, 0o644, "model file "+name)
	}
	s.wantFile(t, "/opt/elastiq/gallery/face_images_100/test_00.jpg", 0o644, "jpeg")
	s.wantFile(t, "/opt/elastiq/gallery/labels.csv", 0o644, "Image,Results\ntest_00,Paul\n")
}

// TestFetchRefusesBadObjects: an object whose SHA-256 is not the one in
// the user data stops the script before anything is installed or started.
func TestFetchRefusesBadObjects(t *testing.T) {
	s := newSandbox(t)
	c := testWebConfig()
	c.Web = objectWith(WebName, []byte("the web tier we built"))
	s.put(t, c.Bucket, c.Web.Key(), []byte("something else"))
	script, err := WebUserData(c)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.run(t, script)
	if err == nil || !strings.Contains(out, "SHA-256") || !strings.Contains(out, c.Web.SHA256) {
		t.Fatalf("web user data with a tampered object: err %v, output %q; want a SHA-256 failure", err, out)
	}
	if _, err := os.Stat(filepath.Join(s.root, "opt/elastiq/bin/web")); err == nil {
		t.Error("the tampered web binary was installed")
	}
	for _, call := range s.callLines(t) {
		if strings.HasPrefix(call, "systemctl") {
			t.Errorf("stub call %q after a failed check", call)
		}
	}
}

// TestFetchRetries: an object that is not there yet (still uploading) is
// fetched again, and the script gives up after 30 attempts.
func TestFetchRetries(t *testing.T) {
	s := newSandbox(t)
	c := testWorkerConfig()
	script, err := WorkerUserData(c)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.run(t, script)
	if err == nil || !strings.Contains(out, "not fetched in 30 attempts") {
		t.Fatalf("worker user data without objects: err %v, output %q; want a failure after 30 attempts", err, out)
	}
	fetches, sleeps := 0, 0
	for _, call := range s.callLines(t) {
		switch {
		case strings.HasPrefix(call, "aws "):
			fetches++
		case call == "sleep 10":
			sleeps++
		}
	}
	if fetches != 30 || sleeps != 29 {
		t.Errorf("fetches, sleeps = %d, %d; want 30, 29", fetches, sleeps)
	}
}

func TestProvisionScriptRuns(t *testing.T) {
	script, err := ProvisionScript()
	if err != nil {
		t.Fatal(err)
	}
	worker, models, unit := []byte("#!/bin/true worker\n"), testModelsTarball(t), []byte(WorkerUnit().Text)
	tests := []struct {
		name    string
		unit    []byte
		sums    func(w, m Object) string
		wantErr string
	}{
		{name: "bundle as built", unit: unit, sums: func(w, m Object) string { return sumsLine(w) + sumsLine(m) }},
		{name: "unit edited by hand", unit: append(unit, "# edited\n"...), sums: func(w, m Object) string { return sumsLine(w) + sumsLine(m) },
			wantErr: "elastiq-worker.service: SHA-256"},
		{name: "worker not listed", unit: unit, sums: func(w, m Object) string { return sumsLine(m) }, wantErr: "SHA256SUMS lists no worker"},
		{name: "models of another build", unit: unit, sums: func(w, m Object) string { return sumsLine(w) + sumsLine(Object{Name: ModelsName, SHA256: sumOf('e')}) },
			wantErr: "models.tar.gz: SHA-256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			bundle := t.TempDir()
			files := map[string][]byte{
				WorkerName: worker, ModelsName: models, WorkerService: tc.unit,
				SumsName: []byte(tc.sums(objectWith(WorkerName, worker), objectWith(ModelsName, models))),
			}
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(bundle, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := s.run(t, script, bundle)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(out, tc.wantErr) {
					t.Errorf("provision.sh: err %v, output %q; want a failure containing %q", err, out, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(s.root, "opt/elastiq/bin/worker")); err == nil {
					t.Error("the worker was installed from a bundle that failed its checks")
				}
				return
			}
			if err != nil {
				t.Fatalf("provision.sh: %v\n%s", err, out)
			}
			s.wantFile(t, "/opt/elastiq/bin/worker", 0o755, string(worker))
			checkModelsInstalled(t, s)
			s.wantFile(t, "/etc/systemd/system/elastiq-worker.service", 0o644, WorkerUnit().Text)
			if _, err := os.Stat(filepath.Join(s.root, "etc/elastiq/worker.env")); err == nil {
				t.Error("the image got a worker.env: the instance's user data writes it")
			}
			// Installed, verified, not enabled: the user data enables it
			// once worker.env is there.
			wantCalls(t, s.callLines(t), useraddCall,
				"systemd-analyze verify "+filepath.Join(s.root, "etc/systemd/system/elastiq-worker.service"))
		})
	}
}

func sumsLine(o Object) string { return o.SHA256 + "  " + o.Name + "\n" }

func TestObjectKey(t *testing.T) {
	o := Object{Name: ModelsName, SHA256: sumOf('f')}
	if got, want := o.Key(), "deploy/"+sumOf('f')+"/models.tar.gz"; got != want {
		t.Errorf("Key() = %q, want %q", got, want)
	}
}
