-- Comparison helpers shared by the regression tests, as pg_temp functions (read with \i from the
-- project root, where pg_regress runs).
-- columns_of: a relation's visible columns (hidden __pgt_* bookkeeping columns of DIFFERENTIAL storage
-- tables left out), with type and collation.
CREATE FUNCTION pg_temp.columns_of(rel regclass)
RETURNS TABLE (attnum smallint, attname name, type text, collation name)
LANGUAGE sql AS $$
	SELECT a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), c.collname
	FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation
	WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname NOT LIKE '\_\_pgt\_%'
	ORDER BY a.attnum
$$;
-- column_diff: visible columns of the stream table that differ from the columns of the query (read
-- from a temporary view of the same query). Must return no rows.
CREATE FUNCTION pg_temp.column_diff(st text, query text)
RETURNS TABLE (side text, attnum smallint, attname name, type text, collation name)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TEMP VIEW pgt_expected_columns AS %s', query);
	RETURN QUERY
		(SELECT 'only in stream table', * FROM pg_temp.columns_of(st::regclass)
		 EXCEPT ALL
		 SELECT 'only in stream table', * FROM pg_temp.columns_of(to_regclass('pg_temp.pgt_expected_columns')))
		UNION ALL
		(SELECT 'only in query', * FROM pg_temp.columns_of(to_regclass('pg_temp.pgt_expected_columns'))
		 EXCEPT ALL
		 SELECT 'only in query', * FROM pg_temp.columns_of(st::regclass))
		ORDER BY 1, 2;
	DROP VIEW pg_temp.pgt_expected_columns;
END
$$;
-- content_diff: rows in the stream table's visible columns and not in the query, and the reverse, as
-- multisets (EXCEPT ALL both ways). Must return no rows.
CREATE FUNCTION pg_temp.content_diff(st text, query text)
RETURNS TABLE (side text, row_value text)
LANGUAGE plpgsql AS $$
DECLARE
	cols text;
BEGIN
	SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
	FROM pg_attribute
	WHERE attrelid = st::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\_\_pgt\_%';
	RETURN QUERY EXECUTE format(
		'SELECT ''only in stream table'', r::text FROM (SELECT %3$s FROM %1$s EXCEPT ALL (%2$s)) r
		 UNION ALL
		 SELECT ''only in query'', r::text FROM ((%2$s) EXCEPT ALL SELECT %3$s FROM %1$s) r
		 ORDER BY 1, 2', st, query, cols);
END
$$;
