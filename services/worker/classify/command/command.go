// Package command is the "exec" classifier backend: it runs a command per
// image, the way the original CSE546 app tier ran
// `python3 face_recognition.py IMAGE`.
//
// The image is written to a temporary file; every "{}" in the arguments is
// replaced by its path (if no argument holds "{}", the path is appended).
// The label is the last non-empty line the command prints on stdout. A
// non-zero exit, a timeout, or an empty output is an error carrying the
// tail of stderr.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Config configures a Classifier.
type Config struct {
	// Command is the program and its arguments, e.g.
	// ["python3", "face_recognition.py", "{}"].
	Command []string
	// Dir is the working directory of the command ("" = the caller's).
	Dir string
	// Timeout bounds one run; 0 means only the caller's context does.
	Timeout time.Duration
	// TempDir holds the temporary image files ("" = os.TempDir()).
	TempDir string
}

// Placeholder is replaced by the image file's path in the arguments.
const Placeholder = "{}"

// stderrTail is how much of stderr an error quotes.
const stderrTail = 2048

// Validate checks the config.
func (c Config) Validate() error {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return errors.New("command is empty")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %v: want 0 (none) or more", c.Timeout)
	}
	return nil
}

// Classifier runs the command once per image. It is safe for concurrent
// use: each call runs its own process.
type Classifier struct {
	cfg  Config
	path string // resolved program
	log  *slog.Logger
}

// New checks the config and that the program can be found.
func New(cfg Config, logger *slog.Logger) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new exec classifier: %w", err)
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("new exec classifier: %w", err)
	}
	return &Classifier{cfg: cfg, path: path, log: logger}, nil
}

// Close does nothing: a Classifier holds no resources between calls.
func (c *Classifier) Close() error { return nil }

// Classify writes image to a temporary file, runs the command on it and
// returns the last non-empty line of its stdout.
func (c *Classifier) Classify(ctx context.Context, image []byte) (string, error) {
	f, err := os.CreateTemp(c.cfg.TempDir, "elastiq-image-*")
	if err != nil {
		return "", fmt.Errorf("exec classify: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(image); err != nil {
		f.Close()
		return "", fmt.Errorf("exec classify: write image: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("exec classify: write image: %w", err)
	}

	if c.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	args := make([]string, 0, len(c.cfg.Command))
	replaced := false
	for _, a := range c.cfg.Command[1:] {
		if strings.Contains(a, Placeholder) {
			a, replaced = strings.ReplaceAll(a, Placeholder, f.Name()), true
		}
		args = append(args, a)
	}
	if !replaced {
		args = append(args, f.Name())
	}
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Dir = c.cfg.Dir
	// On cancellation kill the process, and stop waiting for its output
	// soon after even if a child it started still holds the pipes.
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	name := c.cfg.Command[0]
	if ctxErr := ctx.Err(); ctxErr != nil {
		return "", fmt.Errorf("exec %s: stopped after %v: %w%s", name, time.Since(start).Round(time.Millisecond), ctxErr, tail(stderr.Bytes()))
	}
	if err != nil {
		return "", fmt.Errorf("exec %s: %w%s", name, err, tail(stderr.Bytes()))
	}
	label := lastLine(stdout.String())
	if label == "" {
		return "", fmt.Errorf("exec %s: printed no label on stdout%s", name, tail(stderr.Bytes()))
	}
	return label, nil
}

// lastLine is the last non-empty line of s, trimmed.
func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// tail formats the end of stderr for an error message.
func tail(stderr []byte) string {
	s := strings.TrimSpace(string(stderr))
	if s == "" {
		return ""
	}
	if len(s) > stderrTail {
		s = "..." + s[len(s)-stderrTail:]
	}
	return "; stderr: " + s
}
