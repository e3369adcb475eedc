#!/usr/bin/python3
"""DIFFERENTIAL refresh after one changed row vs REFRESH MATERIALIZED VIEW vs FULL refresh.

Run through bench/dvm_refresh.sh, which starts the benchmark cluster and sets BENCH_* variables.
Prints figures; asserts nothing (it warns when a timed DIFFERENTIAL refresh was not DIFFERENTIAL).

Data: products (10,000 rows, 50 categories), orders (1,000,000 rows, ~1,000 customers), primary keys,
a foreign key orders.product_id -> products and an index on orders(product_id).
Views, each as a DIFFERENTIAL stream table (<v>_diff), a FULL stream table (<v>_full) and a
materialized view (<v>_mv):
  a  filter        SELECT id, customer_id, amount FROM orders WHERE status = 'open' AND amount > 100
  b  group by      SELECT customer_id, count(*), sum(amount), avg(amount) FROM orders GROUP BY customer_id
  c  join + group  SELECT p.category, count(*), sum(o.amount) FROM orders o JOIN products p
                   ON p.id = o.product_id GROUP BY p.category
For each change kind (INSERT / UPDATE amount / DELETE of one row; the row is an open order with
amount > 100, so every view is affected), repeated --reps times: make the change (autocommit), then
time refresh_stream_table('<v>_diff') for a, b, c; REFRESH MATERIALIZED VIEW <v>_mv; and
refresh_stream_table('<v>_full'). Client time is time.perf_counter() around the statement
(autocommit, Unix socket); server time is end_time - start_time of its pgt_refresh_history row.
Then --nochange-reps DIFFERENTIAL refreshes with no pending change per view.
"""
import argparse
import random
import statistics
import sys
import time

from bench_common import connect, timed

ORDERS = 1_000_000
PRODUCTS = 10_000
CUSTOMERS = 1_000
CATEGORIES = 50

VIEWS = {
    "a": "SELECT id, customer_id, amount FROM orders WHERE status = 'open' AND amount > 100",
    "b": "SELECT customer_id, count(*), sum(amount), avg(amount) FROM orders GROUP BY customer_id",
    "c": "SELECT p.category, count(*), sum(o.amount) FROM orders o JOIN products p ON p.id = o.product_id "
         "GROUP BY p.category",
}
VIEW_LABEL = {"a": "a filter", "b": "b group by", "c": "c join+group"}
COLUMNS = {"a": "id, customer_id, amount", "b": "customer_id, count, sum, avg", "c": "category, count, sum"}


def load(conn):
    print("== Setup")
    t0 = time.perf_counter()
    conn.execute("SELECT setseed(0.42)")
    conn.execute("CREATE TABLE products (id int PRIMARY KEY, category text NOT NULL, price numeric NOT NULL)")
    conn.execute(f"""INSERT INTO products
        SELECT i, 'category_' || lpad((i % {CATEGORIES})::text, 2, '0'), round((1 + random() * 499)::numeric, 2)
        FROM generate_series(1, {PRODUCTS}) i""")
    conn.execute("""CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, product_id int NOT NULL,
        status text NOT NULL, amount numeric(12,2) NOT NULL, created date NOT NULL)""")
    # status: open 20 %, shipped 30 %, delivered 45 %, cancelled 5 %; amount uniform in [0, 500).
    conn.execute(f"""INSERT INTO orders
        SELECT i, 1 + floor(random() * {CUSTOMERS})::int, 1 + floor(random() * {PRODUCTS})::int,
               CASE WHEN r < 0.20 THEN 'open' WHEN r < 0.50 THEN 'shipped' WHEN r < 0.95 THEN 'delivered'
                    ELSE 'cancelled' END,
               round((random() * 500)::numeric, 2), date '2023-01-01' + floor(random() * 730)::int
        FROM (SELECT i, random() AS r FROM generate_series(1, {ORDERS}) i) g""")
    t_ins = time.perf_counter() - t0
    conn.execute("ALTER TABLE orders ADD FOREIGN KEY (product_id) REFERENCES products (id)")
    conn.execute("CREATE INDEX orders_product_id ON orders (product_id)")
    conn.execute("VACUUM ANALYZE products")
    conn.execute("VACUUM ANALYZE orders")
    t_all = time.perf_counter() - t0
    print(f"   loaded {ORDERS:,} orders and {PRODUCTS:,} products: insert {t_ins:.1f} s, "
          f"with foreign key, index, VACUUM ANALYZE {t_all:.1f} s")

    for v, q in VIEWS.items():
        ms = timed(conn, "SELECT pgtrickle.create_stream_table(%s, %s, refresh_mode => 'DIFFERENTIAL')",
                   (f"{v}_diff", q))
        ms_full = timed(conn, "SELECT pgtrickle.create_stream_table(%s, %s, refresh_mode => 'FULL')", (f"{v}_full", q))
        ms_mv = timed(conn, f"CREATE MATERIALIZED VIEW {v}_mv AS {q}")
        n = conn.execute(f"SELECT count(*) FROM {v}_mv").fetchone()[0]
        print(f"   view {v}: {n:,} rows; create: DIFFERENTIAL st {ms:.0f} ms, FULL st {ms_full:.0f} ms, "
              f"materialized view {ms_mv:.0f} ms")
    # What autovacuum would soon do anyway; done explicitly so that every run plans with statistics.
    for v in VIEWS:
        for suffix in ("diff", "full", "mv"):
            conn.execute(f"VACUUM ANALYZE {v}_{suffix}")
    conn.execute("CHECKPOINT")
    sizes = conn.execute("""SELECT string_agg(c.relname || ' ' || pg_size_pretty(pg_total_relation_size(c.oid)),
        ', ' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm')""").fetchone()[0]
    print(f"   sizes (with indexes): {sizes}")


