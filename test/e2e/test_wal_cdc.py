"""WAL capture: the trigger -> TRANSITIONING -> WAL transition (driven here with
pgtrickle.advance_cdc_transitions(), what the scheduler runs every tick), decoding into the change
buffers at refresh, fallback to triggers (slot dropped, decoding error, lag, requested), slots never
left behind, and crashes during WAL capture and during a transition.

Every check compares the stream table with its query as multisets (EXCEPT ALL both ways)."""
import json
import random
import threading
import time

import psycopg
import pytest

from pgt_helpers import (assert_buffer_replays_to_source, assert_st_differs_from_query, assert_st_matches_query,
                         buffer_rows, capture_mode as mode_of, create_st, drop_st, leftovers, refresh)

Q = "SELECT id, v, note FROM src"
Q_AGG = "SELECT v % 5 AS k, count(*) AS n, sum(v) AS s FROM src GROUP BY 1"
Q_JOIN = "SELECT s.id, s.v, d.label FROM src s JOIN dim d ON d.k = s.v % 3"


def advance(conn):
    return conn.execute("SELECT * FROM pgtrickle.advance_cdc_transitions()").fetchall()


def until_mode(conn, wanted, source="src", attempts=40):
    for _ in range(attempts):
        if mode_of(conn, source) == wanted:
            return
        advance(conn)
        time.sleep(0.05)
    assert mode_of(conn, source) == wanted, f"{source} did not reach {wanted}"


def capture_triggers(conn, source="src"):
    return conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE 'pgt\\_capture\\_%%'",
                        (source,)).fetchone()[0]


def slots(conn):
    return [r[0] for r in conn.execute(
        "SELECT slot_name FROM pg_replication_slots WHERE database = current_database() ORDER BY 1").fetchall()]


class Alerts:
    def __init__(self, conn):
        self.conn = conn
        self.received = []
        conn.add_notify_handler(lambda n: self.received.append(json.loads(n.payload)))
        conn.execute("LISTEN pg_trickle_alert")

    def events(self, name=None):
        self.conn.execute("SELECT 1")  # delivers pending notifications
        return [e for e in self.received if name is None or e["event"] == name]


def setup_src(conn, rows=200):
    conn.execute("CREATE TABLE src (id int PRIMARY KEY, v int, note text)")
    conn.execute("INSERT INTO src SELECT g, g, 'n' || g FROM generate_series(1, %s) g", (rows,))


