"""A view, or a subquery that filters, projects or groups tables, on the NULL-padded side of an outer
join (`c LEFT JOIN (SELECT … FROM ord WHERE …) o ON …`, `c LEFT JOIN some_view v ON …`) is maintained
differentially. The inner arm joins the subquery as any subquery in FROM; the anti-join arm's
`NOT EXISTS` reads the subquery's tables directly, with its WHERE and the ON condition over its
expressions. For a grouped subquery the ON condition may read its group keys only. Contents must stay
exact through inserts, updates and deletes on both sides, rows moving in and out of the subquery's
filter, and NULLs; the constructs still refused give their reason. LATERAL subqueries too, and with
LIMIT k (k > 0) when the ON condition reads none of their columns (`LEFT JOIN LATERAL (… ORDER BY …
LIMIT 1) o ON true`: the row is padded iff the unlimited subquery is empty)."""
import pytest

from pgt_helpers import assert_st_matches_query, create_st, expect_error, refresh

QUERIES = {
    "st_filtered": "SELECT c.id, c.name, o.amt, o.status FROM cu c LEFT JOIN (SELECT cust_id, amt, status FROM ord "
                   "WHERE status = 'x') o ON o.cust_id = c.id",
    "st_grouped": "SELECT c.id, coalesce(o.n, 0) AS n, o.total FROM cu c LEFT JOIN (SELECT cust_id, count(*) AS n, "
                  "sum(amt) AS total FROM ord GROUP BY cust_id) o ON o.cust_id = c.id",
    # A view with a non-strict output column read by the ON condition and by the select list.
    "st_view": "SELECT c.id, v.amt2, v.st FROM cu c LEFT JOIN vx v ON v.cust_id = c.id AND v.st <> 'y'",
    "st_right": "SELECT c.id, v.amt2 FROM vx v RIGHT JOIN cu c ON v.cust_id = c.id AND v.amt2 > 40",
    "st_full": "SELECT c.id, v.id AS oid, v.st FROM cu c FULL JOIN vx v ON v.cust_id = c.id",
    # LATERAL: references to the kept side stay outer references of the NOT EXISTS body.
    "st_lateral": "SELECT c.id, o.amt FROM cu c LEFT JOIN LATERAL (SELECT amt FROM ord WHERE ord.cust_id = c.id "
                  "AND ord.amt > c.id / 20) o ON o.amt < 45 AND c.name IS NOT NULL",
    # The top order of each customer: LIMIT 1 keeps a row iff there is one (ON true).
    "st_lateral_top": "SELECT c.id, o.amt, o.id AS oid FROM cu c LEFT JOIN LATERAL (SELECT id, amt FROM ord "
                      "WHERE ord.cust_id = c.id ORDER BY amt DESC, id LIMIT 1) o ON true",
    # Aggregated on top: the NULL-padded rows count as zero orders.
    "st_counts": "SELECT coalesce(o.n, 0) AS orders, count(*) AS customers FROM cu c LEFT JOIN (SELECT cust_id, "
                 "count(*) AS n FROM ord WHERE amt > 5 GROUP BY cust_id) o ON o.cust_id = c.id GROUP BY 1",
}


def setup_tables(c):
    c.execute("CREATE TABLE cu (id int PRIMARY KEY, name text)")
    c.execute("INSERT INTO cu SELECT i, 'c' || i FROM generate_series(1, 400) i")
    c.execute("CREATE TABLE ord (id int PRIMARY KEY, cust_id int, amt numeric, status text)")
    c.execute("INSERT INTO ord SELECT i, i % 300 + 1, i % 50, CASE WHEN i % 3 = 0 THEN 'x' WHEN i % 3 = 1 THEN 'y' END "
              "FROM generate_series(1, 3000) i")
    c.execute("CREATE VIEW vx AS SELECT id, cust_id, amt * 2 AS amt2, coalesce(status, '?') AS st FROM ord "
              "WHERE amt > 10")
    c.execute("CREATE VIEW vsb WITH (security_barrier) AS SELECT id, cust_id, amt * 2 AS amt2 FROM ord "
              "WHERE status = 'x'")
    c.execute("ANALYZE cu, ord")


def last_action(c, name):
    return c.execute("SELECT h.action FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s "
                     "USING (pgt_id) WHERE s.pgt_name = %s ORDER BY h.refresh_id DESC LIMIT 1", (name,)).fetchone()[0]


