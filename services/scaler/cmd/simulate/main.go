// Command simulate compares the scaling policies in the simulator (package
// sim): each policy on each workload, one table row per run, a check of the
// new default against classic, and an SVG timeline per run in -out.
//
// From the repository root:
//
//	go run ./services/scaler/cmd/simulate               # the standard comparison, SVGs in sim-out/
//	go run ./services/scaler/cmd/simulate -local -boot-delay 3s -service-time 17ms -service-sigma 0.2 \
//	    -policy classic -workloads burst-cold:100      # mirror `make demo` for calibration
//	go run ./services/scaler/cmd/simulate -series demo.csv  # draw a real run (loadgen -series) the same way
//
// Workloads are the standard set by name (burst-100, burst-100-cold,
// burst-1000, poisson-0.05/s, ..., day-0.05-4/s) or specs: burst:N (after
// -lead-in idle), burst-cold:N, poisson:RATE:DURATION, day:TROUGH:PEAK:DURATION.
//
// Every flag can also be set by an environment variable: ELASTIQ_ and the
// flag's name in upper case with dashes as underscores.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/scaler/cost"
	"github.com/elastiq/elastiq/services/scaler/policy"
	"github.com/elastiq/elastiq/services/scaler/sim"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

// options are the command line of simulate.
type options struct {
	sim       sim.Config
	policy    policy.Config // Policy is a comma-separated list here
	policies  []string
	workloads []sim.Workload
	out       string
	series    string // a loadgen -series CSV to draw instead of simulating
	prices    cost.Prices
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{sim: sim.DefaultConfig(), policy: policy.DefaultConfig(), prices: cost.DefaultPrices()}
	o.policy.Policy = policy.NameClassic + "," + policy.NameBacklog
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		workloads = fs.String("workloads", "", "workloads, comma-separated: standard names or burst:N, burst-cold:N, poisson:RATE:DURATION, day:TROUGH:PEAK:DURATION (default the standard set)")
		leadIn    = fs.Duration("lead-in", sim.DefaultLeadIn, "idle time before the arrivals of burst:, poisson: and day: specs")
		local     = fs.Bool("local", false, "mirror the embedded stack of `make demo` instead of EC2: launch ready after -boot-delay, start after half of it, no stop delay, 2 shared CPUs, no billing minimum")
		bootDelay = fs.Duration("boot-delay", 3*time.Second, "with -local: the stack's -boot-delay")
	)
	c := &o.sim
	fs.StringVar(&o.out, "out", "sim-out", "folder for the SVG timelines (empty: none)")
	fs.StringVar(&o.series, "series", "", "instead of simulating, draw this loadgen -series CSV of a real run as <out>/live_<name>.svg and print its drain time")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the arrivals and service times")
	fs.DurationVar(&c.LaunchReady, "launch-ready", c.LaunchReady, "launch to serving")
	fs.DurationVar(&c.StartReady, "start-ready", c.StartReady, "start of a stopped instance to serving")
	fs.DurationVar(&c.ServiceTime, "service-time", c.ServiceTime, "mean time per message")
	fs.Float64Var(&c.ServiceSigma, "service-sigma", c.ServiceSigma, "standard deviation of the log of the service time (0: constant)")
	fs.DurationVar(&c.IdleTimeout, "worker-idle", c.IdleTimeout, "a worker stops itself after this long without a message")
	fs.IntVar(&c.CPUs, "cpus", c.CPUs, "processors all instances share (0: one machine each)")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "scaler interval")
	fs.BoolVar(&c.Nudge, "nudge", c.Nudge, "the web tier nudges the scaler on each request (false for the distributed scaler)")
	fs.DurationVar(&c.Tail, "tail", c.Tail, "simulated time after the last completion (the fleet scaling in)")
	o.policy.RegisterFlags(fs) // -policy takes a comma-separated list of the policies to compare
	o.prices.RegisterFlags(fs)
	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		return o, err
	}
	if err := o.prices.Validate(); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *local {
		if !set["launch-ready"] {
			c.LaunchReady = *bootDelay
		}
		if !set["start-ready"] {
			c.StartReady = *bootDelay / 2 // the embedded fleet's default StartDelay
		}
		if !set["cpus"] {
			c.CPUs = 2
		}
		c.StopDelay, c.MinBilled = 0, 0
	}
	// The backlog policy knows the system's timings, as it would be
	// configured for it.
	b := &o.policy.Backlog
	b.LaunchReady, b.StartReady, b.ServiceTime = c.LaunchReady, c.StartReady, c.ServiceTime
	b.WarmPool = min(b.WarmPool, o.policy.Max)
	o.policies = strings.Split(o.policy.Policy, ",")
	var err error
	if o.workloads, err = parseWorkloads(*workloads, *leadIn); err != nil {
		return o, err
	}
	return o, c.Validate()
}

