--
-- Monitoring: pgt_status(), the stream_tables_info and pg_stat_stream_tables views, effective schedules,
-- get_refresh_history(), get_staleness(), dependency_tree(), health_check(), change_buffer_sizes(),
-- resume_stream_table(), parse_duration_seconds() and version(). Timestamps and durations are only
-- checked for being set and ordered.
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA mo;
SET search_path = mo;

-- Nothing yet.
SELECT * FROM pgtrickle.pgt_status() ORDER BY name COLLATE "C";
SELECT count(*) FROM pgtrickle.stream_tables_info;
SELECT * FROM pgtrickle.change_buffer_sizes() ORDER BY stream_table COLLATE "C", source_table COLLATE "C";

CREATE TABLE src (id integer, v text);
CREATE TABLE src2 (id integer);
INSERT INTO src VALUES (1, 'a'), (2, 'b');
CREATE VIEW src_view AS SELECT id FROM src2;
CREATE SCHEMA mz;
SELECT pgtrickle.create_stream_table('st_duration', 'SELECT id, v FROM src', schedule => '1h', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_seconds', 'SELECT id FROM src', schedule => '90', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_cron', 'SELECT s.id FROM src s JOIN src_view w USING (id)',
                                     schedule => '*/5 * * * *', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_lazy', 'SELECT v FROM src', schedule => '@hourly', refresh_mode => 'FULL',
                                     initialize => false);
SELECT pgtrickle.create_stream_table('mz.st_calc', 'SELECT count(*) AS n FROM mo.st_duration');
SELECT pgtrickle.create_stream_table('st_values', 'VALUES (1)', schedule => '5m', refresh_mode => 'FULL');
-- A calculated stream table read by one with a 10 minute schedule follows that pace.
SELECT pgtrickle.create_stream_table('st_base', 'SELECT id FROM src WHERE id > 1', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_paced', 'SELECT count(*) AS n FROM st_base', schedule => '10m',
                                     refresh_mode => 'FULL');
SELECT pgtrickle.alter_stream_table('st_seconds', status => 'SUSPENDED');

--
-- pgt_status(): one row per stream table, ordered by schema and name; 'calculated' spelled out.
--
SELECT name, status, refresh_mode, is_populated, consecutive_errors, schedule,
       data_timestamp IS NOT NULL AS has_data_timestamp, staleness >= interval '0' AS staleness_set
FROM pgtrickle.pgt_status();
SELECT proname, provolatile, prorettype::regtype, pg_get_function_result(oid) AS result
FROM pg_proc WHERE oid = 'pgtrickle.pgt_status'::regproc;

--
-- stream_tables_info: every catalog column plus effective_schedule (the schedule followed: its own, or
-- for a calculated one the tightest duration among its consumers, else "on source change"), staleness
-- (age of the data: now() - data_timestamp) and stale (staleness above twice a duration effective
-- schedule; NULL for cron and "on source change" schedules and for stream tables never refreshed).
--
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = 'pgtrickle' AND table_name = 'stream_tables_info' ORDER BY ordinal_position;
SELECT pgt_schema, pgt_name, schedule, effective_schedule, status, staleness IS NOT NULL AS has_staleness, stale
FROM pgtrickle.stream_tables_info ORDER BY pgt_schema, pgt_name;
SELECT s.pgt_name, e.effective_schedule
FROM pgtrickle.effective_schedules() e JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) ORDER BY s.pgt_name;
-- Pretend the data of some is old (directly in the catalog, as superuser): 3 hours for a 1h schedule
-- (stale), 7 minutes for a 5m one (older than the schedule, not than twice it: not stale), 3 hours for
-- a cron schedule (never stale).
UPDATE pgtrickle.pgt_stream_tables SET data_timestamp = now() - interval '3 hours',
                                       last_refresh_at = now() - interval '3 hours'
