// Command scaler is elastiq's scaler in distributed mode: it keeps the EC2
// worker fleet of one stack sized to the SQS request queue with a scaling
// policy (package policy: backlog by default, or classic), starting stopped
// workers and launching new ones from a launch template, up to -max-workers,
// and terminating stopped ones after -terminate-after without a request.
// Workers stop themselves when the queue stays empty.
//
// It looks at the queue every -interval, and at once when the web tier, in
// another process or on another machine, reports accepted requests to -addr
// (POST /nudge?n=N, the web program's -scaler-url): those reports give the
// backlog policy its arrival rate, as the embedded program's nudges do.
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
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/elastiq/elastiq/services/elastiq/awsconfig"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/elastiq/promserve"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
	"github.com/elastiq/elastiq/services/scaler"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "scaler:", err)
		os.Exit(1)
	}
}

// options are the command line of scaler.
type options struct {
	aws      awsconfig.Flags
	queueURL string
	stack    string
	fleet    ec2fleet.Config // Tags are set from stack
	policy   policy.Config
	scaler   scaler.Config
	logLevel slog.Level
	// withHost: when the host itself is being terminated, terminate the
	// stack's workers too (see -terminate-workers-with-host).
	withHost     bool
	imdsEndpoint string
	// addr is where scaler.Handler listens ("" for nowhere).
	addr string
	// metricsAddr serves /metrics and /healthz ("" for nowhere).
	metricsAddr string
	// replyPrefix names the web instances' own response queues, which
	// the scaler sweeps when their instance died; "" for none.
	replyPrefix string
	replyExpiry time.Duration
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{policy: policy.DefaultConfig(), scaler: scaler.DefaultConfig()}

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.aws.Register(fs)
	fs.StringVar(&o.queueURL, "request-queue-url", "", "URL of the SQS request queue (required)")
	fs.StringVar(&o.stack, "stack", "", "name of the stack whose workers this scaler manages: the instances tagged "+
		ec2fleet.TagRole+"="+ec2fleet.RoleWorker+" and "+ec2fleet.TagStack+"=<stack> (required)")
	fs.StringVar(&o.fleet.LaunchTemplateID, "launch-template-id", "", "ID of the launch template new workers are run from (this or -launch-template-name)")
	fs.StringVar(&o.fleet.LaunchTemplateName, "launch-template-name", "", "name of the launch template new workers are run from (this or -launch-template-id)")
	fs.StringVar(&o.fleet.LaunchTemplateVersion, "launch-template-version", ec2fleet.DefaultLaunchTemplateVersion, `version of the launch template: a number, "$Latest" or "$Default"`)
	o.policy.RegisterFlags(fs)
	o.policy.RegisterTimingFlags(fs)
	fs.StringVar(&o.addr, "addr", "", "address to serve the web tier's nudges on (POST /nudge?n=N: N requests accepted; "+
		"the web program's -scaler-url): they give the backlog policy its arrival rate and start scale-out with the first "+
		"request; also GET /report (the fleet's usage and recent decisions, for the web tier's dashboard) and GET /healthz "+
		"(default: none, and the scaler sees the queue only)")
	o.scaler.Prices.RegisterFlags(fs)
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "address to serve GET /metrics (Prometheus) and GET /healthz on (default: none)")
	fs.DurationVar(&o.scaler.Interval, "interval", o.scaler.Interval,
		"how often the scaler looks at the queue and the fleet (besides on every nudge)")
	fs.DurationVar(&o.scaler.ActionTimeout, "action-timeout", o.scaler.ActionTimeout, "time limit of each SQS and EC2 call")
	fs.StringVar(&o.replyPrefix, "reply-queue-prefix", "", "the web instances' -reply-queue-prefix: delete their "+
		"response queues once not marked alive for -reply-queue-expiry (an instance that died), so none accumulate (default: none)")
	fs.DurationVar(&o.replyExpiry, "reply-queue-expiry", sqsqueue.DefaultReplyExpiry, "a reply queue not marked alive for this long is deleted")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.BoolVar(&o.withHost, "terminate-workers-with-host", false, "on SIGTERM, if this EC2 instance itself is being terminated "+
		"(as `pulumi destroy` or a replacement does), terminate the stack's workers too, which no one else would")
	fs.StringVar(&o.imdsEndpoint, "imds-endpoint", "", "URL of the instance metadata service, for -terminate-workers-with-host (default: the SDK's)")

	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		return o, err
	}
	if err := flagenv.Required(fs, "request-queue-url", "stack"); err != nil {
		return o, err
	}
	if (o.fleet.LaunchTemplateID == "") == (o.fleet.LaunchTemplateName == "") {
		return o, errors.New("want exactly one of -launch-template-id and -launch-template-name")
	}
	if o.replyPrefix != "" {
		if err := sqsqueue.ValidateReplyPrefix(o.replyPrefix); err != nil {
			return o, err
		}
	}
	if o.replyExpiry <= 0 {
		return o, fmt.Errorf("-reply-queue-expiry %v: want > 0", o.replyExpiry)
	}
	o.fleet.Tags = ec2fleet.WorkerTags(o.stack)
	o.fleet.Timeout = o.scaler.ActionTimeout
	if err := o.policy.Validate(); err != nil {
		return o, fmt.Errorf("-policy: %w", err)
	}
	return o, o.scaler.Validate()
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
	queue, err := sqsqueue.Open(ctx, awsCfg, o.queueURL, sqsqueue.Options{Timeout: o.scaler.ActionTimeout})
	if err != nil {
		return fmt.Errorf("request queue: %w", err)
	}
	o.fleet.Logger = log
	fleet, err := ec2fleet.New(awsCfg, o.fleet)
	if err != nil {
		return err
	}
	// Fail at start, not on every tick, when EC2 cannot be read at all
	// (credentials, permissions, endpoint).
	workers, err := fleet.List(ctx)
	if err != nil {
		return err
	}
	pol, err := policy.New(o.policy)
	if err != nil {
		return err
	}
	var metrics *scaler.Metrics
	if o.metricsAddr != "" {
		reg := promserve.NewRegistry()
		metrics = scaler.NewMetrics(reg)
		ms, err := promserve.Listen(o.metricsAddr, reg, log)
		if err != nil {
			return fmt.Errorf("-metrics-addr: %w", err)
		}
		defer ms.Close()
		fmt.Fprintf(stdout, "scaler: metrics on http://%s/metrics\n", ms.Addr())
	}
	s, err := scaler.New(o.scaler, scaler.Deps{Queue: queue, Fleet: fleet, Policy: pol, Metrics: metrics, Logger: log})
	if err != nil {
		return err
	}
	var nudges net.Listener
	if o.addr != "" {
		if nudges, err = net.Listen("tcp", o.addr); err != nil {
			return fmt.Errorf("-addr: %w", err)
		}
	}
	fmt.Fprintf(stdout, "scaler: managing the workers of stack %s (%d now, at most %d, %s policy) for %s\n",
		o.stack, len(workers), o.policy.Max, pol.Name(), o.queueURL)
	if nudges != nil {
		srv := &http.Server{Handler: scaler.Handler(s), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		go srv.Serve(nudges)
		defer srv.Close()
		fmt.Fprintf(stdout, "scaler: serving the web tier on http://%s (POST /nudge, GET /report)\n", nudges.Addr())
	}
	if o.replyPrefix != "" {
		sweeping := make(chan struct{})
		defer func() { <-sweeping }()
		go func() {
			defer close(sweeping)
			sweepReplyQueues(ctx, awsCfg, o, log)
		}()
	}
	if err := s.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	log.Info("scaler stopped")
	if o.withHost {
		return terminateWithHost(o, awsCfg, fleet, log)
	}
	return nil
}

