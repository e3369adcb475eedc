#!/usr/bin/env bash
# Runs every test of pg_trickle:
#
#   bash scripts/test.sh
#
# Stages: Debian packages, PostgreSQL 18 (debug, assert-enabled; cached), the extension (built and
# installed into that PostgreSQL), unit tests (GoogleTest, via CMake/CTest), pg_regress (installcheck
# against a fresh temporary cluster) and end-to-end tests (pytest against real servers).
# Works as root (servers then run as the unprivileged user from scripts/common.sh) and as a normal
# user. Results (JUnit XML, regression diffs, server logs) go to build/test-results/.
#
# The last line is always "N passed, N failed" (unit test cases + pg_regress tests + pytest tests;
# a stage that could not run counts as one failure). Exit status 0 only if nothing failed.
#
# Environment: PGT_CACHE_DIR / PGT_PG_PREFIX (see scripts/common.sh), PGT_KEEP_TMP=1 keeps the
# temporary clusters, PYTEST_ADDOPTS adds pytest arguments (e.g. "-k concurrency"), CI=true prints
# complete failure details.
set -uo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/cluster.sh"
cd "$PGT_ROOT" || exit 1

PGBIN="$(pgt_pg_prefix debug)/bin"
export PGBIN
RESULTS="$PGT_ROOT/build/test-results"
PY=/usr/bin/python3
CI=${CI:-false}

TMP_BASE=""
REGRESS_DATA=""

# Like cluster_stop, but also when the server is restarting after a backend crash: PostgreSQL 18 can
# hang on a fast shutdown requested during that restart, so wait until it accepts connections again,
# and fall back to an immediate shutdown.
stop_cluster() {
	local dir=$1 port i
	[ -f "$dir/postmaster.pid" ] || return 0
	port=$(sed -n 4p "$dir/postmaster.pid" 2>/dev/null)
	if [ -n "$port" ]; then
		for i in $(seq 1 100); do
			"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2
			case $? in 0 | 2) break ;; esac # accepting connections, or not running at all
			sleep 0.2
		done
	fi
	as_run_user "$PGBIN/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null 2>&1 ||
		as_run_user "$PGBIN/pg_ctl" -D "$dir" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
}

