#!/usr/bin/python3
"""WITH RECURSIVE: DIFFERENTIAL refresh after a small change vs FULL refresh of the same query.

Run through bench/recursive.sh, which starts the benchmark cluster and sets BENCH_* variables.
Prints figures; asserts nothing. It warns when a timed DIFFERENTIAL refresh was not DIFFERENTIAL, and when
the DIFFERENTIAL stream table differs from its query after a refresh (EXCEPT ALL both ways, checked after
every refresh); figures of a change kind with a wrong result are marked as such in the table.

Each case has two stream tables over the same query, <case>_diff (refresh_mode DIFFERENTIAL) and <case>_full
(refresh_mode FULL). For each change kind, repeated --reps times (each repetition a fresh change of the same
kind, on other rows): make the change (autocommit), time refresh_stream_table('<case>_diff'), check it, time
refresh_stream_table('<case>_full'). Both refreshes see the same state. Client time is time.perf_counter()
around the statement (Unix socket); server time is end_time - start_time of its pgt_refresh_history row.

1. tree (UNION ALL): nodes(id PK, parent_id, name), --tree-nodes rows, one root, generated breadth-first:
   each node is a leaf with probability 1/4 (the root never), otherwise it gets 2-12 children.
     WITH RECURSIVE t(id, parent_id, name, path, depth) AS (
       SELECT id, parent_id, name, name, 0 FROM nodes WHERE parent_id IS NULL
       UNION ALL
       SELECT n.id, n.parent_id, n.name, t.path || '/' || n.name, t.depth + 1
       FROM nodes n JOIN t ON n.parent_id = t.id)
     SELECT id, parent_id, name, path, depth FROM t
   Changes: insert a leaf (under a random inner node of depth >= 3); rename a leaf; delete a leaf; rename an
   inner node of depth --inner-depth (its whole subtree's paths change); move such a node under another
   node of depth --inner-depth - 1 (paths of its subtree change).
2. graph (UNION): edges(src, dst, PRIMARY KEY (src, dst)) and roots(id PK). The edges are a tree generated as
   above over --graph-nodes nodes plus, for --extra-edges of the nodes c, one more edge (a, c) from a node a
   at most 50 positions before c in breadth-first order (so the graph is a DAG, and most extra edges stay in
   the same part of the tree). Roots: every node of depth <= --root-depth.
     WITH RECURSIVE reach(root, node) AS (
       SELECT r.id, e.dst FROM roots r JOIN edges e ON e.src = r.id
       UNION
       SELECT reach.root, e.dst FROM reach JOIN edges e ON e.src = reach.node)
     SELECT root, node FROM reach
   Changes: insert an edge (a, c) from any node a to a node c of depth >= 3 with a < c (so the graph stays
   acyclic; the roots above a that did not reach c gain what c reaches); delete the tree edge into a node of depth >= 3
   that has another incoming edge (an alternative path usually remains: delete and rederive); delete the
   only edge into a node of depth >= 3 (no alternative path: the node and what is reachable only through it
   disappear for the roots above it).
"""
import argparse
import collections
import random
import statistics
import sys
import time

from bench_common import connect, timed

TREE_Q = """WITH RECURSIVE t(id, parent_id, name, path, depth) AS (
  SELECT id, parent_id, name, name, 0 FROM nodes WHERE parent_id IS NULL
  UNION ALL
  SELECT n.id, n.parent_id, n.name, t.path || '/' || n.name, t.depth + 1
  FROM nodes n JOIN t ON n.parent_id = t.id)
SELECT id, parent_id, name, path, depth FROM t"""
TREE_COLS = "id, parent_id, name, path, depth"

GRAPH_Q = """WITH RECURSIVE reach(root, node) AS (
  SELECT r.id, e.dst FROM roots r JOIN edges e ON e.src = r.id
  UNION
  SELECT reach.root, e.dst FROM reach JOIN edges e ON e.src = reach.node)
SELECT root, node FROM reach"""
GRAPH_COLS = "root, node"

WINDOW = 50  # extra edges come from at most this many positions earlier in breadth-first order


