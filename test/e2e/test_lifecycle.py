"""Stream table lifecycle: shared change buffers, stream tables over stream tables, dropping (with and
without cascade) leaving nothing behind, and the guard against direct writes."""
import psycopg
import pytest

from pgt_helpers import (assert_buffer_equals, assert_st_differs_from_query, assert_st_matches_query, buffer_name,
                         create_st, drop_st, expect_error, leftovers, refresh, rows_of, xid)

Q1 = "SELECT id, v FROM src WHERE v IS NULL OR v % 2 = 0"
Q2 = "SELECT v, count(*) AS n FROM src GROUP BY v"


def capture_triggers(conn, table):
    return sorted(r[0] for r in conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE 'pgt\\_capture\\_%%'",
        (table,)).fetchall())


CAPTURE_TRIGGERS = ["pgt_capture_del", "pgt_capture_ins", "pgt_capture_trunc", "pgt_capture_upd"]


def changes_relations(conn):
    return sorted(r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'pgtrickle_changes'").fetchall())


def test_shared_buffer_and_drop_leaves_nothing(conn):
    conn.execute("CREATE TABLE src (id int, v int)")
    conn.execute("INSERT INTO src SELECT g, nullif(g % 5, 0) FROM generate_series(1, 50) g")
    create_st(conn, "st1", Q1)
    create_st(conn, "st2", Q2, refresh_mode="FULL")
    buf = buffer_name(conn, "src")
    assert conn.execute("SELECT count(*) FROM pgtrickle.pgt_change_tracking").fetchone()[0] == 1
    assert changes_relations(conn) == sorted([buf, f"{buf}___pgt_xid_idx"])
    assert capture_triggers(conn, "src") == CAPTURE_TRIGGERS

    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("INSERT INTO src VALUES (100, 4), (101, NULL)")
        cur.execute("DELETE FROM src WHERE id = 1")
    expected = rows_of([(100, 4), (101, None)], x, "I") + [(x, "D", 1, 1)]
    assert_buffer_equals(conn, "src", expected)

    # The buffer serves both consumers: refreshing one must not trim what the other still needs.
    refresh(conn, "st1")
    assert_st_matches_query(conn, "st1", Q1)
    assert_buffer_equals(conn, "src", expected)
    assert_st_differs_from_query(conn, "st2", Q2)
    refresh(conn, "st2")
    assert_st_matches_query(conn, "st2", Q2)
    assert_buffer_equals(conn, "src", [])

    # Dropping one consumer keeps the buffer, its index, the triggers and the tracking row.
    drop_st(conn, "st1")
    assert conn.execute("SELECT to_regclass('st1')").fetchone()[0] is None
    assert changes_relations(conn) == sorted([buf, f"{buf}___pgt_xid_idx"])
    assert capture_triggers(conn, "src") == CAPTURE_TRIGGERS
    assert conn.execute("SELECT source_name FROM pgtrickle.pgt_change_tracking").fetchall() == [("src",)]
    assert conn.execute("SELECT st.pgt_name FROM pgtrickle.pgt_dependencies d "
                        "JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)").fetchall() == [("st2",)]
    assert conn.execute("SELECT DISTINCT st.pgt_name FROM pgtrickle.pgt_refresh_history "
                        "JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)").fetchall() == [("st2",)]
    # ... and capture still works for the remaining one.
    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("UPDATE src SET v = 7 WHERE id = 2")
    assert_buffer_equals(conn, "src", [(x, "D", 2, 2), (x, "I", 2, 7)])
    refresh(conn, "st2")
    assert_st_matches_query(conn, "st2", Q2)

    conn.execute("INSERT INTO src VALUES (200, 200)")  # pending changes must not keep anything alive
    drop_st(conn, "st2")
    assert leftovers(conn) == {}
    assert conn.execute("SELECT to_regclass('st2')").fetchone()[0] is None
    # The source is an ordinary table again.
    conn.execute("INSERT INTO src VALUES (300, 300)")
    conn.execute("UPDATE src SET v = v + 1")
    conn.execute("DELETE FROM src WHERE id = 300")
    conn.execute("TRUNCATE src")

    # Creating again on the same connection: new buffer, capture works (no stale cached plan).
    conn.execute("INSERT INTO src VALUES (1, 2), (2, NULL)")
    create_st(conn, "st1", Q1)
    assert_st_matches_query(conn, "st1", Q1)
    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("INSERT INTO src VALUES (3, 4)")
        cur.execute("UPDATE src SET v = 6 WHERE id = 1")
    assert_buffer_equals(conn, "src", [(x, "I", 3, 4), (x, "D", 1, 2), (x, "I", 1, 6)])
    refresh(conn, "st1")
    assert_st_matches_query(conn, "st1", Q1)
    drop_st(conn, "st1")
    assert leftovers(conn) == {}


Q_UP = "SELECT id, grp, v FROM base WHERE v IS DISTINCT FROM 0"
Q_DOWN = "SELECT grp, count(*) AS n, sum(v) AS total FROM up GROUP BY grp"
Q_DOWN_FROM_BASE = ("SELECT grp, count(*) AS n, sum(v) AS total FROM base WHERE v IS DISTINCT FROM 0 "
                    "GROUP BY grp")


@pytest.mark.parametrize("up_mode", ["FULL", "AUTO"])
@pytest.mark.parametrize("down_mode", ["FULL", "AUTO"])
def test_stream_table_over_stream_table(conn, up_mode, down_mode):
    conn.execute("CREATE TABLE base (id int, grp text, v int)")
    conn.execute("INSERT INTO base SELECT g, 'g' || (g % 4), nullif(g % 3, 2) FROM generate_series(1, 40) g")
    conn.execute("INSERT INTO base VALUES (41, NULL, 5), (41, NULL, 5)")
    create_st(conn, "up", Q_UP, refresh_mode=up_mode)
    create_st(conn, "down", Q_DOWN, refresh_mode=down_mode)
    assert_st_matches_query(conn, "down", Q_DOWN)
    assert_st_matches_query(conn, "down", Q_DOWN_FROM_BASE)
    deps = conn.execute("SELECT st.pgt_name, d.source_name, d.source_type FROM pgtrickle.pgt_dependencies d "
                        "JOIN pgtrickle.pgt_stream_tables st USING (pgt_id) ORDER BY 1").fetchall()
    assert deps == [("down", "up", "STREAM_TABLE"), ("up", "base", "TABLE")]

    conn.execute("UPDATE base SET v = v * 10 WHERE id % 5 = 0")
    conn.execute("DELETE FROM base WHERE id BETWEEN 10 AND 14")
    conn.execute("INSERT INTO base VALUES (50, 'g9', 9), (51, NULL, NULL)")
    assert_st_differs_from_query(conn, "up", Q_UP)

    # Refreshing downstream first reads the (still stale) upstream contents.
    refresh(conn, "down")
    assert_st_matches_query(conn, "down", Q_DOWN)
    assert_st_differs_from_query(conn, "down", Q_DOWN_FROM_BASE)
    refresh(conn, "up")
    assert_st_matches_query(conn, "up", Q_UP)
    assert_st_differs_from_query(conn, "down", Q_DOWN)
    refresh(conn, "down")
    assert_st_matches_query(conn, "down", Q_DOWN)
    assert_st_matches_query(conn, "down", Q_DOWN_FROM_BASE)

    # The upstream cannot go while something reads it ...
    e = expect_error(conn, "SELECT pgtrickle.drop_stream_table('up')", "2BP01")
    assert "down" in (e.diag.message_detail or "")
    e = expect_error(conn, "SELECT pgtrickle.drop_stream_table('up', false)", "2BP01")
    assert conn.execute("SELECT count(*) FROM pgtrickle.pgt_stream_tables").fetchone()[0] == 2
    assert conn.execute("SELECT to_regclass('up') IS NOT NULL AND to_regclass('down') IS NOT NULL").fetchone()[0]
    refresh(conn, "up")
    refresh(conn, "down")
    assert_st_matches_query(conn, "down", Q_DOWN_FROM_BASE)

    # ... but cascade takes both, and everything they created.
    drop_st(conn, "up", cascade=True)
    assert conn.execute("SELECT to_regclass('up'), to_regclass('down')").fetchone() == (None, None)
    assert leftovers(conn) == {}
    conn.execute("INSERT INTO base VALUES (60, 'x', 1)")


def test_drop_downstream_keeps_upstream(conn):
    conn.execute("CREATE TABLE base (id int, grp text, v int)")
    conn.execute("INSERT INTO base VALUES (1, 'a', 1), (2, 'b', 2)")
    create_st(conn, "up", Q_UP, refresh_mode="FULL")
    create_st(conn, "down", Q_DOWN)
    assert capture_triggers(conn, "up") == CAPTURE_TRIGGERS
    drop_st(conn, "down")
    # Nobody reads "up" any more: its capture goes, its own guard and base's capture stay.
    assert capture_triggers(conn, "up") == []
    assert capture_triggers(conn, "base") == CAPTURE_TRIGGERS
    assert conn.execute("SELECT source_name FROM pgtrickle.pgt_change_tracking").fetchall() == [("base",)]
    conn.execute("INSERT INTO base VALUES (3, 'c', 3)")
    refresh(conn, "up")
    assert_st_matches_query(conn, "up", Q_UP)
    drop_st(conn, "up")
    assert leftovers(conn) == {}


Q_G = "SELECT k, v FROM g WHERE k > 0"


@pytest.mark.parametrize("mode", ["FULL", "DIFFERENTIAL"])
@pytest.mark.parametrize("statement", [
    "INSERT INTO st_g VALUES (99, 'direct')",
    "INSERT INTO st_g SELECT k, v FROM g",
    "UPDATE st_g SET v = 'direct'",
    "UPDATE st_g SET v = 'direct' WHERE false",
    "DELETE FROM st_g",
    "DELETE FROM st_g WHERE k = 1",
    "TRUNCATE st_g",
    "MERGE INTO st_g USING (VALUES (1)) s(k) ON st_g.k = s.k WHEN MATCHED THEN DELETE",
    "COPY st_g FROM STDIN",
])
def test_direct_writes_to_stream_table_are_refused(conn, statement, mode):
    conn.execute("CREATE TABLE g (k int, v text)")
    conn.execute("INSERT INTO g VALUES (1, 'a'), (2, NULL), (2, NULL), (-1, 'neg')")
    create_st(conn, "st_g", Q_G, refresh_mode=mode)
    before = sorted(conn.execute("SELECT k, coalesce(v, '') FROM st_g").fetchall())
    assert len(before) == 3

    with pytest.raises(psycopg.Error) as ei:
        with conn.cursor() as cur:
            if statement.startswith("COPY"):
                with cur.copy(statement) as copy:
                    copy.write_row((77, "copied"))
            else:
                cur.execute(statement)
    e = ei.value
    assert e.diag.sqlstate == "42809", f"{statement}: {e.diag.sqlstate} {e}"
    assert "stream table" in e.diag.message_primary
    assert "st_g" in e.diag.message_primary
    assert e.diag.message_hint
    assert sorted(conn.execute("SELECT k, coalesce(v, '') FROM st_g").fetchall()) == before

    # Refreshing still works (the same backend), and the guard is back afterwards.
    conn.execute("INSERT INTO g VALUES (3, 'c')")
    conn.execute("DELETE FROM g WHERE k = 1")
    assert_st_differs_from_query(conn, "st_g", Q_G)
    refresh(conn, "st_g")
    assert_st_matches_query(conn, "st_g", Q_G)
    expect_error(conn, "DELETE FROM st_g", "42809")
    # Reading is of course fine, COPY TO included.
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT k, v FROM st_g) TO STDOUT") as copy:
            assert sum(1 for _ in copy.rows()) == 3


