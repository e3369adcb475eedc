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
	requested_cdc_mode     text CHECK (requested_cdc_mode IN ('auto', 'trigger', 'wal')), -- NULL = pg_trickle.cdc_mode
	functions_used         text[],
	-- The adaptive DIFFERENTIAL/FULL choice of AUTO stream tables (pg_trickle.adaptive_refresh):
	last_full_ms           float8,          -- the last FULL (or initial, or reinitialising) refresh
	last_differential_ms   float8,          -- the last DIFFERENTIAL refresh that consumed changes ...
	last_differential_changes bigint,       -- ... and how many changed rows it consumed
	adaptive_full_streak   bigint NOT NULL DEFAULT 0, -- FULL refreshes the rule chose in a row
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
	              CHECK (source_type IN ('TABLE', 'STREAM_TABLE', 'VIEW', 'MATVIEW', 'FOREIGN_TABLE', 'PARTITION')),
	columns_used  text[],
	cdc_mode      text NOT NULL DEFAULT 'TRIGGER' CHECK (cdc_mode IN ('TRIGGER', 'TRANSITIONING', 'WAL', 'NONE')),
	PRIMARY KEY (pgt_id, source_relid)
);
CREATE INDEX ON pgtrickle.pgt_dependencies (source_relid);

-- One row per captured source: its change buffer and capture mode (src/cdc/README.md).
CREATE TABLE pgtrickle.pgt_change_tracking (
	source_relid   oid PRIMARY KEY,
	source_schema  text NOT NULL,
	source_name    text NOT NULL,
	buffer_name    text NOT NULL,           -- table in pgtrickle_changes
	cdc_mode       text NOT NULL DEFAULT 'TRIGGER' CHECK (cdc_mode IN ('TRIGGER', 'TRANSITIONING', 'WAL')),
	captured_columns text[] NOT NULL,
	created_at     timestamptz NOT NULL DEFAULT now(),
	-- WAL capture (TRANSITIONING and WAL): the logical replication slot, and the commit LSN up to which
	-- every transaction's changes are in the buffer (transactions whose commit record starts at or
	-- before it: captured by the triggers before the hand-over, or decoded since).
	slot_name      text,
	decoder_confirmed_lsn pg_lsn,
	transition_started_at timestamptz,
	wal_since      timestamptz,
	replica_identity_before text,           -- d|n|f, or the index name for USING INDEX; restored on leaving WAL
	last_fallback_reason text,
	last_fallback_at timestamptz
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
	initialize   boolean DEFAULT true,
	cdc_mode     text DEFAULT NULL)         -- auto | trigger | wal; NULL = pg_trickle.cdc_mode
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'create_stream_table';

CREATE FUNCTION pgtrickle.alter_stream_table(
	name         text,
	query        text DEFAULT NULL,
	schedule     text DEFAULT NULL,
	refresh_mode text DEFAULT NULL,
	status       text DEFAULT NULL,
	cdc_mode     text DEFAULT NULL)         -- auto | trigger | wal | 'default' (follow pg_trickle.cdc_mode)
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

CREATE FUNCTION pgtrickle.resume_stream_table(name text)
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'resume_stream_table';

-- The schedule each stream table effectively follows: its own duration or cron expression, or for a
-- calculated one the tightest duration among its consumers (transitively), or "on source change".
CREATE FUNCTION pgtrickle.effective_schedules()
RETURNS TABLE (pgt_id bigint, effective_schedule text)
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'pgt_effective_schedules';

CREATE VIEW pgtrickle.stream_tables_info AS
SELECT st.*,
       e.effective_schedule,
       now() - st.data_timestamp AS staleness,
       CASE WHEN e.effective_schedule ~ '^[0-9]+[smhdw]' AND st.data_timestamp IS NOT NULL
            THEN now() - st.data_timestamp
                 > make_interval(secs => 2 * pgtrickle.parse_duration_seconds(e.effective_schedule))
       END AS stale
FROM pgtrickle.pgt_stream_tables st
LEFT JOIN pgtrickle.effective_schedules() e USING (pgt_id);

CREATE VIEW pgtrickle.pg_stat_stream_tables AS
SELECT st.pgt_id, st.pgt_schema, st.pgt_name, st.status, st.refresh_mode, st.is_populated, st.data_timestamp,
       COALESCE(st.schedule, 'calculated') AS schedule, i.effective_schedule, i.staleness, i.stale,
       st.consecutive_errors, st.needs_reinit, st.last_refresh_at,
       count(h.refresh_id) AS total_refreshes,
       count(h.refresh_id) FILTER (WHERE h.status = 'COMPLETED') AS successful_refreshes,
       count(h.refresh_id) FILTER (WHERE h.status = 'FAILED') AS failed_refreshes,
       COALESCE(sum(h.rows_inserted), 0) AS total_rows_inserted,
       COALESCE(sum(h.rows_deleted), 0) AS total_rows_deleted,
       avg(EXTRACT(epoch FROM h.end_time - h.start_time) * 1000)
           FILTER (WHERE h.status = 'COMPLETED') AS avg_duration_ms,
       (array_agg(h.action ORDER BY h.refresh_id DESC))[1] AS last_action,
       (array_agg(h.status ORDER BY h.refresh_id DESC))[1] AS last_status
