// Command elastiq runs the whole elastic image-recognition pipeline on one
// machine with embedded backends: web tier, request and response queues,
// object store, result cache, scaler and a local fleet of workers running
// the face model. `make run` starts it.
//
// Every flag can also be set by an environment variable: ELASTIQ_ and the
// flag's name in upper case with dashes as underscores (-boot-delay is
// ELASTIQ_BOOT_DELAY). A flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/embedded"
	"github.com/elastiq/elastiq/services/worker/classify"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "elastiq:", err)
		os.Exit(1)
	}
}

// options are the command line of elastiq, read into the stack's and the
// classifier's configurations.
type options struct {
	addr     string
	logLevel slog.Level
	stack    embedded.Config
	classify classify.Config
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{stack: embedded.DefaultConfig(), classify: classify.DefaultConfig()}
	o.classify.Gallery = "datasets/cse546-faces"
	o.classify.CacheDir = ".data/gallery-cache"
	o.classify.Sessions = runtime.GOMAXPROCS(0)

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	s, c := &o.stack, &o.classify
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to serve HTTP on")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&s.DataDir, "data", s.DataDir, "folder of the object store (input/ and output/); survives restarts")
	fs.BoolVar(&s.Fsync, "fsync", s.Fsync, "sync every stored object to disk (survives power loss; slower)")
	fs.DurationVar(&s.VisibilityTimeout, "visibility", s.VisibilityTimeout, "queue visibility timeout")
	fs.DurationVar(&s.Retention, "retention", s.Retention, "a request's input and output are deleted this long after it was accepted (0: kept for ever)")
	fs.IntVar(&s.MaxReceives, "max-receives", s.MaxReceives, "deliveries before a request is given up as failed")
	fs.DurationVar(&s.BootDelay, "boot-delay", s.BootDelay, "how long a newly launched worker instance takes to boot")
	fs.DurationVar(&s.StartDelay, "start-delay", s.StartDelay, "how long a stopped worker instance takes to start (0: half the boot delay; negative: none)")
	s.Policy.RegisterFlags(fs)
	fs.DurationVar(&s.Policy.Backlog.ServiceTime, "service-time", s.Policy.Backlog.ServiceTime, "backlog policy: expected time a worker takes per image")
	fs.DurationVar(&s.Worker.IdleTimeout, "worker-idle", s.Worker.IdleTimeout, "a worker stops itself after an empty queue for this long (0: never)")
	fs.DurationVar(&s.Scaler.Interval, "scale-interval", s.Scaler.Interval, "how often the scaler looks at the queue (it also acts at once on each request)")
	s.Scaler.Prices.RegisterFlags(fs)
	fs.DurationVar(&s.Web.SyncTimeout, "sync-timeout", s.Web.SyncTimeout, "how long POST / waits for a result before 504")
	s.Web.RegisterLimitFlags(fs)
	s.Web.RegisterAdminFlags(fs)
	c.RegisterFlags(fs)

	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		return o, err
	}
	// An upload no worker could decode is refused at once.
	if c.DecodeBudget > 0 {
		s.Web.MaxDecodeBytes = min(s.Web.MaxDecodeBytes, c.DecodeBudget)
	}
	if err := s.Web.LoadAdminToken(); err != nil {
		return o, err
	}
	if err := s.Validate(); err != nil {
		return o, err
	}
	return o, c.Validate()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))

	classifier, err := classify.Open(ctx, o.classify, log)
	if err != nil {
		return err
	}
	defer classifier.Close()

	s, err := embedded.New(o.stack, embedded.Deps{Classifier: classifier, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "elastiq: serving on http://%s (classifier %s, %s scaling up to %d workers); try:\n"+
		"  curl -F myfile=@datasets/cse546-faces/face_images_100/test_00.jpg http://%s/\n"+
		"and watch it on http://%s/dashboard\n",
		ln.Addr(), o.classify.Backend, o.stack.Policy.Policy, o.stack.Policy.Max, ln.Addr(), ln.Addr())
	if t := o.stack.Web.AdminToken; t != "" {
		fmt.Fprintf(stdout, "manage the gallery (who is recognised) with the admin token:\n"+
			"  curl -H 'Authorization: Bearer %s' http://%s/v1/subjects\n", t, ln.Addr())
	}
	return s.Run(ctx, ln)
}
