--
-- drop_stream_table: name errors; stream tables read by others are refused without cascade (2BP01);
-- cascade drops the readers first; afterwards nothing is left: storage table, catalog rows, history,
-- capture triggers on the sources and change buffers.
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA dr;
SET search_path = dr;
-- Everything pg_trickle keeps about stream tables in schema dr, and about sources anywhere.
CREATE VIEW pg_temp.leftovers AS
SELECT 'stream table' COLLATE "C" AS kind, (pgt_schema || '.' || pgt_name) COLLATE "C" AS name FROM pgtrickle.pgt_stream_tables
UNION ALL
SELECT 'dependency', s.pgt_name || ' -> ' || d.source_name
FROM pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
UNION ALL
SELECT 'history', s.pgt_name || ' x' || count(*)
FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) GROUP BY s.pgt_name
UNION ALL
SELECT 'orphan history', count(*)::text FROM pgtrickle.pgt_refresh_history h
WHERE NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = h.pgt_id) HAVING count(*) > 0
UNION ALL
SELECT 'change tracking', source_name FROM pgtrickle.pgt_change_tracking
UNION ALL
SELECT 'buffer', 'changes_<oid of ' || coalesce((SELECT relname FROM pg_class WHERE oid = substring(c.relname FROM 9)::oid),
                                              'a dropped relation') || '>'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgtrickle_changes' AND c.relkind = 'r'
UNION ALL
SELECT 'trigger', tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE 'pgt\_%'
UNION ALL
SELECT 'relation', relname FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'dr') AND relname LIKE 'st%';

CREATE TABLE src (id integer PRIMARY KEY, v text);
INSERT INTO src VALUES (1, 'one'), (2, 'two');
SELECT pgtrickle.create_stream_table('st_a', 'SELECT id, v FROM src', refresh_mode => 'FULL');
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;

--
-- Name errors.
--
SELECT pgtrickle.drop_stream_table(NULL);
DO $$BEGIN PERFORM pgtrickle.drop_stream_table(NULL);
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.drop_stream_table('');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.drop_stream_table('no_such');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('no_such');
EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.drop_stream_table('no_such_schema.st_a');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('no_such_schema.st_a');
EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- an ordinary table is not dropped
SELECT pgtrickle.drop_stream_table('src');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('src');
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT count(*) FROM src;

--
-- Dropping one stream table removes everything about it.
--
SELECT pgtrickle.drop_stream_table('st_a');
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;
SELECT to_regclass('dr.st_a') IS NULL AS storage_gone;
-- The source is untouched and can be written as before, without capture.
INSERT INTO src VALUES (3, 'three');
SELECT count(*) FROM src;
-- The name can be used again.
SELECT pgtrickle.create_stream_table('st_a', 'SELECT id FROM src', refresh_mode => 'FULL');
SELECT count(*) FROM st_a;

--
-- Readers: refused without cascade, dropped with it.
--
SELECT pgtrickle.create_stream_table('st_b', 'SELECT count(*) AS n FROM st_a', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_c', 'SELECT n * 2 AS n2 FROM st_b', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_d', 'SELECT id FROM st_a WHERE id > 1', refresh_mode => 'FULL');
-- two direct readers
SELECT pgtrickle.drop_stream_table('st_a');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('st_a');
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.drop_stream_table('st_a', cascade => false);
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('st_a', cascade => false);
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- cascade => NULL means false
SELECT pgtrickle.drop_stream_table('st_a', cascade => NULL);
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('st_a', cascade => NULL);
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.drop_stream_table('st_b');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('st_b');
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT * FROM pg_temp.leftovers WHERE kind IN ('stream table', 'dependency') ORDER BY 1, 2;
-- A stream table nobody reads can be dropped alone; the capture of st_b (read by st_c) goes with it.
SELECT pgtrickle.drop_stream_table('st_c');
SELECT * FROM pg_temp.leftovers WHERE kind NOT IN ('history', 'relation') ORDER BY 1, 2;
-- Cascade drops every reader, transitively.
SELECT pgtrickle.create_stream_table('st_c', 'SELECT n * 2 AS n2 FROM st_b', refresh_mode => 'FULL');
SELECT pgtrickle.drop_stream_table('st_a', cascade => true);
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;

--
-- A diamond: st_y reads st_x; st_z reads both. Cascade drops each once.
--
SELECT pgtrickle.create_stream_table('st_x', 'SELECT id, v FROM src', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_y', 'SELECT id FROM st_x', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_z', 'SELECT x.id FROM st_x x JOIN st_y y USING (id)', refresh_mode => 'FULL');
SELECT pgtrickle.drop_stream_table('st_x');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('st_x');
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.drop_stream_table('st_x', cascade => true);
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;

