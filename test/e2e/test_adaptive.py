"""The adaptive choice of AUTO stream tables (pg_trickle.adaptive_refresh, src/core/adaptive.hpp): a
refresh recomputes (FULL) instead of applying the delta when the delta is known to cost more — its
last DIFFERENTIAL refresh, scaled down to the changes at hand, took longer than the last FULL one —
and goes back to the delta when the changes shrink. Explicit DIFFERENTIAL stream tables are never
switched. Contents stay exact either way.

The test clusters run with the setting off (the other tests check the delta engine); these tests
turn it on in their sessions."""
import threading
import time

import psycopg
import pytest

from pgt_helpers import assert_st_differs_from_query, assert_st_matches_query, create_st, refresh

AGG = "SELECT g, count(*) AS n, sum(v) AS s FROM big GROUP BY g"


def costs(conn, name):
    return conn.execute(
        "SELECT last_full_ms, last_differential_ms, last_differential_changes, adaptive_full_streak "
        "FROM pgtrickle.pgt_stream_tables WHERE pgt_name = %s", (name,)).fetchone()


def last_refresh(conn, name):
    return conn.execute(
        "SELECT h.action, h.was_full_fallback, h.fallback_reason FROM pgtrickle.pgt_refresh_history h "
        "JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = %s "
        "ORDER BY h.refresh_id DESC LIMIT 1", (name,)).fetchone()


def refresh_checked(conn, name, query):
    assert_st_differs_from_query(conn, name, query)
    refresh(conn, name)
    assert_st_matches_query(conn, name, query)
    return last_refresh(conn, name)


def big_table(conn, rows):
    conn.execute("CREATE TABLE big (id int PRIMARY KEY, g int, v int)")
    conn.execute("INSERT INTO big SELECT i, i %% 100, i FROM generate_series(1, %s) i", (rows,))
    conn.execute("ANALYZE big")


def test_auto_recomputes_when_the_delta_costs_more(db):
    c = db.conn
    c.execute("SET pg_trickle.adaptive_refresh = on")
    big_table(c, 300000)
    create_st(c, "agg", AGG, refresh_mode="AUTO", schedule="calculated", cdc_mode="trigger")
    full_ms, diff_ms, diff_changes, streak = costs(c, "agg")
    assert full_ms is not None and full_ms > 0 and diff_ms is None and streak == 0  # the initial population

    # Every row changes. Nothing measured the delta yet, so it runs, within its budget: twice the FULL
    # time, at least 100 ms. Consolidating 600,000 buffer rows costs about 20 times as much as
    # aggregating 300,000 rows (debug build), so it is cancelled and the refresh recomputes.
    c.execute("UPDATE big SET v = v + 1")
    action, fallback, reason = refresh_checked(c, "agg", AGG)
    assert (action, fallback) == ("FULL", True), reason
    assert reason.startswith("adaptive: the delta of 600000 changed rows was cancelled after"), reason
    full_ms2, diff_ms, diff_changes, streak = costs(c, "agg")
    assert diff_changes == 600000 and diff_ms >= max(100, 2 * full_ms) and streak == 1, costs(c, "agg")

    # The same amount again: the cancelled time is a lower bound of the delta's cost, above the FULL
    # time, so the refresh recomputes without trying the delta (on a machine whose speed changed a lot
    # between the two refreshes, the budget would stop it again: either is an adaptive FULL).
    c.execute("UPDATE big SET v = v + 1")
    action, fallback, reason = refresh_checked(c, "agg", AGG)
    assert (action, fallback) == ("FULL", True), reason
    assert reason.startswith("adaptive: 600000 changed rows would take at least") or "cancelled after" in reason, \
        reason
    assert costs(c, "agg")[3] == 2

    # One row: the sample scaled down is far below a FULL refresh, so the delta runs again.
    c.execute("UPDATE big SET v = v - 7 WHERE id = 5")
    assert refresh_checked(c, "agg", AGG)[0] == "DIFFERENTIAL"
    _, diff_ms3, diff_changes, streak = costs(c, "agg")
    assert diff_changes == 2 and streak == 0 and diff_ms3 < diff_ms


