"""TPC-H as a proving ground: the 22 queries as stream tables over generated data at SF 0.01.

Data, queries and change cycles are in test/tpch/ (see test/tpch/README.md). One database for the
module: the eight tables are loaded at scale factor 0.01 (seed 5), every query becomes a stream table
with refresh_mode => 'AUTO', and then

- test_queries_return_rows: every query returns rows (and a single-row aggregate a non-NULL value) on
  the loaded data, so no stream table is trivially empty;
- test_exact_after_change_cycles: six change cycles (RF1 inserts 0.1 % new orders with their
  lineitems, RF2 deletes 0.1 % of the orders with theirs, ~1 % of orders + lineitems, customers,
  parts, partsupp and suppliers are updated) applied in different ways — three transactions, one
  transaction, two cycles between refreshes — then a round of targeted changes for the most selective
  queries; after every refresh each of the 22 stream tables must equal its query exactly (EXCEPT ALL
  both ways). This must hold whatever mode a query runs in;
- test_generator_is_deterministic (a database of its own): two loads plus change cycle 1 in two
  schemas give identical tables;
- test_differential[qNN]: the stream table is maintained DIFFERENTIALLY (AUTO did not fall back to
  FULL, and no refresh fell back). The queries that fall back today are xfail(strict=True) with the
  engine's reason: when the engine learns the construct, the test XPASSes and fails the run, so the
  marker must go.
"""
import sys
import time

import psycopg
import pytest

from conftest import DATABASE_SETTINGS
from pgt_helpers import create_st, refresh, st_vs_query, _format_rows, drop_database

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tpch"))
import tpch_common as tpch  # noqa: E402

SCALE_FACTOR = "0.01"
# Every statement, refreshes included, runs in well under a second at this scale on the debug build;
# a refresh that takes a minute is a bug in itself.
STATEMENT_TIMEOUT_MS = 60_000

# Queries AUTO maintains with FULL refreshes today, with the reason the engine records
# (pgt_stream_tables.refresh_mode_reason; it names the first construct it meets) and the other
# constructs of the query that are not differential yet.
SUBQ = "subqueries in expressions (EXISTS, IN, scalar subqueries) are not maintained differentially yet"
LIMIT = "LIMIT/OFFSET is not maintained differentially yet"
# Queries AUTO maintains with FULL refresh (each an xfail(strict=True) of test_differential, with the
# reason): none today.
FALLS_BACK_TO_FULL = {}

QUERIES = tpch.queries()


