"""In a term that pairs the old state of one table with rows of another, a WHERE condition that reads
both and can raise an error is wrapped in CASE WHEN <the rows coexisted> THEN condition ELSE false END
(GuardMixedStateQuals). PostgreSQL derives from an OR of conjunctions the condition it implies on each
table alone (TPC-H Q19: the brands, containers and sizes of the three arms, for part), but not through
the CASE, so every changed part was joined with its lineitems, whatever its brand. The delta now states
each implied condition itself, unwrapped. The test checks that the delta holds them, that a change to
parts none of the arms can match reads no item row, and that contents stay exact through changes that
do match, NULLs included."""
from pgt_helpers import assert_st_matches_query, create_st, refresh

# numeric comparisons are not leakproof, so the OR is guarded where item's old state meets a changed part.
QUERY = ("SELECT sum(i.qty * i.price) AS revenue, count(*) AS n FROM item i, part p "
         "WHERE (p.id = i.part_id AND p.brand = 'B1' AND p.size BETWEEN 1 AND 5 AND i.qty BETWEEN 1 AND 10) "
         "OR (p.id = i.part_id AND p.brand = 'B2' AND p.size BETWEEN 1 AND 10 AND i.qty BETWEEN 5 AND 20)")
# The same shape grouped, with an arm that reads part only through the join key: no condition on part
# alone is implied, and the query must stay exact all the same.
GROUPED = ("SELECT p.brand, sum(i.qty) AS q FROM item i, part p "
           "WHERE (p.id = i.part_id AND p.brand = 'B1' AND i.qty < 7.5) OR (p.id = i.part_id AND i.qty > 18.5) "
           "GROUP BY p.brand")


def item_scans(conn):
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens at the end of the previous transaction
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                        "WHERE relid = 'item'::regclass").fetchone()[0]


def delta_sql(conn, name):
    return conn.execute("SELECT value FROM pgtrickle.explain_st(%s) WHERE property = 'delta_query'",
                        (name,)).fetchone()[0]


def test_or_of_conjunctions_restricts_each_table_before_the_join(db):
    c = db.conn
    c.execute("CREATE TABLE part (id int PRIMARY KEY, brand text, size int)")
    c.execute("INSERT INTO part SELECT i, 'B' || (i % 5), i % 12 FROM generate_series(1, 2000) i")
    c.execute("CREATE TABLE item (id int PRIMARY KEY, part_id int, qty numeric, price numeric)")
    c.execute("INSERT INTO item SELECT i, i % 2000 + 1, i % 25, i % 13 + 1 FROM generate_series(1, 40000) i")
    c.execute("CREATE INDEX ON item (part_id)")
    c.execute("VACUUM ANALYZE part, item")
    create_st(c, "st_q19", QUERY, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    create_st(c, "st_grouped", GROUPED, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")

    sql = delta_sql(c, "st_q19")
    # (p.size >= 1, common to both arms, is a conjunct of its own already.)
    assert "(((p.brand = 'B1'::text) AND (p.size <= 5)) OR ((p.brand = 'B2'::text) AND (p.size <= 10)))" in sql, sql
    assert ("(((i.qty >= (1)::numeric) AND (i.qty <= (10)::numeric)) OR ((i.qty >= (5)::numeric) AND "
            "(i.qty <= (20)::numeric)))") in sql, sql

    # Parts of brands no arm names: the changed parts are filtered before they reach item.
    for step in range(3):
        c.execute("UPDATE part SET size = size + 1 WHERE brand IN ('B3', 'B4') AND id %% 7 = %s", (step,))
        before = item_scans(c)
        refresh(c, "st_q19")
        assert item_scans(c) == before, "changed parts that match no arm were joined with item"
        assert_st_matches_query(c, "st_q19", QUERY)
        refresh(c, "st_grouped")
        assert_st_matches_query(c, "st_grouped", GROUPED)

    for seed in range(1, 6):
        # Parts moved into and out of the arms' brands and sizes, items across the quantity ranges,
        # NULL brands and quantities, rows deleted and inserted on both sides.
        c.execute("UPDATE part SET brand = CASE WHEN id %% 3 = 0 THEN NULL ELSE 'B' || ((id + %s) %% 5) END "
                  "WHERE id %% 37 = %s", (seed, seed))
        c.execute("UPDATE part SET size = (size + %s) %% 12 WHERE id %% 41 = %s", (seed, seed))
        c.execute("UPDATE item SET qty = CASE WHEN id %% 11 = 0 THEN NULL ELSE qty + 4 END WHERE id %% 97 = %s",
                  (seed,))
        c.execute("DELETE FROM item WHERE id %% 89 = %s", (seed,))
        c.execute("INSERT INTO item SELECT 100000 + %s * 1000 + i, i %% 300 + 1, i %% 22, 2 FROM generate_series(1, 300) i",
                  (seed,))
        c.execute("DELETE FROM part WHERE id = 1900 + %s", (seed,))
        c.execute("INSERT INTO part VALUES (3000 + %s, 'B1', 3), (3100 + %s, 'B2', 7)", (seed, seed))
        c.execute("INSERT INTO item VALUES (200000 + %s, 3000 + %s, 4, 1), (200100 + %s, 3100 + %s, 9, 1)",
                  (seed, seed, seed, seed))
        for name, query in (("st_q19", QUERY), ("st_grouped", GROUPED)):
            refresh(c, name)
            assert_st_matches_query(c, name, query)