def test_subqueries_and_views_on_the_padded_side_stay_exact(db):
    c = db.conn
    setup_tables(c)
    for name, query in QUERIES.items():
        create_st(c, name, query, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
        assert_st_matches_query(c, name, query)
    c.execute("SET pg_trickle.differential_max_change_ratio = 0")
    c.execute("SET pg_trickle.adaptive_refresh = off")
    for seed in range(1, 7):
        # Orders moving in and out of the filter and between customers, NULL statuses and customers,
        # customers losing their last order and gaining a first one, customers deleted and added.
        c.execute("UPDATE ord SET status = CASE WHEN status = 'x' THEN NULL ELSE 'x' END WHERE id %% 41 = %s", (seed,))
        c.execute("UPDATE ord SET amt = amt + 7 WHERE id %% 37 = %s", (seed,))
        c.execute("UPDATE ord SET cust_id = CASE WHEN id %% 2 = 0 THEN NULL ELSE 350 + %s END WHERE id %% 53 = %s",
                  (seed, seed))
        c.execute("DELETE FROM ord WHERE cust_id = %s", (seed * 13,))
        c.execute("INSERT INTO ord SELECT 10000 + %s * 100 + i, 380 + i %% 10, i * 3, 'x' FROM generate_series(1, 12) i",
                  (seed,))
        c.execute("DELETE FROM cu WHERE id %% 97 = %s", (seed,))
        c.execute("INSERT INTO cu VALUES (1000 + %s, NULL), (500 + %s, 'new')", (seed, seed))
        for name, query in QUERIES.items():
            refresh(c, name)
            assert last_action(c, name) == "DIFFERENTIAL", name
            assert_st_matches_query(c, name, query)


@pytest.mark.parametrize("query,reason", [
    ("SELECT c.id, o.amt FROM cu c LEFT JOIN LATERAL (SELECT amt FROM ord WHERE ord.cust_id = c.id ORDER BY amt DESC "
     "LIMIT 2) o ON o.amt > 3", "reads a column of the LIMIT subquery"),
    ("SELECT c.id, o.amt FROM cu c LEFT JOIN LATERAL (SELECT amt FROM ord WHERE ord.cust_id = c.id ORDER BY amt DESC "
     "LIMIT 1 OFFSET 1) o ON true", "OFFSET"),
    ("SELECT c.id, o.amt FROM cu c LEFT JOIN LATERAL (SELECT amt FROM ord WHERE ord.cust_id = c.id ORDER BY amt DESC "
     "LIMIT 0) o ON true", "positive constant LIMIT"),
    ("SELECT c.id, o.total FROM cu c LEFT JOIN (SELECT cust_id, sum(amt) AS total FROM ord GROUP BY cust_id) o "
     "ON o.total > c.id", "only its columns, and of a grouped subquery its group keys"),
    ("SELECT c.id, o.n FROM cu c LEFT JOIN (SELECT cust_id, count(*) AS n FROM ord GROUP BY cust_id "
     "HAVING count(*) > 2) o ON o.cust_id = c.id", "HAVING"),
    ("SELECT c.id, o.amt FROM cu c LEFT JOIN (SELECT DISTINCT cust_id, amt FROM ord) o ON o.cust_id = c.id",
     "DISTINCT"),
    ("SELECT c.id, o.amt FROM cu c LEFT JOIN (cu c2 JOIN (SELECT cust_id, amt FROM ord) o ON o.cust_id = c2.id) "
     "ON c2.id = c.id", "nested in a join on the NULL-padded side"),
    ("SELECT c.id, v.amt2 FROM cu c LEFT JOIN vsb v ON v.cust_id = c.id", "security_barrier view"),
])
def test_refused_constructs_give_their_reason(db, query, reason):
    c = db.conn
    setup_tables(c)
    expect_error(c, "SELECT pgtrickle.create_stream_table(name => 'st_no', query => %s, schedule => '1h', "
                    "refresh_mode => 'DIFFERENTIAL')", "0A000", params=(query,))
    create_st(c, "st_auto", query, refresh_mode="AUTO", cdc_mode="trigger")
    mode, why = c.execute("SELECT refresh_mode, refresh_mode_reason FROM pgtrickle.pgt_stream_tables "
                          "WHERE pgt_name = 'st_auto'").fetchone()
    assert mode == "FULL"
    assert reason in why, why
    assert_st_matches_query(c, "st_auto", query)
