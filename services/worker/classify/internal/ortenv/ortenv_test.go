package ortenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

func TestAcquireRefCounts(t *testing.T) {
	lib := filepath.Join(elastiqtest.ModelDir(t, LibraryName), LibraryName)
	r1, err := Acquire(lib)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	r2, err := Acquire(lib)
	if err != nil {
		t.Fatalf("second Acquire: %v", err)
	}
	// Another copy of the library while one is loaded is refused.
	other := filepath.Join(t.TempDir(), LibraryName)
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(other); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("Acquire(other library) = %v, want an already-loaded error", err)
	}
	if err := r1(); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := r1(); err != nil { // a second call of the same release is a no-op
		t.Fatalf("release again: %v", err)
	}
	if !ort.IsInitialized() {
		t.Fatal("environment destroyed while a reference is held")
	}
	if err := r2(); err != nil {
		t.Fatalf("last release: %v", err)
	}
	if ort.IsInitialized() {
		t.Fatal("environment still initialised after the last release")
	}
	// And it comes back.
	r3, err := Acquire(lib)
	if err != nil {
		t.Fatalf("Acquire after destroy: %v", err)
	}
	if err := r3(); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireMissingLibrary(t *testing.T) {
	if _, err := Acquire(filepath.Join(t.TempDir(), LibraryName)); err == nil {
		t.Error("Acquire(missing library) = nil error, want one")
	}
}
