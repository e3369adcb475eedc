# Shared helpers for the benchmarks (sourced, not run).
#
#   bench_setup NAME   builds PostgreSQL (release) and pg_trickle if needed, starts a private,
#                      temporary, benchmark-tuned cluster, and arranges (trap) for it to be stopped
#                      and deleted on exit. Exports PGBIN, BENCH_DIR (data directory), BENCH_PORT,
#                      BENCH_HOST (the Unix socket directory) and BENCH_DB.
#
# Environment:
#   PGT_BENCH_KEEP=1   keep the data directory after the run (the server is still stopped)
#   PGT_BENCH_NOBUILD=1  skip build-postgres.sh / build_extension (use what is installed)
#   PGT_BENCH_PROFILE=1  also preload pg_stat_statements (track = all, track_planning) and create it in
#                      the benchmark database, for the drivers' --profile sections. Not for recorded
#                      figures: it adds its own overhead to every statement.
#   PGT_BENCH_WAIT_IDLE=N  before starting, wait up to N seconds for the 1-minute load average to drop
#                      below PGT_BENCH_IDLE_LOAD (default 1.0) — for shared machines
#   PGT_BENCH_REV=REV  build and benchmark the committed revision REV (e.g. HEAD) instead of the working
#                      tree: it is exported with git archive to /tmp/pgt-bench-src-<sha> (kept as a cache)
#                      and built there with build_extension. Without it, the working tree is built.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$BENCH_ROOT/scripts/common.sh"
. "$BENCH_ROOT/scripts/cluster.sh"

BENCH_PY=/usr/bin/python3

# The settings the benchmarks run under, appended after cluster_init's own (later lines win).
bench_settings() {
	cat <<'CONF'
# --- pg_trickle benchmarks ---
shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 512MB
effective_cache_size = 16GB
fsync = on                      # cluster_init sets off; benchmarks run with it on
synchronous_commit = off        # commits do not wait for the WAL flush
wal_buffers = 64MB
max_wal_size = 16GB             # no checkpoint during a measurement; explicit CHECKPOINTs between them
min_wal_size = 2GB
checkpoint_timeout = 30min
checkpoint_completion_target = 0.9
pg_trickle.adaptive_refresh = on  # the product's default (cluster_init turns it off for the tests);
                                # a benchmark that measures the delta engine turns it off itself
pg_trickle.enabled = off        # no background scheduler: the benchmarks refresh by hand (builds
                                # without this setting ignore it with a warning)
CONF
}

bench_cleanup() {
	local rc=$?
	if [ -n "${BENCH_DIR:-}" ]; then
		cluster_stop "$BENCH_DIR"
		if [ "${PGT_BENCH_KEEP:-0}" = 1 ]; then
			log "kept $BENCH_PARENT"
		else
			rm -rf "$BENCH_PARENT"
		fi
	fi
	exit $rc
}

bench_wait_idle() {
	local limit=${PGT_BENCH_WAIT_IDLE:-0} max=${PGT_BENCH_IDLE_LOAD:-1.0} waited=0 load
	[ "$limit" -gt 0 ] || return 0
	while :; do
		load=$(cut -d' ' -f1 /proc/loadavg)
		awk -v l="$load" -v m="$max" 'BEGIN { exit !(l < m) }' && { log "load average $load after ${waited}s"; return 0; }
		[ "$waited" -ge "$limit" ] && { log "load average still $load after ${waited}s; running anyway"; return 0; }
		sleep 10
		waited=$((waited + 10))
	done
}

