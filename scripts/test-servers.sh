#!/usr/bin/env bash
# test-servers.sh start|stop|env|status
#
# Runs, on loopback and on free ports, the protocol servers the integration
# tests talk to:
#   moto     (python3 -m moto.server: SQS, S3 and EC2 APIs)  -> ELASTIQ_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT
#   memcached (Debian package memcached)                      -> ELASTIQ_TEST_MEMCACHED=127.0.0.1:PORT
# and makes sure of the browser the dashboard's test drives headless (not a
# server: the test starts it):
#   chromium (Debian package chromium)                        -> ELASTIQ_TEST_CHROMIUM=/usr/bin/chromium
#
#   start   starts whatever is not running yet (installing a missing server
#           when it can), waits until each one answers, and prints the
#           environment as `export NAME=VALUE` lines on stdout, so
#           `eval "$(scripts/test-servers.sh start)"` sets it. Idempotent.
#   env     prints the same lines for the servers that are running.
#   stop    stops them (by the PIDs of the server processes themselves) and
#           waits until they are gone. Idempotent.
#   status  says what runs where.
#
# State (pid files, ports, logs) lives in $ELASTIQ_TEST_SERVERS_DIR, default
# .test-servers/ at the top of the repository. Progress goes to stderr.
#
# When a server cannot be had, start prints the environment of the others and
# fails: the tests that need it would fail too (they skip only in a unit-only
# run, go test -short, which needs no server).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${ELASTIQ_TEST_SERVERS_DIR:-$root/.test-servers}"
python="${PYTHON:-python3}"
start_timeout=60 # seconds for a server to answer; moto imports slowly on a loaded machine

log() { echo "test-servers: $*" >&2; }


# free_port prints a TCP port on 127.0.0.1 that nothing listens on now (a
# server that loses the race for it fails to start and start_one retries).
free_port() {
	local port i
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

# pid_of NAME prints the PID recorded for server NAME if that process still
# runs and is that server (the PID was not reused); fails otherwise.
pid_of() {
	local name="$1" pid
	[[ -f "$state/$name.pid" ]] || return 1
	pid="$(<"$state/$name.pid")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	case "$name" in
	moto) grep -qa 'moto.server' "/proc/$pid/cmdline" 2>/dev/null || return 1 ;;
	memcached) grep -qa 'memcached' "/proc/$pid/cmdline" 2>/dev/null || return 1 ;;
	esac
	echo "$pid"
}

port_of() { cat "$state/$1.port"; }

# answers NAME PORT: one request in the server's own protocol. A subshell,
# so the descriptor and its redirections stay local.
answers() (
	name="$1" port="$2" line=""
	exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
	case "$name" in
	moto) printf 'GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 ;;
	memcached) printf 'version\r\n' >&3 ;;
	esac
	read -r -t 5 line <&3 || true
	case "$name" in
	moto) [[ "$line" == HTTP/1.?' '200* ]] ;;
	memcached) [[ "$line" == VERSION* ]] ;;
	esac
) 2>/dev/null

# apt_install PACKAGE HINT: install a Debian package when running as root
# with apt-get; otherwise say how to (HINT: other ways).
apt_install() {
	local pkg="$1" hint="$2"
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "$pkg is not installed; running apt-get install -y $pkg"
		{ apt-get install -y "$pkg" || { apt-get update && apt-get install -y "$pkg"; }; } >&2 ||
			log "apt-get install $pkg failed"
	else
		log "$pkg is not installed; install it with: sudo apt-get install -y $pkg (Debian/Ubuntu), $hint"
	fi
}

# have NAME: the server's program is installed, installing it if possible.
have() {
	case "$1" in
	moto)
		"$python" -c 'import moto.server' 2>/dev/null && return 0
		log "moto is not installed; trying: $python -m pip install 'moto[server]'"
		"$python" -m pip install --quiet --retries 1 --timeout 30 'moto[server]' >&2 ||
			log "pip install failed; install moto with: $python -m pip install 'moto[server]' (or in a venv, then PYTHON=venv/bin/python3)"
		"$python" -c 'import moto.server' 2>/dev/null
		;;
	memcached)
		command -v memcached >/dev/null && return 0
		apt_install memcached "or brew install memcached (macOS)"
		command -v memcached >/dev/null
		;;
	esac
}

# chromium_path prints the browser's path, if one is installed.
chromium_path() {
	command -v chromium || command -v chromium-browser || command -v google-chrome || true
}