class Bench:
    def __init__(self, conn, seed):
        self.conn = conn
        self.rng = random.Random(seed)
        self.ids = {}
        for v in VIEWS:
            for suffix in ("diff", "full"):
                self.ids[f"{v}_{suffix}"] = conn.execute(
                    "SELECT pgt_id FROM pgtrickle.pgt_stream_tables WHERE pgt_name = %s", (f"{v}_{suffix}",)
                ).fetchone()[0]
        # Rows visible in every view: open orders above 100; UPDATE and DELETE targets are drawn from them.
        self.pool = [r[0] for r in conn.execute(
            "SELECT id FROM orders WHERE status = 'open' AND amount > 100 ORDER BY id LIMIT 5000")]
        self.rng.shuffle(self.pool)
        self.next_id = ORDERS + 1
        self.warnings = 0

    def change(self, kind):
        if kind == "INSERT":
            oid = self.next_id
            self.next_id += 1
            self.conn.execute(
                "INSERT INTO orders VALUES (%s, %s, %s, 'open', %s, date '2024-06-01')",
                (oid, self.rng.randint(1, CUSTOMERS), self.rng.randint(1, PRODUCTS),
                 round(self.rng.uniform(101, 499), 2)))
        elif kind == "UPDATE":
            self.conn.execute("UPDATE orders SET amount = amount + 1 WHERE id = %s", (self.pool.pop(),))
        else:
            self.conn.execute("DELETE FROM orders WHERE id = %s", (self.pool.pop(),))

    def change_product(self):
        """Moves one product to another category (so ~100 orders change group in view c)."""
        pid = self.rng.randint(1, PRODUCTS)
        self.conn.execute(f"UPDATE products SET category = 'category_' || lpad(((substr(category, 10)::int + 1) "
                          f"%% {CATEGORIES})::text, 2, '0') WHERE id = %s", (pid,))

    def last_history(self, name):
        return self.conn.execute(
            "SELECT action, extract(epoch FROM end_time - start_time) * 1000, delta_row_count, rows_inserted, "
            "rows_deleted, fallback_reason FROM pgtrickle.pgt_refresh_history WHERE pgt_id = %s "
            "ORDER BY refresh_id DESC LIMIT 1", (self.ids[name],)).fetchone()

    def refresh_st(self, name, expect):
        ms = timed(self.conn, "SELECT pgtrickle.refresh_stream_table(%s)", (name,))
        action, server_ms, delta, ins, dele, reason = self.last_history(name)
        if expect is not None and action != expect:
            self.warnings += 1
            print(f"   WARNING: refresh of {name} was {action}, expected {expect}"
                  + (f" (fallback: {reason})" if reason else ""))
        return ms, float(server_ms), action, (delta, ins, dele)


