#!/usr/bin/env bash
# demo.sh ADDR DATA: start the stack with a visible boot delay, send it the
# CSE546 workload (100 images at once), check every answer, keep watching
# while the fleet scales in, draw the run's timeline, stop the stack.
#   MODE=embedded|distributed  the all-in-one program (default), or the web,
#                           scaler and worker programs as processes on moto and
#                           memcached (bin/distributed; the servers are started
#                           for the demo and stopped after it), with the
#                           simulator's prediction of the drain for comparison
#   POLICY=backlog|classic  scaling policy (default backlog)
#   BOOT_DELAY=3s           how long a new worker instance takes to boot
#   SERVICE_TIME            per-message time the simulator's prediction assumes
#                           (distributed mode; default 58ms, measured by make bench)
#   TAIL=70s                how long to watch after the last answer
#   HOLD=60s                how long the stack stays up after that, for its
#                           dashboard (http://ADDR/dashboard); 0 to skip
set -euo pipefail
addr=${1:-127.0.0.1:8080}
data=${2:-.data}
mode=${MODE:-embedded}
boot=${BOOT_DELAY:-3s}
policy=${POLICY:-backlog}
tail=${TAIL:-70s}
hold=${HOLD:-60s}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/sim-out" "$data"
series="$root/sim-out/demo-$mode-$policy.csv"
log=$(mktemp)

# Measure only the stack started here: refuse an address something already
# serves on (a `make run` in another shell, say).
host=${addr%:*}
port=${addr##*:}
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
	echo "demo: something already listens on $addr; stop it or set ADDR=host:port" >&2
	exit 1
fi
case "$mode" in
embedded)
	"$root/bin/elastiq" -addr "$addr" -data "$data" -boot-delay "$boot" -policy "$policy" >"$log" 2>&1 &
	pid=$!
	trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
	;;
distributed)
	# Servers of the demo's own (not the tests'), stopped when it ends.
	export ELASTIQ_TEST_SERVERS_DIR="$data/demo-servers"
	eval "$("$root/scripts/test-servers.sh" start)"
	"$root/bin/distributed" -addr "$addr" -endpoint "$ELASTIQ_TEST_AWS_ENDPOINT" -memcached "$ELASTIQ_TEST_MEMCACHED" \
		-boot-delay "$boot" -policy "$policy" -- -gallery-cache "$data/gallery-cache" >"$log" 2>&1 &
	pid=$!
	trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; "$root/scripts/test-servers.sh" stop' EXIT
	;;
*)
	echo "demo: MODE=$mode: want embedded or distributed" >&2
	exit 1
	;;
esac
# Wait until this stack says it serves (loading the models takes a moment).
for ((i = 0; i < 600; i++)); do
	grep -q "serving on http://$addr" "$log" && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "demo: the stack exited before serving:" >&2
		cat "$log" >&2
		exit 1
	fi
	sleep 0.1
done
if ! grep -q "serving on http://$addr" "$log"; then
	echo "demo: the stack did not serve on $addr within 60s:" >&2
	cat "$log" >&2
	exit 1
fi

echo "demo: live dashboard at http://$addr/dashboard (open it now to watch the burst)"
status=0
"$root/bin/loadgen" -url "http://$addr/" \
	-images "$root/datasets/cse546-faces/face_images_100" \
	-labels "$root/datasets/cse546-faces/labels.csv" \
	-series "$series" -series-every 100ms -series-after "$tail" || status=$?
echo "--- scaling decisions of this run ($mode, $policy policy):"
grep -E 'component=scaler' "$log" | grep -v 'level=DEBUG' | tail -n 20 || true
echo "--- timeline:"
"$root/bin/simulate" -series "$series" -out "$root/sim-out" || true
if [[ "$mode" == distributed ]]; then
	echo "--- the simulator's prediction for the same timings (-service-time ${SERVICE_TIME:-58ms}):"
	"$root/bin/simulate" -local -boot-delay "$boot" -service-time "${SERVICE_TIME:-58ms}" -policy "$policy" \
		-workloads burst-cold:100 -out "" | tail -n 2 || true
fi
if [[ "$hold" != 0 && "$hold" != 0s ]]; then
	echo "demo: the stack stays up for $hold more: the dashboard at http://$addr/dashboard shows the whole run" \
		"(HOLD=0 skips this; Ctrl-C ends it now)"
	sleep "$hold" || true
fi
exit "$status"