def gen_tree(n, rng):
    """Breadth-first tree over ids 1..n rooted at 1: (parent list, depth list, children lists)."""
    parent = [None] * (n + 1)
    depth = [0] * (n + 1)
    children = [[] for _ in range(n + 1)]
    queue = collections.deque([1])
    nxt = 2
    while nxt <= n and queue:
        p = queue.popleft()
        if p != 1 and rng.random() < 0.25:
            continue
        for _ in range(rng.randint(2, 12)):
            if nxt > n:
                break
            parent[nxt] = p
            depth[nxt] = depth[p] + 1
            children[p].append(nxt)
            queue.append(nxt)
            nxt += 1
    assert nxt > n, "tree generation stopped early"
    return parent, depth, children


def subtree_size(children, v):
    size, stack = 0, [v]
    while stack:
        x = stack.pop()
        size += 1
        stack.extend(children[x])
    return size


def copy_rows(conn, table, cols, rows):
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)


def create_pair(conn, case, query, cols):
    ms_d = timed(conn, "SELECT pgtrickle.create_stream_table(%s, %s, refresh_mode => 'DIFFERENTIAL')",
                 (f"{case}_diff", query))
    ms_f = timed(conn, "SELECT pgtrickle.create_stream_table(%s, %s, refresh_mode => 'FULL')", (f"{case}_full", query))
    n = conn.execute(f"SELECT count(*) FROM {case}_diff").fetchone()[0]
    # The delta statement joins the storage table (the old result) and probes it by index; its plan is only
    # as good as the storage table's statistics, which a freshly filled table does not have yet.
    for s in ("diff", "full"):
        conn.execute(f"VACUUM ANALYZE {case}_{s}")
    print(f"   {case}: {n:,} rows; create: DIFFERENTIAL st {ms_d:.0f} ms, FULL st {ms_f:.0f} ms; "
          f"both stream tables VACUUM ANALYZEd after creation (the delta's plan uses the storage table's "
          f"statistics)")
    return n


class Case:
    def __init__(self, conn, name, query, cols):
        self.conn, self.name, self.query, self.cols = conn, name, query, cols
        self.ids = {s: conn.execute("SELECT pgt_id FROM pgtrickle.pgt_stream_tables WHERE pgt_name = %s",
                                    (f"{name}_{s}",)).fetchone()[0] for s in ("diff", "full")}
        self.warnings = 0
        self.wrong = collections.Counter()

    def last_history(self, s):
        return self.conn.execute(
            "SELECT action, extract(epoch FROM end_time - start_time) * 1000, rows_inserted, rows_deleted, "
            "fallback_reason FROM pgtrickle.pgt_refresh_history WHERE pgt_id = %s "
            "ORDER BY refresh_id DESC LIMIT 1", (self.ids[s],)).fetchone()

    def refresh(self, s, expect):
        ms = timed(self.conn, "SELECT pgtrickle.refresh_stream_table(%s)", (f"{self.name}_{s}",))
        action, server_ms, ins, dele, reason = self.last_history(s)
        if action != expect:
            self.warnings += 1
            print(f"   WARNING: refresh of {self.name}_{s} was {action}, expected {expect}"
                  + (f" (fallback: {reason})" if reason else ""))
        return ms, float(server_ms), ins, dele

    def check(self, kind):
        """Rows in which <case>_diff and its query differ (EXCEPT ALL both ways)."""
        st = f"SELECT {self.cols} FROM {self.name}_diff"
        n = self.conn.execute(f"SELECT (SELECT count(*) FROM (({st}) EXCEPT ALL ({self.query})) a) + "
                              f"(SELECT count(*) FROM (({self.query}) EXCEPT ALL ({st})) b)").fetchone()[0]
        if n:
            self.wrong[kind] += 1
            print(f"   WARNING: {self.name}_diff differs from its query after a {kind} refresh: {n} rows")
        return n


