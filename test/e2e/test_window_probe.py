"""Whether a change buffer holds a row of a refresh's window is asked by reading the buffer's xid
index backwards from its newest row, bounded below by the window's least xid: the window's rows are
the newest. A buffer also keeps the older rows a slower consumer has not consumed yet; read
sequentially (the planner's choice for "the first matching row"), the question read all of them
first (35 ms for 475,000 rows). The test keeps 60,000 rows for a stream table that is never
refreshed and checks that a refresh of another stream table, whose delta is such a question (a top-k
over groups is recomputed when a table it reads changed), reads the buffer without a sequential scan,
while its contents stay exact."""
from psycopg import sql

from pgt_helpers import assert_st_matches_query, buffer_name, create_st, refresh

TOP = "SELECT DISTINCT g FROM src ORDER BY g LIMIT 3"


def buffer_scans(conn, table):
    """(sequential scans, index scans) of the buffer so far, this backend's pending counts flushed."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # a new transaction: the flush happens at the end of the previous one
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE schemaname = 'pgtrickle_changes' "
                        "AND relname = %s", (table,)).fetchone()


def test_window_probe_reads_the_newest_rows_by_index(db):
    c = db.conn
    c.execute("CREATE TABLE src (id int PRIMARY KEY, g int, v int)")
    c.execute("INSERT INTO src SELECT i, i % 10, i FROM generate_series(1, 100) i")
    create_st(c, "st_lag", "SELECT id, v FROM src", refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    create_st(c, "st_top", TOP, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    table = buffer_name(c, "src")
    # 60,000 buffered rows st_lag keeps; st_top consumes them.
    c.execute("INSERT INTO src SELECT i, i % 10, i FROM generate_series(101, 60100) i")
    refresh(c, "st_top")
    assert_st_matches_query(c, "st_top", TOP)
    c.execute(sql.SQL("ANALYZE pgtrickle_changes.{}").format(sql.Identifier(table)))

    for step in range(3):
        c.execute("UPDATE src SET g = 3 WHERE id %% 500 = %s", (step,))
        before = buffer_scans(c, table)
        refresh(c, "st_top")
        after = buffer_scans(c, table)
        assert after[0] == before[0], f"the refresh scanned the buffer sequentially ({before} -> {after})"
        assert after[1] > before[1]
        assert_st_matches_query(c, "st_top", TOP)
    # Nothing changed: the question's answer is no, still without a sequential scan.
    before = buffer_scans(c, table)
    refresh(c, "st_top")
    assert buffer_scans(c, table)[0] == before[0]
    assert_st_matches_query(c, "st_top", TOP)
    assert c.execute(sql.SQL("SELECT count(*) FROM pgtrickle_changes.{}").format(sql.Identifier(table))).fetchone()[0] >= 60000
