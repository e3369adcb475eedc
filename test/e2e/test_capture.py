"""Change capture: what lands in pgtrickle_changes.changes_<oid> for each kind of write, and how a
refresh brings the stream table back to the query's result and trims what it consumed.

Most tests run twice: with FULL stream tables, and with DIFFERENTIAL ones (where the refresh applies
exactly these buffered changes, so a capture or frontier mistake shows up as wrong contents)."""
import psycopg
import pytest

from pgt_helpers import (assert_buffer_equals, assert_buffer_replays_to_source, assert_st_differs_from_query,
                         assert_st_matches_query, buffer_name, buffer_rows, create_st, expect_error, refresh,
                         rows_of, xid)

KL_ROWS = [(1, "x"), (1, "x"), (None, None), (None, None), (2, None), (3, "y"), (None, "n")]
KT_ROWS = [(1, 10, "a"), (2, 10, "b"), (3, None, "c"), (4, 20, None), (5, None, None)]
DIM_ROWS = [(10, "ten"), (20, "twenty"), (None, "none")]

Q_KL = "SELECT a, b FROM kl"
Q_KT = "SELECT grp, count(*) AS n, string_agg(v, ',' ORDER BY v) AS vs FROM kt GROUP BY grp"
Q_JOIN = "SELECT kt.id, kt.v, d.label FROM kt LEFT JOIN dim d ON d.grp = kt.grp"

MODES = ["FULL", "DIFFERENTIAL"]


def st_catalog(conn, name):
    return conn.execute(
        "SELECT status, is_populated, frontier::text, refresh_mode FROM pgtrickle.pgt_stream_tables "
        "WHERE pgt_relid = %s::regclass", (name,)).fetchone()


def history(conn, name):
    return conn.execute(
        "SELECT h.action, h.status, h.initiated_by, h.rows_inserted, h.rows_deleted "
        "FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables st USING (pgt_id) "
        "WHERE st.pgt_relid = %s::regclass ORDER BY refresh_id", (name,)).fetchall()


def last_action(conn, name):
    return history(conn, name)[-1][0]


def check_refresh_recorded(conn, name, n_before, mode, rows_before=None, fallback=False):
    """The last refresh added exactly one COMPLETED MANUAL history row, of the kind the mode implies."""
    h = history(conn, name)
    assert len(h) == n_before + 1, h
    action, status, initiated_by, ins, dels = h[-1]
    assert (status, initiated_by) == ("COMPLETED", "MANUAL")
    if mode == "FULL" or fallback:
        assert action == "FULL"
        assert ins == st_count(conn, name)
        if rows_before is not None:
            assert dels == rows_before
    else:
        assert action == "DIFFERENTIAL"


def st_count(conn, name):
    return conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]


