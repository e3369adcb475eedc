--
-- alter_stream_table: schedule, refresh mode, status and query changes; every argument is validated
-- before anything changes; a query with other columns rebuilds the storage table; cycles are refused.
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA al;
SET search_path = al;
-- columns_of, column_diff, content_diff: see test/regress/helpers.sql.
\i test/regress/helpers.sql
CREATE VIEW pg_temp.sts AS
SELECT pgt_name, schedule, refresh_mode, requested_refresh_mode AS requested, refresh_mode_reason AS reason,
       status, is_populated, functions_used, original_query
FROM pgtrickle.pgt_stream_tables;
CREATE VIEW pg_temp.deps AS
SELECT s.pgt_name, d.source_name, d.source_type, d.cdc_mode
FROM pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_stream_tables s USING (pgt_id);
CREATE VIEW pg_temp.captured AS
SELECT ct.source_name,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = ct.source_relid AND t.tgname LIKE 'pgt\_capture\_%') AS triggers,
       to_regclass(format('pgtrickle_changes.%I', ct.buffer_name)) IS NOT NULL AS has_buffer
FROM pgtrickle.pgt_change_tracking ct;

CREATE TABLE t1 (id integer PRIMARY KEY, v text, n integer);
CREATE TABLE t2 (id integer PRIMARY KEY, w text);
INSERT INTO t1 VALUES (1, 'one', 10), (2, 'two', 20), (3, 'three', 30);
INSERT INTO t2 VALUES (1, 'uno'), (2, 'dos');
SELECT pgtrickle.create_stream_table('st', 'SELECT id, v FROM t1', schedule => '1m', refresh_mode => 'FULL');
SELECT * FROM pg_temp.sts;

--
-- Name errors.
--
SELECT pgtrickle.alter_stream_table(NULL, schedule => '5m');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table(NULL, schedule => '5m');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('no_such', schedule => '5m');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('no_such', schedule => '5m');
EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('t1', schedule => '5m');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('t1', schedule => '5m');
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;

--
-- Schedule.
--
SELECT pgtrickle.alter_stream_table('st', schedule => '5M');
SELECT schedule FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', schedule => '*/10 * * * *');
SELECT schedule FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', schedule => '@daily');
SELECT schedule FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', schedule => 'Calculated');
SELECT schedule FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', schedule => '1h30m');
-- invalid schedules leave the schedule as it was
SELECT pgtrickle.alter_stream_table('st', schedule => 'soon');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => 'soon');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', schedule => '0s');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => '0s');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', schedule => '');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => '');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', schedule => '60 * * * *');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => '60 * * * *');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SET pg_trickle.min_schedule_seconds = 3600;
SELECT pgtrickle.alter_stream_table('st', schedule => '30m');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => '30m');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
RESET pg_trickle.min_schedule_seconds;
SELECT schedule FROM pg_temp.sts WHERE pgt_name = 'st';
-- schedule => NULL (the default) means "leave it".
SELECT pgtrickle.alter_stream_table('st', schedule => NULL);
SELECT schedule FROM pg_temp.sts WHERE pgt_name = 'st';

--
-- Refresh mode. A mode change rebuilds the storage table (FULL and DIFFERENTIAL layouts differ).
-- Regression: an alter that rebuilds the storage table (a change between FULL and DIFFERENTIAL, or a
-- query with other columns) once failed with 23503 because the sql_drop event trigger took the
-- internal DROP TABLE of the old storage table for a user's and deleted the catalog row.
--
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'auto');
SELECT refresh_mode, requested, reason FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'Full');
SELECT refresh_mode, requested, reason FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'incremental');
SELECT refresh_mode, requested, reason FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'FULL');
-- A mode change rebuilds and repopulates the table; its contents stay right.
SELECT * FROM pg_temp.content_diff('st', 'SELECT id, v FROM t1');
-- DIFFERENTIAL for a query the engine cannot maintain
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'DIFFERENTIAL', query => 'SELECT id, v FROM t1 LIMIT 2');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', refresh_mode => 'DIFFERENTIAL', query => 'SELECT id, v FROM t1 LIMIT 2');
EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'sometimes');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', refresh_mode => 'sometimes');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', refresh_mode => '');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', refresh_mode => '');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT refresh_mode, requested, reason FROM pg_temp.sts WHERE pgt_name = 'st';

