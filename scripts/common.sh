# Shared helpers for the project's scripts (sourced, not run).
# Decides where PostgreSQL 18 is built, which OS user runs servers, and how to run commands as it.

PGT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGT_PG_VERSION_MAJOR=18
PGT_RUN_USER_DEFAULT=pgtrickle

log() { printf '[pg_trickle] %s\n' "$*" >&2; }
die() { printf '[pg_trickle] error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Where builds are cached. As root, under /opt (readable by the unprivileged server user);
# as a normal user, under the user's cache directory. Override with PGT_CACHE_DIR.
pgt_cache_dir() {
	if [ -n "${PGT_CACHE_DIR:-}" ]; then
		echo "$PGT_CACHE_DIR"
	elif is_root; then
		echo /opt/pg_trickle
	else
		echo "${XDG_CACHE_HOME:-$HOME/.cache}/pg_trickle"
	fi
}

# flavor: "debug" (assert-enabled, used by tests) or "release" (optimised, used by benchmarks)
pgt_pg_prefix() {
	local flavor=${1:-debug}
	if [ "$flavor" = debug ] && [ -n "${PGT_PG_PREFIX:-}" ]; then
		echo "$PGT_PG_PREFIX"
	else
		echo "$(pgt_cache_dir)/pg18-$flavor"
	fi
}

# The OS user that owns data directories and runs postgres. initdb refuses root.
pgt_run_user() {
	if is_root; then echo "${PGT_RUN_USER:-$PGT_RUN_USER_DEFAULT}"; else id -un; fi
}

ensure_run_user() {
	is_root || return 0
	local u
	u=$(pgt_run_user)
	if ! id "$u" >/dev/null 2>&1; then
		log "creating unprivileged OS user '$u' to run PostgreSQL"
		useradd --system --create-home --home-dir "/var/lib/$u" --shell /bin/bash "$u"
	fi
}

# Run a command as the server user (a no-op wrapper when not root).
as_run_user() {
	if is_root; then
		runuser -u "$(pgt_run_user)" -- "$@"
	else
		"$@"
	fi
}

# Debian packages the build and the tests need.
PGT_DEB_PACKAGES="build-essential bison flex libreadline-dev zlib1g-dev libicu-dev libssl-dev pkg-config \
libipc-run-perl cmake libgtest-dev python3-psycopg python3-pytest xz-utils bzip2 dpkg-dev"

ensure_packages() {
	local missing=() p
	for p in $PGT_DEB_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if is_root; then
		log "installing Debian packages: ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		log "installing Debian packages with sudo: ${missing[*]}"
		sudo apt-get update -qq
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		die "missing Debian packages: ${missing[*]} (install them: sudo apt-get install ${missing[*]})"
	fi
}

# A free TCP port on loopback.
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Builds and installs the extension against one PostgreSQL flavor, in a private copy of the source
# tree (build/ext-FLAVOR), so debug and release objects never mix in the working tree.
build_extension() {
	local flavor=${1:-debug}
	local prefix bdir
	prefix=$(pgt_pg_prefix "$flavor")
	[ -x "$prefix/bin/pg_config" ] || die "PostgreSQL ($flavor) is not built: run scripts/build-postgres.sh $flavor"
	bdir="$PGT_ROOT/build/ext-$flavor"
	mkdir -p "$bdir"
	# Copy sources (not build products) into the build directory.
	(cd "$PGT_ROOT" && tar cf - --exclude=./build --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.d' \
		--exclude=./test/regress/results . ) | (cd "$bdir" && tar xf -)
	log "building pg_trickle against PostgreSQL ($flavor)"
	make -C "$bdir" -s -j"$(nproc 2>/dev/null || echo 2)" PG_CONFIG="$prefix/bin/pg_config" PGT_WERROR=1 >/dev/null ||
		die "extension build failed"
	make -C "$bdir" -s PG_CONFIG="$prefix/bin/pg_config" install >/dev/null || die "extension install failed"
}
