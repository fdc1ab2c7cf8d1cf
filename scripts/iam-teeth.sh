#!/usr/bin/env bash
# iam-teeth.sh [PATTERN]
#
# Shows that the distributed end-to-end test (TestDistributedMode, programs
# under the IAM policies of infra/iam on a moto server that enforces them)
# has teeth: it runs the test once per action of the web and worker
# policies with that one action dropped, and expects each run to fail. The
# actions the test lists as unused (with the reason) are reported, not run.
# PATTERN (a grep -E pattern) limits the run to the matching actions, as
# "worker SendResponses". LAYOUT=loadBalanced runs TestLoadBalancedWebTier
# instead, over the web, worker and scaler policies of the load-balanced
# layout (about two minutes per action).
#
# Up to a minute per action (about 9 minutes in all here); `make test-iam`
# runs it. It needs what `make test` needs (models, test servers), and
# starts the test servers, then stops them, as scripts/test.sh does. Exit
# status 1 when a run with an action dropped passes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pattern="${1:-.}"

trap 'scripts/test-servers.sh stop' EXIT
eval "$(scripts/test-servers.sh start)"
test=TestDistributedMode
case "${LAYOUT:-single}" in
single) ;;
loadBalanced) test=TestLoadBalancedWebTier ;;
*)
	echo "iam-teeth: LAYOUT=$LAYOUT: want single or loadBalanced" >&2
	exit 2
	;;
esac
run() { go test -count=1 -run "^$test\$" -v -timeout 30m ./services/embedded/e2e; }

mapfile -t actions < <(ELASTIQ_E2E_DROP_ACTION=list run | sed -n 's/^ACTION //p' | grep -E -- "$pattern")
if ((${#actions[@]} == 0)); then
	echo "iam-teeth: no action matches $pattern" >&2
	exit 1
fi

toothless=0
for line in "${actions[@]}"; do
	action="${line%% skip: *}"
	if [[ "$line" == *" skip: "* ]]; then
		printf '%-55s not run: %s\n' "$action" "${line#* skip: }"
		continue
	fi
	t0=$SECONDS
	if out="$(ELASTIQ_E2E_DROP_ACTION="$action" run 2>&1)"; then
		printf '%-55s PASSED with it dropped (%ds): the test does not need it\n' "$action" $((SECONDS - t0))
		toothless=1
		continue
	fi
	why="$(grep -m1 'was denied' <<<"$out" || grep -v 'dropped' <<<"$out" | grep -m1 -E '_test.go:[0-9]+:' || true)"
	why="$(sed 's/^ *//' <<<"$why" | cut -c1-160)"
	printf '%-55s failed (%ds): %s\n' "$action" $((SECONDS - t0)) "${why:-see the test output}"
done
exit "$toothless"
