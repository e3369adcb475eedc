--
-- create_stream_table: defaults, named arguments, schedule forms, refresh modes, initialize,
-- names (schema-qualified, quoted), kinds of defining query, and the storage table itself
-- (same columns and types as the query, same contents as a multiset).
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
CREATE SCHEMA cr;
SET search_path = cr;

-- columns_of, column_diff, content_diff: see test/regress/helpers.sql.
\i test/regress/helpers.sql

CREATE TABLE customers (name text PRIMARY KEY, region text NOT NULL);
INSERT INTO customers VALUES ('alice', 'north'), ('bob', 'south'), ('carol', 'north'), ('dave', 'west');
CREATE TABLE orders (
	id       integer PRIMARY KEY,
	customer text NOT NULL,
	amount   numeric(10,2),
	placed   date,
	tags     text[],
	note     varchar(20));
INSERT INTO orders VALUES
	(1, 'alice', 10.50, '2024-01-01', '{a,b}', 'first'),
	(2, 'alice', 10.50, '2024-01-02', '{a}', NULL),
	(3, 'bob', 99.99, '2024-01-02', NULL, 'big'),
	(4, 'carol', NULL, '2024-01-03', '{}', 'no amount'),
	(5, 'bob', 0.01, NULL, '{c}', 'tiny');

-- What the catalog says about each stream table (no OIDs, timestamps or snapshots).
CREATE VIEW pg_temp.sts AS
SELECT pgt_schema, pgt_name, schedule, refresh_mode, requested_refresh_mode AS requested, status,
       is_populated, needs_reinit, consecutive_errors AS errors, functions_used,
       data_timestamp IS NOT NULL AS has_data_ts, frontier IS NOT NULL AS has_frontier
FROM pgtrickle.pgt_stream_tables;

--
-- Defaults: schedule 'calculated' (stored as NULL), refresh_mode AUTO (DIFFERENTIAL when the
-- differential engine can maintain the query, as here), initialize => true (populated at once).
--
SELECT pgtrickle.create_stream_table('st_default', 'SELECT customer, amount FROM orders');
SELECT * FROM pg_temp.sts;
SELECT refresh_mode_reason, original_query, defining_query
FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_default';
SELECT customer, amount FROM st_default ORDER BY customer, amount;
SELECT * FROM pg_temp.columns_of('st_default');
SELECT * FROM pg_temp.column_diff('st_default', 'SELECT customer, amount FROM orders');
SELECT * FROM pg_temp.content_diff('st_default', 'SELECT customer, amount FROM orders');
-- The storage table is an ordinary table in the requested schema with the write guard trigger.
SELECT n.nspname, c.relname, c.relkind, c.relpersistence
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = 'st_default'::regclass;
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'st_default'::regclass ORDER BY tgname;
-- The initial population is recorded in the history.
SELECT h.action, h.status, h.initiated_by, h.rows_inserted, h.rows_deleted, h.was_full_fallback, h.fallback_reason,
       h.error_message
FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
WHERE s.pgt_name = 'st_default';
-- A DIFFERENTIAL storage table also has hidden bookkeeping columns, all named __pgt_*, after the
-- visible ones.
SELECT count(*) > 0 AS has_hidden_columns,
       min(attnum) > (SELECT max(attnum) FROM pg_temp.columns_of('st_default')) AS after_visible
FROM pg_attribute WHERE attrelid = 'st_default'::regclass AND attname LIKE '\_\_pgt\_%';

--
-- Named arguments, in any order, and mixed with positional ones.
--
SELECT pgtrickle.create_stream_table(name => 'st_named', query => 'SELECT id, note FROM orders WHERE amount > 1',
                                     schedule => '5m', refresh_mode => 'FULL', initialize => true);
SELECT pgtrickle.create_stream_table(refresh_mode => 'full', query => 'SELECT id FROM orders', name => 'st_named2');
SELECT pgtrickle.create_stream_table('st_mixed', 'SELECT id, placed FROM orders', refresh_mode => 'FULL',
                                     schedule => '1h');
SELECT * FROM pg_temp.sts WHERE pgt_name IN ('st_named', 'st_named2', 'st_mixed') ORDER BY pgt_name;
SELECT * FROM st_named ORDER BY id;
SELECT * FROM pg_temp.content_diff('st_named', 'SELECT id, note FROM orders WHERE amount > 1');
SELECT * FROM pg_temp.content_diff('st_named2', 'SELECT id FROM orders');
SELECT * FROM pg_temp.content_diff('st_mixed', 'SELECT id, placed FROM orders');