FROM pgtrickle.pgt_stream_tables st
JOIN pgtrickle.stream_tables_info i USING (pgt_id)
LEFT JOIN pgtrickle.pgt_refresh_history h ON h.pgt_id = st.pgt_id
GROUP BY st.pgt_id, i.effective_schedule, i.staleness, i.stale;

CREATE FUNCTION pgtrickle.get_refresh_history(name text, max_rows integer DEFAULT 20)
RETURNS TABLE (refresh_id bigint, data_timestamp timestamptz, start_time timestamptz, end_time timestamptz,
               action text, status text, rows_inserted bigint, rows_deleted bigint, duration_ms float8,
               was_full_fallback boolean, fallback_reason text, error_message text, initiated_by text)
LANGUAGE sql STABLE
-- no fixed search_path: the name resolves like any relation name of the caller
AS $$
	SELECT h.refresh_id, h.data_timestamp, h.start_time, h.end_time, h.action, h.status, h.rows_inserted,
	       h.rows_deleted, EXTRACT(epoch FROM h.end_time - h.start_time)::float8 * 1000, h.was_full_fallback,
	       h.fallback_reason, h.error_message, h.initiated_by
	FROM pgtrickle.pgt_refresh_history h
	JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)
	WHERE st.pgt_relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
	ORDER BY h.refresh_id DESC
	LIMIT $2
$$;

-- Seconds since the data the stream table shows was current (NULL if never refreshed).
CREATE FUNCTION pgtrickle.get_staleness(name text)
RETURNS float8
LANGUAGE sql STABLE
-- no fixed search_path: the name resolves like any relation name of the caller
AS $$
	SELECT EXTRACT(epoch FROM now() - st.data_timestamp)::float8
	FROM pgtrickle.pgt_stream_tables st
	WHERE st.pgt_relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
$$;

CREATE FUNCTION pgtrickle.dependency_tree()
RETURNS TABLE (tree_line text, node text, node_type text, depth integer, status text, refresh_mode text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH RECURSIVE nodes AS (
		SELECT st.pgt_id, st.pgt_relid AS relid, st.pgt_schema || '.' || st.pgt_name AS node, 'stream_table' AS node_type,
		       0 AS depth, st.status, st.refresh_mode, ARRAY[st.pgt_schema || '.' || st.pgt_name] AS path
		FROM pgtrickle.pgt_stream_tables st
		WHERE NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d WHERE d.source_relid = st.pgt_relid)
		UNION ALL
		SELECT up.pgt_id, d.source_relid, d.source_schema || '.' || d.source_name,
		       CASE WHEN up.pgt_id IS NULL THEN 'source_table' ELSE 'stream_table' END,
		       n.depth + 1, up.status, up.refresh_mode, n.path || (d.source_schema || '.' || d.source_name)
		FROM nodes n
		JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = n.pgt_id
		LEFT JOIN pgtrickle.pgt_stream_tables up ON up.pgt_relid = d.source_relid
		WHERE n.depth < 100
	)
	SELECT repeat('  ', depth) || CASE WHEN depth > 0 THEN '└─ ' ELSE '' END || node, node, node_type, depth,
	       status, refresh_mode
	FROM nodes
	ORDER BY path
$$;

