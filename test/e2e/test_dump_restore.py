"""pg_dump of a database with stream tables restores into a working database: the catalog is re-linked
to the restored relations (by the scheduler, or by restore_stream_tables()), writes to sources are
captured at once, and every stream table equals its query after the next refreshes."""
import subprocess
import time

import psycopg
import pytest

from pgt_helpers import assert_st_matches_query, create_st, refresh, st_vs_query, drop_database

Q_GROUP = "SELECT g, sum(v) AS s, count(*) AS n FROM o GROUP BY g"
Q_TOP = "SELECT sum(s) AS t FROM og"
Q_JOIN = "SELECT o.id, o.v, d.label FROM o JOIN dim d ON d.g = o.g WHERE o.v > 50"


def _setup(conn):
    conn.execute("CREATE TABLE o (id int PRIMARY KEY, g int, v numeric)")
    conn.execute("CREATE TABLE dim (g int PRIMARY KEY, label text)")
    conn.execute("INSERT INTO o SELECT i, i % 4, i FROM generate_series(1, 200) i")
    conn.execute("INSERT INTO dim SELECT i, 'label ' || i FROM generate_series(0, 3) i")
    create_st(conn, "og", Q_GROUP)
    create_st(conn, "top", Q_TOP, schedule="1s")
    create_st(conn, "joined", Q_JOIN)
    conn.execute("INSERT INTO o VALUES (1000, 1, 500)")  # pending change, not yet refreshed