def test_transition_and_capture(db):
    c = db.conn
    setup_src(c)
    create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    create_st(c, "st_agg", Q_AGG, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    assert mode_of(c) == "TRIGGER"
    ev = advance(c)
    assert [(e[1], e[2]) for e in ev] == [("TRIGGER", "TRANSITIONING")], ev
    assert capture_triggers(c) == 4 and len(slots(c)) == 1
    c.execute("INSERT INTO src VALUES (1001, 1, 'during transition')")  # captured by the triggers
    ev = advance(c)
    assert [(e[1], e[2]) for e in ev] == [("TRANSITIONING", "WAL")], ev
    assert capture_triggers(c) == 0
    assert c.execute("SELECT relreplident FROM pg_class WHERE oid = 'src'::regclass").fetchone()[0] == "f"
    assert c.execute("SELECT count(*) FROM pgtrickle.check_cdc_health() WHERE cdc_mode = 'WAL' AND alert IS NULL"
                     ).fetchone()[0] == 1
    # Captured from WAL now: nothing in the buffer until a refresh decodes.
    before = sum(buffer_rows(c, "src").values())
    c.execute("INSERT INTO src VALUES (1002, 2, 'wal')")
    c.execute("UPDATE src SET v = v + 100, note = note || '!' WHERE id % 7 = 0")
    c.execute("DELETE FROM src WHERE id % 11 = 0")
    with c.transaction():
        c.execute("INSERT INTO src VALUES (1003, 3, 'sub')")
        try:
            with c.transaction():
                c.execute("INSERT INTO src VALUES (1004, 4, 'rolled back')")
                raise RuntimeError
        except RuntimeError:
            pass
    assert sum(buffer_rows(c, "src").values()) == before
    assert_st_differs_from_query(c, "st", Q)
    refresh(c, "st")
    assert_st_matches_query(c, "st", Q)
    assert c.execute("SELECT action FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s "
                     "USING (pgt_id) WHERE s.pgt_name = 'st' ORDER BY refresh_id DESC LIMIT 1").fetchone()[0] == \
        "DIFFERENTIAL"
    assert_buffer_replays_to_source(c, "st", "src")
    refresh(c, "st_agg")
    assert_st_matches_query(c, "st_agg", Q_AGG)
    # Decoding again finds nothing new: the buffer is not written twice.
    refresh(c, "st")
    assert_st_matches_query(c, "st", Q)
    # TRUNCATE is decoded as a marker: the next refresh recomputes.
    c.execute("TRUNCATE src")
    c.execute("INSERT INTO src VALUES (1, 1, 'after truncate')")
    refresh(c, "st")
    refresh(c, "st_agg")
    assert_st_matches_query(c, "st", Q)
    assert_st_matches_query(c, "st_agg", Q_AGG)
    assert sum(buffer_rows(c, "src").values()) == 0  # trimmed: both consumed
    # The slot goes with the last stream table; the replica identity comes back.
    drop_st(c, "st")
    assert len(slots(c)) == 1
    notices = []
    c.add_notice_handler(lambda d: notices.append(d.message_primary))
    drop_st(c, "st_agg")
    assert notices == []  # no "trigger ... does not exist, skipping" for the triggers WAL capture removed
    assert slots(c) == []
    assert c.execute("SELECT relreplident FROM pg_class WHERE oid = 'src'::regclass").fetchone()[0] == "d"
    assert leftovers(c) == {}


def test_refresh_after_own_write_is_refused(db):
    c = db.conn
    setup_src(c, 10)
    create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    until_mode(c, "WAL")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        with c.transaction():
            c.execute("INSERT INTO src VALUES (100, 1, 'x')")
            refresh(c, "st")
    refresh(c, "st")
    assert_st_matches_query(c, "st", Q)


def test_trigger_mode_and_auto(db):
    c = db.conn
    setup_src(c, 10)
    c.execute("SET pg_trickle.cdc_mode = 'trigger'")
    create_st(c, "st", Q, refresh_mode="DIFFERENTIAL")  # follows pg_trickle.cdc_mode = trigger
    advance(c)
    assert mode_of(c) == "TRIGGER" and slots(c) == []
    c.execute("SET pg_trickle.cdc_mode = 'auto'")
    until_mode(c, "WAL")
    # A second reader that wants triggers brings the source back without losing anything.
    c.execute("INSERT INTO src VALUES (500, 5, 'before return')")
    create_st(c, "st2", Q_AGG, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    alerts = Alerts(db.connect())
    until_mode(c, "TRIGGER")
    assert slots(c) == [] and capture_triggers(c) == 4
    assert [e["reinitialize"] for e in alerts.events("cdc_transition")] == [False]
    c.execute("INSERT INTO src VALUES (501, 5, 'after return')")
    refresh(c, "st")
    refresh(c, "st2")
    assert_st_matches_query(c, "st", Q)
    assert_st_matches_query(c, "st2", Q_AGG)
    assert c.execute("SELECT bool_and(NOT needs_reinit) FROM pgtrickle.pgt_stream_tables").fetchone()[0]


def test_create_wal_needs_logical_and_rejects_bad_mode(db):
    c = db.conn
    setup_src(c, 1)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        create_st(c, "st", Q, cdc_mode="logical")


# ------------------------------------------------------------------------------------------------
# The transition under concurrent writers
# ------------------------------------------------------------------------------------------------

from test_concurrency import random_op  # noqa: E402

CONC_STS = {
    "w_agg_diff": ("SELECT grp, count(*) AS n, sum(val) AS s, count(note) AS notes FROM cs GROUP BY grp", "DIFFERENTIAL"),
    "w_agg_full": ("SELECT grp, count(*) AS n, sum(val) AS s FROM cs GROUP BY grp", "FULL"),
    "w_cu": ("SELECT * FROM cu", "DIFFERENTIAL"),
    "w_join": ("SELECT a.id, a.val, b.note FROM cs a JOIN cu b ON b.id = a.id WHERE a.val > 2", "DIFFERENTIAL"),
}


class Writers:
    """Writers on cs and cu (single statements, multi-statement commits, rollbacks, rolled-back
    savepoints) that can be paused between transactions, so a check sees a quiescent state."""

    def __init__(self, db, n, seed):
        self.db = db
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.parked = [threading.Event() for _ in range(n)]
        self.errors = []
        self.counts = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i, seed + i)) for i in range(n)]

    def add(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def run(self, i, seed):
        rng = random.Random(seed)
        conn = self.db.connect()
        try:
            while not self.stop.is_set():
                if self.pause.is_set():
                    self.parked[i].set()
                    while self.pause.is_set() and not self.stop.is_set():
                        time.sleep(0.01)
                    self.parked[i].clear()
                    continue
                table = rng.choice(["cs", "cu"])
                pattern = rng.choice(["single", "commit", "rollback", "savepoint", "both"])
                try:
                    with conn.cursor() as cur:
                        if pattern == "single":
                            cur.execute(*random_op(rng, table))
                            self.add("commits")
                            continue
                        cur.execute("BEGIN")
                        for t in (("cs", "cu") if pattern == "both" else (table,) * rng.randint(1, 3)):
                            cur.execute(*random_op(rng, t))
                        if pattern == "savepoint":
                            cur.execute("SAVEPOINT s")
                            cur.execute(*random_op(rng, table))
                            cur.execute("ROLLBACK TO SAVEPOINT s")
                            cur.execute(*random_op(rng, table))
                            self.add("savepoint_rollbacks")
                        cur.execute("ROLLBACK" if pattern == "rollback" else "COMMIT")
                        self.add("rollbacks" if pattern == "rollback" else "commits")
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    conn.execute("ROLLBACK")
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.errors.append(e)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads), "a writer hung"

    def quiesce(self):
        self.pause.set()
        deadline = time.monotonic() + 60
        while not all(p.is_set() for p in self.parked):
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, "writers did not pause"
            time.sleep(0.01)

    def resume(self):
        self.pause.clear()


