#!/usr/bin/env bash
# Scheduler benchmarks (figures only, no assertions), on the release build in a private cluster:
#  1. end-to-end staleness of a stream table with a '1s' schedule: for each of N changes, the time
#     from the writer's commit until the change is visible in the stream table (p50/p90/p99/max);
#  2. CPU cost of a scheduler tick with 100 idle stream tables (scheduler process CPU time from
#     /proc/<pid>/schedstat over a measured period, divided by the ticks in it).
#
#   bash bench/scheduler.sh [--changes N] [--idle-tables N] [--idle-seconds S] [--seed N]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup scheduler
bench_describe
"$BENCH_PY" "$BENCH_ROOT/bench/scheduler.py" "$@"
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
