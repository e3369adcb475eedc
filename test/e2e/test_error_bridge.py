"""The C++/PostgreSQL error bridge (src/pg/bridge.cpp), through the self-test entry points in
src/pg/selftest.cpp and through the public API: every kind of failure reaches the client with the
right SQLSTATE, message, DETAIL, HINT and CONTEXT; C++ destructors run while the error unwinds; and
the backend stays usable."""
import psycopg
import pytest

from pgt_helpers import create_st, expect_error, refresh

# Per call, Run() in selftest.cpp keeps two Witness objects alive (one on the stack, one owned by a
# unique_ptr); both destructors must run whether the call returns or fails.
WITNESSES_PER_CALL = 2

KINDS = {
    # kind: (sqlstate, message, detail, hint, context substring)
    "user_error": ("22023", "self-test user error", "self-test detail", "self-test hint", None),
    "runtime_error": ("XX000", "pg_trickle internal error in pgt_selftest_bridge: self-test runtime error",
                      None, None, None),
    "pg_error": ("22012", "division by zero", None, None, None),
    "spi_error": ("22012", "division by zero", None, None, 'SQL statement "SELECT 1 / 0"'),
    "spi_raise": ("P0042", "self-test raise", "raised detail", "raised hint", "at RAISE"),
    "no_such_kind": ("22023", 'unknown self-test kind "no_such_kind"', None, None, None),
}


@pytest.fixture
def bconn(conn):
    conn.execute("CREATE FUNCTION pgt_selftest_bridge(text) RETURNS void LANGUAGE C "
                 "AS 'pg_trickle', 'pgt_selftest_bridge'")
    conn.execute("CREATE FUNCTION pgt_selftest_destructors() RETURNS bigint LANGUAGE C "
                 "AS 'pg_trickle', 'pgt_selftest_destructors'")
    return conn


def destructors(conn):
    return conn.execute("SELECT pgt_selftest_destructors()").fetchone()[0]


def assert_usable(conn):
    assert conn.execute("SELECT 41 + 1").fetchone()[0] == 42
    assert conn.execute("SELECT count(*) FROM pgtrickle.pgt_stream_tables").fetchone()[0] >= 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_error_kinds(bconn, kind):
    conn = bconn
    sqlstate, message, detail, hint, context = KINDS[kind]
    before = destructors(conn)
    with pytest.raises(psycopg.Error) as ei:
        conn.execute("SELECT pgt_selftest_bridge(%s)", (kind,))
    d = ei.value.diag
    assert d.sqlstate == sqlstate
    assert d.message_primary == message
    assert d.message_detail == detail
    assert d.message_hint == hint
    if context is None:
        assert d.context is None
    else:
        assert context in (d.context or ""), d.context
    assert destructors(conn) == before + WITNESSES_PER_CALL
    assert_usable(conn)

    # Again, inside a transaction block: the transaction is aborted, not the session.
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        with pytest.raises(psycopg.Error) as ei:
            cur.execute("SELECT pgt_selftest_bridge(%s)", (kind,))
        assert ei.value.diag.sqlstate == sqlstate
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
        cur.execute("ROLLBACK")
    assert destructors(conn) == before + 2 * WITNESSES_PER_CALL
    assert_usable(conn)


@pytest.mark.parametrize("kind", ["ok", "nested_spi_ok"])
def test_successful_kinds(bconn, kind):
    conn = bconn
    before = destructors(conn)
    for i in range(1, 4):
        conn.execute("SELECT pgt_selftest_bridge(%s)", (kind,))
        assert destructors(conn) == before + i * WITNESSES_PER_CALL
    assert_usable(conn)


