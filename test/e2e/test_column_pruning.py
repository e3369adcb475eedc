"""A delta reads a table through the columns its query references (and the key, if it has one) only: the
columns it does not read are NULL in the change window and in the live table alike, so consolidating
a window groups fewer columns, an update of unread columns cancels out, and a column without an
equality operator (json) that the query does not read no longer keeps the window from being
consolidated. Keyless tables are read through their projection too: their rows are matched (in an old
state) on the columns read, and a table none of whose columns is read is one group. Whole-row
references keep every column. Contents must stay exact through updates of read and unread columns,
key updates, deletes and inserts."""
from pgt_helpers import assert_st_matches_query, create_st, refresh

GROUPED = ("SELECT g.name, count(*) AS n, sum(i.qty) AS total FROM items i JOIN grps g ON g.id = i.grp "
           "GROUP BY g.name")
FILTERED = "SELECT i.id, i.qty FROM items i WHERE i.qty > 10"
KEYLESS = "SELECT a, count(*) AS n FROM bag GROUP BY a"
# A keyless table's old state inside a subquery (rows matched on the columns read, a and b).
KEYLESS_SUB = "SELECT i.id, i.qty FROM items i WHERE i.qty IN (SELECT a * 7 FROM bag WHERE b > 0)"
# No column of the keyless table is read.
KEYLESS_COUNT = "SELECT count(*) AS n FROM bag"
WHOLE_ROW = "SELECT i.id, i IS NOT NULL AS complete FROM items i WHERE i.grp < 3"


def delta_sql(conn, name):
    return conn.execute("SELECT value FROM pgtrickle.explain_st(%s) WHERE property = 'delta_query'",
                        (name,)).fetchone()[0]


def last_refresh(conn, name):
    return conn.execute(
        "SELECT h.action, h.rows_inserted, h.rows_deleted FROM pgtrickle.pgt_refresh_history h "
        "JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = %s "
        "ORDER BY h.refresh_id DESC LIMIT 1", (name,)).fetchone()


def test_unread_columns_stay_out_of_the_delta(db):
    c = db.conn
    c.execute("CREATE TABLE grps (id int PRIMARY KEY, name text, blob text)")
    c.execute("INSERT INTO grps SELECT i, 'g' || (i % 4), repeat('x', 50) FROM generate_series(0, 9) i")
    c.execute("CREATE TABLE items (id int PRIMARY KEY, grp int, qty int, doc json, note text)")
    c.execute("INSERT INTO items SELECT i, i % 10, i % 37, json_build_object('i', i), 'n' || i "
              "FROM generate_series(1, 3000) i")
    c.execute("CREATE TABLE bag (a int, b int, junk text)")
    c.execute("INSERT INTO bag SELECT i % 5, i % 3, 'j' || (i % 4) FROM generate_series(1, 200) i")
    c.execute("ANALYZE grps, items, bag")
    queries = {"st_grouped": GROUPED, "st_filtered": FILTERED, "st_keyless": KEYLESS, "st_whole": WHOLE_ROW,
               "st_keyless_sub": KEYLESS_SUB, "st_keyless_count": KEYLESS_COUNT}
    for name, query in queries.items():
        create_st(c, name, query, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")

    grouped = delta_sql(c, "st_grouped")
    assert "b.qty" in grouped and "b.grp" in grouped and "b.name" in grouped
    for unread in ("b.doc", "b.note", "b.blob"):
        assert unread not in grouped, unread
    for name in ("st_keyless", "st_keyless_sub", "st_keyless_count"):
        assert "b.junk" not in delta_sql(c, name), name
    assert "b.a" in delta_sql(c, "st_keyless_sub") and "b.b" in delta_sql(c, "st_keyless_sub")
    assert "b.a" not in delta_sql(c, "st_keyless_count")
    assert "b.doc" in delta_sql(c, "st_whole") and "b.note" in delta_sql(c, "st_whole")

    # Only unread columns change: the windows of the grouped and filtered tables cancel out.
    c.execute("UPDATE items SET doc = CASE WHEN id % 2 = 0 THEN NULL ELSE json_build_object('v', id) END, "
              "note = note || '!' WHERE id % 3 = 0")
    c.execute("UPDATE grps SET blob = blob || 'y'")
    c.execute("UPDATE bag SET junk = junk || 'y' WHERE a < 3")
    for name, query in queries.items():
        refresh(c, name)
        assert_st_matches_query(c, name, query)
    for name in ("st_grouped", "st_filtered", "st_keyless", "st_keyless_sub", "st_keyless_count"):
        assert last_refresh(c, name) == ("DIFFERENTIAL", 0, 0), name
    action, ins, dele = last_refresh(c, "st_whole")
    assert action == "DIFFERENTIAL" and ins > 0 and ins == dele

    # Read and unread columns together, keys moved, deletes and inserts, a group renamed.
    for seed in range(1, 6):
        c.execute("UPDATE items SET qty = qty + %s, note = 'u' || %s WHERE id %% 11 = %s", (seed, seed, seed))
        c.execute("UPDATE items SET doc = NULL, grp = (grp + %s) %% 10 WHERE id %% 13 = %s", (seed, seed))
        c.execute("UPDATE items SET id = id + 100000 WHERE id %% 97 = %s", (seed,))
        c.execute("DELETE FROM items WHERE id %% 89 = %s", (seed,))
        c.execute("INSERT INTO items SELECT 200000 + %s * 100 + i, i %% 10, i, NULL, NULL "
                  "FROM generate_series(1, 40) i", (seed,))
        c.execute("UPDATE grps SET name = 'g' || ((id + %s) %% 5), blob = NULL WHERE id = %s", (seed, seed))
        c.execute("UPDATE bag SET junk = junk || %s WHERE b = %s", (str(seed), seed % 3))
        c.execute("UPDATE bag SET a = a + 1 WHERE a = %s AND b = 0", (seed % 5,))
        c.execute("UPDATE bag SET b = b + 1 WHERE a = %s AND b < 2", ((seed + 2) % 5,))
        c.execute("DELETE FROM bag WHERE ctid IN (SELECT ctid FROM bag WHERE a = %s LIMIT 3)", (seed % 5,))
        c.execute("INSERT INTO bag SELECT %s, i %% 3, NULL FROM generate_series(1, 4) i", (seed % 6,))
        c.execute("INSERT INTO bag VALUES (NULL, 1, 'n'), (2, NULL, 'n')")
        for name, query in queries.items():
            refresh(c, name)
            assert last_refresh(c, name)[0] == "DIFFERENTIAL", name
            assert_st_matches_query(c, name, query)
