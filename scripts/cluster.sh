# Cluster helpers (sourced). Needs scripts/common.sh sourced first and PGBIN set.
#   cluster_init DIR PORT    initdb + pg_trickle configuration
#   cluster_start DIR        start (waits), log in DIR/server.log
#   cluster_stop DIR         fast shutdown

cluster_init() {
	local dir=$1 port=$2
	mkdir -p "$dir"
	if is_root; then chown "$(pgt_run_user)" "$dir"; fi
	chmod 700 "$dir"
	as_run_user "$PGBIN/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
	cat >>"$dir/postgresql.conf" <<CONF
# --- pg_trickle ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_trickle'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_worker_processes = 32
fsync = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%a '
# Tests drive refreshes themselves; scheduler tests turn this on.
pg_trickle.enabled = off
# Tests check the delta engine: which path runs must not depend on the machine's speed.
pg_trickle.adaptive_refresh = off
CONF
}

cluster_start() {
	local dir=$1
	as_run_user "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ tail -n 30 "$dir/server.log" >&2; die "server in $dir did not start"; }
}

cluster_stop() {
	local dir=$1
	[ -f "$dir/postmaster.pid" ] || return 0
	as_run_user "$PGBIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}
