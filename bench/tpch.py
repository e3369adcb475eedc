#!/usr/bin/python3
"""TPC-H: per query, the refresh after a change cycle of a stream table created with AUTO (DIFFERENTIAL
where the engine can) against a FULL refresh of the same query, in the same run.

Run through bench/tpch.sh, which starts the benchmark cluster and sets BENCH_* variables. Prints
figures; asserts nothing (it warns when a refresh was not the kind expected, and when the two stream
tables of a query differ after the last cycle).

Data: test/tpch (schema.sql, datagen.sql: deterministic generator, seed 5) at --sf (default 0.1).
Queries: test/tpch/queries/q01..q22.sql, the standard texts with the validation parameters.
For each query two stream tables: <q>_auto (refresh_mode AUTO: DIFFERENTIAL, or FULL with a reason)
and <q>_full (refresh_mode FULL). pg_trickle.differential_max_change_ratio is the default (0.15);
pg_trickle.adaptive_refresh is off (every AUTO refresh applies the delta) unless --adaptive is given.
A change cycle (tpchgen.rf1/rf2/updates, three transactions): RF1 inserts 0.1 % new orders with
their lineitems, RF2 deletes 0.1 % of the orders with theirs, then ~1 % of the orders (and their
lineitems), customers, parts, partsupp rows and suppliers are updated. One untimed warm-up cycle,
then --reps timed cycles; after each, every <q>_auto and <q>_full is refreshed (which of the two goes
first alternates), timed on the client (perf_counter around refresh_stream_table, Unix socket) and
on the server (end_time - start_time of the pgt_refresh_history row).
"""
import argparse
import os
import statistics
import sys
import time

import psycopg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "tpch"))
import tpch_common as tpch  # noqa: E402

from bench_common import connect, timed  # noqa: E402