@pytest.fixture(scope="module")
def tpch_db(cluster):
    """A database with the TPC-H tables at SF 0.01 and the 22 queries as AUTO stream tables."""
    name = "tpch_e2e"
    with cluster.connect() as admin:
        drop_database(admin, name)
        admin.execute(f'CREATE DATABASE "{name}"')
        for guc, value in DATABASE_SETTINGS.items():
            admin.execute(f'ALTER DATABASE "{name}" SET {guc} = {value}')
    conn = cluster.connect(name, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    try:
        conn.execute("CREATE EXTENSION pg_trickle")
        tpch.install(conn)
        tpch.load(conn, SCALE_FACTOR)
        for q, text in QUERIES.items():
            create_st(conn, q, text, refresh_mode="AUTO")
        yield conn
    finally:
        conn.close()
        try:
            with cluster.connect() as admin:
                drop_database(admin, name)
        except Exception:
            pass


def mismatches(conn):
    """{query: (extra, missing)} for every stream table that does not equal its query."""
    out = {}
    for q, text in QUERIES.items():
        extra, missing = st_vs_query(conn, q, text)
        if extra or missing:
            out[q] = (extra, missing)
    return out


def report(bad, when):
    lines = [f"{len(bad)} stream table(s) differ from their query {when}:"]
    for q, (extra, missing) in bad.items():
        lines.append(f"  {q}: extra rows ({len(extra)}):\n{_format_rows(extra)}\n"
                     f"       missing rows ({len(missing)}):\n{_format_rows(missing)}")
    return "\n".join(lines)


def test_queries_return_rows(tpch_db):
    for q, text in QUERIES.items():
        rows = tpch_db.execute(text).fetchall()
        assert rows, f"{q} returns no rows at SF {SCALE_FACTOR}"
        assert any(v is not None for v in rows[0]), f"{q} returns only NULLs at SF {SCALE_FACTOR}: {rows[0]}"


# A last round beyond the specification's refresh functions: changes aimed at the few rows the most
# selective queries depend on at this scale (their results hardly move under random 1 % changes), and
# a customer without orders inserted and one deleted.
TARGETED_CHANGES = [
    # Q2: for each size-15 BRASS part, its most expensive European supplier becomes the cheapest one
    """UPDATE partsupp SET ps_supplycost = 0.01
       WHERE (ps_partkey, ps_supplycost) IN (
           SELECT ps_partkey, max(ps_supplycost)
           FROM partsupp JOIN supplier ON s_suppkey = ps_suppkey JOIN nation ON n_nationkey = s_nationkey
                JOIN region ON r_regionkey = n_regionkey
           WHERE r_name = 'EUROPE'
             AND ps_partkey IN (SELECT p_partkey FROM part WHERE p_size = 15 AND p_type LIKE '%BRASS')
           GROUP BY ps_partkey)""",
    # Q2: and the European suppliers of those parts change their balance
    """UPDATE supplier SET s_acctbal = s_acctbal + 1
       WHERE s_suppkey IN (SELECT ps_suppkey FROM partsupp WHERE ps_partkey IN (
                               SELECT p_partkey FROM part WHERE p_size = 15 AND p_type LIKE '%BRASS'))
         AND s_nationkey IN (SELECT n_nationkey FROM nation JOIN region ON r_regionkey = n_regionkey
                             WHERE r_name = 'EUROPE')""",
    # Q17: small quantities for the Brand#23 / MED BOX parts
    """UPDATE lineitem SET l_quantity = 1, l_extendedprice = tpchgen.retailprice(l_partkey)
       WHERE l_partkey IN (SELECT p_partkey FROM part WHERE p_brand = 'Brand#23' AND p_container = 'MED BOX')
         AND l_linenumber <= 2""",
    # Q19: lines of small Brand#12 SM parts shipped by AIR, in person
    """UPDATE lineitem SET l_shipmode = 'AIR', l_shipinstruct = 'DELIVER IN PERSON'
       WHERE l_partkey IN (SELECT p_partkey FROM part
                           WHERE p_brand = 'Brand#12' AND p_container LIKE 'SM %' AND p_size <= 5)
         AND l_quantity <= 11""",
    # Q20: Canadian suppliers of forest parts run out of stock
    """UPDATE partsupp SET ps_availqty = 1
       WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%')
         AND ps_suppkey IN (SELECT s_suppkey FROM supplier JOIN nation ON n_nationkey = s_nationkey
                            WHERE n_name = 'CANADA')
         AND ps_partkey % 2 = 0""",
    # Q21: Saudi suppliers deliver late more often
    """UPDATE lineitem SET l_receiptdate = l_commitdate + 7
       WHERE l_suppkey IN (SELECT s_suppkey FROM supplier JOIN nation ON n_nationkey = s_nationkey
                           WHERE n_name = 'SAUDI ARABIA')
         AND l_orderkey % 5 = 0 AND l_shipdate < l_commitdate""",
    # Q13, Q22: a new customer without orders (country code 13, high balance), one deleted
    """INSERT INTO customer SELECT max(c_custkey) + 1, 'Customer#new', 'nowhere', 3, '13-100-200-3000',
              9999.00, 'BUILDING', 'new customer' FROM customer""",
    """DELETE FROM customer WHERE c_custkey = (SELECT min(o_custkey) FROM orders)""",
]


def test_exact_after_change_cycles(tpch_db):
    conn = tpch_db
    bad = mismatches(conn)
    assert not bad, report(bad, "right after creation")
    counts_before = tpch.table_counts(conn)
    # (change cycles applied before one round of refreshes, in separate transactions?); None: the
    # targeted changes, in one transaction.
    rounds = [([1], True), ([2], False), ([3, 4], True), ([5], True), ([6], False), (None, False)]
    stale_per_round = []
    for cycles, separate in rounds:
        if cycles is None:
            with conn.transaction():
                for statement in TARGETED_CHANGES:
                    conn.execute(statement)
        else:
            for c in cycles:
                tpch.change_cycle(conn, c, separate_transactions=separate)
        # Which stream tables the changes make stale: proves the changes reach the queries.
        stale_per_round.append(set(mismatches(conn)))
        t0 = time.monotonic()
        failed = {}
        for q in QUERIES:
            try:
                refresh(conn, q)
            except psycopg.Error as e:
                failed[q] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        elapsed = time.monotonic() - t0
        what = f"change cycle(s) {cycles}" if cycles else "the targeted changes"
        bad = {q: v for q, v in mismatches(conn).items() if q not in failed}
        assert not failed and not bad, (
            "".join(f"refresh of {q} failed after {what}: {err}\n" for q, err in failed.items())
            + (report(bad, f"after {what} and a refresh") if bad else ""))
        print(f"{what}: {len(stale_per_round[-1])} stream tables stale before the refresh "
              f"(unchanged: {sorted(set(QUERIES) - stale_per_round[-1])}), all 22 refreshed in {elapsed:.1f} s")
    counts_after = tpch.table_counts(conn)
    assert counts_after["orders"] == counts_before["orders"], "RF1 and RF2 should balance"
    # Every query's result changed at least once, and each spec-like cycle changed most of them.
    stale_ever = set().union(*stale_per_round)
    assert stale_ever == set(QUERIES), f"never changed: {sorted(set(QUERIES) - stale_ever)}"
    assert all(len(s) >= 12 for s in stale_per_round[:-1]), [sorted(s) for s in stale_per_round]


def test_generator_is_deterministic(db):
    """Two loads at SF 0.01 followed by change cycle 1, in two schemas, give identical tables."""
    conn = db.conn
    conn.execute((tpch.TPCH_DIR / "datagen.sql").read_text())
    tables = ["region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]
    for schema in ("gen_a", "gen_b"):
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}, public")
        conn.execute((tpch.TPCH_DIR / "schema.sql").read_text())
        tpch.load(conn, SCALE_FACTOR)
        tpch.change_cycle(conn, 1, separate_transactions=False)
    conn.execute("RESET search_path")
    for t in tables:
        n, differ = conn.execute(
            f"SELECT (SELECT count(*) FROM gen_a.{t}), (SELECT count(*) FROM ((TABLE gen_a.{t} EXCEPT ALL TABLE gen_b.{t}) "
            f"UNION ALL (TABLE gen_b.{t} EXCEPT ALL TABLE gen_a.{t})) x)").fetchone()
        assert n > 0 and differ == 0, f"{t}: {n} rows, {differ} differ between the two loads"


def _differential_params():
    for q in QUERIES:
        if q in FALLS_BACK_TO_FULL:
            yield pytest.param(q, marks=pytest.mark.xfail(strict=True, reason=FALLS_BACK_TO_FULL[q]))
        else:
            yield q


@pytest.mark.parametrize("q", list(_differential_params()))
def test_differential(tpch_db, q):
    mode, requested, reason = tpch_db.execute(
        "SELECT refresh_mode, requested_refresh_mode, refresh_mode_reason FROM pgtrickle.pgt_stream_tables "
        "WHERE pgt_name = %s", (q,)).fetchone()
    assert requested == "AUTO"
    assert mode == "DIFFERENTIAL", f"{q}: AUTO chose {mode}: {reason}"
    explain = dict(tpch_db.execute("SELECT property, value FROM pgtrickle.explain_st(%s)", (q,)).fetchall())
    assert explain["refresh_mode"] == "DIFFERENTIAL" and explain["dvm_supported"] == "true", explain
    # No refresh of it fell back to FULL (the first, populating one is FULL by design).
    fallbacks = tpch_db.execute(
        "SELECT action, fallback_reason FROM pgtrickle.pgt_refresh_history h "
        "JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) "
        "WHERE s.pgt_name = %s AND h.initiated_by <> 'INITIAL' AND h.action NOT IN ('DIFFERENTIAL', 'NO_DATA')",
        (q,)).fetchall()
    assert not fallbacks, f"{q}: refreshes that were not differential: {fallbacks}"
