package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/imagecheck"
)

// upload is a validated image from a multipart form.
type upload struct {
	field       string // the form field it came in
	fileName    string // base name as the client sent it
	contentType string // from the image's format, not the client's header
	body        []byte
	options     elastiq.Options // the client's (POST /v1/recognitions)
	// subject, when set, makes it an enrolment under that name (POST
	// /v1/subjects/{name}/faces), of the largest face if largestFace.
	subject     string
	largestFace bool
}

// multipartSlack is what the body may hold beyond the file itself:
// boundaries, part headers and small fields.
const multipartSlack = 64 << 10

// readUpload streams the multipart body of r and returns the first file in
// one of fields, read to at most maxBytes. missing is the message for a
// form without any of the fields.
func readUpload(w http.ResponseWriter, r *http.Request, maxBytes int64, fields []string, missing string) (upload, error) {
	files, err := readFiles(w, r, maxBytes, [][]string{fields}, missing)
	if err != nil {
		return upload{}, err
	}
	return files[0], nil
}

// readPair streams the multipart body of r and returns the files in the
// form fields first and second, each read to at most maxBytes.
func readPair(w http.ResponseWriter, r *http.Request, maxBytes int64, first, second string) (a, b upload, err error) {
	files, err := readFiles(w, r, maxBytes, [][]string{{first}, {second}},
		fmt.Sprintf("want two form file fields, %q and %q", first, second))
	if err != nil {
		return a, b, err
	}
	return files[0], files[1], nil
}

// readFiles streams the multipart body of r and returns a file for each of
// wants: the first part in any of its fields. Nothing is buffered beyond
// the limits: the body is capped with http.MaxBytesReader at maxBytes a
// file, other parts are skipped as they stream by, and each file part is
// read through a limit. missing is the message for a form without them all.
func readFiles(w http.ResponseWriter, r *http.Request, maxBytes int64, wants [][]string, missing string) ([]upload, error) {
	limit := fmt.Sprintf("upload larger than the limit of %s", formatBytes(maxBytes))
	if len(wants) > 1 {
		limit += " a file"
	}
	tooLarge := fail(errTooLarge, limit)
	maxBody := int64(len(wants))*maxBytes + multipartSlack
	if r.ContentLength > maxBody {
		return nil, tooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fail(errInvalid, "want a multipart/form-data upload")
	}
	files := make([]upload, len(wants))
	for found := 0; found < len(wants); {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, fail(errInvalid, missing)
		}
		if err != nil {
			return nil, bodyError(err, tooLarge)
		}
		field := part.FormName()
		i := slices.IndexFunc(wants, func(fields []string) bool { return slices.Contains(fields, field) })
		if i < 0 || files[i].body != nil {
			// Skipped parts stream by; NextPart discards the rest of this one.
			continue
		}
		u, err := readPart(part, field, maxBytes, r.ContentLength)
		if _, ok := errors.AsType[*problem](err); ok {
			return nil, err
		}
		if err != nil {
			return nil, bodyError(err, tooLarge)
		}
		if len(u.body) > int(maxBytes) {
			return nil, tooLarge
		}
		if len(u.body) == 0 {
			return nil, fail(errInvalid, fmt.Sprintf("empty file %q in form field %q", u.fileName, field))
		}
		files[i] = u
		found++
	}
	return files, nil
}

// initialBuffer is the most an upload's buffer starts with, whatever its
// declared length.
const initialBuffer = 64 << 10

// readPart reads the file in part, at most maxBytes+1 of it (one more than
// allowed, to tell a file at the limit from a larger one). sizeHint, the
// request's length if known, sizes the buffer's start, up to
// initialBuffer.
func readPart(part *multipart.Part, field string, maxBytes, sizeHint int64) (upload, error) {
	defer part.Close()
	// The buffer grows with the bytes received: a client's Content-Length
	// alone reserves no more than initialBuffer.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(sizeHint, 0), maxBytes, initialBuffer)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(part, maxBytes+1)); err != nil {
		return upload{}, err
	}
	body := buf.Bytes()
	raw := path.Base(strings.ReplaceAll(part.FileName(), `\`, "/"))
	if len(raw) > MaxFileName {
		return upload{}, fail(errInvalid, fmt.Sprintf("file name of %d bytes; the limit is %d", len(raw), MaxFileName))
	}
	name := safeFileName(raw)
	if name == "." || name == "/" || name == "" {
		name = "upload"
	}
	return upload{field: field, fileName: name, body: body}, nil
}

// MaxFileName is the longest file name an upload may carry, in bytes: the
// common file systems' limit. A longer one is refused (400), as no store
// could keep it with the input.
const MaxFileName = 255

// safeFileName is name as it is stored, logged and echoed back (POST /
// with inputFile answers "name:label"): invalid UTF-8 and control
// characters (which could forge lines or terminal escapes) each become "_".
func safeFileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, strings.ToValidUTF8(name, "\uFFFD"))
}

// bodyError classifies an error reading the request body.
func bodyError(err, tooLarge error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge
	}
	if isBodyTimeout(err) {
		return failCause(errTimeout, "the upload stalled or was too slow; send it again", err)
	}
	return failCause(errInvalid, "malformed multipart body", err)
}

// imageLimits are the checks an upload's image must pass.
type imageLimits struct {
	maxSide   int
	maxPixels int64
	maxDecode int64 // bytes
}

// check makes sure u is a whole JPEG or PNG of sane dimensions and sets its
// content type. Its pixels are never decoded (see inspect for why).
func (l imageLimits) check(u *upload) error {
	info, err := imagecheck.Inspect(u.body)
	// The header's dimensions are reported first: an absurd image is refused
	// for that, whatever else is wrong with it.
	if info.Width > l.maxSide || info.Height > l.maxSide || int64(info.Width)*int64(info.Height) > l.maxPixels {
		return fail(errInvalid, fmt.Sprintf("%s declares %dx%d pixels; the limit is %d on a side and %d in all",
			u.fileName, info.Width, info.Height, l.maxSide, l.maxPixels))
	}
	if err == nil && info.DecodeBytes > l.maxDecode {
		return fail(errInvalid, fmt.Sprintf("%s (%dx%d %s) needs %d MiB to decode; the limit is %d MiB",
			u.fileName, info.Width, info.Height, info.Kind, info.DecodeBytes>>20, l.maxDecode>>20))
	}
	if err == nil && (info.Width <= 0 || info.Height <= 0) {
		err = fmt.Errorf("%s: %dx%d pixels", info.Format, info.Width, info.Height)
	}
	if err != nil {
		return failCause(errInvalid, fmt.Sprintf("%s is not a decodable JPEG or PNG image", u.fileName), err)
	}
	u.contentType = "image/" + info.Format
	return nil
}

func formatBytes(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
