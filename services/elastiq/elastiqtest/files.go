package elastiqtest

import (
	"os"
	"path/filepath"
	"testing"
)

// The files the tests of the classifier and of the programs need: the models
// fetched by scripts/fetch-models.sh and the bundled CSE546 demo gallery. A
// missing file fails the test when CI=true and skips it otherwise, saying
// what to run to get it.

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

func missingFile(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
