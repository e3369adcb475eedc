"""The background scheduler against a real server: schedules, calculated propagation through a chain
and a diamond, the getting-started tutorial, failures with suspension and NOTIFY alerts, and the
worker coming back after being killed. Every check compares contents with the query (multisets)."""
import json
import os
import signal
import time

import psycopg
import pytest

from pgt_helpers import create_st, st_vs_query, drop_database

SCHED_CONF = """
pg_trickle.enabled = on
pg_trickle.scheduler_interval_ms = 200
"""
TICK = 0.2


@pytest.fixture(scope="module")
def sched_cluster(cluster_factory):
    return cluster_factory.new("sched", extra_conf=SCHED_CONF)


@pytest.fixture
def sdb(sched_cluster, request):
    name = "s_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    with sched_cluster.connect() as admin:
        drop_database(admin, name)
        admin.execute(f'CREATE DATABASE "{name}"')
    conn = sched_cluster.connect(name)
    conn.execute("CREATE EXTENSION pg_trickle")
    yield conn
    conn.close()
    with sched_cluster.connect() as admin:
        drop_database(admin, name)


def wait_until_matches(conn, pairs, timeout):
    """Polls until every (stream table, query) pair matches; returns the seconds it took."""
    start = time.monotonic()
    while True:
        bad = [(st, st_vs_query(conn, st, q)) for st, q in pairs]
        bad = [(st, d) for st, d in bad if d[0] or d[1]]
        if not bad:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            msg = "\n".join(f"{st}: extra={d[0][:5]} missing={d[1][:5]}" for st, d in bad)
            pytest.fail(f"stream tables not up to date after {timeout}s:\n{msg}", pytrace=False)
        time.sleep(0.05)


def history(conn, st):
    return conn.execute(
        "SELECT action, h.status, initiated_by FROM pgtrickle.pgt_refresh_history h "
        "JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = %s ORDER BY refresh_id", (st,)).fetchall()


# The getting-started tutorial: departments, employees, a recursive tree, stats, a report.
TREE = """WITH RECURSIVE tree AS (
    SELECT id, name, parent_id, name AS path, 0 AS depth FROM departments WHERE parent_id IS NULL
    UNION ALL
    SELECT d.id, d.name, d.parent_id, tree.path || ' > ' || d.name AS path, tree.depth + 1
    FROM departments d JOIN tree ON d.parent_id = tree.id)
  SELECT id, name, parent_id, path, depth FROM tree"""
STATS = """SELECT t.id AS department_id, t.name AS department_name, t.path AS full_path, t.depth,
         COUNT(e.id) AS headcount, COALESCE(SUM(e.salary),0) AS total_salary, COALESCE(AVG(e.salary),0) AS avg_salary
  FROM department_tree t LEFT JOIN employees e ON e.department_id = t.id
  GROUP BY t.id, t.name, t.path, t.depth"""
REPORT = """SELECT split_part(full_path,' > ',2) AS division, SUM(headcount) AS total_headcount,
         SUM(total_salary) AS total_payroll
  FROM department_stats WHERE depth >= 1 GROUP BY 1"""