@pytest.mark.parametrize("mode", MODES)
def test_create_capture_refresh_trim(conn, mode):
    conn.execute("CREATE TABLE kl (a int, b text)")  # keyless, duplicates and NULLs
    conn.execute("CREATE TABLE kt (id int PRIMARY KEY, grp int, v text)")
    conn.execute("CREATE TABLE dim (grp int, label text)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO kl VALUES (%s, %s)", KL_ROWS)
        cur.executemany("INSERT INTO kt VALUES (%s, %s, %s)", KT_ROWS)
        cur.executemany("INSERT INTO dim VALUES (%s, %s)", DIM_ROWS)

    create_st(conn, "st_kl", Q_KL, refresh_mode=mode)
    create_st(conn, "st_kt", Q_KT, refresh_mode=mode)
    create_st(conn, "st_join", Q_JOIN)  # AUTO; a LEFT JOIN may be maintained either way
    for name, q in (("st_kl", Q_KL), ("st_kt", Q_KT), ("st_join", Q_JOIN)):
        assert_st_matches_query(conn, name, q)
        status, populated, frontier, actual_mode = st_catalog(conn, name)
        assert (status, populated) == ("ACTIVE", True)
        assert actual_mode == (mode if name != "st_join" else actual_mode)
        assert frontier is not None
        assert history(conn, name) == [("FULL", "COMPLETED", "INITIAL", st_count(conn, name), 0)]
    # One buffer per source, named after its OID, empty before any change.
    for src in ("kl", "kt", "dim"):
        oid = conn.execute("SELECT %s::regclass::oid", (src,)).fetchone()[0]
        assert buffer_name(conn, src) == f"changes_{oid}"
        assert_buffer_equals(conn, src, [])

    expected_kl = []
    expected_kt = []
    with conn.transaction(), conn.cursor() as cur:
        x1 = xid(cur)
        cur.execute("INSERT INTO kl VALUES (1, 'x'), (NULL, NULL), (4, 'z')")
    expected_kl += rows_of([(1, "x"), (None, None), (4, "z")], x1, "I")
    assert_buffer_equals(conn, "kl", expected_kl)

    with conn.transaction(), conn.cursor() as cur:
        x2 = xid(cur)
        cur.execute("UPDATE kl SET b = 'w' WHERE a = 1")
        assert cur.rowcount == 3
    expected_kl += rows_of([(1, "x")] * 3, x2, "D") + rows_of([(1, "w")] * 3, x2, "I")
    assert_buffer_equals(conn, "kl", expected_kl)

    with conn.transaction(), conn.cursor() as cur:
        x3 = xid(cur)
        cur.execute("DELETE FROM kl WHERE a IS NULL")
        assert cur.rowcount == 4
    expected_kl += rows_of([(None, None)] * 3 + [(None, "n")], x3, "D")
    assert_buffer_equals(conn, "kl", expected_kl)

    with conn.transaction(), conn.cursor() as cur:
        x4 = xid(cur)
        cur.execute("TRUNCATE kl")
        cur.execute("INSERT INTO kl VALUES (9, 'after'), (9, 'after'), (NULL, 'n2')")
    expected_kl += [(x4, "T", None, None)] + rows_of([(9, "after"), (9, "after"), (None, "n2")], x4, "I")
    assert_buffer_equals(conn, "kl", expected_kl)

    with conn.transaction(), conn.cursor() as cur:
        x5 = xid(cur)
        cur.execute("UPDATE kt SET grp = 20 WHERE id = 1")
        cur.execute("DELETE FROM kt WHERE id = 5")
        cur.execute("INSERT INTO kt VALUES (6, NULL, 'f')")
        cur.execute("UPDATE kt SET v = NULL WHERE id = 6")
    expected_kt += [(x5, "D", 1, 10, "a"), (x5, "I", 1, 20, "a"), (x5, "D", 5, None, None),
                    (x5, "I", 6, None, "f"), (x5, "D", 6, None, "f"), (x5, "I", 6, None, None)]
    assert_buffer_equals(conn, "kt", expected_kt)
    assert_buffer_equals(conn, "dim", [])

    for name, q in (("st_kl", Q_KL), ("st_kt", Q_KT), ("st_join", Q_JOIN)):
        assert_st_differs_from_query(conn, name, q)

    # kl has one consumer: its refresh trims everything it consumed. (kl was truncated: a
    # DIFFERENTIAL stream table has to recompute.)
    frontier_before = st_catalog(conn, "st_kl")[2]
    refresh(conn, "st_kl")
    assert_st_matches_query(conn, "st_kl", Q_KL)
    assert_buffer_equals(conn, "kl", [])
    assert st_catalog(conn, "st_kl")[2] != frontier_before
    check_refresh_recorded(conn, "st_kl", 1, mode, rows_before=len(KL_ROWS), fallback=True)

    # kt has two consumers: nothing is trimmed until both have refreshed.
    n_groups = st_count(conn, "st_kt")
    refresh(conn, "st_kt")
    assert_st_matches_query(conn, "st_kt", Q_KT)
    check_refresh_recorded(conn, "st_kt", 1, mode, rows_before=n_groups)
    assert_buffer_equals(conn, "kt", expected_kt)
    assert_st_differs_from_query(conn, "st_join", Q_JOIN)
    refresh(conn, "st_join")
    assert_st_matches_query(conn, "st_join", Q_JOIN)
    assert_buffer_equals(conn, "kt", [])
    assert [len(history(conn, n)) for n in ("st_kl", "st_kt", "st_join")] == [2, 2, 2]

    # Refreshes with no changes keep the contents and add one history row each.
    for name, q in (("st_kl", Q_KL), ("st_kt", Q_KT)):
        refresh(conn, name)
        assert_st_matches_query(conn, name, q)
        assert len(history(conn, name)) == 3
        assert last_action(conn, name) == ("FULL" if mode == "FULL" else "NO_DATA")

    # And once more with changes after a refresh, on both sources.
    conn.execute("INSERT INTO kl VALUES (NULL, NULL), (9, 'after')")
    conn.execute("UPDATE kt SET v = 'v' || id WHERE v IS NULL")
    conn.execute("DELETE FROM kt WHERE id = 2")
    for name, q in (("st_kl", Q_KL), ("st_kt", Q_KT), ("st_join", Q_JOIN)):
        assert_st_differs_from_query(conn, name, q)
        refresh(conn, name)
        assert_st_matches_query(conn, name, q)
    check_refresh_recorded(conn, "st_kl", 3, mode)
    check_refresh_recorded(conn, "st_kt", 3, mode)
    assert_buffer_equals(conn, "kl", [])
    assert_buffer_equals(conn, "kt", [])


# ------------------------------------------------------------------------------------------------
# Statement kinds, one source m (id primary key) and one stream table SELECT * over it
# ------------------------------------------------------------------------------------------------