bench_setup() {
	local name=$1
	PGBIN="$(pgt_pg_prefix release)/bin"
	export PGBIN
	BENCH_BUILT_FROM="working tree"
	if [ "${PGT_BENCH_NOBUILD:-0}" != 1 ]; then
		bash "$BENCH_ROOT/scripts/build-postgres.sh" release
		if [ -n "${PGT_BENCH_REV:-}" ]; then
			local sha src
			sha=$(git -C "$BENCH_ROOT" rev-parse --verify "$PGT_BENCH_REV^{commit}") || die "unknown revision $PGT_BENCH_REV"
			src="${TMPDIR:-/tmp}/pgt-bench-src-$sha"
			if [ ! -f "$src/.exported" ]; then
				rm -rf "$src" && mkdir -p "$src"
				git -C "$BENCH_ROOT" archive "$sha" | tar xf - -C "$src"
				touch "$src/.exported"
			fi
			(. "$src/scripts/common.sh" && build_extension release)
			BENCH_BUILT_FROM="commit $(git -C "$BENCH_ROOT" rev-parse --short "$sha")"
		else
			build_extension release
		fi
	else
		BENCH_BUILT_FROM="(not rebuilt: whatever is installed)"
	fi
	export BENCH_BUILT_FROM
	bench_wait_idle
	ensure_run_user
	BENCH_PARENT=$(mktemp -d "${TMPDIR:-/tmp}/pgt-bench-$name.XXXXXX")
	chmod 755 "$BENCH_PARENT" # the server user must reach the data directory
	BENCH_DIR="$BENCH_PARENT/data"
	BENCH_PORT=$(free_port)
	BENCH_HOST=$BENCH_DIR
	BENCH_DB=bench
	export BENCH_DIR BENCH_PORT BENCH_HOST BENCH_DB BENCH_PARENT
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	cluster_init "$BENCH_DIR" "$BENCH_PORT"
	bench_settings | as_run_user tee -a "$BENCH_DIR/postgresql.conf" >/dev/null
	if [ "${PGT_BENCH_PROFILE:-0}" = 1 ]; then
		printf '%s\n' "shared_preload_libraries = 'pg_trickle,pg_stat_statements'" \
			"pg_stat_statements.track = all" "pg_stat_statements.track_planning = on" |
			as_run_user tee -a "$BENCH_DIR/postgresql.conf" >/dev/null
	fi
	cluster_start "$BENCH_DIR"
	"$PGBIN/createdb" -h "$BENCH_HOST" -p "$BENCH_PORT" -U postgres "$BENCH_DB"
	if [ "${PGT_BENCH_PROFILE:-0}" = 1 ]; then
		"$PGBIN/psql" -X -q -h "$BENCH_HOST" -p "$BENCH_PORT" -U postgres -d "$BENCH_DB" \
			-c 'CREATE EXTENSION pg_stat_statements' >/dev/null
	fi
	"$PGBIN/psql" -X -q -h "$BENCH_HOST" -p "$BENCH_PORT" -U postgres -d "$BENCH_DB" \
		-c 'CREATE EXTENSION pg_trickle' >/dev/null
	log "benchmark cluster: $BENCH_DIR, port $BENCH_PORT"
}

# Prints what the run ran on: machine, build, settings.
bench_describe() {
	local psql=("$PGBIN/psql" -X -At -h "$BENCH_HOST" -p "$BENCH_PORT" -U postgres -d "$BENCH_DB")
	echo "== environment"
	echo "cpu:        $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "memory:     $(awk '/^MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo)"
	echo "kernel:     $(uname -r)"
	echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (before the run)"
	echo "postgres:   $("${psql[@]}" -c 'SELECT version()')"
	echo "configure:  $("$PGBIN/pg_config" --configure)"
	local built=$BENCH_BUILT_FROM
	if [ "$built" = "working tree" ]; then
		built="working tree at $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
		[ -n "$(git -C "$BENCH_ROOT" status --porcelain -- src sql 2>/dev/null)" ] && built+=" + uncommitted changes in src/ or sql/"
	fi
	echo "pg_trickle: $("${psql[@]}" -c 'SELECT pgtrickle.version()'), built from $built"
	echo "settings:   $("${psql[@]}" -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers','work_mem','maintenance_work_mem','fsync','synchronous_commit','max_wal_size','checkpoint_timeout','wal_level','autovacuum','max_parallel_workers_per_gather','jit')")"
}

# CPU accounting for shared machines: how much of the machine's CPU time, over an interval, went to
# processes other than this benchmark (its server, its driver and their children).
#   bench_cpu_mark  records a starting point;  bench_cpu_report  prints the share since then.
_bench_cpu_sample() {
	# prints: wall_ticks machine_busy_ticks our_ticks
	local pm busy ours=0 pid f
	pm=$(head -n1 "$BENCH_DIR/postmaster.pid" 2>/dev/null || echo 0)
	busy=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
	if [ "$pm" != 0 ] && [ -r "/proc/$pm/stat" ]; then
		# postmaster: own time plus the time of every child it has reaped (exited backends, workers)
		ours=$(sed 's/^.*) //' "/proc/$pm/stat" | awk '{print $12 + $13 + $14 + $15}')
		for pid in $(ps -o pid= --ppid "$pm"); do
			f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')
			ours=$((ours + ${f:-0}))
		done
	fi
	# this shell's reaped children: the driver (and, through it, pgbench)
	local t
	t=$(times | tail -n1 | awk '{ split($1, u, /m|s/); split($2, s, /m|s/); printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 100 }')
	ours=$((ours + t))
	echo "$(awk '{printf "%d", $1 * 100}' /proc/uptime) $busy $ours"
}

bench_cpu_mark() {
	BENCH_CPU_START=$(_bench_cpu_sample)
}

bench_cpu_report() {
	local now
	now=$(_bench_cpu_sample)
	echo "$BENCH_CPU_START $now $(nproc)" | awk '{
		wall = $4 - $1; busy = $5 - $2; ours = $6 - $3; cap = wall * $7;
		if (cap <= 0) exit;
		other = busy - ours; if (other < 0) other = 0;
		printf "cpu share:  this benchmark %.0f %%, other processes %.0f %% of the machine (%d CPUs, %.0f s)\n",
			100 * ours / cap, 100 * other / cap, $7, wall / 100 }'
}
