"""End-to-end test fixtures: a real PostgreSQL 18 server with pg_trickle preloaded.

Environment:
  PGBIN            bin directory of the (debug) PostgreSQL build; default: the build scripts' prefix
  PGT_RUN_USER     OS user that owns data directories and runs postgres when the tests run as root
                   (default: pgtrickle, as in scripts/common.sh)
  PGT_E2E_TMPDIR   parent directory for the test clusters (default: the system temp directory)
  PGT_E2E_LOG_DIR  if set, server logs are copied there at the end of the session
  PGT_E2E_KEEP     if set to 1, cluster directories are left behind for inspection

The session cluster is shared by all tests; every test gets its own fresh database with
CREATE EXTENSION pg_trickle (and DATABASE_SETTINGS). The background scheduler is off
(pg_trickle.enabled = off): tests refresh explicitly. At the end of the session every server log is
scanned for crashes (backends terminated by a signal) and assertion failures (TRAP:), which fail the
session.
"""
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg
import pytest

from pgt_helpers import drop_database

# Messages in a server log that always mean a bug: a crashed backend, a failed Assert() (the tests
# run against an assert-enabled build), a PANIC, or resource-leak warnings of assert-enabled builds.
LOG_FAILURE_PATTERNS = [
    re.compile(r"TRAP: "),
    re.compile(r"terminated by signal"),
    re.compile(r"\bPANIC: "),
    re.compile(r"WARNING: .*\b(reference leak|leaked|resource was not closed|"
               r"transaction left non-empty SPI stack|snapshot .* still active)"),
]

DEFAULT_STATEMENT_TIMEOUT_MS = 120_000


# ------------------------------------------------------------------------------------------------
# Where PostgreSQL is and who runs it
# ------------------------------------------------------------------------------------------------

def _default_cache_dir():
    if os.environ.get("PGT_CACHE_DIR"):
        return pathlib.Path(os.environ["PGT_CACHE_DIR"])
    if os.geteuid() == 0:
        return pathlib.Path("/opt/pg_trickle")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "pg_trickle"


def find_pgbin():
    if os.environ.get("PGBIN"):
        return pathlib.Path(os.environ["PGBIN"])
    if os.environ.get("PGT_PG_PREFIX"):
        return pathlib.Path(os.environ["PGT_PG_PREFIX"]) / "bin"
    return _default_cache_dir() / "pg18-debug" / "bin"


def is_root():
    return os.geteuid() == 0


def run_user():
    if is_root():
        return os.environ.get("PGT_RUN_USER") or "pgtrickle"
    return pwd.getpwuid(os.geteuid()).pw_name


def as_run_user(cmd):
    """The command line that runs `cmd` as the server user (unchanged when not root)."""
    if is_root():
        return ["runuser", "-u", run_user(), "--"] + list(cmd)
    return list(cmd)


def chown_to_run_user(path):
    if is_root():
        pw = pwd.getpwnam(run_user())
        os.chown(path, pw.pw_uid, pw.pw_gid)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


# ------------------------------------------------------------------------------------------------
# A cluster
# ------------------------------------------------------------------------------------------------