--
-- Schedule forms: stored trimmed; durations lower-cased; 'calculated' (any case) stored as NULL;
-- cron expressions (5 or 6 fields, or a nickname) stored as given, trimmed.
--
SELECT n, pgtrickle.create_stream_table('sch_' || n, 'SELECT 1 AS one', schedule => s, refresh_mode => 'FULL')
FROM (VALUES ('01_calculated', 'calculated'), ('02_calculated_upper', 'CALCULATED'), ('03_30s', '30s'),
             ('04_5m', '5m'), ('05_1h30m', '1h30m'), ('06_90', '90'), ('07_upper_padded', '  2H15M  '),
             ('08_1w2d', '1w2d'), ('09_cron5', '*/5 * * * *'), ('10_cron6', '0 */10 * * * *'),
             ('11_hourly', '@hourly'), ('12_daily_upper', '@DAILY'), ('13_cron_names', '0 9 * JAN-MAR mon-fri'),
             ('14_cron_padded', '   15 3 1 * *   ')) AS v(n, s)
ORDER BY n;
SELECT pgt_name, schedule,
       CASE WHEN schedule !~ '[ @]' THEN pgtrickle.parse_duration_seconds(schedule) END AS seconds
FROM pgtrickle.pgt_stream_tables WHERE pgt_name LIKE 'sch\_%' ORDER BY pgt_name;
-- pg_trickle.min_schedule_seconds (superuser-settable, in seconds) is the lower bound of durations.
SET pg_trickle.min_schedule_seconds = '1min';
SHOW pg_trickle.min_schedule_seconds;
SELECT pgtrickle.create_stream_table('sch_15_at_minimum', 'SELECT 1 AS one', schedule => '60s', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('sch_16_cron_unaffected', 'SELECT 1 AS one', schedule => '* * * * * *',
                                     refresh_mode => 'FULL');
RESET pg_trickle.min_schedule_seconds;
SELECT pgt_name, schedule FROM pgtrickle.pgt_stream_tables
WHERE pgt_name IN ('sch_15_at_minimum', 'sch_16_cron_unaffected') ORDER BY pgt_name;
SELECT pgt_name, pgtrickle.drop_stream_table(pgt_name) FROM pgtrickle.pgt_stream_tables WHERE pgt_name LIKE 'sch\_%'
ORDER BY pgt_name;

--
-- Refresh modes are case-insensitive and trimmed; INCREMENTAL is a synonym of DIFFERENTIAL. AUTO picks
-- DIFFERENTIAL when it can, else FULL with a WARNING giving the reason (see the volatile functions
-- below); an explicit DIFFERENTIAL that cannot be honoured is an error (create_errors).
--
SELECT pgtrickle.create_stream_table('mode_full_lower', 'SELECT id FROM orders', refresh_mode => 'full');
SELECT pgtrickle.create_stream_table('mode_full_padded', 'SELECT id FROM orders', refresh_mode => '  Full ');
SELECT pgtrickle.create_stream_table('mode_auto_lower', 'SELECT id FROM orders', refresh_mode => 'auto');
SELECT pgtrickle.create_stream_table('mode_auto_limit', 'SELECT id FROM orders LIMIT 2', refresh_mode => 'Auto');
SELECT pgtrickle.create_stream_table('mode_differential', 'SELECT id FROM orders', refresh_mode => 'DIFFERENTIAL');
SELECT pgtrickle.create_stream_table('mode_differential_lower', 'SELECT id FROM orders', refresh_mode => ' differential');
SELECT pgtrickle.create_stream_table('mode_incremental', 'SELECT id FROM orders', refresh_mode => 'incremental');
SELECT pgt_name, refresh_mode, requested_refresh_mode, refresh_mode_reason
FROM pgtrickle.pgt_stream_tables WHERE pgt_name LIKE 'mode\_%' ORDER BY pgt_name;

--
-- initialize => false: the table exists, ACTIVE but empty and not populated, no history, no frontier.
-- The first refresh populates it.
--
SELECT pgtrickle.create_stream_table('st_lazy', 'SELECT id, customer FROM orders', refresh_mode => 'FULL',
                                     initialize => false);
SELECT * FROM pg_temp.sts WHERE pgt_name = 'st_lazy';
SELECT count(*) FROM st_lazy;
SELECT count(*) FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
WHERE s.pgt_name = 'st_lazy';
SELECT pgtrickle.refresh_stream_table('st_lazy');
SELECT * FROM pg_temp.sts WHERE pgt_name = 'st_lazy';
SELECT * FROM pg_temp.content_diff('st_lazy', 'SELECT id, customer FROM orders');
SELECT h.action, h.status, h.initiated_by, h.rows_inserted, h.rows_deleted
FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
WHERE s.pgt_name = 'st_lazy' ORDER BY h.refresh_id;
-- initialize => NULL means the default (true).
SELECT pgtrickle.create_stream_table('st_init_null', 'SELECT id FROM orders', refresh_mode => 'FULL',
                                     initialize => NULL);
SELECT is_populated, status, (SELECT count(*) FROM st_init_null) AS row_count
FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_init_null';

--
-- Names: unqualified names go to the first schema of search_path and are case-folded; schema-qualified
-- names go to that schema; quoted names keep their case and spaces.
--
CREATE SCHEMA cr_other;
CREATE SCHEMA "Odd Schema";
SELECT pgtrickle.create_stream_table('UPPER_Case_Folded', 'SELECT id FROM orders', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('cr_other.st_elsewhere', 'SELECT id FROM orders', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('"MixedCase"', 'SELECT id FROM orders', refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('"Odd Schema"."Odd ""Name"""', 'SELECT id FROM orders', refresh_mode => 'FULL');
SELECT pgt_schema, pgt_name FROM pgtrickle.pgt_stream_tables
WHERE pgt_name IN ('upper_case_folded', 'st_elsewhere', 'MixedCase', 'Odd "Name"')
ORDER BY pgt_schema COLLATE "C", pgt_name COLLATE "C";
SELECT n.nspname, c.relname
FROM pgtrickle.pgt_stream_tables s JOIN pg_class c ON c.oid = s.pgt_relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.pgt_name IN ('upper_case_folded', 'st_elsewhere', 'MixedCase', 'Odd "Name"')
ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C";
SELECT count(*) FROM upper_case_folded;
SELECT count(*) FROM cr_other.st_elsewhere;
SELECT count(*) FROM "MixedCase";
SELECT count(*) FROM "Odd Schema"."Odd ""Name""";
-- Unquoted MixedCase names another (non-existent) relation, so it can still be created.
SELECT pgtrickle.create_stream_table('MixedCase', 'SELECT 2 AS two', refresh_mode => 'FULL');
SELECT pgt_name FROM pgtrickle.pgt_stream_tables WHERE lower(pgt_name) = 'mixedcase' ORDER BY pgt_name COLLATE "C";

--
-- Kinds of defining query, each checked for columns and contents.
--
-- A view as a source: the view is recorded (no capture), and so is the table under it (captured).
CREATE VIEW big_orders AS SELECT id, customer, amount FROM orders WHERE amount > 5;
SELECT pgtrickle.create_stream_table('st_view', 'SELECT customer, amount FROM big_orders', refresh_mode => 'FULL');
SELECT * FROM pg_temp.column_diff('st_view', 'SELECT customer, amount FROM big_orders');
SELECT * FROM pg_temp.content_diff('st_view', 'SELECT customer, amount FROM big_orders');
-- A join of two tables.
SELECT pgtrickle.create_stream_table('st_join',
	'SELECT o.id, o.customer, c.region, o.amount FROM orders o JOIN customers c ON c.name = o.customer',
	refresh_mode => 'FULL');
SELECT * FROM st_join ORDER BY id;
SELECT * FROM pg_temp.column_diff('st_join',
	'SELECT o.id, o.customer, c.region, o.amount FROM orders o JOIN customers c ON c.name = o.customer');
SELECT * FROM pg_temp.content_diff('st_join',
	'SELECT o.id, o.customer, c.region, o.amount FROM orders o JOIN customers c ON c.name = o.customer');
-- An outer join with aggregates (customers without orders included).
SELECT pgtrickle.create_stream_table('st_agg',
	'SELECT c.region, count(o.id) AS n_orders, sum(o.amount) AS total, max(o.placed) AS last_placed,
	        array_agg(o.id ORDER BY o.id) AS ids
	 FROM customers c LEFT JOIN orders o ON o.customer = c.name GROUP BY c.region',
	refresh_mode => 'FULL');
SELECT * FROM st_agg ORDER BY region;
SELECT * FROM pg_temp.columns_of('st_agg');
SELECT * FROM pg_temp.column_diff('st_agg',
	'SELECT c.region, count(o.id) AS n_orders, sum(o.amount) AS total, max(o.placed) AS last_placed,
	        array_agg(o.id ORDER BY o.id) AS ids
	 FROM customers c LEFT JOIN orders o ON o.customer = c.name GROUP BY c.region');
SELECT * FROM pg_temp.content_diff('st_agg',
	'SELECT c.region, count(o.id) AS n_orders, sum(o.amount) AS total, max(o.placed) AS last_placed,
	        array_agg(o.id ORDER BY o.id) AS ids
	 FROM customers c LEFT JOIN orders o ON o.customer = c.name GROUP BY c.region');
-- Every column type of the source comes through with its typmod, plus expressions and collations.
SELECT pgtrickle.create_stream_table('st_types',
	'SELECT id, amount, amount * 2 AS doubled, placed, tags, note, note::varchar(5) AS short_note,
	        customer COLLATE "C" AS customer_c, id::bigint AS big_id, id % 2 = 0 AS even, ''lit'' AS literal
	 FROM orders',
	refresh_mode => 'FULL');
SELECT * FROM pg_temp.columns_of('st_types');
SELECT * FROM pg_temp.column_diff('st_types',
	'SELECT id, amount, amount * 2 AS doubled, placed, tags, note, note::varchar(5) AS short_note,
	        customer COLLATE "C" AS customer_c, id::bigint AS big_id, id % 2 = 0 AS even, ''lit'' AS literal
	 FROM orders');
SELECT * FROM pg_temp.content_diff('st_types',
	'SELECT id, amount, amount * 2 AS doubled, placed, tags, note, note::varchar(5) AS short_note,
	        customer COLLATE "C" AS customer_c, id::bigint AS big_id, id % 2 = 0 AS even, ''lit'' AS literal
	 FROM orders');
-- A VALUES-only query (no sources at all), with duplicate rows.
SELECT pgtrickle.create_stream_table('st_values', 'VALUES (1, ''one''), (2, ''two''), (2, ''two'')',
                                     refresh_mode => 'FULL');
SELECT * FROM st_values ORDER BY 1, 2;
SELECT * FROM pg_temp.columns_of('st_values');
SELECT * FROM pg_temp.content_diff('st_values', 'VALUES (1, ''one''), (2, ''two''), (2, ''two'')');
-- Trailing semicolons and a trailing -- comment are accepted; original_query drops the semicolons.
SELECT pgtrickle.create_stream_table('st_semicolon', 'SELECT id, customer FROM orders WHERE id < 3;  ; ',
                                     refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_comment', 'SELECT id FROM orders -- every order',
                                     refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_semicolon_comment', E'SELECT id FROM orders; -- trailing\n',
                                     refresh_mode => 'FULL');
SELECT pgt_name, original_query, defining_query FROM pgtrickle.pgt_stream_tables
WHERE pgt_name IN ('st_semicolon', 'st_comment', 'st_semicolon_comment') ORDER BY pgt_name;
SELECT * FROM pg_temp.content_diff('st_semicolon', 'SELECT id, customer FROM orders WHERE id < 3');
SELECT * FROM pg_temp.content_diff('st_comment', 'SELECT id FROM orders');
SELECT * FROM pg_temp.content_diff('st_semicolon_comment', 'SELECT id FROM orders');
-- Set operations, WITH, DISTINCT, sub-selects, window functions, ORDER BY / LIMIT.
SELECT pgtrickle.create_stream_table('st_union',
	'SELECT customer AS who FROM orders UNION ALL SELECT name FROM customers', refresh_mode => 'FULL');
SELECT * FROM pg_temp.content_diff('st_union',
	'SELECT customer AS who FROM orders UNION ALL SELECT name FROM customers');
SELECT count(*) FROM st_union;
SELECT pgtrickle.create_stream_table('st_cte',
	'WITH t AS (SELECT customer, sum(amount) AS s FROM orders GROUP BY customer)
	 SELECT DISTINCT c.region, t.s > 50 AS big FROM t JOIN customers c ON c.name = t.customer',
	refresh_mode => 'FULL');
SELECT * FROM pg_temp.content_diff('st_cte',
	'WITH t AS (SELECT customer, sum(amount) AS s FROM orders GROUP BY customer)
	 SELECT DISTINCT c.region, t.s > 50 AS big FROM t JOIN customers c ON c.name = t.customer');
SELECT pgtrickle.create_stream_table('st_subselect',
	'SELECT name, (SELECT count(*) FROM orders o WHERE o.customer = c.name) AS n,
	        row_number() OVER (ORDER BY name) AS rn
	 FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer = c.name)',
	refresh_mode => 'FULL');
SELECT * FROM st_subselect ORDER BY rn;
SELECT * FROM pg_temp.content_diff('st_subselect',
	'SELECT name, (SELECT count(*) FROM orders o WHERE o.customer = c.name) AS n,
	        row_number() OVER (ORDER BY name) AS rn
	 FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer = c.name)');
SELECT pgtrickle.create_stream_table('st_top2', 'SELECT id, amount FROM orders ORDER BY amount DESC NULLS LAST LIMIT 2',
                                     refresh_mode => 'FULL');
SELECT * FROM st_top2 ORDER BY id;
-- The defining query is stored schema-qualified: refreshing under another search_path reads the same tables.
SET search_path = public;
SELECT pgtrickle.refresh_stream_table('cr.st_join');
SELECT count(*) FROM cr.st_join;
SET search_path = cr;
SELECT * FROM pg_temp.content_diff('st_join',
	'SELECT o.id, o.customer, c.region, o.amount FROM orders o JOIN customers c ON c.name = o.customer');
-- Sources recorded for each stream table.
SELECT s.pgt_name, d.source_schema, d.source_name, d.source_type, d.cdc_mode
FROM pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
WHERE s.pgt_name IN ('st_view', 'st_join', 'st_agg', 'st_values', 'st_union', 'st_subselect')
ORDER BY 1, 2, 3;
-- Each captured source has exactly one change buffer, whatever the number of stream tables reading it.
SELECT source_schema, source_name, captured_columns FROM pgtrickle.pgt_change_tracking ORDER BY 1, 2;

--
-- Volatile functions: AUTO resolves to FULL with a WARNING naming the function; FULL accepts silently.
-- Both record the function in functions_used.
--
SELECT pgtrickle.create_stream_table('st_volatile_auto', 'SELECT id, random() AS r FROM orders');
SELECT pgtrickle.create_stream_table('st_volatile_full', 'SELECT id, random() < 2 AS always FROM orders',
                                     refresh_mode => 'FULL');
SELECT pgtrickle.create_stream_table('st_volatile_nested',
	'SELECT id FROM orders WHERE id > (SELECT floor(random())::int)');
SELECT pgt_name, refresh_mode, requested_refresh_mode, refresh_mode_reason, functions_used
FROM pgtrickle.pgt_stream_tables WHERE pgt_name LIKE 'st\_volatile\_%' ORDER BY pgt_name;
SELECT count(*), bool_and(r >= 0 AND r < 1) FROM st_volatile_auto;
SELECT * FROM st_volatile_full ORDER BY id;
SELECT count(*) FROM st_volatile_nested;
-- Stable functions (now()) are not volatile, but their result can change without any change to the
-- sources: AUTO keeps such a table FULL, and nothing is recorded in functions_used.
SELECT pgtrickle.create_stream_table('st_stable', 'SELECT id, now() IS NOT NULL AS ok FROM orders');
SELECT refresh_mode_reason, functions_used FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_stable';

--
-- Clean up through the API; nothing may remain.
--
SELECT pgt_schema, pgt_name, pgtrickle.drop_stream_table(quote_ident(pgt_schema) || '.' || quote_ident(pgt_name))
FROM pgtrickle.pgt_stream_tables ORDER BY pgt_schema COLLATE "C", pgt_name COLLATE "C";
SELECT (SELECT count(*) FROM pgtrickle.pgt_stream_tables) AS stream_tables,
       (SELECT count(*) FROM pgtrickle.pgt_dependencies) AS dependencies,
       (SELECT count(*) FROM pgtrickle.pgt_change_tracking) AS change_tracking,
       (SELECT count(*) FROM pgtrickle.pgt_refresh_history) AS history,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'pgtrickle_changes') AS buffers,
       (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgt\_%') AS triggers;
DROP SCHEMA cr, cr_other, "Odd Schema" CASCADE;