cleanup() {
	local pidfile
	if [ -n "$REGRESS_DATA" ]; then stop_cluster "$REGRESS_DATA"; fi
	if [ -n "$TMP_BASE" ] && [ -d "$TMP_BASE" ]; then
		# Clusters the e2e tests could not stop themselves (pytest killed).
		for pidfile in "$TMP_BASE"/*/*/postmaster.pid "$TMP_BASE"/*/postmaster.pid; do
			[ -f "$pidfile" ] && stop_cluster "$(dirname "$pidfile")"
		done
		if [ "${PGT_KEEP_TMP:-0}" = 1 ]; then
			log "kept temporary clusters in $TMP_BASE"
		else
			rm -rf "$TMP_BASE"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------------------
# Bookkeeping
# ------------------------------------------------------------------------------------------------

STAGES=()
declare -A STATUS TIME NOTE
TOTAL_PASSED=0
TOTAL_FAILED=0
# Set by a stage function: its test counts and a one-line note.
S_PASSED=0 S_FAILED=0 S_NOTE=""

now_us() { echo "${EPOCHREALTIME/./}"; }
fmt_secs() { local us=$1; printf '%d.%ds' $((us / 1000000)) $(((us % 1000000) / 100000)); }
banner() { printf '\n==== %s ====\n' "$*"; }

# run_stage NAME FUNCTION: a stage function returns 0 (ok), 1 (tests failed), 2 (could not run) or
# 3 (skipped on purpose).
run_stage() {
	local name=$1 fn=$2 start rc
	STAGES+=("$name")
	S_PASSED=0 S_FAILED=0 S_NOTE=""
	banner "$name"
	start=$(now_us)
	"$fn"
	rc=$?
	TIME[$name]=$(($(now_us) - start))
	case $rc in
	0) STATUS[$name]=ok ;;
	1) STATUS[$name]=FAILED ;;
	3) STATUS[$name]=skipped ;;
	*) STATUS[$name]=ERROR
		S_FAILED=$((S_FAILED + 1))
		S_NOTE="could not run${S_NOTE:+: $S_NOTE}" ;;
	esac
	NOTE[$name]=$S_NOTE
	TOTAL_PASSED=$((TOTAL_PASSED + S_PASSED))
	TOTAL_FAILED=$((TOTAL_FAILED + S_FAILED))
	return $rc
}

not_run() {
	STAGES+=("$1")
	STATUS[$1]="not run"
	TIME[$1]=0
	NOTE[$1]="$2"
	TOTAL_FAILED=$((TOTAL_FAILED + 1))
}

# junit_counts FILE -> "passed failed skipped xfailed"
junit_counts() {
	$PY - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET
passed = failed = skipped = xfailed = 0
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    tags = {child.tag for child in tc}
    if "failure" in tags or "error" in tags:
        failed += 1
    elif "skipped" in tags:
        if (tc.find("skipped").get("type") or "") == "pytest.xfail":
            xfailed += 1
        else:
            skipped += 1
    else:
        passed += 1
print(passed, failed, skipped, xfailed)
PY
}

# regress_counts PG_REGRESS_OUTPUT -> "passed failed"
regress_counts() {
	$PY - "$1" <<'PY'
import re
import sys
passed = failed = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(not )?ok \d+\s+[-+] \S", line)
    if m:
        if m.group(1):
            failed += 1
        else:
            passed += 1
print(passed, failed)
PY
}

show_file() { # show_file FILE [LINES]: whole file in CI, else its head
	local f=$1 n=${2:-200}
	[ -f "$f" ] || return 0
	if [ "$CI" = true ] || [ "$(wc -l <"$f")" -le "$n" ]; then
		cat "$f"
	else
		head -n "$n" "$f"
		echo "... ($(wc -l <"$f") lines; all of it in $f)"
	fi
}

# A temporary directory the server user can use (owned by it when we are root).
make_tmp_base() {
	TMP_BASE=$(mktemp -d "${TMPDIR:-/tmp}/pgt-test.XXXXXX") || return 1
	chmod 755 "$TMP_BASE"
	if is_root; then chown "$(pgt_run_user)" "$TMP_BASE"; fi
}

server_log_problems() { # FILE: print lines that mean a crash or a failed assertion
	grep -E 'TRAP: |terminated by signal|PANIC: ' "$1" 2>/dev/null
}

# ------------------------------------------------------------------------------------------------
# Stages
# ------------------------------------------------------------------------------------------------

stage_packages() {
	(ensure_packages) || { S_NOTE="missing Debian packages"; return 2; }
	if is_root; then
		(ensure_run_user) || { S_NOTE="could not create the server user"; return 2; }
		S_NOTE="servers run as OS user '$(pgt_run_user)'"
	fi
	[ -x "$PY" ] || { S_NOTE="$PY not found"; return 2; }
	$PY -c 'import psycopg, pytest' 2>/dev/null || { S_NOTE="$PY lacks psycopg/pytest"; return 2; }
	return 0
}

stage_postgres() {
	local prefix
	prefix=$(pgt_pg_prefix debug)
	[ -f "$prefix/.pg_trickle-build-complete" ] && S_NOTE="cached in $prefix" || S_NOTE="built into $prefix"
	bash "$PGT_ROOT/scripts/build-postgres.sh" debug || { S_NOTE="scripts/build-postgres.sh debug failed"; return 2; }
	[ -x "$PGBIN/postgres" ] || { S_NOTE="no postgres in $PGBIN"; return 2; }
}

stage_extension() {
	(build_extension debug) || return 2
	S_NOTE="installed into $(pgt_pg_prefix debug)"
}

stage_unit() {
	local bdir="$PGT_ROOT/build/unit" log="$RESULTS/unit-build.log" xml="$RESULTS/unit.xml" rc
	# A build directory configured for another source tree (a copied checkout) cannot be reused.
	if [ -f "$bdir/CMakeCache.txt" ] &&
		! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$PGT_ROOT/test/unit" "$bdir/CMakeCache.txt"; then
		rm -rf "$bdir"
	fi
	if ! { cmake -S test/unit -B "$bdir" && cmake --build "$bdir" -j2; } >"$log" 2>&1; then
		tail -n 60 "$log"
		S_NOTE="unit tests did not build (log: $log)"
		return 2
	fi
	ctest --test-dir "$bdir" --output-junit "$xml" --output-on-failure -j2 --timeout 300 \
		>"$RESULTS/unit.log" 2>&1
	rc=$?
	if [ ! -s "$xml" ]; then
		tail -n 60 "$RESULTS/unit.log"
		S_NOTE="ctest wrote no results"
		return 2
	fi
	read -r S_PASSED S_FAILED _ _ <<<"$(junit_counts "$xml")"
	[ -n "$S_FAILED" ] || { S_PASSED=0; S_NOTE="could not read $xml"; return 2; }
	grep -E 'tests passed|tests failed out of' "$RESULTS/unit.log"
	if [ "$S_FAILED" -gt 0 ] || [ $rc -ne 0 ]; then
		show_file "$RESULTS/unit.log" 300
		[ "$S_FAILED" -gt 0 ] || S_FAILED=1
		S_NOTE="$S_PASSED passed, $S_FAILED failed"
		return 1
	fi
	[ "$S_PASSED" -gt 0 ] || { S_NOTE="no unit tests found"; return 2; }
	S_NOTE="$S_PASSED passed"
}

stage_regress() {
	local schedule=test/regress/schedule pgxs pg_regress port out rc problems data
	if [ ! -f "$schedule" ]; then
		S_NOTE="NOTE: $schedule does not exist yet; pg_regress stage skipped"
		echo "$S_NOTE"
		return 3
	fi
	pgxs=$("$PGBIN/pg_config" --pgxs) || return 2
	pg_regress="$(dirname "$pgxs")/../../src/test/regress/pg_regress"
	[ -x "$pg_regress" ] || { S_NOTE="pg_regress not found at $pg_regress"; return 2; }

	port=$(free_port)
	REGRESS_DATA="$TMP_BASE/regress-data"
	(cd "$TMP_BASE" && cluster_init "$REGRESS_DATA" "$port") || { S_NOTE="initdb failed"; return 2; }
	# The configuration `make installcheck` gives its temporary instance (--temp-config).
	if [ -f test/regress/regress.conf ]; then
		{ echo "# --- test/regress/regress.conf ---"; cat test/regress/regress.conf; } >>"$REGRESS_DATA/postgresql.conf"
	fi
	# (9>&-: servers must not inherit the run lock.)
	(cd "$TMP_BASE" && cluster_start "$REGRESS_DATA") 9>&- || { S_NOTE="temporary cluster did not start"; return 2; }
	out="$TMP_BASE/regress-out"
	mkdir -p "$out"
	timeout 900 "$pg_regress" --bindir="$PGBIN" --host=127.0.0.1 --port="$port" --user=postgres \
		--inputdir=test/regress --outputdir="$out" --schedule="$schedule" \
		--dbname=pgt_regress --load-extension=pg_trickle >"$out/pg_regress.log" 2>&1
	rc=$?
	stop_cluster "$REGRESS_DATA"
	cat "$out/pg_regress.log"
	mkdir -p "$RESULTS/regress"
	cp -r "$out"/. "$RESULTS/regress/" 2>/dev/null
	cp "$REGRESS_DATA/server.log" "$RESULTS/regress/server.log" 2>/dev/null
	data=$REGRESS_DATA
	REGRESS_DATA=""
	rm -rf "$data"

	read -r S_PASSED S_FAILED <<<"$(regress_counts "$out/pg_regress.log")"
	[ -n "$S_FAILED" ] || { S_PASSED=0 S_FAILED=0; S_NOTE="could not read pg_regress output"; return 2; }
	problems=$(server_log_problems "$RESULTS/regress/server.log")
	if [ -n "$problems" ]; then
		echo "server log shows crashes or assertion failures:"
		echo "$problems"
		S_FAILED=$((S_FAILED + 1))
	fi
	if [ -s "$out/regression.diffs" ]; then
		echo "---- regression.diffs ----"
		show_file "$out/regression.diffs" 300
	fi
	if [ $rc -ne 0 ] || [ "$S_FAILED" -gt 0 ]; then
		if [ $((S_PASSED + S_FAILED)) -eq 0 ]; then
			S_NOTE="pg_regress exited with $rc before running tests"
			return 2
		fi
		[ "$S_FAILED" -gt 0 ] || S_FAILED=1
		S_NOTE="$S_PASSED passed, $S_FAILED failed (diffs: build/test-results/regress/regression.diffs)"
		return 1
	fi
	[ "$S_PASSED" -gt 0 ] || { S_NOTE="schedule ran no tests"; return 2; }
	S_NOTE="$S_PASSED passed"
}

stage_e2e() {
	local xml="$RESULTS/e2e.xml" rc skipped xfailed
	PGT_RUN_USER=$(pgt_run_user) PGT_E2E_TMPDIR="$TMP_BASE" PGT_E2E_LOG_DIR="$RESULTS/e2e-logs" \
		PYTHONDONTWRITEBYTECODE=1 timeout 1200 \
		$PY -m pytest test/e2e -q --junitxml="$xml" 9>&-
	rc=$?
	if [ ! -s "$xml" ]; then
		S_NOTE="pytest exited with $rc and wrote no results"
		return 2
	fi
	read -r S_PASSED S_FAILED skipped xfailed <<<"$(junit_counts "$xml")"
	[ -n "$xfailed" ] || { S_PASSED=0 S_FAILED=0; S_NOTE="could not read $xml"; return 2; }
	S_NOTE="$S_PASSED passed, $S_FAILED failed"
	[ "$xfailed" -gt 0 ] && S_NOTE+=", $xfailed xfailed (known extension bugs)"
	[ "$skipped" -gt 0 ] && S_NOTE+=", $skipped skipped"
	if [ $rc -eq 0 ] && [ "$S_FAILED" -eq 0 ]; then
		[ "$S_PASSED" -gt 0 ] || { S_NOTE="no tests ran"; return 2; }
		return 0
	fi
	if [ $rc -eq 1 ] || [ "$S_FAILED" -gt 0 ]; then
		[ "$S_FAILED" -gt 0 ] || { S_FAILED=1; S_NOTE+=" (pytest reported a failure outside the tests)"; }
		[ -d "$RESULTS/e2e-logs" ] && echo "server logs: $RESULTS/e2e-logs"
		if [ "$CI" = true ]; then
			for f in "$RESULTS"/e2e-logs/*.log; do
				[ -f "$f" ] || continue
				echo "---- tail of $f ----"
				tail -n 80 "$f"
			done
		fi
		return 1
	fi
	S_NOTE="pytest exited with $rc ($S_NOTE)"
	return 2
}

# ------------------------------------------------------------------------------------------------

overall_start=$(now_us)
# One run at a time per checkout: runs share build/ext-debug, build/unit and build/test-results.
# (Servers are started with fd 9 closed, so a leaked server cannot hold the lock.)
mkdir -p "$PGT_ROOT/build"
exec 9>"$PGT_ROOT/build/.test.lock"
if ! flock -n 9; then
	log "another scripts/test.sh is running in this checkout; waiting for it"
	flock 9
fi
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
log "test results in $RESULTS"

if run_stage packages stage_packages; then
	if run_stage postgres stage_postgres; then
		ext_ok=false
		run_stage extension stage_extension && ext_ok=true
	else
		not_run extension "needs PostgreSQL"
		ext_ok=false
	fi
	run_stage unit stage_unit
	if $ext_ok && make_tmp_base; then
		run_stage regress stage_regress
		run_stage e2e stage_e2e
	else
		not_run regress "needs the extension"
		not_run e2e "needs the extension"
	fi
else
	for s in postgres extension unit regress e2e; do not_run "$s" "needs the packages"; done
fi

banner summary
for s in "${STAGES[@]}"; do
	printf '  %-10s %-8s %8s  %s\n' "$s" "${STATUS[$s]}" "$(fmt_secs "${TIME[$s]}")" "${NOTE[$s]}"
done
printf '  %-10s %-8s %8s\n' total "" "$(fmt_secs $(($(now_us) - overall_start)))"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ] && exit 0
exit 1