def _dump_restore(cluster, src, dst, before_restore=None):
    pgbin = cluster.pgbin
    dump = cluster.basedir / f"{src}.dump"
    common = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
    subprocess.run([pgbin / "pg_dump", *common, "-Fc", "-f", dump, src], check=True, capture_output=True)
    with cluster.connect() as admin:
        admin.execute(f'CREATE DATABASE "{dst}"')
    if before_restore:
        before_restore()
    res = subprocess.run([pgbin / "pg_restore", *common, "-d", dst, dump], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _relink_pending(conn):
    return conn.execute("SELECT count(*) FROM pgtrickle.pgt_stream_tables WHERE needs_reinit OR "
                        "pgt_relid::regclass::text <> pgt_name").fetchone()[0]


def test_restore_then_relink_by_function(db, cluster):
    _setup(db.conn)
    dst = db.name + "_r"
    _dump_restore(cluster, db.name, dst)
    conn = cluster.connect(dst)
    try:
        # Writes work before the catalog is re-linked (captured by name), and after.
        conn.execute("INSERT INTO o VALUES (1001, 2, 700)")
        assert conn.execute("SELECT pgtrickle.restore_stream_tables()").fetchone()[0] == 3
        conn.execute("UPDATE o SET v = v + 1 WHERE id <= 10")
        conn.execute("DELETE FROM o WHERE id BETWEEN 20 AND 30")
        for st in ("og", "top", "joined"):
            refresh(conn, st)
        assert_st_matches_query(conn, "og", Q_GROUP)
        assert_st_matches_query(conn, "top", Q_TOP)
        assert_st_matches_query(conn, "joined", Q_JOIN)
        # And differentially from then on.
        conn.execute("UPDATE o SET g = 3 WHERE id = 5")
        refresh(conn, "og")
        action = conn.execute("SELECT action FROM pgtrickle.get_refresh_history('og', 1)").fetchone()[0]
        assert action == "DIFFERENTIAL"
        assert_st_matches_query(conn, "og", Q_GROUP)
        # Nothing left over from the old database's OIDs.
        assert conn.execute("SELECT count(*) FROM pgtrickle.pgt_change_tracking t WHERE NOT EXISTS "
                            "(SELECT 1 FROM pg_class c WHERE c.oid = t.source_relid)").fetchone()[0] == 0
    finally:
        conn.close()
        with cluster.connect() as admin:
            drop_database(admin, dst)


def test_restore_relinked_by_scheduler(cluster_factory):
    cl = cluster_factory.new("restore_sched", extra_conf="pg_trickle.enabled = on\npg_trickle.scheduler_interval_ms = 200\n")
    with cl.connect() as admin:
        admin.execute("CREATE DATABASE src")
    conn = cl.connect("src")
    conn.execute("CREATE EXTENSION pg_trickle")
    _setup(conn)
    conn.close()
    # The scheduler leaves a database alone while pg_restore is connected to it (by application_name):
    # re-linking or moving a source to WAL capture in the middle of the restore dropped triggers that
    # pg_restore then failed to ALTER. A session posing as pg_restore holds it off after the restore too.
    holder = []

    def hold():
        holder.append(psycopg.connect(cl.conninfo("dst"), autocommit=True, application_name="pg_restore"))

    _dump_restore(cl, "src", "dst", before_restore=hold)
    conn = cl.connect("dst")
    conn.execute("INSERT INTO o VALUES (1001, 2, 700)")
    deadline = time.monotonic() + 30  # until dst has a scheduler (the launcher's next scan) and it waits
    while time.monotonic() < deadline and "the scheduler waits until it is done" not in cl.log_text():
        time.sleep(0.2)
    assert "the scheduler waits until it is done" in cl.log_text()
    time.sleep(1.0)  # five more ticks
    stale = conn.execute("SELECT count(*) FROM pgtrickle.pgt_stream_tables WHERE pgt_relid::regclass::text <> pgt_name"
                         ).fetchone()[0]
    assert stale == 3, "the scheduler re-linked the catalog while pg_restore was connected"
    holder[0].close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = _relink_pending(conn)
        if pending == 0:
            break
        time.sleep(0.2)
    assert pending == 0
    conn.execute("UPDATE o SET v = 0 WHERE id = 1")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not any(any(st_vs_query(conn, st, q)) for st, q in (("og", Q_GROUP), ("top", Q_TOP))):
            break
        time.sleep(0.2)
    assert_st_matches_query(conn, "og", Q_GROUP)
    assert_st_matches_query(conn, "top", Q_TOP)
    conn.close()


def test_restore_of_a_wal_captured_source(db, cluster):
    """A source captured from the WAL has no triggers and a slot that pg_dump does not carry: the
    restored database captures it with triggers again, and every stream table is exact."""
    c = db.conn
    _setup(c)
    c.execute("SELECT pgtrickle.alter_stream_table('joined', cdc_mode => 'wal')")
    refresh(c, "joined")
    for _ in range(40):
        c.execute("SELECT pgtrickle.advance_cdc_transitions()")
        if c.execute("SELECT cdc_mode FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'dim'::regclass"
                     ).fetchone()[0] == "WAL":
            break
        time.sleep(0.05)
    assert c.execute("SELECT cdc_mode FROM pgtrickle.pgt_dependencies WHERE source_relid = 'dim'::regclass"
                     ).fetchone()[0] == "WAL"
    c.execute("UPDATE dim SET label = label || '*' WHERE g = 1")  # in the WAL only
    dst = db.name + "_w"
    _dump_restore(cluster, db.name, dst)
    conn = cluster.connect(dst)
    try:
        assert conn.execute("SELECT pgtrickle.restore_stream_tables()").fetchone()[0] == 3
        assert conn.execute("SELECT DISTINCT cdc_mode FROM pgtrickle.pgt_dependencies WHERE source_type = 'TABLE'"
                            ).fetchall() == [("TRIGGER",)]
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'dim'::regclass "
                            "AND tgname LIKE 'pgt\\_capture\\_%'").fetchone()[0] == 4
        conn.execute("UPDATE dim SET label = label || '+' WHERE g = 2")
        conn.execute("UPDATE o SET v = v + 100 WHERE id % 3 = 0")
        for st in ("og", "top", "joined"):
            refresh(conn, st)
        assert_st_matches_query(conn, "og", Q_GROUP)
        assert_st_matches_query(conn, "top", Q_TOP)
        assert_st_matches_query(conn, "joined", Q_JOIN)
        conn.execute("SET pg_trickle.differential_max_change_ratio = 0")  # dim has 4 rows: 1 change is 25 %
        conn.execute("UPDATE dim SET label = 'again' WHERE g = 3")
        refresh(conn, "joined")
        assert conn.execute("SELECT action FROM pgtrickle.get_refresh_history('joined', 1)").fetchone()[0] == \
            "DIFFERENTIAL"
        assert_st_matches_query(conn, "joined", Q_JOIN)
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
                            ).fetchone()[0] == 0
    finally:
        conn.close()
        with cluster.connect() as admin:
            drop_database(admin, dst)
    c.execute("SELECT pgtrickle.drop_stream_table('joined')")
