#!/usr/bin/python3
"""Write-side cost of pg_trickle's change capture: triggers, and WAL (logical decoding).

Run through bench/cdc_overhead.sh, which starts the benchmark cluster and sets BENCH_* variables.
Prints figures; asserts nothing.

Modes over the same table t (100,000 rows, primary key + one secondary index):
  plain    no stream table over t (no capture triggers)
  tracked  a DIFFERENTIAL stream table over t: SELECT * FROM t WHERE k % 10 = 0
           (four statement-level capture triggers on t, one change buffer)
  stmt     as tracked, with pg_trickle.direct_capture = off: the triggers write the buffer through an
           INSERT ... SELECT statement instead of directly (the way capture worked before)
  wal      the same stream table with cdc_mode => 'wal', moved to WAL capture before the run
           (pgtrickle.advance_cdc_transitions()): no triggers, REPLICA IDENTITY FULL on t, a logical
           replication slot retaining WAL; changes are decoded into the buffer by the refresh, which
           is not part of the timed statements (its time is printed separately in part 2)

Part 1 (pgbench, -n -M prepared): single-row INSERT and single-row UPDATE, 1 and 2 clients.
Every pgbench run starts from a freshly created and loaded table (VACUUM ANALYZE, CHECKPOINT); in
tracked mode the stream table is created (and populated) on it, so its change buffer starts empty
and grows during the run (nothing refreshes or trims during a run). Modes alternate, the order
flipping every round.

Part 2: one 100,000-row INSERT ... SELECT, UPDATE and DELETE per repetition, timed on the client
(autocommit). Every repetition runs each mode on a freshly created and loaded table (modes alternate,
the order flipping every repetition); after the statements, the stream table is refreshed (its time
printed, not part of the statements'). Ratios are taken within each repetition (the modes ran
back to back) and their median reported, as in part 1.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import DB, HOST, PORT, connect

PGBIN = os.environ["PGBIN"]
BASE_ROWS = 100_000
BULK_ROWS = 100_000
ST_QUERY = "SELECT * FROM public.t WHERE k % 10 = 0"

INSERT_SQL = """\\set k random(1, 1000)
INSERT INTO t (k, v, note) VALUES (:k, :k, 'pgbench row');
"""
UPDATE_SQL = f"""\\set id random(1, {BASE_ROWS})
UPDATE t SET v = v + 1 WHERE id = :id;
"""


def fresh(conn, mode):
    """t rebuilt with BASE_ROWS rows; in tracked mode with a DIFFERENTIAL stream table over it."""
    if conn.execute("SELECT 1 FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st'").fetchone():
        conn.execute("SELECT pgtrickle.drop_stream_table('st')")
    conn.execute("DROP TABLE IF EXISTS t")
    conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL, note text)")
    conn.execute("CREATE INDEX t_k ON t (k)")
    conn.execute(f"INSERT INTO t (k, v, note) SELECT g % 1000, g, 'row ' || g FROM generate_series(1, {BASE_ROWS}) g")
    conn.execute("VACUUM ANALYZE t")
    conn.execute("SET pg_trickle.direct_capture = " + ("off" if mode == "stmt" else "on"))
    if mode in ("tracked", "stmt", "wal"):
        conn.execute("SELECT pgtrickle.create_stream_table('st', %s, refresh_mode => 'DIFFERENTIAL', cdc_mode => %s)",
                     (ST_QUERY, "wal" if mode == "wal" else "trigger"))
        conn.execute("VACUUM ANALYZE st")
    if mode == "wal":
        for _ in range(50):
            conn.execute("SELECT pgtrickle.advance_cdc_transitions()")
            if conn.execute("SELECT cdc_mode FROM pgtrickle.pgt_change_tracking WHERE source_relid = 't'::regclass"
                            ).fetchone()[0] == "WAL":
                break
        else:
            sys.exit("t did not move to WAL capture")
    conn.execute("CHECKPOINT")


def buffer_name(conn):
    r = conn.execute("SELECT buffer_name FROM pgtrickle.pgt_change_tracking WHERE source_relid = 't'::regclass"
                     ).fetchone()
    return r[0] if r else None


def buffer_rows(conn):
    b = buffer_name(conn)
    if not b:
        return 0
    return conn.execute(f'SELECT count(*) FROM pgtrickle_changes."{b}"').fetchone()[0]


def pgbench(script_path, clients, seconds, mode):
    env = dict(os.environ, PGOPTIONS="-c pg_trickle.direct_capture=" + ("off" if mode == "stmt" else "on"))
    cmd = [f"{PGBIN}/pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients), "-T", str(seconds),
           "-f", script_path, "-h", HOST, "-p", PORT, "-U", "postgres", DB]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"pgbench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out = proc.stdout
    tps = float(re.search(r"^tps = ([0-9.]+)", out, re.M).group(1))
    lat = float(re.search(r"^latency average = ([0-9.]+) ms", out, re.M).group(1))
    n = int(re.search(r"^number of transactions actually processed: (\d+)", out, re.M).group(1))
    return tps, lat, n


def part1(conn, seconds, rounds, client_counts, workloads=("insert", "update"), modes=("plain", "tracked")):
    print(f"\n== Part 1: pgbench single-row statements (-n -M prepared -T {seconds}, {rounds} round(s) per cell)")
    print("   each run: fresh 100,000-row table; tracked = DIFFERENTIAL stream table over it (trigger capture); "
          "wal = the same, WAL capture; buffer not trimmed (nor WAL decoded) during the run")
    tmpdir = tempfile.TemporaryDirectory(prefix="pgt-cdc-")  # removed when part1 returns
    tmp = tmpdir.name
    scripts = {}
    for name, body in (("insert", INSERT_SQL), ("update", UPDATE_SQL)):
        scripts[name] = os.path.join(tmp, name + ".sql")
        with open(scripts[name], "w") as f:
            f.write(body)
    results = {}
    by_round = {}  # (workload, clients, round) -> {mode: TPS}: the modes of one round ran back to back
    for workload in workloads:
        for clients in client_counts:
            for rnd in range(rounds):
                order = list(modes) if rnd % 2 == 0 else list(reversed(modes))
                for mode in order:
                    fresh(conn, mode)
                    tps, lat, n = pgbench(scripts[workload], clients, seconds, mode)
                    buf = buffer_rows(conn) if mode != "plain" else 0
                    results.setdefault((workload, clients, mode), []).append(tps)
                    by_round.setdefault((workload, clients, rnd), {})[mode] = tps
                    print(f"   {workload:6} clients={clients} round={rnd + 1} {mode:7}: {tps:9.1f} TPS, "
                          f"latency {lat * 1000:7.1f} us, {n} statements, buffer rows at end {buf}", flush=True)
    print()
    tracked_modes = [m for m in modes if m != "plain"]
    head = "| statement | clients | plain TPS best (mean) | " + " | ".join(
        f"{m} TPS best (mean) | {m} kept best (mean) | {m} overhead us/stmt best" for m in tracked_modes) + " |"
    print(head)
    print("|---|--:|--:|" + "--:|--:|--:|" * len(tracked_modes))
    for workload in workloads:
        for clients in client_counts:
            pr = results[(workload, clients, "plain")]
            pb, pm = max(pr), statistics.mean(pr)
            pus = clients * 1e6 / pb
            label = "INSERT 1 row" if workload == "insert" else "UPDATE 1 row"
            cells = []
            for m in tracked_modes:
                tr = results[(workload, clients, m)]
                tb, tm = max(tr), statistics.mean(tr)
                cells.append(f"{tb:.0f} ({tm:.0f}) | {100 * tb / pb:.1f} % ({100 * tm / pm:.1f} %) | "
                             f"{clients * 1e6 / tb - pus:.1f}")
            print(f"| {label} | {clients} | {pb:.0f} ({pm:.0f}) | " + " | ".join(cells) + " |")
    print("   (best = the round with the highest TPS, the least disturbed by anything else on the machine; mean = over "
          "rounds; kept = TPS / plain TPS; overhead = mode - plain us/stmt at the best rounds, us/stmt = clients / TPS)")
    # The machine's speed drifts over minutes (shared hosts); the modes of one round ran within a minute
    # of each other, so the ratio within each round is the steadier figure.
    print()
    print("| statement | clients | " + " | ".join(f"{m} kept: median of per-round ratios (min-max)"
                                                   for m in tracked_modes) + " |")
    print("|---|--:|" + "--:|" * len(tracked_modes))
    for workload in workloads:
        for clients in client_counts:
            label = "INSERT 1 row" if workload == "insert" else "UPDATE 1 row"
            cells = []
            for m in tracked_modes:
                ratios = [r[m] / r["plain"] for (w, c, _), r in by_round.items() if w == workload and c == clients]
                cells.append(f"{100 * statistics.median(ratios):.1f} % ({100 * min(ratios):.0f}-{100 * max(ratios):.0f} %)")
            print(f"| {label} | {clients} | " + " | ".join(cells) + " |")


def part2(conn, reps, modes=("plain", "tracked")):
    print(f"\n== Part 2: {BULK_ROWS:,}-row statements (client time, autocommit, {reps} repetition(s), each mode on a "
          "fresh table per repetition)")
    print("   after the statements: refresh (not timed with them; wal: decodes first)")
    times = {}
    by_rep = {}  # (op, rep) -> {mode: seconds}
    for rep in range(reps):
        order = list(modes) if rep % 2 == 0 else list(reversed(modes))
        for mode in order:
            fresh(conn, mode)
            row = []
            for op, stmt in (
                ("INSERT", f"INSERT INTO t (k, v, note) SELECT g % 1000, g, 'bulk ' || g "
                           f"FROM generate_series(1, {BULK_ROWS}) g"),
                ("UPDATE", f"UPDATE t SET v = v + 1 WHERE id > {BASE_ROWS}"),
                ("DELETE", f"DELETE FROM t WHERE id > {BASE_ROWS}"),
            ):
                t0 = time.perf_counter()
                cur = conn.execute(stmt)
                dt = time.perf_counter() - t0
                if cur.rowcount != BULK_ROWS:
                    print(f"   warning: {op} affected {cur.rowcount} rows, expected {BULK_ROWS}")
                times.setdefault((op, mode), []).append(dt)
                by_rep.setdefault((op, rep), {})[mode] = dt
                row.append(f"{op} {dt * 1000:7.1f} ms")
            extra = ""
            if mode != "plain":
                buf = buffer_rows(conn)
                t0 = time.perf_counter()
                conn.execute("SELECT pgtrickle.refresh_stream_table('st')")
                rdt = time.perf_counter() - t0
                act = conn.execute("SELECT action FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables"
                                   " s USING (pgt_id) WHERE s.pgt_name = 'st' ORDER BY refresh_id DESC LIMIT 1"
                                   ).fetchone()[0]
                times.setdefault(("refresh", mode), []).append(rdt)
                extra = f"; buffer {buf} rows before the refresh, refresh ({act}) {rdt * 1000:.0f} ms"
            print(f"   {mode:7} rep {rep + 1}: " + ", ".join(row) + extra, flush=True)
    conn.execute("RESET pg_trickle.direct_capture")
    print()
    tracked_modes = [m for m in modes if m != "plain"]
    print("| statement (100,000 rows) | plain ms median (min-max) | " + " | ".join(
        f"{m} ms median (min-max) | {m} / plain: median of per-repetition ratios (min-max)" for m in tracked_modes)
        + " |")
    print("|---|--:|" + "--:|--:|" * len(tracked_modes))
    for op in ("INSERT", "UPDATE", "DELETE"):
        p = times[(op, "plain")]
        pm = statistics.median(p)
        cells = []
        for m in tracked_modes:
            t = times[(op, m)]
            tm = statistics.median(t)
            ratios = [r[m] / r["plain"] for (o, _), r in by_rep.items() if o == op]
            cells.append(f"{tm * 1000:.1f} ({min(t) * 1000:.1f}-{max(t) * 1000:.1f}) | "
                         f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
        print(f"| {op} | {pm * 1000:.1f} ({min(p) * 1000:.1f}-{max(p) * 1000:.1f}) | " + " | ".join(cells) + " |")
    for m in tracked_modes:
        r = times[("refresh", m)]
        print(f"   refresh after each repetition ({m}; 300,000 changes, of which 1/10 reach the stream table): "
              f"median {statistics.median(r) * 1000:.0f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("PGT_BENCH_SECONDS", 15)))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("PGT_BENCH_ROUNDS", 3)))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--clients", default="1,2")
    ap.add_argument("--workloads", default="insert,update")
    ap.add_argument("--skip-pgbench", action="store_true")
    ap.add_argument("--skip-bulk", action="store_true")
    ap.add_argument("--modes", default="plain,tracked,wal",
                    help="plain and any of tracked (triggers), stmt (triggers through a statement), wal")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    modes = tuple(m for m in args.modes.split(",") if m)
    if modes[0] != "plain" or not set(modes) <= {"plain", "tracked", "stmt", "wal"}:
        sys.exit("--modes: plain first, then any of tracked, stmt, wal")
    with connect() as conn:
        if not args.skip_pgbench:
            part1(conn, args.seconds, args.rounds, clients, tuple(args.workloads.split(",")), modes)
        if not args.skip_bulk:
            part2(conn, args.reps, modes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