M_INITIAL = [(i, i, f"r{i}") for i in range(1, 11)]
Q_M = "SELECT id, v, t FROM m"
Q_M_AGG = "SELECT v % 3 AS k, count(*) AS n, sum(v) AS s, count(t) AS nt FROM m GROUP BY 1"


@pytest.fixture(params=MODES)
def m(conn, request):
    """Source m, with st_m (SELECT * of m) and st_m_agg (grouped) in the mode of the parameter."""
    conn.execute("CREATE TABLE m (id int PRIMARY KEY, v int, t text)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO m VALUES (%s, %s, %s)", M_INITIAL)
    conn.pgt_mode = request.param
    create_st(conn, "st_m", Q_M, refresh_mode=request.param)
    create_st(conn, "st_m_agg", Q_M_AGG, refresh_mode=request.param)
    assert_st_matches_query(conn, "st_m", Q_M)
    assert_st_matches_query(conn, "st_m_agg", Q_M_AGG)
    return conn


def finish(conn, expect_changes=True):
    """Common tail: buffer + stream table replay to the source, a refresh makes each stream table
    equal to its query, and once both consumers refreshed the buffer is empty."""
    assert_buffer_replays_to_source(conn, "st_m", "m")
    for name, q in (("st_m", Q_M), ("st_m_agg", Q_M_AGG)):
        if expect_changes:
            assert_st_differs_from_query(conn, name, q)
        refresh(conn, name)
        assert_st_matches_query(conn, name, q)
        expected_action = "FULL" if conn.pgt_mode == "FULL" else ("DIFFERENTIAL" if expect_changes else "NO_DATA")
        assert last_action(conn, name) == expected_action
    assert_buffer_equals(conn, "m", [])


def test_multi_row_statements(m):
    conn = m
    state = {r[0]: r for r in M_INITIAL}
    expected = []
    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("INSERT INTO m SELECT g, g % 7, 't' || g FROM generate_series(11, 1010) g")
        assert cur.rowcount == 1000
    new = [(g, g % 7, f"t{g}") for g in range(11, 1011)]
    expected += rows_of(new, x, "I")
    state.update({r[0]: r for r in new})
    assert_buffer_equals(conn, "m", expected)

    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("UPDATE m SET v = v + 100 WHERE id % 2 = 0")
        assert cur.rowcount == 505
    old = [r for r in state.values() if r[0] % 2 == 0]
    upd = [(i, v + 100, t) for (i, v, t) in old]
    expected += rows_of(old, x, "D") + rows_of(upd, x, "I")
    state.update({r[0]: r for r in upd})
    assert_buffer_equals(conn, "m", expected)

    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("DELETE FROM m WHERE id > 900")
        assert cur.rowcount == 110
    gone = [r for r in state.values() if r[0] > 900]
    expected += rows_of(gone, x, "D")
    for r in gone:
        del state[r[0]]
    assert_buffer_equals(conn, "m", expected)
    assert sorted(conn.execute("SELECT id, v, t FROM m").fetchall()) == sorted(state.values())

    # A statement that changes nothing captures nothing.
    conn.execute("UPDATE m SET v = 0 WHERE false")
    conn.execute("DELETE FROM m WHERE id < 0")
    assert_buffer_equals(conn, "m", expected)
    finish(conn)