def run_case(case, kinds, change, args, res):
    """Warm-up rounds over the small change kinds, then --reps timed repetitions per change kind."""
    small = [k for k in kinds if k in change.small]
    for i in range(args.warmup):
        k = small[i % len(small)]
        change(k)
        case.refresh("diff", "DIFFERENTIAL")
        case.check("warm-up")
        case.refresh("full", "FULL")
    print(f"   {args.warmup} untimed warm-up rounds done ({', '.join(small)} in turn)")
    for kind in kinds:
        for rep in range(args.reps):
            info = change(kind)
            d_ms, d_sms, ins, dele = case.refresh("diff", "DIFFERENTIAL")
            bad = case.check(kind)
            f_ms, f_sms, _, _ = case.refresh("full", "FULL")
            r = res.setdefault((case.name, kind), collections.defaultdict(list))
            r["diff"].append(d_ms)
            r["diff_server"].append(d_sms)
            r["full"].append(f_ms)
            r["full_server"].append(f_sms)
            r["ins"].append(ins)
            r["del"].append(dele)
            if info is not None:
                r["info"].append(info)
            print(f"   {case.name} {kind} rep {rep + 1}: DIFF {d_ms:.1f} ms (server {d_sms:.1f}; -{dele} +{ins} rows"
                  f"{'' if info is None else f'; {change.info_label} {info:,}'}) | FULL {f_ms:.0f} ms (server "
                  f"{f_sms:.0f})" + (f"  WRONG: {bad} rows differ" if bad else ""), flush=True)


class TreeChanges:
    small = ("insert leaf", "rename leaf", "delete leaf")
    info_label = "subtree"

    def __init__(self, conn, rng, n, parent, depth, children, inner_depth):
        self.conn, self.rng = conn, rng
        leaves = [v for v in range(2, n + 1) if not children[v]]
        rng.shuffle(leaves)
        half = len(leaves) // 2
        self.rename_pool, self.delete_pool = leaves[:half], leaves[half:]
        self.insert_parents = [v for v in range(2, n + 1) if children[v] and depth[v] >= 3]
        high = [v for v in range(2, n + 1) if depth[v] == inner_depth and children[v]]
        rng.shuffle(high)
        self.inner_rename_pool, self.inner_move_pool = high[0::2], high[1::2]
        self.new_parents = [v for v in range(1, n + 1) if depth[v] == inner_depth - 1]
        self.parent, self.children = parent, children
        self.next_id = n + 1

    def __call__(self, kind):
        c = self.conn
        if kind == "insert leaf":
            c.execute("INSERT INTO nodes VALUES (%s, %s, %s)",
                      (self.next_id, self.rng.choice(self.insert_parents), f"new_{self.next_id}"))
            self.next_id += 1
        elif kind == "rename leaf":
            c.execute("UPDATE nodes SET name = name || '_r' WHERE id = %s", (self.rename_pool.pop(),))
        elif kind == "delete leaf":
            c.execute("DELETE FROM nodes WHERE id = %s", (self.delete_pool.pop(),))
        elif kind == "rename inner node":
            v = self.inner_rename_pool.pop()
            c.execute("UPDATE nodes SET name = name || '_r' WHERE id = %s", (v,))
            return subtree_size(self.children, v)
        elif kind == "move inner node":
            v = self.inner_move_pool.pop()
            to = self.rng.choice([p for p in self.new_parents if p != self.parent[v]])
            c.execute("UPDATE nodes SET parent_id = %s WHERE id = %s", (to, v))
            self.parent[v] = to
            return subtree_size(self.children, v)
        return None