-- SECURITY DEFINER: the scheduler's row in pg_stat_activity is visible to every caller.
CREATE FUNCTION pgtrickle.health_check()
RETURNS TABLE (check_name text, severity text, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'scheduler_running',
	       CASE WHEN NOT current_setting('pg_trickle.enabled')::boolean THEN 'WARN'
	            WHEN EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_trickle scheduler'
	                         AND datname = current_database()) THEN 'OK'
	            WHEN NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables) THEN 'OK'
	            ELSE 'WARN' END,
	       CASE WHEN NOT current_setting('pg_trickle.enabled')::boolean THEN 'pg_trickle.enabled is off'
	            ELSE coalesce((SELECT 'scheduler pid ' || pid FROM pg_stat_activity
	                           WHERE backend_type = 'pg_trickle scheduler' AND datname = current_database() LIMIT 1),
	                          'no scheduler running for this database') END
	UNION ALL
	SELECT 'suspended_tables', CASE WHEN count(*) > 0 THEN 'ERROR' ELSE 'OK' END,
	       coalesce(string_agg(pgt_schema || '.' || pgt_name, ', '), 'none')
	FROM pgtrickle.pgt_stream_tables WHERE status IN ('SUSPENDED', 'ERROR')
	UNION ALL
	SELECT 'failing_tables', CASE WHEN count(*) > 0 THEN 'WARN' ELSE 'OK' END,
	       coalesce(string_agg(pgt_schema || '.' || pgt_name || ' (' || consecutive_errors || ' errors)', ', '), 'none')
	FROM pgtrickle.pgt_stream_tables WHERE consecutive_errors > 0 AND status = 'ACTIVE'
	UNION ALL
	SELECT 'stale_tables', CASE WHEN count(*) > 0 THEN 'WARN' ELSE 'OK' END,
	       coalesce(string_agg(pgt_schema || '.' || pgt_name, ', '), 'none')
	FROM pgtrickle.stream_tables_info WHERE stale
	UNION ALL
	SELECT 'unpopulated_tables', CASE WHEN count(*) > 0 THEN 'WARN' ELSE 'OK' END,
	       coalesce(string_agg(pgt_schema || '.' || pgt_name, ', '), 'none')
	FROM pgtrickle.pgt_stream_tables WHERE NOT is_populated
$$;

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
LANGUAGE plpgsql STABLE SECURITY DEFINER  -- buffers are not readable by ordinary roles; their sizes are
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

-- Keeps change buffers in step with ALTER TABLE on sources, and captures new partitions (src/api/ddl.cpp).
CREATE FUNCTION pgtrickle._on_ddl_end()
RETURNS event_trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'pgt_on_ddl_end';

CREATE EVENT TRIGGER pg_trickle_ddl_tracker ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE VIEW', 'CREATE FUNCTION', 'ALTER FUNCTION')
	EXECUTE FUNCTION pgtrickle._on_ddl_end();

-- Everyone may look (monitoring); changing stream tables needs the privileges of their owner.
GRANT USAGE ON SCHEMA pgtrickle TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA pgtrickle TO PUBLIC;

-- After pg_restore: re-links the catalog to the restored relations (the scheduler does it by itself).
CREATE FUNCTION pgtrickle.restore_stream_tables()
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'restore_stream_tables';

-- Per stream table refresh statistics (from the retained history).
CREATE FUNCTION pgtrickle.st_refresh_stats()
RETURNS TABLE (pgt_schema text, pgt_name text, status text, refresh_mode text, schedule text,
               effective_schedule text, total_refreshes bigint, successful_refreshes bigint, failed_refreshes bigint,
               differential_refreshes bigint, full_refreshes bigint, no_data_refreshes bigint,
               avg_duration_ms float8, max_duration_ms float8, last_action text, last_status text,
               last_refresh_at timestamptz, staleness interval, stale boolean, last_error_message text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT i.pgt_schema, i.pgt_name, i.status, i.refresh_mode, COALESCE(i.schedule, 'calculated'), i.effective_schedule,
	       count(h.refresh_id), count(h.refresh_id) FILTER (WHERE h.status = 'COMPLETED'),
	       count(h.refresh_id) FILTER (WHERE h.status = 'FAILED'),
	       count(h.refresh_id) FILTER (WHERE h.action = 'DIFFERENTIAL' AND h.status = 'COMPLETED'),
	       count(h.refresh_id) FILTER (WHERE h.action IN ('FULL', 'REINITIALIZE') AND h.status = 'COMPLETED'),
	       count(h.refresh_id) FILTER (WHERE h.action = 'NO_DATA'),
	       avg(EXTRACT(epoch FROM h.end_time - h.start_time) * 1000) FILTER (WHERE h.status = 'COMPLETED')::float8,
	       max(EXTRACT(epoch FROM h.end_time - h.start_time) * 1000) FILTER (WHERE h.status = 'COMPLETED')::float8,
	       (array_agg(h.action ORDER BY h.refresh_id DESC))[1], (array_agg(h.status ORDER BY h.refresh_id DESC))[1],
	       i.last_refresh_at, i.staleness, i.stale, i.last_error_message
	FROM pgtrickle.stream_tables_info i
	LEFT JOIN pgtrickle.pgt_refresh_history h ON h.pgt_id = i.pgt_id
	GROUP BY i.pgt_id, i.pgt_schema, i.pgt_name, i.status, i.refresh_mode, i.schedule, i.effective_schedule,
	         i.last_refresh_at, i.staleness, i.stale, i.last_error_message
	ORDER BY i.pgt_schema, i.pgt_name
$$;

-- ---------------------------------------------------------------------------------------------
-- Change capture: WAL decoding (src/cdc/README.md)
-- ---------------------------------------------------------------------------------------------

-- One step of the trigger <-> WAL transitions of every captured source (what the scheduler does each
-- tick): TRIGGER -> TRANSITIONING (slot created), TRANSITIONING -> WAL (triggers dropped at a recorded
-- LSN), WAL -> TRIGGER (fallback), and decoding of WAL sources into their buffers. Returns the sources
-- it acted on. Must not run in a transaction that has already written (slot creation needs that).
CREATE FUNCTION pgtrickle.advance_cdc_transitions()
RETURNS TABLE (source_table text, previous_mode text, cdc_mode text, detail text)
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'advance_cdc_transitions';

CREATE VIEW pgtrickle.pgt_cdc_status AS
SELECT st.pgt_schema, st.pgt_name, ct.source_relid, ct.source_name, ct.source_schema, ct.cdc_mode, ct.slot_name,
       ct.decoder_confirmed_lsn, ct.transition_started_at
FROM pgtrickle.pgt_dependencies d
JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)
JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
WHERE d.source_type = 'TABLE';

