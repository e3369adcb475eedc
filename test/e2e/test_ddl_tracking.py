"""DDL on sources: added columns are absorbed (capture goes on, later readers can use them); dropped,
renamed or retyped columns reinitialise the readers (FULL refresh); dropping a source a stream table
reads is refused; a partition attached later is captured."""
import psycopg
import pytest

from pgt_helpers import assert_st_matches_query, create_st, refresh


def reinit(conn, st):
    return conn.execute("SELECT needs_reinit FROM pgtrickle.pgt_stream_tables WHERE pgt_name = %s", (st,)).fetchone()[0]


def last_action(conn, st):
    return conn.execute("SELECT action FROM pgtrickle.get_refresh_history(%s, 1)", (st,)).fetchone()[0]


def test_add_column_is_absorbed_and_usable(conn):
    conn.execute("CREATE TABLE s (id int PRIMARY KEY, a int)")
    conn.execute("INSERT INTO s SELECT i, i FROM generate_series(1, 20) i")
    q1 = "SELECT id, a FROM s WHERE a > 5"
    create_st(conn, "first", q1, refresh_mode="DIFFERENTIAL")
    conn.execute("ALTER TABLE s ADD COLUMN c int DEFAULT 7")
    assert not reinit(conn, "first")
    conn.execute("INSERT INTO s VALUES (100, 100, 1)")
    refresh(conn, "first")
    assert last_action(conn, "first") == "DIFFERENTIAL"
    assert_st_matches_query(conn, "first", q1)
    q2 = "SELECT id, c FROM s WHERE c IS NOT NULL"
    create_st(conn, "second", q2, refresh_mode="DIFFERENTIAL")
    conn.execute("UPDATE s SET c = 9 WHERE id <= 3")
    refresh(conn, "second")
    assert last_action(conn, "second") == "DIFFERENTIAL"
    assert_st_matches_query(conn, "second", q2)


def test_retyped_column_reinitialises_readers(conn):
    conn.execute("CREATE TABLE s (id int PRIMARY KEY, a int, b text)")
    conn.execute("INSERT INTO s SELECT i, i, 'x' || i FROM generate_series(1, 20) i")
    q = "SELECT id, a FROM s WHERE a % 2 = 0"
    create_st(conn, "evens", q, refresh_mode="DIFFERENTIAL")
    conn.execute("ALTER TABLE s ALTER COLUMN b TYPE varchar(50)")
    assert reinit(conn, "evens")
    conn.execute("UPDATE s SET a = a + 1 WHERE id < 5")  # writes keep working
    refresh(conn, "evens")
    assert last_action(conn, "evens") == "REINITIALIZE"
    assert_st_matches_query(conn, "evens", q)
    conn.execute("DELETE FROM s WHERE id > 15")
    refresh(conn, "evens")
    assert last_action(conn, "evens") == "DIFFERENTIAL"
    assert_st_matches_query(conn, "evens", q)


def test_renamed_column_used_by_query_fails_clearly(conn):
    conn.execute("CREATE TABLE s (id int PRIMARY KEY, a int)")
    conn.execute("INSERT INTO s VALUES (1, 1)")
    create_st(conn, "uses_a", "SELECT id, a FROM s", refresh_mode="DIFFERENTIAL")
    conn.execute("ALTER TABLE s RENAME COLUMN a TO aa")
    conn.execute("INSERT INTO s VALUES (2, 2)")  # the user's write is not blocked
    assert reinit(conn, "uses_a")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        refresh(conn, "uses_a")
    conn.execute("SELECT pgtrickle.alter_stream_table('uses_a', query => 'SELECT id, aa AS a FROM s')")
    assert_st_matches_query(conn, "uses_a", "SELECT id, aa AS a FROM s")


def test_drop_source_refused(conn):
    conn.execute("CREATE TABLE s (id int PRIMARY KEY)")
    create_st(conn, "reader", "SELECT id FROM s")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        conn.execute("DROP TABLE s")
    conn.execute("SELECT pgtrickle.drop_stream_table('reader')")
    conn.execute("DROP TABLE s")


def test_partition_attached_later_is_captured(conn):
    conn.execute("CREATE TABLE p (id int, k int) PARTITION BY LIST (k)")
    conn.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)")
    q = "SELECT k, count(*) AS n FROM p GROUP BY k"
    create_st(conn, "per_k", q, refresh_mode="DIFFERENTIAL")
    conn.execute("CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2)")
    conn.execute("CREATE TABLE p3 (id int, k int)")
    conn.execute("ALTER TABLE p ATTACH PARTITION p3 FOR VALUES IN (3)")
    conn.execute("INSERT INTO p2 VALUES (1, 2), (2, 2)")  # written directly to the new partitions
    conn.execute("INSERT INTO p3 VALUES (3, 3)")
    conn.execute("INSERT INTO p VALUES (4, 1)")
    refresh(conn, "per_k")
    assert last_action(conn, "per_k") == "DIFFERENTIAL"
    assert_st_matches_query(conn, "per_k", q)


