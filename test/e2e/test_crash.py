"""Crash safety: change buffers are ordinary WAL-logged tables, so kill -9 of the postmaster loses no
committed change, keeps no uncommitted one, and a refresh after restart is right."""
import pytest

from pgt_helpers import (assert_buffer_equals, assert_buffer_replays_to_source, assert_st_differs_from_query,
                         assert_st_matches_query, create_st, refresh, rows_of, xid)

Q = "SELECT id, v FROM src"
Q_AGG = "SELECT v % 3 AS k, count(*) AS n FROM src GROUP BY 1"


@pytest.fixture
def crash_cluster(cluster_factory):
    c = cluster_factory.new("crash")
    yield c
    c.stop()


def test_kill9_keeps_committed_changes(crash_cluster):
    c = crash_cluster
    with c.connect() as admin:
        admin.execute("CREATE DATABASE crashdb")
    conn = c.connect("crashdb")
    conn.execute("CREATE EXTENSION pg_trickle")
    conn.execute("CREATE TABLE src (id int PRIMARY KEY, v int)")
    conn.execute("INSERT INTO src SELECT g, g FROM generate_series(1, 100) g")
    conn.execute("SET pg_trickle.differential_max_change_ratio = 0")
    create_st(conn, "st", Q, refresh_mode="DIFFERENTIAL")
    create_st(conn, "st_agg", Q_AGG, refresh_mode="FULL")

    expected = []
    with conn.transaction(), conn.cursor() as cur:
        x1 = xid(cur)
        cur.execute("INSERT INTO src SELECT g, g FROM generate_series(101, 150) g")
    expected += rows_of([(g, g) for g in range(101, 151)], x1, "I")
    with conn.transaction(), conn.cursor() as cur:
        x2 = xid(cur)
        cur.execute("UPDATE src SET v = -v WHERE id <= 10")
        cur.execute("DELETE FROM src WHERE id BETWEEN 90 AND 99")
    expected += rows_of([(i, i) for i in range(1, 11)], x2, "D") + rows_of([(i, -i) for i in range(1, 11)], x2, "I")
    expected += rows_of([(i, i) for i in range(90, 100)], x2, "D")
    assert_buffer_equals(conn, "src", expected)

    # A transaction in progress at the crash: its changes must be gone afterwards.
    other = c.connect("crashdb")
    other.execute("BEGIN")
    other.execute("INSERT INTO src VALUES (1000, 1000)")
    other.execute("UPDATE src SET v = 0")
    conn.execute("CHECKPOINT")  # some of the changes before a checkpoint, some only in WAL
    with conn.transaction(), conn.cursor() as cur:
        x3 = xid(cur)
        cur.execute("INSERT INTO src VALUES (500, 500)")
    expected += [(x3, "I", 500, 500)]
    conn.close()

    c.kill9()
    other.close()
    c.start()

    conn = c.connect("crashdb")
    conn.execute("SET pg_trickle.differential_max_change_ratio = 0")
    assert_buffer_equals(conn, "src", expected)
    assert conn.execute("SELECT count(*) FROM src WHERE id = 1000 OR v = 0").fetchone()[0] == 0
    assert_buffer_replays_to_source(conn, "st", "src")
    assert_st_differs_from_query(conn, "st", Q)
    refresh(conn, "st")
    assert_st_matches_query(conn, "st", Q)
    assert conn.execute("SELECT action FROM pgtrickle.pgt_refresh_history ORDER BY refresh_id DESC LIMIT 1"
                        ).fetchone()[0] == "DIFFERENTIAL"  # the buffered changes themselves were applied
    assert_buffer_equals(conn, "src", expected)  # st_agg has not consumed them yet
    refresh(conn, "st_agg")
    assert_st_matches_query(conn, "st_agg", Q_AGG)
    assert_buffer_equals(conn, "src", [])
    # Capture keeps working after recovery.
    with conn.transaction(), conn.cursor() as cur:
        x4 = xid(cur)
        cur.execute("DELETE FROM src WHERE id = 500")
    assert_buffer_equals(conn, "src", [(x4, "D", 500, 500)])
    conn.close()
