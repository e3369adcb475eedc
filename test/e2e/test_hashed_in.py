"""A subquery condition `x IN (body)` is re-evaluated for the rows a change reaches as a correlated
EXISTS, run once per such row. When body's WHERE holds a correlated subquery (a filter costly per row)
next to an uncorrelated `y IN (subquery)`, the latter is written `(y IN (subquery)) IS TRUE`: the same
test in a WHERE, kept by PostgreSQL as a hashed filter that runs before the costly one, rather than a
semi-join that the planner placed after it (TPC-H Q20: the correlated sum evaluated on every partsupp
row of a touched supplier). Contents must stay exact through changes to every table, NULLs included."""
import re

from pgt_helpers import assert_st_matches_query, create_st, refresh

CORRELATED = ("SELECT s.id, s.name FROM sup s WHERE s.id IN (SELECT ps.sid FROM ps WHERE ps.pid IN "
              "(SELECT p.id FROM p WHERE p.name LIKE 'f%') AND ps.avail > (SELECT 0.5 * sum(l.qty) FROM l "
              "WHERE l.pid = ps.pid AND l.sid = ps.sid)) AND s.nat = 1")
# No costly filter beside the IN: it stays a semi-join the planner may drive from.
PLAIN = ("SELECT s.id, s.name FROM sup s WHERE s.id IN (SELECT ps.sid FROM ps WHERE ps.pid IN "
         "(SELECT p.id FROM p WHERE p.name LIKE 'f%') AND ps.avail > 10) AND s.nat = 1")
# NOT IN is not an IN: its NULL semantics differ, and it is left alone.
NEGATED = ("SELECT s.id, s.name FROM sup s WHERE s.id IN (SELECT ps.sid FROM ps WHERE ps.pid NOT IN "
           "(SELECT p.id FROM p WHERE p.name LIKE 'f%') AND ps.avail > (SELECT 0.5 * sum(l.qty) FROM l "
           "WHERE l.pid = ps.pid AND l.sid = ps.sid)) AND s.nat = 1")
QUERIES = {"st_correlated": CORRELATED, "st_plain": PLAIN, "st_negated": NEGATED}


def delta_sql(conn, name):
    return conn.execute("SELECT value FROM pgtrickle.explain_st(%s) WHERE property = 'delta_query'",
                        (name,)).fetchone()[0]


def hashed_ins(sql):
    """How many `(pid IN (SELECT p.id FROM p WHERE p.name LIKE 'f%')) IS TRUE` conditions the delta holds
    (deparsed, the IN's body ends with its WHERE, then the closing brackets and IS TRUE)."""
    return len(re.findall(r"WHERE \(p\.name ~~ 'f%'::text\)\)\) IS TRUE", sql))


def test_uncorrelated_in_beside_correlated_filter_is_hashed(db):
    c = db.conn
    c.execute("CREATE TABLE sup (id int PRIMARY KEY, nat int, name text)")
    c.execute("INSERT INTO sup SELECT i, i % 3, 's' || i FROM generate_series(1, 60) i")
    c.execute("CREATE TABLE p (id int PRIMARY KEY, name text)")
    c.execute("INSERT INTO p SELECT i, CASE WHEN i % 4 = 0 THEN 'f' ELSE 'g' END || i FROM generate_series(1, 200) i")
    c.execute("CREATE TABLE ps (pid int, sid int, avail int, PRIMARY KEY (pid, sid))")
    c.execute("INSERT INTO ps SELECT i, (i * 7 + j) % 60 + 1, (i * j) % 50 FROM generate_series(1, 200) i, "
              "generate_series(1, 4) j")
    c.execute("CREATE TABLE l (id int PRIMARY KEY, pid int, sid int, qty int)")
    c.execute("INSERT INTO l SELECT i, i % 200 + 1, ((i % 200 + 1) * 7 + i % 4 + 1) % 60 + 1, i % 30 "
              "FROM generate_series(1, 3000) i")
    c.execute("CREATE INDEX ON l (pid, sid)")
    c.execute("ANALYZE sup, p, ps, l")
    for name, query in QUERIES.items():
        create_st(c, name, query, refresh_mode="DIFFERENTIAL", cdc_mode="trigger")

    assert hashed_ins(delta_sql(c, "st_correlated")) > 0
    assert hashed_ins(delta_sql(c, "st_plain")) == 0
    assert hashed_ins(delta_sql(c, "st_negated")) == 0

    for seed in range(1, 7):
        # Parts renamed in and out of the IN's body, availabilities and quantities moved across the
        # threshold, NULL availabilities and part keys, rows deleted and inserted everywhere.
        c.execute("UPDATE p SET name = CASE WHEN name LIKE 'f%%' THEN 'g' ELSE 'f' END || id WHERE id %% 17 = %s",
                  (seed,))
        c.execute("UPDATE ps SET avail = CASE WHEN pid %% 5 = 0 THEN NULL ELSE avail + 20 END "
                  "WHERE (pid + sid) %% 23 = %s", (seed,))
        c.execute("UPDATE l SET qty = qty * 3 WHERE id %% 41 = %s", (seed,))
        c.execute("DELETE FROM l WHERE id %% 53 = %s", (seed,))
        c.execute("INSERT INTO l SELECT 10000 + %s * 100 + i, i %% 200 + 1, (i %% 60) + 1, i FROM generate_series(1, 40) i",
                  (seed,))
        c.execute("DELETE FROM ps WHERE (pid * sid) %% 71 = %s", (seed,))
        c.execute("INSERT INTO p VALUES (1000 + %s, NULL), (1100 + %s, 'f-new')", (seed, seed))
        c.execute("INSERT INTO ps VALUES (1100 + %s, %s, 100), (1000 + %s, %s, 100)", (seed, seed, seed, seed + 1))
        c.execute("UPDATE sup SET nat = (nat + 1) %% 3 WHERE id %% 13 = %s", (seed,))
        for name, query in QUERIES.items():
            refresh(c, name)
            assert_st_matches_query(c, name, query)