// parseWorkloads reads -workloads.
func parseWorkloads(spec string, leadIn time.Duration) ([]sim.Workload, error) {
	standard := sim.Standard()
	if spec == "" {
		return standard, nil
	}
	var out []sim.Workload
next:
	for _, s := range strings.Split(spec, ",") {
		for _, w := range standard {
			if w.Name == s {
				out = append(out, w)
				continue next
			}
		}
		w, err := parseWorkload(s, leadIn)
		if err != nil {
			return nil, fmt.Errorf("workload %q: %w", s, err)
		}
		out = append(out, w)
	}
	return out, nil
}

func parseWorkload(s string, leadIn time.Duration) (sim.Workload, error) {
	f := strings.Split(s, ":")
	nums := make([]float64, 0, len(f))
	var d time.Duration
	for i, x := range f[1:] {
		if i == len(f)-2 && (f[0] == "poisson" || f[0] == "day") {
			var err error
			if d, err = time.ParseDuration(x); err != nil {
				return sim.Workload{}, err
			}
			break
		}
		v, err := strconv.ParseFloat(x, 64)
		if err != nil || v < 0 {
			return sim.Workload{}, fmt.Errorf("%q: want a number >= 0", x)
		}
		nums = append(nums, v)
	}
	switch {
	case f[0] == "burst" && len(nums) == 1:
		return sim.Burst(int(nums[0]), leadIn), nil
	case f[0] == "burst-cold" && len(nums) == 1:
		return sim.Burst(int(nums[0]), 0), nil
	case f[0] == "poisson" && len(nums) == 1 && d > 0:
		return sim.Poisson(nums[0], d, leadIn), nil
	case f[0] == "day" && len(nums) == 2 && d > 0:
		return sim.Day(nums[0], nums[1], d, leadIn), nil
	}
	return sim.Workload{}, errors.New("want a standard name or burst:N, burst-cold:N, poisson:RATE:DURATION, day:TROUGH:PEAK:DURATION")
}

// newPolicy builds the policy called name with the configured settings.
func (o options) newPolicy(name string) (policy.Policy, error) {
	c := o.policy
	c.Policy = name
	return policy.New(c)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.series != "" {
		return drawSeries(o, stdout)
	}
	var ps []policy.Policy
	for _, name := range o.policies {
		p, err := o.newPolicy(name)
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return fmt.Errorf("output folder: %w", err)
		}
	}
	var results []sim.Result
	for _, w := range o.workloads {
		for _, p := range ps {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := sim.Run(o.sim, p, w)
			if err != nil {
				return err
			}
			results = append(results, r)
			if o.out != "" {
				if err := writeSVG(filepath.Join(o.out, fileName(r)), r); err != nil {
					return err
				}
			}
		}
	}
	c := o.sim
	fmt.Fprintf(stdout, "seed %d; launch ready %v, start ready %v, service %v (sigma %g), worker idle %v, cpus %d, interval %v, nudge %v, min billed %v\n\n",
		c.Seed, c.LaunchReady, c.StartReady, c.ServiceTime, c.ServiceSigma, c.IdleTimeout, c.CPUs, c.Interval, c.Nudge, c.MinBilled)
	if err := printTable(stdout, results, o.prices); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	for _, line := range checkTargets(results) {
		fmt.Fprintln(stdout, line)
	}
	if o.out != "" {
		fmt.Fprintf(stdout, "\ntimelines: %s/*.svg\n", o.out)
	}
	return nil
}

