-- pg_trickle 0.1.0 — install script
\echo Use "CREATE EXTENSION pg_trickle" to load this file. \quit

-- Change buffers live here; nobody but the extension (and superusers) touches them.
CREATE SCHEMA pgtrickle_changes;
REVOKE ALL ON SCHEMA pgtrickle_changes FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------------

CREATE TABLE pgtrickle.pgt_stream_tables (
	pgt_id                 bigserial PRIMARY KEY,
	pgt_relid              oid NOT NULL UNIQUE,
	pgt_name               text NOT NULL,
	pgt_schema             text NOT NULL,
	defining_query         text NOT NULL,   -- schema-qualified form the refresh runs
	original_query         text NOT NULL,   -- as the user wrote it
	schedule               text,            -- NULL = calculated
	refresh_mode           text NOT NULL CHECK (refresh_mode IN ('FULL', 'DIFFERENTIAL')),
	requested_refresh_mode text NOT NULL CHECK (requested_refresh_mode IN ('AUTO', 'FULL', 'DIFFERENTIAL')),
	refresh_mode_reason    text,            -- why AUTO resolved to FULL
	status                 text NOT NULL DEFAULT 'INITIALIZING'
	                       CHECK (status IN ('INITIALIZING', 'ACTIVE', 'SUSPENDED', 'ERROR')),
	is_populated           boolean NOT NULL DEFAULT false,
	data_timestamp         timestamptz,     -- the moment the contents reflect
	frontier               pg_snapshot,     -- snapshot the last refresh read its sources under
	frontier_xid           xid8,            -- that refresh's own transaction (visible in frontier) ...
	frontier_cid           bigint,          -- ... whose changes it consumed only up to this command
	last_refresh_at        timestamptz,
	consecutive_errors     integer NOT NULL DEFAULT 0,
	needs_reinit           boolean NOT NULL DEFAULT false,
	functions_used         text[],
	last_error_message     text,
	last_error_at          timestamptz,
	created_at             timestamptz NOT NULL DEFAULT now(),
	updated_at             timestamptz NOT NULL DEFAULT now(),
	UNIQUE (pgt_schema, pgt_name)
);

CREATE TABLE pgtrickle.pgt_dependencies (
	pgt_id        bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
	source_relid  oid NOT NULL,
	source_schema text NOT NULL,
	source_name   text NOT NULL,
	source_type   text NOT NULL
	              CHECK (source_type IN ('TABLE', 'STREAM_TABLE', 'VIEW', 'MATVIEW', 'FOREIGN_TABLE')),
	columns_used  text[],
	cdc_mode      text NOT NULL DEFAULT 'TRIGGER' CHECK (cdc_mode IN ('TRIGGER', 'TRANSITIONING', 'WAL', 'NONE')),
	PRIMARY KEY (pgt_id, source_relid)
);
CREATE INDEX ON pgtrickle.pgt_dependencies (source_relid);

