#!/usr/bin/env bash
# test.sh [-short] MODULE...: vets and tests every package of every module
# given, going on after a failure, and ends with what failed.
#
#   (default)  the whole suite, as `make test` runs it: with the race
#              detector, after starting (and before stopping) the loopback
#              test servers and checking the worker image's Packer template;
#              then the fuzz tests of the upload path and image decoding,
#              a fixed number of inputs each (FUZZTIME overrides it).
#              A missing server, model file or tool fails the tests that
#              need it.
#   -short     unit tests only, as `make test-unit` runs them: no servers,
#              no models, no race detector; the tests that need them skip,
#              saying so.
#
# The last line counts packages passed and packages or checks failed:
# "test: N passed, N failed".
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
short=false
if [[ "${1:-}" == "-short" ]]; then
	short=true
	shift
fi
modules=("$@")
failed=()
passed=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

if ! $short; then
	"$root/scripts/check-ami.sh" || failed+=("check-ami (the worker image's Packer template)")
	trap '"$root/scripts/test-servers.sh" stop; rm -f "$log"' EXIT
	# start prints the environment of the servers it could start, even when
	# one failed: the tests that need only those still run.
	env="$("$root/scripts/test-servers.sh" start)" || failed+=("test servers (scripts/test-servers.sh start)")
	eval "$env"
fi

flags=(-count=1 -race)
$short && flags=(-count=1 -short)
for m in "${modules[@]}"; do
	echo "=== module $m"
	if ! (cd "$root/$m" && go vet ./...); then
		failed+=("go vet in $m")
	fi
	(cd "$root/$m" && go test "${flags[@]}" ./... 2>&1) | tee "$log"
	passed=$((passed + $(grep -c '^ok  ' "$log")))
	while read -r pkg; do
		failed+=("$pkg")
	done < <(grep -E '^FAIL	' "$log" | cut -f2 | cut -d' ' -f1)
	if ! grep -qE '^(ok  |FAIL	|\?   )' "$log"; then
		failed+=("go test in $m (no package result)")
	fi
done

# Fuzz the upload path and image decoding, each for a fixed number of
# inputs (about 15 s here), and minimize a new input for a fixed number of
# runs (their corpora in testdata/fuzz run in every go test above). Counts,
# not durations: Go 1.26's fuzzing coordinator can fail a run that ends on
# its -fuzztime deadline with a bare "context deadline exceeded" and no
# failing input (go.dev/issue/75804, fixed in Go 1.27), and a busy machine
# makes that likely.
if ! $short; then
	for spec in services/web:FuzzUpload:.:60000x services/worker:FuzzDecode:./classify/internal/imgproc:200000x; do
		IFS=: read -r mod fn pkg count <<<"$spec"
		echo "=== fuzz $fn for ${FUZZTIME:-$count}"
		if (cd "$root/$mod" && go test -run '^$' -fuzz "^$fn\$" -fuzztime "${FUZZTIME:-$count}" -fuzzminimizetime 100x "$pkg"); then
			passed=$((passed + 1))
		else
			failed+=("fuzz $fn (a failing input is saved under $mod/$pkg/testdata/fuzz/$fn)")
		fi
	done
fi

echo
if ((${#failed[@]} > 0)); then
	echo "FAILED:"
	printf '  %s\n' "${failed[@]}"
fi
echo "test: $passed passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
