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
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/awsconfig"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/elastiq/memcached"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
	"github.com/elastiq/elastiq/services/elastiq/ssmparam"
	"github.com/elastiq/elastiq/services/web"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}

// options are the command line of web.
type options struct {
	addr           string
	aws            awsconfig.Flags
	bucket         string
	requestsURL    string
	responsesURL   string
	replyPrefix    string        // each instance's own response queue, named so
	replyHeartbeat time.Duration // how often it is marked alive
	deadLettersURL string
	memcached      string
	stack          string
	deleteWindow   time.Duration
	scalerURL      string
	tokenParameter string // SSM parameter holding the admin token
	web            web.Config
	logLevel       slog.Level
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{web: web.DefaultConfig()}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.web
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to serve HTTP on")
	o.aws.Register(fs)
	fs.StringVar(&o.bucket, "bucket", "", "S3 bucket of the inputs and outputs (required)")
	fs.StringVar(&o.requestsURL, "request-queue-url", "", "URL of the SQS request queue (required)")
	fs.StringVar(&o.responsesURL, "response-queue-url", "", "URL of the SQS response queue, which this instance alone consumes (this or -reply-queue-prefix)")
	fs.StringVar(&o.replyPrefix, "reply-queue-prefix", "", "behind a load balancer, several instances: create a response "+
		"queue of this instance's own, named this prefix and a random part, named in every request it sends, kept alive "+
		"with a tag every minute and deleted on exit (the scaler's -reply-queue-prefix sweeps those of instances that died) "+
		"(this or -response-queue-url)")
	fs.DurationVar(&o.replyHeartbeat, "reply-queue-heartbeat", sqsqueue.ReplyHeartbeat, "how often the reply queue is marked alive "+
		"(well within the scaler's -reply-queue-expiry)")
	fs.StringVar(&o.deadLettersURL, "dead-letter-queue-url", "",
		"URL of the request queue's dead-letter queue: its requests are answered as failed (default: not watched)")
	fs.StringVar(&o.memcached, "memcached", "", "memcached servers, host:port separated by commas: the result store the web servers share (required)")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", c.CacheTTL, "how long a result stays in memcached")
	fs.DurationVar(&c.SyncTimeout, "sync-timeout", c.SyncTimeout, "how long POST / waits for a result before 504")
	c.RegisterLimitFlags(fs)
	c.RegisterAdminFlags(fs)
	fs.StringVar(&o.tokenParameter, "admin-token-ssm-parameter", "",
		"name of the SSM parameter (SecureString) holding the admin token, read at start (as deployed: the token never appears in user data)")
	fs.DurationVar(&o.deleteWindow, "delete-window", sqsqueue.DefaultDeleteWindow, sqsqueue.DeleteWindowUsage)
	fs.DurationVar(&c.GatherWindow, "gather-window", 20*time.Millisecond, "after a receive of fewer than 10 responses, "+
		"wait this long before the next, so that responses gather into fuller receives, each a billed call (0: no wait)")
	c.InlineMaxBytes = elastiq.MaxInlineImage
	fs.IntVar(&c.InlineMaxBytes, "inline-max", c.InlineMaxBytes, "images up to this many bytes travel in their request "+
		"message, so the worker need not read them from S3 (input/ keeps them all the same; 0: never)")
	fs.StringVar(&o.scalerURL, "scaler-url", "", "URL of the scaler's -addr (http://HOST:PORT): each accepted request "+
		"is reported there, so the scaler scales out at once and sees the arrival rate, and the dashboard shows its "+
		"decisions and the fleet's cost (default: none)")
	fs.StringVar(&o.stack, "stack", "", "name of the stack whose worker instances /metrics counts (read only; default: none shown)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGTERM, time for the requests being served to finish")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")

	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		return o, err
	}
	if err := flagenv.Required(fs, "bucket", "request-queue-url", "memcached"); err != nil {
		return o, err
	}
	if (o.responsesURL == "") == (o.replyPrefix == "") {
		return o, errors.New("set one of -response-queue-url (one web instance) and -reply-queue-prefix (several)")
	}
	if o.replyPrefix != "" {
		if err := sqsqueue.ValidateReplyPrefix(o.replyPrefix); err != nil {
			return o, err
		}
	}
	if o.replyHeartbeat <= 0 {
		return o, fmt.Errorf("-reply-queue-heartbeat %v: want > 0", o.replyHeartbeat)
	}
	if o.scalerURL != "" {
		if u, err := url.Parse(o.scalerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			strings.Trim(u.Path, "/") != "" {
			return o, fmt.Errorf("-scaler-url %q: want http://HOST:PORT", o.scalerURL)
		}
	}
	if err := c.LoadAdminToken(); err != nil {
		return o, err
	}
	if o.tokenParameter != "" && c.AdminToken != "" {
		return o, errors.New("admin token: set one of -admin-token, -admin-token-file and -admin-token-ssm-parameter")
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
	if o.tokenParameter != "" {
		if o.web.AdminToken, err = ssmparam.Read(ctx, awsCfg, o.tokenParameter); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	queues := map[string]*sqsqueue.Queue{}
	// Requests are sent in batches, while a call is in flight; responses
	// and dead letters deleted in batches.
	deletes := sqsqueue.Options{DeleteWindow: o.deleteWindow}
	for _, q := range []struct {
		name, url string
		opts      sqsqueue.Options
	}{
		{"request queue", o.requestsURL, sqsqueue.Options{BatchSends: true}},
		{"response queue", o.responsesURL, deletes},
		{"dead-letter queue", o.deadLettersURL, deletes},
	} {
		if q.url == "" {
			continue
		}
		if queues[q.name], err = sqsqueue.Open(ctx, awsCfg, q.url, q.opts); err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
	}
	lost := make(chan error, 1) // the reply queue, deleted under this instance
	if o.replyPrefix != "" {
		own, err := sqsqueue.CreateReplyQueue(ctx, awsCfg, o.replyPrefix, deletes)
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := own.Delete(ctx); err != nil {
				log.Warn("reply queue left for the scaler's sweep", "err", err)
			}
		}()
		queues["response queue"] = own.Queue
		o.responsesURL = own.URL()
		log.Info("reply queue created", "url", own.URL())
		// Without its queue, this instance would never hear of its
		// results: it stops, and is started again with a new one.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			if err := own.KeepAlive(ctx, o.replyHeartbeat, func(err error) { log.Warn("reply queue heartbeat failed", "err", err) }); err != nil {
				lost <- err
				cancel()
			}
		}()
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
	if o.replyPrefix != "" {
		deps.ReplyTo = o.responsesURL
		deps.ReplyQueues = sqsqueue.OpenReplies(awsCfg, sqsqueue.Options{}).Open
	}
	if dead := queues["dead-letter queue"]; dead != nil {
		deps.DeadLetters = dead
	}
	if o.stack != "" {
		// Read only: the web tier lists the stack's workers, the scaler
		// changes them.
		if deps.Fleet, err = ec2fleet.New(awsCfg, ec2fleet.Config{Tags: ec2fleet.WorkerTags(o.stack), Timeout: 5 * time.Second}); err != nil {
			return err
		}
	}
	if o.scalerURL != "" {
		scaler := web.NewScalerClient(o.scalerURL, log)
		deps.OnAccepted = scaler.Nudge
		deps.Scaling = scaler
		go scaler.Run(ctx)
	}
	srv, err := web.New(o.web, deps)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "web: serving on http://%s (requests to %s, results from %s)\n", ln.Addr(), o.requestsURL, o.responsesURL)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	select {
	case err := <-lost:
		return err
	default:
		return nil
	}
}