def refresh_all(conn):
    for name in CONC_STS:
        refresh(conn, name)


def check_all(conn, writers, label):
    writers.quiesce()
    try:
        refresh_all(conn)
        for name, (q, _) in CONC_STS.items():
            extra_missing = None
            try:
                assert_st_matches_query(conn, name, q)
            except BaseException as e:
                extra_missing = e
            assert extra_missing is None, f"{label}: {extra_missing}"
    finally:
        writers.resume()


def test_transition_under_concurrent_writers(db):
    c = db.conn
    for t in ("cs", "cu"):
        c.execute(f"CREATE TABLE {t} (id int, grp int, val int, note text)")
        c.execute(f"INSERT INTO {t} SELECT g % 300, g % 10, nullif(g % 7, 0), "
                  f"CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || (g % 3) END FROM generate_series(1, 600) g")
    for name, (q, mode) in CONC_STS.items():
        create_st(c, name, q, refresh_mode=mode, cdc_mode="wal")
    seed = int(time.time())
    with Writers(db, 4, seed) as w:
        time.sleep(0.5)
        check_all(c, w, "before the transition")
        # TRIGGER -> TRANSITIONING -> WAL while the writers write; refreshes in between.
        for step in range(40):
            advance(c)
            refresh_all(c)
            if mode_of(c, "cs") == "WAL" and mode_of(c, "cu") == "WAL":
                break
            if step == 0:
                check_all(c, w, "during the transition")
        assert (mode_of(c, "cs"), mode_of(c, "cu")) == ("WAL", "WAL")
        check_all(c, w, "right after the transition")
        for _ in range(3):
            time.sleep(0.4)
            refresh_all(c)
            advance(c)  # also decodes
        check_all(c, w, "after the transition")
        # Back to triggers (requested) while the writers write: nothing lost, nothing twice.
        c.execute("SELECT pgtrickle.alter_stream_table('w_cu', cdc_mode => 'trigger')")
        until_mode(c, "TRIGGER", "cu")
        refresh_all(c)
        check_all(c, w, "after returning cu to triggers")
        time.sleep(0.3)
    assert not w.errors, w.errors
    print(f"seed {seed}: {w.counts}")
    for key in ("commits", "rollbacks", "savepoint_rollbacks"):
        assert w.counts.get(key, 0) > 0, w.counts
    refresh_all(c)
    for name, (q, _) in CONC_STS.items():
        assert_st_matches_query(c, name, q)
    assert c.execute("SELECT count(*) FROM pgtrickle.pgt_stream_tables WHERE needs_reinit").fetchone()[0] == 0
    actions = dict(c.execute(
        "SELECT st.pgt_name, count(*) FILTER (WHERE h.action = 'DIFFERENTIAL') FROM pgtrickle.pgt_refresh_history h "
        "JOIN pgtrickle.pgt_stream_tables st USING (pgt_id) GROUP BY 1").fetchall())
    assert actions["w_agg_diff"] > 0 and actions["w_cu"] > 0, actions
    # No refresh fell back to a full recompute: the transitions were lossless.
    assert c.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE action = 'REINITIALIZE'"
                     ).fetchone()[0] == 0, c.execute(
        "SELECT source_name, last_fallback_reason FROM pgtrickle.pgt_change_tracking").fetchall()


