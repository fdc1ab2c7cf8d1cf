// Command enroll enrols a folder of photos into a running elastiq's gallery
// through its API: one sub-folder per person (<Label>/*.jpg|png), each photo
// one face, several uploads at once, with a progress line. It records what
// it did in a state file, so running it again after an interruption (or a
// server outage) enrols only what is left. It exits non-zero if a photo
// could not be sent; photos the server refused (no face found...) are
// listed.
//
// From the repository root, against make run:
//
//	go run ./services/web/cmd/enroll -url http://127.0.0.1:8080 -token-file .data/admin-token -dir datasets/lfw-sample/gallery
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/web/enroll"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "enroll: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program: main only calls it, and tests call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o enroll.Options
	var tokenFile string
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "the web tier's base URL")
	fs.StringVar(&o.Token, "token", "", "the admin token (-admin-token of the web tier)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the admin token")
	fs.StringVar(&o.Dir, "dir", "", "folder of <Label>/ sub-folders of photos")
	fs.StringVar(&o.State, "state", "", "file recording what is done, to resume (default: .elastiq-enroll-<hash of url and dir>.state here)")
	fs.BoolVar(&o.RetryRefused, "retry-refused", false, "send the photos the server refused in an earlier run again")
	fs.BoolVar(&o.Largest, "largest", false, "enrol the largest face of a photo that shows several")
	fs.IntVar(&o.Concurrency, "concurrency", 4, "uploads at once")
	fs.IntVar(&o.Attempts, "attempts", 5, "tries of an upload that meets a server or network error")
	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := flagenv.Required(fs, "dir"); err != nil {
		return err
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return err
		}
		o.Token = strings.TrimSpace(string(b))
	}
	if o.Token == "" {
		return errors.New("no admin token: set -token or -token-file")
	}
	if o.State == "" {
		abs, err := filepath.Abs(o.Dir)
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(o.URL + "\n" + abs))
		o.State = fmt.Sprintf(".elastiq-enroll-%x.state", sum[:4])
	}
	if st, err := os.Stderr.Stat(); err == nil && stderr == os.Stderr {
		o.Interactive = st.Mode()&os.ModeCharDevice != 0
	}
	o.Progress = stderr
	rep, err := enroll.Run(ctx, o)
	fmt.Fprintf(stdout, "%d photos: %d enrolled now, %d by an earlier run, %d refused, %d not sent (state: %s)\n",
		rep.Photos, rep.Enrolled, rep.Skipped, rep.Refused, rep.Failed, o.State)
	for _, r := range rep.Refusals {
		fmt.Fprintf(stdout, "  refused %s\n", r)
	}
	if err != nil {
		return err
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d photos not sent; run again to retry them", rep.Failed)
	}
	return nil
}
