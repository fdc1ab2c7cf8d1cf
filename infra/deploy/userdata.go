package deploy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// WebConfig is what the web instance's user data needs: the stack's
// resources (plain values: the caller resolves the Pulumi outputs with
// ApplyT) and the bundle's web and scaler objects.
type WebConfig struct {
	Region             string
	Bucket             string
	RequestQueueURL    string
	ResponseQueueURL   string
	DeadLetterQueueURL string
	// StackName names the stack's workers (tag elastiq:stack): the scaler
	// manages them, the web tier counts them on /metrics.
	StackName        string
	LaunchTemplateID string
	// LaunchTemplateVersion is the version the scaler launches; 0 is the
	// scaler's default, the template's default version (set the template's
	// updateDefaultVersion so that a new version is launched).
	LaunchTemplateVersion int
	// Port is the web tier's HTTP port on 0.0.0.0.
	Port int
	// MaxWorkers is the scaler's -max-workers.
	MaxWorkers int
	// Policy is the scaler's -policy (backlog when empty).
	Policy string
	// TerminateAfter is the scaler's -terminate-after: stopped workers are
	// terminated after no request for this long.
	TerminateAfter time.Duration
	// AdminTokenParameter, if set, names the SSM parameter holding the
	// gallery's admin token: the web tier reads it at start, so the token
	// itself is in neither the user data nor the environment file.
	AdminTokenParameter string
	// Web and Scaler are the bundle's objects (Bundle.Web.Object...).
	Web, Scaler Object

	// The load-balanced layout (each zero in the one-instance layout):
	// ReplyQueuePrefix gives each web instance a response queue of its own
	// (ResponseQueueURL is then empty, and the scaler sweeps the queues of
	// instances that died); Memcached are the shared cache's nodes
	// (host:port) instead of a memcached on the web instance; ScalerHost is
	// the scaler's own instance (its private address), which the web tier
	// reports requests to, instead of a scaler beside it (WebUserData then
	// runs the web tier alone, and ScalerUserData the scaler).
	ReplyQueuePrefix string
	Memcached        []string
	ScalerHost       string
}

// ScalerPort is the port the scaler serves the web tier on.
const ScalerPort = 8081

// scalerApart reports whether the scaler runs on an instance of its own.
func (c WebConfig) scalerApart() bool { return c.ScalerHost != "" }

// Validate reports every missing or malformed field.
func (c WebConfig) Validate() error {
	errs := []error{checkValues(
		field{"region", c.Region}, field{"bucket", c.Bucket},
		field{"request queue URL", c.RequestQueueURL},
		field{"dead-letter queue URL", c.DeadLetterQueueURL}, field{"stack name", c.StackName},
		field{"launch template ID", c.LaunchTemplateID},
	)}
	if (c.ResponseQueueURL == "") == (c.ReplyQueuePrefix == "") {
		errs = append(errs, errors.New("want one of the response queue URL and the reply queue prefix"))
	}
	optional := []field{{"response queue URL", c.ResponseQueueURL}, {"reply queue prefix", c.ReplyQueuePrefix}, {"scaler host", c.ScalerHost}}
	for _, m := range c.Memcached {
		optional = append(optional, field{"memcached node", m})
	}
	for _, f := range optional {
		if f.value != "" {
			errs = append(errs, checkValues(f))
		}
	}
	if c.LaunchTemplateVersion < 0 {
		errs = append(errs, fmt.Errorf("launch template version %d: want >= 0", c.LaunchTemplateVersion))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1..65535", c.Port))
	}
	if c.MaxWorkers < 1 {
		errs = append(errs, fmt.Errorf("max workers %d: want >= 1", c.MaxWorkers))
	}
	if c.TerminateAfter <= 0 {
		errs = append(errs, fmt.Errorf("terminate after %v: want > 0", c.TerminateAfter))
	}
	errs = append(errs, c.Web.validate(WebName), c.Scaler.validate(ScalerName))
	return errors.Join(errs...)
}