# ------------------------------------------------------------------------------------------------
# Fallback to triggers
# ------------------------------------------------------------------------------------------------

def wal_source(db, n=100):
    c = db.conn
    setup_src(c, n)
    create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    create_st(c, "st_agg", Q_AGG, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    until_mode(c, "WAL")
    c.execute("INSERT INTO src VALUES (900, 9, 'decoded')")
    refresh(c, "st")  # st has consumed some decoded changes; st_agg not yet
    return c


def assert_fell_back(c, alerts, reason_part, reinitialize=True):
    assert mode_of(c) == "TRIGGER"
    assert capture_triggers(c) == 4
    assert slots(c) == []
    fallbacks = alerts.events("cdc_fallback")
    assert len(fallbacks) == 1, alerts.events()
    assert reason_part in fallbacks[0]["reason"], fallbacks[0]
    assert fallbacks[0]["source"] == "public.src" and fallbacks[0]["reinitialize"] is reinitialize
    health = c.execute("SELECT cdc_mode, alert FROM pgtrickle.check_cdc_health()").fetchall()
    assert health[0][0] == "TRIGGER" and reason_part in health[0][1], health


def finish_exact(c):
    """After a fallback: more changes (now captured by the triggers), then every stream table exact."""
    c.execute("INSERT INTO src VALUES (901, 9, 'after fallback')")
    c.execute("UPDATE src SET v = v * 2 WHERE id % 3 = 0")
    for name, q in (("st", Q), ("st_agg", Q_AGG)):
        refresh(c, name)
        assert_st_matches_query(c, name, q)
    assert_buffer_replays_to_source(c, "st", "src")


def test_fallback_slot_dropped_by_hand(db):
    c = wal_source(db)
    alerts = Alerts(db.connect())
    c.execute("INSERT INTO src VALUES (902, 9, 'lost with the slot')")
    c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pgtrickle.pgt_change_tracking")
    c.execute("DELETE FROM src WHERE id < 10")
    assert_st_differs_from_query(c, "st", Q)
    refresh(c, "st")  # the refresh notices, falls back and recomputes
    assert_st_matches_query(c, "st", Q)
    assert_fell_back(c, alerts, "does not exist")
    finish_exact(c)


@pytest.mark.parametrize("update", [
    "UPDATE src SET note = 'undecodable' WHERE id = 5",  # logged without its old row
    "UPDATE src SET id = id + 5000 WHERE id = 5",  # logged with the old key only: the other columns read as NULL
])
def test_fallback_decoding_error(db, update):
    c = wal_source(db)
    alerts = Alerts(db.connect())
    # Without REPLICA IDENTITY FULL an UPDATE's old row is not (completely) in the WAL: decoding refuses it.
    c.execute("ALTER TABLE src REPLICA IDENTITY DEFAULT")
    c.execute(update)
    refresh(c, "st_agg")
    assert_st_matches_query(c, "st_agg", Q_AGG)
    assert_fell_back(c, alerts, "REPLICA IDENTITY other than FULL")
    finish_exact(c)


def test_fallback_slot_replaced_with_other_plugin(db):
    c = wal_source(db)
    alerts = Alerts(db.connect())
    slot = c.execute("SELECT slot_name FROM pgtrickle.pgt_change_tracking").fetchone()[0]
    c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    c.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
    c.execute("INSERT INTO src VALUES (903, 9, 'x')")
    advance(c)  # the scheduler's check finds it
    assert_fell_back(c, alerts, "test_decoding")
    finish_exact(c)


def test_fallback_lag(db):
    c = wal_source(db)
    alerts = Alerts(db.connect())
    c.execute("SET pg_trickle.slot_lag_critical_threshold_mb = 1")
    c.execute("CREATE TABLE filler (x text)")
    c.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 3000)")  # about 3 MB of WAL
    c.execute("INSERT INTO src VALUES (904, 9, 'behind')")
    advance(c)
    assert_fell_back(c, alerts, "slot_lag_critical_threshold_mb")
    finish_exact(c)


