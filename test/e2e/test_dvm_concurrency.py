"""DIFFERENTIAL stream tables (a filter, a join, GROUP BYs) under concurrent writers.

Writer threads commit, roll back, roll back to savepoints and hold transactions open across refreshes
(begin and write before a refresh, commit after it) while a refresher thread refreshes every stream
table in a loop. The run is cut into phases; at the end of each phase the writers pause at a barrier
(one of them may keep a transaction open across it), the refresher pauses, and the main thread
refreshes once more and requires every stream table to equal its query exactly (multiset, both ways):
a change lost or applied twice by any earlier refresh shows up there. The refresh history may only
show DIFFERENTIAL or NO_DATA refreshes.

Environment: PGT_SEED (default fixed; the thread schedule is not reproducible, the operations are),
PGT_DVM_CONC_PHASES (default 6), PGT_DVM_CONC_PHASE_SECONDS (default 2.5).
"""
import os
import random
import threading
import time

import psycopg
import pytest

from pgt_helpers import assert_buffer_replays_to_source, create_st, refresh, st_vs_query

SEED = int(os.environ.get("PGT_SEED", "61027"))
PHASES = int(os.environ.get("PGT_DVM_CONC_PHASES", "6"))
PHASE_SECONDS = float(os.environ.get("PGT_DVM_CONC_PHASE_SECONDS", "2.5"))
WRITERS = 3
SPACE = 400          # each writer owns ca ids [base, base + SPACE); base = 1000 * (writer + 1)
HOLD_TIMEOUT = 60.0

QUERIES = {
    "c_filter": "SELECT id, grp, val FROM ca WHERE val IS NULL OR val % 3 <> 0",
    "c_join": "SELECT a.id, a.grp, b.w FROM ca a JOIN cb b ON b.ca_id = a.id",
    "c_group": "SELECT grp, count(*) AS n, sum(val) AS s, avg(val) AS av, count(note) AS nn FROM ca GROUP BY grp",
    "c_join_group": "SELECT a.grp, count(*) AS n, sum(b.w) AS sw FROM ca a JOIN cb b ON b.ca_id = a.id GROUP BY a.grp",
    "c_rescan": "SELECT grp, max(val) AS mx, count(DISTINCT note) AS dn FROM ca GROUP BY grp",
    "c_cb": "SELECT * FROM cb",
}


def base_of(writer):
    return 1000 * (writer + 1)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def get(self, key):
        with self.lock:
            return self.counts.get(key, 0)


class Refresher:
    """Refreshes every stream table in a loop; pausable; counts rounds started and completed."""

    def __init__(self, db, stats, errors):
        self.conn = db.connect()
        self.conn.execute("SET pg_trickle.differential_max_change_ratio = 0")
        self.stats = stats
        self.errors = errors
        self.cond = threading.Condition()
        self.started = 0
        self.completed = 0
        self.run_lock = threading.Lock()  # held during a round; the main thread takes it to pause
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="refresher")

    def guarded(self, fn):
        """Runs fn; a deadlock between writers rolls the transaction back (returns False)."""
        try:
            fn()
            return True
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            self.conn.execute("ROLLBACK")
            self.stats.add("deadlocks")
            return False

    def loop(self):
        try:
            while not self.stop.is_set():
                with self.run_lock:
                    with self.cond:
                        self.started += 1
                    for name in QUERIES:
                        refresh(self.conn, name)
                        self.stats.add("loop_refreshes")
                    with self.cond:
                        self.completed += 1
                        self.cond.notify_all()
                time.sleep(0.01)  # let the main thread take run_lock
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.errors.append(("refresher", e))
            with self.cond:
                self.cond.notify_all()

    def rounds_started(self):
        with self.cond:
            return self.started

    def wait_round_started_after(self, started_before):
        """Waits until a refresh round that started after `started_before` rounds has completed."""
        deadline = time.monotonic() + HOLD_TIMEOUT
        with self.cond:
            while self.completed <= started_before:
                if self.errors or not self.thread.is_alive():
                    raise RuntimeError("the refresher stopped")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no refresh completed while a transaction was held open")
                self.cond.wait(min(left, 1.0))


