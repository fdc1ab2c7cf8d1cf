package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefuses checks the command's errors; the conversion itself is
// tested in classify/dlibnet, and scripts/fetch-models.sh checks the
// converted face model's SHA-256.
func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.dat")
	if err := os.WriteFile(bad, []byte("not a dlib network"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, "both -in and -out"},
		{"missing input", []string{"-in", filepath.Join(dir, "none.dat"), "-out", out}, "no such file"},
		{"not dlib", []string{"-in", bad, "-out", out}, "read dlib network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written after a failed conversion", out)
	}
}
