"""The two ways a capture trigger writes its change buffer — directly (heap multi-insert, the default)
and through an INSERT ... SELECT statement (pg_trickle.direct_capture = off) — write the same rows:
the same operations, run on twin tables under each setting, leave equal buffers (compared as
multisets, transaction ids aside), and stream tables over both stay exact."""
from collections import Counter

from psycopg import sql

from pgt_helpers import assert_st_matches_query, buffer_relation, create_st, refresh

ST_COLUMNS = "id, t, n, a, j, big"
COLUMNS = "id int PRIMARY KEY, t text, n numeric(12,3), a int[], j jsonb, big text, d date, u varchar(20)"


def buffer_contents(conn, source):
    cols = [r[0] for r in conn.execute(
        "SELECT unnest(captured_columns) FROM pgtrickle.pgt_change_tracking WHERE source_relid = %s::regclass",
        (source,)).fetchall()]
    listing = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols)
    rows = conn.execute(sql.SQL('SELECT "__pgt_op"::text, {} FROM {}').format(
        listing, buffer_relation(conn, source))).fetchall()
    return Counter(rows), cols


def workload(c, table):
    t = sql.Identifier(table)
    c.execute(sql.SQL("INSERT INTO {} SELECT g, 'row ' || g, g / 7.0, ARRAY[g, NULL, g + 1], "
                      "jsonb_build_object('g', g), CASE WHEN g % 500 = 0 THEN repeat('x', 300000) END, "
                      "date '2020-01-01' + g, NULLIF('v' || g, 'v3') FROM generate_series(1, 2600) g").format(t))
    c.execute(sql.SQL("UPDATE {} SET t = t || '!', big = CASE WHEN id % 1000 = 0 THEN repeat('y', 200000) ELSE big END "
                      "WHERE id % 3 = 0").format(t))
    c.execute(sql.SQL("DELETE FROM {} WHERE id % 5 = 0").format(t))
    c.execute(sql.SQL("INSERT INTO {} (id, t) VALUES (100000, NULL)").format(t))  # single row, NULLs
    with c.transaction():
        c.execute(sql.SQL("UPDATE {} SET n = -n WHERE id = 1").format(t))
        try:
            with c.transaction():
                c.execute(sql.SQL("DELETE FROM {} WHERE id < 100").format(t))
                raise RuntimeError
        except RuntimeError:
            pass
    # Columns change: one dropped, one added, one retyped (the buffer follows the source).
    c.execute(sql.SQL("ALTER TABLE {} DROP COLUMN d").format(t))
    c.execute(sql.SQL("ALTER TABLE {} ADD COLUMN extra int DEFAULT 7").format(t))
    c.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN u TYPE text").format(t))
    c.execute(sql.SQL("INSERT INTO {} (id, t, extra, u) VALUES (200000, 'after ddl', 8, 'long text value')").format(t))
    c.execute(sql.SQL("UPDATE {} SET extra = extra + 1, u = u || '+' WHERE id % 7 = 0").format(t))
    c.execute(sql.SQL("DELETE FROM {} WHERE id % 11 = 0").format(t))


def test_direct_and_statement_capture_write_the_same_rows(db):
    c = db.conn
    for table in ("t_direct", "t_stmt"):
        c.execute(f"CREATE TABLE {table} ({COLUMNS})")
        # Over columns the workload's DDL leaves alone (all columns are captured anyway).
        create_st(c, f"st_{table}", f"SELECT {ST_COLUMNS} FROM {table}", refresh_mode="DIFFERENTIAL",
                  cdc_mode="trigger")
    c.execute("SET pg_trickle.direct_capture = on")
    workload(c, "t_direct")
    c.execute("SET pg_trickle.direct_capture = off")
    workload(c, "t_stmt")
    c.execute("RESET pg_trickle.direct_capture")
    direct, cols_d = buffer_contents(c, "t_direct")
    stmt, cols_s = buffer_contents(c, "t_stmt")
    assert cols_d == cols_s
    assert sum(direct.values()) > 5000
    if direct != stmt:
        def short(rows):
            return [tuple(v[:40] + "..." if isinstance(v, str) and len(v) > 40 else v for v in r) for r in rows[:5]]
        raise AssertionError(f"buffers differ: only direct {short(sorted((direct - stmt).elements(), key=repr))}, "
                             f"only statement {short(sorted((stmt - direct).elements(), key=repr))}")
    # The same command ids (a refresh in the writing transaction relies on them).
    cids = [Counter(r[0] for r in c.execute(sql.SQL('SELECT "__pgt_cid" - min("__pgt_cid") OVER () FROM {}').format(
        buffer_relation(c, t))).fetchall()) for t in ("t_direct", "t_stmt")]
    assert cids[0] == cids[1]
    for table in ("t_direct", "t_stmt"):
        refresh(c, f"st_{table}")
        assert_st_matches_query(c, f"st_{table}", f"SELECT {ST_COLUMNS} FROM {table}")


def test_direct_capture_of_a_partitioned_source(db):
    c = db.conn
    c.execute("CREATE TABLE p (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)")
    c.execute("CREATE TABLE p0 PARTITION OF p FOR VALUES IN (0)")
    # A partition whose columns are in another order than the parent's.
    c.execute("CREATE TABLE p1 (v text, k int NOT NULL, id int NOT NULL)")
    c.execute("ALTER TABLE p ATTACH PARTITION p1 FOR VALUES IN (1)")
    q = "SELECT k, count(*) AS n, string_agg(v, ',' ORDER BY id) AS vs FROM p GROUP BY k"
    create_st(c, "st_p", q, refresh_mode="DIFFERENTIAL")
    c.execute("INSERT INTO p SELECT g, g % 2, 'v' || g FROM generate_series(1, 3000) g")
    c.execute("UPDATE p SET v = v || '*' WHERE id % 4 = 0")
    c.execute("UPDATE p1 SET v = v || '#' WHERE id % 3 = 0")  # through the partition itself
    c.execute("DELETE FROM p0 WHERE id % 10 = 0")
    c.execute("UPDATE p SET k = 1 - k WHERE id % 9 = 0")  # rows move between partitions
    refresh(c, "st_p")
    assert_st_matches_query(c, "st_p", q)