def test_tutorial_three_layers_kept_fresh_by_scheduler(sdb):
    c = sdb
    c.execute("CREATE TABLE departments (id SERIAL PRIMARY KEY, name TEXT NOT NULL, parent_id INT REFERENCES departments(id))")
    c.execute("CREATE TABLE employees (id SERIAL PRIMARY KEY, name TEXT NOT NULL, "
              "department_id INT NOT NULL REFERENCES departments(id), salary NUMERIC(10,2) NOT NULL)")
    c.execute("INSERT INTO departments (id,name,parent_id) VALUES (1,'Company',NULL),(2,'Engineering',1),(3,'Sales',1),"
              "(4,'Operations',1),(5,'Backend',2),(6,'Frontend',2),(7,'Platform',2)")
    c.execute("INSERT INTO employees (name,department_id,salary) VALUES ('Alice',5,120000),('Bob',5,115000),"
              "('Charlie',6,110000),('Diana',7,130000),('Eve',3,95000),('Frank',3,90000),('Grace',4,100000)")
    create_st(c, "department_tree", TREE, schedule="calculated")
    create_st(c, "department_stats", STATS, schedule="calculated")
    create_st(c, "department_report", REPORT, schedule="1s")
    eff = dict(c.execute("SELECT pgt_name, effective_schedule FROM pgtrickle.stream_tables_info").fetchall())
    assert eff == {"department_tree": "1s", "department_stats": "1s", "department_report": "1s"}
    pairs = [("department_tree", TREE), ("department_stats", STATS), ("department_report", REPORT)]
    budget = 1.0 + 2 * TICK + 1.5  # the consumer's schedule, two scheduler cycles, refresh time on a debug build
    for dml in ["INSERT INTO employees (name,department_id,salary) VALUES ('Heidi',6,105000)",
                "INSERT INTO departments (id,name,parent_id) VALUES (8,'DevOps',2)",
                "UPDATE departments SET name = 'R&D' WHERE id = 2",
                "DELETE FROM employees WHERE name = 'Bob'"]:
        c.execute(dml)
        took = wait_until_matches(c, pairs, timeout=15)
        assert took <= budget, f"after {dml!r} the layers took {took:.2f}s to catch up (budget {budget:.2f}s)"
    report = dict((r[0], (r[1], r[2])) for r in c.execute("SELECT division, total_headcount, total_payroll "
                                                           "FROM department_report").fetchall())
    assert report["R&D"] == (4, 465000)
    assert all(s == "SCHEDULER" for _, _, s in history(c, "department_report")[1:])


def test_calculated_chain_pulled_by_consumer(sdb):
    c = sdb
    c.execute("CREATE TABLE src (id int PRIMARY KEY, g int, v int)")
    c.execute("INSERT INTO src SELECT i, i % 5, i FROM generate_series(1, 100) i")
    q1 = "SELECT g, sum(v) AS s, count(*) AS n FROM src GROUP BY g"
    q2 = "SELECT g, s FROM level1 WHERE n > 0"
    q3 = "SELECT sum(s) AS total FROM level2"
    create_st(c, "level1", q1)
    create_st(c, "level2", q2)
    create_st(c, "level3", q3, schedule="2s")
    eff = dict(c.execute("SELECT pgt_name, effective_schedule FROM pgtrickle.stream_tables_info").fetchall())
    assert eff == {"level1": "2s", "level2": "2s", "level3": "2s"}
    time.sleep(3)  # let the first scheduled cycle pass
    c.execute("UPDATE src SET v = v + 1000 WHERE id = 7")
    wait_until_matches(c, [("level1", q1), ("level2", q2), ("level3", q3)], timeout=2 + 2 * TICK + 3)
    # Pulled: the upstream layers refresh in the same ticks as the consumer, not on every change.
    l1 = [a for a, s, _ in history(c, "level1") if s == "COMPLETED"]
    l3 = [a for a, s, _ in history(c, "level3") if s == "COMPLETED"]
    assert len(l1) <= len(l3) + 1


def test_calculated_without_consumer_follows_source_changes(sdb):
    c = sdb
    c.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
    q = "SELECT id, v FROM t WHERE v % 2 = 0"
    create_st(c, "evens", q)
    eff = c.execute("SELECT effective_schedule FROM pgtrickle.stream_tables_info").fetchone()[0]
    assert eff == "on source change"
    for i in range(5):
        c.execute("INSERT INTO t VALUES (%s, %s)", (i, i))
        wait_until_matches(c, [("evens", q)], timeout=3)
    # No changes: no refresh attempts.
    n = len(history(c, "evens"))
    time.sleep(1)
    assert len(history(c, "evens")) == n


def test_diamond_is_consistent(sdb):
    c = sdb
    c.execute("CREATE TABLE base (id int PRIMARY KEY, v int)")
    c.execute("INSERT INTO base SELECT i, i FROM generate_series(1, 50) i")
    ql = "SELECT id, v FROM base WHERE v % 2 = 0"
    qr = "SELECT id, v * 10 AS w FROM base"
    qb = "SELECT l.id, l.v, r.w FROM left_side l JOIN right_side r ON r.id = l.id"
    create_st(c, "left_side", ql)
    create_st(c, "right_side", qr)
    create_st(c, "bottom", qb, schedule="1s")
    for stmt in ["UPDATE base SET v = v + 1 WHERE id <= 10", "DELETE FROM base WHERE id > 40",
                 "INSERT INTO base SELECT i, i FROM generate_series(100, 110) i"]:
        c.execute(stmt)
        wait_until_matches(c, [("left_side", ql), ("right_side", qr), ("bottom", qb)], timeout=6)


