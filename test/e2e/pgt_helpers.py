"""Assertions and small queries shared by the end-to-end tests."""
import time
from collections import Counter

import psycopg
import pytest
from psycopg import sql

MAX_ROWS_SHOWN = 40


def user_columns(conn, relation):
    """Columns of `relation` (a name usable as regclass), without pg_trickle's hidden __pgt_ columns."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "AND attname NOT LIKE '\\_\\_pgt\\_%%' ORDER BY attnum", (relation,)).fetchall()
    assert rows, f"{relation} has no columns"
    return [r[0] for r in rows]


def relation_sql(conn, relation):
    """`relation` (any spelling regclass accepts) as a correctly quoted SQL name."""
    return sql.SQL(conn.execute("SELECT %s::regclass::text", (relation,)).fetchone()[0])


def _format_rows(rows):
    shown = "\n".join(f"    {r!r}" for r in rows[:MAX_ROWS_SHOWN])
    more = f"\n    ... and {len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else ""
    return shown + more


def st_vs_query(conn, st_name, query):
    """(extra, missing): rows in the stream table but not in the query's result, and the reverse, as
    multisets (EXCEPT ALL in both directions, under one snapshot)."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in user_columns(conn, st_name))
    st_select = sql.SQL("SELECT {} FROM {}").format(cols, relation_sql(conn, st_name))
    q = sql.SQL(query)
    with conn.cursor() as cur:
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            cur.execute(sql.SQL("({}) EXCEPT ALL ({})").format(st_select, q))
            extra = cur.fetchall()
            cur.execute(sql.SQL("({}) EXCEPT ALL ({})").format(q, st_select))
            missing = cur.fetchall()
        finally:
            cur.execute("ROLLBACK")
    return extra, missing


def assert_st_matches_query(conn, st_name, query):
    """The stream table holds exactly the query's result (as a multiset); otherwise fails showing the
    rows the stream table has too many of (extra) and too few of (missing)."""
    extra, missing = st_vs_query(conn, st_name, query)
    if extra or missing:
        pytest.fail(
            f"stream table {st_name} does not match its query\n  query: {query}\n"
            f"  extra rows in {st_name} ({len(extra)}):\n{_format_rows(extra)}\n"
            f"  missing rows in {st_name} ({len(missing)}):\n{_format_rows(missing)}", pytrace=False)


def assert_st_differs_from_query(conn, st_name, query):
    """The stream table is stale: used before a refresh so a test cannot pass vacuously."""
    extra, missing = st_vs_query(conn, st_name, query)
    assert extra or missing, f"{st_name} already matches its query before the refresh; the test proves nothing"


def create_st(conn, name, query, **kw):
    args = [sql.Literal(name), sql.Literal(query)]
    for k, v in kw.items():
        args.append(sql.SQL("{} => {}").format(sql.Identifier(k), sql.Literal(v)))
    conn.execute(sql.SQL("SELECT pgtrickle.create_stream_table({})").format(sql.SQL(", ").join(args)))


def refresh(conn, name):
    conn.execute("SELECT pgtrickle.refresh_stream_table(%s)", (name,))


def drop_st(conn, name, cascade=False):
    conn.execute("SELECT pgtrickle.drop_stream_table(%s, %s)", (name, cascade))


def buffer_name(conn, source):
    row = conn.execute("SELECT buffer_name FROM pgtrickle.pgt_change_tracking WHERE source_relid = %s::regclass",
                       (source,)).fetchone()
    assert row is not None, f"no change tracking row for {source}"
    return row[0]


def buffer_relation(conn, source):
    return sql.SQL("pgtrickle_changes.{}").format(sql.Identifier(buffer_name(conn, source)))


def buffer_rows(conn, source, columns=None):
    """The change buffer of `source` as a Counter of (xid as text, op, column values...)."""
    if columns is None:
        columns = [r[0] for r in conn.execute(
            "SELECT unnest(captured_columns) FROM pgtrickle.pgt_change_tracking WHERE source_relid = %s::regclass",
            (source,)).fetchall()]
    cols = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(c)) for c in columns)
    rows = conn.execute(sql.SQL('SELECT "__pgt_xid"::text, "__pgt_op"::text{} FROM {}').format(
        cols, buffer_relation(conn, source))).fetchall()
    return Counter(tuple(r) for r in rows)


def _one_truncate_marker(rows):
    """TRUNCATE markers are idempotent (a partitioned source may get one per partition): count each once."""
    return Counter({r: (1 if r[1] == "T" else n) for r, n in rows.items()})


def assert_buffer_equals(conn, source, expected, columns=None):
    """The buffer holds exactly `expected` (an iterable of (xid, op, values...) tuples, as a multiset;
    'T' rows count once however often they occur)."""
    actual = _one_truncate_marker(buffer_rows(conn, source, columns))
    expected = _one_truncate_marker(Counter(tuple(e) for e in expected))
    if actual != expected:
        extra = sorted((actual - expected).elements(), key=repr)
        missing = sorted((expected - actual).elements(), key=repr)
        pytest.fail(f"change buffer of {source} is wrong\n"
                    f"  unexpected rows ({len(extra)}):\n{_format_rows(extra)}\n"
                    f"  missing rows ({len(missing)}):\n{_format_rows(missing)}", pytrace=False)