--
-- Status.
--
SELECT pgtrickle.alter_stream_table('st', status => 'suspended');
SELECT status FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', status => ' Active ');
SELECT status FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', status => 'paused');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', status => 'paused');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- ERROR and INITIALIZING are set by pg_trickle only
SELECT pgtrickle.alter_stream_table('st', status => 'ERROR');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', status => 'ERROR');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', status => 'INITIALIZING');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', status => 'INITIALIZING');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', status => '');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', status => '');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT status FROM pg_temp.sts WHERE pgt_name = 'st';
-- Every argument is checked before anything changes.
SELECT pgtrickle.alter_stream_table('st', schedule => '10m', refresh_mode => 'bogus');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => '10m', refresh_mode => 'bogus');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', schedule => '10m', status => 'SUSPENDED', query => 'SELECT nonsense FROM t1');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => '10m', status => 'SUSPENDED', query => 'SELECT nonsense FROM t1');
EXCEPTION WHEN undefined_column THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', schedule => '10m', refresh_mode => 'DIFFERENTIAL', query => 'SELECT id, v FROM t1 WHERE random() < 2');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', schedule => '10m', refresh_mode => 'DIFFERENTIAL', query => 'SELECT id, v FROM t1 WHERE random() < 2');
EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT schedule, refresh_mode, requested, status FROM pg_temp.sts WHERE pgt_name = 'st';
-- Only a name: nothing changes.
SELECT pgtrickle.alter_stream_table('st');
SELECT * FROM pg_temp.sts WHERE pgt_name = 'st';
-- A rolled-back alter leaves nothing changed.
BEGIN;
SELECT pgtrickle.alter_stream_table('st', schedule => '2h', status => 'SUSPENDED', query => 'SELECT id, v FROM t1 WHERE id = 1');
ROLLBACK;
SELECT * FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT count(*) FROM st;

--
-- Query change with the same columns: the storage table is kept and refreshed in place.
--
SELECT pgt_relid AS old_relid FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st' \gset
SELECT count(*) AS old_history FROM pgtrickle.pgt_refresh_history \gset
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id, upper(v) AS v FROM t1 WHERE id < 3');
SELECT pgt_relid = :old_relid AS same_storage, defining_query FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st';
SELECT * FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT id, v FROM st ORDER BY id;
SELECT * FROM pg_temp.content_diff('st', 'SELECT id, upper(v) AS v FROM t1 WHERE id < 3');
SELECT h.action, h.status, h.initiated_by, h.rows_inserted, h.rows_deleted
FROM pgtrickle.pgt_refresh_history h ORDER BY h.refresh_id OFFSET :old_history;

--
-- Query change with other columns: the storage table is rebuilt (new relation, new columns, guard).
-- (Regression: see "Refresh mode" above.)
--
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT t1.id, t1.n, t2.w FROM t1 JOIN t2 USING (id)');
SELECT pgt_relid = :old_relid AS same_storage, pgt_relid = 'st'::regclass AS catalog_points_to_it
FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st';
SELECT * FROM pg_temp.columns_of('st');
SELECT id, n, w FROM st ORDER BY id;
SELECT * FROM pg_temp.content_diff('st', 'SELECT t1.id, t1.n, t2.w FROM t1 JOIN t2 USING (id)');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'st'::regclass ORDER BY 1;
SELECT * FROM pg_temp.deps ORDER BY 1, 2;
SELECT * FROM pg_temp.captured ORDER BY 1;
-- the rebuilt storage table is guarded too
INSERT INTO st VALUES (9, 9, 'x');
DO $$BEGIN INSERT INTO st VALUES (9, 9, 'x');
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- Same names, another type: rebuilt as well.
SELECT pgt_relid AS old_relid FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st' \gset
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT t1.id, t1.n::bigint AS n, t2.w FROM t1 JOIN t2 USING (id)');
SELECT pgt_relid = :old_relid AS same_storage FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st';
SELECT * FROM pg_temp.columns_of('st');

--
-- Query change to other sources: the capture of sources no longer read is removed, new ones captured.
--
CREATE TABLE t3 (k integer);
INSERT INTO t3 VALUES (7), (7), (8);
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT k FROM t3');
SELECT * FROM pg_temp.deps ORDER BY 1, 2;
SELECT * FROM pg_temp.captured ORDER BY 1;
SELECT count(*) AS capture_triggers_left_on_t1_t2 FROM pg_trigger
WHERE tgrelid IN ('t1'::regclass, 't2'::regclass) AND tgname LIKE 'pgt\_%';
SELECT * FROM pg_temp.content_diff('st', 'SELECT k FROM t3');
-- A source still read by another stream table keeps its capture.
SELECT pgtrickle.create_stream_table('other', 'SELECT k FROM t3 WHERE k > 7', refresh_mode => 'FULL');
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id AS k FROM t1');
SELECT * FROM pg_temp.deps ORDER BY 1, 2;
SELECT * FROM pg_temp.captured ORDER BY 1;
SELECT pgtrickle.drop_stream_table('other');

--
-- A query change with a volatile function: AUTO warns and resolves to FULL.
--
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'AUTO');
SELECT refresh_mode, requested, reason FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id AS k FROM t1 WHERE random() >= 0');
SELECT refresh_mode, requested, reason, functions_used FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT pgtrickle.alter_stream_table('st', refresh_mode => 'DIFFERENTIAL');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', refresh_mode => 'DIFFERENTIAL');
EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- Query and mode together.
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id AS k FROM t1', refresh_mode => 'DIFFERENTIAL');
SELECT refresh_mode, requested, reason, functions_used FROM pg_temp.sts WHERE pgt_name = 'st';
SELECT * FROM pg_temp.content_diff('st', 'SELECT id AS k FROM t1');
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id AS k FROM t1', refresh_mode => 'FULL');
SELECT refresh_mode, requested, reason, functions_used FROM pg_temp.sts WHERE pgt_name = 'st';

