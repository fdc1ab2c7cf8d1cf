#!/usr/bin/env bash
# bench-distributed.sh: BenchmarkDistributedBurst (services/embedded/e2e),
# the distributed mode's burst of 100 CSE546 requests through the web
# program and two warm workers on moto: time per burst (ns/op) and S3 and
# SQS calls per request. It starts the test servers it needs (memcached; the
# benchmark runs a moto of its own) and stops them, as scripts/test.sh does.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
trap 'scripts/test-servers.sh stop' EXIT
eval "$(scripts/test-servers.sh start)"
go test -run '^$' -bench DistributedBurst -benchtime "${BENCHTIME:-5x}" -count 1 ./services/embedded/e2e