class Writer:
    def __init__(self, db, index, refresher, stats, errors, phase_over, arrive, release, idle):
        self.index = index
        self.base = base_of(index)
        self.rng = random.Random(SEED * 100 + index)
        self.conn = db.connect()
        self.refresher = refresher
        self.stats = stats
        self.errors = errors
        self.phase_over = phase_over
        self.arrive = arrive
        self.release = release
        self.idle = idle  # the writers only: every one is done with its phase's transactions
        self.open_tx = False  # a transaction kept open across the barrier
        self.hold_across_barrier = False  # set by the main thread for the current phase (writer 0 only)
        self.finished = False
        self.thread = threading.Thread(target=self.loop, name=f"writer{index}")

    # --- operations (each one statement) ---
    def any_id(self):
        w = self.rng.randrange(WRITERS)
        return base_of(w) + self.rng.randrange(SPACE)

    def op(self, cur):
        rng = self.rng
        kind = rng.choices(["ins_a", "upd_a", "upd_a_grp", "key_a", "del_a", "ins_b", "upd_b", "del_b"],
                           weights=[4, 4, 2, 1, 2, 4, 2, 2])[0]
        if kind == "ins_a":
            n = rng.randint(1, 6)
            rows = [(self.base + rng.randrange(SPACE), rng.choice([None, 0, 1, 2, 3, 4]),
                     rng.choice([None] + list(range(-5, 20))), rng.choice([None, "a", "b", "c"])) for _ in range(n)]
            cur.execute("INSERT INTO ca VALUES " + ", ".join(["(%s, %s, %s, %s)"] * n) + " ON CONFLICT DO NOTHING",
                        [v for r in rows for v in r])
        elif kind == "upd_a":
            lo = self.any_id()
            cur.execute("UPDATE ca SET val = %s, note = %s WHERE id BETWEEN %s AND %s",
                        (rng.choice([None] + list(range(-5, 20))), rng.choice([None, "a", "b", "u"]), lo,
                         lo + rng.randint(0, 20)))
        elif kind == "upd_a_grp":
            lo = self.any_id()
            cur.execute("UPDATE ca SET grp = (coalesce(grp, 0) + 1) %% 5 WHERE id BETWEEN %s AND %s",
                        (lo, lo + rng.randint(0, 30)))
        elif kind == "key_a":
            # Primary key change inside this writer's own id space (nobody else changes or inserts those ids).
            lo = self.base + rng.randrange(SPACE // 2)
            cur.execute("UPDATE ca a SET id = %(b)s + (a.id - %(b)s + %(h)s) %% %(s)s "
                        "WHERE a.id BETWEEN %(lo)s AND %(hi)s AND NOT EXISTS "
                        "(SELECT 1 FROM ca x WHERE x.id = %(b)s + (a.id - %(b)s + %(h)s) %% %(s)s)",
                        {"b": self.base, "h": SPACE // 2, "s": SPACE, "lo": lo, "hi": lo + rng.randint(0, 10)})
        elif kind == "del_a":
            lo = self.any_id()
            cur.execute("DELETE FROM ca WHERE id BETWEEN %s AND %s", (lo, lo + rng.randint(0, 8)))
        elif kind == "ins_b":
            n = rng.randint(1, 6)
            row = (rng.randint(1, 100000), self.any_id(), rng.choice([None, 1, 2, 5, 10]))
            rows = [row] * rng.randint(1, 2) + [(rng.randint(1, 100000), self.any_id(), rng.choice([None, 1, 2, 5]))
                                                 for _ in range(n)]
            cur.execute("INSERT INTO cb VALUES " + ", ".join(["(%s, %s, %s)"] * len(rows)),
                        [v for r in rows for v in r])
        elif kind == "upd_b":
            lo = self.any_id()
            if rng.random() < 0.5:
                cur.execute("UPDATE cb SET w = coalesce(w, 0) + 1 WHERE ca_id BETWEEN %s AND %s", (lo, lo + 20))
            else:
                cur.execute("UPDATE cb SET ca_id = %s WHERE ca_id BETWEEN %s AND %s", (self.any_id(), lo, lo + 5))
        else:
            lo = self.any_id()
            cur.execute("DELETE FROM cb WHERE ca_id BETWEEN %s AND %s", (lo, lo + 6))

    def transaction(self, cur):
        rng = self.rng
        pattern = rng.choices(["single", "commit", "rollback", "savepoint", "hold", "hold_rollback"],
                              weights=[4, 4, 1, 2, 1.5, 0.5])[0]
        if pattern == "single":
            self.op(cur)
            self.stats.add("commits")
            return
        cur.execute("BEGIN")
        for _ in range(rng.randint(1, 4)):
            self.op(cur)
        if pattern == "savepoint":
            cur.execute("SAVEPOINT s")
            for _ in range(rng.randint(1, 3)):
                self.op(cur)
            cur.execute("ROLLBACK TO SAVEPOINT s")
            self.op(cur)
            self.stats.add("savepoint_rollbacks")
        if pattern in ("hold", "hold_rollback"):
            # Written before a refresh starts, committed (or rolled back) after it completed.
            started = self.refresher.rounds_started()
            try:
                self.refresher.wait_round_started_after(started)
            except TimeoutError as e:
                # A refresh waiting for a lock this open transaction holds?
                raise TimeoutError(f"{e}; sessions:\n{activity(self.conn)}") from None
            if rng.random() < 0.5:
                self.op(cur)  # more changes after the refresh, same transaction
            self.stats.add("held_across_refresh")
        if pattern in ("rollback", "hold_rollback"):
            cur.execute("ROLLBACK")
            self.stats.add("rollbacks")
        else:
            cur.execute("COMMIT")
            self.stats.add("commits")

    def guarded(self, fn):
        """Runs fn; a deadlock between writers rolls the transaction back (returns False)."""
        try:
            fn()
            return True
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            self.conn.execute("ROLLBACK")
            self.stats.add("deadlocks")
            return False

    def loop(self):
        try:
            while True:
                with self.conn.cursor() as cur:
                    if self.open_tx:
                        # Opened before the barrier refresh: must be applied by a later refresh.
                        self.open_tx = False
                        if self.guarded(lambda: (self.op(cur), cur.execute("COMMIT"))):
                            self.stats.add("commits")
                    while not self.phase_over.is_set():
                        self.guarded(lambda: self.transaction(cur))
                    # The transaction held across the barrier opens once the others are done: its row
                    # locks would otherwise block another writer's last transaction, which could then
                    # never reach the barrier this writer waits at (until the statement timeout).
                    self.idle.wait()
                    if self.index == 0 and self.hold_across_barrier:
                        cur.execute("BEGIN")
                        if self.guarded(lambda: [self.op(cur) for _ in range(3)]):
                            self.open_tx = True
                            self.stats.add("held_across_barrier")
                self.arrive.wait()
                self.release.wait()
                if self.finished:
                    return
        except threading.BrokenBarrierError:
            pass
        except BaseException as e:  # noqa: BLE001
            self.errors.append((f"writer{self.index}", e))
            self.arrive.abort()
            self.release.abort()
            self.idle.abort()



def history_since(conn, last_id):
    return conn.execute(
        "SELECT h.refresh_id, st.pgt_name, h.action, h.status, h.fallback_reason FROM pgtrickle.pgt_refresh_history h "
        "JOIN pgtrickle.pgt_stream_tables st USING (pgt_id) WHERE h.refresh_id > %s ORDER BY h.refresh_id",
        (last_id,)).fetchall()


def activity(conn):
    """The other sessions of this database: what they run and wait for (for a report on a hang)."""
    rows = conn.execute(
        "SELECT pid, state, wait_event_type, wait_event, pg_blocking_pids(pid), left(query, 200) "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return "\n".join(f"    {r!r}" for r in rows)


def check_all(conn, phase, writer_open_tx):
    problems = []
    for name, q in QUERIES.items():
        refresh(conn, name)
        extra, missing = st_vs_query(conn, name, q)
        if extra or missing:
            problems.append(f"{name} ({q}) after phase {phase}{' (a writer transaction was open)' if writer_open_tx else ''}:\n"
                            f"  extra ({len(extra)}): {extra[:20]!r}\n  missing ({len(missing)}): {missing[:20]!r}")
    return problems


def test_dvm_concurrent_writers(db):
    conn = db.conn
    conn.execute("SET pg_trickle.differential_max_change_ratio = 0")
    conn.execute("CREATE TABLE ca (id int PRIMARY KEY, grp int, val int, note text)")
    conn.execute("CREATE TABLE cb (id int, ca_id int, w int)")
    rng = random.Random(SEED)
    for w in range(WRITERS):
        ids = rng.sample(range(base_of(w), base_of(w) + SPACE), 120)
        conn.execute("INSERT INTO ca SELECT i, i %% 5, nullif(i %% 13, 0), CASE WHEN i %% 4 = 0 THEN NULL "
                     "ELSE chr(97 + i %% 3) END FROM unnest(%s::int[]) i", (ids,))
    conn.execute("INSERT INTO cb SELECT g, (SELECT id FROM ca ORDER BY id OFFSET (g * 7) % 300 LIMIT 1), "
                 "nullif(g % 6, 0) FROM generate_series(1, 400) g")
    conn.execute("INSERT INTO cb SELECT * FROM cb WHERE id % 5 = 0")  # duplicate rows
    for name, q in QUERIES.items():
        create_st(conn, name, q, refresh_mode="DIFFERENTIAL", schedule="24h")  # only this test refreshes
        mode = conn.execute("SELECT refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = %s",
                            (name,)).fetchone()[0]
        assert mode == "DIFFERENTIAL", f"{name}: refresh_mode {mode}"
    last_id = conn.execute("SELECT coalesce(max(refresh_id), 0) FROM pgtrickle.pgt_refresh_history").fetchone()[0]

    stats = Stats()
    errors = []
    phase_over = threading.Event()
    arrive = threading.Barrier(WRITERS + 1)
    release = threading.Barrier(WRITERS + 1)
    idle = threading.Barrier(WRITERS)
    refresher = Refresher(db, stats, errors)
    writers = [Writer(db, i, refresher, stats, errors, phase_over, arrive, release, idle) for i in range(WRITERS)]
    refresher.thread.start()
    for w in writers:
        w.thread.start()

    problems = []
    phase_rng = random.Random(SEED + 7)
    try:
        for phase in range(1, PHASES + 1):
            last = phase == PHASES
            writers[0].hold_across_barrier = not last and phase_rng.random() < 0.6
            time.sleep(PHASE_SECONDS)
            phase_over.set()
            arrive.wait(timeout=HOLD_TIMEOUT + 60)   # every writer is done with its transactions
            with refresher.run_lock:                  # and the refresher is between rounds
                if errors:
                    break
                open_tx = writers[0].open_tx
                problems += check_all(conn, phase, open_tx)
                stats.add("barrier_checks")
                if not open_tx:
                    # Every change is visible now: the table's contents + its unconsumed buffer rows
                    # replay to the source exactly.
                    assert_buffer_replays_to_source(conn, "c_cb", "cb")
                history = history_since(conn, last_id)
                if history:
                    last_id = history[-1][0]
                bad = [h for h in history if h[3] != "COMPLETED" or h[2] not in ("DIFFERENTIAL", "NO_DATA")]
                if bad:
                    problems.append(f"refreshes other than DIFFERENTIAL/NO_DATA in phase {phase}: {bad[:10]!r}")
                for h in history:
                    stats.add(h[2])
                phase_over.clear()
                if last:
                    refresher.stop.set()
                    for w in writers:
                        w.finished = True
                if problems:
                    for w in writers:
                        w.finished = True
                    refresher.stop.set()
            release.wait(timeout=60)
            if problems:
                break
    except threading.BrokenBarrierError:
        if not errors:
            problems.append("the writers did not reach the barrier in time (stuck?); sessions:\n" + activity(conn))
    finally:
        arrive.abort()
        release.abort()
        idle.abort()
        refresher.stop.set()
        for w in writers:
            w.finished = True
        phase_over.set()
        for w in writers:
            w.thread.join(timeout=HOLD_TIMEOUT + 60)
        refresher.thread.join(timeout=120)
    print(f"PGT_SEED={SEED}: {stats.counts}")
    if errors:
        who, e = errors[0]
        raise AssertionError(f"{who} failed (PGT_SEED={SEED}): {type(e).__name__}: {e}"
                             + (f"\n(and {len(errors) - 1} more: {[(w, str(x)[:200]) for w, x in errors[1:]]!r})"
                                if len(errors) > 1 else "")) from e
    assert not any(t.is_alive() for t in [refresher.thread] + [w.thread for w in writers]), "a thread hung"
    if problems:
        pytest.fail(f"PGT_SEED={SEED}: stream tables diverged from their queries:\n" + "\n".join(problems),
                    pytrace=False)

    # Quiescent: a final refresh gives exact equality.
    assert not writers[0].open_tx
    final = check_all(conn, "final", False)
    assert not final, "\n".join(final)
    bad = [h for h in history_since(conn, last_id) if h[3] != "COMPLETED" or h[2] not in ("DIFFERENTIAL", "NO_DATA")]
    assert not bad, f"refreshes other than DIFFERENTIAL/NO_DATA: {bad!r}"
    for key in ("commits", "rollbacks", "savepoint_rollbacks", "held_across_refresh", "held_across_barrier",
                "DIFFERENTIAL"):
        assert stats.get(key) > 0, f"no {key} happened: {stats.counts}"
    assert stats.get("loop_refreshes") >= 3 * len(QUERIES), stats.counts