def test_copy(m):
    conn = m
    rows = [(100, None, "c1"), (101, 5, None), (102, None, None), (103, 103, "tab\there")]
    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        with cur.copy("COPY m (id, v, t) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
    assert_buffer_equals(conn, "m", rows_of(rows, x, "I"))
    finish(conn)


def test_insert_on_conflict(m):
    conn = m
    with conn.transaction(), conn.cursor() as cur:
        x1 = xid(cur)
        cur.execute("INSERT INTO m VALUES (5, 50, 'new5'), (11, 11, 'n11'), (6, 60, 'new6') "
                    "ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, t = EXCLUDED.t")
    expected = [(x1, "D", 5, 5, "r5"), (x1, "I", 5, 50, "new5"), (x1, "D", 6, 6, "r6"), (x1, "I", 6, 60, "new6"),
                (x1, "I", 11, 11, "n11")]
    assert_buffer_equals(conn, "m", expected)

    with conn.transaction(), conn.cursor() as cur:
        x2 = xid(cur)
        cur.execute("INSERT INTO m VALUES (7, 0, 'x'), (12, 12, 'n12') ON CONFLICT DO NOTHING")
        cur.execute("INSERT INTO m VALUES (8, 0, 'x') ON CONFLICT (id) DO UPDATE SET v = 0 WHERE false")
    expected += [(x2, "I", 12, 12, "n12")]
    assert_buffer_equals(conn, "m", expected)
    finish(conn)


def test_merge(m):
    conn = m
    with conn.transaction(), conn.cursor() as cur:
        x1 = xid(cur)
        cur.execute("""
            MERGE INTO m USING (VALUES (1, 'upd'), (2, 'del'), (20, 'ins'), (3, 'skip')) AS s(id, act)
            ON m.id = s.id
            WHEN MATCHED AND s.act = 'upd' THEN UPDATE SET v = m.v * 10
            WHEN MATCHED AND s.act = 'del' THEN DELETE
            WHEN NOT MATCHED THEN INSERT VALUES (s.id, NULL, 'merged')""")
    expected = [(x1, "D", 1, 1, "r1"), (x1, "I", 1, 10, "r1"), (x1, "D", 2, 2, "r2"), (x1, "I", 20, None, "merged")]
    assert_buffer_equals(conn, "m", expected)

    with conn.transaction(), conn.cursor() as cur:
        x2 = xid(cur)
        cur.execute("""
            MERGE INTO m USING (VALUES (4), (21)) AS s(id) ON m.id = s.id
            WHEN MATCHED THEN UPDATE SET t = 'm4'
            WHEN NOT MATCHED BY TARGET THEN INSERT VALUES (s.id, s.id, 'm21')
            WHEN NOT MATCHED BY SOURCE AND m.id BETWEEN 9 AND 10 THEN DELETE""")
    expected += [(x2, "D", 4, 4, "r4"), (x2, "I", 4, 4, "m4"), (x2, "I", 21, 21, "m21"),
                 (x2, "D", 9, 9, "r9"), (x2, "D", 10, 10, "r10")]
    assert_buffer_equals(conn, "m", expected)
    finish(conn)


def test_rolled_back_transactions_capture_nothing(m):
    conn = m
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO m SELECT g, g, 'rb' FROM generate_series(100, 199) g")
        cur.execute("UPDATE m SET v = -1")
        cur.execute("DELETE FROM m WHERE id < 5")
        cur.execute("TRUNCATE m")
        cur.execute("ROLLBACK")
    # A transaction aborted by an error after writing.
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO m VALUES (500, 0, 'doomed')")
        cur.execute("UPDATE m SET t = 'doomed'")
        with pytest.raises(psycopg.errors.UniqueViolation):
            cur.execute("INSERT INTO m VALUES (1, 0, 'dup')")
        cur.execute("ROLLBACK")
    # A statement that fails half-way inside an autocommit transaction.
    expect_error(conn, "INSERT INTO m SELECT g, g, 'half' FROM generate_series(300, 310) g UNION ALL "
                       "SELECT 1, 1, 'dup'", "23505")
    assert_buffer_equals(conn, "m", [])
    assert_st_matches_query(conn, "st_m", Q_M)
    finish(conn, expect_changes=False)


def test_savepoints(m):
    conn = m
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        x = xid(cur)
        cur.execute("INSERT INTO m VALUES (100, 100, 'kept')")
        cur.execute("SAVEPOINT a")
        cur.execute("INSERT INTO m VALUES (101, 101, 'lost')")
        cur.execute("UPDATE m SET v = -1 WHERE id = 1")
        cur.execute("DELETE FROM m WHERE id = 2")
        cur.execute("SAVEPOINT a2")
        cur.execute("UPDATE m SET t = 'lost too' WHERE id = 3")
        cur.execute("RELEASE a2")
        cur.execute("ROLLBACK TO a")
        cur.execute("INSERT INTO m VALUES (102, 102, 'kept')")
        cur.execute("SAVEPOINT b")
        cur.execute("UPDATE m SET v = 33 WHERE id = 3")
        cur.execute("RELEASE b")
        cur.execute("SAVEPOINT c")
        cur.execute("DELETE FROM m WHERE id = 4")
        with pytest.raises(psycopg.errors.UniqueViolation):
            cur.execute("INSERT INTO m VALUES (5, 0, 'dup')")
        cur.execute("ROLLBACK TO c")
        # The subtransaction's own xid must not leak into the buffer: rows carry the top-level xid.
        cur.execute("SAVEPOINT d")
        cur.execute("INSERT INTO m VALUES (103, 103, 'in released savepoint')")
        cur.execute("RELEASE d")
        cur.execute("COMMIT")
    expected = [(x, "I", 100, 100, "kept"), (x, "I", 102, 102, "kept"), (x, "D", 3, 3, "r3"), (x, "I", 3, 33, "r3"),
                (x, "I", 103, 103, "in released savepoint")]
    assert_buffer_equals(conn, "m", expected)
    finish(conn)


def test_transaction_open_during_refresh(db, m):
    """Changes of a transaction still running when the refresh takes its snapshot are not in the
    refreshed contents, so the refresh must leave them in the buffer."""
    conn = m
    other = db.connect()
    with other.cursor() as cur:
        cur.execute("BEGIN")
        x_open = xid(cur)
        cur.execute("INSERT INTO m VALUES (200, 200, 'in flight')")
        cur.execute("UPDATE m SET v = 0 WHERE id = 1")
    with conn.transaction(), conn.cursor() as cur:
        x_done = xid(cur)
        cur.execute("INSERT INTO m VALUES (201, 201, 'committed')")
    refresh(conn, "st_m")
    assert_st_matches_query(conn, "st_m", Q_M)  # the open transaction is invisible to both
    other.execute("COMMIT")
    assert_buffer_equals(conn, "m", [(x_open, "I", 200, 200, "in flight"), (x_open, "D", 1, 1, "r1"),
                                     (x_open, "I", 1, 0, "r1"), (x_done, "I", 201, 201, "committed")])
    assert_buffer_replays_to_source(conn, "st_m", "m")
    finish(conn)


def test_trim_takes_the_buffer_lock_and_others_do_not_wait(db, m):
    """The refresh that trims a buffer holds its trim lock (an advisory lock of pg_trickle's own kind,
    keyed by the source) until it commits; another consumer's refresh meanwhile neither waits nor
    deletes, and once the trimmer commits, every consumed row is gone."""
    conn = m
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany("INSERT INTO m VALUES (%s, %s, %s)", [(300 + i, i, "bulk") for i in range(2000)])
        cur.execute("UPDATE m SET v = v + 1 WHERE id < 300")
    refresh(conn, "st_m")  # st_m_agg still needs the rows
    assert len(buffer_rows(conn, "m")) > 2000
    other = db.connect()
    other.execute("BEGIN")
    other.execute("SELECT pgtrickle.refresh_stream_table('st_m_agg')")  # the last consumer: trims
    source_oid = conn.execute("SELECT 'm'::regclass::oid").fetchone()[0]
    other_pid = other.execute("SELECT pg_backend_pid()").fetchone()[0]
    locks = conn.execute(
        "SELECT pid, classid::bigint, objid::bigint, objsubid, mode, granted FROM pg_locks "
        "WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchall()
    assert locks == [(other_pid, source_oid, 0, 0x7074, "ExclusiveLock", True)]
    assert len(buffer_rows(conn, "m")) > 2000  # the trimmer has not committed
    conn.execute("INSERT INTO m VALUES (5000, 1, 'later')")
    conn.execute("SET statement_timeout = '5s'")
    refresh(conn, "st_m")  # trims too: must not wait for the other transaction
    conn.execute("RESET statement_timeout")
    other.execute("COMMIT")
    other.close()
    assert_buffer_replays_to_source(conn, "st_m", "m")
    assert [r[0] for r in conn.execute("SELECT DISTINCT __pgt_op FROM pgtrickle_changes." +
                                       buffer_name(conn, "m")).fetchall()] == ["I"]
    refresh(conn, "st_m_agg")
    # st_m's frontier was taken while the trimmer ran: its horizon stays below that transaction until
    # st_m refreshes again.
    refresh(conn, "st_m")
    assert_st_matches_query(conn, "st_m_agg", Q_M_AGG)
    assert_st_matches_query(conn, "st_m", Q_M)
    assert_buffer_equals(conn, "m", [])


@pytest.mark.parametrize("mode", MODES)
def test_refresh_is_atomic(conn, mode):
    """A refresh that fails, or whose transaction rolls back, changes nothing: contents, buffer,
    frontier and history stay as they were."""
    conn.execute("CREATE TABLE d (id int PRIMARY KEY, d int)")
    conn.execute("INSERT INTO d SELECT g, g FROM generate_series(1, 20) g")
    q = "SELECT id, 100 / d AS q FROM d"
    create_st(conn, "st_d", q, refresh_mode=mode)
    conn.execute("INSERT INTO d VALUES (21, 21)")

    def snapshot():
        return (sorted(conn.execute("SELECT * FROM st_d").fetchall()), buffer_rows(conn, "d"),
                conn.execute("SELECT frontier::text, data_timestamp, last_refresh_at FROM pgtrickle.pgt_stream_tables"
                             ).fetchall(),
                conn.execute("SELECT count(*) FROM pgtrickle.pgt_refresh_history").fetchone())

    before = snapshot()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT pgtrickle.refresh_stream_table('st_d')")
        cur.execute("ROLLBACK")
    assert snapshot() == before

    conn.execute("UPDATE d SET d = 0 WHERE id = 7")
    before = snapshot()
    expect_error(conn, "SELECT pgtrickle.refresh_stream_table('st_d')", "22012")
    assert snapshot() == before
    # The failed refresh must not leave this backend "inside a refresh" (the write guard would open).
    expect_error(conn, "INSERT INTO st_d VALUES (0, 0)", "42809")
    assert snapshot() == before
    # (Recovering from here is test_refresh_ignores_row_versions_that_no_longer_exist.)


@pytest.mark.parametrize("mode", MODES)
def test_refresh_ignores_row_versions_that_no_longer_exist(conn, mode):
    """Only the current contents of the sources matter: a row that existed for a while between two
    refreshes (and would make the query fail) must not break the next refresh. (A DIFFERENTIAL
    refresh once evaluated the query's expressions on intermediate row images before netting them.)"""
    conn.execute("CREATE TABLE d (id int PRIMARY KEY, d int)")
    conn.execute("INSERT INTO d SELECT g, g FROM generate_series(1, 20) g")
    q = "SELECT id, 100 / d AS q FROM d"
    create_st(conn, "st_d", q, refresh_mode=mode)
    conn.execute("INSERT INTO d VALUES (30, 0)")
    conn.execute("DELETE FROM d WHERE id = 30")
    conn.execute("UPDATE d SET d = 0 WHERE id = 7")
    conn.execute("UPDATE d SET d = 1 WHERE id = 7")
    refresh(conn, "st_d")
    assert_st_matches_query(conn, "st_d", q)
    assert last_action(conn, "st_d") == mode
    assert_buffer_equals(conn, "d", [])


# ------------------------------------------------------------------------------------------------
# Partitioned sources
# ------------------------------------------------------------------------------------------------

Q_P = "SELECT k, v FROM p"

# (Regression: an early orphan-trigger clean-up once stripped a new partitioned source of its triggers.)
PARTITIONED_MODES = MODES


@pytest.fixture(params=PARTITIONED_MODES)
def parted(conn, request):
    conn.execute("CREATE TABLE p (k int, v text) PARTITION BY RANGE (k)")
    conn.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200) PARTITION BY LIST ((k % 2))")
    conn.execute("CREATE TABLE p2_even PARTITION OF p2 FOR VALUES IN (0)")
    conn.execute("CREATE TABLE p2_odd PARTITION OF p2 FOR VALUES IN (1)")
    conn.execute("CREATE TABLE p_def PARTITION OF p DEFAULT")
    conn.execute("INSERT INTO p VALUES (1, 'a'), (1, 'a'), (150, 'b'), (151, NULL), (500, 'd'), (NULL, 'nullkey')")
    create_st(conn, "st_p", Q_P, refresh_mode=request.param)
    conn.pgt_mode = request.param
    assert_st_matches_query(conn, "st_p", Q_P)
    return conn


def test_partitioned_source(parted):
    conn = parted
    with conn.transaction(), conn.cursor() as cur:
        x1 = xid(cur)
        cur.execute("INSERT INTO p VALUES (2, 'new'), (120, 'new'), (121, 'new'), (900, 'new')")
        cur.execute("UPDATE p SET k = 160 WHERE k = 1")          # moves rows p1 -> p2_even
        cur.execute("UPDATE p SET v = 'same part' WHERE k = 151")
        cur.execute("UPDATE p SET k = 5 WHERE k = 500")            # p_def -> p1
        cur.execute("DELETE FROM p WHERE k = 150 OR k IS NULL")
    expected = rows_of([(2, "new"), (120, "new"), (121, "new"), (900, "new")], x1, "I")
    expected += rows_of([(1, "a"), (1, "a")], x1, "D") + rows_of([(160, "a"), (160, "a")], x1, "I")
    expected += [(x1, "D", 151, None), (x1, "I", 151, "same part"), (x1, "D", 500, "d"), (x1, "I", 5, "d"),
                 (x1, "D", 150, "b"), (x1, "D", None, "nullkey")]
    assert_buffer_equals(conn, "p", expected)
    assert_buffer_replays_to_source(conn, "st_p", "p")
    assert_st_differs_from_query(conn, "st_p", Q_P)
    refresh(conn, "st_p")
    assert_st_matches_query(conn, "st_p", Q_P)
    assert last_action(conn, "st_p") == conn.pgt_mode
    assert_buffer_equals(conn, "p", [])

    with conn.transaction(), conn.cursor() as cur:
        x2 = xid(cur)
        cur.execute("TRUNCATE p")
        cur.execute("INSERT INTO p VALUES (7, 'after truncate')")
    assert_buffer_equals(conn, "p", [(x2, "T", None, None), (x2, "I", 7, "after truncate")])
    refresh(conn, "st_p")
    assert_st_matches_query(conn, "st_p", Q_P)
    assert_buffer_equals(conn, "p", [])


def test_dml_on_partition_directly_is_captured(parted):
    conn = parted
    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("INSERT INTO p1 VALUES (3, 'direct')")
        cur.execute("UPDATE p2_odd SET v = 'direct' WHERE k = 151")
        cur.execute("DELETE FROM p_def WHERE k = 500")
        cur.execute("UPDATE p2 SET v = 'via p2' WHERE k = 150")  # an intermediate partitioned table
    assert_buffer_equals(conn, "p", [(x, "I", 3, "direct"), (x, "D", 151, None), (x, "I", 151, "direct"),
                                     (x, "D", 500, "d"), (x, "D", 150, "b"), (x, "I", 150, "via p2")])
    assert_buffer_replays_to_source(conn, "st_p", "p")
    refresh(conn, "st_p")
    assert_st_matches_query(conn, "st_p", Q_P)
    assert last_action(conn, "st_p") == conn.pgt_mode

    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("TRUNCATE p1")  # one partition only
    assert_buffer_equals(conn, "p", [(x, "T", None, None)])
    refresh(conn, "st_p")
    assert_st_matches_query(conn, "st_p", Q_P)


@pytest.mark.parametrize("mode", PARTITIONED_MODES)
def test_partition_created_later_is_captured(conn, mode):
    conn.execute("CREATE TABLE p (k int, v text) PARTITION BY RANGE (k)")
    conn.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
    conn.execute("INSERT INTO p VALUES (1, 'a')")
    create_st(conn, "st_p", Q_P, refresh_mode=mode)
    conn.execute("CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200)")
    with conn.transaction(), conn.cursor() as cur:
        x = xid(cur)
        cur.execute("INSERT INTO p VALUES (101, 'via parent')")
        cur.execute("INSERT INTO p2 VALUES (102, 'direct')")
        cur.execute("UPDATE p2 SET v = 'updated' WHERE k = 101")
    assert_buffer_equals(conn, "p", [(x, "I", 101, "via parent"), (x, "I", 102, "direct"),
                                     (x, "D", 101, "via parent"), (x, "I", 101, "updated")])
    refresh(conn, "st_p")
    assert_st_matches_query(conn, "st_p", Q_P)


@pytest.mark.parametrize("mode", MODES)
def test_attach_partition(conn, mode):
    """ATTACH brings rows in without any DML: a DIFFERENTIAL reader must not miss them."""
    conn.execute("CREATE TABLE p (k int, v text) PARTITION BY RANGE (k)")
    conn.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
    conn.execute("INSERT INTO p VALUES (1, 'a')")
    create_st(conn, "st_p", Q_P, refresh_mode=mode)
    conn.execute("CREATE TABLE p3 (k int, v text)")
    conn.execute("INSERT INTO p3 VALUES (250, 'attached'), (251, NULL)")
    conn.execute("ALTER TABLE p ATTACH PARTITION p3 FOR VALUES FROM (200) TO (300)")
    conn.execute("INSERT INTO p VALUES (2, 'b')")
    refresh(conn, "st_p")
    assert_st_matches_query(conn, "st_p", Q_P)


@pytest.mark.parametrize("mode", MODES)
def test_detach_partition(conn, mode):
    """DETACH takes rows out without any DML: a DIFFERENTIAL reader must drop them."""
    conn.execute("CREATE TABLE p (k int, v text) PARTITION BY RANGE (k)")
    conn.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200)")
    conn.execute("INSERT INTO p VALUES (1, 'a'), (150, 'b')")
    create_st(conn, "st_p", Q_P, refresh_mode=mode)
    conn.execute("ALTER TABLE p DETACH PARTITION p1")
    conn.execute("INSERT INTO p VALUES (151, 'c')")
    refresh(conn, "st_p")
    assert_st_matches_query(conn, "st_p", Q_P)