def test_drop_extension_leaves_no_slot(db):
    c = wal_source(db)
    assert len(slots(c)) == 1
    c.execute("DROP EXTENSION pg_trickle CASCADE")
    assert slots(c) == []
    assert c.execute("SELECT relreplident FROM pg_class WHERE oid = 'src'::regclass").fetchone()[0] == "d"
    c.execute("INSERT INTO src VALUES (905, 9, 'no capture any more')")
    assert capture_triggers(c) == 0


def test_orphan_slot_is_removed(db):
    c = db.conn
    setup_src(c, 5)
    create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    orphan = c.execute("SELECT 'pgtrickle_' || oid || '_999999' FROM pg_database WHERE datname = current_database()"
                       ).fetchone()[0]
    c.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (orphan,))
    advance(c)
    assert slots(c) == []
    assert c.execute("SELECT count(*) FROM pgtrickle.slot_health()").fetchone()[0] == 0


# ------------------------------------------------------------------------------------------------
# Crashes
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def crash_cluster(cluster_factory):
    c = cluster_factory.new("walcrash")
    yield c
    c.stop()


def crash_db(cluster, name):
    with cluster.connect() as admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"ALTER DATABASE {name} SET pg_trickle.differential_max_change_ratio = 0")
    conn = cluster.connect(name)
    conn.execute("CREATE EXTENSION pg_trickle")
    setup_src(conn, 100)
    create_st(conn, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    create_st(conn, "st_agg", Q_AGG, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    return conn


def test_kill9_during_wal_capture_and_during_transition(crash_cluster):
    cl = crash_cluster
    # db "walmode": WAL capture with some changes decoded and consumed, some not yet decoded.
    w = crash_db(cl, "walmode")
    until_mode(w, "WAL")
    w.execute("INSERT INTO src VALUES (1001, 1, 'decoded before')")
    refresh(w, "st")
    w.execute("UPDATE src SET v = v + 1 WHERE id <= 20")
    w.execute("CHECKPOINT")
    w.execute("DELETE FROM src WHERE id BETWEEN 30 AND 40")
    with w.transaction():
        w.execute("INSERT INTO src VALUES (1002, 2, 'multi')")
        w.execute("UPDATE src SET note = 'touched' WHERE id = 50")
    # db "transition": slot created, triggers still on.
    t = crash_db(cl, "transition")
    advance(t)
    assert mode_of(t) == "TRANSITIONING"
    t.execute("INSERT INTO src VALUES (2001, 1, 'during transition')")
    t.execute("UPDATE src SET v = -v WHERE id % 9 = 0")
    # Transactions in progress at the crash: their changes must not appear.
    open_w = cl.connect("walmode")
    open_w.execute("BEGIN")
    open_w.execute("INSERT INTO src VALUES (3001, 0, 'uncommitted')")
    open_t = cl.connect("transition")
    open_t.execute("BEGIN")
    open_t.execute("UPDATE src SET note = 'uncommitted'")
    w.close()
    t.close()

    cl.kill9()
    open_w.close()
    open_t.close()
    cl.start()

    w = cl.connect("walmode")
    assert mode_of(w) == "WAL"
    assert w.execute("SELECT count(*) FROM src WHERE id = 3001").fetchone()[0] == 0
    assert_st_differs_from_query(w, "st", Q)
    for name, q in (("st", Q), ("st_agg", Q_AGG)):
        refresh(w, name)
        assert_st_matches_query(w, name, q)
    w.execute("INSERT INTO src VALUES (1003, 3, 'after restart')")
    for name, q in (("st", Q), ("st_agg", Q_AGG)):
        refresh(w, name)
        assert_st_matches_query(w, name, q)
    assert w.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE action = 'REINITIALIZE'"
                     ).fetchone()[0] == 0

    t = cl.connect("transition")
    assert mode_of(t) == "TRANSITIONING"
    assert t.execute("SELECT count(*) FROM src WHERE note = 'uncommitted'").fetchone()[0] == 0
    until_mode(t, "WAL")
    t.execute("INSERT INTO src VALUES (2002, 2, 'after hand-over')")
    for name, q in (("st", Q), ("st_agg", Q_AGG)):
        refresh(t, name)
        assert_st_matches_query(t, name, q)
    assert t.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE action = 'REINITIALIZE'"
                     ).fetchone()[0] == 0
    for conn in (w, t):
        drop_st(conn, "st")
        drop_st(conn, "st_agg")
        assert slots(conn) == []
        conn.close()
    assert not cl.log_problems(), cl.log_problems()


