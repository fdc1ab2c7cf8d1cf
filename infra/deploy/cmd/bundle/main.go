// Command bundle builds the deployment bundle (package deploy's Build): the
// linux/amd64 web, scaler and worker binaries and the worker's models.tar.gz,
// with SHA256SUMS, into one folder, and lists each file with its S3 key.
// ami/ uploads this folder into the worker image; `pulumi up` builds the
// same bundle itself.
//
//	go run ./infra/deploy/cmd/bundle [-root DIR] [-out DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/elastiq/elastiq/infra/deploy"
)

func main() {
	if err := run(context.Background(), os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "", "repository root (default: the folder of go.work above the current one)")
	out := fs.String("out", "", "output folder (default: <root>/.bundle)")
	models := fs.String("models", "", "folder of ONNX Runtime and the models (default: <root>/.models; fetched if incomplete)")
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *root == "" {
		r, err := deploy.FindRoot(".")
		if err != nil {
			return err
		}
		*root = r
	}
	if *out == "" {
		*out = filepath.Join(*root, ".bundle")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	b, err := deploy.Build(ctx, deploy.BuildOptions{Root: *root, Out: *out, Models: *models, Logger: log})
	if err != nil {
		return err
	}
	for _, f := range b.Files() {
		fmt.Fprintf(stdout, "%-14s %10d  %s  s3://BUCKET/%s\n", f.Name, f.Size, f.Path, f.Key())
	}
	return nil
}