def test_detached_partition_is_an_ordinary_table(conn):
    """(Detached partitions once kept capture triggers that failed every write with 55000.)"""
    conn.execute("CREATE TABLE p (k int, v text) PARTITION BY RANGE (k)")
    conn.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
    conn.execute("INSERT INTO p VALUES (1, 'a')")
    create_st(conn, "st_p", Q_P)
    conn.execute("ALTER TABLE p DETACH PARTITION p1")
    conn.execute("INSERT INTO p1 VALUES (2, 'b')")
    conn.execute("UPDATE p1 SET v = 'c'")
    conn.execute("DELETE FROM p1")


@pytest.mark.parametrize("mode", MODES)
def test_quoted_identifiers_and_types(conn, mode):
    """Buffers copy the source's column names and types exactly, whatever their spelling."""
    src = '"Odd Schema"."Src ""T"""'
    st = '"Odd Schema"."St ""T"""'
    conn.execute('CREATE SCHEMA "Odd Schema"')
    conn.execute(f'CREATE TABLE {src} ("Mixed Case" int, "with space" text, "sel" numeric(10,2), '
                 '"j" jsonb, "arr" int[], "ts" timestamptz, "b" bytea)')
    conn.execute(f"INSERT INTO {src} VALUES "
                 "(1, 'a b', 1.50, '{\"k\": [1, 2]}', '{1,NULL,3}', '2024-01-02 03:04:05+00', '\\x00ff'), "
                 "(NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
    q = f"SELECT * FROM {src}"
    create_st(conn, st, q, refresh_mode=mode)
    assert_st_matches_query(conn, st, q)
    buf_types = conn.execute(
        "SELECT array_agg(format_type(atttypid, atttypmod) ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = ('pgtrickle_changes.' || quote_ident(%s))::regclass AND attnum > 0 "
        "AND attname NOT LIKE '\\_\\_pgt\\_%%'", (buffer_name(conn, src),)).fetchone()[0]
    src_types = conn.execute(
        "SELECT array_agg(format_type(atttypid, atttypmod) ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0", (src,)).fetchone()[0]
    assert buf_types == src_types
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f"UPDATE {src} SET \"with space\" = 'x y', j = j || '{{\"z\": null}}' WHERE \"Mixed Case\" = 1")
        cur.execute(f'INSERT INTO {src} ("Mixed Case") VALUES (2)')
    assert sum(buffer_rows(conn, src, ["Mixed Case"]).values()) == 3
    assert_buffer_replays_to_source(conn, st, src)
    refresh(conn, st)
    assert_st_matches_query(conn, st, q)
    assert last_action(conn, st) == mode