-- SECURITY DEFINER: pg_replication_slots is readable by everyone, pg_current_wal_lsn() is not.
CREATE FUNCTION pgtrickle.check_cdc_health()
RETURNS TABLE (source_relid oid, source_table text, cdc_mode text, slot_name text, lag_bytes bigint,
               confirmed_lsn pg_lsn, alert text, selective_capture boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT ct.source_relid, ct.source_schema || '.' || ct.source_name, ct.cdc_mode, ct.slot_name,
	       CASE WHEN s.slot_name IS NOT NULL AND NOT pg_is_in_recovery()
	            THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint END,
	       COALESCE(ct.decoder_confirmed_lsn, s.confirmed_flush_lsn),
	       CASE WHEN ct.cdc_mode = 'TRIGGER' THEN
	                CASE WHEN ct.last_fallback_reason IS NOT NULL
	                     THEN 'fell back to triggers at ' || ct.last_fallback_at || ': ' || ct.last_fallback_reason END
	            WHEN current_setting('wal_level') <> 'logical' THEN 'wal_level is ' || current_setting('wal_level')
	            WHEN s.slot_name IS NULL THEN 'replication slot ' || ct.slot_name || ' is missing'
	            WHEN s.wal_status = 'lost' OR s.invalidation_reason IS NOT NULL
	                 THEN 'replication slot is invalidated: ' || COALESCE(s.invalidation_reason, s.wal_status)
	            WHEN NOT pg_is_in_recovery() AND pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)
	                 > (SELECT setting::bigint FROM pg_settings WHERE name = 'pg_trickle.slot_lag_critical_threshold_mb') * 1048576
	                 THEN 'slot lag above pg_trickle.slot_lag_critical_threshold_mb'
	            WHEN NOT pg_is_in_recovery() AND pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)
	                 > (SELECT setting::bigint FROM pg_settings WHERE name = 'pg_trickle.slot_lag_warning_threshold_mb') * 1048576
	                 THEN 'slot lag above pg_trickle.slot_lag_warning_threshold_mb'
	       END,
	       false
	FROM pgtrickle.pgt_change_tracking ct
	LEFT JOIN pg_replication_slots s ON s.slot_name = ct.slot_name
	ORDER BY 2
$$;

-- pg_trickle's replication slots in this database (also ones no catalog row refers to any more).
CREATE FUNCTION pgtrickle.slot_health()
RETURNS TABLE (slot_name text, source_relid oid, source_table text, cdc_mode text, active boolean,
               wal_status text, restart_lsn pg_lsn, confirmed_flush_lsn pg_lsn, retained_wal_bytes bigint,
               lag_bytes bigint, orphaned boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT s.slot_name::text, ct.source_relid, ct.source_schema || '.' || ct.source_name, ct.cdc_mode, s.active,
	       s.wal_status, s.restart_lsn, s.confirmed_flush_lsn,
	       CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint END,
	       CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint END,
	       ct.source_relid IS NULL
	FROM pg_replication_slots s
	LEFT JOIN pgtrickle.pgt_change_tracking ct ON ct.slot_name = s.slot_name
	WHERE s.database = current_database() AND s.plugin = 'pg_trickle'
	ORDER BY 1
$$;

GRANT SELECT ON pgtrickle.pgt_cdc_status TO PUBLIC;
REVOKE EXECUTE ON FUNCTION pgtrickle.advance_cdc_transitions() FROM PUBLIC;
