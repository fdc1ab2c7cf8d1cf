package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// The programs' packages, relative to the repository root.
const (
	webPkg    = "./services/web/cmd/web"
	scalerPkg = "./services/scaler/cmd/scaler"
	workerPkg = "./services/worker/cmd/worker"
)

// runtimeLib is ONNX Runtime's library, which the worker dlopens.
const runtimeLib = "libonnxruntime.so.1"

// modelFiles are the files of the models folder that go into the bundle
// (scripts/fetch-models.sh fetches them; MANIFEST lists the others with
// their SHA-256).
var modelFiles = []string{"MANIFEST", "fr_detect.onnx", "fr_feature.onnx", "fr_landmark.onnx", "dlib_face.onnx", runtimeLib}

// MaxGlibc is the newest glibc symbol version the worker may need: Amazon
// Linux 2023 has glibc 2.34. The worker is built with cgo on the build
// machine, whose glibc may be newer; Build fails rather than ship a worker
// that would not start.
var MaxGlibc = [2]int{2, 34}

// BuildOptions says where Build finds the sources and puts the bundle.
type BuildOptions struct {
	// Root is the repository root (the folder of go.work; see FindRoot).
	Root string
	// Out is the folder the bundle's files are written to (created).
	Out string
	// Models is the folder of the runtime and models (default
	// <Root>/.models); scripts/fetch-models.sh fills it if files are missing.
	Models string
	// Gallery is the folder of enrolled faces packed into the model bundle
	// (default <Root>/datasets/cse546-faces).
	Gallery string
	// Logger gets progress (default: none).
	Logger *slog.Logger
}

// File is one file of a built bundle.
type File struct {
	Object
	// Path is the file on this machine.
	Path string
	Size int64
}

// Bundle is what Build produced: the three programs for linux/amd64 and the
// worker's model bundle (models/ and gallery/, unpacked in /opt/elastiq).
type Bundle struct {
	Web, Scaler, Worker, Models File
}

// Files lists the bundle's files: web, scaler, worker, models.tar.gz.
func (b Bundle) Files() []File { return []File{b.Web, b.Scaler, b.Worker, b.Models} }

// Build builds the bundle into opts.Out: web and scaler with CGO_ENABLED=0,
// the worker with cgo (onnxruntime_go dlopens ONNX Runtime), all
// `go build -trimpath` for linux/amd64 from the go.work workspace; and
// models.tar.gz, a reproducible tarball (sorted entries, zero times and
// owners) of the models (fetched if missing, checked against MANIFEST) and
// the gallery. It writes SHA256SUMS next to them. The same sources give the
// same bytes, hence the same object keys.
func Build(ctx context.Context, opts BuildOptions) (Bundle, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Bundle{}, err
	}
	log := opts.Logger
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return Bundle{}, fmt.Errorf("build: %w", err)
	}
	if err := canBuildWorker(); err != nil {
		return Bundle{}, err
	}

	log.Info("building web and scaler", "out", opts.Out)
	if err := goBuild(ctx, opts, false, webPkg, scalerPkg); err != nil {
		return Bundle{}, err
	}
	log.Info("building worker (cgo)", "out", opts.Out)
	if err := goBuild(ctx, opts, true, workerPkg); err != nil {
		return Bundle{}, err
	}
	if err := checkWorkerGlibc(filepath.Join(opts.Out, WorkerName)); err != nil {
		return Bundle{}, err
	}

	if err := ensureModels(ctx, opts); err != nil {
		return Bundle{}, err
	}
	log.Info("packing models and gallery", "models", opts.Models, "gallery", opts.Gallery)
	if err := packModels(filepath.Join(opts.Out, ModelsName), opts.Models, opts.Gallery); err != nil {
		return Bundle{}, err
	}

	var b Bundle
	for _, f := range []struct {
		dst  *File
		name string
	}{{&b.Web, WebName}, {&b.Scaler, ScalerName}, {&b.Worker, WorkerName}, {&b.Models, ModelsName}} {
		if *f.dst, err = hashFile(filepath.Join(opts.Out, f.name), f.name); err != nil {
			return Bundle{}, err
		}
	}
	if err := writeSums(filepath.Join(opts.Out, SumsName), b.Files()); err != nil {
		return Bundle{}, err
	}
	return b, nil
}

