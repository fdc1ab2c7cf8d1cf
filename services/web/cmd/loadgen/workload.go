package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// image is one file of the workload with its expected label and the
// multipart body that uploads it, built once and sent as often as needed.
type image struct {
	File  string // file name, test_00.jpg
	Name  string // file name without extension, test_00: the key in the labels CSV
	Label string // expected label, Paul

	body        []byte // multipart/form-data request body
	contentType string // with the body's boundary
}

// want is the answer the service must give for img under the form field.
func (img *image) want(field string) string {
	if field == fieldInputFile {
		return img.Name + ":" + img.Label
	}
	return img.Label
}

// imageExts are the file types the workload picks up from the images folder.
var imageExts = []string{".jpg", ".jpeg", ".png"}

// loadWorkload reads every image in dir (sorted by name), looks up its label in
// the labels CSV and builds its upload for the form field. Every image must
// have a label.
func loadWorkload(dir, labelsPath, field string) ([]image, error) {
	labels, err := readLabelsFile(labelsPath)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read images: %w (run from the repository root, or set -dataset, -images or %s)", err, datasetEnv)
	}
	var images []image
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || !slices.Contains(imageExts, strings.ToLower(ext)) {
			continue
		}
		img := image{File: e.Name(), Name: strings.TrimSuffix(e.Name(), ext)}
		label, ok := labels[img.Name]
		if !ok {
			return nil, fmt.Errorf("load workload: no label for %s in %s", img.File, labelsPath)
		}
		img.Label = label
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load workload: %w", err)
		}
		if img.body, img.contentType, err = multipartBody(field, img.File, data); err != nil {
			return nil, fmt.Errorf("load workload %s: %w", img.File, err)
		}
		images = append(images, img)
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("load workload: no %s images in %s", strings.Join(imageExts, "/"), dir)
	}
	return images, nil
}

// multipartBody encodes one file upload in form field field, as a browser or
// Python's requests would send it.
func multipartBody(field, file string, data []byte) (body []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part, err := mw.CreateFormFile(field, file)
	if err != nil {
		return nil, "", err
	}
	if _, err := part.Write(data); err != nil {
		return nil, "", err
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

func readLabelsFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w (run from the repository root, or set -dataset, -labels or %s)", err, datasetEnv)
	}
	defer f.Close()
	labels, err := readLabels(f)
	if err != nil {
		return nil, fmt.Errorf("read labels %s: %w", path, err)
	}
	return labels, nil
}

// readLabels parses the course's labels CSV: a header naming the columns
// Image and Results (case-insensitive), then one row per image, "test_00,Paul".
// An image may be given with or without its extension; the map is keyed by
// the name without it.
func readLabels(r io.Reader) (map[string]string, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty file")
	}
	if err != nil {
		return nil, err
	}
	imageCol, labelCol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "image":
			imageCol = i
		case "results", "result", "label":
			labelCol = i
		}
	}
	if imageCol < 0 || labelCol < 0 {
		return nil, fmt.Errorf("header %q: want columns Image and Results", header)
	}
	labels := make(map[string]string)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimSpace(rec[imageCol])
		name = strings.TrimSuffix(name, filepath.Ext(name))
		label := strings.TrimSpace(rec[labelCol])
		if name == "" || label == "" {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("line %d: empty image or label", line)
		}
		if prev, ok := labels[name]; ok && prev != label {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("line %d: %s labelled both %q and %q", line, name, prev, label)
		}
		labels[name] = label
	}
	if len(labels) == 0 {
		return nil, errors.New("no rows")
	}
	return labels, nil
}