# ------------------------------------------------------------------------------------------------
# The scheduler drives the transition (pg_trickle.cdc_mode = auto)
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def sched_cluster(cluster_factory):
    c = cluster_factory.new("walsched", "pg_trickle.enabled = on\npg_trickle.scheduler_interval_ms = 200\n"
                                        "pg_trickle.cdc_mode = auto")
    yield c
    c.stop()


def test_scheduler_moves_sources_to_wal(sched_cluster):
    cl = sched_cluster
    with cl.connect() as admin:
        admin.execute("CREATE DATABASE sched")
    c = cl.connect("sched")
    c.execute("CREATE EXTENSION pg_trickle")
    setup_src(c, 50)
    create_st(c, "st", Q_AGG, refresh_mode="DIFFERENTIAL", schedule="1s")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and mode_of(c) != "WAL":
        time.sleep(0.2)
    assert mode_of(c) == "WAL"
    c.execute("INSERT INTO src SELECT g, g, 'later' FROM generate_series(1001, 1100) g")
    c.execute("UPDATE src SET v = v + 1 WHERE id % 2 = 0")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not any(st_vs for st_vs in _diff(c, "st", Q_AGG)):
            break
        time.sleep(0.3)
    assert_st_matches_query(c, "st", Q_AGG)
    assert c.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE action = 'DIFFERENTIAL'"
                     ).fetchone()[0] > 0
    drop_st(c, "st")
    assert slots(c) == []
    c.close()


def _diff(conn, name, q):
    from pgt_helpers import st_vs_query
    return st_vs_query(conn, name, q)


def test_rolled_back_refreshes_consume_nothing(db):
    """The slot is not consumed by a refresh that rolls back: neither by its own decoding pass nor by a
    second pass in the same transaction (which must not advance the slot to the first pass's
    uncommitted position)."""
    c = db.conn
    setup_src(c, 50)
    create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    create_st(c, "st_agg", Q_AGG, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    until_mode(c, "WAL")
    c.execute("INSERT INTO src SELECT g, g, 'a' FROM generate_series(101, 150) g")
    c.execute("UPDATE src SET v = v + 1 WHERE id % 4 = 0")
    c.execute("SELECT pg_switch_wal()")  # the next pass starts on another WAL segment
    c.execute("INSERT INTO src VALUES (151, 1, 'b')")
    with pytest.raises(psycopg.errors.QueryCanceled):
        with c.transaction():
            refresh(c, "st")
            refresh(c, "st_agg")  # a second decoding pass in the same transaction
            c.execute("SET LOCAL statement_timeout = 1")
            c.execute("SELECT pg_sleep(1)")
    assert_st_differs_from_query(c, "st", Q)
    c.execute("DELETE FROM src WHERE id < 5")
    for name, q in (("st", Q), ("st_agg", Q_AGG)):
        refresh(c, name)
        assert_st_matches_query(c, name, q)


def test_wal_level_replica(cluster_factory):
    """Without wal_level = logical: cdc_mode 'wal' is refused, 'auto' quietly keeps triggers."""
    cl = cluster_factory.new("walreplica", "wal_level = replica")
    try:
        c = cl.connect()
        c.execute("CREATE EXTENSION pg_trickle")
        setup_src(c, 10)
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
        create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="auto")
        assert advance(c) == []
        assert mode_of(c) == "TRIGGER" and capture_triggers(c) == 4
        c.execute("INSERT INTO src VALUES (11, 11, 'x')")
        refresh(c, "st")
        assert_st_matches_query(c, "st", Q)
        c.close()
    finally:
        cl.stop()


