#!/usr/bin/env bash
# Write-side cost of change capture (triggers, and WAL decoding): single-row INSERT/UPDATE throughput (pgbench, 1 and 2
# clients) and 100,000-row INSERT/UPDATE/DELETE, on a table without and with a stream table over it.
# Prints figures; asserts nothing. Runs on the release (optimised) PostgreSQL build, in a private
# temporary cluster that is stopped and deleted on exit.
#
#   bash bench/cdc_overhead.sh [--seconds N] [--rounds N] [--reps N] [--clients 1,2]
#                              [--workloads insert,update] [--modes plain,tracked,stmt,wal] [--skip-pgbench] [--skip-bulk]
#
# Defaults: 15 s per pgbench run, 3 rounds per cell (about 11 minutes in all), 5 bulk repetitions.
# Environment (see bench/lib.sh): PGT_BENCH_REV, PGT_BENCH_WAIT_IDLE, PGT_BENCH_KEEP.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup cdc
bench_describe
bench_cpu_mark
"$BENCH_PY" "$BENCH_ROOT/bench/cdc_overhead.py" "$@"
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
bench_cpu_report