// WebEnv is the web tier's environment file.
func (c WebConfig) WebEnv() string {
	// Where results come from, the cache and the scaler: on this
	// instance, or (the load-balanced layout) its own queue, the shared
	// cache and the scaler's instance.
	results := envLine{"ELASTIQ_RESPONSE_QUEUE_URL", c.ResponseQueueURL}
	if c.ReplyQueuePrefix != "" {
		results = envLine{"ELASTIQ_REPLY_QUEUE_PREFIX", c.ReplyQueuePrefix}
	}
	scaler := "http://" + ScalerAddr
	if c.scalerApart() {
		scaler = "http://" + net.JoinHostPort(c.ScalerHost, strconv.Itoa(ScalerPort))
	}
	lines := []envLine{
		{"ELASTIQ_ADDR", "0.0.0.0:" + strconv.Itoa(c.Port)},
		{"ELASTIQ_REGION", c.Region},
		{"ELASTIQ_BUCKET", c.Bucket},
		{"ELASTIQ_REQUEST_QUEUE_URL", c.RequestQueueURL},
		results,
		{"ELASTIQ_DEAD_LETTER_QUEUE_URL", c.DeadLetterQueueURL},
		{"ELASTIQ_MEMCACHED", cmp.Or(strings.Join(c.Memcached, ","), MemcachedAddr)},
		{"ELASTIQ_STACK", c.StackName},
		{"ELASTIQ_SCALER_URL", scaler},
	}
	if c.AdminTokenParameter != "" {
		lines = append(lines, envLine{"ELASTIQ_ADMIN_TOKEN_SSM_PARAMETER", c.AdminTokenParameter})
	}
	return renderEnv("elastiq web tier of stack "+c.StackName, lines)
}

// ScalerEnv is the scaler's environment file: on the web instance, or on
// its own instance when the web tier reaches it at ScalerHost.
func (c WebConfig) ScalerEnv() string { return c.scalerEnv(c.scalerApart()) }

func (c WebConfig) scalerEnv(apart bool) string {
	addr := ScalerAddr
	if apart {
		// The web instances' nudges come over the network (its
		// security group lets only them in).
		addr = "0.0.0.0:" + strconv.Itoa(ScalerPort)
	}
	lines := []envLine{
		{"ELASTIQ_REGION", c.Region},
		{"ELASTIQ_REQUEST_QUEUE_URL", c.RequestQueueURL},
		{"ELASTIQ_STACK", c.StackName},
		{"ELASTIQ_LAUNCH_TEMPLATE_ID", c.LaunchTemplateID},
		{"ELASTIQ_ADDR", addr},
		{"ELASTIQ_METRICS_ADDR", "0.0.0.0:" + strconv.Itoa(ScalerMetricsPort)},
	}
	if c.ReplyQueuePrefix != "" {
		lines = append(lines, envLine{"ELASTIQ_REPLY_QUEUE_PREFIX", c.ReplyQueuePrefix})
	}
	if c.LaunchTemplateVersion > 0 {
		lines = append(lines, envLine{"ELASTIQ_LAUNCH_TEMPLATE_VERSION", strconv.Itoa(c.LaunchTemplateVersion)})
	}
	lines = append(lines,
		envLine{"ELASTIQ_MAX_WORKERS", strconv.Itoa(c.MaxWorkers)},
		envLine{"ELASTIQ_POLICY", cmp.Or(c.Policy, "backlog")},
		envLine{"ELASTIQ_TERMINATE_AFTER", c.TerminateAfter.String()})
	return renderEnv("elastiq scaler of stack "+c.StackName, lines)
}

// WorkerConfig is what a worker instance's user data needs.
type WorkerConfig struct {
	Region          string
	Bucket          string
	RequestQueueURL string
	// ResponseQueueURL is empty in the load-balanced layout: each request
	// names its web instance's queue.
	ResponseQueueURL string
	// IdleStop is the worker's -idle: it stops its instance after the
	// queue has stayed empty this long (0: the worker's default).
	IdleStop time.Duration
	// BakedImage says the instance runs the image of ami/, with the worker,
	// models and unit installed: the user data only configures and starts
	// it. Otherwise (plain Amazon Linux 2023) it installs Worker and Models
	// from S3 first.
	BakedImage bool
	// Worker and Models are the bundle's objects; unused with BakedImage.
	Worker, Models Object
}

