#!/usr/bin/env bash
# Sets up everything and runs the pg_trickle demo.
#
#   bash scripts/setup.sh            install Debian packages (as root), build PostgreSQL 18 (optimised,
#                                    cached) and pg_trickle, start a local demo server with pg_trickle
#                                    preloaded, create database `demo` and load examples/demo.sql
#   bash scripts/setup.sh status     is the demo server running?
#   bash scripts/setup.sh stop       stop the demo server (data is kept; run setup again to restart)
#   bash scripts/setup.sh destroy    stop the demo server and delete its data directory
#
# Every step is idempotent: running setup again rebuilds what changed, restarts the server only if the
# extension library or the port changed, and leaves the demo data (and your changes) alone.
#
# Environment:
#   PGT_DEMO_PORT   TCP port on 127.0.0.1 (default 5433)
#   PGT_DEMO_DIR    data directory (default: as root /var/lib/pgtrickle/demo, owned by the server user
#                   `pgtrickle`; otherwise ${XDG_DATA_HOME:-$HOME/.local/share}/pg_trickle/demo)
#   PGT_CACHE_DIR   where PostgreSQL is built (default: as root /opt/pg_trickle, otherwise
#                   ${XDG_CACHE_HOME:-$HOME/.cache}/pg_trickle)
set -euo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/cluster.sh"

PREFIX=$(pgt_pg_prefix release)
PGBIN=$PREFIX/bin
PORT=${PGT_DEMO_PORT:-5433}
DB=demo

if [ -n "${PGT_DEMO_DIR:-}" ]; then
	DEMO_DIR=$PGT_DEMO_DIR
elif is_root; then
	DEMO_DIR=/var/lib/pgtrickle/demo
else
	DEMO_DIR=${XDG_DATA_HOME:-$HOME/.local/share}/pg_trickle/demo
