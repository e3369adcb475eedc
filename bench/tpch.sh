#!/usr/bin/env bash
# TPC-H: per query, median refresh time after a ~1 % change cycle of a stream table created with
# refresh_mode AUTO (DIFFERENTIAL where the engine can maintain the query) against a FULL refresh of the
# same query, in one run; prints a table with the speedup and the mode actually used. Asserts nothing.
# Runs on the release (optimised) PostgreSQL build, in a private temporary cluster stopped and deleted
# on exit. Data, queries and change cycles: test/tpch (see test/tpch/README.md).
#
#   bash bench/tpch.sh [--sf 0.1] [--reps N] [--queries q01,q05] [--no-verify]
#                      [--fraction F] [--warmup N] [--warmup-fraction F] [--lagging-consumer] ...
#   (bench/tpch.py --help lists every option)
#
# Environment (see bench/lib.sh): PGT_CACHE_DIR, PGT_BENCH_REV, PGT_BENCH_WAIT_IDLE, PGT_BENCH_KEEP,
# PGT_BENCH_NOBUILD.
#
# Defaults: SF 0.1, 5 timed cycles (a few minutes in all).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup tpch
bench_describe
bench_cpu_mark
"$BENCH_PY" "$BENCH_ROOT/bench/tpch.py" "$@"
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
bench_cpu_report