def test_cron_and_duration_schedules(sdb):
    c = sdb
    c.execute("CREATE TABLE t (id int PRIMARY KEY)")
    create_st(c, "every_second_cron", "SELECT count(*) AS n FROM t", schedule="* * * * * *")
    create_st(c, "every_two_seconds", "SELECT count(*) AS n FROM t", schedule="2s")
    c.execute("INSERT INTO t SELECT generate_series(1, 10)")
    wait_until_matches(c, [("every_second_cron", "SELECT count(*) AS n FROM t")], timeout=4)
    wait_until_matches(c, [("every_two_seconds", "SELECT count(*) AS n FROM t")], timeout=5)
    time.sleep(4.2)
    cron = [a for a, s, who in history(c, "every_second_cron") if who == "SCHEDULER"]
    dur = [a for a, s, who in history(c, "every_two_seconds") if who == "SCHEDULER"]
    assert len(cron) >= 4, cron
    assert 2 <= len(dur) <= len(cron), (dur, cron)


def test_failures_suspend_and_alert_then_resume(sdb, sched_cluster):
    c = sdb
    listener = sched_cluster.connect(c.info.dbname)
    received = []
    listener.add_notify_handler(lambda n: received.append(json.loads(n.payload)))
    listener.execute("LISTEN pg_trickle_alert")

    def drain(until_event, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and until_event not in [e["event"] for e in received]:
            listener.execute("SELECT 1")  # delivers pending notifications to the handler
            time.sleep(0.1)
    c.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
    c.execute("INSERT INTO t VALUES (1, 1)")
    q = "SELECT id, 100 / (v - 5) AS x FROM t"
    create_st(c, "fragile", q, schedule="1s")
    c.execute("INSERT INTO t VALUES (2, 5)")  # every refresh now divides by zero
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = c.execute("SELECT status FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'fragile'").fetchone()[0]
        if status == "SUSPENDED":
            break
        time.sleep(0.1)
    assert status == "SUSPENDED"
    failed = [h for h in history(c, "fragile") if h[1] == "FAILED"]
    assert len(failed) == 3
    drain("auto_suspended", 5)
    events = list(received)
    kinds = [e["event"] for e in events]
    assert kinds.count("refresh_failed") >= 1, kinds
    assert "auto_suspended" in kinds, kinds
    assert all(e["pgt_name"] == "fragile" for e in events if e["event"] in ("refresh_failed", "auto_suspended"))
    # Suspended: nothing more is attempted.
    n = len(history(c, "fragile"))
    time.sleep(1.5)
    assert len(history(c, "fragile")) == n
    c.execute("UPDATE t SET v = 6 WHERE id = 2")
    c.execute("SELECT pgtrickle.resume_stream_table('fragile')")
    drain("resumed", 5)
    assert "resumed" in [e["event"] for e in received]
    wait_until_matches(c, [("fragile", q)], timeout=5)
    listener.close()


def test_scheduler_comes_back_after_kill(sdb, sched_cluster):
    c = sdb
    c.execute("CREATE TABLE t (id int PRIMARY KEY)")
    q = "SELECT count(*) AS n FROM t"
    create_st(c, "counter", q, schedule="1s")
    wait_until_matches(c, [("counter", q)], timeout=5)

    def scheduler_pid():
        row = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_trickle scheduler' "
                        "AND datname = current_database()").fetchone()
        return row[0] if row else None

    deadline = time.monotonic() + 15
    while scheduler_pid() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = scheduler_pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # clean exit: the launcher starts a new one
    c.execute("INSERT INTO t SELECT generate_series(1, 5)")
    wait_until_matches(c, [("counter", q)], timeout=20)
    assert scheduler_pid() not in (None, pid)


