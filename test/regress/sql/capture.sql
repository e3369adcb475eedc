--
-- Change capture: one buffer per source table, pgtrickle_changes.changes_<source oid>, filled by
-- statement-level AFTER triggers from transition tables. Rows: __pgt_xid (writer's top-level xid),
-- __pgt_op (I, D, or T for TRUNCATE), then the source's columns. Buffers are trimmed by refreshes once
-- every consumer's frontier has passed the rows. OIDs and xids vary between runs: the buffers are read
-- through buffer_rows(), which numbers the writing transactions 1, 2, ... in xid order instead.
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA cc;
SET search_path = cc;

CREATE FUNCTION pg_temp.buffer_rows(source regclass)
RETURNS TABLE (xact bigint, op text, data jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	buf text;
BEGIN
	SELECT format('pgtrickle_changes.%I', buffer_name) INTO buf
	FROM pgtrickle.pgt_change_tracking WHERE source_relid = source;
	IF buf IS NULL THEN
		RAISE NOTICE 'no change buffer for %', source;
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format(
		'SELECT dense_rank() OVER (ORDER BY b.__pgt_xid), b.__pgt_op::text,
		        (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(to_jsonb(b)) AS e
		         WHERE e.key NOT LIKE ''\_\_pgt\_%%'')
		 FROM %s b ORDER BY b.__pgt_xid, b.__pgt_op, 3', buf);
END
$$;
CREATE VIEW pg_temp.pending AS
SELECT stream_table, source_table, cdc_mode, pending_rows, buffer_bytes > 0 AS has_storage
FROM pgtrickle.change_buffer_sizes()
ORDER BY stream_table COLLATE "C", source_table COLLATE "C";

CREATE TABLE src (id integer PRIMARY KEY, v text, n numeric(6,2));
INSERT INTO src VALUES (1, 'before', 1.50);
SELECT pgtrickle.create_stream_table('st_a', 'SELECT id, v FROM src', refresh_mode => 'FULL');

--
-- What creating the stream table set up.
--
SELECT source_schema, source_name, buffer_name = 'changes_' || source_relid AS buffer_named_by_oid,
       cdc_mode, captured_columns
FROM pgtrickle.pgt_change_tracking ORDER BY source_name;
-- The buffer: bookkeeping columns named __pgt_* first (among them __pgt_xid xid8 and __pgt_op "char",
-- NOT NULL), then every column of the source (not only the ones the query uses) with its type; an
-- index on __pgt_xid.
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull
FROM pg_attribute a
WHERE a.attrelid = (SELECT format('pgtrickle_changes.%I', buffer_name)::regclass
                    FROM pgtrickle.pgt_change_tracking WHERE source_name = 'src')
  AND a.attnum > 0 AND NOT a.attisdropped
  AND (a.attname IN ('__pgt_xid', '__pgt_op') OR a.attname NOT LIKE '\_\_pgt\_%')
ORDER BY a.attnum;
SELECT max(attnum) FILTER (WHERE attname LIKE '\_\_pgt\_%') < min(attnum) FILTER (WHERE attname NOT LIKE '\_\_pgt\_%')
       AS bookkeeping_first
FROM pg_attribute
WHERE attrelid = (SELECT format('pgtrickle_changes.%I', buffer_name)::regclass
                  FROM pgtrickle.pgt_change_tracking WHERE source_name = 'src')
  AND attnum > 0 AND NOT attisdropped;
SELECT regexp_replace(indexdef, '[0-9]+', 'N', 'g') AS indexdef
FROM pg_indexes WHERE schemaname = 'pgtrickle_changes' ORDER BY 1;
-- The triggers on the source: statement level, AFTER, enabled ALWAYS (also under
-- session_replication_role = replica).
SELECT tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'src'::regclass ORDER BY tgname;
-- Rows that existed before the stream table are not in the buffer.
SELECT * FROM pg_temp.buffer_rows('src');

--
-- INSERT, UPDATE (a D row with the old values and an I row with the new ones), DELETE.
--
INSERT INTO src VALUES (2, 'two', 2.00), (3, 'three', NULL);
UPDATE src SET v = 'TWO', n = n + 1 WHERE id = 2;
DELETE FROM src WHERE id = 1;
SELECT * FROM pg_temp.buffer_rows('src');
-- Statements that change nothing write nothing.
UPDATE src SET v = 'none' WHERE false;
DELETE FROM src WHERE id = -1;
INSERT INTO src SELECT 99, 'none', 0 WHERE false;
-- A rolled-back change leaves nothing.
BEGIN;
INSERT INTO src VALUES (50, 'rolled back', 5);
ROLLBACK;
-- A subtransaction rolled back leaves nothing either; its parent's changes stay.
BEGIN;
INSERT INTO src VALUES (4, 'four', 4);
SAVEPOINT s;
INSERT INTO src VALUES (51, 'rolled back', 5);
ROLLBACK TO SAVEPOINT s;
-- Several statements in one transaction share its xid (one xact number).
UPDATE src SET n = 40 WHERE id = 4;
COMMIT;
SELECT * FROM pg_temp.buffer_rows('src');
-- INSERT ... ON CONFLICT DO UPDATE: the new row as I, the updated one as D + I.
INSERT INTO src VALUES (3, 'three again', 3), (5, 'five', 5)
ON CONFLICT (id) DO UPDATE SET v = excluded.v, n = excluded.n;
-- MERGE: every action is captured.
MERGE INTO src USING (VALUES (4, 'merged'), (6, 'six')) AS m(id, v) ON src.id = m.id
WHEN MATCHED THEN UPDATE SET v = m.v
WHEN NOT MATCHED THEN INSERT VALUES (m.id, m.v, 6);
-- COPY FROM.
COPY src FROM stdin;
7	seven	7.00
\.
SELECT * FROM pg_temp.buffer_rows('src') WHERE xact > 3;
-- The buffer holds what the source became: replaying it (I = +1, D = -1) from the contents captured at
-- creation gives the current contents.
WITH replayed AS (
	SELECT id, v, sum(c) AS c FROM (
		SELECT (data->>'id')::int AS id, data->>'v' AS v, CASE op WHEN 'I' THEN 1 WHEN 'D' THEN -1 END AS c
		FROM pg_temp.buffer_rows('src')
		UNION ALL SELECT 1, 'before', 1) s
	GROUP BY id, v HAVING sum(c) <> 0)
SELECT 'only replayed' AS side, id, v, c FROM replayed WHERE (id, v, c) NOT IN (SELECT id, v, 1 FROM src)
UNION ALL
SELECT 'only in src', id, v, 1 FROM src WHERE (id, v) NOT IN (SELECT id, v FROM replayed)
ORDER BY 1, 2;
SELECT * FROM pg_temp.pending;

--
-- TRUNCATE writes a marker row (op T, no column values).
--
TRUNCATE src;
SELECT * FROM pg_temp.buffer_rows('src') WHERE op = 'T';
SELECT count(*) FROM pg_temp.buffer_rows('src');

--
-- A refresh trims the rows every consumer has seen.
--
SELECT pgtrickle.refresh_stream_table('st_a');
SELECT * FROM pg_temp.buffer_rows('src');
SELECT * FROM pg_temp.pending;
-- Changes made in the refreshing transaction itself are not trimmed by it (the refresh snapshot cannot
-- have passed them); the next refresh trims them.
BEGIN;
INSERT INTO src VALUES (10, 'ten', 10);
SELECT pgtrickle.refresh_stream_table('st_a');
SELECT * FROM st_a ORDER BY id;
SELECT * FROM pg_temp.buffer_rows('src');
COMMIT;
SELECT * FROM pg_temp.buffer_rows('src');
SELECT pgtrickle.refresh_stream_table('st_a');
SELECT * FROM pg_temp.buffer_rows('src');

--
-- Changes are captured under session_replication_role = replica too (triggers enabled ALWAYS).
--
SET session_replication_role = replica;
INSERT INTO src VALUES (11, 'replica', 11);
RESET session_replication_role;
SELECT * FROM pg_temp.buffer_rows('src');

--
-- A non-superuser writing the source is captured too; it cannot read the buffers.
-- Regression: the capture trigger once read pgtrickle's catalog as the writing user and failed the
-- user's INSERT with 42501. Capture runs as the extension owner: the INSERT succeeds and is captured.
--
CREATE ROLE regress_pgt_writer;
GRANT USAGE ON SCHEMA cc TO regress_pgt_writer;
GRANT INSERT, SELECT ON src TO regress_pgt_writer;
SET ROLE regress_pgt_writer;
INSERT INTO src VALUES (12, 'unprivileged', 12);
SELECT count(*) FROM src;
-- the schema of the buffers is closed to PUBLIC
SELECT count(*) FROM pgtrickle_changes.changes_0;
DO $$BEGIN PERFORM count(*) FROM pgtrickle_changes.changes_0;
EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
RESET ROLE;
SELECT * FROM pg_temp.buffer_rows('src');
DELETE FROM src WHERE id = 12;
REVOKE ALL ON src FROM regress_pgt_writer;
REVOKE ALL ON SCHEMA cc FROM regress_pgt_writer;
DROP ROLE regress_pgt_writer;

--
-- Two stream tables reading one source share one buffer. Rows stay until both have refreshed past them.
--
SELECT pgtrickle.refresh_stream_table('st_a');
SELECT pgtrickle.create_stream_table('st_b', 'SELECT count(*) AS n FROM src', refresh_mode => 'FULL');
SELECT source_name, count(*) FROM pgtrickle.pgt_change_tracking GROUP BY source_name ORDER BY 1;
SELECT * FROM pg_temp.pending;
INSERT INTO src VALUES (20, 'shared', 20);
SELECT pgtrickle.refresh_stream_table('st_a');
SELECT * FROM pg_temp.buffer_rows('src');
SELECT pgtrickle.refresh_stream_table('st_b');
SELECT * FROM pg_temp.buffer_rows('src');
-- An unpopulated consumer (initialize => false) does not hold rows back: its first refresh is FULL.
SELECT pgtrickle.create_stream_table('st_lazy', 'SELECT id FROM src', refresh_mode => 'FULL', initialize => false);
INSERT INTO src VALUES (21, 'lazy', 21);
SELECT pgtrickle.refresh_stream_table('st_a');
SELECT count(*) FROM pg_temp.buffer_rows('src');
SELECT pgtrickle.refresh_stream_table('st_b');
SELECT count(*) FROM pg_temp.buffer_rows('src');
SELECT * FROM pg_temp.pending;
-- Dropping one consumer keeps the buffer and triggers for the others.
SELECT pgtrickle.drop_stream_table('st_lazy');
SELECT pgtrickle.drop_stream_table('st_b');
SELECT source_name FROM pgtrickle.pgt_change_tracking ORDER BY 1;
SELECT count(*) AS capture_triggers FROM pg_trigger WHERE tgrelid = 'src'::regclass AND tgname LIKE 'pgt\_capture\_%';
SELECT * FROM pg_temp.pending;

--
-- A stream table read by another stream table is captured like a table: its refreshes write
-- D rows for the old contents and I rows for the new ones.
--
SELECT pgtrickle.create_stream_table('st_down', 'SELECT count(*) AS n FROM st_a', refresh_mode => 'FULL');
SELECT source_schema, source_name, captured_columns FROM pgtrickle.pgt_change_tracking ORDER BY 2;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'st_a'::regclass ORDER BY tgname;
SELECT * FROM pg_temp.buffer_rows('st_a');
INSERT INTO src VALUES (30, 'thirty', 30);
SELECT pgtrickle.refresh_stream_table('st_a');
SELECT op, count(*) FROM pg_temp.buffer_rows('st_a') GROUP BY op ORDER BY op;
SELECT * FROM pg_temp.pending;
SELECT pgtrickle.refresh_stream_table('st_down');
SELECT count(*) FROM pg_temp.buffer_rows('st_a');
SELECT * FROM st_down;

--
-- pgt_capture() misused by hand: not a statement-level AFTER trigger, or on a table without a buffer.
--
CREATE TABLE other (a integer);
CREATE TRIGGER wrong_kind AFTER INSERT ON other FOR EACH ROW EXECUTE FUNCTION pgtrickle.pgt_capture();
INSERT INTO other VALUES (1);
DO $$BEGIN INSERT INTO other VALUES (1);
EXCEPTION WHEN object_not_in_prerequisite_state THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END$$;
DROP TRIGGER wrong_kind ON other;
CREATE TRIGGER no_buffer AFTER INSERT ON other REFERENCING NEW TABLE AS nt FOR EACH STATEMENT
	EXECUTE FUNCTION pgtrickle.pgt_capture();
-- A table no stream table reads has no buffer: there is nothing to capture, and the write succeeds
-- (a partition detached from a captured table is in this situation).
DO $$BEGIN INSERT INTO other VALUES (1);
EXCEPTION WHEN object_not_in_prerequisite_state THEN
	RAISE NOTICE 'caught %: %', SQLSTATE, regexp_replace(SQLERRM, '[0-9]+', 'N');
END$$;
DROP TABLE other;

SELECT pgtrickle.drop_stream_table('st_a', cascade => true);
SELECT (SELECT count(*) FROM pgtrickle.pgt_stream_tables) AS stream_tables,
       (SELECT count(*) FROM pgtrickle.pgt_change_tracking) AS change_tracking,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'pgtrickle_changes') AS buffer_relations,
       (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgt\_%') AS triggers;
DROP SCHEMA cc CASCADE;