# have_chromium: a browser is installed, installing Debian's chromium if
# possible (a few minutes the first time).
have_chromium() {
	[[ -n "$(chromium_path)" ]] && return 0
	apt_install chromium "or set ELASTIQ_TEST_CHROMIUM to a Chrome or Chromium"
	[[ -n "$(chromium_path)" ]]
}

# launch NAME PORT: start the server in the background and print its PID.
# The command is exec'd by the background subshell, so $! is the server's
# own PID, not a wrapper's.
launch() {
	local name="$1" port="$2"
	case "$name" in
	moto)
		"$python" -m moto.server -H 127.0.0.1 -p "$port" \
			</dev/null >>"$state/moto.log" 2>&1 &
		;;
	memcached)
		# -u: memcached refuses to run as root without it.
		memcached -l 127.0.0.1 -p "$port" -U 0 -m 64 -c 1024 -u "$(id -un)" \
			</dev/null >>"$state/memcached.log" 2>&1 &
		;;
	esac
	echo $!
}

# start_one NAME: make sure server NAME runs and answers.
start_one() {
	local name="$1" pid port attempt deadline
	if pid="$(pid_of "$name")" && answers "$name" "$(port_of "$name")"; then
		log "$name already running (pid $pid, port $(port_of "$name"))"
		return 0
	fi
	stop_one "$name"
	have "$name" || return 1
	for attempt in 1 2 3; do
		port="$(free_port)"
		pid="$(launch "$name" "$port")"
		echo "$pid" >"$state/$name.pid"
		echo "$port" >"$state/$name.port"
		deadline=$((SECONDS + start_timeout))
		while ((SECONDS < deadline)); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break # died: port taken meanwhile, or a real failure; see the log
			fi
			if answers "$name" "$port"; then
				log "$name started (pid $pid, port $port, log $state/$name.log)"
				return 0
			fi
			sleep 0.2
		done
		log "$name did not answer on port $port (attempt $attempt); last lines of $state/$name.log:"
		tail -n 5 "$state/$name.log" >&2 || true
		stop_one "$name"
	done
	return 1
}

# stop_one NAME: stop server NAME if it runs, and forget it.
stop_one() {
	local name="$1" pid i
	if pid="$(pid_of "$name")"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		log "$name stopped (pid $pid)"
	fi
	rm -f "$state/$name.pid" "$state/$name.port"
}

var_of() {
	case "$1" in
	moto) echo "ELASTIQ_TEST_AWS_ENDPOINT=http://127.0.0.1:$(port_of moto)" ;;
	memcached) echo "ELASTIQ_TEST_MEMCACHED=127.0.0.1:$(port_of memcached)" ;;
	esac
}

# print_env: export lines for the running servers, also kept in $state/env.
print_env() {
	local name out=""
	for name in moto memcached; do
		if pid_of "$name" >/dev/null; then
			out+="export $(var_of "$name")"$'\n'
		fi
	done
	local browser="${ELASTIQ_TEST_CHROMIUM:-$(chromium_path)}"
	if [[ -n "$browser" ]]; then
		out+="export ELASTIQ_TEST_CHROMIUM=$browser"$'\n'
	fi
	printf '%s' "$out" >"$state/env"
	printf '%s' "$out"
}

servers=(moto memcached)

case "${1:-}" in
start)
	mkdir -p "$state"
	failed=()
	for name in "${servers[@]}"; do
		start_one "$name" || failed+=("$name")
	done
	[[ -n "${ELASTIQ_TEST_CHROMIUM:-}" ]] || have_chromium || failed+=(chromium)
	# prlimit (util-linux) limits a program's memory in the hostile-load tests.
	command -v prlimit >/dev/null || apt_install util-linux "prlimit is part of util-linux" || true
	command -v prlimit >/dev/null || failed+=(prlimit)
	print_env
	if ((${#failed[@]} > 0)); then
		log "could not start: ${failed[*]}"
		exit 1
	fi
	;;
stop)
	for name in "${servers[@]}"; do
		stop_one "$name"
	done
	rm -f "$state/env"
	;;
env)
	mkdir -p "$state"
	print_env
	;;
status)
	for name in "${servers[@]}"; do
		if pid="$(pid_of "$name")"; then
			echo "$name: running, pid $pid, $(var_of "$name")"
		else
			echo "$name: not running"
		fi
	done
	;;
*)
	echo "usage: $0 start|stop|env|status" >&2
	exit 2
	;;
esac