class GraphChanges:
    small = ("insert edge", "delete edge, alternative", "delete edge, no alternative")
    info_label = "subtree"

    def __init__(self, conn, rng, n, edges, parent, depth, children):
        self.conn, self.rng, self.n = conn, rng, n
        self.edges = edges
        indeg = collections.Counter(d for _, d in edges)
        alt = [c for c in range(2, n + 1) if depth[c] >= 3 and indeg[c] >= 2]
        only = [c for c in range(2, n + 1) if depth[c] >= 3 and indeg[c] == 1]
        rng.shuffle(alt)
        rng.shuffle(only)
        self.alt_pool, self.only_pool = alt, only
        self.deep = [c for c in range(2, n + 1) if depth[c] >= 3]
        self.parent, self.children = parent, children

    def __call__(self, kind):
        c = self.conn
        if kind == "insert edge":
            while True:  # src < dst keeps the graph acyclic
                dst = self.rng.choice(self.deep)
                src = self.rng.randint(2, dst - 1)
                if (src, dst) not in self.edges:
                    break
            self.edges.add((src, dst))
            c.execute("INSERT INTO edges VALUES (%s, %s)", (src, dst))
            return None
        pool = self.alt_pool if kind == "delete edge, alternative" else self.only_pool
        while True:
            v = pool.pop()
            if (self.parent[v], v) in self.edges:
                break
        self.edges.discard((self.parent[v], v))
        c.execute("DELETE FROM edges WHERE src = %s AND dst = %s", (self.parent[v], v))
        return subtree_size(self.children, v)