def test_source_with_dropped_column_is_differential(conn):
    conn.execute("CREATE TABLE s (id int PRIMARY KEY, gone int, a int)")
    conn.execute("INSERT INTO s SELECT i, i, i FROM generate_series(1, 20) i")
    conn.execute("ALTER TABLE s DROP COLUMN gone")
    conn.execute("CREATE TABLE d (id int PRIMARY KEY, label text)")
    conn.execute("INSERT INTO d SELECT i, 'l' || i FROM generate_series(1, 20) i")
    q = "SELECT s.id, s.a, d.label FROM s JOIN d ON d.id = s.id WHERE s.a > 3"
    create_st(conn, "joined", q, refresh_mode="DIFFERENTIAL")
    conn.execute("UPDATE s SET a = a + 1 WHERE id < 8")
    conn.execute("ALTER TABLE d DROP COLUMN label")
    conn.execute("ALTER TABLE d ADD COLUMN label text DEFAULT 'x'")
    conn.execute("SELECT pgtrickle.alter_stream_table('joined', query => %s)", (q,))
    conn.execute("UPDATE d SET label = 'y' WHERE id = 5")
    conn.execute("DELETE FROM s WHERE id = 9")
    refresh(conn, "joined")
    assert last_action(conn, "joined") == "DIFFERENTIAL"
    assert_st_matches_query(conn, "joined", q)


def test_detached_partition_does_not_block_writes(conn):
    conn.execute("CREATE TABLE p (id int, k int) PARTITION BY LIST (k)")
    conn.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)")
    conn.execute("CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2)")
    conn.execute("INSERT INTO p VALUES (1, 1), (2, 2), (3, 2)")
    q = "SELECT k, count(*) AS n FROM p GROUP BY k"
    create_st(conn, "per_k", q, refresh_mode="DIFFERENTIAL")
    conn.execute("ALTER TABLE p DETACH PARTITION p2")
    assert reinit(conn, "per_k")
    conn.execute("INSERT INTO p2 VALUES (4, 2)")  # no longer a source: nothing to capture, no error
    refresh(conn, "per_k")
    assert_st_matches_query(conn, "per_k", q)
    conn.execute("CREATE TABLE p3 (id int, k int)")
    conn.execute("INSERT INTO p3 VALUES (5, 3)")
    conn.execute("ALTER TABLE p ATTACH PARTITION p3 FOR VALUES IN (3)")  # arrives with a row
    assert reinit(conn, "per_k")
    refresh(conn, "per_k")
    assert_st_matches_query(conn, "per_k", q)


def test_replaced_view_redefines_readers(conn):
    conn.execute("CREATE TABLE s (id int PRIMARY KEY, a int)")
    conn.execute("CREATE TABLE u (id int PRIMARY KEY, b int)")
    conn.execute("INSERT INTO s SELECT i, i FROM generate_series(1, 10) i")
    conn.execute("INSERT INTO u SELECT i, i * 100 FROM generate_series(1, 10) i")
    conn.execute("CREATE VIEW v AS SELECT id, a AS x FROM s WHERE a > 2")
    q = "SELECT id, x FROM v"
    create_st(conn, "over_view", q, refresh_mode="DIFFERENTIAL")
    # The view now reads another table: its changes must be captured from then on.
    conn.execute("CREATE OR REPLACE VIEW v AS SELECT id, b AS x FROM u WHERE b > 200")
    assert_st_matches_query(conn, "over_view", q)  # recomputed at once
    conn.execute("UPDATE u SET b = 5000 WHERE id = 1")
    conn.execute("DELETE FROM u WHERE id = 10")
    refresh(conn, "over_view")
    assert last_action(conn, "over_view") == "DIFFERENTIAL"
    assert_st_matches_query(conn, "over_view", q)


def test_replaced_function_redefines_readers(conn):
    conn.execute("CREATE TABLE s (id int PRIMARY KEY, a int)")
    conn.execute("INSERT INTO s SELECT i, i FROM generate_series(1, 10) i")
    conn.execute("CREATE FUNCTION scale(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2'")
    q = "SELECT id, scale(a) AS y FROM s"
    create_st(conn, "scaled", q, refresh_mode="DIFFERENTIAL")
    conn.execute("CREATE OR REPLACE FUNCTION scale(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 3'")
    assert_st_matches_query(conn, "scaled", q)
