package web

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/imagecheck"
)

// Config is the web tier's configuration. Start from DefaultConfig; the
// program that wires the web tier reads flags and environment into it.
type Config struct {
	// MaxUploadBytes is the largest accepted image file (413 above it).
	MaxUploadBytes int64
	// InlineMaxBytes: an image up to this size travels in its request
	// (elastiq.Request.Image), so the worker need not read input/. Zero:
	// never (the default; the distributed web program uses
	// elastiq.MaxInlineImage).
	InlineMaxBytes int
	// MaxImageSide is the largest width or height an image header may
	// declare, and MaxImagePixels the largest width×height (400 above
	// either). They are checked from the header, before the rest of the
	// file; the web tier never decodes pixels, and these limits keep the
	// workers from being handed an image that would take gigabytes to
	// decode (a 10 MiB JPEG can declare 20000×20000).
	MaxImageSide   int
	MaxImagePixels int64
	// MaxDecodeBytes is the most memory a worker may need to decode an
	// image, as its header tells (imagecheck.Info.DecodeBytes): a 389 KB
	// PNG of 50 megapixels in 16-bit RGBA needs 550 MB. Above it an upload
	// is refused with 400, since no worker could ever decode it: keep it
	// at most the workers' decode budget (-decode-budget), which is the
	// default.
	MaxDecodeBytes int64

	// SyncTimeout is how long POST / waits for a result before answering
	// 504 with the request's ID and status URL.
	SyncTimeout time.Duration
	// MaxWait caps ?wait= on GET /v1/recognitions/{id}.
	MaxWait time.Duration
	// IOTimeout bounds each call to the object store, the queues and the
	// cache made while serving a request or handling a response.
	IOTimeout time.Duration
	// MetricsTimeout bounds the queue, fleet and scaler reads of a
	// /metrics scrape and of a dashboard sample.
	MetricsTimeout time.Duration
	// DashboardInterval is the dashboard's resolution: how often it
	// samples; DashboardWindow how long it keeps the samples.
	DashboardInterval time.Duration
	DashboardWindow   time.Duration
	// ShutdownTimeout bounds the graceful HTTP shutdown: the requests
	// being served get this long to finish.
	ShutdownTimeout time.Duration
	// BodyStallTimeout is the longest a request body may go without a
	// byte, and MinUploadRate (bytes a second) the least it must average
	// after that (paceBody); a body past either is cut with 408.
	// IdleTimeout closes a keep-alive connection with no request.
	// WriteTimeout is the longest a request may take from its headers to
	// the end of its answer (http.Server's): a backstop for a client that
	// stops reading its answer. It must leave room for the slowest honest
	// upload and the longest wait for a result.
	BodyStallTimeout time.Duration
	MinUploadRate    int64
	IdleTimeout      time.Duration
	WriteTimeout     time.Duration
	// MaxConns and MaxConnsPerClient cap the open connections, in all
	// and per client address; one past either is answered 503 with
	// Retry-After and closed. 0: no cap.
	MaxConns, MaxConnsPerClient int

	// AdminToken is the bearer token the gallery's routes (/v1/subjects)
	// need; empty turns them off (403). AdminTokenFile, if set, is read
	// into it by LoadAdminToken (a token in a file stays out of ps).
	AdminToken     string
	AdminTokenFile string

	// CacheTTL is how long a result stays in the shared cache.
	CacheTTL time.Duration
	// ResultRetention and MaxRetainedResults bound the in-memory copy of
	// finished results that serves waiters, GETs and duplicate detection:
	// a result is forgotten after ResultRetention or when more than
	// MaxRetainedResults are held, oldest first.
	ResultRetention    time.Duration
	MaxRetainedResults int

	// Consumers is how many goroutines long-poll the response queue, each
	// receiving up to ReceiveBatch messages and waiting up to ReceiveWait.
	Consumers    int
	ReceiveBatch int
	// GatherWindow: after a receive that brought fewer than ReceiveBatch
	// responses, a consumer waits this long before the next, so that
	// responses gather into fewer, fuller receives (each one a billed
	// call). It adds up to this much to an answer. Default 0; the
	// distributed web program sets it with -gather-window (20ms).
	GatherWindow time.Duration
	ReceiveWait  time.Duration
}

// DefaultConfig returns the defaults. They are all here.
func DefaultConfig() Config {
	return Config{
		MaxUploadBytes:     10 << 20,
		MaxImageSide:       20_000,
		MaxImagePixels:     50_000_000,
		MaxDecodeBytes:     imagecheck.DefaultDecodeBudget,
		SyncTimeout:        60 * time.Second,
		MaxWait:            60 * time.Second,
		IOTimeout:          30 * time.Second,
		MetricsTimeout:     2 * time.Second,
		DashboardInterval:  2 * time.Second,
		DashboardWindow:    30 * time.Minute,
		ShutdownTimeout:    10 * time.Second,
		BodyStallTimeout:   10 * time.Second,
		MinUploadRate:      64 << 10,
		IdleTimeout:        2 * time.Minute,
		WriteTimeout:       5 * time.Minute,
		MaxConns:           16_384,
		MaxConnsPerClient:  4_096,
		CacheTTL:           time.Hour,
		ResultRetention:    10 * time.Minute,
		MaxRetainedResults: 10_000,
		Consumers:          2,
		ReceiveBatch:       elastiq.MaxReceiveBatch,
		ReceiveWait:        elastiq.MaxReceiveWait,
	}
}

