--
-- The broad SQL surface in DIFFERENTIAL mode: outer joins, subqueries in expressions, LATERAL, set
-- operations, CTEs, DISTINCT ON, grouping sets, window functions, aggregates in subqueries. Every
-- query is created with refresh_mode => 'DIFFERENTIAL' (an unsupported one would fail here); the
-- operator tree explain_st shows is part of the expected output; after each kind of change every
-- refresh is DIFFERENTIAL and leaves each stream table equal to its query.
--
\set VERBOSITY default
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA dq;
SET search_path = dq;
SET pg_trickle.differential_max_change_ratio = 0;
\i test/regress/helpers.sql
CREATE FUNCTION pg_temp.refresh_all()
RETURNS TABLE (name text, action text, differing_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
	st record;
BEGIN
	FOR st IN SELECT pgt_id, pgt_name, original_query FROM pgtrickle.pgt_stream_tables
	          WHERE pgt_schema = 'dq' ORDER BY pgt_id LOOP
		PERFORM pgtrickle.refresh_stream_table(quote_ident(st.pgt_name));
		name := st.pgt_name;
		SELECT h.action INTO action
		FROM pgtrickle.pgt_refresh_history h WHERE h.pgt_id = st.pgt_id ORDER BY h.refresh_id DESC LIMIT 1;
		SELECT count(*) INTO differing_rows FROM pg_temp.content_diff(quote_ident(st.pgt_name), st.original_query);
		RETURN NEXT;
	END LOOP;
END
$$;

CREATE TABLE cust (id integer PRIMARY KEY, name text, segment text) WITH (autovacuum_enabled = false);
CREATE TABLE ord (id integer PRIMARY KEY, cust_id integer, amount numeric(8,2), status text)
	WITH (autovacuum_enabled = false);
CREATE TABLE tags (ord_id integer, tag text) WITH (autovacuum_enabled = false); -- no key, duplicates
INSERT INTO cust VALUES (1, 'ann', 'retail'), (2, 'ben', 'retail'), (3, 'cid', 'corp'), (4, 'dee', NULL);
INSERT INTO ord VALUES (10, 1, 5.00, 'open'), (11, 1, 7.50, 'done'), (12, 2, 1.25, 'open'),
	(13, 3, NULL, 'done'), (14, NULL, 2.00, 'open');
INSERT INTO tags VALUES (10, 'gift'), (10, 'gift'), (11, 'rush'), (13, NULL);

CREATE TEMP TABLE queries (n integer, name text, query text);
INSERT INTO queries VALUES
	(1, 'q_left', 'SELECT c.id, c.name, o.id AS ord_id, o.amount FROM cust c LEFT JOIN ord o ON o.cust_id = c.id'),
	(2, 'q_full', 'SELECT c.id, o.id AS ord_id FROM cust c FULL JOIN ord o ON o.cust_id = c.id AND o.status = ''open'''),
	(3, 'q_exists', 'SELECT c.id FROM cust c WHERE EXISTS (SELECT 1 FROM ord o WHERE o.cust_id = c.id AND o.status = ''open'')'),
	(4, 'q_not_in', 'SELECT o.id FROM ord o WHERE o.cust_id NOT IN (SELECT id FROM cust WHERE segment = ''corp'')'),
	(5, 'q_scalar', 'SELECT c.id, (SELECT sum(o.amount) FROM ord o WHERE o.cust_id = c.id) AS total FROM cust c'),
	(6, 'q_lateral', 'SELECT c.id, l.tag FROM cust c, LATERAL (SELECT t.tag FROM ord o JOIN tags t ON t.ord_id = o.id
	                  WHERE o.cust_id = c.id) l'),
	(7, 'q_srf', 'SELECT o.id, x.part FROM ord o, unnest(string_to_array(o.status, ''o'')) AS x(part)'),
	(8, 'q_intersect', 'SELECT cust_id FROM ord INTERSECT SELECT id FROM cust WHERE segment IS NOT NULL'),
	(9, 'q_except_all', 'SELECT ord_id FROM tags EXCEPT ALL SELECT id FROM ord WHERE status = ''done'''),
	(10, 'q_cte', 'WITH open_orders AS (SELECT * FROM ord WHERE status = ''open'')
	               SELECT c.segment, count(*) AS n FROM open_orders o JOIN cust c ON c.id = o.cust_id GROUP BY c.segment'),
	(11, 'q_distinct_on', 'SELECT DISTINCT ON (cust_id) cust_id, id, amount FROM ord ORDER BY cust_id, amount DESC NULLS LAST, id'),
	(12, 'q_rollup', 'SELECT segment, name, count(*) AS n FROM cust GROUP BY ROLLUP (segment, name)'),
	(13, 'q_window', 'SELECT id, cust_id, rank() OVER (PARTITION BY cust_id ORDER BY amount, id) AS r FROM ord'),
	(14, 'q_agg_sub', 'SELECT n, count(*) AS custs FROM (SELECT c.id, count(o.id) AS n FROM cust c
	                   LEFT JOIN ord o ON o.cust_id = c.id GROUP BY c.id) s GROUP BY n'),
	(15, 'q_having_sub', 'SELECT cust_id, sum(amount) AS s FROM ord GROUP BY cust_id
	                      HAVING sum(amount) > (SELECT avg(amount) FROM ord)'),
	(16, 'q_windows_two', 'SELECT id, cust_id, status, rank() OVER (PARTITION BY cust_id ORDER BY amount, id) AS r,
	                       count(*) OVER (PARTITION BY status) AS n_status FROM ord'),
	(17, 'q_topk_groups', 'SELECT cust_id, sum(amount) AS s, count(*) AS n FROM ord GROUP BY cust_id
	                       ORDER BY s DESC NULLS LAST, cust_id NULLS FIRST LIMIT 2');
SELECT n, name, pgtrickle.create_stream_table(name, query, refresh_mode => 'DIFFERENTIAL', schedule => '1h')
FROM queries ORDER BY n;
-- The operator tree and strategy of each.
SELECT q.name, e.property, e.value
FROM queries q, pgtrickle.explain_st(q.name) e
WHERE e.property IN ('refresh_mode', 'operator_tree', 'strategy') ORDER BY q.n, e.property;
SELECT q.name, d.* FROM queries q, pg_temp.content_diff(q.name, q.query) d ORDER BY q.n;

-- Inserts, including rows that make NULL padding disappear and subquery results change.
INSERT INTO ord VALUES (15, 4, 3.00, 'open'), (16, 3, 9.00, 'open');
INSERT INTO tags VALUES (15, 'gift'), (12, 'rush');
INSERT INTO cust VALUES (5, 'eve', 'corp');
SELECT * FROM pg_temp.refresh_all();
-- Updates of join keys, of values compared with subqueries, of partition and DISTINCT ON keys.
UPDATE ord SET cust_id = 2 WHERE id = 10;
UPDATE ord SET status = 'done' WHERE id IN (12, 15);
UPDATE cust SET segment = 'corp' WHERE id = 1;
UPDATE ord SET amount = 100 WHERE id = 13;
SELECT * FROM pg_temp.refresh_all();
-- Deletes, including the last match of an outer row and duplicates of a keyless table.
DELETE FROM ord WHERE cust_id = 3;
DELETE FROM tags WHERE ord_id = 10;
DELETE FROM cust WHERE id = 4;
SELECT * FROM pg_temp.refresh_all();
-- Nothing changed: NO_DATA.
SELECT * FROM pg_temp.refresh_all();

SELECT pgtrickle.drop_stream_table(name) FROM queries ORDER BY n;
DROP SCHEMA dq CASCADE;
