"""What every benchmark driver shares: the benchmark cluster's address (BENCH_* variables set by
bench/lib.sh), a connection to it, and timing one statement on the client."""
import os
import time

import psycopg

HOST = os.environ["BENCH_HOST"]
PORT = os.environ["BENCH_PORT"]
DB = os.environ["BENCH_DB"]


def connect():
    return psycopg.connect(host=HOST, port=PORT, dbname=DB, user="postgres", autocommit=True)


def timed(conn, sql, params=None):
    """Runs one statement; its client-side time in ms."""
    t0 = time.perf_counter()
    conn.execute(sql, params)
    return (time.perf_counter() - t0) * 1000.0
