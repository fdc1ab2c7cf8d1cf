#!/usr/bin/env bash
# demo.sh ADDR DATA: start the embedded stack with a visible boot delay, send it
# the CSE546 workload (100 images at once), check every answer, stop the stack.
set -euo pipefail
addr=${1:-127.0.0.1:8080}
data=${2:-.data}
boot=${BOOT_DELAY:-3s}
root=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)

"$root/bin/elastiq" -addr "$addr" -data "$data" -boot-delay "$boot" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

status=0
"$root/bin/loadgen" -url "http://$addr/" \
	-images "$root/datasets/cse546-faces/face_images_100" \
	-labels "$root/datasets/cse546-faces/labels.csv" || status=$?
echo "--- scaling decisions of this run:"
grep -E 'component=scaler' "$log" | grep -v 'level=DEBUG' | tail -n 20 || true
exit "$status"
