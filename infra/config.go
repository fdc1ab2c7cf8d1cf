package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// configNamespace is the namespace of the program's keys in Pulumi.<stack>.yaml
// (elastiq:maxWorkers, ...).
const configNamespace = "elastiq"

// Config is the deployment's settings, read once from the stack's
// configuration by parseConfig, plus what builds the deployment bundle.
type Config struct {
	// WebInstanceType and WorkerInstanceType are EC2 instance types. The
	// binaries are built for linux/amd64, so both must be x86_64 types.
	WebInstanceType    string
	WorkerInstanceType string
	// MaxWorkers is the most worker instances the scaler runs.
	MaxWorkers int
	// WorkerIdleStop is how long a worker waits on an empty queue before it
	// stops its own instance.
	WorkerIdleStop time.Duration
	// TerminateStoppedAfter is how long after the last request the scaler
	// terminates the stopped workers.
	TerminateStoppedAfter time.Duration
	// Policy is the scaler's policy.
	Policy string
	// MaxReceives is the request queue's maxReceiveCount: a request received
	// that many times without an answer goes to the dead-letter queue.
	MaxReceives int
	// ClientCIDR may reach the web tier's HTTPPort.
	ClientCIDR string
	HTTPPort   int
	// SSHCIDR may reach the web instance on port 22 ("": nobody, the
	// default); KeyName is the key pair put on it ("": none, for EC2
	// Instance Connect).
	SSHCIDR string
	KeyName string
	// ForceDestroy lets `pulumi destroy` delete the bucket with its objects.
	ForceDestroy bool
	// AdminToken is the gallery's admin token (elastiq:adminToken, set as a
	// secret: pulumi config set --secret elastiq:adminToken ...). It goes
	// to an SSM SecureString parameter that the web tier reads at start;
	// empty: no token, and the gallery's routes answer 403.
	AdminToken string
	// LifecycleDays expires input/ and output/ objects this many days after
	// they were written; 0 keeps them.
	LifecycleDays int
	// WorkerAMI is the worker image baked by ami/ ("": Amazon Linux 2023,
	// with user data that installs the worker from the deployment bundle).
	WorkerAMI string

	// Layout is how the web tier is deployed: layoutSingle (one web
	// instance with memcached and the scaler, the dev stack's) or
	// layoutLoadBalanced (an Application Load Balancer in front of an Auto
	// Scaling group of web instances across availability zones, each with
	// its own response queue; ElastiCache memcached; the scaler on an
	// instance of its own). The keys below apply to the latter.
	Layout string
	// WebMinInstances and WebMaxInstances bound the web Auto Scaling group.
	WebMinInstances, WebMaxInstances int
	// CertificateARN, if set, is an ACM certificate: the load balancer
	// serves HTTPS on 443 with it, and its HTTP port redirects there.
	CertificateARN string
	// CacheNodeType and CacheNodes are the ElastiCache memcached cluster's.
	CacheNodeType string
	CacheNodes    int
	// ScalerInstanceType is the scaler instance's type.
	ScalerInstanceType string

	// Build builds the deployment bundle; main sets deploy.Build.
	Build buildFunc
}

// Defaults of the optional keys.
const (
	defaultWebInstanceType       = "t3.micro"
	defaultWorkerInstanceType    = "t3.small"
	defaultMaxWorkers            = 19
	defaultWorkerIdleStop        = 60 * time.Second
	defaultTerminateStoppedAfter = 2 * time.Minute
	defaultPolicy                = "backlog"
	defaultMaxReceives           = 5
	defaultHTTPPort              = 80
	defaultWebMinInstances       = 2
	defaultWebMaxInstances       = 4
	defaultCacheNodeType         = "cache.t4g.micro"
	defaultCacheNodes            = 1
	defaultScalerInstanceType    = "t3.micro"
)

// The layouts (elastiq:layout).
const (
	layoutSingle       = "single"
	layoutLoadBalanced = "loadBalanced"
)

