// restore_stream_tables(): after pg_dump/pg_restore, relations have new OIDs while the restored catalog
// rows still carry the old ones. Re-resolves every stream table, source and buffer by name, rebuilds
// change capture (buffers and triggers), and schedules a FULL refresh for each stream table (its
// restored contents match the dump, but its frontier means nothing in the new database).
// The scheduler runs it by itself when it finds the catalog out of step.
#include "api/ddl.hpp"
#include "api/restore.hpp"
#include "analyze/analyze.hpp"
#include "catalog/catalog.hpp"
#include "cdc/cdc.hpp"
#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "pg/bridge.hpp"
#include "pg/security.hpp"
#include "pg/spi.hpp"

namespace pgtrickle::api {

bool
CatalogNeedsRestore(pg::SpiSession &spi) {
	pg::SpiRows r = spi.Query(
	    "SELECT EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables "
	    "WHERE pg_catalog.to_regclass(pg_catalog.quote_ident(pgt_schema) || '.' || pg_catalog.quote_ident(pgt_name)) "
	    "IS DISTINCT FROM pgt_relid::pg_catalog.regclass)",
	    {}, true);
	return r.Bool(0, 0);
}

int64_t
RestoreStreamTables(pg::SpiSession &spi) {
	InternalDdlScope internal;
	// 1. Stream tables and dependencies by name.
	int64_t fixed = static_cast<int64_t>(
	    spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET pgt_relid = r.oid, frontier = NULL, frontier_xid = NULL, "
	             "frontier_cid = NULL, needs_reinit = true, updated_at = pg_catalog.now() "
	             "FROM (SELECT pgt_id, pg_catalog.to_regclass(pg_catalog.quote_ident(pgt_schema) || '.' || "
	             "pg_catalog.quote_ident(pgt_name))::pg_catalog.oid AS oid FROM pgtrickle.pgt_stream_tables) r "
	             "WHERE r.pgt_id = pgtrickle.pgt_stream_tables.pgt_id AND r.oid IS NOT NULL "
	             "AND r.oid IS DISTINCT FROM pgt_relid"));
	spi.Exec("UPDATE pgtrickle.pgt_dependencies d SET source_relid = r.oid FROM (SELECT pgt_id, source_relid AS old, "
	         "pg_catalog.to_regclass(pg_catalog.quote_ident(source_schema) || '.' || "
	         "pg_catalog.quote_ident(source_name))::pg_catalog.oid AS oid FROM pgtrickle.pgt_dependencies) r "
	         "WHERE r.pgt_id = d.pgt_id AND r.old = d.source_relid AND r.oid IS NOT NULL "
	         "AND r.oid IS DISTINCT FROM d.source_relid");
	// 2. Capture: drop what the dump brought back (buffers keyed by old OIDs, triggers), then rebuild.
	{
		pg::AsRole as_owner(pg::ExtensionOwner(spi));
		// Triggers (their tables) first, then buffers: a writer locks its table, then (its capture
		// trigger) the buffer; taking them in the same order cannot deadlock with it.
		pg::SpiRows trig = spi.Query("SELECT pg_catalog.quote_ident(tgname), tgrelid::pg_catalog.regclass::text "
		                             "FROM pg_catalog.pg_trigger WHERE tgname LIKE 'pgt\\_capture\\_%' AND NOT tgisinternal");
		for (size_t i = 0; i < trig.Count(); i++)
			spi.Exec("DROP TRIGGER " + trig.Text(i, 0) + " ON " + trig.Text(i, 1));
		pg::SpiRows bufs = spi.Query("SELECT pg_catalog.quote_ident(relname) FROM pg_catalog.pg_class "
		                             "WHERE relnamespace = 'pgtrickle_changes'::pg_catalog.regnamespace AND relkind = 'r'");
		for (size_t i = 0; i < bufs.Count(); i++)
			spi.Exec("DROP TABLE pgtrickle_changes." + bufs.Text(i, 0));
	}
	spi.Exec("DELETE FROM pgtrickle.pgt_change_tracking");
	// Capture restarts on triggers (replication slots are not dumped; the scheduler may move sources
	// to the WAL again): the mode mirrored in the dependencies says so.
	spi.Exec("UPDATE pgtrickle.pgt_dependencies SET cdc_mode = 'TRIGGER' WHERE cdc_mode IN ('WAL', 'TRANSITIONING')");
	pg::SpiRows sources = spi.Query(
	    "SELECT DISTINCT d.source_relid, d.source_schema, d.source_name, c.relkind::text, "
	    "EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_relid = d.source_relid) "
	    "FROM pgtrickle.pgt_dependencies d JOIN pg_catalog.pg_class c ON c.oid = d.source_relid "
	    "WHERE c.relkind IN ('r', 'p') AND d.source_type IN ('TABLE', 'STREAM_TABLE')");
	for (size_t i = 0; i < sources.Count(); i++) {
		SourceRelation src;
		src.relid = static_cast<Oid>(sources.Int64(i, 0));
		src.schema = sources.Text(i, 1);
		src.name = sources.Text(i, 2);
		src.relkind = sources.Text(i, 3)[0];
		src.is_stream_table = sources.Bool(i, 4);
		cdc::EnsureCapture(spi, src);
	}
	return fixed;
}

namespace {

int64_t
RestoreFn() {
	pg::SpiSession spi;
	return RestoreStreamTables(spi);
}

} // namespace

} // namespace pgtrickle::api

extern "C" {
PG_FUNCTION_INFO_V1(restore_stream_tables);
Datum
restore_stream_tables(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() { PG_RETURN_INT64(pgtrickle::api::RestoreFn()); });
}
}