WHERE pgt_name IN ('st_duration', 'st_cron');
UPDATE pgtrickle.pgt_stream_tables SET data_timestamp = now() - interval '7 minutes' WHERE pgt_name = 'st_values';
SELECT pgt_name, schedule, staleness > interval '1 hour' AS older_than_an_hour, stale
FROM pgtrickle.stream_tables_info ORDER BY pgt_schema, pgt_name;
SELECT name, staleness > interval '1 hour' AS older_than_an_hour FROM pgtrickle.pgt_status();
SELECT pgtrickle.get_staleness('st_duration') > 3 * 3600 - 60 AS about_3h,
       pgtrickle.get_staleness('mo.st_values') BETWEEN 7 * 60 AND 8 * 60 AS about_7min,
       pgtrickle.get_staleness('st_lazy') IS NULL AS never_refreshed,
       pgtrickle.get_staleness('no_such_table') IS NULL AS unknown;
-- health_check(): the scheduler (off for these tests), suspended, failing, stale and unpopulated tables.
SELECT * FROM pgtrickle.health_check();
-- A refresh makes it fresh again.
SELECT pgtrickle.refresh_stream_table('st_duration');
SELECT pgt_name, stale FROM pgtrickle.stream_tables_info WHERE pgt_name = 'st_duration';
-- A cron schedule with tabs between its fields is a cron schedule too (never stale).
SELECT pgtrickle.create_stream_table('st_tabs', 'SELECT id FROM src', schedule => E'0\t*\t*\t*\t*', refresh_mode => 'FULL');
SELECT pgt_name, stale FROM pgtrickle.stream_tables_info ORDER BY pgt_schema, pgt_name;
SELECT pgtrickle.drop_stream_table('st_tabs');

--
-- pg_stat_stream_tables: per stream table, its schedules, staleness and refresh statistics.
--
SELECT pgt_schema, pgt_name, status, refresh_mode, is_populated, schedule, effective_schedule, stale,
       total_refreshes, successful_refreshes, failed_refreshes, total_rows_inserted, total_rows_deleted,
       avg_duration_ms >= 0 AS has_avg_duration, last_action, last_status
FROM pgtrickle.pg_stat_stream_tables ORDER BY pgt_schema, pgt_name;

--
-- get_refresh_history(name, max_rows => 20): newest first; the name resolves like a relation name.
--
SELECT action, status, rows_inserted, rows_deleted, duration_ms >= 0 AS has_duration, was_full_fallback,
       initiated_by, start_time <= end_time AS ordered
FROM pgtrickle.get_refresh_history('st_duration');
SELECT action, rows_inserted FROM pgtrickle.get_refresh_history('mo.st_duration', 1);
SELECT count(*) FROM pgtrickle.get_refresh_history('st_lazy');
SELECT count(*) FROM pgtrickle.get_refresh_history('no_such_table');
SELECT count(*) FROM pgtrickle.get_refresh_history('st_duration', 0);

--
-- dependency_tree(): every stream table nobody reads, with what it reads below it.
--
SELECT tree_line, node_type, depth, status, refresh_mode FROM pgtrickle.dependency_tree();

--
-- resume_stream_table(): back to ACTIVE from SUSPENDED (or ERROR), clearing the error count.
--
SELECT pgtrickle.resume_stream_table('st_seconds');
SELECT status, consecutive_errors FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_seconds';
-- not suspended
SELECT pgtrickle.resume_stream_table('st_seconds');
DO $$BEGIN PERFORM pgtrickle.resume_stream_table('st_seconds');
EXCEPTION WHEN object_not_in_prerequisite_state THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.resume_stream_table(NULL);
DO $$BEGIN PERFORM pgtrickle.resume_stream_table(NULL);
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.resume_stream_table('no_such_table');
DO $$BEGIN PERFORM pgtrickle.resume_stream_table('no_such_table');
EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.resume_stream_table('src');
DO $$BEGIN PERFORM pgtrickle.resume_stream_table('src');
EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;

--
-- change_buffer_sizes(): one row per (stream table, captured source); views have no buffer; a stream
-- table read by another is a captured source too; a stream table without sources has no row.
--
SELECT stream_table, source_table, source_oid = source_table::regclass AS oid_matches, cdc_mode, pending_rows,
       buffer_bytes > 0 AS has_bytes