def fmt(xs):
    return f"{statistics.median(xs):.1f} ({min(xs):.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree-nodes", type=int, default=250_000)
    ap.add_argument("--inner-depth", type=int, default=2,
                    help="depth (root = 0) of the inner nodes renamed and moved")
    ap.add_argument("--graph-nodes", type=int, default=100_000)
    ap.add_argument("--extra-edges", type=float, default=0.2, help="fraction of nodes with a second incoming edge")
    ap.add_argument("--root-depth", type=int, default=2, help="roots of the graph case: nodes of depth <= this")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per change kind")
    ap.add_argument("--warmup", type=int, default=6, help="untimed change+refresh rounds per case first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", default="tree,graph")
    args = ap.parse_args()
    cases = args.cases.split(",")

    conn = connect()
    rng = random.Random(args.seed)
    res = {}
    all_cases = []

    if "tree" in cases:
        print(f"\n== Case 1: tree expansion, UNION ALL ({args.tree_nodes:,} nodes)")
        t0 = time.perf_counter()
        parent, depth, children = gen_tree(args.tree_nodes, rng)
        conn.execute("CREATE TABLE nodes (id int PRIMARY KEY, parent_id int, name text NOT NULL)")
        copy_rows(conn, "nodes", "id, parent_id, name",
                  ((i, parent[i], f"node_{i}") for i in range(1, args.tree_nodes + 1)))
        conn.execute("CREATE INDEX nodes_parent_id ON nodes (parent_id)")
        conn.execute("VACUUM ANALYZE nodes")
        dist = collections.Counter(depth[1:])
        inner = sum(1 for v in range(1, args.tree_nodes + 1) if children[v])
        print(f"   loaded in {time.perf_counter() - t0:.1f} s; depth 0-{max(dist)}, nodes per depth "
              + " ".join(f"{d}:{dist[d]}" for d in sorted(dist))
              + f"; {inner:,} inner nodes (mean fan-out {(args.tree_nodes - 1) / inner:.1f}), "
              f"{args.tree_nodes - inner:,} leaves")
        create_pair(conn, "tree", TREE_Q, TREE_COLS)
        conn.execute("CHECKPOINT")
        case = Case(conn, "tree", TREE_Q, TREE_COLS)
        ch = TreeChanges(conn, rng, args.tree_nodes, parent, depth, children, args.inner_depth)
        sizes = sorted(subtree_size(children, v) for v in ch.inner_rename_pool + ch.inner_move_pool)
        print(f"   inner nodes of depth {args.inner_depth}: {len(sizes)}, subtree sizes {sizes[0]:,}-{sizes[-1]:,} "
              f"(median {statistics.median(sizes):,.0f})")
        run_case(case, ("insert leaf", "rename leaf", "delete leaf", "rename inner node", "move inner node"),
                 ch, args, res)
        all_cases.append(case)

    if "graph" in cases:
        print(f"\n== Case 2: graph reachability, UNION ({args.graph_nodes:,} nodes)")
        t0 = time.perf_counter()
        parent, depth, children = gen_tree(args.graph_nodes, rng)
        edges = {(parent[c], c) for c in range(2, args.graph_nodes + 1)}
        for c in range(WINDOW + 2, args.graph_nodes + 1):
            if rng.random() < args.extra_edges:
                a = c - rng.randint(1, WINDOW)
                edges.add((a, c))
        conn.execute("CREATE TABLE edges (src int NOT NULL, dst int NOT NULL, PRIMARY KEY (src, dst))")
        conn.execute("CREATE TABLE roots (id int PRIMARY KEY)")
        copy_rows(conn, "edges", "src, dst", sorted(edges))
        roots = [v for v in range(1, args.graph_nodes + 1) if depth[v] <= args.root_depth]
        copy_rows(conn, "roots", "id", ((v,) for v in roots))
        conn.execute("CREATE INDEX edges_dst ON edges (dst)")
        conn.execute("VACUUM ANALYZE edges")
        conn.execute("VACUUM ANALYZE roots")
        print(f"   loaded in {time.perf_counter() - t0:.1f} s; {len(edges):,} edges, {len(roots)} roots "
              f"(depth <= {args.root_depth})")
        create_pair(conn, "graph", GRAPH_Q, GRAPH_COLS)
        conn.execute("CHECKPOINT")
        case = Case(conn, "graph", GRAPH_Q, GRAPH_COLS)
        ch = GraphChanges(conn, rng, args.graph_nodes, edges, parent, depth, children)
        run_case(case, ("insert edge", "delete edge, alternative", "delete edge, no alternative"), ch, args, res)
        all_cases.append(case)

    print("\n== Results (ms; median (min) over the repetitions; FULL/DIFF: ratio of the medians, and of the minima; "
          "rows: median rows deleted/inserted by the DIFFERENTIAL refresh)\n")
    print("| case | change | DIFF client ms | DIFF server ms | FULL client ms | FULL server ms | FULL/DIFF "
          "| FULL/DIFF of minima | rows -/+ | subtree |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    wrong_total = 0
    for case in all_cases:
        for (cname, kind), r in res.items():
            if cname != case.name:
                continue
            wrong = case.wrong[kind]
            wrong_total += wrong
            d, f = statistics.median(r["diff"]), statistics.median(r["full"])
            sub = f"{statistics.median(r['info']):,.0f}" if r["info"] else ""
            ratio = f"{f / d:.1f}x" if not wrong else f"(WRONG in {wrong} of {len(r['diff'])})"
            ratio_min = f"{min(r['full']) / min(r['diff']):.1f}x" if not wrong else "-"
            print(f"| {cname} | {kind} | {fmt(r['diff'])} | {fmt(r['diff_server'])} | {fmt(r['full'])} "
                  f"| {fmt(r['full_server'])} | {ratio} | {ratio_min} "
                  f"| {statistics.median(r['del']):,.0f}/{statistics.median(r['ins']):,.0f} | {sub} |")
    print()
    for case in all_cases:
        print(f"   {case.name}: refreshes that were not the expected action: {case.warnings}; "
              f"DIFFERENTIAL results that differed from the query: {sum(case.wrong.values())}")
        full_check = conn.execute(
            f"SELECT (SELECT count(*) FROM ((SELECT {case.cols} FROM {case.name}_full) EXCEPT ALL "
            f"(SELECT {case.cols} FROM {case.name}_diff)) a) + (SELECT count(*) FROM ((SELECT {case.cols} FROM "
            f"{case.name}_diff) EXCEPT ALL (SELECT {case.cols} FROM {case.name}_full)) b)").fetchone()[0]
        print(f"   {case.name}_diff vs {case.name}_full at the end: "
              + ("same contents" if full_check == 0 else f"WARNING: {full_check} rows differ"))
    if wrong_total:
        print(f"   WARNING: {wrong_total} DIFFERENTIAL refreshes gave wrong results; their ratios are not reported")
    other = conn.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE initiated_by = 'SCHEDULER'"
                         ).fetchone()[0]
    if other:
        print(f"   WARNING: {other} refreshes were started by the scheduler during the run")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