func (o BuildOptions) withDefaults() (BuildOptions, error) {
	if o.Root == "" || o.Out == "" {
		return o, errors.New("build: Root and Out are required")
	}
	var err error
	if o.Root, err = filepath.Abs(o.Root); err != nil {
		return o, fmt.Errorf("build: %w", err)
	}
	if _, err := os.Stat(filepath.Join(o.Root, "go.work")); err != nil {
		return o, fmt.Errorf("build: root %s: no go.work: %w", o.Root, err)
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return o, fmt.Errorf("build: %w", err)
	}
	if o.Models == "" {
		o.Models = filepath.Join(o.Root, ".models")
	}
	if o.Gallery == "" {
		o.Gallery = filepath.Join(o.Root, "datasets", "cse546-faces")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// canBuildWorker: the worker needs a C toolchain for linux/amd64, which this
// machine's is only on linux/amd64 (elsewhere set CC to a cross compiler).
func canBuildWorker() error {
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		return nil
	}
	if os.Getenv("CC") != "" {
		return nil
	}
	return fmt.Errorf("build worker: it needs cgo for linux/amd64: build on linux/amd64 or set CC to a linux/amd64 cross compiler (this is %s/%s)",
		runtime.GOOS, runtime.GOARCH)
}

// goBuild builds pkgs into opts.Out for linux/amd64, reproducibly: no paths,
// no VCS stamp (a commit that changes no code changes no binary), no symbol
// tables.
func goBuild(ctx context.Context, opts BuildOptions, cgo bool, pkgs ...string) error {
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", opts.Out + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = opts.Root
	cgoEnabled := "0"
	if cgo {
		cgoEnabled = "1"
	}
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED="+cgoEnabled, "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// checkWorkerGlibc fails if the worker needs a glibc symbol version newer
// than MaxGlibc.
func checkWorkerGlibc(path string) error {
	newest, err := newestGlibc(path)
	if err != nil {
		return err
	}
	if glibcAfter(newest, MaxGlibc) {
		return fmt.Errorf("check worker: it needs GLIBC_%d.%d, Amazon Linux 2023 has %d.%d: build on an older distribution",
			newest[0], newest[1], MaxGlibc[0], MaxGlibc[1])
	}
	return nil
}

// glibcAfter reports whether glibc version a is newer than b.
func glibcAfter(a, b [2]int) bool { return a[0] > b[0] || a[0] == b[0] && a[1] > b[1] }

// newestGlibc returns the newest GLIBC_x.y version an x86-64 ELF executable
// needs ({0, 0} for a static one).
func newestGlibc(path string) ([2]int, error) {
	f, err := elf.Open(path)
	if err != nil {
		return [2]int{}, fmt.Errorf("check %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return [2]int{}, fmt.Errorf("check %s: %v %v, want x86-64", path, f.Class, f.Machine)
	}
	needs, err := f.DynamicVersionNeeds()
	if errors.Is(err, elf.ErrNoSymbols) || f.Section(".gnu.version_r") == nil {
		return [2]int{}, nil
	}
	if err != nil {
		return [2]int{}, fmt.Errorf("check %s: %w", path, err)
	}
	var newest [2]int
	for _, n := range needs {
		for _, dep := range n.Needs {
			v, ok := strings.CutPrefix(dep.Dep, "GLIBC_")
			if !ok {
				continue
			}
			parts := strings.Split(v, ".")
			if len(parts) < 2 {
				continue
			}
			major, err1 := strconv.Atoi(parts[0])
			minor, err2 := strconv.Atoi(parts[1])
			if err1 != nil || err2 != nil {
				continue
			}
			if v := [2]int{major, minor}; glibcAfter(v, newest) {
				newest = v
			}
		}
	}
	return newest, nil
}

// ensureModels runs scripts/fetch-models.sh when a model file is missing,
// then checks every file against MANIFEST.
func ensureModels(ctx context.Context, opts BuildOptions) error {
	missing := false
	for _, name := range modelFiles {
		if _, err := os.Stat(filepath.Join(opts.Models, name)); err != nil {
			missing = true
		}
	}
	if missing {
		opts.Logger.Info("fetching the models", "into", opts.Models)
		cmd := exec.CommandContext(ctx, filepath.Join(opts.Root, "scripts", "fetch-models.sh"), opts.Models)
		cmd.Dir = opts.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("fetch models: %w\n%s", err, out)
		}
	}
	return checkManifest(opts.Models)
}

// checkManifest checks each model file against the SHA-256 that
// fetch-models.sh recorded in MANIFEST ("package version license file
// sha256" lines).
func checkManifest(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return fmt.Errorf("check models: %w", err)
	}
	want := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 5 {
			return fmt.Errorf("check models: MANIFEST line %q: want 5 fields", sc.Text())
		}
		want[fields[3]] = fields[4]
	}
	for _, name := range modelFiles {
		if name == "MANIFEST" {
			continue
		}
		sum, ok := want[name]
		if !ok {
			return fmt.Errorf("check models: MANIFEST lists no %s", name)
		}
		f, err := hashFile(filepath.Join(dir, name), name)
		if err != nil {
			return fmt.Errorf("check models: %w", err)
		}
		if f.SHA256 != sum {
			return fmt.Errorf("check models: %s: sha256 %s, MANIFEST says %s (run scripts/fetch-models.sh)", name, f.SHA256, sum)
		}
	}
	return nil
}

// hashFile returns the file at path as the bundle file name.
func hashFile(path, name string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("hash %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("hash %s: %w", name, err)
	}
	return File{Object: Object{Name: name, SHA256: hex.EncodeToString(h.Sum(nil))}, Path: path, Size: n}, nil
}

// writeSums writes files in sha256sum(1) format.
func writeSums(path string, files []File) error {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write sums: %w", err)
	}
	return nil
}
