package imagecheck

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg" // the decoders the check is compared with
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
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
	for _, f := range elastiqtest.Workload(t)[:10] { // the other 90 repeat these
		out[f.Name] = f.Data
	}
	return out
}

// TestInspectAgreesWithDecoder: every sample, all of which Go's decoder
// reads in full, passes the check, with the format and dimensions that
// image.DecodeConfig reads.
func TestInspectAgreesWithDecoder(t *testing.T) {
	for name, b := range sampleImages(t) {
		t.Run(name, func(t *testing.T) {
			cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("DecodeConfig(%s) error: %v", name, err)
			}
			_, _, decodeErr := image.Decode(bytes.NewReader(b))
			info, err := Inspect(b)
			if decodeErr != nil || err != nil {
				t.Fatalf("%s: image.Decode error %v, inspect error %v; want both nil", name, decodeErr, err)
			}
			want := Info{Format: format, Width: cfg.Width, Height: cfg.Height, Kind: info.Kind, DecodeBytes: info.DecodeBytes}
			if info != want || info.DecodeBytes < 3*int64(cfg.Width)*int64(cfg.Height) || !strings.Contains(info.Kind, map[string]string{"jpeg": "JPEG", "png": "PNG"}[format]) {
				t.Errorf("Inspect(%s) = %+v, want %+v", name, info, want)
			}
		})
	}
}

// TestInspectRefusesEveryTruncation cuts each sample at every length and
// expects the check to refuse all of them.
func TestInspectRefusesEveryTruncation(t *testing.T) {
	for name, b := range sampleImages(t) {
		for n := range len(b) {
			if _, err := Inspect(b[:n]); err == nil {
				t.Errorf("Inspect(%s cut to %d of %d bytes) = nil error, want an error", name, n, len(b))
				break
			}
		}
	}
}

func TestCheckWholeVariants(t *testing.T) {
	jpg := elastiqtest.Workload(t)[0].Data
	body := jpg[2 : len(jpg)-2] // between SOI and EOI
	pngs := sampleImages(t)
	png := pngs["basn6a08.png"]
	sof := bytes.Index(jpg, []byte{0xff, markerSOF0})
	if sof < 0 {
		t.Fatal("test_00.jpg: no baseline frame header")
	}
	withByte := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	tests := []struct {
		name    string
		format  string
		data    []byte
		wantErr bool
	}{
		{name: "jpeg lossless frame", format: "jpeg", data: withByte(jpg, sof+1, 0xc3), wantErr: true},
		{name: "jpeg arithmetic coding", format: "jpeg", data: withByte(jpg, sof+1, 0xc9), wantErr: true},
		{name: "jpeg 12-bit samples", format: "jpeg", data: withByte(jpg, sof+4, 12), wantErr: true},
		{name: "jpeg 2 components", format: "jpeg", data: withByte(jpg, sof+9, 2), wantErr: true},
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
		{name: "gif", format: "gif", data: []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Inspect(tt.data)
			if (err != nil) != tt.wantErr {
				t.Errorf("Inspect(%s) = %v, want error %v", tt.name, err, tt.wantErr)
			}
			if err == nil && info.Format != tt.format {
				t.Errorf("Inspect(%s) format = %q, want %q", tt.name, info.Format, tt.format)
			}
			if tt.name == "jpeg ending in its scan" && !errors.Is(err, ErrIncomplete) {
				t.Errorf("Inspect(%s) = %v, want ErrIncomplete", tt.name, err)
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
	data := elastiqtest.Workload(b)[0].Data
	b.Run("inspect", func(b *testing.B) {
		for b.Loop() {
			if _, err := Inspect(data); err != nil {
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

// FuzzInspect: the check never panics, whatever the bytes (it runs on every
// upload), and what it accepts has the header Go's decoder reads. Run with:
// go test -fuzz FuzzInspect -fuzztime 60s
func FuzzInspect(f *testing.F) {
	for _, name := range []string{"video-001.restart2.jpeg", "video-005.gray.q50.2x2.progressive.jpeg", "basn3p02.png"} {
		b, err := os.ReadFile(filepath.Join("testdata", "images", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Inspect(b)
		if err != nil {
			return
		}
		if info.DecodeBytes < 3*int64(info.Width)*int64(info.Height) {
			t.Errorf("Inspect = %+v: DecodeBytes below the RGB copy's size", info)
		}
		// What Inspect accepts, Go's decoder reads with the same header.
		cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil || format != info.Format || cfg.Width != info.Width || cfg.Height != info.Height {
			t.Errorf("inspect = %+v, but DecodeConfig = %+v %q, %v", info, cfg, format, err)
		}
	})
}

// TestDecodeBytesMatchesDecoder decodes images of every kind Go's encoders
// write, large enough that the pixels dwarf the decoders' fixed buffers, and
// compares DecodeBytes with what the decode allocated (runtime.MemStats)
// plus the RGB copy: it must cover it, and not by more than 10%.
func TestDecodeBytesMatchesDecoder(t *testing.T) {
	const w, h = 1000, 700
	r := image.Rect(0, 0, w, h)
	opaque := func(m draw.Image) draw.Image {
		for y := range h {
			for x := range w {
				m.Set(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
			}
		}
		return m
	}
	translucent := func(m draw.Image) draw.Image {
		for y := range h {
			for x := range w {
				m.Set(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), uint8(x + y)})
			}
		}
		return m
	}
	encPNG := func(m image.Image) []byte {
		var buf bytes.Buffer
		if err := png.Encode(&buf, m); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	encJPEG := func(m image.Image) []byte {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, m, nil); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	palette := make(color.Palette, 256)
	for i := range palette {
		palette[i] = color.Gray{uint8(i)}
	}
	images := map[string][]byte{
		"png grey":     encPNG(opaque(image.NewGray(r))),
		"png grey 16":  encPNG(opaque(image.NewGray16(r))),
		"png rgb":      encPNG(opaque(image.NewRGBA(r))),
		"png rgb 16":   encPNG(opaque(image.NewRGBA64(r))),
		"png rgba":     encPNG(translucent(image.NewNRGBA(r))),
		"png rgba 16":  encPNG(translucent(image.NewNRGBA64(r))),
		"png paletted": encPNG(opaque(image.NewPaletted(r, palette))),
		"jpeg grey":    encJPEG(opaque(image.NewGray(r))),
		"jpeg 4:2:0":   encJPEG(opaque(image.NewRGBA(r))),
	}
	for name, b := range images {
		t.Run(name, func(t *testing.T) {
			info, err := Inspect(b)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, _, err := image.Decode(bytes.NewReader(b)); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			runtime.ReadMemStats(&after)
			used := int64(after.TotalAlloc-before.TotalAlloc) + 3*w*h
			if info.DecodeBytes < used || info.DecodeBytes > used*11/10 {
				t.Errorf("DecodeBytes %d, but the decode allocated %d with the RGB copy", info.DecodeBytes, used)
			}
		})
	}
}