// parseConfig reads the settings through get, which returns a key of the
// elastiq namespace or "" when it is not set (config.Config.Get), applies the
// defaults and validates them. clientCidr is required.
func parseConfig(get func(key string) string) (Config, error) {
	c := Config{
		WebInstanceType:    or(get("webInstanceType"), defaultWebInstanceType),
		WorkerInstanceType: or(get("workerInstanceType"), defaultWorkerInstanceType),
		Policy:             or(get("policy"), defaultPolicy),
		ClientCIDR:         get("clientCidr"),
		SSHCIDR:            get("sshCidr"),
		KeyName:            get("keyName"),
		WorkerAMI:          get("workerAmi"),
		Layout:             or(get("layout"), layoutSingle),
		CertificateARN:     get("certificateArn"),
		CacheNodeType:      or(get("cacheNodeType"), defaultCacheNodeType),
		ScalerInstanceType: or(get("scalerInstanceType"), defaultScalerInstanceType),
	}
	var errs []error
	intKey := func(key string, def int) int {
		s := get(key)
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%s = %q: not an integer", configNamespace, key, s))
		}
		return n
	}
	durationKey := func(key string, def time.Duration) time.Duration {
		s := get(key)
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%s = %q: not a duration like 90s or 2m", configNamespace, key, s))
		}
		return d
	}
	c.MaxWorkers = intKey("maxWorkers", defaultMaxWorkers)
	c.MaxReceives = intKey("maxReceives", defaultMaxReceives)
	c.HTTPPort = intKey("httpPort", defaultHTTPPort)
	c.LifecycleDays = intKey("lifecycleDays", 0)
	c.WebMinInstances = intKey("webMinInstances", defaultWebMinInstances)
	c.WebMaxInstances = intKey("webMaxInstances", defaultWebMaxInstances)
	c.CacheNodes = intKey("cacheNodes", defaultCacheNodes)
	c.AdminToken = get("adminToken")
	c.WorkerIdleStop = durationKey("workerIdleStop", defaultWorkerIdleStop)
	c.TerminateStoppedAfter = durationKey("terminateStoppedAfter", defaultTerminateStoppedAfter)
	if s := get("forceDestroy"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:forceDestroy = %q: not true or false", configNamespace, s))
		}
		c.ForceDestroy = b
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// validate checks the settings (not Build).
func (c Config) validate() error {
	var errs []error
	bad := func(key string, value any, want string) {
		errs = append(errs, fmt.Errorf("%s:%s = %v: %s", configNamespace, key, value, want))
	}
	if c.WebInstanceType == "" {
		bad("webInstanceType", `""`, "want an instance type such as "+defaultWebInstanceType)
	}
	if c.WorkerInstanceType == "" {
		bad("workerInstanceType", `""`, "want an instance type such as "+defaultWorkerInstanceType)
	}
	if c.MaxWorkers < 1 {
		bad("maxWorkers", c.MaxWorkers, "want at least 1")
	}
	if c.MaxReceives < 1 || c.MaxReceives > 1000 {
		bad("maxReceives", c.MaxReceives, "want 1..1000 (SQS's maxReceiveCount)")
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		bad("httpPort", c.HTTPPort, "want a TCP port")
	}
	if c.LifecycleDays < 0 {
		bad("lifecycleDays", c.LifecycleDays, "want 0 (keep) or more days")
	}
	if c.WorkerIdleStop <= 0 {
		bad("workerIdleStop", c.WorkerIdleStop, "want more than 0 (the workers always stop their instance when idle)")
	}
	if c.TerminateStoppedAfter <= 0 {
		bad("terminateStoppedAfter", c.TerminateStoppedAfter, "want more than 0")
	}
	// bin/scaler's -policy.
	if c.Policy != "classic" && c.Policy != "backlog" {
		bad("policy", c.Policy, `want "classic" or "backlog"`)
	}
	if c.ClientCIDR == "" {
		bad("clientCidr", `""`, "required: who may use the service, e.g. 203.0.113.7/32 (0.0.0.0/0: anyone)")
	} else if !isIPv4CIDR(c.ClientCIDR) {
		bad("clientCidr", c.ClientCIDR, "want an IPv4 CIDR such as 203.0.113.7/32 (no host bits set)")
	}
	if c.SSHCIDR != "" && !isIPv4CIDR(c.SSHCIDR) {
		bad("sshCidr", c.SSHCIDR, "want an IPv4 CIDR such as 203.0.113.7/32 (no host bits set), or unset for no SSH")
	}
	if c.WorkerAMI != "" && !strings.HasPrefix(c.WorkerAMI, "ami-") {
		bad("workerAmi", c.WorkerAMI, "want an image ID ami-... (the one ami/ built), or unset")
	}
	switch c.Layout {
	case layoutSingle:
	case layoutLoadBalanced:
		if c.WebMinInstances < 1 {
			bad("webMinInstances", c.WebMinInstances, "want at least 1 (2 or more for no single point of failure)")
		}
		if c.WebMaxInstances < c.WebMinInstances {
			bad("webMaxInstances", c.WebMaxInstances, fmt.Sprintf("want at least webMinInstances (%d)", c.WebMinInstances))
		}
		if c.CertificateARN != "" && !strings.HasPrefix(c.CertificateARN, "arn:") {
			bad("certificateArn", c.CertificateARN, "want an ACM certificate ARN arn:aws:acm:..., or unset for HTTP only")
		}
		if c.CertificateARN != "" && c.HTTPPort == httpsPort {
			bad("httpPort", c.HTTPPort, "want another port than HTTPS's 443, which the load balancer's certificate takes")
		}
		if c.CacheNodeType == "" {
			bad("cacheNodeType", `""`, "want an ElastiCache node type such as "+defaultCacheNodeType)
		}
		if c.CacheNodes < 1 || c.CacheNodes > 40 {
			bad("cacheNodes", c.CacheNodes, "want 1..40 (ElastiCache memcached's nodes per cluster)")
		}
		if c.ScalerInstanceType == "" {
			bad("scalerInstanceType", `""`, "want an instance type such as "+defaultScalerInstanceType)
		}
	default:
		bad("layout", c.Layout, fmt.Sprintf("want %q (one web instance) or %q", layoutSingle, layoutLoadBalanced))
	}
	return errors.Join(errs...)
}

// httpsPort is the load balancer's HTTPS port.
const httpsPort = 443

// isIPv4CIDR reports whether s is an IPv4 CIDR block with no host bits set,
// as a security group rule takes it.
func isIPv4CIDR(s string) bool {
	p, err := netip.ParsePrefix(s)
	return err == nil && p.Addr().Is4() && p == p.Masked()
}

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
