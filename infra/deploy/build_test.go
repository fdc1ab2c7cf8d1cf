package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBuild builds the bundle twice, as `pulumi up` would, and checks that
// it holds runnable linux/amd64 programs that accept the configuration the
// user data gives them, a model bundle with the expected listing, and that
// the two builds are byte-identical.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three programs for linux/amd64 (minutes on a cold cache)")
	}
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	outs := []string{t.TempDir(), t.TempDir()}
	b, err := Build(ctx, BuildOptions{Root: root, Out: outs[0]})
	if err != nil {
		t.Fatal(err)
	}
	// The second build through cmd/bundle, as ami/README.md says, in its
	// own process (this one may run with the race detector, which makes
	// compressing the models slow).
	cmd := exec.CommandContext(ctx, "go", "run", "./deploy/cmd/bundle", "-root", root, "-out", outs[1])
	cmd.Dir = filepath.Join(root, "infra")
	listing, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./deploy/cmd/bundle: %v", err)
	}
	var second Bundle
	names := []string{WebName, ScalerName, WorkerName, ModelsName}
	for i, f := range []*File{&second.Web, &second.Scaler, &second.Worker, &second.Models} {
		if *f, err = hashFile(filepath.Join(outs[1], names[i]), names[i]); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(listing), f.Key()) {
			t.Errorf("bundle listed\n%s\nwithout %s", listing, f.Key())
		}
	}
	bundles := []Bundle{b, second}

	t.Run("files", func(t *testing.T) {
		for i, want := range []string{WebName, ScalerName, WorkerName, ModelsName} {
			f := b.Files()[i]
			if f.Name != want || f.Path != filepath.Join(outs[0], want) {
				t.Errorf("Files()[%d] = %s at %s, want %s in %s", i, f.Name, f.Path, want, outs[0])
			}
			got, err := hashFile(f.Path, f.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got != f {
				t.Errorf("%s: Build says %+v, the file is %+v", f.Name, f, got)
			}
		}
		cmd := exec.Command("sha256sum", "--check", "--strict", SumsName)
		cmd.Dir = outs[0]
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum --check %s: %v\n%s", SumsName, err, out)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		for i, f := range b.Files() {
			g := bundles[1].Files()[i]
			if f.Object != g.Object || f.Size != g.Size {
				t.Errorf("second build's %s = %+v, want %+v", f.Name, g.Object, f.Object)
			}
			x, err1 := os.ReadFile(f.Path)
			y, err2 := os.ReadFile(g.Path)
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(x, y) {
				t.Errorf("%s differs between two builds of the same sources", f.Name)
			}
		}
	})

	t.Run("elf", func(t *testing.T) {
		for _, f := range []File{b.Web, b.Scaler, b.Worker} {
			interp := elfInterp(t, f.Path)
			if f.Name == WorkerName {
				// cgo: dynamically linked, for ONNX Runtime's dlopen.
				if interp != "/lib64/ld-linux-x86-64.so.2" {
					t.Errorf("worker interpreter = %q, want /lib64/ld-linux-x86-64.so.2", interp)
				}
				newest, err := newestGlibc(f.Path)
				if err != nil {
					t.Fatal(err)
				}
				if newest[0] != 2 || glibcAfter(newest, MaxGlibc) {
					t.Errorf("worker needs GLIBC_%d.%d, want 2.x at most %d.%d", newest[0], newest[1], MaxGlibc[0], MaxGlibc[1])
				}
			} else if interp != "" {
				t.Errorf("%s interpreter = %q, want a static binary (CGO_ENABLED=0)", f.Name, interp)
			}
		}
	})

	// The programs run here (linux/amd64) and accept every variable the
	// user data and units set, and every flag of their ExecStart.
	t.Run("flags", func(t *testing.T) {
		web, worker := testWebConfig(), testWorkerConfig()
		unitEnv := strings.Fields(parseUnit(t, WorkerUnit().Text).one(t, "Service", "Environment"))
		tests := []struct {
			file File
			env  []string
			args []string
		}{
			{b.Web, envKeys(t, web.WebEnv()), nil},
			{b.Scaler, envKeys(t, web.ScalerEnv()), nil},
			{b.Worker, append(envKeys(t, worker.WorkerEnv()), envKeys(t, strings.Join(unitEnv, "\n"))...),
				strings.Fields(parseUnit(t, WorkerUnit().Text).one(t, "Service", "ExecStart"))[1:]},
		}
		for _, tc := range tests {
			t.Run(tc.file.Name, func(t *testing.T) {
				flags := usageFlags(t, tc.file.Path)
				for _, key := range tc.env {
					name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(key, "ELASTIQ_")), "_", "-")
					if !flags[name] {
						t.Errorf("%s is set but %s has no flag -%s", key, tc.file.Name, name)
					}
				}
				for _, a := range tc.args {
					if name, ok := strings.CutPrefix(a, "-"); ok && !flags[name] {
						t.Errorf("ExecStart passes %s, %s has no such flag", a, tc.file.Name)
					}
				}
			})
		}
	})

	t.Run("models", func(t *testing.T) {
		checkModelsTarball(t, b.Models.Path, filepath.Join(root, ".models"), filepath.Join(root, "datasets", "cse546-faces"))
	})
}