def buffer_stats(conn):
    return conn.execute("""SELECT string_agg(format('%s (source %s): reltuples %s, analyze count %s, autoanalyze count %s',
            c.relname, t.source_name, c.reltuples, s.analyze_count, s.autoanalyze_count), '; ' ORDER BY c.relname)
        FROM pgtrickle.pgt_change_tracking t JOIN pg_class c ON c.relname = t.buffer_name
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'pgtrickle_changes'
        LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid""").fetchone()[0]


def fmt(xs):
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9, help="repetitions per change kind (at least 7)")
    ap.add_argument("--nochange-reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=6, help="untimed change+refresh rounds first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-explain", action="store_true")
    ap.add_argument("--analyze-buffers", action="store_true",
                    help="ANALYZE the change buffers after the warm-up (by default they keep the statistics "
                         "they have: none, until autovacuum gets to them)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after the measurements, N rounds of one change + DIFFERENTIAL refreshes under "
                         "pg_stat_statements (needs PGT_BENCH_PROFILE=1), then N no-change refreshes; prints the "
                         "statements run inside the refreshes")
    args = ap.parse_args()

    conn = connect()
    load(conn)
    conn.execute("SET pg_trickle.differential_max_change_ratio = 0.15")  # the default, stated explicitly
    b = Bench(conn, args.seed)
    kinds = ("INSERT", "UPDATE", "DELETE")

    # Warm-up: the first refreshes in a backend build and prepare the differential plan; PostgreSQL's plan
    # cache also uses custom plans for a prepared statement's first five executions before it may switch to
    # a generic one. Untimed, so the timed repetitions all run in the steady state.
    for i in range(args.warmup):
        b.change(kinds[i % 3])
        for v in VIEWS:
            b.refresh_st(f"{v}_diff", "DIFFERENTIAL")
    for v in VIEWS:
        conn.execute(f"REFRESH MATERIALIZED VIEW {v}_mv")
        b.refresh_st(f"{v}_full", "FULL")
    if args.analyze_buffers:
        for (buf,) in conn.execute("SELECT buffer_name FROM pgtrickle.pgt_change_tracking ORDER BY 1").fetchall():
            conn.execute(f'ANALYZE pgtrickle_changes."{buf}"')
        print("\n   change buffers ANALYZEd after the warm-up: " + buffer_stats(conn))

    print(f"\n== One changed row, then refresh ({args.reps} repetitions per change kind; "
          f"{args.warmup} untimed warm-up rounds first)")
    res = {}
    for kind in kinds:
        for rep in range(args.reps):
            b.change(kind)
            line = []
            for v in VIEWS:
                ms, sms, action, counts = b.refresh_st(f"{v}_diff", "DIFFERENTIAL")
                res.setdefault((v, kind, "diff"), []).append(ms)
                res.setdefault((v, kind, "diff_server"), []).append(sms)
                line.append(f"{v}:{ms:.2f}/{sms:.2f}")
            for v in VIEWS:
                res.setdefault((v, kind, "mv"), []).append(timed(conn, f"REFRESH MATERIALIZED VIEW {v}_mv"))
            for v in VIEWS:
                ms, sms, action, counts = b.refresh_st(f"{v}_full", "FULL")
                res.setdefault((v, kind, "full"), []).append(ms)
            print(f"   {kind} rep {rep + 1}: DIFF client/server ms " + "  ".join(line)
                  + "  | MATVIEW ms " + " ".join(f"{v}:{res[(v, kind, 'mv')][-1]:.0f}" for v in VIEWS)
                  + "  | FULL ms " + " ".join(f"{v}:{res[(v, kind, 'full')][-1]:.0f}" for v in VIEWS), flush=True)

    print(f"\n== Additional: one changed row in products (the category of one product, ~100 orders), view c only "
          f"({args.reps} repetitions)")
    for rep in range(args.reps):
        b.change_product()
        ms, sms, action, counts = b.refresh_st("c_diff", "DIFFERENTIAL")
        res.setdefault(("c", "products UPDATE", "diff"), []).append(ms)
        res.setdefault(("c", "products UPDATE", "diff_server"), []).append(sms)
        res.setdefault(("c", "products UPDATE", "mv"), []).append(timed(conn, "REFRESH MATERIALIZED VIEW c_mv"))
        fms, _, _, _ = b.refresh_st("c_full", "FULL")
        res.setdefault(("c", "products UPDATE", "full"), []).append(fms)
        print(f"   products UPDATE rep {rep + 1}: DIFF client/server ms c:{ms:.2f}/{sms:.2f}  | MATVIEW ms "
              f"c:{res[('c', 'products UPDATE', 'mv')][-1]:.0f}  | FULL ms c:{fms:.0f}", flush=True)

    print(f"\n== DIFFERENTIAL refresh with no change ({args.nochange_reps} per view)")
    nochange = {}
    for v in VIEWS:
        b.refresh_st(f"{v}_diff", "NO_DATA")  # nothing pending from here on
        for _ in range(args.nochange_reps):
            ms, sms, action, _ = b.refresh_st(f"{v}_diff", "NO_DATA")
            nochange.setdefault((v, "client"), []).append(ms)
            nochange.setdefault((v, "server"), []).append(sms)

    print("\n== Results (ms; median (min-max) over the repetitions; ratios of medians)\n")
    print("| view | change | DIFF client ms | DIFF server ms | MATVIEW ms | FULL ms | MATVIEW/DIFF | FULL/DIFF "
          "| MATVIEW/DIFF of minima |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    misses = []
    rows = [(v, kind) for v in VIEWS for kind in kinds] + [("c", "products UPDATE")]
    for v, kind in rows:
        d = res[(v, kind, "diff")]
        dm = statistics.median(d)
        mv = statistics.median(res[(v, kind, "mv")])
        full = statistics.median(res[(v, kind, "full")])
        print(f"| {VIEW_LABEL[v]} | {kind} | {fmt(d)} | {fmt(res[(v, kind, 'diff_server')])} "
              f"| {fmt(res[(v, kind, 'mv')])} | {fmt(res[(v, kind, 'full')])} | {mv / dm:.0f}x | {full / dm:.0f}x "
              f"| {min(res[(v, kind, 'mv')]) / min(d):.0f}x |")
        if mv / dm < 100 and kind in kinds:
            misses.append(f"{VIEW_LABEL[v]} / {kind}: {mv / dm:.0f}x")
    print("\n| view | no-change DIFF client ms | no-change DIFF server ms |")
    print("|---|--:|--:|")
    slow = []
    for v in VIEWS:
        c = nochange[(v, "client")]
        print(f"| {VIEW_LABEL[v]} | {fmt(c)} | {fmt(nochange[(v, 'server')])} |")
        if statistics.median(c) >= 1.0:
            slow.append(f"{VIEW_LABEL[v]}: {statistics.median(c):.2f} ms")

    print("\n== Targets")
    print("   DIFFERENTIAL >= 100x faster than REFRESH MATERIALIZED VIEW after one changed row of orders (medians): "
          + ("met for every view and change kind" if not misses else "NOT met for " + "; ".join(misses)))
    print("   no-change DIFFERENTIAL refresh < 1 ms (client median): "
          + ("met for every view" if not slow else "NOT met for " + "; ".join(slow)))
    pm = statistics.median(res[("c", "products UPDATE", "diff")])
    pmv = statistics.median(res[("c", "products UPDATE", "mv")])
    print(f"   (additional) one changed row of products, view c: MATVIEW/DIFF {pmv / pm:.1f}x")
    print(f"   refreshes that were not the expected action: {b.warnings}")
    other = conn.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE initiated_by = 'SCHEDULER'"
                         ).fetchone()[0]
    if other:
        print(f"   WARNING: {other} refreshes were started by the scheduler during the run")
    print("   change buffers at the end: " + buffer_stats(conn))

    # Correctness cross-check (information only): the differential stream tables against the matviews.
    for v in VIEWS:
        conn.execute(f"REFRESH MATERIALIZED VIEW {v}_mv")
        cols = COLUMNS[v]
        diff = conn.execute(f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM {v}_diff EXCEPT ALL "
                            f"SELECT {cols} FROM {v}_mv) x) + (SELECT count(*) FROM (SELECT {cols} FROM {v}_mv "
                            f"EXCEPT ALL SELECT {cols} FROM {v}_diff) y)").fetchone()[0]
        print(f"   {v}_diff vs {v}_mv: {'same contents' if diff == 0 else f'{diff} rows differ'}")

    if args.profile:
        profile(conn, b, args.profile)
    if not args.no_explain:
        explain(conn, b)
    conn.close()
    return 0


def profile(conn, b, rounds):
    """Where the time of a DIFFERENTIAL refresh goes: every statement it runs (through SPI), from
    pg_stat_statements (track = all, track_planning = on)."""
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone():
        print("\n== profile skipped: run with PGT_BENCH_PROFILE=1")
        return
    query = """SELECT calls, round((total_exec_time / calls)::numeric, 3), round((total_plan_time / calls)::numeric, 3),
        plans, round(((total_exec_time + total_plan_time) / %s)::numeric, 3),
        regexp_replace(left(query, 150), '\\s+', ' ', 'g')
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND query !~* 'pg_stat_statements' ORDER BY total_exec_time + total_plan_time DESC LIMIT 25"""
    for phase in ("one UPDATE + refresh", "no change"):
        conn.execute("SELECT pg_stat_statements_reset()")
        n = 0
        for i in range(rounds):
            if phase != "no change":
                b.change("UPDATE")
            for v in VIEWS:
                b.refresh_st(f"{v}_diff", "DIFFERENTIAL" if phase != "no change" else "NO_DATA")
                n += 1
        print(f"\n== profile ({phase}): {rounds} rounds x {len(VIEWS)} views = {n} refreshes; pg_stat_statements, "
              "ms per call / per refresh (its own overhead included)")
        print("| calls | exec ms/call | plan ms/call | plans | ms per refresh | statement |")
        print("|--:|--:|--:|--:|--:|---|")
        for r in conn.execute(query, (n,)).fetchall():
            print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | `{r[5]}` |")


def parameterized(conn, name, sql):
    """Undoes explain_st's substitution of the frontier parameters ($1 pg_snapshot and, where the
    catalog has them, $2 xid8 and $3 bigint), so the statement can be prepared as the refresh prepares
    it. Returns (sql with $n, [(type, value)]) or (None, None)."""
    cols = {r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'pgtrickle.pgt_stream_tables'::regclass "
        "AND attnum > 0 AND NOT attisdropped")}
    want = [("frontier", "pg_catalog.pg_snapshot"), ("frontier_xid", "pg_catalog.xid8"),
            ("frontier_cid", "pg_catalog.int8")]
    want = [(c, t) for c, t in want if c in cols]
    row = conn.execute(f"SELECT {', '.join(c + '::text' for c, _ in want)} FROM pgtrickle.pgt_stream_tables "
                       "WHERE pgt_name = %s", (name,)).fetchone()
    if row is None or row[0] is None:
        return None, None
    types = []
    for i, ((col, typ), val) in enumerate(zip(want, row), start=1):
        if val is None:
            literal = f"NULL::{typ}"
        elif col == "frontier_cid":
            literal = f"{val}::{typ}"
        else:
            literal = "'" + val.replace("'", "''") + f"'::{typ}"
        sql = sql.replace(literal, f"${i}")
        types.append((typ, val))
    return sql, types


