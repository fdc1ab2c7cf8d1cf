// Command worker is one elastiq worker in distributed mode, as it runs on a
// worker EC2 instance: it long-polls the SQS request queue, classifies each
// request's input from S3, writes the result to output/<id> and sends it on
// the response queue (package worker).
//
// When the queue has stayed empty for -idle it returns, and with -self-stop
// it first stops its own EC2 instance (found through IMDSv2), which the
// scaler starts again when requests arrive. On SIGTERM (the instance being
// stopped or terminated, through systemd) it takes no new message, finishes
// the ones in hand within -grace, releases any still unfinished for another
// worker, and exits 0.
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
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/awsconfig"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/elastiq/promserve"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
	"github.com/elastiq/elastiq/services/worker"
	"github.com/elastiq/elastiq/services/worker/classify"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// options are the command line of worker.
type options struct {
	aws          awsconfig.Flags
	bucket       string
	requestsURL  string
	responsesURL string
	worker       worker.Config // Name is set in run when -name is empty
	classify     classify.Config
	selfStop     bool
	imdsEndpoint string
	grace        time.Duration
	deleteWindow time.Duration
	metricsAddr  string
	gallerySync  time.Duration
	logLevel     slog.Level
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{worker: worker.DefaultConfig(""), classify: classify.DefaultConfig(), grace: 25 * time.Second}
	o.worker.Concurrency = runtime.GOMAXPROCS(0)
	// On SQS every call counts (time and money): take a batch of requests
	// per receive and hold those waiting for a slot.
	o.worker.BatchSize = elastiq.MaxReceiveBatch
	o.worker.Hold = elastiq.MaxReceiveBatch - o.worker.Concurrency
	o.classify.Gallery = "datasets/cse546-faces"
	o.classify.Sessions = runtime.GOMAXPROCS(0)

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	w := &o.worker
	o.aws.Register(fs)
	fs.StringVar(&o.bucket, "bucket", "", "S3 bucket of the inputs and outputs (required)")
	fs.StringVar(&o.requestsURL, "request-queue-url", "", "URL of the SQS request queue (required)")
	fs.StringVar(&o.responsesURL, "response-queue-url", "", "URL of the SQS response queue, for the requests that name no "+
		"queue of their own (a request names its web instance's reply queue when the web instances have one each); "+
		"unset: such a result is in output/ alone")
	fs.StringVar(&w.Name, "name", "", "this worker's name in results (default: the EC2 instance ID with -self-stop, else <hostname>-<pid>)")
	fs.IntVar(&w.Concurrency, "concurrency", w.Concurrency, "requests handled at once")
	fs.IntVar(&w.Hold, "hold", max(w.Hold, 0), "requests held beyond -concurrency, waiting for a slot, so that one receive takes a "+
		"batch (released at once on SIGTERM; 0: receive only what the free slots take)")
	fs.DurationVar(&o.deleteWindow, "delete-window", sqsqueue.DefaultDeleteWindow, sqsqueue.DeleteWindowUsage)
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "address to serve GET /metrics (Prometheus) and GET /healthz on (default: none)")
	fs.DurationVar(&o.gallerySync, "gallery-sync", worker.DefaultGallerySync,
		"read the stored gallery again at least this often (requests announce the changes made through their web tier)")
	fs.DurationVar(&w.IdleTimeout, "idle", w.IdleTimeout, "stop after the queue has stayed empty this long (0: never)")
	fs.DurationVar(&w.StoreRetry, "store-retry", w.StoreRetry, "how long to keep retrying a failed S3 read or write, "+
		"holding the request, before leaving it for redelivery (0: at once)")
	fs.DurationVar(&w.ReceiveWait, "receive-wait", w.ReceiveWait,
		"long-poll wait of one receive, at most 20s (SQS's longest); on SIGTERM the poll in progress is waited for within -grace, so keep -grace longer")
	fs.DurationVar(&w.VisibilityTimeout, "visibility", w.VisibilityTimeout,
		"the request queue's visibility timeout (must match the queue's): a message in hand is extended by this every half of it")
	fs.BoolVar(&o.selfStop, "self-stop", false, "when idle, stop this EC2 instance (found through IMDSv2) before exiting")
	fs.StringVar(&o.imdsEndpoint, "imds-endpoint", "", "URL of the instance metadata service (default: the SDK's, http://169.254.169.254)")
	fs.DurationVar(&o.grace, "grace", o.grace, "on SIGTERM, time to finish the requests in hand before releasing them to other workers")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	o.classify.RegisterFlags(fs)

	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		return o, err
	}
	if err := flagenv.Required(fs, "bucket", "request-queue-url"); err != nil {
		return o, err
	}
	if o.grace < 0 {
		return o, fmt.Errorf("-grace %v: want >= 0", o.grace)
	}
	named := *w
	named.Name = "placeholder" // the real one may need IMDS: see run
	if err := named.Validate(); err != nil {
		return o, err
	}
	return o, o.classify.Validate()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	stop, cancelStop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancelStop()
	defer func() {
		// Stopped while starting (loading the classifier, say): a stop,
		// not a failure.
		if errors.Is(err, context.Canceled) && stop.Err() != nil {
			err = nil
		}
	}()
	o, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))

	awsCfg, err := o.aws.Load(stop)
	if err != nil {
		return err
	}
	var self *ec2fleet.Self
	if o.selfStop {
		if self, err = ec2fleet.NewSelf(awsCfg, ec2fleet.SelfConfig{IMDSEndpoint: o.imdsEndpoint, Logger: log}); err != nil {
			return err
		}
	}
	if o.worker.Name == "" {
		if o.worker.Name, err = defaultName(stop, self); err != nil {
			return err
		}
	}
	// The worker's own lines name it (worker.New); the rest of the
	// program's are tagged here.
	workerLog := log
	log = log.With("worker", o.worker.Name)

	// Responses are sent in batches while a call is in flight, requests
	// deleted in batches.
	requests, err := sqsqueue.Open(stop, awsCfg, o.requestsURL,
		sqsqueue.Options{DeleteWindow: o.deleteWindow})
	if err != nil {
		return fmt.Errorf("request queue: %w", err)
	}
	var responses elastiq.Queue
	if o.responsesURL != "" {
		if responses, err = sqsqueue.Open(stop, awsCfg, o.responsesURL, sqsqueue.Options{BatchSends: true}); err != nil {
			return fmt.Errorf("response queue: %w", err)
		}
	}
	// Results go to the web instance that accepted the request, when it
	// named its own queue.
	replies := sqsqueue.OpenReplies(awsCfg, sqsqueue.Options{BatchSends: true})
	store, err := s3store.Open(stop, awsCfg, o.bucket, s3store.Options{UsePathStyle: o.aws.PathStyle()})
	if err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	classifier, err := classify.Open(stop, o.classify, log)
	if err != nil {
		return err
	}
	defer classifier.Close()

	var metrics *worker.Metrics
	if o.metricsAddr != "" {
		reg := promserve.NewRegistry()
		metrics = worker.NewMetrics(reg)
		ms, err := promserve.Listen(o.metricsAddr, reg, log)
		if err != nil {
			return fmt.Errorf("-metrics-addr: %w", err)
		}
		defer ms.Close()
		fmt.Fprintf(stdout, "worker %s: metrics on http://%s/metrics\n", o.worker.Name, ms.Addr())
	}
	// A classifier whose gallery can change reads the stored one (and
	// seeds it from its folder when empty), and takes enrolments.
	var gallery *worker.Gallery
	if fe, ok := classifier.(elastiq.FaceEnroller); ok {
		gallery = worker.NewGallery(store, fe, workerLog)
		gallery.Interval = o.gallerySync
		if err := gallery.Start(stop); err != nil {
			if stop.Err() != nil {
				return nil // stopped while starting: a clean stop
			}
			return err
		}
	}
	w, err := worker.New(o.worker, worker.Deps{
		Requests:    requests,
		Responses:   responses,
		ReplyQueues: replies.Open,
		Store:       store,
		Classifier:  classifier,
		Gallery:     gallery,
		Metrics:     metrics,
		Logger:      workerLog,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "worker %s: taking requests from %s (classifier %s, %d at once)\n",
		o.worker.Name, o.requestsURL, o.classify.Backend, o.worker.Concurrency)

	// On SIGTERM the worker finishes what it holds within -grace; its own
	// context outlives the signal for that.
	stopped := context.AfterFunc(stop, func() {
		ctx, cancel := context.WithTimeout(context.Background(), o.grace)
		defer cancel()
		w.Shutdown(ctx) // a grace period over is logged by the worker
	})
	defer stopped()
	switch err := w.Run(context.WithoutCancel(stop)); {
	case errors.Is(err, worker.ErrShutdown):
		return nil
	case err != nil:
		return err
	}
	// The worker stopped itself: the queue stayed empty for -idle.
	log.Info("worker stopped: idle", "stats", fmt.Sprintf("%+v", w.Stats()))
	if self == nil {
		return nil
	}
	id, err := self.Stop(context.WithoutCancel(stop))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "worker %s: idle; stopping instance %s\n", o.worker.Name, id)
	return nil
}

// defaultName is the EC2 instance ID with self-stop, <hostname>-<pid>
// otherwise.
func defaultName(ctx context.Context, self *ec2fleet.Self) (string, error) {
	if self != nil {
		return self.InstanceID(ctx)
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("worker name: %w", err)
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid()), nil
}
