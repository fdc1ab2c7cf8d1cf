// Package enroll enrols a folder of photos through the gallery's API
// (POST /v1/subjects/{name}/faces): each sub-folder is a subject, each of its
// JPEG and PNG files one face. It is the bulk path for thousands of photos:
// several uploads at once, retries of what failed on the server's side, a
// progress line, and a state file that makes a second run take up where the
// first stopped.
package enroll

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/retry"
)

// Options of a Run.
type Options struct {
	// URL is the web tier's base URL; Token its admin token.
	URL, Token string
	// Dir holds one sub-folder per subject.
	Dir string
	// State is the file that records each photo done, so that a second
	// run skips it: "<path>\t<face ID>" for an enrolled one, "<path>\t-
	// <reason>" for one the server refused (no face...).
	State string
	// RetryRefused sends the photos the server refused before again.
	RetryRefused bool
	// Largest enrols the largest face of a photo with several.
	Largest bool
	// Concurrency is how many uploads run at once; Attempts how many times
	// an upload is tried on a server error or a broken connection.
	Concurrency, Attempts int
	// Client defaults to one with a two-minute timeout.
	Client *http.Client
	// Progress receives the progress line, rewritten in place when
	// Interactive, else one line every ProgressEvery.
	Progress      io.Writer
	Interactive   bool
	ProgressEvery time.Duration
}

// Report is what a Run did.
type Report struct {
	Photos   int // found in Dir
	Skipped  int // done by an earlier run
	Enrolled int
	Refused  int // the server's 400: no face, several faces...
	Failed   int // server errors or network errors after every attempt; not in State
	// Refusals lists each refused photo with the server's reason.
	Refusals []string
}

// photo is one file to enrol.
type photo struct {
	subject, path string // path relative to Dir
}

// list finds the photos of dir, by subject then name.
func list(dir string) ([]photo, error) {
	subjects, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []photo
	for _, s := range subjects {
		if !s.IsDir() || strings.HasPrefix(s.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, s.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			switch strings.ToLower(filepath.Ext(f.Name())) {
			case ".jpg", ".jpeg", ".png":
				if !f.IsDir() {
					out = append(out, photo{subject: s.Name(), path: filepath.Join(s.Name(), f.Name())})
				}
			}
		}
	}
	return out, nil
}

// readState reads the photos done by earlier runs: path -> refused.
func readState(path string) (map[string]bool, error) {
	done := map[string]bool{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, result, ok := strings.Cut(sc.Text(), "\t")
		if ok { // a torn last line is not done
			done[p] = strings.HasPrefix(result, "-")
		}
	}
	return done, sc.Err()
}

// Run enrols the photos of o.Dir that earlier runs did not, and reports.
func Run(ctx context.Context, o Options) (Report, error) {
	var rep Report
	if o.Concurrency < 1 {
		o.Concurrency = 4
	}
	if o.Attempts < 1 {
		o.Attempts = 5
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 2 * time.Minute}
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	photos, err := list(o.Dir)
	if err != nil {
		return rep, fmt.Errorf("enrol: %w", err)
	}
	rep.Photos = len(photos)
	done, err := readState(o.State)
	if err != nil {
		return rep, fmt.Errorf("enrol: state: %w", err)
	}
	var todo []photo
	for _, p := range photos {
		if refused, ok := done[p.path]; ok && !(refused && o.RetryRefused) {
			rep.Skipped++
			continue
		}
		todo = append(todo, p)
	}
	state, err := os.OpenFile(o.State, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return rep, fmt.Errorf("enrol: state: %w", err)
	}
	defer state.Close()

	var mu sync.Mutex // rep, state
	start := time.Now()
	bar := progress{out: o.Progress, interactive: o.Interactive, every: o.ProgressEvery, total: len(todo), start: start}
	jobs := make(chan photo)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for p := range jobs {
				id, reason, err := o.enrol(ctx, p)
				mu.Lock()
				switch {
				case err != nil:
					rep.Failed++
				case reason != "":
					rep.Refused++
					rep.Refusals = append(rep.Refusals, p.path+": "+reason)
					fmt.Fprintf(state, "%s\t- %s\n", p.path, reason)
				default:
					rep.Enrolled++
					fmt.Fprintf(state, "%s\t%s\n", p.path, id)
				}
				bar.update(rep)
				mu.Unlock()
			}
		})
	}
