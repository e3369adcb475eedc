"""The delta statement's plan is made once per session and stream table (pg_trickle.generic_delta_plans,
on by default) and reused for windows of every size below the large-window threshold; turning the
setting off or on again in the session makes a new plan. Contents must stay exact either way, for
windows of a few rows and of hundreds, and through deletes, updates and inserts on both sides of a
join."""
import pytest

from pgt_helpers import assert_st_matches_query, create_st, refresh

QUERY = ("SELECT d.region, count(*) AS n, sum(f.amount) AS total FROM facts f JOIN dims d ON d.id = f.dim_id "
         "WHERE f.amount > 0 GROUP BY d.region")


def last_action(conn, name):
    return conn.execute(
        "SELECT h.action FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) "
        "WHERE s.pgt_name = %s ORDER BY h.refresh_id DESC LIMIT 1", (name,)).fetchone()[0]


def cycle(conn, n, seed):
    """About n changed fact rows and a few changed dimension rows."""
    conn.execute("UPDATE facts SET amount = amount + 1 WHERE id %% 997 < %s AND id %% 7 = %s", (n, seed % 7))
    conn.execute("DELETE FROM facts WHERE id IN (SELECT id FROM facts WHERE id %% 1009 = %s LIMIT %s)", (seed, n // 4 + 1))
    conn.execute("INSERT INTO facts SELECT 100000 + %s * 1000 + i, i %% 50, i - 3 FROM generate_series(1, %s) i",
                 (seed, n // 2 + 1))
    conn.execute("UPDATE dims SET region = 'r' || ((id + %s) %% 6) WHERE id %% 17 = %s", (seed, seed % 17))


@pytest.mark.parametrize("setting_sequence", [["on"] * 6, ["on", "off", "on", "off", "on", "on"]])
def test_reused_delta_plan_stays_exact(db, setting_sequence):
    c = db.conn
    c.execute("CREATE TABLE dims (id int PRIMARY KEY, region text)")
    c.execute("INSERT INTO dims SELECT i, 'r' || (i % 5) FROM generate_series(0, 49) i")
    c.execute("CREATE TABLE facts (id int PRIMARY KEY, dim_id int, amount int)")
    c.execute("INSERT INTO facts SELECT i, i % 50, i % 113 - 5 FROM generate_series(1, 20000) i")
    c.execute("ANALYZE dims, facts")
    create_st(c, "by_region", QUERY, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    # Windows of very different sizes through the same plan: 1 row, hundreds, back to a few.
    for seed, (setting, n) in enumerate(zip(setting_sequence, [1, 400, 3, 250, 1, 60]), start=1):
        c.execute(f"SET pg_trickle.generic_delta_plans = {setting}")
        cycle(c, n, seed)
        refresh(c, "by_region")
        assert last_action(c, "by_region") == "DIFFERENTIAL"
        assert_st_matches_query(c, "by_region", QUERY)


def test_setting_is_listed(db):
    assert db.conn.execute("SHOW pg_trickle.generic_delta_plans").fetchone()[0] == "on"


JOIN3 = ("SELECT c.name, d.region, count(*) AS n, sum(f.amount) AS total FROM facts f JOIN dims d ON d.id = f.dim_id "
         "JOIN cats c ON c.id = d.cat_id GROUP BY c.name, d.region")


def test_large_variant_shares_windows_and_pairs_deleted_rows(db):
    """The large-window delta consolidates each source's window once (a MATERIALIZED CTE per source)
    and splits its old-state terms into kept-only terms plus terms driven by the deleted rows of two
    inputs. Those pair terms are the only ones that see a deleted dimension row together with its
    deleted fact rows: deleting both in one window (and updating the third table) must come out exact."""
    c = db.conn
    c.execute("CREATE TABLE cats (id int PRIMARY KEY, name text)")
    c.execute("INSERT INTO cats SELECT i, 'c' || (i % 3) FROM generate_series(0, 9) i")
    c.execute("CREATE TABLE dims (id int PRIMARY KEY, region text, cat_id int)")
    c.execute("INSERT INTO dims SELECT i, 'r' || (i % 5), i % 10 FROM generate_series(0, 49) i")
    c.execute("CREATE TABLE facts (id int PRIMARY KEY, dim_id int, amount int)")
    c.execute("INSERT INTO facts SELECT i, i % 50, i % 113 - 5 FROM generate_series(1, 5000) i")
    c.execute("ANALYZE cats, dims, facts")
    create_st(c, "by_cat", JOIN3, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")
    c.execute("SET pg_trickle.delta_variant = 'large'")
    large = c.execute("SELECT value FROM pgtrickle.explain_st('by_cat') "
                      "WHERE property = 'delta_query_large_window'").fetchone()[0]
    for table in ("cats", "dims", "facts"):
        oid = c.execute("SELECT %s::regclass::oid", (table,)).fetchone()[0]
        assert large.count(f'"__pgt_shared_window_{oid}" AS MATERIALIZED') == 1, table
        assert f"'__pgt_window_{oid}'" in large, table
    for seed in range(1, 5):
        # A dimension row and all its facts deleted, another dimension moved to a new category, its
        # category renamed, facts of a third dimension updated, and new facts of a new dimension.
        c.execute("DELETE FROM facts WHERE dim_id = %s", (seed,))
        c.execute("DELETE FROM dims WHERE id = %s", (seed,))
        c.execute("UPDATE dims SET cat_id = (cat_id + 1) %% 10 WHERE id = %s", (10 + seed,))
        c.execute("UPDATE cats SET name = name || 'x' WHERE id = %s", ((10 + seed) % 10,))
        c.execute("UPDATE facts SET amount = amount + 7 WHERE dim_id = %s", (20 + seed,))
        c.execute("INSERT INTO dims VALUES (%s, 'new', %s)", (100 + seed, seed))
        c.execute("INSERT INTO facts SELECT 10000 * %s + i, %s, i FROM generate_series(1, 30) i", (seed, 100 + seed))
        refresh(c, "by_cat")
        assert last_action(c, "by_cat") == "DIFFERENTIAL"
        assert_st_matches_query(c, "by_cat", JOIN3)