class PgCluster:
    """One initdb'd data directory and its server, run by the server user."""

    def __init__(self, pgbin, basedir, name):
        self.pgbin = pathlib.Path(pgbin)
        self.basedir = pathlib.Path(basedir)
        self.name = name
        self.datadir = self.basedir / name
        self.logfile = self.basedir / f"{name}.log"
        self.port = None
        # Servers of tests that may crash them: the test itself looks at the log.
        self.log_checked_by_test = False

    def _run(self, cmd, check=True, timeout=120):
        res = subprocess.run(as_run_user(cmd), cwd=self.basedir, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{res.stdout}\n"
                               f"--- server log tail ---\n{self.log_tail()}")
        return res

    def init(self, extra_conf=""):
        self.port = free_port()
        self._run([self.pgbin / "initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(self.datadir / "postgresql.conf", "a") as f:
            # Same settings as scripts/cluster.sh.
            f.write(f"""
# --- pg_trickle e2e ---
port = {self.port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.basedir}'
shared_preload_libraries = 'pg_trickle'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_worker_processes = 32
max_connections = 50
fsync = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%a '
# Tests drive refreshes themselves: the background scheduler would race with their assertions
# (a test of the scheduler makes a cluster with extra_conf="pg_trickle.enabled = on").
pg_trickle.enabled = off
# The tests check the delta engine: whether an AUTO stream table recomputes instead must not depend
# on the machine's speed (test_adaptive.py turns pg_trickle.adaptive_refresh on in its sessions).
pg_trickle.adaptive_refresh = off
{extra_conf}
""")
        return self

    def start(self):
        self._run([self.pgbin / "pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start"])
        return self

    def wait_ready(self, timeout=20):
        """Waits until the server accepts connections (e.g. after crash recovery); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = subprocess.run([self.pgbin / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if res.returncode == 0:
                return True
            if res.returncode == 2:  # no response: not running (any more)
                return False
            time.sleep(0.1)
        return False

    def stop(self):
        if not (self.datadir / "postmaster.pid").exists():
            return
        # PostgreSQL 18 can hang on a fast shutdown requested while it restarts after a backend crash;
        # let the restart finish first, and fall back to an immediate shutdown.
        self.wait_ready()
        res = self._run([self.pgbin / "pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "-t", "30", "stop"],
                        check=False)
        if res.returncode != 0:
            self._run([self.pgbin / "pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "-t", "60", "stop"],
                      check=False)

    def postmaster_pid(self):
        with open(self.datadir / "postmaster.pid") as f:
            return int(f.readline().strip())

    def kill9(self, timeout=30):
        """kill -9 the postmaster (a crash), then wait until every server process is gone."""
        pid = self.postmaster_pid()
        children = _children_of(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Orphaned backends notice the postmaster's death by themselves and exit.
            if not _pid_alive(pid) and not any(_pid_alive(c) for c in children):
                break
            time.sleep(0.05)
        else:
            for c in children:
                if _pid_alive(c):
                    os.kill(c, signal.SIGKILL)
            time.sleep(0.5)
        # The dead postmaster is not our child: some init reaps it, maybe late. Until then its zombie
        # makes the PID in the lock files (data directory and socket) look alive to the next start.
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            # Nobody reaps it; every server process is gone, so the lock files are stale: remove
            # them, as an operator would.
            for lock in (self.datadir / "postmaster.pid", self.basedir / f".s.PGSQL.{self.port}.lock"):
                try:
                    lock.unlink()
                except FileNotFoundError:
                    pass

    def conninfo(self, dbname="postgres"):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def connect(self, dbname="postgres", autocommit=True, statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS):
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit, connect_timeout=30,
                               options=f"-c statement_timeout={statement_timeout_ms}")

    def log_text(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_problems(self):
        problems = []
        for line in self.log_text().splitlines():
            if any(p.search(line) for p in LOG_FAILURE_PATTERNS):
                problems.append(line)
        return problems

    def save_log(self):
        dest = os.environ.get("PGT_E2E_LOG_DIR")
        if dest and self.logfile.exists():
            os.makedirs(dest, exist_ok=True)
            shutil.copyfile(self.logfile, os.path.join(dest, f"{self.name}.log"))


class ClusterFactory:
    """Makes clusters in one temporary directory owned by the server user; removes them at the end."""

    def __init__(self):
        self.pgbin = find_pgbin()
        if not (self.pgbin / "postgres").exists():
            raise RuntimeError(f"no PostgreSQL in {self.pgbin} (set PGBIN, or run scripts/build-postgres.sh debug)")
        parent = os.environ.get("PGT_E2E_TMPDIR") or None
        self.basedir = pathlib.Path(tempfile.mkdtemp(prefix="pgt-e2e-", dir=parent))
        os.chmod(self.basedir, 0o755)
        chown_to_run_user(self.basedir)
        self.clusters = []

    def new(self, name, extra_conf=""):
        c = PgCluster(self.pgbin, self.basedir, name)
        self.clusters.append(c)
        c.init(extra_conf)
        c.start()
        return c

    def cleanup(self):
        for c in self.clusters:
            c.stop()
            c.save_log()
        if os.environ.get("PGT_E2E_KEEP") != "1":
            shutil.rmtree(self.basedir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cluster_factory():
    factory = ClusterFactory()
    try:
        yield factory
    finally:
        # Read the logs before the directory goes away.
        problems = {c.name: c.log_problems() for c in factory.clusters if not c.log_checked_by_test}
        factory.cleanup()
        bad = {name: lines for name, lines in problems.items() if lines}
        if bad:
            report = "\n".join(f"[{name}] {line}" for name, lines in bad.items() for line in lines[:50])
            pytest.fail("server log shows crashes, assertion failures or leaks:\n" + report, pytrace=False)


@pytest.fixture(scope="session")
def cluster(cluster_factory):
    """The shared server for the session."""
    return cluster_factory.new("main")


_db_counter = 0


def _fresh_dbname(request):
    global _db_counter
    _db_counter += 1
    base = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    return f"t{_db_counter}_{base}"


class Database:
    """A fresh database with the extension; `conn` is an autocommit connection to it."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.conns = []
        self.conn = self.connect()
        self.conn.execute("CREATE EXTENSION pg_trickle")

    def connect(self, **kw):
        c = self.cluster.connect(self.name, **kw)
        self.conns.append(c)
        return c

    def close(self):
        for c in self.conns:
            try:
                c.close()
            except Exception:
                pass


# Settings of every test database. A DIFFERENTIAL refresh falls back to FULL when the changes exceed a
# fraction of a source's pg_class.reltuples; test tables are small and never analyzed, so without this
# the differential path would hardly ever run. (A test of the fallback sets it back.)
DATABASE_SETTINGS = {"pg_trickle.differential_max_change_ratio": "0"}


@pytest.fixture
def db(cluster, request):
    name = _fresh_dbname(request)
    with cluster.connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        for guc, value in DATABASE_SETTINGS.items():
            admin.execute(f'ALTER DATABASE "{name}" SET {guc} = {value}')
    d = Database(cluster, name)
    try:
        yield d
    finally:
        d.close()
        try:
            with cluster.connect() as admin:
                drop_database(admin, name)
        except psycopg.Error:
            pass  # the server may be down because of a failure the test already reports


_isolated_counter = 0


@pytest.fixture
def isolated_db(cluster_factory, request):
    """Like `db`, but in a server of its own, for a test that may crash the server (a known bug under
    xfail). The session's log check skips this server: the test must assert
    `not isolated_db.cluster.log_problems()` itself."""
    global _isolated_counter
    _isolated_counter += 1
    c = cluster_factory.new(f"isolated{_isolated_counter}")
    c.log_checked_by_test = True
    name = _fresh_dbname(request)
    with c.connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        for guc, value in DATABASE_SETTINGS.items():
            admin.execute(f'ALTER DATABASE "{name}" SET {guc} = {value}')
    d = Database(c, name)
    try:
        yield d
    finally:
        d.close()
        c.stop()


@pytest.fixture
def conn(db):
    """Autocommit connection to a fresh database with pg_trickle installed."""
    return db.conn