FROM pgtrickle.change_buffer_sizes() ORDER BY stream_table COLLATE "C", source_table COLLATE "C";
INSERT INTO src VALUES (3, 'c');
UPDATE src SET v = 'B' WHERE id = 2;
INSERT INTO src2 VALUES (3);
SELECT stream_table, source_table, pending_rows FROM pgtrickle.change_buffer_sizes() ORDER BY stream_table COLLATE "C", source_table COLLATE "C";
SELECT pgtrickle.refresh_stream_table('st_duration');
SELECT stream_table, source_table, pending_rows FROM pgtrickle.change_buffer_sizes() ORDER BY stream_table COLLATE "C", source_table COLLATE "C";

--
-- parse_duration_seconds(): the duration syntax of schedules, in seconds.
--
SELECT input, pgtrickle.parse_duration_seconds(input) AS seconds
FROM unnest(ARRAY['1s', '30s', '90', '5m', '1h30m', '2h', '1d', '1w2d', '1w1d1h1m1s', '1W', '  10M  ', '0001m',
                  '3650d']) WITH ORDINALITY AS v(input, n)
ORDER BY n;
SELECT pgtrickle.parse_duration_seconds(NULL) IS NULL AS strict;
-- pg_trickle.min_schedule_seconds applies to schedules, not to this function.
SET pg_trickle.min_schedule_seconds = 3600;
SELECT pgtrickle.parse_duration_seconds('30s');
RESET pg_trickle.min_schedule_seconds;
SELECT pgtrickle.parse_duration_seconds('');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.parse_duration_seconds('   ');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('   ');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- zero
SELECT pgtrickle.parse_duration_seconds('0');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('0');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.parse_duration_seconds('0s');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('0s');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- negative
SELECT pgtrickle.parse_duration_seconds('-1');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('-1');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.parse_duration_seconds('-5m');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('-5m');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- garbage
SELECT pgtrickle.parse_duration_seconds('abc');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('abc');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.parse_duration_seconds('1.5');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('1.5');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- repeated unit
SELECT pgtrickle.parse_duration_seconds('1h1h');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('1h1h');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- unit order
SELECT pgtrickle.parse_duration_seconds('1m1h');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('1m1h');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- unknown unit
SELECT pgtrickle.parse_duration_seconds('5x');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('5x');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- no unit on the last number
SELECT pgtrickle.parse_duration_seconds('1h30');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('1h30');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- too long
SELECT pgtrickle.parse_duration_seconds('3651d');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('3651d');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- with a space it is read as cron
SELECT pgtrickle.parse_duration_seconds('5 m');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('5 m');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
-- cron and calculated are not durations
SELECT pgtrickle.parse_duration_seconds('@daily');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('@daily');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.parse_duration_seconds('*/5 * * * *');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('*/5 * * * *');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
SELECT pgtrickle.parse_duration_seconds('calculated');
DO $$BEGIN PERFORM pgtrickle.parse_duration_seconds('calculated');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;

--
-- version(): the version of the loaded library, which is the installed extension version.
--
SELECT pgtrickle.version() = extversion AS matches_extension,
       pgtrickle.version() ~ '^[0-9]+\.[0-9]+\.[0-9]+' AS looks_like_a_version
FROM pg_extension WHERE extname = 'pg_trickle';

SELECT pgtrickle.drop_stream_table('mz.st_calc');
SELECT pgtrickle.drop_stream_table('st_paced');
SELECT pgtrickle.drop_stream_table(name) FROM unnest(ARRAY['st_duration', 'st_seconds', 'st_cron', 'st_lazy', 'st_values', 'st_base']) AS name;
SELECT * FROM pgtrickle.pgt_status() ORDER BY name COLLATE "C";
SELECT * FROM pgtrickle.change_buffer_sizes() ORDER BY stream_table COLLATE "C", source_table COLLATE "C";
DROP SCHEMA mo, mz CASCADE;