// Validate reports every missing or malformed field.
func (c WorkerConfig) Validate() error {
	errs := []error{checkValues(
		field{"region", c.Region}, field{"bucket", c.Bucket}, field{"request queue URL", c.RequestQueueURL},
	)}
	if c.ResponseQueueURL != "" {
		errs = append(errs, checkValues(field{"response queue URL", c.ResponseQueueURL}))
	}
	if c.IdleStop < 0 {
		errs = append(errs, fmt.Errorf("idle stop %v: want >= 0", c.IdleStop))
	}
	if !c.BakedImage {
		errs = append(errs, c.Worker.validate(WorkerName), c.Models.validate(ModelsName))
	}
	return errors.Join(errs...)
}

// WorkerEnv is the worker's environment file (the install paths are in its
// unit).
func (c WorkerConfig) WorkerEnv() string {
	lines := []envLine{
		{"ELASTIQ_REGION", c.Region},
		{"ELASTIQ_BUCKET", c.Bucket},
		{"ELASTIQ_REQUEST_QUEUE_URL", c.RequestQueueURL},
		{"ELASTIQ_METRICS_ADDR", "0.0.0.0:" + strconv.Itoa(WorkerMetricsPort)},
	}
	if c.ResponseQueueURL != "" {
		// Without it (each web instance has its queue) every request
		// names where its result goes.
		lines = append(lines, envLine{"ELASTIQ_RESPONSE_QUEUE_URL", c.ResponseQueueURL})
	}
	if c.IdleStop > 0 {
		lines = append(lines, envLine{"ELASTIQ_IDLE", c.IdleStop.String()})
	}
	return renderEnv("elastiq worker", lines)
}

// WebUserData renders the web instance's user data: a bash script that
// cloud-init runs once, as root, at first boot of Amazon Linux 2023. It
// installs memcached, fetches and verifies the web and scaler binaries,
// creates the elastiq user, writes /etc/elastiq/{web,scaler}.env and the
// units, starts memcached, elastiq-web and elastiq-scaler, and fails
// (cloud-init reports it) unless the web tier answers /healthz.
func WebUserData(c WebConfig) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("web user data: %w", err)
	}
	files := []scriptFile{{envFile("web"), "0644", c.WebEnv()}, unitFile(WebUnit())}
	fetch := []fetchSpec{{c.Web, program(WebName)}}
	services := []string{WebService}
	localCache := len(c.Memcached) == 0
	if localCache {
		files = append(files, unitFile(MemcachedUnit()))
		services = append([]string{MemcachedService}, services...)
	}
	if !c.scalerApart() {
		files = append(files, scriptFile{envFile("scaler"), "0644", c.ScalerEnv()}, unitFile(ScalerUnit()))
		fetch = append(fetch, fetchSpec{c.Scaler, program(ScalerName)})
		services = append(services, ScalerService)
	}
	about := "memcached, the web tier and the scaler as systemd services"
	switch {
	case c.scalerApart() && localCache:
		about = "memcached and the web tier as systemd services"
	case c.scalerApart():
		about = "the web tier as a systemd service, behind the load balancer"
	}
	return userData("web", map[string]any{
		"C":              c,
		"Role":           "web",
		"About":          about,
		"Files":          files,
		"Fetch":          fetch,
		"Services":       services,
		"LocalMemcached": localCache,
		"Await":          awaitService{"web tier", c.Port, WebService},
	})
}

// ScalerUserData renders the user data of the scaler's own instance (the
// load-balanced layout; ScalerHost, its own address, is not needed): like
// the web instance's, with the scaler alone, serving the web instances on
// ScalerPort, and failing unless it answers /healthz on its metrics port.
func ScalerUserData(c WebConfig) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("scaler user data: %w", err)
	}
	return userData("scaler", map[string]any{
		"C":        c,
		"Role":     "scaler",
		"About":    "the scaler as a systemd service, serving the web instances",
		"Files":    []scriptFile{{envFile("scaler"), "0644", c.scalerEnv(true)}, unitFile(ScalerUnit())},
		"Fetch":    []fetchSpec{{c.Scaler, program(ScalerName)}},
		"Services": []string{ScalerService},
		"Await":    awaitService{"scaler", ScalerMetricsPort, ScalerService},
	})
}