def pretend(conn, name, full_ms, diff_ms, diff_changes, streak=0):
    """Measurements as if the delta had been slow (so the choice is independent of machine speed)."""
    conn.execute("UPDATE pgtrickle.pgt_stream_tables SET last_full_ms = %s, last_differential_ms = %s, "
                 "last_differential_changes = %s, adaptive_full_streak = %s WHERE pgt_name = %s",
                 (full_ms, diff_ms, diff_changes, streak, name))


def test_the_choice_follows_the_setting_and_the_requested_mode(db):
    c = db.conn
    big_table(c, 1000)
    create_st(c, "st_auto", AGG, refresh_mode="AUTO", schedule="calculated", cdc_mode="trigger")
    create_st(c, "st_diff", AGG, refresh_mode="DIFFERENTIAL", schedule="calculated", cdc_mode="trigger")
    n = 0
    for setting, name, expected in [("on", "st_diff", "DIFFERENTIAL"),   # explicit DIFFERENTIAL is kept to
                                    ("off", "st_auto", "DIFFERENTIAL"),  # the setting is off
                                    ("on", "st_auto", "FULL")]:
        c.execute(f"SET pg_trickle.adaptive_refresh = {setting}")
        pretend(c, name, 0.001, 1e6, 1)
        n += 1
        c.execute("UPDATE big SET v = v + 1 WHERE id = %s", (n,))
        assert refresh_checked(c, name, AGG)[0] == expected, (setting, name)
        if name == "st_diff":
            refresh(c, "st_auto")  # consume the same change

    # After 16 FULL refreshes the rule chose in a row, a probe runs the delta once (and measures it).
    pretend(c, "st_auto", 0.001, 1e6, 1, streak=16)
    c.execute("UPDATE big SET v = v + 1 WHERE id = 10")
    assert refresh_checked(c, "st_auto", AGG)[0] == "DIFFERENTIAL"
    _, diff_ms, diff_changes, streak = costs(c, "st_auto")
    assert diff_changes == 2 and diff_ms < 1e6 and streak == 17
    pretend(c, "st_auto", 0.001, 1e6, 1, streak=17)
    c.execute("UPDATE big SET v = v + 1 WHERE id = 11")
    assert refresh_checked(c, "st_auto", AGG)[0] == "FULL"
    assert costs(c, "st_auto")[3] == 18


def test_a_new_query_forgets_the_measurements(db):
    c = db.conn
    c.execute("SET pg_trickle.adaptive_refresh = on")
    big_table(c, 1000)
    create_st(c, "st_auto", AGG, refresh_mode="AUTO", schedule="calculated", cdc_mode="trigger")
    pretend(c, "st_auto", 0.001, 1e6, 1, streak=3)
    other = "SELECT g, max(v) AS m FROM big GROUP BY g"
    c.execute("SELECT pgtrickle.alter_stream_table('st_auto', query => %s)", (other,))
    full_ms, diff_ms, diff_changes, streak = costs(c, "st_auto")
    assert full_ms is not None and (diff_ms, diff_changes, streak) == (None, None, 0)  # the FULL after the alter
    c.execute("UPDATE big SET v = v + 100000 WHERE id = 1")  # a new maximum of its group
    assert refresh_checked(c, "st_auto", other)[0] == "DIFFERENTIAL"


def test_a_delta_past_its_budget_is_cancelled_and_recomputed(db):
    c = db.conn
    c.execute("SET pg_trickle.adaptive_refresh = on")
    big_table(c, 300000)
    create_st(c, "agg", AGG, refresh_mode="AUTO", schedule="calculated", cdc_mode="trigger")
    # As if a FULL refresh took 1 ms: the budget is its floor, 100 ms; the delta of 600,000 changes
    # takes several times that (0.85 s on the debug build).
    pretend(c, "agg", 1, None, None)
    c.execute("UPDATE big SET v = v + 1")
    action, fallback, reason = refresh_checked(c, "agg", AGG)
    assert (action, fallback) == ("FULL", True), reason
    assert reason.startswith("adaptive: the delta of 600000 changed rows was cancelled after"), reason
    assert "past its budget of 100.0 ms" in reason, reason
    full_ms, diff_ms, diff_changes, streak = costs(c, "agg")
    assert diff_changes == 600000 and diff_ms >= 100 and streak == 1  # the cancelled time: a lower bound
    # Nothing of the cancelled delta is left behind, and the next refreshes work normally.
    for i in range(3):
        c.execute("UPDATE big SET v = v + 1 WHERE id = %s", (i + 1,))
        assert refresh_checked(c, "agg", AGG)[0] == "DIFFERENTIAL"
    c.execute("SELECT pg_sleep(0.3)")  # no stray cancel from the budget's timer


