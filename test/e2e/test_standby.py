"""A streaming standby, and its promotion.

A standby replays its primary's stream tables and catalog: nothing is captured, decoded or refreshed
there (the scheduler starts only when recovery ends, a manual refresh is refused). Logical slots are
not part of a base backup, so after a promotion a WAL-captured source has neither triggers nor a
slot: the new primary's scheduler returns it to triggers, recomputes its stream tables once, and
(with cdc_mode auto) moves it to WAL again. Every check compares stream tables with their queries as
multisets (EXCEPT ALL both ways)."""
import time

import pytest

from conftest import PgCluster, free_port
from pgt_helpers import assert_st_matches_query, capture_mode as mode_of, create_st, sqlstate_of, st_vs_query

Q = "SELECT id, v, note FROM src"
Q_AGG = "SELECT v % 5 AS k, count(*) AS n, sum(v) AS s FROM src GROUP BY 1"


def wait_for(what, fn, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.2)
    assert fn(), f"timed out waiting for {what}"


def matches(conn, name, query):
    return not any(st_vs_query(conn, name, query))


def base_backup(factory, primary, name):
    """A hot standby of `primary`, streaming from it (pg_basebackup -R), started."""
    standby = PgCluster(primary.pgbin, primary.basedir, name)
    factory.clusters.append(standby)
    standby.port = free_port()
    standby._run([primary.pgbin / "pg_basebackup", "-D", standby.datadir, "-h", "127.0.0.1", "-p", str(primary.port),
                  "-U", "postgres", "-R", "-X", "stream", "--no-sync", "-c", "fast"])
    with open(standby.datadir / "postgresql.conf", "a") as f:
        f.write(f"\n# --- standby ---\nport = {standby.port}\nhot_standby = on\n")
    standby.start()
    return standby


def replay_caught_up(primary_conn, standby_conn):
    lsn = primary_conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    return lambda: standby_conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]


def scheduler_processes(conn):
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg\\_trickle%%'"
                        ).fetchone()[0]


def test_standby_replays_and_promotion_recovers(cluster_factory):
    # The default cdc_mode (auto): the scheduler moves the source to WAL by itself.
    primary = cluster_factory.new("sb_primary", "pg_trickle.enabled = on\npg_trickle.scheduler_interval_ms = 200")
    with primary.connect() as admin:
        admin.execute("CREATE DATABASE app")
    p = primary.connect("app")
    p.execute("CREATE EXTENSION pg_trickle")
    p.execute("CREATE TABLE src (id int PRIMARY KEY, v int, note text)")
    p.execute("INSERT INTO src SELECT g, g, 'n' || g FROM generate_series(1, 300) g")
    create_st(p, "st", Q, schedule="1s")
    create_st(p, "st_agg", Q_AGG, schedule="1s")
    wait_for("the source to move to WAL capture", lambda: mode_of(p) == "WAL")
    p.execute("INSERT INTO src SELECT g, g, 'wal' FROM generate_series(301, 400) g")
    p.execute("UPDATE src SET v = v + 1000 WHERE id % 9 = 0")
    p.execute("DELETE FROM src WHERE id % 13 = 0")
    wait_for("the primary's refreshes", lambda: matches(p, "st", Q) and matches(p, "st_agg", Q_AGG))

    standby = base_backup(cluster_factory, primary, "sb_standby")
    s = standby.connect("app")
    assert s.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    wait_for("the standby's replay", replay_caught_up(p, s))
    assert_st_matches_query(s, "st", Q)
    assert_st_matches_query(s, "st_agg", Q_AGG)
    # Nothing runs on the standby: no scheduler, no slot, no capture work, and a manual refresh is refused.
    assert scheduler_processes(s) == 0
    assert s.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
    assert s.execute("SELECT count(*) FROM pgtrickle.advance_cdc_transitions()").fetchone()[0] == 0
    with pytest.raises(Exception) as err:
        s.execute("SELECT pgtrickle.refresh_stream_table('st')")
    assert sqlstate_of(err) == "25006" and "standby" in str(err.value)
    history_before = s.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history").fetchone()[0]

    # Changes on the primary reach the standby through the primary's refreshes.
    p.execute("INSERT INTO src SELECT g, g, 'later' FROM generate_series(401, 450) g")
    p.execute("UPDATE src SET note = note || '+' WHERE id % 5 = 0")
    wait_for("the primary's refreshes", lambda: matches(p, "st", Q) and matches(p, "st_agg", Q_AGG))
    wait_for("the standby's replay", replay_caught_up(p, s))
    assert_st_matches_query(s, "st", Q)
    assert_st_matches_query(s, "st_agg", Q_AGG)
    assert s.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history").fetchone()[0] > history_before
    p.close()

    # Failover: the primary goes away (with changes the standby has), the standby is promoted.
    primary.stop()
    s.execute("SELECT pg_promote(wait => true)")
    assert not s.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    # Still tracked: WAL, or already fallen back to TRIGGER by the new primary's scheduler (and perhaps
    # TRANSITIONING again: cdc_mode auto moves it back to the WAL with a new slot).
    assert mode_of(s) in ("WAL", "TRIGGER", "TRANSITIONING")
    # Written before the new primary's scheduler noticed the missing slot: neither a trigger nor a
    # slot captures these, so the stream tables must be recomputed.
    s.execute("INSERT INTO src SELECT g, g, 'promoted' FROM generate_series(451, 500) g")
    s.execute("UPDATE src SET v = v - 7 WHERE id % 4 = 0")
    s.execute("DELETE FROM src WHERE id % 17 = 0")
    wait_for("the new primary's scheduler", lambda: scheduler_processes(s) >= 1)
    wait_for("the new primary's refreshes", lambda: matches(s, "st", Q) and matches(s, "st_agg", Q_AGG))
    assert "fell back to triggers" in standby.log_text()
    # Capture works on the new primary (triggers, then WAL again under auto).
    for round_ in range(3):
        s.execute("INSERT INTO src SELECT g, g, 'new primary' FROM generate_series(%s::int, %s::int) g",
                  (1000 + 100 * round_, 1049 + 100 * round_))
        s.execute("UPDATE src SET v = v + 1 WHERE id %% 3 = %s", (round_,))
        wait_for("the new primary's refreshes", lambda: matches(s, "st", Q) and matches(s, "st_agg", Q_AGG))
    wait_for("the source to move to WAL capture again", lambda: mode_of(s) == "WAL")
    s.execute("DELETE FROM src WHERE id % 2 = 0")
    wait_for("the new primary's refreshes", lambda: matches(s, "st", Q) and matches(s, "st_agg", Q_AGG))
    s.close()
    standby.stop()