// terminateWithHost is scaler.TerminateWithHost on this EC2 instance.
func terminateWithHost(o options, awsCfg aws.Config, fleet *ec2fleet.Fleet, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*o.scaler.ActionTimeout)
	defer cancel()
	self, err := ec2fleet.NewSelf(awsCfg, ec2fleet.SelfConfig{IMDSEndpoint: o.imdsEndpoint, Timeout: o.scaler.ActionTimeout})
	if err != nil {
		return err
	}
	_, err = scaler.TerminateWithHost(ctx, self, fleet, log)
	return err
}

// sweepReplyQueues deletes the reply queues of web instances that died,
// every tenth of the expiry (at most a minute), until ctx is done.
func sweepReplyQueues(ctx context.Context, awsCfg aws.Config, o options, log *slog.Logger) {
	log = log.With("component", "reply-queues")
	api := sqs.NewFromConfig(awsCfg)
	t := time.NewTicker(min(o.replyExpiry/10, sqsqueue.ReplyHeartbeat))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		deleted, err := sqsqueue.SweepReplyQueues(ctx, api, o.replyPrefix, o.replyExpiry, time.Now(),
			sqsqueue.Options{Timeout: o.scaler.ActionTimeout})
		for _, u := range deleted {
			log.Info("reply queue deleted: its web instance has not marked it alive", "url", u, "expiry", o.replyExpiry)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep of reply queues failed; trying again", "err", err)
		}
	}
}