def visible_columns(conn, rel):
    return [r[0] for r in conn.execute(
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%%' ORDER BY attnum", (rel,))]


def explain_delta(conn, q, large):
    delta = dict(conn.execute("SELECT property, value FROM pgtrickle.explain_st(%s)", (f"{q}_auto",)).fetchall())
    if "delta_query" not in delta:
        print(f"   {q}_auto has no delta query ({delta.get('refresh_mode')})")
        return
    # A 1 % change cycle leaves thousands of changed rows: the refresh runs the large-window variant if
    # any. Small cycles (--fraction below 0.001) run the default one.
    variant = "delta_query_large_window" if large and "delta_query_large_window" in delta else "delta_query"
    print(f"   ({variant})")
    print(f"== EXPLAIN ANALYZE of the delta query of {q}_auto (operator tree: "
          f"{' / '.join(x.strip() for x in delta['operator_tree'].splitlines())})")
    t0 = time.perf_counter()
    plan = conn.execute("EXPLAIN (ANALYZE, COSTS ON, BUFFERS OFF) " + delta[variant]).fetchall()
    print(f"   ({(time.perf_counter() - t0) * 1000:.0f} ms)")
    for (line,) in plan:
        print("   " + line)


def plan_times(conn, q, large):
    """Planning and execution ms of the delta query explain_st shows (EXPLAIN ANALYZE, SUMMARY)."""
    delta = dict(conn.execute("SELECT property, value FROM pgtrickle.explain_st(%s)", (f"{q}_auto",)).fetchall())
    variant = "delta_query_large_window" if large and "delta_query_large_window" in delta else "delta_query"
    if variant not in delta:
        return None
    out = {}
    for (line,) in conn.execute("EXPLAIN (ANALYZE, SUMMARY, COSTS OFF, BUFFERS OFF) " + delta[variant]).fetchall():
        for key in ("Planning Time", "Execution Time"):
            if line.startswith(key):
                out[key] = float(line.split(":")[1].split()[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sf", default="0.1", help="scale factor (default 0.1)")
    ap.add_argument("--reps", type=int, default=5, help="timed change cycles (default 5)")
    ap.add_argument("--queries", default="", help="comma-separated subset, e.g. q01,q03")
    ap.add_argument("--no-verify", action="store_true", help="skip comparing <q>_auto with <q>_full at the end")
    ap.add_argument("--timeout", type=float, default=300, metavar="SECONDS",
                    help="statement timeout of a refresh (default 300); a query whose AUTO refresh times out is "
                         "reported as such and not refreshed again")
    ap.add_argument("--explain", default="", metavar="q05,q19",
                    help="after the last cycle's changes, before its refreshes, print EXPLAIN ANALYZE of these "
                         "DIFFERENTIAL stream tables' delta queries (explain_st's delta_query; not timed)")
    ap.add_argument("--plan-times", action="store_true",
                    help="after the last cycle's changes, print each delta query's planning and execution time "
                         "(EXPLAIN ANALYZE; not timed itself)")
    ap.add_argument("--fraction", type=float, default=None, metavar="F",
                    help="updates of this fraction of the rows per cycle instead of 1 %% (e.g. 0.0001), RF1/RF2 "
                         "of a tenth of it (at least one order each)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a setting for the benchmark's session (repeatable), e.g. pg_trickle.large_window_rows=100000")
    ap.add_argument("--adaptive", action="store_true",
                    help="let AUTO stream tables recompute when the delta is known to cost more "
                         "(pg_trickle.adaptive_refresh = on, the product's default); without it the AUTO stream "
                         "tables always apply the delta, which is what the table then measures")
    ap.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed change cycles first (default 1)")
    ap.add_argument("--warmup-fraction", type=float, default=None, metavar="F",
                    help="the warm-up cycles' fraction of updates (default: that of the timed cycles; RF1/RF2 keep "
                         "the timed cycles' size)")
    ap.add_argument("--lagging-consumer", action="store_true",
                    help="also create, per table, a stream table that is never refreshed (lag_<table>): the "
                         "change buffers keep every cycle's rows, as they do for a consumer on a longer schedule")
    args = ap.parse_args()
    names = [q.strip() for q in args.queries.split(",") if q.strip()] or tpch.QUERY_NAMES
    queries = {q: tpch.query_text(q) for q in names}

    conn = connect()
    conn.execute("SET pg_trickle.differential_max_change_ratio = 0.15")  # the default, stated explicitly
    conn.execute(f"SET pg_trickle.adaptive_refresh = {'on' if args.adaptive else 'off'}")
    print(f"== pg_trickle.adaptive_refresh = {'on' if args.adaptive else 'off'}")
    for setting in args.set:
        name, _, value = setting.partition("=")
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name.strip(), value.strip()))
        print(f"== {name.strip()} = {value.strip()}")
    print(f"== Setup (SF {args.sf})")
    t0 = time.perf_counter()
    tpch.install(conn)
    tpch.load(conn, args.sf)
    t_load = time.perf_counter() - t0
    conn.execute("VACUUM ANALYZE")
    counts = tpch.table_counts(conn)
    print(f"   generated in {t_load:.1f} s (+ VACUUM ANALYZE): "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items()))

    if args.fraction is not None:
        n = tpch.set_change_fraction(conn, args.fraction)
        print(f"   change cycles: updates of {args.fraction:g} of the rows, RF1/RF2 of {n} orders each")
    info = {}
    for q, text in queries.items():
        ms_auto = timed(conn, "SELECT pgtrickle.create_stream_table(%s, %s, refresh_mode => 'AUTO')", (f"{q}_auto", text))
        ms_full = timed(conn, "SELECT pgtrickle.create_stream_table(%s, %s, refresh_mode => 'FULL')", (f"{q}_full", text))
        mode, reason, pgt_id = conn.execute(
            "SELECT refresh_mode, refresh_mode_reason, pgt_id FROM pgtrickle.pgt_stream_tables WHERE pgt_name = %s",
            (f"{q}_auto",)).fetchone()
        full_id = conn.execute("SELECT pgt_id FROM pgtrickle.pgt_stream_tables WHERE pgt_name = %s",
                               (f"{q}_full",)).fetchone()[0]
        rows = conn.execute(f"SELECT count(*) FROM {q}_full").fetchone()[0]
        info[q] = {"mode": mode, "reason": reason, "ids": {"auto": pgt_id, "full": full_id}, "rows": rows,
                   "ms": {"auto": [], "full": []}, "server": {"auto": [], "full": []}, "actions": [], "delta": []}
        print(f"   {q}: {rows} rows; AUTO -> {mode}{' (' + reason + ')' if reason else ''}; "
              f"create {ms_auto:.0f} ms (AUTO), {ms_full:.0f} ms (FULL)")
    if args.lagging_consumer:
        for t in counts:
            conn.execute("SELECT pgtrickle.create_stream_table(%s, %s, refresh_mode => 'DIFFERENTIAL')",
                         (f"lag_{t}", f"SELECT count(*) AS n FROM {t}"))
        print(f"   lagging consumers: lag_<table> for {', '.join(counts)} (never refreshed)")
    for q in queries:
        conn.execute(f"VACUUM ANALYZE {q}_auto")
        conn.execute(f"VACUUM ANALYZE {q}_full")
    conn.execute("CHECKPOINT")

    def refresh(q, kind):
        conn.execute(f"SET statement_timeout = {int(args.timeout * 1000)}")
        try:
            ms = timed(conn, "SELECT pgtrickle.refresh_stream_table(%s)", (f"{q}_{kind}",))
        except psycopg.errors.QueryCanceled:
            return None, None, "TIMEOUT", None, None
        finally:
            conn.execute("RESET statement_timeout")
        action, server_ms, delta, reason = conn.execute(
            "SELECT action, extract(epoch FROM end_time - start_time) * 1000, delta_row_count, fallback_reason "
            "FROM pgtrickle.pgt_refresh_history WHERE pgt_id = %s ORDER BY refresh_id DESC LIMIT 1",
            (info[q]["ids"][kind],)).fetchone()
        return ms, float(server_ms), action, delta, reason

    print(f"== Change cycles: {args.warmup} untimed warm-up, then {args.reps} timed")
    warnings = 0
    warm_fraction = args.warmup_fraction if args.warmup_fraction is not None else args.fraction
    for cycle in range(1, args.reps + args.warmup + 1):
        timed_cycle = cycle > args.warmup
        t0 = time.perf_counter()
        tpch.change_cycle(conn, cycle, fraction=args.fraction if timed_cycle else warm_fraction)
        t_change = time.perf_counter() - t0
        if cycle == args.reps + args.warmup:
            large = args.fraction is None or args.fraction >= 0.001
            for q in [x.strip() for x in args.explain.split(",") if x.strip()]:
                explain_delta(conn, q, large)
            if args.plan_times:
                print("== Delta query planning / execution ms (EXPLAIN ANALYZE, "
                      f"{'large-window' if large else 'default'} variant)")
                for q in queries:
                    t = plan_times(conn, q, large) if info[q]["mode"] == "DIFFERENTIAL" else None
                    if t:
                        print(f"   {q}: planning {t.get('Planning Time', 0):.1f}, execution {t.get('Execution Time', 0):.1f}")
        t0 = time.perf_counter()
        for i, q in enumerate(queries):
            order = ("auto", "full") if (cycle + i) % 2 == 0 else ("full", "auto")
            for kind in order:
                if info[q].get("timeout_" + kind):
                    continue
                ms, server_ms, action, delta, reason = refresh(q, kind)
                if action == "TIMEOUT":
                    warnings += 1
                    info[q]["timeout_" + kind] = True
                    print(f"   WARNING: cycle {cycle}: refresh of {q}_{kind} timed out after {args.timeout:.0f} s; "
                          "not refreshed again")
                    continue
                expected = "FULL" if kind == "full" or info[q]["mode"] == "FULL" else "DIFFERENTIAL"
                adaptive_full = args.adaptive and action == "FULL" and (reason or "").startswith("adaptive:")
                if action != expected and not (expected == "DIFFERENTIAL" and action == "NO_DATA") and not adaptive_full:
                    warnings += 1
                    print(f"   WARNING: cycle {cycle}: refresh of {q}_{kind} was {action}, expected {expected}"
                          + (f" (fallback: {reason})" if reason else ""))
                if timed_cycle:
                    info[q]["ms"][kind].append(ms)
                    info[q]["server"][kind].append(server_ms)
                    if kind == "auto":
                        info[q]["actions"].append(action)
                        info[q]["delta"].append(delta or 0)
        print(f"   cycle {cycle}{'' if timed_cycle else ' (warm-up)'}: changes {t_change:.2f} s, "
              f"refreshes {time.perf_counter() - t0:.1f} s")

    if not args.no_verify:
        differ = 0
        for q in queries:
            if info[q].get("timeout_auto") or info[q].get("timeout_full"):
                continue
            cols = ", ".join(visible_columns(conn, f"{q}_full"))
            diff = conn.execute(f"SELECT (SELECT count(*) FROM ((SELECT {cols} FROM {q}_auto) EXCEPT ALL "
                                f"(SELECT {cols} FROM {q}_full)) a), (SELECT count(*) FROM ((SELECT {cols} FROM {q}_full) "
                                f"EXCEPT ALL (SELECT {cols} FROM {q}_auto)) b)").fetchone()
            if diff != (0, 0):
                differ += 1
                print(f"   WARNING: {q}_auto and {q}_full differ: {diff[0]} extra, {diff[1]} missing rows")
        warnings += differ
        if not differ:
            print("   verified: every <q>_auto equals <q>_full after the last cycle (timed-out queries excepted)")

    print()
    print(f"== Refresh after one change cycle, SF {args.sf}: median of {args.reps} cycles (client ms; "
          "server ms from the refresh history)")
    header = ("query", "AUTO mode", "refresh", "AUTO median", "AUTO min", "FULL median", "FULL min",
              "speedup", "server AUTO", "server FULL", "delta rows")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    speedups = []
    for q in queries:
        d = info[q]
        a, f = d["ms"]["auto"], d["ms"]["full"]
        if d.get("timeout_auto") or d.get("timeout_full"):
            which = " and ".join(k.upper() for k in ("auto", "full") if d.get("timeout_" + k))
            print(f"| {q} | {d['mode']} | {which} refresh timed out (> {args.timeout:.0f} s) | | | "
                  f"{statistics.median(f) if f else float('nan'):.1f} | | | | | |")
            continue
        if not a:
            continue
        sp = statistics.median(f) / statistics.median(a)
        if d["mode"] == "DIFFERENTIAL":
            speedups.append(sp)
        actions = sorted(set(d["actions"]))
        print(f"| {q} | {d['mode']} | {'/'.join(actions)} | {statistics.median(a):.1f} | {min(a):.1f} | "
              f"{statistics.median(f):.1f} | {min(f):.1f} | {sp:.1f}x | {statistics.median(d['server']['auto']):.1f} | "
              f"{statistics.median(d['server']['full']):.1f} | {int(statistics.median(d['delta']))} |")
    if speedups:
        print(f"\nDIFFERENTIAL queries: {len(speedups)} of {len(queries)}; speedup median {statistics.median(speedups):.1f}x, "
              f"min {min(speedups):.1f}x, max {max(speedups):.1f}x")
    fallbacks = {q: d["reason"] for q, d in info.items() if d["mode"] != "DIFFERENTIAL"}
    if fallbacks:
        print("FULL under AUTO: " + "; ".join(f"{q}: {r}" for q, r in fallbacks.items()))
    print(f"warnings: {warnings}")


if __name__ == "__main__":
    main()
