#!/usr/bin/env bash
# DIFFERENTIAL refresh after one changed row, against REFRESH MATERIALIZED VIEW and a FULL refresh of
# the same query, over a 1,000,000-row source; plus DIFFERENTIAL refresh with no change.
# Prints figures (and EXPLAIN ANALYZE of the delta queries); asserts nothing. Runs on the release
# (optimised) PostgreSQL build, in a private temporary cluster stopped and deleted on exit.
#
#   bash bench/dvm_refresh.sh [--reps N] [--nochange-reps N] [--warmup N] [--seed N] [--no-explain]
#                             [--analyze-buffers] [--profile N  (with PGT_BENCH_PROFILE=1)]
#
# Environment (see bench/lib.sh): PGT_BENCH_REV, PGT_BENCH_WAIT_IDLE, PGT_BENCH_PROFILE, PGT_BENCH_KEEP.
#
# Defaults: 9 repetitions per change kind, 20 no-change refreshes per view (1-2 minutes in all).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup dvm
bench_describe
bench_cpu_mark
"$BENCH_PY" "$BENCH_ROOT/bench/dvm_refresh.py" "$@"
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
bench_cpu_report
