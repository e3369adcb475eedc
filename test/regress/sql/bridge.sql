--
-- The error bridge between C++ and PostgreSQL (src/pg/selftest.cpp). pgt_selftest_bridge(kind) fails in
-- one way per kind while two C++ objects with counted destructors are alive (one on the stack, one on
-- the heap). For each kind: the error as the client sees it (SQLSTATE, message, DETAIL, HINT, CONTEXT),
-- the number of destructors that ran (2 each time: nothing leaked across the longjmp), and that the
-- session is still usable afterwards.
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
\set SHOW_CONTEXT always
CREATE FUNCTION pg_temp.pgt_selftest_bridge(text) RETURNS void LANGUAGE C AS 'pg_trickle', 'pgt_selftest_bridge';
CREATE FUNCTION pg_temp.pgt_selftest_destructors() RETURNS bigint LANGUAGE C AS 'pg_trickle', 'pgt_selftest_destructors';
-- Runs one kind inside a subtransaction (any error is caught: only the count matters here) and returns
-- how many destructors ran meanwhile.
CREATE FUNCTION pg_temp.destructors_during(kind text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	before bigint := pg_temp.pgt_selftest_destructors();
BEGIN
	BEGIN
		PERFORM pg_temp.pgt_selftest_bridge(kind);
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
	RETURN pg_temp.pgt_selftest_destructors() - before;
END
$$;

--
-- ok, nested_spi_ok: no error, both destructors run.
--
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('ok');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('nested_spi_ok');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;

--
-- user_error: a pgtrickle::UserError becomes an ERROR with its SQLSTATE (22023), DETAIL and HINT.
--
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('user_error');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
DO $$
DECLARE d text; h text;
BEGIN
	PERFORM pg_temp.pgt_selftest_bridge('user_error');
EXCEPTION WHEN invalid_parameter_value THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RAISE NOTICE 'caught %: % / detail: % / hint: %', SQLSTATE, SQLERRM, d, h;
END$$;
SELECT 1 AS still_alive;

--
-- runtime_error: any other C++ exception becomes an internal error (XX000) naming the function.
--
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('runtime_error');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
DO $$BEGIN PERFORM pg_temp.pgt_selftest_bridge('runtime_error');
EXCEPTION WHEN internal_error THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT 1 AS still_alive;

--
-- pg_error: an ereport(ERROR) inside PostgreSQL code called from C++ reaches the client unchanged
-- (division_by_zero, 22012), after the C++ frames above it were unwound.
--
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('pg_error');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
DO $$BEGIN PERFORM pg_temp.pgt_selftest_bridge('pg_error');
EXCEPTION WHEN division_by_zero THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT 1 AS still_alive;

--
-- spi_error: an error in a statement run through SPI keeps its CONTEXT (the statement).
--
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('spi_error');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
DO $$BEGIN PERFORM pg_temp.pgt_selftest_bridge('spi_error');
EXCEPTION WHEN division_by_zero THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT 1 AS still_alive;

--
-- spi_raise: a PL/pgSQL RAISE with a custom SQLSTATE (P0042), DETAIL and HINT, run through SPI, keeps
-- all of them and both CONTEXT lines.
--
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('spi_raise');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
DO $$
DECLARE d text; h text; c text;
BEGIN
	PERFORM pg_temp.pgt_selftest_bridge('spi_raise');
EXCEPTION WHEN SQLSTATE 'P0042' THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
	RAISE NOTICE 'caught %: % / detail: % / hint: %', SQLSTATE, SQLERRM, d, h;
	RAISE NOTICE 'context: %', c;
END$$;
SELECT 1 AS still_alive;

--
-- An unknown kind is a user error too.
--
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('no_such_kind');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
DO $$BEGIN PERFORM pg_temp.pgt_selftest_bridge('no_such_kind');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;

--
-- Every kind, counted from PL/pgSQL: two destructors per call, errors or not.
--
SELECT kind, pg_temp.destructors_during(kind) AS destructors_ran
FROM unnest(ARRAY['ok', 'nested_spi_ok', 'user_error', 'runtime_error', 'pg_error', 'spi_error', 'spi_raise',
                  'no_such_kind']) WITH ORDINALITY AS k(kind, n)
ORDER BY n;

--
-- Many failures in a row, caught in subtransactions: nothing accumulates (SPI connections, memory,
-- pending-error state), and the transaction that caught them carries on and commits.
--
BEGIN;
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
DO $$
DECLARE
	kinds text[] := ARRAY['user_error', 'runtime_error', 'pg_error', 'spi_error', 'spi_raise'];
	caught integer := 0;
BEGIN
	FOR i IN 1..200 LOOP
		BEGIN
			PERFORM pg_temp.pgt_selftest_bridge(kinds[1 + i % 5]);
		EXCEPTION
			WHEN invalid_parameter_value OR internal_error OR division_by_zero OR SQLSTATE 'P0042' THEN
				caught := caught + 1;
		END;
	END LOOP;
	RAISE NOTICE 'caught % errors', caught;
END$$;
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
SELECT pg_temp.pgt_selftest_bridge('nested_spi_ok');
CREATE TEMP TABLE after_errors AS SELECT 1 AS ok;
COMMIT;
SELECT * FROM after_errors;

--
-- An error that aborts the transaction block: the rest of the block is refused, and after ROLLBACK
-- the session works normally, C++ entry points included.
--
BEGIN;
SELECT pg_temp.pgt_selftest_bridge('spi_raise');
SELECT 1;
ROLLBACK;
SELECT pg_temp.pgt_selftest_destructors() AS d0 \gset
SELECT pg_temp.pgt_selftest_bridge('nested_spi_ok');
SELECT pg_temp.pgt_selftest_destructors() - :d0 AS destructors_ran;
SELECT pgtrickle.parse_duration_seconds('1h');
-- A failed statement inside a savepoint is rolled back to it and the transaction goes on.
BEGIN;
SAVEPOINT s;
SELECT pg_temp.pgt_selftest_bridge('pg_error');
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.pgt_selftest_bridge('ok');
COMMIT;

--
-- A user error from a real entry point, seen through PL/pgSQL with its full diagnostics.
--
\set SHOW_CONTEXT errors
DO $$
DECLARE d text; h text;
BEGIN
	PERFORM pgtrickle.create_stream_table('x', 'SELECT 1 AS a', schedule => '0s');
EXCEPTION WHEN invalid_parameter_value THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RAISE NOTICE 'caught %: % / detail: % / hint: %', SQLSTATE, SQLERRM, d, h;
END$$;