def test_a_users_cancel_is_not_taken_for_the_budget(db):
    c = db.conn
    c.execute("SET pg_trickle.adaptive_refresh = on")
    big_table(c, 300000)
    create_st(c, "agg", AGG, refresh_mode="AUTO", schedule="calculated", cdc_mode="trigger")
    pretend(c, "agg", 100000, None, None)  # a budget of 200 s
    c.execute("UPDATE big SET v = v + 1")
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    done = threading.Event()

    def cancel_soon():
        with db.cluster.connect(db.name) as other:
            while not done.is_set():
                if other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND query LIKE "
                                 "'%%refresh_stream_table%%' AND state = 'active'", (pid,)).fetchone()[0]:
                    time.sleep(0.2)
                    other.execute("SELECT pg_cancel_backend(%s)", (pid,))
                    return
                time.sleep(0.01)

    t = threading.Thread(target=cancel_soon)
    t.start()
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            refresh(c, "agg")
    finally:
        done.set()
        t.join()
    # Nothing recorded, nothing refreshed: the cancel was the user's.
    assert costs(c, "agg")[1:] == (None, None, 0)
    assert refresh_checked(c, "agg", AGG)[0] == "DIFFERENTIAL"


def test_the_scheduler_keeps_to_the_budget(cluster_factory):
    cl = cluster_factory.new("adaptive_sched", extra_conf="pg_trickle.enabled = on\n"
                             "pg_trickle.scheduler_interval_ms = 200\npg_trickle.adaptive_refresh = on\n"
                             "pg_trickle.differential_max_change_ratio = 0\n")
    with cl.connect() as admin:
        admin.execute("CREATE DATABASE sched_budget")
    with cl.connect("sched_budget") as c:
        c.execute("CREATE EXTENSION pg_trickle")
        big_table(c, 300000)
        create_st(c, "agg", AGG, refresh_mode="AUTO", schedule="1s", cdc_mode="trigger")
        deadline = time.monotonic() + 120
        while costs(c, "agg")[0] is None:
            assert time.monotonic() < deadline, "never populated"
            time.sleep(0.1)
        c.execute("SELECT pgtrickle.alter_stream_table('agg', status => 'SUSPENDED')")
        with c.transaction():
            # A refresh started before the suspension holds this lock until it has written its own
            # measurements: wait for it, so that it cannot overwrite the pretended ones.
            c.execute("LOCK TABLE agg IN EXCLUSIVE MODE")
            pretend(c, "agg", 1, None, None)
        c.execute("UPDATE big SET v = v + 1")
        c.execute("SELECT pgtrickle.alter_stream_table('agg', status => 'ACTIVE')")
        deadline = time.monotonic() + 120
        while True:
            row = last_refresh(c, "agg")
            if row[2] and "cancelled after" in row[2]:
                break
            assert time.monotonic() < deadline, f"the scheduler did not cancel the delta: {row}"
            time.sleep(0.1)
        assert row[0] == "FULL"
        assert_st_matches_query(c, "agg", AGG)
        # The scheduler carries on: a small change is applied differentially.
        c.execute("UPDATE big SET v = v + 1 WHERE id = 7")
        deadline = time.monotonic() + 120
        while last_refresh(c, "agg")[0] != "DIFFERENTIAL":
            assert time.monotonic() < deadline, last_refresh(c, "agg")
            time.sleep(0.1)
        assert_st_matches_query(c, "agg", AGG)
        failures = c.execute("SELECT action, error_message FROM pgtrickle.pgt_refresh_history "
                             "WHERE status = 'FAILED'").fetchall()
        assert failures == []
