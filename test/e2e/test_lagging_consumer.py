"""A change buffer keeps the rows a slower consumer has not consumed yet (a stream table on a longer
schedule), so a refresh's window can be a small part of its buffer. Buffers have no column
statistics, and PostgreSQL estimated the window predicate at about a fifth of the buffer's rows:
for a one-row window in a 20,000-row buffer, thousands of rows, and the delta joined the other
table whole, by hash. The small-window delta states the window's xid bounds as two conditions of
their own, which PostgreSQL estimates as 0.5 % of the rows, and reaches the other table by index.
The census of the window (a count) states the bounds too. The test checks that the refresh after a
one-row change reads neither the large table nor the buffer with a sequential scan, and that
contents stay exact (the bounds hold for every row of the window)."""
from pgt_helpers import assert_st_matches_query, buffer_name, create_st, refresh

QUERY = ("SELECT d.region, count(*) AS n, sum(f.amount) AS total FROM facts f JOIN dims d ON d.id = f.dim_id "
         "GROUP BY d.region")


def seq_scans(conn, table):
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens at the end of the previous transaction
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relid = %s::regclass", (table,)).fetchone()[0]


def buffer_of(conn, table):
    return "pgtrickle_changes." + buffer_name(conn, table)


def test_small_window_in_a_large_buffer_reaches_the_other_table_by_index(db):
    c = db.conn
    c.execute("CREATE TABLE dims (id int PRIMARY KEY, region text)")
    c.execute("INSERT INTO dims SELECT i, 'r' || (i % 7) FROM generate_series(1, 1000) i")
    c.execute("CREATE TABLE facts (id int PRIMARY KEY, dim_id int, amount int)")
    c.execute("INSERT INTO facts SELECT i, i % 1000 + 1, i % 97 FROM generate_series(1, 200000) i")
    c.execute("CREATE INDEX ON facts (dim_id)")
    c.execute("VACUUM ANALYZE dims, facts")
    create_st(c, "st_join", QUERY, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    # The slower consumer: never refreshed here, so the buffers keep every row below.
    create_st(c, "st_lag", "SELECT count(*) AS n FROM dims", refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    for k in range(20):
        c.execute("UPDATE dims SET region = 'r' || ((id + %s) %% 7)", (k,))
    refresh(c, "st_join")
    assert_st_matches_query(c, "st_join", QUERY)

    for step in range(3):
        c.execute("UPDATE dims SET region = region || 'x' WHERE id = %s", (step * 100 + 5,))
        before = seq_scans(c, "facts")
        before_buffer = seq_scans(c, buffer_of(c, "dims"))
        refresh(c, "st_join")
        assert seq_scans(c, "facts") == before, "the delta of a one-row window read facts sequentially"
        # Nor the buffer itself: the census and the delta read its window by index.
        assert seq_scans(c, buffer_of(c, "dims")) == before_buffer, "the refresh read the 20,000-row buffer sequentially"
        assert_st_matches_query(c, "st_join", QUERY)
    # Fact rows too, and a dimension row deleted with its facts moved.
    c.execute("UPDATE facts SET amount = amount + 1 WHERE id % 50000 = 7")
    c.execute("UPDATE facts SET dim_id = 6 WHERE dim_id = 5")
    c.execute("DELETE FROM dims WHERE id = 5")
    refresh(c, "st_join")
    assert_st_matches_query(c, "st_join", QUERY)