def test_scheduler_restarts_after_kill_9(cluster_factory):
    """kill -9 of the scheduler is a crash: the server restarts every process; the launcher comes back
    and refreshing resumes."""
    cl = cluster_factory.new("sched_kill9", extra_conf=SCHED_CONF)
    cl.log_checked_by_test = True
    c = cl.connect()
    c.execute("CREATE EXTENSION pg_trickle")
    c.execute("CREATE TABLE t (id int PRIMARY KEY)")
    q = "SELECT count(*) AS n FROM t"
    create_st(c, "counter", q, schedule="1s")
    deadline = time.monotonic() + 15
    pid = None
    while pid is None and time.monotonic() < deadline:
        row = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_trickle scheduler'").fetchone()
        pid = row[0] if row else None
        time.sleep(0.1)
    assert pid is not None
    c.close()
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    assert cl.wait_ready(30)
    c = cl.connect()
    c.execute("INSERT INTO t SELECT generate_series(1, 7)")
    wait_until_matches(c, [("counter", q)], timeout=40)
    c.close()
    problems = [l for l in cl.log_problems() if "terminated by signal 9" not in l]
    assert not problems, problems


def test_diamond_never_mixes_versions_under_writes(sdb, sched_cluster):
    """bottom joins two stream tables derived from one base table, one of them on a slow schedule; while
    a writer keeps changing the base, every state of bottom must pair rows from the same base version
    (left.v * 10 = right.w), and the slow one is pulled into bottom's ticks."""
    import threading
    c = sdb
    c.execute("CREATE TABLE base (id int PRIMARY KEY, v int)")
    c.execute("INSERT INTO base SELECT i, i FROM generate_series(1, 200) i")
    create_st(c, "lhs", "SELECT id, v FROM base", schedule="10m")
    create_st(c, "rhs", "SELECT id, v * 10 AS w FROM base")
    qb = "SELECT l.id, l.v, r.w FROM lhs l JOIN rhs r ON r.id = l.id"
    create_st(c, "bottom", qb, schedule="1s")
    stop = threading.Event()

    def writer():
        w = sched_cluster.connect(c.info.dbname)
        i = 0
        while not stop.is_set():
            i += 1
            w.execute("UPDATE base SET v = v + 1 WHERE id = %s", (i % 200 + 1,))
            time.sleep(0.005)
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    bad = 0
    checks = 0
    refreshes_seen = set()
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            bad += c.execute("SELECT count(*) FROM bottom WHERE w <> v * 10").fetchone()[0]
            refreshes_seen.add(c.execute("SELECT max(refresh_id) FROM pgtrickle.get_refresh_history('bottom', 1)")
                               .fetchone()[0])
            checks += 1
            time.sleep(0.05)
    finally:
        stop.set()
        t.join()
    assert checks > 50
    assert len(refreshes_seen) >= 3, "bottom was not refreshed while the writer ran"
    assert bad == 0, f"{bad} rows of bottom combined different versions of base"
    wait_until_matches(c, [("lhs", "SELECT id, v FROM base"), ("bottom", qb)], timeout=5)


def test_stale_data_alert(cluster_factory):
    cl = cluster_factory.new("sched_stale", extra_conf=SCHED_CONF + "pg_trickle.max_consecutive_errors = 100\n")
    c = cl.connect()
    received = []
    c.add_notify_handler(lambda n: received.append(json.loads(n.payload)))
    c.execute("LISTEN pg_trickle_alert")
    c.execute("CREATE EXTENSION pg_trickle")
    c.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
    c.execute("INSERT INTO t VALUES (1, 1)")
    create_st(c, "breaks", "SELECT id, 10 / (v - 2) AS x FROM t", schedule="1s")
    c.execute("UPDATE t SET v = 2")  # every refresh fails from now on; the data ages
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "stale_data" not in [e["event"] for e in received]:
        c.execute("SELECT 1")
        time.sleep(0.2)
    stale = [e for e in received if e["event"] == "stale_data"]
    assert len(stale) == 1, received
    assert stale[0]["pgt_name"] == "breaks" and stale[0]["staleness_seconds"] >= 2 and stale[0]["schedule_seconds"] == 1
    assert c.execute("SELECT stale FROM pgtrickle.stream_tables_info WHERE pgt_name = 'breaks'").fetchone()[0]
    c.close()
