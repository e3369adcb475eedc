"""TPC-H helpers shared by the e2e test (test/e2e/test_tpch.py) and the benchmark (bench/tpch.py).

All functions take a psycopg connection in autocommit mode.
"""
import pathlib

TPCH_DIR = pathlib.Path(__file__).resolve().parent
QUERY_DIR = TPCH_DIR / "queries"
QUERY_NAMES = [f"q{i:02d}" for i in range(1, 23)]


def query_text(name):
    """The query of queries/<name>.sql as create_stream_table takes it: without the leading comment
    lines and the trailing semicolon."""
    text = (QUERY_DIR / f"{name}.sql").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";").strip()


def queries():
    return {name: query_text(name) for name in QUERY_NAMES}


def install(conn):
    """Creates the eight tables (in the current schema) and the generator (schema tpchgen)."""
    conn.execute((TPCH_DIR / "schema.sql").read_text())
    conn.execute((TPCH_DIR / "datagen.sql").read_text())


def load(conn, sf, seed=None):
    """Fills the (empty) tables at scale factor sf, then ANALYZE."""
    if seed is None:
        conn.execute("SELECT tpchgen.load(%s::numeric)", (str(sf),))
    else:
        conn.execute("SELECT tpchgen.load(%s::numeric, %s)", (str(sf), seed))
    conn.execute("ANALYZE region, nation, part, supplier, partsupp, customer, orders, lineitem")


def change_cycle(conn, cycle, separate_transactions=True, fraction=None):
    """Change cycle `cycle` (1, 2, ...): RF1 (new orders and lineitems, 0.1 % of orders), RF2 (deletes
    0.1 % of the orders and their lineitems), then updates of ~1 % of orders (and their lineitems),
    customers, parts, partsupp and suppliers. Three transactions, or one. `fraction` replaces the 1 %
    of the updates (RF1/RF2 follow tpchgen.config.n_change: see set_change_fraction)."""
    if separate_transactions or fraction is not None:
        conn.execute("SELECT tpchgen.rf1(%s)", (cycle,))
        conn.execute("SELECT tpchgen.rf2(%s)", (cycle,))
        if fraction is None:
            conn.execute("SELECT tpchgen.updates(%s)", (cycle,))
        else:
            conn.execute("SELECT tpchgen.updates(%s, %s)", (cycle, fraction))
    else:
        conn.execute("SELECT tpchgen.change_cycle(%s)", (cycle,))


def set_change_fraction(conn, fraction):
    """Scales RF1/RF2 to a tenth of `fraction` of the orders (at least one order each), as the default
    cycle's 0.1 % is a tenth of its 1 % updates. Call before the first cycle; returns the orders per RF."""
    return conn.execute("UPDATE tpchgen.config SET n_change = greatest(1, round(n_orders * %s / 10)) "
                        "RETURNING n_change", (fraction,)).fetchone()[0]


def table_counts(conn):
    return dict(conn.execute(
        "SELECT 'region', count(*) FROM region UNION ALL SELECT 'nation', count(*) FROM nation "
        "UNION ALL SELECT 'part', count(*) FROM part UNION ALL SELECT 'supplier', count(*) FROM supplier "
        "UNION ALL SELECT 'partsupp', count(*) FROM partsupp UNION ALL SELECT 'customer', count(*) FROM customer "
        "UNION ALL SELECT 'orders', count(*) FROM orders UNION ALL SELECT 'lineitem', count(*) FROM lineitem"
    ).fetchall())