def test_source_stays_writable_after_dropping_an_unused_column(conn):
    conn.execute("CREATE TABLE s (a int, b text, unused int)")
    conn.execute("INSERT INTO s VALUES (1, 'x', 0)")
    create_st(conn, "st_s", "SELECT a, b FROM s", refresh_mode="FULL")
    conn.execute("ALTER TABLE s DROP COLUMN unused")
    conn.execute("INSERT INTO s VALUES (2, 'y')")
    refresh(conn, "st_s")
    assert_st_matches_query(conn, "st_s", "SELECT a, b FROM s")


# ------------------------------------------------------------------------------------------------
# Joins: changes on both sides, in the same and in different transactions
# ------------------------------------------------------------------------------------------------

Q_JOIN_COMMA = "SELECT o.id, o.qty, c.name FROM orders o, customers c WHERE c.id = o.cust"
Q_JOIN_ON = "SELECT o.id, o.qty, c.name FROM orders o JOIN customers c ON c.id = o.cust"


def join_scenario(conn, q, mode):
    conn.execute("CREATE TABLE customers (id int, name text)")
    conn.execute("CREATE TABLE orders (id int, cust int, qty int)")
    conn.execute("INSERT INTO customers VALUES (1, 'ann'), (2, 'bob'), (2, 'bob twin'), (3, NULL), (NULL, 'nobody')")
    conn.execute("INSERT INTO orders SELECT g, g % 5, g FROM generate_series(1, 30) g")
    conn.execute("INSERT INTO orders VALUES (31, NULL, 1), (32, 2, NULL), (32, 2, NULL)")
    create_st(conn, "st_j", q, refresh_mode=mode)
    assert_st_matches_query(conn, "st_j", q)

    steps = [
        ["INSERT INTO orders VALUES (40, 1, 4), (41, 4, 5)"],
        ["UPDATE customers SET name = 'ann2' WHERE id = 1"],
        ["INSERT INTO customers VALUES (4, 'dan')", "INSERT INTO orders VALUES (42, 4, 6)"],  # both sides, one txn
        ["DELETE FROM customers WHERE name = 'bob twin'", "UPDATE orders SET cust = 2 WHERE id = 1"],
        ["UPDATE orders SET qty = qty + 1 WHERE cust = 2", "DELETE FROM orders WHERE id = 32"],
        ["DELETE FROM customers WHERE id = 3", "INSERT INTO customers VALUES (0, 'zero')"],
    ]
    for i, step in enumerate(steps):
        with conn.transaction():
            for statement in step:
                conn.execute(statement)
        if i % 2 == 1:  # refresh after every other step: windows spanning several transactions
            assert_st_differs_from_query(conn, "st_j", q)
            refresh(conn, "st_j")
            assert_st_matches_query(conn, "st_j", q)
            assert last_action(conn, "st_j") == mode
    assert_buffer_equals(conn, "orders", [])
    assert_buffer_equals(conn, "customers", [])


@pytest.mark.parametrize("mode", MODES)
def test_join_sources(conn, mode):
    join_scenario(conn, Q_JOIN_COMMA, mode)


def test_join_on_full(conn):
    join_scenario(conn, Q_JOIN_ON, "FULL")


def test_join_on_differential(isolated_db):
    """(Ran in a server of its own: this once crashed the backend in ruleutils.c.)"""
    try:
        join_scenario(isolated_db.conn, Q_JOIN_ON, "DIFFERENTIAL")
    finally:
        problems = isolated_db.cluster.log_problems()
    assert not problems, "server log:\n" + "\n".join(problems)