--
-- A drop is part of the caller's transaction: rolled back, the stream table is back, working.
--
SELECT pgtrickle.create_stream_table('st_keep', 'SELECT id, v FROM src', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_keep_reader', 'SELECT count(*) AS n FROM st_keep', refresh_mode => 'FULL');
BEGIN;
SELECT pgtrickle.drop_stream_table('st_keep', cascade => true);
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;
ROLLBACK;
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;
INSERT INTO src VALUES (4, 'four');
SELECT pgtrickle.refresh_stream_table('st_keep');
SELECT pgtrickle.refresh_stream_table('st_keep_reader');
SELECT * FROM st_keep_reader;

--
-- Two stream tables on one source: the capture stays until the last one is dropped.
--
SELECT pgtrickle.drop_stream_table('st_keep', cascade => true);
SELECT pgtrickle.create_stream_table('st_one', 'SELECT id FROM src', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_two', 'SELECT v FROM src', refresh_mode => 'FULL');
SELECT pgtrickle.drop_stream_table('st_one');
SELECT * FROM pg_temp.leftovers WHERE kind IN ('change tracking', 'buffer', 'trigger') ORDER BY 1, 2;
SELECT pgtrickle.drop_stream_table('st_two');
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;

--
-- Names: quoted, other schemas, search_path.
--
CREATE SCHEMA "Dr Other";
SELECT pgtrickle.create_stream_table('"Dr Other"."St Quoted"', 'SELECT id FROM dr.src', refresh_mode => 'FULL');
SELECT pgtrickle.drop_stream_table('"Dr Other".st quoted');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('"Dr Other".st quoted');
EXCEPTION WHEN invalid_name THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.drop_stream_table('"Dr Other"."st quoted"');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('"Dr Other"."st quoted"');
EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- not on search_path
SELECT pgtrickle.drop_stream_table('"St Quoted"');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('"St Quoted"');
EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SET search_path = dr, "Dr Other";
SELECT pgtrickle.drop_stream_table('"St Quoted"');
SET search_path = dr;
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;
DROP SCHEMA "Dr Other";

--
-- Objects of the user that depend on the storage table make the drop fail, and nothing is dropped.
-- (CONTEXT would show the internal DROP TABLE statement: hidden.)
--
SELECT pgtrickle.create_stream_table('st_viewed', 'SELECT id FROM src', refresh_mode => 'FULL');
CREATE VIEW st_viewed_view AS SELECT * FROM st_viewed;
\set SHOW_CONTEXT never
SELECT pgtrickle.drop_stream_table('st_viewed');
DO $$BEGIN PERFORM pgtrickle.drop_stream_table('st_viewed');
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
\set SHOW_CONTEXT errors
SELECT * FROM pg_temp.leftovers WHERE kind = 'stream table' ORDER BY 1, 2;
DROP VIEW st_viewed_view;
SELECT pgtrickle.drop_stream_table('st_viewed');

--
-- Plain DDL (sql_drop event trigger): a table that a stream table reads cannot be dropped; dropping a
-- stream table's storage table drops the stream table, unless another stream table reads it.
--
CREATE TABLE doomed (a integer);
SELECT pgtrickle.create_stream_table('st_doomed', 'SELECT a FROM doomed', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_doomed_reader', 'SELECT count(*) AS n FROM st_doomed', refresh_mode => 'FULL');
DROP TABLE doomed;
DO $$BEGIN DROP TABLE doomed;
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
DROP TABLE st_doomed;
DO $$BEGIN DROP TABLE st_doomed;
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT * FROM pg_temp.leftovers WHERE kind IN ('stream table', 'dependency') ORDER BY 1, 2;
DROP TABLE st_doomed_reader;
SELECT * FROM pg_temp.leftovers WHERE kind IN ('stream table', 'dependency') ORDER BY 1, 2;
DROP TABLE st_doomed;
DROP TABLE doomed;
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;
-- DROP SCHEMA ... CASCADE: refused while a stream table outside the schema reads from it; otherwise
-- every stream table in it goes, catalog and capture included.
CREATE SCHEMA dr_gone;
CREATE TABLE dr_gone.s (a integer);
SELECT pgtrickle.create_stream_table('dr_gone.st1', 'SELECT a FROM dr_gone.s', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('dr_gone.st2', 'SELECT count(*) AS n FROM dr_gone.st1', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_outside', 'SELECT a FROM dr_gone.s', refresh_mode => 'FULL');
\set VERBOSITY terse
DROP SCHEMA dr_gone CASCADE;
DO $$BEGIN DROP SCHEMA dr_gone CASCADE;
EXCEPTION WHEN dependent_objects_still_exist THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
\set VERBOSITY default
SELECT pgtrickle.drop_stream_table('st_outside');
DROP SCHEMA dr_gone CASCADE;
SELECT * FROM pg_temp.leftovers ORDER BY 1, 2;

DROP SCHEMA dr CASCADE;
