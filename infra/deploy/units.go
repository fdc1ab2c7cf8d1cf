package deploy

import (
	"strings"
	"time"
)

// Unit is a systemd unit file.
type Unit struct {
	// Name is the unit's file name in /etc/systemd/system.
	Name string
	// Text is the unit file.
	Text string
}

// The units' names.
const (
	MemcachedService = "memcached.service"
	WebService       = "elastiq-web.service"
	ScalerService    = "elastiq-scaler.service"
	WorkerService    = "elastiq-worker.service"
)

// User is the system user the elastiq services run as (memcached runs as
// its package's user).
const User = "elastiq"

// MemcachedAddr is where memcached listens on the web instance and where
// the web tier finds it: loopback only.
const MemcachedAddr = "127.0.0.1:11211"

// ScalerAddr is where the scaler serves the web tier (its -addr: nudges,
// and the report the dashboard shows; the web tier's -scaler-url is
// http://ScalerAddr): loopback, as the two share the web instance.
const ScalerAddr = "127.0.0.1:8081"

// The worker's and the scaler's -metrics-addr ports (GET /metrics, GET
// /healthz), open to the clients' CIDR for Prometheus; the web tier's
// /metrics is on its HTTP port.
const (
	WorkerMetricsPort = 9101
	ScalerMetricsPort = 9102
)

// WorkerGrace is the worker's -grace: on SIGTERM (the instance stopping) it
// finishes the requests in hand within it. WorkerStopTimeout, the unit's
// TimeoutStopSec, leaves it room before systemd sends SIGKILL.
const (
	WorkerGrace       = 25 * time.Second
	WorkerStopTimeout = 45 * time.Second
)

// hardening is the sandbox every service gets: no privilege gain, a
// read-only system, no home, devices, kernel knobs or namespaces, only IP
// and Unix sockets, the system-service syscalls (others fail with EPERM
// rather than killing the process). The services write nothing but what
// their unit grants (the worker's CacheDirectory).
const hardening = `NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077
`

// noWX forbids writable-and-executable memory: fine for Go programs and
// memcached. The worker does without it: ONNX Runtime is native code we do
// not control.
const noWX = "MemoryDenyWriteExecute=yes\n"

// unit assembles a unit file from its parts; service holds the [Service]
// lines specific to it (before the hardening).
func unit(description, unitExtra, service string, sandbox ...string) string {
	var b strings.Builder
	b.WriteString("# Rendered by github.com/elastiq/elastiq/infra/deploy.\n[Unit]\n")
	b.WriteString("Description=" + description + "\n")
	b.WriteString("Documentation=https://github.com/elastiq/elastiq\n")
	b.WriteString(unitExtra)
	b.WriteString("\n[Service]\n")
	b.WriteString(service)
	for _, s := range sandbox {
		b.WriteString(s)
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

// afterNetwork orders a unit after the network is up (the AWS APIs).
const afterNetwork = "Wants=network-online.target\nAfter=network-online.target\n"

// MemcachedUnit is the web instance's memcached: the result store the
// web tier shares, on loopback only. It replaces the package's unit.
func MemcachedUnit() Unit {
	return Unit{Name: MemcachedService, Text: unit("memcached: the elastiq web tier's result store (loopback only)",
		"After=network.target\n",
		`Type=simple
User=memcached
Group=memcached
ExecStart=/usr/bin/memcached -l 127.0.0.1 -p 11211 -U 0 -m 64 -c 1024
Restart=on-failure
RestartSec=2s
CapabilityBoundingSet=
`, hardening, noWX)}
}

// programService is the [Service] section of an elastiq program run as User from
// its environment file, with args and extra lines.
func programService(name, args, restartSec string, stopTimeout time.Duration, extra string) string {
	execStart := program(name)
	if args != "" {
		execStart += " " + args
	}
	return "Type=exec\nUser=" + User + "\nGroup=" + User + "\nEnvironmentFile=" + envFile(name) + "\n" +
		extra + "ExecStart=" + execStart + "\nRestart=on-failure\nRestartSec=" + restartSec +
		"\nTimeoutStopSec=" + seconds(stopTimeout) + "\n"
}

// WebUnit runs the web tier (HTTP, response consumer, dead-letter
// handler) with /etc/elastiq/web.env. It may bind a port below 1024.
func WebUnit() Unit {
	return Unit{Name: WebService, Text: unit("elastiq web tier: HTTP API, response consumer, dead-letter handler",
		afterNetwork+"Wants="+MemcachedService+"\nAfter="+MemcachedService+"\n",
		programService(WebName, "", "2s", 30*time.Second, "")+
			"AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		hardening, noWX)}
}

// ScalerUnit runs the scaler with /etc/elastiq/scaler.env.
//
// -terminate-workers-with-host: when the web instance is being terminated
// (pulumi destroy, or its replacement after a code change), the scaler
// terminates the workers it launched, which no deployment tool tracks, on
// its way down; the unit gives it two minutes for that.
func ScalerUnit() Unit {
	return Unit{Name: ScalerService, Text: unit("elastiq scaler: starts, stops and terminates the stack's worker instances",
		afterNetwork,
		programService(ScalerName, "-terminate-workers-with-host", "2s", 2*time.Minute, "")+"CapabilityBoundingSet=\n",
		hardening, noWX)}
}

// WorkerUnit runs the worker with /etc/elastiq/worker.env, the models and
// gallery of /opt/elastiq, and -self-stop: idle, it stops its own instance
// and exits 0, which Restart=on-failure leaves alone; the scaler's start
// boots it again. On a stop it gets WorkerGrace to finish what it holds.
func WorkerUnit() Unit {
	return Unit{Name: WorkerService, Text: unit("elastiq worker: classifies the queued requests; stops this instance when idle",
		afterNetwork+"ConditionPathExists="+envFile(WorkerName)+"\n",
		programService(WorkerName, "-self-stop -grace "+WorkerGrace.String(), "5s", WorkerStopTimeout,
			"Environment=ELASTIQ_MODELS="+modelsDir+" ELASTIQ_GALLERY="+galleryDir+" ELASTIQ_GALLERY_CACHE=/var/cache/"+cacheName+"\n")+
			"CacheDirectory="+cacheName+"\nCapabilityBoundingSet=\n",
		hardening)}
}

// seconds renders a duration as systemd seconds ("45s").
func seconds(d time.Duration) string { return d.Truncate(time.Second).String() }

// Units returns every unit a deployment installs: memcached, the web tier
// and the scaler on the web instance, the worker on each worker.
func Units() []Unit {
	return []Unit{MemcachedUnit(), WebUnit(), ScalerUnit(), WorkerUnit()}
}