def xid(cur):
    """The current (top-level) transaction id, as text; assigns one if needed."""
    return cur.execute("SELECT pg_current_xact_id()::text").fetchone()[0]


def rows_of(values, xid_text, op):
    return [(xid_text, op) + tuple(v) for v in values]


def assert_buffer_replays_to_source(conn, st_name, source):
    """For a stream table defined as SELECT * FROM source: its contents (as of its frontier) plus the
    buffered changes the frontier does not include (I = +1, D = -1) give exactly the source's current
    contents. This is what a differential refresh relies on; it proves no change was lost, duplicated
    or trimmed too early."""
    columns = user_columns(conn, source)
    assert user_columns(conn, st_name) == columns
    # Compared as text: values of any type (jsonb, arrays) become hashable, with one canonical spelling.
    cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)
    with conn.cursor() as cur:
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            frontier = cur.execute(
                "SELECT frontier::text FROM pgtrickle.pgt_stream_tables WHERE pgt_relid = %s::regclass",
                (st_name,)).fetchone()[0]
            assert frontier is not None, f"{st_name} has no frontier"
            truncates = cur.execute(sql.SQL(
                "SELECT count(*) FROM {} WHERE \"__pgt_op\" = 'T' AND NOT pg_visible_in_snapshot(\"__pgt_xid\", %s)"
            ).format(buffer_relation(conn, source)), (frontier,)).fetchone()[0]
            assert truncates == 0, "replay check does not handle TRUNCATE markers"
            net = Counter()
            for r in cur.execute(sql.SQL("SELECT {} FROM {}").format(cols, relation_sql(conn, st_name))):
                net[tuple(r)] += 1
            for r in cur.execute(sql.SQL(
                    "SELECT \"__pgt_op\"::text, {} FROM {} WHERE NOT pg_visible_in_snapshot(\"__pgt_xid\", %s)"
            ).format(cols, buffer_relation(conn, source)), (frontier,)):
                net[tuple(r[1:])] += 1 if r[0] == "I" else -1
            current = Counter(tuple(r) for r in cur.execute(sql.SQL("SELECT {} FROM {}").format(
                cols, relation_sql(conn, source))))
        finally:
            cur.execute("ROLLBACK")
    negative = {k: v for k, v in net.items() if v < 0}
    replayed = Counter({k: v for k, v in net.items() if v > 0})
    if negative or replayed != current:
        extra = sorted((replayed - current).elements(), key=repr)
        missing = sorted((current - replayed).elements(), key=repr)
        pytest.fail(f"{st_name} + buffered changes of {source} do not replay to {source}\n"
                    f"  rows deleted more often than present: {negative!r}\n"
                    f"  extra after replay ({len(extra)}):\n{_format_rows(extra)}\n"
                    f"  missing after replay ({len(missing)}):\n{_format_rows(missing)}", pytrace=False)


def sqlstate_of(excinfo):
    return excinfo.value.diag.sqlstate


def leftovers(conn):
    """Everything pg_trickle has created in this database beyond the empty extension."""
    out = {}
    out["triggers"] = conn.execute(
        "SELECT tgrelid::regclass::text || '.' || tgname FROM pg_trigger "
        "WHERE tgname LIKE 'pgt\\_%' ORDER BY 1").fetchall()
    out["pgtrickle_changes relations"] = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'pgtrickle_changes' ORDER BY 1").fetchall()
    # Every catalog table of the extension (pgt_stream_tables, pgt_dependencies, pgt_change_tracking,
    # pgt_refresh_history, and whatever is added later) must be empty again.
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'pgtrickle' AND c.relkind IN ('r', 'p') ORDER BY 1").fetchall()]
    assert "pgt_stream_tables" in tables and "pgt_change_tracking" in tables, tables
    for t in tables:
        out[f"pgtrickle.{t} rows"] = conn.execute(
            sql.SQL("SELECT * FROM pgtrickle.{}").format(sql.Identifier(t))).fetchall()
    return {k: v for k, v in out.items() if v}


def expect_error(conn, statement, sqlstate, params=None):
    with pytest.raises(psycopg.Error) as ei:
        conn.execute(statement, params)
    assert ei.value.diag.sqlstate == sqlstate, (
        f"{statement!r}: expected SQLSTATE {sqlstate}, got {ei.value.diag.sqlstate}: {ei.value}")
    return ei.value


def capture_mode(conn, source="src"):
    """The capture mode of a source (TRIGGER, TRANSITIONING, WAL), None when it is not captured."""
    row = conn.execute("SELECT cdc_mode FROM pgtrickle.pgt_change_tracking WHERE source_relid = %s::regclass",
                       (source,)).fetchone()
    return row[0] if row else None


def drop_database(admin, name, timeout=30):
    """DROP DATABASE ... WITH (FORCE), retried while PostgreSQL refuses it because a logical replication
    slot of the database is active: PostgreSQL checks that before terminating the database's sessions,
    so it fails while pg_trickle's scheduler is decoding a WAL-captured source there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
