"""Concurrent writers (commits, rollbacks, rolled-back savepoints) on two sources while another
session refreshes stream tables over them in a loop."""
import os
import random
import threading
import time

import psycopg
import pytest

from pgt_helpers import (assert_buffer_equals, assert_buffer_replays_to_source, assert_st_matches_query, create_st,
                         refresh)

WRITERS = 4
DURATION = float(os.environ.get("PGT_E2E_STRESS_SECONDS", "4"))
SEED = int(os.environ.get("PGT_E2E_SEED", str(int(time.time()))))

Q_AGG = "SELECT grp, count(*) AS n, sum(val) AS s, count(note) AS notes FROM cs GROUP BY grp"
# name: (query, refresh mode)
STREAM_TABLES = {
    "st_cs_agg_diff": (Q_AGG, "DIFFERENTIAL"),
    "st_cs_agg_full": (Q_AGG, "FULL"),
    "st_cs_frozen": ("SELECT * FROM cs", "FULL"),  # refreshed only at the end: the buffer keeps every change
    "st_cu": ("SELECT * FROM cu", "DIFFERENTIAL"),  # refreshed in the loop: trims while writers write
    "st_cu_big": ("SELECT id, val, note FROM cu WHERE val > 3 OR note IS NULL", "DIFFERENTIAL"),
}
REFRESHED_IN_LOOP = ["st_cs_agg_diff", "st_cs_agg_full", "st_cu", "st_cu_big"]


def random_row(rng):
    return (rng.randint(1, 400), rng.choice([None, 0, 1, 2, 3]), rng.choice([None] + list(range(10))),
            rng.choice([None, "a", "b", "c"]))


def random_op(rng, table):
    kind = rng.choice(["insert", "insert", "update", "update", "delete"])
    lo = rng.randint(1, 400)
    hi = lo + rng.randint(0, 15)
    if kind == "insert":
        rows = [random_row(rng) for _ in range(rng.randint(1, 8))]
        values = ", ".join(["(%s::int, %s::int, %s::int, %s::text)"] * len(rows))
        return f"INSERT INTO {table} VALUES {values}", [v for r in rows for v in r]
    if kind == "update":
        if rng.random() < 0.5:
            return (f"UPDATE {table} SET val = %s, note = %s WHERE id BETWEEN %s AND %s",
                    [rng.choice([None] + list(range(10))), rng.choice([None, "a", "b", "u"]), lo, hi])
        return f"UPDATE {table} SET grp = coalesce(grp, 0) + 1 WHERE id BETWEEN %s AND %s", [lo, hi]
    return f"DELETE FROM {table} WHERE id BETWEEN %s AND %s", [lo, hi]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n


def writer(db, seed, deadline, stats, errors):
    rng = random.Random(seed)
    conn = db.connect()
    try:
        while time.monotonic() < deadline:
            table = rng.choice(["cs", "cu"])
            pattern = rng.choice(["single", "commit", "commit", "rollback", "savepoint", "both_tables"])
            try:
                with conn.cursor() as cur:
                    if pattern == "single":
                        cur.execute(*random_op(rng, table))
                        stats.add("commits")
                        continue
                    cur.execute("BEGIN")
                    if pattern == "both_tables":
                        for t in ("cs", "cu", "cs"):
                            cur.execute(*random_op(rng, t))
                    else:
                        for _ in range(rng.randint(1, 4)):
                            cur.execute(*random_op(rng, table))
                    if pattern == "savepoint":
                        cur.execute("SAVEPOINT s")
                        for _ in range(rng.randint(1, 3)):
                            cur.execute(*random_op(rng, rng.choice(["cs", "cu"])))
                        cur.execute("ROLLBACK TO SAVEPOINT s")
                        cur.execute(*random_op(rng, table))
                        stats.add("savepoint_rollbacks")
                    if pattern == "rollback":
                        cur.execute("ROLLBACK")
                        stats.add("rollbacks")
                    else:
                        cur.execute("COMMIT")
                        stats.add("commits")
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                conn.execute("ROLLBACK")
                stats.add("deadlocks")
    except BaseException as e:  # noqa: BLE001 - reported by the main thread
        errors.append(("writer", seed, e))


def refresher(db, writers_done, stats, errors):
    conn = db.connect()
    try:
        while not writers_done.is_set():
            for name in REFRESHED_IN_LOOP:
                refresh(conn, name)
                stats.add("refreshes")
            # While writers keep writing: contents as of the frontier + buffered changes past it
            # = the source now. Fails if a trim removed rows a consumer still needs, or capture
            # lost or duplicated a change.
            assert_buffer_replays_to_source(conn, "st_cu", "cu")
            stats.add("replay_checks")
    except BaseException as e:  # noqa: BLE001
        errors.append(("refresher", None, e))


def test_concurrent_writers_and_refreshes(db):
    conn = db.conn
    for t in ("cs", "cu"):
        conn.execute(f"CREATE TABLE {t} (id int, grp int, val int, note text)")
        conn.execute(f"INSERT INTO {t} SELECT g % 300, g % 10, nullif(g % 7, 0), "
                     f"CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || (g % 3) END FROM generate_series(1, 600) g")
    for name, (q, mode) in STREAM_TABLES.items():
        create_st(conn, name, q, refresh_mode=mode)

    stats = Stats()
    errors = []
    deadline = time.monotonic() + DURATION
    writers_done = threading.Event()
    threads = [threading.Thread(target=writer, args=(db, SEED + i, deadline, stats, errors)) for i in range(WRITERS)]
    ref = threading.Thread(target=refresher, args=(db, writers_done, stats, errors))
    for t in threads:
        t.start()
    ref.start()
    for t in threads:
        t.join(timeout=DURATION + 180)
    writers_done.set()
    ref.join(timeout=180)
    assert not any(t.is_alive() for t in threads + [ref]), "a worker thread hung"
    print(f"seed {SEED}: {stats.counts}")
    if errors:
        who, seed, e = errors[0]
        raise AssertionError(f"{who} (seed {seed}) failed: {type(e).__name__}: {e}") from e
    for key in ("commits", "rollbacks", "savepoint_rollbacks"):
        assert stats.counts.get(key, 0) > 0, f"no {key} happened: {stats.counts}"
    assert stats.counts.get("refreshes", 0) >= 2 * len(REFRESHED_IN_LOOP), stats.counts

    # Quiescent now. Every change since st_cs_frozen's creation is still buffered and replays.
    assert_buffer_replays_to_source(conn, "st_cs_frozen", "cs")
    assert_buffer_replays_to_source(conn, "st_cu", "cu")
    for name, (q, mode) in STREAM_TABLES.items():
        refresh(conn, name)
        assert_st_matches_query(conn, name, q)
    # The differential path did run during the test.
    actions = dict(conn.execute(
        "SELECT st.pgt_name, count(*) FILTER (WHERE h.action = 'DIFFERENTIAL') FROM pgtrickle.pgt_refresh_history h "
        "JOIN pgtrickle.pgt_stream_tables st USING (pgt_id) GROUP BY 1").fetchall())
    for name, (q, mode) in STREAM_TABLES.items():
        if mode == "DIFFERENTIAL":
            assert actions[name] > 0, f"{name} was never refreshed differentially: {actions}"
    assert_buffer_equals(conn, "cs", [])
    assert_buffer_equals(conn, "cu", [])
