--
-- WITH RECURSIVE in DIFFERENTIAL mode: a tree expanded with UNION ALL (one row per path: derivations
-- counted) and reachability in a graph with cycles with UNION (a set: delete and rederive). Both read
-- their old result from the storage table. explain_st's operator tree and strategy, then the exact
-- contents after inserts, updates and deletes (each refresh DIFFERENTIAL and equal to the query), then
-- recursive shapes the engine does not maintain: AUTO falls back to FULL naming the construct,
-- DIFFERENTIAL is refused with the same reason.
--
\set VERBOSITY default
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA rq;
SET search_path = rq;
SET pg_trickle.differential_max_change_ratio = 0;
\i test/regress/helpers.sql

CREATE TABLE emp (id integer PRIMARY KEY, boss integer, name text);
CREATE TABLE link (id integer PRIMARY KEY, src integer, dst integer);
INSERT INTO emp VALUES (1, NULL, 'ann'), (2, 1, 'ben'), (3, 1, 'cid'), (4, 2, 'dee'), (5, 4, NULL);
INSERT INTO link VALUES (1, 1, 2), (2, 2, 3), (3, 3, 1), (4, 3, 4), (5, 5, 6);

CREATE TEMP TABLE queries (n integer, name text, query text);
INSERT INTO queries VALUES
	(1, 'org', 'WITH RECURSIVE chain(id, name, depth, path) AS (
	              SELECT id, name, 0, name FROM emp WHERE boss IS NULL
	              UNION ALL
	              SELECT e.id, e.name, c.depth + 1, c.path || ''/'' || e.name FROM chain c JOIN emp e ON e.boss = c.id)
	            SELECT id AS emp_id, name, depth, path FROM chain'),
	(2, 'reach', 'WITH RECURSIVE r(a, b) AS (
	                SELECT src, dst FROM link
	                UNION
	                SELECT r.a, l.dst FROM r JOIN link l ON l.src = r.b)
	              SELECT * FROM r');
SELECT n, name, pgtrickle.create_stream_table(name, query, refresh_mode => 'DIFFERENTIAL', schedule => '1h')
FROM queries ORDER BY n;
SELECT q.name, e.property, e.value
FROM queries q, pgtrickle.explain_st(q.name) e
WHERE e.property IN ('refresh_mode', 'operator_tree', 'strategy') ORDER BY q.n, e.property;

CREATE FUNCTION pg_temp.refresh_all()
RETURNS TABLE (name text, action text, differing_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
	q record;
BEGIN
	FOR q IN SELECT * FROM queries ORDER BY n LOOP
		PERFORM pgtrickle.refresh_stream_table(q.name);
		name := q.name;
		SELECT h.action INTO action FROM pgtrickle.pgt_refresh_history h
		JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = q.name ORDER BY h.refresh_id DESC LIMIT 1;
		SELECT count(*) INTO differing_rows FROM pg_temp.content_diff(q.name, q.query);
		RETURN NEXT;
	END LOOP;
END
$$;
SELECT emp_id, name, depth, path FROM org ORDER BY path COLLATE "C", emp_id;
SELECT a, b FROM reach ORDER BY a, b;

-- Inserts: a new subtree under an existing employee, an edge closing a new cycle.
INSERT INTO emp VALUES (6, 3, 'eve'), (7, 6, 'fay');
INSERT INTO link VALUES (6, 4, 5), (7, 6, 1);
-- (The delta of a recursive query runs with work_mem capped at 4MB; the session's value comes back.)
SET work_mem = '64MB';
SELECT * FROM pg_temp.refresh_all();
SHOW work_mem;
RESET work_mem;
SELECT emp_id, name, depth, path FROM org ORDER BY path COLLATE "C", emp_id;
SELECT a, b FROM reach ORDER BY a, b;

-- Updates: an employee (and everyone below) moves to another boss, a name changes, an edge is
-- redirected (some pairs stay reachable another way: rederived).
UPDATE emp SET boss = 3 WHERE id = 2;
UPDATE emp SET name = 'ANN' WHERE id = 1;
UPDATE link SET dst = 1 WHERE id = 2;
SELECT * FROM pg_temp.refresh_all();
SELECT emp_id, name, depth, path FROM org ORDER BY path COLLATE "C", emp_id;
SELECT a, b FROM reach ORDER BY a, b;

-- Deletes: an inner node of the tree (its subtree goes), an edge of the cycle (the cycle breaks).
DELETE FROM emp WHERE id = 3;
DELETE FROM link WHERE id = 1;
SELECT * FROM pg_temp.refresh_all();
SELECT emp_id, name, depth, path FROM org ORDER BY path COLLATE "C", emp_id;
SELECT a, b FROM reach ORDER BY a, b;

-- Nothing changed: NO_DATA.
SELECT * FROM pg_temp.refresh_all();
SELECT pgtrickle.drop_stream_table(name) FROM queries ORDER BY n;

-- Shapes not maintained differentially: AUTO falls back to FULL with the reason ...
CREATE TABLE nokey (src integer, dst integer);
SELECT pgtrickle.create_stream_table('rec_agg', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM link UNION
	SELECT r.a, l.dst FROM r JOIN link l ON l.src = r.b) SELECT a, count(*) AS n FROM r GROUP BY a', schedule => '1h');
SELECT pgtrickle.create_stream_table('rec_join', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM link UNION
	SELECT r.a, l.dst FROM r JOIN link l ON l.src = r.b) SELECT r.a, e.name FROM r JOIN emp e ON e.id = r.b', schedule => '1h');
SELECT pgtrickle.create_stream_table('rec_nokey', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM nokey UNION ALL
	SELECT r.a, k.dst FROM r JOIN nokey k ON k.src = r.b) SELECT * FROM r', schedule => '1h');
SELECT pgtrickle.create_stream_table('rec_sub', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM link UNION
	SELECT r.a, l.dst FROM r JOIN link l ON l.src = r.b WHERE l.dst IN (SELECT id FROM emp)) SELECT * FROM r',
	schedule => '1h');
SELECT pgt_name, refresh_mode, refresh_mode_reason FROM pgtrickle.pgt_stream_tables
WHERE pgt_schema = 'rq' ORDER BY pgt_name;
SELECT property, value FROM pgtrickle.explain_st('rec_agg') WHERE property IN ('refresh_mode', 'dvm_supported', 'mode_reason');
-- ... and DIFFERENTIAL is refused with the same reason.
SELECT pgtrickle.create_stream_table('rec_diff', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM link UNION
	SELECT r.a, l.dst FROM r JOIN link l ON l.src = r.b) SELECT * FROM r WHERE a = 1', refresh_mode => 'DIFFERENTIAL');
SELECT pgtrickle.create_stream_table('rec_diff', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM link UNION
	SELECT r.a, l.dst FROM r LEFT JOIN link l ON l.src = r.b) SELECT * FROM r', refresh_mode => 'DIFFERENTIAL');
SELECT pgtrickle.drop_stream_table(pgt_name) FROM pgtrickle.pgt_stream_tables WHERE pgt_schema = 'rq' ORDER BY pgt_name;
DROP SCHEMA rq CASCADE;