// RegisterLimitFlags registers the flags of the limits a client meets
// (the README's Limits table); c's values are their defaults.
func (c *Config) RegisterLimitFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxUploadBytes, "max-upload", c.MaxUploadBytes, "largest accepted upload in bytes (413 above it)")
	fs.Int64Var(&c.MaxDecodeBytes, "max-decode-bytes", c.MaxDecodeBytes,
		"most memory in bytes a worker may need to decode an upload (400 above it; at most the workers' -decode-budget)")
	fs.DurationVar(&c.BodyStallTimeout, "body-stall-timeout", c.BodyStallTimeout,
		"longest an upload may go without a byte (408 past it, the connection closed)")
	fs.Int64Var(&c.MinUploadRate, "min-upload-rate", c.MinUploadRate,
		"least bytes a second an upload must average after -body-stall-timeout (408 below it; 0: no minimum)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "a keep-alive connection without a request is closed after this")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout,
		"longest a request may take from its headers to the end of its answer (the connection is closed past it)")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "most open connections (503 with Retry-After past it; 0: no cap)")
	fs.IntVar(&c.MaxConnsPerClient, "max-conns-per-client", c.MaxConnsPerClient,
		"most open connections from one address (503 with Retry-After past it; 0: no cap)")
}

// RegisterAdminFlags adds the flags of the gallery's admin token to fs.
// Call LoadAdminToken after parsing.
func (c *Config) RegisterAdminFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken,
		"bearer token that managing the gallery (/v1/subjects) needs; empty: those routes answer 403")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the admin token (instead of -admin-token)")
}

// LoadAdminToken reads AdminTokenFile into AdminToken, when set.
func (c *Config) LoadAdminToken() error {
	if c.AdminTokenFile == "" {
		return nil
	}
	if c.AdminToken != "" {
		return errors.New("admin token: set -admin-token or -admin-token-file, not both")
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if c.AdminToken = strings.TrimSpace(string(b)); c.AdminToken == "" {
		return fmt.Errorf("admin token: %s is empty", c.AdminTokenFile)
	}
	return nil
}

// maxInline is the largest InlineMaxBytes: a request with an image this
// large still fits in an SQS message.
const maxInline = 190 << 10

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.MaxUploadBytes > 0, "MaxUploadBytes %d: want > 0", c.MaxUploadBytes)
	check(c.MaxImageSide > 0, "MaxImageSide %d: want > 0", c.MaxImageSide)
	check(c.MaxImagePixels > 0, "MaxImagePixels %d: want > 0", c.MaxImagePixels)
	check(c.MaxDecodeBytes > 0, "MaxDecodeBytes %d: want > 0", c.MaxDecodeBytes)
	check(c.SyncTimeout > 0, "SyncTimeout %v: want > 0", c.SyncTimeout)
	check(c.MaxWait > 0, "MaxWait %v: want > 0", c.MaxWait)
	check(c.IOTimeout > 0, "IOTimeout %v: want > 0", c.IOTimeout)
	check(c.MetricsTimeout > 0, "MetricsTimeout %v: want > 0", c.MetricsTimeout)
	check(c.DashboardInterval > 0, "DashboardInterval %v: want > 0", c.DashboardInterval)
	check(c.DashboardWindow >= c.DashboardInterval, "DashboardWindow %v: want >= DashboardInterval %v", c.DashboardWindow, c.DashboardInterval)
	check(c.BodyStallTimeout > 0, "BodyStallTimeout %v: want > 0", c.BodyStallTimeout)
	check(c.MinUploadRate >= 0, "MinUploadRate %d: want >= 0 (0: no minimum)", c.MinUploadRate)
	check(c.IdleTimeout > 0, "IdleTimeout %v: want > 0", c.IdleTimeout)
	check(c.WriteTimeout > max(c.SyncTimeout, c.MaxWait)+c.BodyStallTimeout, "WriteTimeout %v: want more than the longest wait for a result (%v) and the body stall timeout (%v)",
		c.WriteTimeout, max(c.SyncTimeout, c.MaxWait), c.BodyStallTimeout)
	check(c.MaxConns >= 0 && c.MaxConnsPerClient >= 0, "MaxConns %d, MaxConnsPerClient %d: want >= 0", c.MaxConns, c.MaxConnsPerClient)
	check(c.ShutdownTimeout > 0, "ShutdownTimeout %v: want > 0", c.ShutdownTimeout)
	check(c.CacheTTL > 0, "CacheTTL %v: want > 0", c.CacheTTL)
	check(c.ResultRetention > 0, "ResultRetention %v: want > 0", c.ResultRetention)
	check(c.MaxRetainedResults > 0, "MaxRetainedResults %d: want > 0", c.MaxRetainedResults)
	check(c.Consumers > 0, "Consumers %d: want > 0", c.Consumers)
	check(c.GatherWindow >= 0, "GatherWindow %v: want >= 0", c.GatherWindow)
	// An SQS message holds 256 KiB; the image goes in base64 (4/3).
	check(c.InlineMaxBytes >= 0 && c.InlineMaxBytes <= maxInline,
		"InlineMaxBytes %d: want 0 to %d (an SQS message holds 256 KiB, the image in base64)", c.InlineMaxBytes, maxInline)
	// SQS limits: at most 10 messages per receive, long polls up to 20 s.
	check(c.ReceiveBatch >= 1 && c.ReceiveBatch <= elastiq.MaxReceiveBatch,
		"ReceiveBatch %d: want 1 to %d", c.ReceiveBatch, elastiq.MaxReceiveBatch)
	check(c.ReceiveWait >= 0 && c.ReceiveWait <= elastiq.MaxReceiveWait,
		"ReceiveWait %v: want 0 to %v", c.ReceiveWait, elastiq.MaxReceiveWait)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("web config: %w", err)
	}
	return nil
}