-- One row per captured source: its change buffer and capture mode.
CREATE TABLE pgtrickle.pgt_change_tracking (
	source_relid   oid PRIMARY KEY,
	source_schema  text NOT NULL,
	source_name    text NOT NULL,
	buffer_name    text NOT NULL,           -- table in pgtrickle_changes
	cdc_mode       text NOT NULL DEFAULT 'TRIGGER' CHECK (cdc_mode IN ('TRIGGER', 'TRANSITIONING', 'WAL')),
	captured_columns text[] NOT NULL,
	created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgtrickle.pgt_refresh_history (
	refresh_id        bigserial PRIMARY KEY,
	pgt_id            bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
	data_timestamp    timestamptz,
	start_time        timestamptz NOT NULL,
	end_time          timestamptz,
	action            text NOT NULL
	                  CHECK (action IN ('NO_DATA', 'FULL', 'DIFFERENTIAL', 'REINITIALIZE', 'SKIP')),
	rows_inserted     bigint NOT NULL DEFAULT 0,
	rows_deleted      bigint NOT NULL DEFAULT 0,
	delta_row_count   bigint,
	was_full_fallback boolean NOT NULL DEFAULT false,
	fallback_reason   text,
	error_message     text,
	status            text NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED', 'SKIPPED')),
	initiated_by      text NOT NULL CHECK (initiated_by IN ('SCHEDULER', 'MANUAL', 'INITIAL'))
);
CREATE INDEX ON pgtrickle.pgt_refresh_history (pgt_id, start_time);

-- pg_dump keeps the user-state catalogs (the storage tables are ordinary tables and dump themselves).
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_stream_tables', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_stream_tables_pgt_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_change_tracking', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_refresh_history', '');
SELECT pg_catalog.pg_extension_config_dump('pgtrickle.pgt_refresh_history_refresh_id_seq', '');

-- ---------------------------------------------------------------------------------------------
-- Lifecycle API (C++)
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION pgtrickle.create_stream_table(
	name         text,
	query        text,
	schedule     text DEFAULT 'calculated',
	refresh_mode text DEFAULT 'AUTO',
	initialize   boolean DEFAULT true)
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'create_stream_table';

CREATE FUNCTION pgtrickle.alter_stream_table(
	name         text,
	query        text DEFAULT NULL,
	schedule     text DEFAULT NULL,
	refresh_mode text DEFAULT NULL,
	status       text DEFAULT NULL)
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'alter_stream_table';

CREATE FUNCTION pgtrickle.drop_stream_table(name text, cascade boolean DEFAULT false)
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'drop_stream_table';

CREATE FUNCTION pgtrickle.refresh_stream_table(name text)
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'refresh_stream_table';

CREATE FUNCTION pgtrickle.parse_duration_seconds(input text)
RETURNS bigint
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'parse_duration_seconds';

CREATE FUNCTION pgtrickle.version()
RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pgt_version';

-- Trigger functions: change capture on sources, and the guard refusing direct DML on stream tables.
CREATE FUNCTION pgtrickle.pgt_capture()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'pgt_capture';

CREATE FUNCTION pgtrickle.pgt_guard()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'pgt_guard';

-- ---------------------------------------------------------------------------------------------
-- Monitoring
-- ---------------------------------------------------------------------------------------------

CREATE VIEW pgtrickle.stream_tables_info AS
SELECT st.*,
       now() - st.last_refresh_at AS staleness,
       CASE WHEN st.schedule IS NOT NULL AND st.schedule !~ '[ @]' AND st.last_refresh_at IS NOT NULL
            THEN now() - st.last_refresh_at
                 > make_interval(secs => pgtrickle.parse_duration_seconds(st.schedule))
       END AS stale
FROM pgtrickle.pgt_stream_tables st;

CREATE FUNCTION pgtrickle.pgt_status()
RETURNS TABLE (name text, status text, refresh_mode text, is_populated boolean, consecutive_errors integer,
               schedule text, data_timestamp timestamptz, staleness interval)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT st.pgt_schema || '.' || st.pgt_name, st.status, st.refresh_mode, st.is_populated,
	       st.consecutive_errors, coalesce(st.schedule, 'calculated'), st.data_timestamp,
	       now() - st.last_refresh_at
	FROM pgtrickle.pgt_stream_tables st
	ORDER BY st.pgt_schema, st.pgt_name
$$;

CREATE FUNCTION pgtrickle.change_buffer_sizes()
RETURNS TABLE (stream_table text, source_table text, source_oid oid, cdc_mode text, pending_rows bigint,
               buffer_bytes bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT st.pgt_schema || '.' || st.pgt_name AS st_name, ct.source_schema || '.' || ct.source_name AS src,
		       ct.source_relid, ct.cdc_mode, ct.buffer_name
		FROM pgtrickle.pgt_dependencies d
		JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)
		JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
		ORDER BY 1, 2
	LOOP
		stream_table := r.st_name;
		source_table := r.src;
		source_oid := r.source_relid;
		cdc_mode := r.cdc_mode;
		EXECUTE format('SELECT count(*) FROM pgtrickle_changes.%I', r.buffer_name) INTO pending_rows;
		buffer_bytes := pg_total_relation_size(format('pgtrickle_changes.%I', r.buffer_name)::regclass);
		RETURN NEXT;
	END LOOP;
END
$$;

CREATE FUNCTION pgtrickle.explain_st(name text)
RETURNS TABLE (property text, value text)
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'explain_st';

-- Keeps the catalog true when tables are dropped with plain DDL (see src/api/ddl.cpp).
CREATE FUNCTION pgtrickle._on_sql_drop()
RETURNS event_trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'pgt_on_sql_drop';

CREATE EVENT TRIGGER pg_trickle_drop_tracker ON sql_drop
	EXECUTE FUNCTION pgtrickle._on_sql_drop();