feed:
	for _, p := range todo {
		select {
		case jobs <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	bar.finish(rep)
	slices.Sort(rep.Refusals)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("enrol: %w", err)
	}
	return rep, nil
}

// enrol uploads one photo: its face ID, or the server's reason for
// refusing it, or an error once every attempt failed.
func (o Options) enrol(ctx context.Context, p photo) (elastiq.RequestID, string, error) {
	if err := elastiq.ValidateSubject(p.subject); err != nil {
		return "", err.Error(), nil
	}
	data, err := os.ReadFile(filepath.Join(o.Dir, p.path))
	if err != nil {
		return "", "", err
	}
	target := strings.TrimSuffix(o.URL, "/") + "/v1/subjects/" + url.PathEscape(p.subject) + "/faces"
	if o.Largest {
		target += "?face=largest"
	}
	b := retry.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	var last error
	for range o.Attempts {
		id, reason, retryable, err := o.post(ctx, target, p, data)
		if err == nil || !retryable {
			return id, reason, err
		}
		last = err
		if err := retry.Sleep(ctx, b.Fail()); err != nil {
			return "", "", err
		}
	}
	return "", "", last
}

// post sends one upload. A 201 is the face's ID; a 4xx other than 429 is a
// refusal with the server's reason; anything else is retryable.
func (o Options) post(ctx context.Context, target string, p photo, data []byte) (id elastiq.RequestID, reason string, retryable bool, err error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", filepath.Base(p.path))
	if err != nil {
		return "", "", false, err
	}
	fw.Write(data)
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, &body)
	if err != nil {
		return "", "", false, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+o.Token)
	resp, err := o.Client.Do(req)
	if err != nil {
		return "", "", ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	var answer struct {
		ID    elastiq.RequestID `json:"id"`
		Error string            `json:"error"`
	}
	decodeErr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer)
	switch {
	case resp.StatusCode == http.StatusCreated && decodeErr == nil && answer.ID != "":
		return answer.ID, "", false, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", "", false, fmt.Errorf("%s: %s (check the admin token)", resp.Status, answer.Error)
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return "", answer.Error, false, nil
	}
	return "", "", true, fmt.Errorf("%s: %s", resp.Status, answer.Error)
}

// progress draws the progress line.
type progress struct {
	out         io.Writer
	interactive bool
	every       time.Duration
	total       int
	start, last time.Time
}

func (b *progress) line(r Report) string {
	n := r.Enrolled + r.Refused + r.Failed
	elapsed := time.Since(b.start)
	rate := float64(n) / max(elapsed.Seconds(), 1e-9)
	const width = 30
	filled := width
	if b.total > 0 {
		filled = width * n / b.total
	}
	eta := "-"
	if rate > 0 && n < b.total {
		eta = (time.Duration(float64(b.total-n)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s%s] %d/%d  enrolled %d, refused %d, failed %d  %.1f/s  ETA %s",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), n, b.total, r.Enrolled, r.Refused, r.Failed, rate, eta)
}

func (b *progress) update(r Report) {
	if b.out == nil {
		return
	}
	if b.interactive {
		fmt.Fprint(b.out, "\r"+b.line(r))
		return
	}
	if now := time.Now(); now.Sub(b.last) >= b.every {
		b.last = now
		fmt.Fprintln(b.out, b.line(r))
	}
}

func (b *progress) finish(r Report) {
	if b.out == nil {
		return
	}
	if b.interactive {
		fmt.Fprint(b.out, "\r"+b.line(r)+"\n")
		return
	}
	fmt.Fprintln(b.out, b.line(r))
}
