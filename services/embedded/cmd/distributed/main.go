// Command distributed runs elastiq's distributed mode on this machine, as it
// runs on AWS: the web, scaler and worker programs as separate processes,
// talking through an AWS-compatible endpoint (moto: SQS, S3 and EC2) and
// memcached. It creates a stack there (request, dead-letter and response
// queues, a bucket, a launch template), starts the scaler and the web
// program (which reports each request to the scaler), and runs the scaler's
// EC2 instances as worker processes (motofleet): a launched or started
// instance runs a worker after -launch-ready or -start-ready, a worker that
// is idle stops its own instance, and the scaler terminates stopped ones.
// `make demo MODE=distributed` runs it.
//
//	distributed -endpoint http://127.0.0.1:5000 -memcached 127.0.0.1:11211 [-addr 127.0.0.1:8080] \
//	    [-policy backlog -launch-ready 3s -start-ready 1s ...] [-- WORKER FLAGS]
//
// The web, scaler and worker programs are taken from -bin (default: the
// folder of this program, as `make build` puts them all in bin/). Flags
// after "--" go to every worker (-models, -sessions, -classifier...). On
// SIGINT or SIGTERM it terminates the stack's instances, stops their
// workers and the other programs, and exits.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/motoec2"
	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
	"github.com/elastiq/elastiq/services/embedded/motofleet"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "distributed:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, endpoint, memcached, bin, stack string
	policy                                policy.Config
	interval                              time.Duration
	workerIdle                            time.Duration
	visibility                            time.Duration
	workerArgs                            []string
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{policy: policy.DefaultConfig(), interval: time.Second, workerIdle: 10 * time.Second,
		visibility: elastiq.DefaultVisibilityTimeout}
	boot := 3 * time.Second
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.DurationVar(&boot, "boot-delay", boot, "how long a launched instance takes to boot before its worker starts (a "+
		"stopped one, half of it), as the embedded program's -boot-delay; sets -launch-ready and -start-ready unless given")
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address the web program serves HTTP on")
	fs.StringVar(&o.endpoint, "endpoint", "", "URL of the AWS-compatible server (moto) (required)")
	fs.StringVar(&o.memcached, "memcached", "", "memcached's host:port (required)")
	fs.StringVar(&o.bin, "bin", "", "folder of the web, scaler and worker programs (default: this program's)")
	fs.StringVar(&o.stack, "stack", "", "name of the stack to create (default: elastiq-<time>)")
	fs.DurationVar(&o.interval, "interval", o.interval, "the scaler's -interval")
	fs.DurationVar(&o.workerIdle, "worker-idle", o.workerIdle, "a worker stops its instance after the queue has stayed empty this long")
	fs.DurationVar(&o.visibility, "visibility", o.visibility, "the request queue's visibility timeout")
	o.policy.RegisterFlags(fs)
	o.policy.RegisterTimingFlags(fs) // -launch-ready and -start-ready are also the fleet's boot times
	rest := args[1:]
	if i := slices.Index(rest, "--"); i >= 0 {
		rest, o.workerArgs = rest[:i], rest[i+1:]
	}
	if err := flagenv.Parse(fs, rest, getenv); err != nil {
		return o, err
	}
	if err := flagenv.Required(fs, "endpoint", "memcached"); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["launch-ready"] {
		o.policy.Backlog.LaunchReady = boot
	}
	if !set["start-ready"] {
		o.policy.Backlog.StartReady = boot / 2
	}
	if o.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, err
		}
		o.bin = filepath.Dir(exe)
	}
	o.stack = cmp.Or(o.stack, "elastiq-"+strconv.FormatInt(time.Now().Unix(), 36))
	return o, o.policy.Validate()
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
	// moto takes any keys; the programs get the same through their
	// environment, and nothing from the user's own AWS setup.
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(o.endpoint)}
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_SESSION_TOKEN=",
		"AWS_REGION=us-east-1", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")

	setup, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	requests, err := sqsqueue.CreateWithDeadLetter(setup, cfg, o.stack+"-req",
		sqsqueue.CreateOptions{Visibility: o.visibility, MaxReceives: 5})
	if err != nil {
		return err
	}
	responses, err := sqsqueue.CreateWithDeadLetter(setup, cfg, o.stack+"-res", sqsqueue.CreateOptions{})
	if err != nil {
		return err
	}
	if err := s3store.CreateBucket(setup, cfg, o.stack, s3store.Options{UsePathStyle: true}); err != nil {
		return err
	}
	lt, err := motoec2.LaunchTemplate(setup, cfg, o.stack)
	if err != nil {
		return err
	}
	template := lt.ID
	common := []string{"-endpoint", o.endpoint, "-bucket", o.stack,
		"-request-queue-url", requests.URL, "-response-queue-url", responses.URL}

	var procs []*process
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	b := o.policy.Backlog
	scaler, err := start(ctx, "scaler", filepath.Join(o.bin, "scaler"), env, stderr, []string{"-endpoint", o.endpoint,
		"-request-queue-url", requests.URL, "-stack", o.stack, "-launch-template-id", template,
		"-policy", o.policy.Policy, "-max-workers", strconv.Itoa(o.policy.Max),
		"-terminate-after", o.policy.TerminateAfter.String(), "-warm-pool", strconv.Itoa(b.WarmPool),
		"-target-latency", b.TargetLatency.String(), "-service-time", b.ServiceTime.String(),
		"-launch-ready", b.LaunchReady.String(), "-start-ready", b.StartReady.String(),
		"-interval", o.interval.String(), "-addr", "127.0.0.1:0"})
	if err != nil {
		return err
	}
	procs = append(procs, scaler)
	nudges, err := scaler.await(regexp.MustCompile(`serving the web tier on (http://\S+)`))
	if err != nil {
		return err
	}

	fleet, err := motofleet.Start(motofleet.Config{
		AWS: cfg, Stack: o.stack, LaunchReady: b.LaunchReady, StartReady: b.StartReady,
		Command: func(id, imds string) *exec.Cmd {
			cmd := exec.Command(filepath.Join(o.bin, "worker"), append(append(slices.Clone(common),
				"-self-stop", "-imds-endpoint", imds, "-idle", o.workerIdle.String(),
				"-visibility", o.visibility.String()), o.workerArgs...)...)
			cmd.Env = env
			w := prefixWriter(stderr, "worker "+id+": ")
			cmd.Stdout, cmd.Stderr = w, w
			return cmd
		},
	})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := fleet.Close(ctx); err != nil {
			fmt.Fprintln(stderr, "distributed:", err)
		}
	}()

	web, err := start(ctx, "web", filepath.Join(o.bin, "web"), env, stderr, append(slices.Clone(common),
		"-addr", o.addr, "-memcached", o.memcached, "-dead-letter-queue-url", requests.DeadLetterURL,
		"-stack", o.stack, "-scaler-url", nudges))
	if err != nil {
		return err
	}
	procs = append(procs, web)
	url, err := web.await(regexp.MustCompile(`serving on (http://\S+)`))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "distributed: serving on %s (stack %s on %s: web, scaler, workers as processes)\n", url, o.stack, o.endpoint)
	select {
	case <-ctx.Done():
	case <-web.done:
		return fmt.Errorf("web exited: %v", web.err)
	case <-scaler.done:
		return fmt.Errorf("scaler exited: %v", scaler.err)
	}
	return nil
}

// process is one of the programs, its stderr forwarded with its name and
// its stdout watched for a line.
type process struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	err   error
}

func start(ctx context.Context, name, path string, env []string, stderr io.Writer, args []string) (*process, error) {
	p := &process{name: name, cmd: exec.Command(path, args...), lines: make(chan string, 16), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = prefixWriter(stderr, name+": ")
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintf(stderr, "%s: %s\n", name, sc.Text())
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// await returns the first group of the first stdout line matching re.
func (p *process) await(re *regexp.Regexp) (string, error) {
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m[1], nil
			}
		case <-p.done:
			return "", fmt.Errorf("%s exited (%v) before printing %q", p.name, p.err, re)
		case <-deadline:
			return "", fmt.Errorf("%s did not print %q in 2m", p.name, re)
		}
	}
}

// stop sends SIGTERM and waits (SIGKILL after 30 s).
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// prefixWriter writes each line to w with prefix.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	r, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			fmt.Fprintln(w, prefix+strings.TrimRight(sc.Text(), "\r"))
		}
	}()
	return pw
}
