package elastiqtest

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
)

// The files the tests of the classifier and of the programs need: the models
// fetched by scripts/fetch-models.sh and the bundled CSE546 demo gallery. A
// missing file fails the test, saying what to run to get it, unless the run
// asked for unit tests only (go test -short, make test-unit): then it skips.

// RepoRoot is the folder holding go.work, found upwards from the test's
// working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.work above the test's directory")
		}
		dir = parent
	}
}

// ModelDir returns $ELASTIQ_MODELS, or <repo>/.models, once it holds every
// named file.
func ModelDir(t testing.TB, files ...string) string {
	t.Helper()
	dir := os.Getenv("ELASTIQ_MODELS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), ".models")
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			missingFile(t, "model file %s missing in %s (set ELASTIQ_MODELS or run scripts/fetch-models.sh): %v", f, dir, err)
		}
	}
	return dir
}

// CSE546 returns the bundled demo gallery (face_images_100/ + labels.csv).
func CSE546(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "datasets", "cse546-faces")
	if _, err := os.Stat(filepath.Join(dir, "labels.csv")); err != nil {
		missingFile(t, "CSE546 demo gallery missing: %v", err)
	}
	return dir
}

// LFWSample returns the bundled LFW identity sample (gallery/, queries/,
// labels.csv): recognition of people in photos that are not enrolled.
func LFWSample(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "datasets", "lfw-sample")
	if _, err := os.Stat(filepath.Join(dir, "labels.csv")); err != nil {
		missingFile(t, "LFW sample missing: %v", err)
	}
	return dir
}

// Image is one image of the CSE546 workload with the label it must get.
type Image struct {
	Name  string // test_00.jpg
	Label string
	Data  []byte
}

// Workload reads the course's workload: the 100 images of the bundled
// CSE546 set, in the order of its labels.csv, each with its label.
func Workload(t testing.TB) []Image {
	t.Helper()
	dir := CSE546(t)
	f, err := os.Open(filepath.Join(dir, "labels.csv"))
	if err != nil {
		t.Fatalf("CSE546 workload: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("CSE546 workload: labels.csv: %v", err)
	}
	var imgs []Image
	for _, row := range rows[1:] {
		if len(row) < 2 {
			t.Fatalf("CSE546 workload: labels.csv row %q: want Image,Results", row)
		}
		name := row[0] + ".jpg"
		data, err := os.ReadFile(filepath.Join(dir, "face_images_100", name))
		if err != nil {
			t.Fatalf("CSE546 workload: %v", err)
		}
		imgs = append(imgs, Image{Name: name, Label: row[1], Data: data})
	}
	if len(imgs) != 100 {
		t.Fatalf("CSE546 workload has %d images, want 100", len(imgs))
	}
	return imgs
}

func missingFile(t testing.TB, format string, args ...any) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short, unit tests only: "+format, args...)
	}
	t.Fatalf(format, args...)
}
