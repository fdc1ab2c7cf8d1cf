// Package deploy is the machine side of an elastiq deployment on AWS: it
// builds what the instances run (Build: the Linux binaries of web, scaler and
// worker and the worker's model bundle, each named by its SHA-256) and
// renders what they do at first boot (WebUserData, WorkerUserData: cloud-init
// scripts for Amazon Linux 2023 that fetch the bundle's objects from S3,
// verify them, write the programs' configuration and start them as systemd
// services, Units).
//
// The Pulumi program (package main of this module) uploads each bundle file
// to s3://BUCKET/<Object.Key> and passes the resulting plain values to the
// user-data functions (through ApplyT). The worker image of ami/ installs the
// same files and the same unit: ami/provision.sh and ami/elastiq-worker.service
// are rendered here (ProvisionScript, WorkerUnit) and a test keeps the
// committed copies equal (go generate rewrites them).
//
// The layout on the instances:
//
//	/opt/elastiq/bin/{web,scaler,worker}   the programs
//	/opt/elastiq/models/                   ONNX Runtime, the face models, MANIFEST (worker)
//	/opt/elastiq/gallery/                  the enrolled faces (worker)
//	/etc/elastiq/{web,scaler,worker}.env   the configuration, ELASTIQ_<FLAG>=value
//	/etc/systemd/system/*.service          the units
//	/var/cache/elastiq-worker/             the gallery's embeddings (systemd CacheDirectory)
package deploy

//go:generate go test -run TestGeneratedFiles -update .

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// The bundle's file names: the objects' last key element and the files
// Build writes into its output folder.
const (
	WebName    = "web"
	ScalerName = "scaler"
	WorkerName = "worker"
	ModelsName = "models.tar.gz"
	// SumsName is the sha256sum(1) listing Build writes next to the files
	// (ami/provision.sh checks the uploaded bundle with it).
	SumsName = "SHA256SUMS"
)

// KeyPrefix is where the bundle's objects live in the stack's bucket:
// KeyPrefix + <sha256> + "/" + <name>. The instances' roles need
// s3:GetObject on it (web: web and scaler; worker from plain Amazon Linux:
// worker and models.tar.gz).
const KeyPrefix = "deploy/"

// The Amazon Linux 2023 image the instances and ami/ start from: the most
// recent image owned by AmazonLinuxOwner whose name matches AL2023NameFilter
// (x86_64, hvm, ebs). The filter excludes the minimal image, which lacks the
// AWS CLI the user data uses.
const (
	AmazonLinuxOwner = "amazon"
	AL2023NameFilter = "al2023-ami-2023.*-x86_64"
)

// Object is one file of the bundle as stored in S3, addressed by content.
type Object struct {
	// Name is the file's name (WebName, ScalerName, WorkerName, ModelsName).
	Name string
	// SHA256 is the file's SHA-256 in lower-case hex.
	SHA256 string
}

// Key is the object's S3 key: deploy/<sha256>/<name>. A change of content
// is a new key, so user data that names it changes too and the instances
// roll.
func (o Object) Key() string { return KeyPrefix + o.SHA256 + "/" + o.Name }

var (
	hexSum   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// validate checks the object against the name it must have.
func (o Object) validate(want string) error {
	if o.Name != want {
		return fmt.Errorf("object %q: want name %q", o.Name, want)
	}
	if !hexSum.MatchString(o.SHA256) {
		return fmt.Errorf("object %s: sha256 %q: want 64 lower-case hex digits", o.Name, o.SHA256)
	}
	return nil
}

// safeValue matches configuration values that go into a script, an env file
// or an S3 URI verbatim: URLs, bucket names, IDs, regions, host:port.
var safeValue = regexp.MustCompile(`^[A-Za-z0-9._:/@%+=,~-]+$`)

// field is one named configuration value, for validation.
type field struct{ name, value string }

// checkValues reports every field that is empty or has characters that do
// not belong in a URL, name or ID (quotes, spaces, $, newlines...).
func checkValues(fields ...field) error {
	var errs []error
	for _, f := range fields {
		switch {
		case f.value == "":
			errs = append(errs, fmt.Errorf("%s: required", f.name))
		case !safeValue.MatchString(f.value):
			errs = append(errs, fmt.Errorf("%s %q: unexpected characters", f.name, f.value))
		}
	}
	return errors.Join(errs...)
}

// sumBytes is the SHA-256 of data in lower-case hex.
func sumBytes(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// FindRoot returns the repository root: dir or its nearest parent that holds
// go.work. The Pulumi program runs in infra/, so it finds the root above.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find root: no go.work in %s or its parents", dir)
		}
	}
}

// Install paths on the instances (see the package comment).
const (
	optDir     = "/opt/elastiq"
	binDir     = optDir + "/bin"
	modelsDir  = optDir + "/models"
	galleryDir = optDir + "/gallery"
	etcDir     = "/etc/elastiq"
	unitDir    = "/etc/systemd/system"
	// amiUploadDir is where ami/worker.pkr.hcl uploads the bundle for
	// provision.sh.
	amiUploadDir = "/tmp/elastiq-bundle"
	// cacheName is the worker's systemd CacheDirectory= under /var/cache.
	cacheName = "elastiq-worker"
)

// program is where a program is installed.
func program(name string) string { return path.Join(binDir, name) }

// envFile is the environment file of a program.
func envFile(name string) string { return path.Join(etcDir, name+".env") }

// envLine is one line of an environment file; the values were checked by
// checkValues, so they need no quoting.
type envLine struct{ key, value string }

// renderEnv renders an environment file (systemd EnvironmentFile= syntax).
func renderEnv(comment string, lines []envLine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s (written by the instance's user data)\n", comment)
	for _, l := range lines {
		fmt.Fprintf(&b, "%s=%s\n", l.key, l.value)
	}
	return b.String()
}