def test_slot_waits_for_long_writers(db):
    """Creating a slot waits for every writing transaction to end: with one open for more than a
    second, the transition is postponed (the scheduler is not held), and taken once it has ended."""
    c = db.conn
    setup_src(c, 20)
    c.execute("CREATE TABLE other (x int)")
    create_st(c, "st", Q, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    writer = db.connect()
    writer.execute("BEGIN")
    writer.execute("INSERT INTO other VALUES (1)")  # holds a transaction id
    time.sleep(1.3)
    started = time.monotonic()
    assert advance(c) == []
    assert time.monotonic() - started < 5
    assert mode_of(c) == "TRIGGER" and slots(c) == []
    writer.execute("COMMIT")
    writer.close()
    until_mode(c, "WAL")
    c.execute("INSERT INTO src VALUES (100, 1, 'after')")
    refresh(c, "st")
    assert_st_matches_query(c, "st", Q)


def test_auto_leaves_the_last_free_slot(cluster_factory):
    cl = cluster_factory.new("walslots", "max_replication_slots = 3")
    c = cl.connect()
    try:
        c.execute("CREATE EXTENSION pg_trickle")
        c.execute("SELECT pg_create_physical_replication_slot('someone_else')")
        for t in ("a", "b"):
            c.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v int)")
            c.execute(f"INSERT INTO {t} SELECT g, g FROM generate_series(1, 10) g")
            create_st(c, f"st_{t}", f"SELECT id, v FROM {t}", refresh_mode="DIFFERENTIAL")  # cdc_mode: auto
        for _ in range(4):
            advance(c)
        modes = {t: mode_of(c, t) for t in ("a", "b")}
        # Three slots: one taken by someone else, one by the first source; auto leaves the last one.
        assert sorted(modes.values()) == ["TRIGGER", "WAL"], modes
        trigger_source = next(t for t, m in modes.items() if m == "TRIGGER")
        # Asked for explicitly, the last slot is taken.
        c.execute(f"SELECT pgtrickle.alter_stream_table('st_{trigger_source}', cdc_mode => 'wal')")
        until_mode(c, "WAL", source=trigger_source)
        for t in ("a", "b"):
            c.execute(f"UPDATE {t} SET v = v + 1 WHERE id % 2 = 0")
            refresh(c, f"st_{t}")
            assert_st_matches_query(c, f"st_{t}", f"SELECT id, v FROM {t}")
        for t in ("a", "b"):
            drop_st(c, f"st_{t}")
        assert [r[0] for r in c.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1").fetchall()] == \
            ["someone_else"]
    finally:
        c.close()
        cl.stop()


QP = "SELECT id, k, v FROM ps"
QP_AGG = "SELECT k, count(*) AS n, string_agg(v, ',' ORDER BY id) AS vs FROM ps GROUP BY k"
LEAVES = ("p0", "p1", "p2a", "p2b")


def partition_triggers(c):
    return c.execute("SELECT count(*) FROM pg_trigger g JOIN pg_partition_tree('ps') t ON t.relid = g.tgrelid "
                     "WHERE g.tgname LIKE 'pgt\\_capture\\_%%'").fetchone()[0]


def replica_identities(c):
    return dict(c.execute("SELECT c.relname::text, c.relreplident::text FROM pg_partition_tree('ps') t "
                          "JOIN pg_class c ON c.oid = t.relid WHERE c.relkind = 'r' ORDER BY 1").fetchall())


def assert_partitioned_exact(c):
    for name, q in (("stp", QP), ("stp_agg", QP_AGG)):
        refresh(c, name)
        assert_st_matches_query(c, name, q)


def test_partitioned_source_under_wal_capture(db):
    """A partitioned source moves to WAL capture like a plain table: the leaves get REPLICA IDENTITY
    FULL, every partition loses its triggers, changes written through the root or through any
    partition (also a sub-partitioned one, with columns in another order) are decoded into the root's
    buffer. Partition DDL sends it back to triggers and recomputes its readers; it moves again."""
    c = db.conn
    c.execute("CREATE TABLE ps (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)")
    c.execute("CREATE TABLE p0 PARTITION OF ps FOR VALUES IN (0)")
    c.execute("CREATE TABLE p1 (v text, k int NOT NULL, id int NOT NULL)")
    c.execute("ALTER TABLE ps ATTACH PARTITION p1 FOR VALUES IN (1)")
    c.execute("CREATE TABLE p2 PARTITION OF ps FOR VALUES IN (2) PARTITION BY RANGE (id)")
    c.execute("CREATE TABLE p2a PARTITION OF p2 FOR VALUES FROM (MINVALUE) TO (500)")
    c.execute("CREATE TABLE p2b PARTITION OF p2 FOR VALUES FROM (500) TO (MAXVALUE)")
    c.execute("ALTER TABLE p1 REPLICA IDENTITY NOTHING")  # restored when capture returns to triggers
    c.execute("INSERT INTO ps SELECT g, g % 3, 'v' || g FROM generate_series(1, 900) g")
    create_st(c, "stp", QP, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    create_st(c, "stp_agg", QP_AGG, refresh_mode="DIFFERENTIAL", cdc_mode="wal")
    until_mode(c, "WAL", source="ps")
    assert partition_triggers(c) == 0 and capture_triggers(c, "ps") == 0
    assert replica_identities(c) == {leaf: "f" for leaf in LEAVES}
    before = sum(buffer_rows(c, "ps").values())
    c.execute("INSERT INTO ps SELECT g, g % 3, 'new' || g FROM generate_series(901, 1000) g")
    c.execute("UPDATE ps SET v = v || '*' WHERE id % 7 = 0")
    c.execute("UPDATE p1 SET v = v || '#' WHERE id % 5 = 0")  # through a partition
    c.execute("UPDATE p2b SET v = 'b' WHERE id % 11 = 0")  # through a sub-partition
    c.execute("UPDATE ps SET k = (k + 1) % 3 WHERE id % 13 = 0")  # rows move between partitions
    c.execute("UPDATE ps SET id = id + 1000 WHERE id BETWEEN 400 AND 420 AND k = 2")  # p2a -> p2b
    c.execute("DELETE FROM p0 WHERE id % 4 = 0")
    assert sum(buffer_rows(c, "ps").values()) == before  # all in the WAL
    assert_partitioned_exact(c)
    assert mode_of(c, "ps") == "WAL"
    # A refresh in a transaction that wrote a partition is refused, as for a plain table.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        with c.transaction():
            c.execute("INSERT INTO p2a VALUES (3, 2, 'own write')")
            refresh(c, "stp")
    # A partition attached with rows (no change in the WAL): back to triggers, readers recomputed.
    c.execute("CREATE TABLE p3 (id int NOT NULL, k int NOT NULL, v text)")
    c.execute("INSERT INTO p3 SELECT g, 3, 'p3 ' || g FROM generate_series(1, 50) g")
    c.execute("ALTER TABLE ps ATTACH PARTITION p3 FOR VALUES IN (3)")
    assert mode_of(c, "ps") == "TRIGGER" and partition_triggers(c) == 7 * 4  # ps, p0-p3, p2a, p2b
    assert replica_identities(c)["p1"] == "n"
    assert_partitioned_exact(c)
    until_mode(c, "WAL", source="ps")
    assert partition_triggers(c) == 0
    c.execute("UPDATE p3 SET v = v || '!' WHERE id % 2 = 0")
    c.execute("INSERT INTO ps VALUES (2000, 3, 'into p3')")
    assert_partitioned_exact(c)
    # Detached with its rows: the same.
    c.execute("ALTER TABLE ps DETACH PARTITION p0")
    assert mode_of(c, "ps") == "TRIGGER"
    assert_partitioned_exact(c)
    until_mode(c, "WAL", source="ps")
    c.execute("TRUNCATE p1")  # decoded as a marker: the readers recompute
    c.execute("INSERT INTO ps VALUES (3000, 1, 'after truncate')")
    assert_partitioned_exact(c)
    # Asked back to triggers: lossless, every partition captured again.
    c.execute("DELETE FROM ps WHERE id % 3 = 0")
    c.execute("SELECT pgtrickle.alter_stream_table('stp', cdc_mode => 'trigger')")
    until_mode(c, "TRIGGER", source="ps")
    assert partition_triggers(c) == 6 * 4 and capture_triggers(c, "ps") == 4  # p0 detached
    c.execute("INSERT INTO p2b VALUES (4000, 2, 'trigger again')")
    assert_partitioned_exact(c)
    drop_st(c, "stp")
    drop_st(c, "stp_agg")
    assert slots(c) == [] and leftovers(c) == {}
    assert partition_triggers(c) == 0
