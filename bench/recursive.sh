#!/usr/bin/env bash
# WITH RECURSIVE: a DIFFERENTIAL refresh after a small change against a FULL refresh of the same query in
# the same state, for a tree expansion (UNION ALL; 250,000 nodes: insert / rename / delete a leaf, rename /
# move an inner node high in the tree) and a graph reachability (UNION; transitive closure from a set of
# roots: insert an edge, delete an edge with and without an alternative path). Checks after every
# DIFFERENTIAL refresh that the stream table equals its query and warns if not. Prints figures; asserts
# nothing. Runs on the release (optimised) PostgreSQL build, in a private temporary cluster stopped and
# deleted on exit.
#
#   bash bench/recursive.sh [--reps N] [--warmup N] [--seed N] [--cases tree,graph]
#                           [--tree-nodes N] [--inner-depth D]
#                           [--graph-nodes N] [--extra-edges F] [--root-depth D]
#
# Environment (see bench/lib.sh): PGT_BENCH_REV, PGT_BENCH_WAIT_IDLE, PGT_BENCH_KEEP.
#
# Defaults: 7 repetitions per change kind after 6 warm-up rounds per case (a few minutes on 2 cores).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_setup recursive
bench_describe
bench_cpu_mark
"$BENCH_PY" "$BENCH_ROOT/bench/recursive.py" "$@"
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
bench_cpu_report