--
-- Invalid new queries change nothing.
--
SELECT pgt_relid AS old_relid FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st' \gset
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT k FROM');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT k FROM');
EXCEPTION WHEN syntax_error THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT k FROM no_such_table');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT k FROM no_such_table');
EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'DELETE FROM t1');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'DELETE FROM t1');
EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => '');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => '');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT 1 AS k, 2 AS k');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT 1 AS k, 2 AS k');
EXCEPTION WHEN duplicate_column THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT 1 AS __pgt_k');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT 1 AS __pgt_k');
EXCEPTION WHEN reserved_name THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT relname AS k FROM pg_class');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT relname AS k FROM pg_class');
EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgt_relid = :old_relid AS same_storage, original_query FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st';
SELECT * FROM pg_temp.deps ORDER BY 1, 2;

--
-- Cycles are refused (42P19): a stream table reading itself, directly or through others.
--
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT k FROM st');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT k FROM st');
EXCEPTION WHEN invalid_recursion THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT k FROM al.st UNION ALL SELECT id FROM t1');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT k FROM al.st UNION ALL SELECT id FROM t1');
EXCEPTION WHEN invalid_recursion THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.create_stream_table('st_b', 'SELECT k FROM st', refresh_mode => 'FULL');
-- st reads st_b, which reads st
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT k FROM st_b');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT k FROM st_b');
EXCEPTION WHEN invalid_recursion THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.create_stream_table('st_c', 'SELECT k FROM st_b', refresh_mode => 'FULL');
-- st -> st_c -> st_b -> st (only the SQLSTATE and message are shown: the DETAIL describes the path)
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT k FROM st_c');
EXCEPTION WHEN invalid_recursion THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT x.k FROM st_b x JOIN t1 ON t1.id = x.k');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT x.k FROM st_b x JOIN t1 ON t1.id = x.k');
EXCEPTION WHEN invalid_recursion THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- Not a cycle: st_c may read st directly too.
SELECT pgtrickle.alter_stream_table('st_c', query => 'SELECT k FROM st_b UNION ALL SELECT k FROM st');
SELECT * FROM pg_temp.deps ORDER BY 1, 2;
-- Other columns while other stream tables read it: refused (their queries depend on them).
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id AS k, v FROM t1');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT id AS k, v FROM t1');
EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id::bigint AS k FROM t1');
DO $$BEGIN PERFORM pgtrickle.alter_stream_table('st', query => 'SELECT id::bigint AS k FROM t1');
EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- The same columns are fine; the readers are refreshed separately.
SELECT pgtrickle.alter_stream_table('st', query => 'SELECT id + 100 AS k FROM t1');
SELECT k FROM st ORDER BY k;
SELECT k FROM st_b ORDER BY k;
SELECT pgtrickle.refresh_stream_table('st_b');
SELECT k FROM st_b ORDER BY k;
SELECT pgtrickle.drop_stream_table('st', cascade => true);

--
-- Query change of a SUSPENDED stream table: not refreshed (it stays suspended) and no longer
-- populated (is_populated = false) until its next refresh.
--
SELECT pgtrickle.create_stream_table('st_s', 'SELECT id, v FROM t1', refresh_mode => 'FULL');
SELECT pgtrickle.alter_stream_table('st_s', status => 'SUSPENDED');
SELECT pgtrickle.alter_stream_table('st_s', query => 'SELECT id, v, n FROM t1');
SELECT count(*) FROM st_s;
SELECT status, is_populated FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_s';
SELECT pgtrickle.alter_stream_table('st_s', status => 'ACTIVE');
SELECT pgtrickle.refresh_stream_table('st_s');
SELECT status, is_populated FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_s';
SELECT * FROM pg_temp.content_diff('st_s', 'SELECT id, v, n FROM t1');
-- Everything in one call: the status applies first, so the new query is not refreshed either.
SELECT pgtrickle.alter_stream_table('st_s', query => 'SELECT id FROM t1', schedule => '@hourly',
                                    refresh_mode => 'FULL', status => 'SUSPENDED');
SELECT * FROM pg_temp.sts WHERE pgt_name = 'st_s';
SELECT count(*) FROM st_s;
SELECT pgtrickle.alter_stream_table('st_s', status => 'ACTIVE');
SELECT pgtrickle.refresh_stream_table('st_s');
SELECT * FROM pg_temp.content_diff('st_s', 'SELECT id FROM t1');
SELECT pgtrickle.drop_stream_table('st_s');

SELECT (SELECT count(*) FROM pgtrickle.pgt_stream_tables) AS stream_tables,
       (SELECT count(*) FROM pgtrickle.pgt_change_tracking) AS change_tracking,
       (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgt\_%') AS triggers;
DROP SCHEMA al CASCADE;
