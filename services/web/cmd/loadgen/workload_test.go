package main

import (
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadLabels(t *testing.T) {
	tests := []struct {
		name    string
		csv     string
		want    map[string]string
		wantErr string
	}{
		{
			name: "course format",
			csv:  "Image,Results\ntest_00,Paul\ntest_01,Emily\n",
			want: map[string]string{"test_00": "Paul", "test_01": "Emily"},
		},
		{
			name: "byte order mark, CRLF, spaces, other column order",
			csv:  "\ufeffResults, Image\r\nPaul , test_00\r\n",
			want: map[string]string{"test_00": "Paul"},
		},
		{
			name: "names with extension",
			csv:  "image,label\ntest_00.jpg,Paul\n",
			want: map[string]string{"test_00": "Paul"},
		},
		{
			name: "same row twice",
			csv:  "Image,Results\ntest_00,Paul\ntest_00,Paul\n",
			want: map[string]string{"test_00": "Paul"},
		},
		{name: "empty file", csv: "", wantErr: "empty file"},
		{name: "no header", csv: "test_00,Paul\n", wantErr: "want columns Image and Results"},
		{name: "header only", csv: "Image,Results\n", wantErr: "no rows"},
		{name: "empty label", csv: "Image,Results\ntest_00,\n", wantErr: "line 2: empty image or label"},
		{name: "two labels", csv: "Image,Results\ntest_00,Paul\ntest_00,Bob\n", wantErr: `line 3: test_00 labelled both "Paul" and "Bob"`},
		{name: "ragged row", csv: "Image,Results\ntest_00\n", wantErr: "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readLabels(strings.NewReader(tt.csv))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("readLabels(%q) error = %v, want %q", tt.csv, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readLabels(%q) error = %v", tt.csv, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("readLabels(%q) = %v, want %v", tt.csv, got, tt.want)
			}
		})
	}
}

// writeFiles creates name -> content files in a new temporary folder.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadWorkload(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b.png": "png bytes", "a.jpg": "jpeg bytes", "notes.txt": "not an image", "labels.csv": "Image,Results\na,Paul\nb,Bob\nc,Gerry\n",
	})
	images, err := loadWorkload(dir, filepath.Join(dir, "labels.csv"), fieldInputFile)
	if err != nil {
		t.Fatalf("loadWorkload() error = %v", err)
	}
	if len(images) != 2 || images[0].File != "a.jpg" || images[1].File != "b.png" {
		t.Fatalf("loadWorkload() = %+v, want a.jpg and b.png in that order", images)
	}
	if got, want := images[0].want(fieldInputFile), "a:Paul"; got != want {
		t.Errorf("want(inputFile) = %q, want %q", got, want)
	}
	if got, want := images[1].want(fieldMyfile), "Bob"; got != want {
		t.Errorf("want(myfile) = %q, want %q", got, want)
	}

	// The upload is one file part in the chosen field, with the file's name and bytes.
	_, params, err := mime.ParseMediaType(images[0].contentType)
	if err != nil {
		t.Fatal(err)
	}
	part, err := multipart.NewReader(strings.NewReader(string(images[0].body)), params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(part)
	if err != nil {
		t.Fatal(err)
	}
	if part.FormName() != fieldInputFile || part.FileName() != "a.jpg" || string(data) != "jpeg bytes" {
		t.Errorf("upload = field %q, file %q, %q; want inputFile, a.jpg, %q", part.FormName(), part.FileName(), data, "jpeg bytes")
	}
}

func TestLoadWorkloadNeedsEveryLabel(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.jpg": "x", "z.jpg": "y", "labels.csv": "Image,Results\na,Paul\n"})
	_, err := loadWorkload(dir, filepath.Join(dir, "labels.csv"), fieldMyfile)
	if err == nil || !strings.Contains(err.Error(), "no label for z.jpg") {
		t.Errorf("loadWorkload() error = %v, want no label for z.jpg", err)
	}
}