def explain(conn, b):
    """Plans of the statements a DIFFERENTIAL refresh runs, after one UPDATE.

    1. The refresh itself under auto_explain (log_analyze, log_nested_statements; its output is sent to
       this client as WARNINGs): the plans PostgreSQL really used, including the kept (possibly generic)
       plan of the apply statement, with actual row counts and times (timing instrumentation inflates them).
    2. EXPLAIN ANALYZE of explain_st's delta_query (read-only; the apply statement itself writes the stream
       table, which the write guard refuses outside a refresh), with the frontier as literals and as a
       generic plan of the prepared form; max_parallel_workers_per_gather = 0, because the apply statement
       (data-modifying CTEs) never runs parallel, and starting workers would dominate the standalone figure.
    3. EXPLAIN (no ANALYZE, so no trigger fires) of explain_st's apply_statement."""
    print("\n== Plans of the DIFFERENTIAL refresh after one UPDATE")
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    for v in VIEWS:
        name = f"{v}_diff"
        props = dict(conn.execute("SELECT property, value FROM pgtrickle.explain_st(%s)", (name,)).fetchall())
        print(f"\n--- {name}: {props.get('strategy', '')}")
        print("operator tree:\n   " + props.get("operator_tree", "").rstrip().replace("\n", "\n   "))

        for w in VIEWS:  # nothing pending anywhere: the refresh below sees exactly one change
            b.refresh_st(f"{w}_diff", None)
        b.change("UPDATE")
        conn.execute("LOAD 'auto_explain'")
        for setting, value in (("log_min_duration", "0"), ("log_analyze", "on"), ("log_buffers", "on"),
                               ("log_nested_statements", "on"), ("log_level", "warning")):
            conn.execute(f"SET auto_explain.{setting} = '{value}'")
        notices.clear()
        ms, sms, action, counts = b.refresh_st(name, "DIFFERENTIAL")
        conn.execute("SET auto_explain.log_min_duration = -1")
        plans = [n for n in notices if n.startswith("duration:")]
        print(f"\nrefresh under auto_explain: {ms:.2f} ms client, {sms:.2f} ms server ({action}); "
              f"{len(plans)} statements; the apply statement's plan:")
        for n in plans:
            if "WITH __pgt_" in n or "__pgt_d AS" in n:
                print("   " + n.replace("\n", "\n   "))
        print("   other statements (duration, first line):")
        for n in plans:
            if not ("WITH __pgt_" in n or "__pgt_d AS" in n):
                head = n.split("\n", 1)[0]
                q = n.split("Query Text:", 1)[1].strip().split("\n", 1)[0][:110] if "Query Text:" in n else ""
                print(f"     {head}  {q}")

        b.change("UPDATE")
        props = dict(conn.execute("SELECT property, value FROM pgtrickle.explain_st(%s)", (name,)).fetchall())
        delta = props["delta_query"]
        print("\ndelta_query (frontier substituted):\n   " + delta.replace("\n", "\n   "))
        conn.execute("SET max_parallel_workers_per_gather = 0")
        print("\nEXPLAIN ANALYZE delta_query (custom plan):")
        for line in conn.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING) " + delta).fetchall():
            print("   " + line[0])
        generic, types = parameterized(conn, name, delta)
        if generic:
            with conn.transaction():
                conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                conn.execute(f"PREPARE pgt_bench_delta({', '.join(t for t, _ in types)}) AS {generic}")
                print("\nEXPLAIN ANALYZE delta_query, generic plan (as a kept prepared statement may use):")
                args = ", ".join(("NULL" if v is None else "'" + v.replace("'", "''") + "'") + f"::{t}"
                                 for t, v in types)
                for line in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, TIMING) EXECUTE pgt_bench_delta({args})"
                                         ).fetchall():
                    print("   " + line[0])
                conn.execute("DEALLOCATE pgt_bench_delta")
        print("\nEXPLAIN apply_statement (without ANALYZE):")
        for line in conn.execute("EXPLAIN " + props["apply_statement"]).fetchall():
            print("   " + line[0])
        conn.execute("RESET max_parallel_workers_per_gather")
        b.refresh_st(name, "DIFFERENTIAL")

    # The same for a one-row change of products (view c).
    b.refresh_st("c_diff", None)
    b.change_product()
    notices.clear()
    conn.execute("SET auto_explain.log_min_duration = 0")
    ms, sms, action, counts = b.refresh_st("c_diff", "DIFFERENTIAL")
    conn.execute("SET auto_explain.log_min_duration = -1")
    print(f"\n--- c_diff after one changed row of products, under auto_explain: {ms:.2f} ms client, {sms:.2f} ms "
          f"server ({action}); the apply statement's plan (query text omitted):")
    for n in notices:
        if n.startswith("duration:") and ("WITH __pgt_" in n or "__pgt_d AS" in n):
            head = n.split("\n", 1)[0]
            plan = n[n.index("Query Parameters:"):] if "Query Parameters:" in n else n
            print("   " + head + "\n   " + plan.replace("\n", "\n   "))


if __name__ == "__main__":
    sys.exit(main())
