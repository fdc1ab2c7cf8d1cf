package deploy

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// tarEntry is one entry of the model bundle: name in the archive, file on
// this machine (empty for a folder).
type tarEntry struct {
	name, src string
}

// packModels writes the model bundle to dst: models/<modelFiles> and
// gallery/<every file of gallery>, with their folders.
func packModels(dst, models, gallery string) error {
	entries := []tarEntry{{name: "models/"}}
	for _, name := range modelFiles {
		entries = append(entries, tarEntry{name: "models/" + name, src: filepath.Join(models, name)})
	}
	err := filepath.WalkDir(gallery, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(gallery, p)
		if err != nil {
			return err
		}
		name := path.Join("gallery", filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			entries = append(entries, tarEntry{name: name + "/"})
		case d.Type().IsRegular():
			entries = append(entries, tarEntry{name: name, src: p})
		default:
			return fmt.Errorf("%s: not a regular file or folder", p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack models: gallery: %w", err)
	}
	if err := writeTarGz(dst, entries); err != nil {
		return fmt.Errorf("pack models: %w", err)
	}
	return nil
}

// writeTarGz writes entries as a reproducible gzipped tarball: sorted by
// name, USTAR headers with zero time, owner root (0/0, no names), modes
// 0755 (folders) and 0644 (files), gzip without name or time. The same
// contents give the same bytes.
func writeTarGz(dst string, entries []tarEntry) (err error) {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b tarEntry) int { return strings.Compare(a.name, b.name) })
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if err := writeEntry(tw, e); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeEntry(tw *tar.Writer, e tarEntry) error {
	hdr := &tar.Header{Name: e.name, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}
	if e.src == "" {
		hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		return tw.WriteHeader(hdr)
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, info.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", e.name, err)
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", e.name, err)
	}
	return nil
}
