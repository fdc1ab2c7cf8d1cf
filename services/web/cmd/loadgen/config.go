package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"time"
)

// Form fields of the two contracts of the course's workload generators.
const (
	fieldMyfile    = "myfile"    // answer: the bare label, "Paul"
	fieldInputFile = "inputFile" // answer: "test_00:Paul"
)

// config is everything a run needs, read once from flags and environment.
type config struct {
	URL         *url.URL
	Dataset     string // folder holding face_images_100/ and labels.csv
	Images      string // folder of images to send
	Labels      string // CSV with header Image,Results
	Requests    int    // per round; 0 means one per image
	Concurrency int
	Field       string
	Timeout     time.Duration // per request
	WaitReady   time.Duration // 0 disables the /healthz wait
	JSON        bool
	Repeat      int
	Timeline    string        // CSV file of per-request timings; "" for none
	Series      string        // CSV file of the service's queue and fleet over time; "" for none
	SeriesEvery time.Duration // sampling interval of the series
	SeriesAfter time.Duration // how long the series goes on after the last answer
}

// Defaults, in one place.
const (
	defaultURL         = "http://127.0.0.1:8080/"
	defaultDataset     = "datasets/cse546-faces" // relative to the repository root
	defaultImagesDir   = "face_images_100"       // inside the dataset
	defaultLabelsFile  = "labels.csv"            // inside the dataset
	defaultConcurrency = 100                     // all at once, like the course's client
	defaultTimeout     = 5 * time.Minute
	defaultWaitReady   = 60 * time.Second
	defaultSeriesEvery = time.Second
	datasetEnv         = "ELASTIQ_DATASET"
)

// parseConfig reads the flags in args (args[0] is the program name) and the
// environment through getenv, applies defaults and validates the result.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	name := "loadgen"
	if len(args) > 0 {
		name = filepath.Base(args[0])
		args = args[1:]
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)

	dataset := defaultDataset
	if v := getenv(datasetEnv); v != "" {
		dataset = v
	}
	var cfg config
	rawURL := fs.String("url", defaultURL, "service URL to POST the images to")
	fs.StringVar(&cfg.Dataset, "dataset", dataset, "dataset folder with "+defaultImagesDir+"/ and "+defaultLabelsFile+" (env "+datasetEnv+")")
	fs.StringVar(&cfg.Images, "images", "", "folder of images to send (default <dataset>/"+defaultImagesDir+")")
	fs.StringVar(&cfg.Labels, "labels", "", "labels CSV with header Image,Results (default <dataset>/"+defaultLabelsFile+")")
	fs.IntVar(&cfg.Requests, "n", 0, "requests per round; images are cycled if n exceeds their number (default one per image)")
	fs.IntVar(&cfg.Concurrency, "c", defaultConcurrency, "requests in flight at once")
	fs.StringVar(&cfg.Field, "field", fieldMyfile, "multipart form field: "+fieldMyfile+" (answer Paul) or "+fieldInputFile+" (answer test_00:Paul)")
	fs.DurationVar(&cfg.Timeout, "timeout", defaultTimeout, "timeout of each request")
	fs.DurationVar(&cfg.WaitReady, "wait-ready", defaultWaitReady, "wait up to this long for GET /healthz to answer 200 before sending (0: do not wait)")
	fs.BoolVar(&cfg.JSON, "json", false, "also print the summary as one line of JSON, after the text")
	fs.IntVar(&cfg.Repeat, "repeat", 1, "send the whole set this many times, one round after another")
	fs.StringVar(&cfg.Timeline, "timeline", "", "write every request's start and end time to this CSV file")
	fs.StringVar(&cfg.Series, "series", "", "write a CSV time series to this file: requests sent, answered and correct, and the\nservice's queue depth and instances by state from GET /metrics")
	fs.DurationVar(&cfg.SeriesEvery, "series-every", defaultSeriesEvery, "sampling interval of -series")
	fs.DurationVar(&cfg.SeriesAfter, "series-after", 0, "keep sampling -series this long after the last answer, to see the fleet scale in")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Images == "" {
		cfg.Images = filepath.Join(cfg.Dataset, defaultImagesDir)
	}
	if cfg.Labels == "" {
		cfg.Labels = filepath.Join(cfg.Dataset, defaultLabelsFile)
	}
	u, err := parseTarget(*rawURL)
	if err != nil {
		return config{}, err
	}
	cfg.URL = u
	if err := cfg.validate(); err != nil {
		return config{}, err
	}
	return cfg, nil
}

func parseTarget(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse -url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("parse -url %q: want http://host[:port]/path", raw)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

func (c config) validate() error {
	switch {
	case c.Field != fieldMyfile && c.Field != fieldInputFile:
		return fmt.Errorf("-field %q: want %s or %s", c.Field, fieldMyfile, fieldInputFile)
	case c.Requests < 0:
		return fmt.Errorf("-n %d: want 0 (one per image) or more", c.Requests)
	case c.Concurrency < 1:
		return fmt.Errorf("-c %d: want at least 1", c.Concurrency)
	case c.Repeat < 1:
		return fmt.Errorf("-repeat %d: want at least 1", c.Repeat)
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout %v: want more than 0", c.Timeout)
	case c.SeriesEvery <= 0:
		return fmt.Errorf("-series-every %v: want more than 0", c.SeriesEvery)
	case c.SeriesAfter < 0:
		return fmt.Errorf("-series-after %v: want 0 or more", c.SeriesAfter)
	case c.WaitReady < 0:
		return fmt.Errorf("-wait-ready %v: want 0 (no wait) or more", c.WaitReady)
	}
	return nil
}