// drawSeries draws a real run's series like a simulated run.
func drawSeries(o options, stdout io.Writer) error {
	f, err := os.Open(o.series)
	if err != nil {
		return err
	}
	samples, err := sim.ReadSeries(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", o.series, err)
	}
	r := sim.SeriesResult(strings.TrimSuffix(filepath.Base(o.series), filepath.Ext(o.series)), samples)
	fmt.Fprintf(stdout, "%s: %d requests, drain %s (to the series' resolution), max fleet %d\n", o.series, r.Requests, dur(r.Drain), r.MaxFleet)
	if o.out == "" {
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	path := filepath.Join(o.out, fileName(r))
	fmt.Fprintf(stdout, "timeline: %s\n", path)
	return writeSVG(path, r)
}

// fileName is a run's SVG name: policy_workload.svg, "/s" spelt "-per-s".
func fileName(r sim.Result) string {
	return strings.NewReplacer("/", "-per-", ":", "-").Replace(r.Policy+"_"+r.Workload) + ".svg"
}

func writeSVG(path string, r sim.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write timeline: %w", err)
	}
	if err := sim.WriteSVG(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write timeline %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write timeline: %w", err)
	}
	return nil
}

// printTable prints one line per result. Its cost is that of the whole run
// (lead-in, stopped instances' volumes and tail included) at prices, in the
// unit of the live scaler's elastiq_fleet_cost_dollars_total and the
// dashboard; instance-s are billed instance-seconds, as the scaler's
// elastiq_fleet_billed_instance_seconds_total.
func printTable(w io.Writer, results []sim.Result, prices cost.Prices) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tpolicy\trequests\tdrain\tp50\tp95\tp99\tinstance-s\tlead-in inst-s\tstopped-s\tcost $\tlaunches\tstarts\tterminated\tmax fleet\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.4f\t%d\t%d\t%d\t%d\t\n",
			r.Workload, r.Policy, r.Requests, dur(r.Drain), dur(r.P50), dur(r.P95), dur(r.P99),
			r.InstanceSeconds, r.LeadInSeconds, r.StoppedSeconds, prices.Dollars(r.InstanceSeconds+r.LeadInSeconds, r.StoppedSeconds),
			r.Launches, r.Starts, r.Terminations, r.MaxFleet)
	}
	return tw.Flush()
}

// dur prints a duration to a precision that suits its size.
func dur(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// checkTargets compares backlog with classic on each workload both ran,
// against the targets: on bursts, p99 no worse and instance-seconds
// at most half; on other load, lower instance-seconds at equal or better
// p99. Instance-seconds are counted from the first arrival; the warm pool's
// initialisation in the lead-in is shown apart.
func checkTargets(results []sim.Result) []string {
	find := func(policy, workload string) (sim.Result, bool) {
		for _, r := range results {
			if r.Policy == policy && r.Workload == workload {
				return r, true
			}
		}
		return sim.Result{}, false
	}
	var lines []string
	for _, b := range results {
		if b.Policy != "backlog" {
			continue
		}
		c, ok := find("classic", b.Workload)
		if !ok {
			continue
		}
		ratio := b.InstanceSeconds / max(c.InstanceSeconds, 1)
		withLead := (b.InstanceSeconds + b.LeadInSeconds) / max(c.InstanceSeconds+c.LeadInSeconds, 1)
		var ok1, ok2 bool
		var target string
		if strings.HasPrefix(b.Workload, "burst-") {
			ok1, ok2 = b.P99 <= c.P99, ratio <= 0.5
			target = "p99 <= classic, cost <= 1/2"
		} else {
			ok1, ok2 = b.P99 <= c.P99, ratio < 1
			target = "p99 <= classic, cost < classic"
		}
		verdict := "MET"
		if !ok1 || !ok2 {
			verdict = "MISSED"
		}
		lines = append(lines, fmt.Sprintf("%-6s %-16s (%s): p99 %s vs %s, cost %.0f%% of classic (%.0f%% with the lead-in)",
			verdict, b.Workload, target, dur(b.P99), dur(c.P99), 100*ratio, 100*withLead))
	}
	return lines
}
