// Command web is elastiq's web tier in distributed mode: it accepts uploads
// over HTTP, stores them in S3, sends their requests on the SQS request queue
// and answers with the results the workers send on the response queue
// (package web), keeping them in memcached, the result store the web
// servers share. With -dead-letter-queue-url it also answers the requests
// that landed on the request queue's dead-letter queue as failed.
//
// Every flag can also be set by an environment variable: ELASTIQ_ and the
// flag's name in upper case with dashes as underscores (-request-queue-url is
// ELASTIQ_REQUEST_QUEUE_URL). A flag on the command line wins. AWS
// credentials come from the SDK's default chain (the instance profile on
// EC2).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/awsconfig"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/elastiq/memcached"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
	"github.com/elastiq/elastiq/services/web"
	"github.com/elastiq/elastiq/services/worker"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}

// options are the command line of web.
type options struct {
	addr            string
	aws             awsconfig.Flags
	bucket          string
	requestsURL     string
	responsesURL    string
	deadLettersURL  string
	memcached       string
	stack           string
	web             web.Config
	shutdownTimeout time.Duration
	logLevel        slog.Level
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{web: web.DefaultConfig(), shutdownTimeout: 10 * time.Second}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.web
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to serve HTTP on")
	o.aws.Register(fs)
	fs.StringVar(&o.bucket, "bucket", "", "S3 bucket of the inputs and outputs (required)")
	fs.StringVar(&o.requestsURL, "request-queue-url", "", "URL of the SQS request queue (required)")
	fs.StringVar(&o.responsesURL, "response-queue-url", "", "URL of the SQS response queue (required)")
	fs.StringVar(&o.deadLettersURL, "dead-letter-queue-url", "",
		"URL of the request queue's dead-letter queue: its requests are answered as failed (default: not watched)")
	fs.StringVar(&o.memcached, "memcached", "", "memcached servers, host:port separated by commas: the result store the web servers share (required)")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", c.CacheTTL, "how long a result stays in memcached")
	fs.DurationVar(&c.SyncTimeout, "sync-timeout", c.SyncTimeout, "how long POST / waits for a result before 504")
	fs.Int64Var(&c.MaxUploadBytes, "max-upload", c.MaxUploadBytes, "largest accepted upload in bytes")
	fs.StringVar(&o.stack, "stack", "", "name of the stack whose worker instances /metrics counts (read only; default: none shown)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", o.shutdownTimeout, "on SIGTERM, time for the requests being served to finish")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")

	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		return o, err
	}
	if err := flagenv.Required(fs, "bucket", "request-queue-url", "response-queue-url", "memcached"); err != nil {
		return o, err
	}
	if o.shutdownTimeout <= 0 {
		return o, fmt.Errorf("-shutdown-timeout %v: want > 0", o.shutdownTimeout)
	}
	return o, c.Validate()
}

// servers splits the -memcached list.
func (o options) servers() []string {
	var out []string
	for s := range strings.SplitSeq(o.memcached, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
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

	awsCfg, err := o.aws.Load(ctx)
	if err != nil {
		return err
	}
	queues := map[string]*sqsqueue.Queue{}
	for _, q := range []struct{ name, url string }{
		{"request queue", o.requestsURL}, {"response queue", o.responsesURL}, {"dead-letter queue", o.deadLettersURL},
	} {
		if q.url == "" {
			continue
		}
		if queues[q.name], err = sqsqueue.Open(ctx, awsCfg, q.url, sqsqueue.Options{}); err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
	}
	store, err := s3store.Open(ctx, awsCfg, o.bucket, s3store.Options{UsePathStyle: o.aws.PathStyle()})
	if err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	cache, err := memcached.New(memcached.Config{Servers: o.servers()})
	if err != nil {
		return err
	}
	defer cache.Close()
	// A cache that is down is not fatal: results are also in output/.
	if err := cache.Ping(ctx); err != nil {
		log.Warn("memcached does not answer; results will be read from the bucket until it does", "err", err)
	}
	deps := web.Deps{
		Requests:  queues["request queue"],
		Responses: queues["response queue"],
		Store:     store,
		Cache:     cache,
		Logger:    log,
	}
	if o.stack != "" {
		if deps.Fleet, err = newReadOnlyFleet(awsCfg, o.stack); err != nil {
			return err
		}
	}
	srv, err := web.New(o.web, deps)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "web: serving on http://%s (requests to %s)\n", ln.Addr(), o.requestsURL)

	consumers := map[string]func(context.Context) error{"response consumer": srv.Run}
	if dead := queues["dead-letter queue"]; dead != nil {
		consumers["dead letters"] = func(ctx context.Context) error {
			return worker.RunDeadLetters(ctx, worker.DeadLetterDeps{
				Dead:      dead,
				Responses: deps.Responses,
				Store:     deps.Store,
				Logger:    log.With("component", "dead-letters"),
			})
		}
	}
	return serve(ctx, ln, srv, consumers, o.shutdownTimeout, log)
}

// serve serves HTTP on ln with h and runs the consumers until ctx is done,
// then shuts down in order: HTTP first (within timeout), so the requests
// waiting for results still get them from the consumers while it drains,
// then the consumers. A consumer or the server failing shuts down too.
func serve(ctx context.Context, ln net.Listener, h http.Handler, consumers map[string]func(context.Context) error,
	timeout time.Duration, log *slog.Logger) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	errc := make(chan error, len(consumers)+1)
	for name, f := range consumers {
		wg.Go(func() {
			if err := f(bg); err != nil && bg.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return bg },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	wg.Go(func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve: %w", err)
		}
	})
	log.Info("serving", "addr", ln.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		hs.Close()
	}
	stopBG()
	wg.Wait()
	return runErr
}

// readOnlyFleet is the stack's EC2 workers as the web tier sees them: it
// lists them for /metrics and never changes them (the scaler does).
type readOnlyFleet struct{ *ec2fleet.Fleet }

var errReadOnly = errors.New("the web tier's view of the fleet is read only")

func newReadOnlyFleet(awsCfg aws.Config, stack string) (readOnlyFleet, error) {
	f, err := ec2fleet.New(awsCfg, ec2fleet.Config{
		Tags:    ec2fleet.WorkerTags(stack),
		Timeout: 5 * time.Second,
	})
	return readOnlyFleet{f}, err
}

func (readOnlyFleet) Start(context.Context, []string) error { return errReadOnly }
func (readOnlyFleet) Launch(context.Context, int, string) ([]elastiq.Instance, error) {
	return nil, errReadOnly
}
func (readOnlyFleet) Stop(context.Context, []string) error      { return errReadOnly }
func (readOnlyFleet) Terminate(context.Context, []string) error { return errReadOnly }
