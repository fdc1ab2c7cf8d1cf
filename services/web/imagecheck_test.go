package web

import (
	"bytes"
	"errors"
	"image"
	"os"
	"path/filepath"
	"testing"
)

// sampleImages reads testdata/images and the CSE546 faces.
func sampleImages(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "images", "*.*g"))
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata/images: %d files (%v), want at least 10", len(files), err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	faces, _ := loadFaces(t)
	for _, f := range faces[:10] { // the other 90 repeat these
		out[f.name] = f.data
	}
	return out
}

// TestCheckWholeAgreesWithDecoder: every sample, all of which Go's decoder
// reads in full, passes the check.
func TestCheckWholeAgreesWithDecoder(t *testing.T) {
	for name, b := range sampleImages(t) {
		t.Run(name, func(t *testing.T) {
			_, format, err := image.DecodeConfig(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("DecodeConfig(%s) error: %v", name, err)
			}
			_, _, decodeErr := image.Decode(bytes.NewReader(b))
			checkErr := checkWhole(format, b)
			if decodeErr != nil || checkErr != nil {
				t.Errorf("%s: image.Decode error %v, checkWhole error %v; want both nil", name, decodeErr, checkErr)
			}
		})
	}
}

// TestCheckWholeRefusesEveryTruncation cuts each sample at every length and
// expects the check to refuse all of them.
func TestCheckWholeRefusesEveryTruncation(t *testing.T) {
	for name, b := range sampleImages(t) {
		_, format, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("DecodeConfig(%s) error: %v", name, err)
		}
		for n := range len(b) {
			if err := checkWhole(format, b[:n]); err == nil {
				t.Errorf("checkWhole(%s cut to %d of %d bytes) = nil, want an error", name, n, len(b))
				break
			}
		}
	}
}

func TestCheckWholeVariants(t *testing.T) {
	faces, _ := loadFaces(t)
	jpg := faces[0].data
	body := jpg[2 : len(jpg)-2] // between SOI and EOI
	pngs := sampleImages(t)
	png := pngs["basn6a08.png"]
	tests := []struct {
		name    string
		format  string
		data    []byte
		wantErr bool
	}{
		{name: "jpeg with bytes after EOI", format: "jpeg", data: append(bytes.Clone(jpg), "trailing junk"...)},
		{name: "jpeg with fill bytes before EOI", format: "jpeg", data: join(jpg[:len(jpg)-2], []byte{0xff, 0xff, 0xff, 0xd9})},
		{name: "jpeg with a stray RST before EOI", format: "jpeg", data: join(jpg[:len(jpg)-2], []byte{0xff, 0xd0, 0xff, 0xd9})},
		{name: "jpeg without SOI", format: "jpeg", data: body, wantErr: true},
		{name: "jpeg ending in its scan", format: "jpeg", data: jpg[:len(jpg)-2], wantErr: true},
		{name: "jpeg with no scan", format: "jpeg", data: []byte{0xff, 0xd8, 0xff, 0xd9}, wantErr: true},
		{name: "jpeg with a bad segment length", format: "jpeg", data: []byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x01, 0xff, 0xd9}, wantErr: true},
		{name: "png with bytes after IEND", format: "png", data: append(bytes.Clone(png), "trailing junk"...)},
		{name: "png with a flipped bit", format: "png", data: flipBit(png, len(png)/2), wantErr: true},
		{name: "png without IEND", format: "png", data: png[:len(png)-12], wantErr: true},
		{name: "unknown format", format: "gif", data: jpg, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkWhole(tt.format, tt.data)
			if (err != nil) != tt.wantErr {
				t.Errorf("checkWhole(%s) = %v, want error %v", tt.name, err, tt.wantErr)
			}
			if tt.name == "jpeg ending in its scan" && !errors.Is(err, errIncomplete) {
				t.Errorf("checkWhole(%s) = %v, want errIncomplete", tt.name, err)
			}
		})
	}
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func flipBit(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x10
	return c
}

// BenchmarkCheckImage compares the structural check with a full decode on
// a CSE546 face.
func BenchmarkCheckImage(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "datasets", "cse546-faces", "face_images_100", "test_00.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("checkWhole", func(b *testing.B) {
		for b.Loop() {
			if err := checkWhole("jpeg", data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("image.Decode", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzCheckWhole: the check never panics, whatever the bytes (it runs on
// every upload). Run with: go test -fuzz FuzzCheckWhole -fuzztime 60s
func FuzzCheckWhole(f *testing.F) {
	for _, name := range []string{"video-001.restart2.jpeg", "video-005.gray.q50.2x2.progressive.jpeg", "basn3p02.png"} {
		b, err := os.ReadFile(filepath.Join("testdata", "images", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, format, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			format = "jpeg"
			if bytes.HasPrefix(b, []byte("\x89PNG")) {
				format = "png"
			}
		}
		_ = checkWhole(format, b)
	})
}