def test_errors_caught_in_plpgsql_subtransactions(bconn):
    """Many failures caught by EXCEPTION blocks in one statement: every subtransaction abort must
    clean up the SPI connections the C++ code opened, with the destructors run each time."""
    conn = bconn
    before = destructors(conn)
    caught = conn.execute("""
        DO $$
        DECLARE n int := 0;
        BEGIN
            FOR i IN 1..40 LOOP
                BEGIN
                    PERFORM pgt_selftest_bridge(CASE i % 4 WHEN 0 THEN 'spi_error' WHEN 1 THEN 'spi_raise'
                                                           WHEN 2 THEN 'user_error' ELSE 'pg_error' END);
                EXCEPTION WHEN division_by_zero OR invalid_parameter_value OR SQLSTATE 'P0042' THEN
                    n := n + 1;
                END;
                PERFORM pgt_selftest_bridge('nested_spi_ok');
            END LOOP;
            PERFORM set_config('pgt.caught', n::text, false);
        END $$""")
    assert caught is not None
    assert conn.execute("SELECT current_setting('pgt.caught')").fetchone()[0] == "40"
    assert destructors(conn) == before + 80 * WITNESSES_PER_CALL
    assert_usable(conn)
    # SPI still works for the extension's own functions in this backend.
    conn.execute("CREATE TABLE t (a int)")
    conn.execute("INSERT INTO t VALUES (1)")
    create_st(conn, "st_t", "SELECT a FROM t", refresh_mode="FULL")
    conn.execute("INSERT INTO t VALUES (2)")
    refresh(conn, "st_t")
    assert sorted(conn.execute("SELECT a FROM st_t").fetchall()) == [(1,), (2,)]


def test_destructor_counter_is_per_backend(bconn, db):
    conn = bconn
    with pytest.raises(psycopg.Error):
        conn.execute("SELECT pgt_selftest_bridge('user_error')")
    other = db.connect()
    other_before = other.execute("SELECT pgt_selftest_destructors()").fetchone()[0]
    assert other_before == 0
    with pytest.raises(psycopg.Error):
        other.execute("SELECT pgt_selftest_bridge('spi_error')")
    assert other.execute("SELECT pgt_selftest_destructors()").fetchone()[0] == WITNESSES_PER_CALL


# The public API reports bad input through the same bridge.
API_ERRORS = [
    ("SELECT pgtrickle.create_stream_table(NULL, 'SELECT 1')", "22023"),
    ("SELECT pgtrickle.create_stream_table('x', NULL)", "22023"),
    ("SELECT pgtrickle.create_stream_table('x', 'SELECT a FROM api_src', schedule => NULL)", "22023"),
    ("SELECT pgtrickle.create_stream_table('x', 'SELECT a FROM api_src', refresh_mode => 'SOMETIMES')", "22023"),
    ("SELECT pgtrickle.create_stream_table('x', 'SELECT a FROM no_such_table')", "42P01"),
    ("SELECT pgtrickle.create_stream_table('x', 'SELEC a')", "42601"),
    ("SELECT pgtrickle.create_stream_table('api_src', 'SELECT a FROM api_src')", "42P07"),
    ("SELECT pgtrickle.create_stream_table('api_st', 'SELECT a FROM api_src')", "42P07"),
    ("SELECT pgtrickle.create_stream_table('no_schema.x', 'SELECT a FROM api_src')", "3F000"),
    ("SELECT pgtrickle.refresh_stream_table('no_such_st')", "42P01"),
    ("SELECT pgtrickle.refresh_stream_table('api_src')", "42809"),
    ("SELECT pgtrickle.refresh_stream_table(NULL)", "22023"),
    ("SELECT pgtrickle.drop_stream_table('no_such_st')", "42P01"),
    ("SELECT pgtrickle.drop_stream_table('api_src')", "42809"),
    ("SELECT pgtrickle.drop_stream_table(NULL)", "22023"),
]


def test_api_errors(conn):
    conn.execute("CREATE TABLE api_src (a int)")
    conn.execute("INSERT INTO api_src VALUES (1), (2)")
    create_st(conn, "api_st", "SELECT a FROM api_src", refresh_mode="FULL")
    state = conn.execute("SELECT pgt_id, pgt_relid FROM pgtrickle.pgt_stream_tables").fetchall()
    for statement, sqlstate in API_ERRORS:
        e = expect_error(conn, statement, sqlstate)
        assert e.diag.message_primary
        assert "internal error" not in e.diag.message_primary, statement
    # Nothing was created by the failed calls, and the session is fine.
    assert conn.execute("SELECT pgt_id, pgt_relid FROM pgtrickle.pgt_stream_tables").fetchall() == state
    assert conn.execute("SELECT to_regclass('x')").fetchone()[0] is None
    assert conn.execute("SELECT count(*) FROM pgtrickle.pgt_change_tracking").fetchone()[0] == 1
    refresh(conn, "api_st")
    assert sorted(conn.execute("SELECT a FROM api_st").fetchall()) == [(1,), (2,)]