@pytest.mark.parametrize("mode", ["FULL", "DIFFERENTIAL"])
def test_guard_inside_transaction_after_refresh(conn, mode):
    """A refresh opens the guard only while it writes: later statements of the same transaction
    are refused again."""
    conn.execute("CREATE TABLE g (k int, v text)")
    conn.execute("INSERT INTO g VALUES (1, 'a')")
    create_st(conn, "st_g", Q_G, refresh_mode=mode)
    conn.execute("INSERT INTO g VALUES (2, 'b')")
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT pgtrickle.refresh_stream_table('st_g')")
        with pytest.raises(psycopg.Error) as ei:
            cur.execute("INSERT INTO st_g VALUES (5, 'sneaky')")
        assert ei.value.diag.sqlstate == "42809"
        cur.execute("ROLLBACK")
    # Through a function, after a refresh in the same statement.
    conn.execute("CREATE FUNCTION sneak() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                 "PERFORM pgtrickle.refresh_stream_table('st_g'); INSERT INTO st_g VALUES (6, 'sneaky'); END $$")
    expect_error(conn, "SELECT sneak()", "42809")
    # Both attempts rolled back, refreshes included.
    assert_st_differs_from_query(conn, "st_g", Q_G)
    assert conn.execute("SELECT count(*) FROM st_g WHERE v = 'sneaky'").fetchone()[0] == 0
    refresh(conn, "st_g")
    assert_st_matches_query(conn, "st_g", Q_G)