// elfInterp checks that path is an x86-64 Linux executable and returns its
// interpreter ("" for a static one).
func elfInterp(t *testing.T, path string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: not an ELF file: %v", path, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		t.Errorf("%s: %v %v %v, want a 64-bit x86-64 executable", path, f.Class, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			data, err := io.ReadAll(p.Open())
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimRight(string(data), "\x00")
		}
	}
	return ""
}

// usageFlags runs the program with -h: it must exit 0 and list its flags.
func usageFlags(t *testing.T, program string) map[string]bool {
	t.Helper()
	cmd := exec.Command(program, "-h")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -h: %v\n%s", program, err, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "Usage of ") {
		t.Errorf("%s -h printed %q, want a usage text", program, firstLine(stderr.String()))
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(stderr.String(), -1) {
		flags[m[1]] = true
	}
	if !flags["request-queue-url"] {
		t.Errorf("%s -h lists %v, want -request-queue-url among them", program, flags)
	}
	return flags
}

// envKeys returns the variables an environment file sets.
func envKeys(t *testing.T, text string) []string {
	t.Helper()
	var keys []string
	for k := range parseEnv(t, text) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkModelsTarball checks the model bundle: sorted entries with zero
// times and owners; models/ has exactly the runtime, the four models and
// MANIFEST, gallery/ exactly the gallery folder, with the same contents.
func checkModelsTarball(t *testing.T, tarball, models, gallery string) {
	t.Helper()
	want := map[string]string{"models/": ""} // name -> source file ("" for a folder)
	for _, name := range []string{"MANIFEST", "fr_detect.onnx", "fr_feature.onnx", "fr_landmark.onnx", "dlib_face.onnx", "libonnxruntime.so.1"} {
		want["models/"+name] = filepath.Join(models, name)
	}
	err := filepath.WalkDir(gallery, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(gallery, p)
		if d.IsDir() {
			want[path.Join("gallery", rel)+"/"] = ""
		} else {
			want[path.Join("gallery", rel)] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want["gallery/labels.csv"] == "" {
		t.Fatalf("gallery %s has no labels.csv: not the CSE546 gallery", gallery)
	}

	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header: time %v, name %q; want none", zr.ModTime, zr.Name)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		src, ok := want[hdr.Name]
		if !ok {
			t.Errorf("unexpected entry %s", hdr.Name)
			continue
		}
		delete(want, hdr.Name)
		if hdr.ModTime.Unix() != 0 || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: time %v, owner %d/%d %q/%q; want zero", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		wantMode, wantType := int64(0o644), byte(tar.TypeReg)
		if src == "" {
			wantMode, wantType = 0o755, tar.TypeDir
		}
		if hdr.Mode != wantMode || hdr.Typeflag != wantType {
			t.Errorf("%s: mode %o type %c, want %o %c", hdr.Name, hdr.Mode, hdr.Typeflag, wantMode, wantType)
		}
		if src == "" {
			continue
		}
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		source, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, source) {
			t.Errorf("%s differs from %s", hdr.Name, src)
		}
	}
	for name := range want {
		t.Errorf("missing entry %s", name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
}

func TestWriteTarGzReproducible(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("content of "+filepath.Base(p)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	entries := []tarEntry{{"x/", ""}, {"x/b", b}, {"x/a", a}}
	first, second := filepath.Join(dir, "1.tar.gz"), filepath.Join(dir, "2.tar.gz")
	if err := writeTarGz(first, entries); err != nil {
		t.Fatal(err)
	}
	// The same files with other times, modes and order.
	later := time.Now().Add(time.Hour)
	for _, p := range []string{a, b} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeTarGz(second, []tarEntry{entries[2], entries[0], entries[1]}); err != nil {
		t.Fatal(err)
	}
	x, err1 := os.ReadFile(first)
	y, err2 := os.ReadFile(second)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Error("two tarballs of the same files (other times, modes, order) differ")
	}
	out, err := exec.Command("tar", "-tzf", first).Output()
	if err != nil {
		t.Fatalf("tar -tzf: %v", err)
	}
	if got, want := string(out), "x/\nx/a\nx/b\n"; got != want {
		t.Errorf("tar -tzf = %q, want %q", got, want)
	}
}

func TestCheckManifest(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(dir string, manifest *string) error
		wantErr string
	}{
		{name: "as fetched"},
		{name: "model changed", edit: func(dir string, _ *string) error {
			return os.WriteFile(filepath.Join(dir, "fr_detect.onnx"), []byte("another model"), 0o644)
		}, wantErr: "fr_detect.onnx: sha256"},
		{name: "runtime not listed", edit: func(_ string, m *string) error {
			*m = regexp.MustCompile(`(?m)^.*libonnxruntime.*\n`).ReplaceAllString(*m, "")
			return nil
		}, wantErr: "MANIFEST lists no libonnxruntime.so.1"},
		{name: "model missing", edit: func(dir string, _ *string) error {
			return os.Remove(filepath.Join(dir, "fr_feature.onnx"))
		}, wantErr: "fr_feature.onnx"},
		{name: "malformed line", edit: func(_ string, m *string) error {
			*m += "onnxruntime-node 1.30.0\n"
			return nil
		}, wantErr: "want 5 fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			manifest := "# package version license file sha256\n"
			for _, name := range modelFiles {
				if name == "MANIFEST" {
					continue
				}
				data := []byte("bytes of " + name)
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
				manifest += "pkg 1.0.0 MIT " + name + " " + sumBytes(data) + "\n"
			}
			if tc.edit != nil {
				if err := tc.edit(dir, &manifest); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			err := checkManifest(dir)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("checkManifest() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestGlibcAfter(t *testing.T) {
	tests := []struct {
		name string
		a, b [2]int
		want bool
	}{
		{"same", [2]int{2, 34}, [2]int{2, 34}, false},
		{"newer minor", [2]int{2, 36}, [2]int{2, 34}, true},
		{"older minor", [2]int{2, 17}, [2]int{2, 34}, false},
		{"minor 4 is older than 34", [2]int{2, 4}, [2]int{2, 34}, false},
		{"newer major", [2]int{3, 0}, [2]int{2, 34}, true},
		{"static", [2]int{0, 0}, [2]int{2, 34}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := glibcAfter(tc.a, tc.b); got != tc.want {
				t.Errorf("glibcAfter(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestFindRoot(t *testing.T) {
	dir := t.TempDir()
	deep := filepath.Join(dir, "infra", "deploy")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindRoot(deep); err == nil {
		t.Errorf("FindRoot(%s) without go.work = nil error, want one", deep)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.work"), []byte("go 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := FindRoot(deep); err != nil || got != dir {
		t.Errorf("FindRoot(%s) = %q, %v; want %q", deep, got, err, dir)
	}
}

func TestBuildOptionsRequired(t *testing.T) {
	for _, o := range []BuildOptions{{Out: t.TempDir()}, {Root: t.TempDir()}, {Root: t.TempDir(), Out: t.TempDir()}} {
		if _, err := Build(context.Background(), o); err == nil {
			t.Errorf("Build(%+v) = nil error, want one (no root with go.work, or no out)", o)
		}
	}
}