// awaitService is the service whose /healthz a script waits for at the
// end.
type awaitService struct {
	What    string
	Port    int
	Service string
}

// WorkerUserData renders a worker instance's user data (see WorkerConfig's
// BakedImage): it writes /etc/elastiq/worker.env and enables and starts
// elastiq-worker, after installing the worker, models, gallery and unit from
// S3 on plain Amazon Linux 2023.
func WorkerUserData(c WorkerConfig) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("worker user data: %w", err)
	}
	files := []scriptFile{{envFile("worker"), "0644", c.WorkerEnv()}}
	if !c.BakedImage {
		files = append(files, unitFile(WorkerUnit()))
	}
	return userData("worker", map[string]any{
		"C":     c,
		"Files": files,
	})
}

// ProvisionScript renders ami/provision.sh, which Packer runs as root to
// install the worker into the image from the uploaded bundle folder: the
// same user, files and unit (checked against its SHA-256 here) as the
// plain-image user data, the unit installed but not enabled (the instance's
// user data configures and enables it).
func ProvisionScript() (string, error) {
	u := WorkerUnit()
	return render("provision", map[string]any{"Unit": u, "UnitSum": sumBytes([]byte(u.Text))})
}

// scriptFile is a file a script writes.
type scriptFile struct {
	Path, Mode, Text string
}

func unitFile(u Unit) scriptFile { return scriptFile{path.Join(unitDir, u.Name), "0644", u.Text} }

// fetchSpec is an object a script fetches and installs as an executable.
type fetchSpec struct {
	Object Object
	Dest   string
}

// MaxUserData is EC2's limit on user data, in bytes before base64.
const MaxUserData = 16 << 10

// userData renders a user-data template, refusing what EC2 would refuse.
func userData(name string, data map[string]any) (string, error) {
	script, err := render(name, data)
	if err != nil {
		return "", err
	}
	if len(script) > MaxUserData {
		return "", fmt.Errorf("%s user data: %d bytes, EC2 takes at most %d", name, len(script), MaxUserData)
	}
	return script, nil
}

// heredocEnd ends every here-document of the scripts; render checks that no
// file contains it as a line.
const heredocEnd = "ELASTIQ_EOF"

// quote quotes s for bash: single quotes, with each ' as '\”.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var scripts = template.Must(template.New("scripts").Funcs(template.FuncMap{
	"q":       quote,
	"heredoc": func() string { return heredocEnd },
	"join":    strings.Join,
	"base":    path.Base,
	"dir":     path.Dir,
	// The install paths and names, for the templates.
	"optDir":            func() string { return optDir },
	"modelsDir":         func() string { return modelsDir },
	"galleryDir":        func() string { return galleryDir },
	"etcDir":            func() string { return etcDir },
	"user":              func() string { return User },
	"workerBin":         func() string { return program(WorkerName) },
	"workerUnit":        func() string { return path.Join(unitDir, WorkerService) },
	"workerService":     func() string { return WorkerService },
	"webService":        func() string { return WebService },
	"scalerService":     func() string { return ScalerService },
	"scalerMetricsPort": func() int { return ScalerMetricsPort },
	"runtimeLib":        func() string { return runtimeLib },
	"uploadDir":         func() string { return amiUploadDir },
}).Parse(scriptTemplates))

// render executes one of the scripts' templates, refusing a file that
// would end its here-document early.
func render(name string, data map[string]any) (string, error) {
	if files, ok := data["Files"].([]scriptFile); ok {
		for _, f := range files {
			if !strings.HasSuffix(f.Text, "\n") {
				return "", fmt.Errorf("render %s: %s does not end in a newline", name, f.Path)
			}
			for _, line := range strings.Split(f.Text, "\n") {
				if line == heredocEnd {
					return "", fmt.Errorf("render %s: %s contains the line %s", name, f.Path, heredocEnd)
				}
			}
		}
	}
	var b bytes.Buffer
	if err := scripts.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}
