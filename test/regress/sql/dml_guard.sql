--
-- A stream table is written only by refreshes: direct INSERT, UPDATE, DELETE, TRUNCATE, COPY FROM and
-- MERGE are refused (SQLSTATE 42809, wrong_object_type) by the statement-level pgt_guard trigger,
-- even when they would touch no row. Reading is unrestricted, and refreshes still write.
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA dg;
SET search_path = dg;
CREATE TABLE src (id integer PRIMARY KEY, v text);
INSERT INTO src VALUES (1, 'one'), (2, 'two');
SELECT pgtrickle.create_stream_table('st', 'SELECT id, v FROM src', refresh_mode => 'FULL');

-- INSERT
INSERT INTO st VALUES (3, 'three');
DO $$BEGIN INSERT INTO st VALUES (3, 'three');
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
INSERT INTO st SELECT id + 10, v FROM src;
DO $$BEGIN INSERT INTO st SELECT id + 10, v FROM src;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- inserting no row at all
INSERT INTO st SELECT 1, 'x' WHERE false;
DO $$BEGIN INSERT INTO st SELECT 1, 'x' WHERE false;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- UPDATE
UPDATE st SET v = 'changed';
DO $$BEGIN UPDATE st SET v = 'changed';
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- updating no row
UPDATE st SET v = 'changed' WHERE false;
DO $$BEGIN UPDATE st SET v = 'changed' WHERE false;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- DELETE
DELETE FROM st;
DO $$BEGIN DELETE FROM st;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- deleting no row
DELETE FROM st WHERE id = -1;
DO $$BEGIN DELETE FROM st WHERE id = -1;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- TRUNCATE
TRUNCATE st;
DO $$BEGIN TRUNCATE st;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- TRUNCATE of several tables: nothing is truncated
TRUNCATE src, st;
DO $$BEGIN TRUNCATE src, st;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- MERGE
MERGE INTO st USING src ON st.id = src.id WHEN MATCHED THEN UPDATE SET v = 'merged' WHEN NOT MATCHED THEN INSERT VALUES (src.id, src.v);
DO $$BEGIN MERGE INTO st USING src ON st.id = src.id WHEN MATCHED THEN UPDATE SET v = 'merged' WHEN NOT MATCHED THEN INSERT VALUES (src.id, src.v);
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- a data-modifying CTE writing it: the source change is undone too
WITH moved AS (DELETE FROM src WHERE id = 2 RETURNING *) INSERT INTO st SELECT * FROM moved;
DO $$BEGIN WITH moved AS (DELETE FROM src WHERE id = 2 RETURNING *) INSERT INTO st SELECT * FROM moved;
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- COPY FROM (psql sends the data; the guard refuses before reading it).
COPY st FROM stdin;
5	five
\.
-- COPY FROM an empty file is refused too
COPY st FROM '/dev/null';
DO $$BEGIN COPY st FROM '/dev/null';
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
CREATE VIEW st_view AS SELECT id, v FROM st;
-- through an automatically updatable view
INSERT INTO st_view VALUES (7, 'seven');
DO $$BEGIN INSERT INTO st_view VALUES (7, 'seven');
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
UPDATE st_view SET v = 'changed';
DO $$BEGIN UPDATE st_view SET v = 'changed';
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- The guard's message names the table (without its schema), here one whose name needs quoting.
CREATE SCHEMA "Other";
SELECT pgtrickle.create_stream_table('"Other"."Quoted St"', 'SELECT id FROM src', refresh_mode => 'FULL');
DELETE FROM "Other"."Quoted St";
DO $$BEGIN DELETE FROM "Other"."Quoted St";
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;

-- Nothing changed.
SELECT * FROM st ORDER BY id;
SELECT * FROM src ORDER BY id;
SELECT count(*) FROM "Other"."Quoted St";
-- Reading is allowed, and so is locking rows for reading.
SELECT id FROM st WHERE id = 1 FOR SHARE;
-- Refreshes write the table; the guard lets them through.
INSERT INTO src VALUES (3, 'three');
UPDATE src SET v = 'TWO' WHERE id = 2;
SELECT pgtrickle.refresh_stream_table('st');
SELECT * FROM st ORDER BY id;
-- ... and the guard is back in force after the refresh, in the same transaction too.
BEGIN;
SELECT pgtrickle.refresh_stream_table('st');
SAVEPOINT before_insert;
INSERT INTO st VALUES (8, 'eight');
ROLLBACK TO SAVEPOINT before_insert;
DO $$BEGIN INSERT INTO st VALUES (8, 'eight');
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
ROLLBACK;
-- A refresh that fails does not leave the guard open.
CREATE FUNCTION fail_on_four(integer) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	IF $1 = 4 THEN RAISE EXCEPTION 'four is not allowed' USING ERRCODE = 'check_violation'; END IF;
	RETURN $1;
END $$;
SELECT pgtrickle.create_stream_table('st_fragile', 'SELECT fail_on_four(id) AS id FROM src', refresh_mode => 'FULL');
INSERT INTO src VALUES (4, 'four');
\set SHOW_CONTEXT never
SELECT pgtrickle.refresh_stream_table('st_fragile');
DO $$BEGIN PERFORM pgtrickle.refresh_stream_table('st_fragile');
EXCEPTION WHEN check_violation THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
\set SHOW_CONTEXT errors
INSERT INTO st_fragile VALUES (9);
DO $$BEGIN INSERT INTO st_fragile VALUES (9);
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT id FROM st_fragile ORDER BY id;
-- The trigger functions cannot be called directly.
SELECT pgtrickle.pgt_guard();
DO $$BEGIN PERFORM pgtrickle.pgt_guard();
EXCEPTION WHEN object_not_in_prerequisite_state THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.pgt_capture();
DO $$BEGIN PERFORM pgtrickle.pgt_capture();
EXCEPTION WHEN object_not_in_prerequisite_state THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;

DROP VIEW st_view;
SELECT pgtrickle.drop_stream_table('st');
SELECT pgtrickle.drop_stream_table('st_fragile');
SELECT pgtrickle.drop_stream_table('"Other"."Quoted St"');
SELECT count(*) AS stream_tables FROM pgtrickle.pgt_stream_tables;
DROP SCHEMA dg, "Other" CASCADE;
