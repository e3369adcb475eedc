"""An aggregating subquery in FROM is maintained by recomputing the keys its input's changes touched,
over the new state and over the old one. In the old state, the touched keys are also carried across
the join conditions that equate a key with another table's column ("o.cid = ANY (touched keys)"), so
that table is read by index instead of whole; only where that cannot change the rows of a touched key:
the WHERE, inner joins, and the nullable side of an outer join whose preserved side holds the key,
never inside the nullable side of an outer join (a row losing its partners there would join the NULL
key's group). Contents must stay exact, including the NULL key's group, through every kind of change."""
import re

from pgt_helpers import assert_st_matches_query, create_st, refresh

QUERIES = {
    # TPC-H Q13's shape: the key on the preserved side, carried to the nullable side.
    "st_left": "SELECT n, count(*) AS k FROM (SELECT c.id, count(o.id) AS n FROM c LEFT JOIN o "
               "ON c.id = o.cid AND o.amt > 0 GROUP BY c.id) s GROUP BY n",
    # An inner join written in the WHERE.
    "st_inner": "SELECT t, count(*) AS k FROM (SELECT c.id, sum(o.amt) AS t FROM c, o WHERE c.id = o.cid "
                "GROUP BY c.id) s GROUP BY t",
    # The key on the nullable side (its NULL group holds the customers without orders): not carried.
    "st_nullable_key": "SELECT n, count(*) AS k FROM (SELECT o.cid, count(*) AS n FROM c LEFT JOIN o "
                       "ON c.id = o.cid GROUP BY o.cid) s GROUP BY n",
    # An inner join inside the nullable side of an outer join: not carried.
    "st_nested": "SELECT n, count(*) AS k FROM (SELECT b.x, count(*) AS n FROM a LEFT JOIN (b JOIN c "
                 "ON b.x = c.id) ON a.id = b.aid GROUP BY b.x) s GROUP BY n",
}


def delta_sql(conn, name):
    return conn.execute("SELECT value FROM pgtrickle.explain_st(%s) WHERE property = 'delta_query'",
                        (name,)).fetchone()[0]


def carried(sql):
    """The columns a touched-keys filter was carried to ("col = ANY (ARRAY(SELECT t.__pgt_gk_j ...))"),
    the subquery's own key columns aside."""
    return {col for col in re.findall(r"\b(\w+) = ANY \(ARRAY\( SELECT t\.__pgt_gk_\d+", sql)
            if not col.startswith("__pgt_gk_")}


def last_action(conn, name):
    return conn.execute(
        "SELECT h.action FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) "
        "WHERE s.pgt_name = %s ORDER BY h.refresh_id DESC LIMIT 1", (name,)).fetchone()[0]


def test_touched_keys_carried_across_join_conditions(db):
    c = db.conn
    c.execute("CREATE TABLE c (id int PRIMARY KEY, seg int)")
    c.execute("INSERT INTO c SELECT i, i % 4 FROM generate_series(1, 400) i")
    c.execute("CREATE TABLE o (id int PRIMARY KEY, cid int, amt int)")
    c.execute("CREATE INDEX ON o (cid)")
    c.execute("INSERT INTO o SELECT i, CASE WHEN i % 50 = 0 THEN NULL ELSE i % 300 + 1 END, i % 7 - 1 "
              "FROM generate_series(1, 4000) i")
    c.execute("CREATE TABLE a (id int PRIMARY KEY)")
    c.execute("INSERT INTO a SELECT i FROM generate_series(1, 300) i")
    c.execute("CREATE TABLE b (id int PRIMARY KEY, aid int, x int)")
    c.execute("INSERT INTO b SELECT i, i % 250 + 1, CASE WHEN i % 40 = 0 THEN NULL ELSE i % 450 + 1 END "
              "FROM generate_series(1, 600) i")
    c.execute("ANALYZE c, o, a, b")
    for name, query in QUERIES.items():
        create_st(c, name, query, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")

    assert carried(delta_sql(c, "st_left")) == {"cid"}
    assert carried(delta_sql(c, "st_inner")) == {"cid"}
    assert carried(delta_sql(c, "st_nullable_key")) == set()
    assert carried(delta_sql(c, "st_nested")) == set()

    for seed in range(1, 7):
        # New customers without orders (the NULL group of st_nullable_key), orders moved between
        # customers and to no customer, amounts changed across the ON condition, deletes.
        c.execute("INSERT INTO c SELECT 1000 + %s * 10 + i, i FROM generate_series(1, 3) i", (seed,))
        c.execute("UPDATE o SET cid = CASE WHEN id %% 3 = 0 THEN NULL ELSE (cid + %s) %% 400 + 1 END "
                  "WHERE id %% 97 = %s", (seed, seed))
        c.execute("UPDATE o SET amt = -amt WHERE id %% 89 = %s", (seed,))
        c.execute("DELETE FROM o WHERE id %% 101 = %s", (seed,))
        c.execute("INSERT INTO o SELECT 10000 + %s * 100 + i, CASE WHEN i %% 5 = 0 THEN NULL ELSE i * 7 %% 410 END, i "
                  "FROM generate_series(1, 30) i", (seed,))
        c.execute("DELETE FROM c WHERE id %% 83 = %s", (seed,))
        c.execute("UPDATE c SET id = id + 5000 WHERE id %% 79 = %s", (seed,))
        # st_nested: dimension rows deleted (their a rows lose every partner), x moved and set NULL.
        c.execute("DELETE FROM c WHERE id IN (SELECT x FROM b WHERE id %% 61 = %s)", (seed,))
        c.execute("UPDATE b SET x = CASE WHEN id %% 2 = 0 THEN NULL ELSE x + 1 END WHERE id %% 53 = %s", (seed,))
        c.execute("UPDATE b SET aid = aid %% 300 + 1 WHERE id %% 47 = %s", (seed,))
        c.execute("DELETE FROM a WHERE id %% 71 = %s", (seed,))
        for name, query in QUERIES.items():
            refresh(c, name)
            assert last_action(c, name) == "DIFFERENTIAL", name
            assert_st_matches_query(c, name, query)