fi
case "$DEMO_DIR" in /*) ;; *) DEMO_DIR=$PWD/$DEMO_DIR ;; esac

# How to call this script again, as the user would type it.
if [ "$PWD" = "$PGT_ROOT" ]; then SELF="bash scripts/setup.sh"; else SELF="bash $PGT_ROOT/scripts/setup.sh"; fi
for var in PGT_CACHE_DIR PGT_RUN_USER PGT_DEMO_DIR PGT_DEMO_PORT; do
	if [ -n "${!var:-}" ]; then SELF="$var=${!var} $SELF"; fi
done

# The server runs as an unprivileged user; its files are written as that user.
write_as_run_user() { as_run_user tee "$1" >/dev/null; }

is_running() {
	[ -x "$PGBIN/pg_ctl" ] && [ -f "$DEMO_DIR/PG_VERSION" ] &&
		as_run_user "$PGBIN/pg_ctl" -D "$DEMO_DIR" status >/dev/null 2>&1
}

# Port the running server listens on (line 4 of postmaster.pid).
running_port() { sed -n 4p "$DEMO_DIR/postmaster.pid" 2>/dev/null || true; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

psql_demo() {
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"
}

library_checksum() { sha256sum "$("$PGBIN/pg_config" --pkglibdir)/pg_trickle.so" | cut -d' ' -f1; }
script_checksum() { cat "$("$PGBIN/pg_config" --sharedir)"/extension/pg_trickle--*.sql | sha256sum | cut -d' ' -f1; }

init_cluster() {
	if [ -f "$DEMO_DIR/PG_VERSION" ]; then
		return 0
	fi
	if [ -d "$DEMO_DIR" ] && [ -n "$(ls -A "$DEMO_DIR" 2>/dev/null)" ]; then
		die "$DEMO_DIR exists, is not empty and is not a PostgreSQL data directory; move it away or set PGT_DEMO_DIR"
	fi
	log "creating the demo cluster in $DEMO_DIR"
	mkdir -p "$DEMO_DIR"
	if is_root; then chown "$(pgt_run_user):" "$DEMO_DIR"; fi
	chmod 700 "$DEMO_DIR"
	as_run_user "$PGBIN/initdb" -D "$DEMO_DIR" -U postgres --auth-local=trust --auth-host=trust \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null
	# Our settings live in their own file, rewritten on every run; postgresql.conf stays yours.
	printf '\n# pg_trickle demo settings (written by scripts/setup.sh)\ninclude_if_exists = '\''pg_trickle_demo.conf'\''\n' |
		as_run_user tee -a "$DEMO_DIR/postgresql.conf" >/dev/null
}

demo_config() {
	cat <<CONF
# Written by scripts/setup.sh on every run. Put your own settings in postgresql.conf.
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO_DIR'
shared_preload_libraries = 'pg_trickle'
# Lets pg_trickle move its sources from trigger capture to WAL capture (pg_trickle.cdc_mode = auto).
wal_level = logical
CONF
}

write_config() {
	demo_config | write_as_run_user "$DEMO_DIR/pg_trickle_demo.conf"
}

config_current() { # the running server was started with the settings this run would write
	[ "$(cat "$DEMO_DIR/pg_trickle_demo.conf" 2>/dev/null)" = "$(demo_config)" ]
}

start_server() {
	local lib_sum running=0
	lib_sum=$(library_checksum)
	if is_running; then
		running=1
		if [ "$(running_port)" = "$PORT" ] && config_current &&
			[ "$(cat "$DEMO_DIR/pg_trickle_demo.so.sha256" 2>/dev/null)" = "$lib_sum" ]; then
			log "demo server already running on port $PORT"
			return 0
		fi
	fi
	# Check before touching the running server or its configuration.
	if { [ $running = 0 ] || [ "$(running_port)" != "$PORT" ]; } && port_in_use "$PORT"; then
		die "port $PORT on 127.0.0.1 is already in use by another program; choose another one, e.g. PGT_DEMO_PORT=5434 $SELF"
	fi
	write_config
	if [ $running = 1 ]; then
		log "restarting the demo server (new pg_trickle library, port or settings)"
		cluster_stop "$DEMO_DIR"
	fi
	log "starting the demo server on 127.0.0.1:$PORT (log: $DEMO_DIR/server.log)"
	cluster_start "$DEMO_DIR"
	echo "$lib_sum" | write_as_run_user "$DEMO_DIR/pg_trickle_demo.so.sha256"
}

load_demo() {
	if [ -z "$(psql_demo -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
		log "creating database $DB"
		psql_demo -d postgres -c "CREATE DATABASE $DB"
	fi
	local sql_sum had_extension
	sql_sum=$(script_checksum)
	had_extension=$(psql_demo -d "$DB" -tAc "SELECT 1 FROM pg_extension WHERE extname = 'pg_trickle'")
	log "loading examples/demo.sql into database $DB"
	# NOTICEs such as "already exists, skipping" are expected on every run after the first.
	PGOPTIONS="-c client_min_messages=warning" psql_demo -d "$DB" -o /dev/null -f "$PGT_ROOT/examples/demo.sql"
	if [ -z "$had_extension" ]; then
		echo "$sql_sum" | write_as_run_user "$DEMO_DIR/pg_trickle_demo.sql.sha256"
	elif [ "$(cat "$DEMO_DIR/pg_trickle_demo.sql.sha256" 2>/dev/null)" != "$sql_sum" ]; then
		log "warning: the pg_trickle install script changed since the extension was created in database $DB;"
		log "         its SQL objects may be out of date. For a fresh demo: $SELF destroy && $SELF"
	fi
}

print_instructions() {
	cat <<EOF

pg_trickle demo is running: PostgreSQL $("$PGBIN/pg_config" --version | sed 's/^PostgreSQL //'), database '$DB', port $PORT.

Connect:
  $PGBIN/psql -h 127.0.0.1 -p $PORT -U postgres $DB

Things to try (examples/demo.sql created the table orders and two stream tables over it,
active_orders and revenue_by_region, which pg_trickle's scheduler keeps up to date by itself):
  SELECT region, orders, revenue FROM revenue_by_region ORDER BY region;
  INSERT INTO orders (customer, region, amount) VALUES ('alice', 'north', 250.00);
  SELECT pg_sleep(10);                                -- revenue_by_region is refreshed every 10 s
  SELECT region, orders, revenue FROM revenue_by_region ORDER BY region;   -- north: +1, +250.00
  SELECT action, initiated_by, rows_inserted, rows_deleted
    FROM pgtrickle.get_refresh_history('revenue_by_region', 5);
  SELECT * FROM pgtrickle.pgt_status();
  SELECT property, value FROM pgtrickle.explain_st('revenue_by_region')
    WHERE property IN ('refresh_mode', 'strategy', 'operator_tree');
  SELECT * FROM pgtrickle.health_check();
  SELECT source_table, cdc_mode FROM pgtrickle.check_cdc_health();  -- WAL: captured by logical decoding

Both stream tables are DIFFERENTIAL: each refresh applies only the changes captured since the last
one (or records NO_DATA when there are none). active_orders is refreshed every 5 seconds,
revenue_by_region every 10. They carry hidden __pgt_* bookkeeping columns, which SELECT * shows:
name the columns you want. A walkthrough: $PGT_ROOT/docs/GETTING_STARTED.md

The server accepts connections from this machine only, without a password (trust): anyone
with a login here can connect as superuser. Its log: $DEMO_DIR/server.log

Stop:    $SELF stop        (keeps the data; run '$SELF' to start it again)
Remove:  $SELF destroy     (deletes $DEMO_DIR)
EOF
}

cmd_setup() {
	case "$PORT" in '' | *[!0-9]*) die "PGT_DEMO_PORT must be a port number, not '$PORT'";; esac
	[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "PGT_DEMO_PORT must be between 1 and 65535"
	if ! (ensure_packages); then
		is_root || log "Run that apt-get command as root (Debian 12), then run $SELF again; as root, setup installs them itself."
		exit 1
	fi
	bash "$PGT_ROOT/scripts/build-postgres.sh" release
	build_extension release
	ensure_run_user
	init_cluster
	start_server
	load_demo
	print_instructions
}

cmd_status() {
	if is_running; then
		echo "demo server running on 127.0.0.1:$(running_port), data directory $DEMO_DIR"
	elif [ -f "$DEMO_DIR/PG_VERSION" ]; then
		echo "demo server stopped, data directory $DEMO_DIR (start it: $SELF)"
	else
		echo "no demo cluster in $DEMO_DIR (create it: $SELF)"
	fi
}

cmd_stop() {
	if is_running; then
		cluster_stop "$DEMO_DIR"
		is_running && die "the demo server in $DEMO_DIR did not stop"
		log "demo server stopped (data kept in $DEMO_DIR)"
	else
		log "demo server is not running"
	fi
}

cmd_destroy() {
	if [ ! -e "$DEMO_DIR" ]; then
		log "nothing to remove: $DEMO_DIR does not exist"
		return 0
	fi
	# Only ever delete a PostgreSQL data directory (or an empty directory left by a failed init).
	if [ ! -f "$DEMO_DIR/PG_VERSION" ] && [ -n "$(ls -A "$DEMO_DIR" 2>/dev/null)" ]; then
		die "$DEMO_DIR is not a PostgreSQL data directory; not deleting it"
	fi
	if is_running; then
		cluster_stop "$DEMO_DIR"
		is_running && die "the demo server in $DEMO_DIR did not stop; not deleting it"
	fi
	rm -rf -- "$DEMO_DIR"
	log "demo removed ($DEMO_DIR deleted; the PostgreSQL build in $PREFIX is kept)"
}

case "${1:-setup}" in
	setup | start) cmd_setup ;;
	status) cmd_status ;;
	stop) cmd_stop ;;
	destroy) cmd_destroy ;;
	-h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
	*) die "unknown command '$1' (setup | status | stop | destroy)" ;;
esac
