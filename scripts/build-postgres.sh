#!/usr/bin/env bash
# Builds PostgreSQL 18 from Debian's postgresql-18 source package into a cached prefix.
#
#   scripts/build-postgres.sh [debug|release]
#
# debug   (default): --enable-cassert --enable-debug, -O2 -g.  Tests run against it: assertions catch
#                    memory-context misuse and bad tuple handling early.
# release          : optimised (-O2), no assertions.  Benchmarks run against it.
#
# Idempotent: if the prefix already holds a complete build (stamp file), nothing is done.
# The system's apt configuration is not touched: a private apt state directory holds the sid
# deb-src index.
set -euo pipefail
. "$(dirname "$0")/common.sh"

flavor=${1:-debug}
case "$flavor" in debug|release) ;; *) die "unknown flavor '$flavor' (debug|release)";; esac

prefix=$(pgt_pg_prefix "$flavor")
stamp="$prefix/.pg_trickle-build-complete"
if [ -f "$stamp" ]; then
	log "PostgreSQL ($flavor) already built in $prefix"
	exit 0
fi

ensure_packages

cache=$(pgt_cache_dir)
work="$cache/build-$flavor"
aptdir="$cache/apt"
srcdir="$cache/src"
mkdir -p "$aptdir/lists/partial" "$srcdir" "$work"

# deb-src line for sid, using the archive URI the system already has configured.
uri=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
	uri=$(awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$uri" ] || die "could not find the Debian archive URI in the apt configuration"

tarball=$(ls "$srcdir"/postgresql-18_*.orig.tar.bz2 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
	echo "deb-src $uri sid main" > "$aptdir/sources.list"
	aptopts=(-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Etc::SourceList=$aptdir/sources.list"
		-o "Dir::Etc::SourceParts=/dev/null" -o "Dir::Cache=$aptdir/cache" -o "APT::Sandbox::User=$(id -un)")
	mkdir -p "$aptdir/cache/archives/partial"
	log "fetching the postgresql-18 source package index (sid)"
	apt-get "${aptopts[@]}" update -qq
	log "downloading the postgresql-18 source package"
	(cd "$srcdir" && apt-get "${aptopts[@]}" source --download-only postgresql-18 >/dev/null)
	tarball=$(ls "$srcdir"/postgresql-18_*.orig.tar.bz2 | head -n1)
fi

log "unpacking $(basename "$tarball")"
rm -rf "$work/src"
mkdir -p "$work/src"
tar xjf "$tarball" -C "$work/src" --strip-components=1

cfg=(--prefix="$prefix" --with-icu --with-openssl --with-readline --enable-tap-tests --without-llvm)
if [ "$flavor" = debug ]; then
	cfg+=(--enable-cassert --enable-debug)
	cflags="-O2 -g -fno-omit-frame-pointer"
else
	cflags="-O2"
fi

jobs=$(nproc 2>/dev/null || echo 2)
log "configuring PostgreSQL ($flavor) into $prefix"
(cd "$work/src" && CFLAGS="$cflags" ./configure "${cfg[@]}" >"$work/configure.log" 2>&1) ||
	{ tail -n 30 "$work/configure.log"; die "configure failed (log: $work/configure.log)"; }
log "building PostgreSQL with $jobs jobs (a few minutes)"
(cd "$work/src" && make -s -j"$jobs" world-bin >"$work/build.log" 2>&1) ||
	{ tail -n 40 "$work/build.log"; die "build failed (log: $work/build.log)"; }
(cd "$work/src" && make -s install-world-bin >"$work/install.log" 2>&1) ||
	{ tail -n 40 "$work/install.log"; die "install failed (log: $work/install.log)"; }

# The server user must be able to read (and, for `make install` of the extension by the same
# account, the invoking user to write) the prefix.
chmod -R a+rX "$prefix"
rm -rf "$work/src"
touch "$stamp"
log "PostgreSQL $("$prefix/bin/pg_config" --version) ($flavor) installed in $prefix"
