// Event trigger on sql_drop: keeps the catalog true when tables are dropped with plain DDL.
//  - DROP TABLE of a stream table's storage (or DROP SCHEMA ... CASCADE) removes the stream table's
//    catalog rows and the change capture nothing reads any more;
//  - dropping a table that a surviving stream table reads is refused, naming the stream tables.
#include "catalog/catalog.hpp"
#include "cdc/cdc.hpp"
#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "pg/bridge.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "commands/event_trigger.h"
}

#include <set>

#include "api/ddl.hpp"
#include "api/lifecycle.hpp"

namespace pgtrickle::api {

namespace {

int internal_ddl_depth = 0;

void
OnSqlDrop(FunctionCallInfo fcinfo) {
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		throw UserError(sqlstate::kObjectNotInPrerequisiteState, "_on_sql_drop() must be called as an event trigger");
	if (internal_ddl_depth > 0)
		return; // pg_trickle's own DDL keeps the catalog right by itself
	InternalDdlScope internal;
	pg::SpiSession spi;
	pg::SpiRows dropped = spi.Query("SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
	                                "WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objsubid = 0");
	if (dropped.Count() == 0)
		return;
	std::set<Oid> gone;
	for (size_t i = 0; i < dropped.Count(); i++)
		gone.insert(static_cast<Oid>(dropped.Int64(i, 0)));

	// Stream tables whose storage went away.
	std::set<int64_t> dropped_sts;
	for (Oid relid : gone)
		if (auto st = catalog::FindStreamTableByRelid(spi, relid))
			dropped_sts.insert(st->pgt_id);

	// Sources still read by a surviving stream table.
	for (Oid relid : gone) {
		std::vector<std::string> readers;
		for (int64_t id : catalog::GetDependents(spi, relid))
			if (!dropped_sts.count(id))
				if (auto st = catalog::FindStreamTableById(spi, id))
					readers.push_back(st->DisplayName());
		if (!readers.empty()) {
			pg::SpiRows name = spi.Query("SELECT source_schema || '.' || source_name FROM pgtrickle.pgt_dependencies "
			                             "WHERE source_relid = $1 LIMIT 1",
			                             pg::SqlParams().Oid(relid));
			throw UserError(sqlstate::kDependentObjectsStillExist,
			                "cannot drop " + (name.Count() ? name.Text(0, 0) : std::to_string(relid)) +
			                    " because stream tables depend on it",
			                "Stream tables reading it: " + Join(readers, ", ") + ".",
			                "Drop those stream tables first with pgtrickle.drop_stream_table.");
		}
	}

	for (int64_t id : dropped_sts) {
		std::vector<catalog::Dependency> deps = catalog::GetDependencies(spi, id);
		auto st = catalog::FindStreamTableById(spi, id);
		catalog::DeleteStreamTable(spi, id);
		for (const auto &dep : deps)
			cdc::DropCaptureIfUnused(spi, dep.source_relid);
		if (st)
			cdc::DropCaptureIfUnused(spi, st->relid);
	}
}

// CREATE OR REPLACE VIEW of a view a stream table reads, or CREATE OR REPLACE / ALTER FUNCTION of a
// function its query calls: the query now means something else (and may read other tables), so each
// such stream table is redefined from its own query text: sources and capture re-recorded, refresh
// mode re-planned, contents recomputed.
void
RedefineReaders(pg::SpiSession &spi) {
	pg::SpiRows st_ids = spi.Query(
	    "SELECT DISTINCT s.pgt_id FROM pg_catalog.pg_event_trigger_ddl_commands() c "
	    "JOIN pgtrickle.pgt_dependencies d ON c.command_tag = 'CREATE VIEW' AND d.source_relid = c.objid "
	    "JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = d.pgt_id "
	    "UNION "
	    "SELECT s.pgt_id FROM pg_catalog.pg_event_trigger_ddl_commands() c "
	    "JOIN pg_catalog.pg_proc f ON c.command_tag IN ('CREATE FUNCTION', 'ALTER FUNCTION') AND f.oid = c.objid "
	    "JOIN pgtrickle.pgt_stream_tables s ON s.defining_query ~* ('\\m' || f.proname || '\\M') "
	    "ORDER BY 1");
	for (size_t i = 0; i < st_ids.Count(); i++) {
		auto st = catalog::FindStreamTableById(spi, st_ids.Int64(i, 0));
		if (!st)
			continue;
		std::string name = st->DisplayName();
		pg::PgCall([&]() {
			ereport(NOTICE, (errmsg("redefining stream table \"%s\": a view or function its query uses changed",
			                        name.c_str())));
		});
		RedefineStreamTable(spi, *st, st->defining_query, st->requested_refresh_mode, false);
	}
}

// ddl_command_end: ALTER TABLE on a captured source keeps its buffer in step with its columns; a
// column dropped, renamed or retyped means the readers' pending changes are incomplete, so they are
// reinitialised (FULL) on their next refresh; added columns are absorbed. New partitions of a captured
// partitioned table get the capture triggers.
void
OnDdlEnd(FunctionCallInfo fcinfo) {
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		throw UserError(sqlstate::kObjectNotInPrerequisiteState, "_on_ddl_end() must be called as an event trigger");
	if (internal_ddl_depth > 0)
		return;
	// What this function does (triggers on partitions, buffer columns) is pg_trickle's own DDL.
	InternalDdlScope internal;
	pg::SpiSession spi;
	RedefineReaders(spi);
	pg::SpiRows cmds = spi.Query(
	    "SELECT DISTINCT c.objid, COALESCE(pg_catalog.pg_partition_root(c.objid)::pg_catalog.oid, c.objid) "
	    "FROM pg_catalog.pg_event_trigger_ddl_commands() c "
	    "WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.command_tag IN ('ALTER TABLE', 'CREATE TABLE') "
	    "AND EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking t "
	    "            WHERE t.source_relid IN (c.objid, pg_catalog.pg_partition_root(c.objid)))");
	for (size_t i = 0; i < cmds.Count(); i++) {
		Oid relid = static_cast<Oid>(cmds.Int64(i, 0));
		Oid root = static_cast<Oid>(cmds.Int64(i, 1));
		pg::SpiRows kind = spi.Query("SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = $1",
		                             pg::SqlParams().Oid(root));
		if (kind.Count() && kind.Text(0, 0) == "p")
			cdc::ReturnForPartitionChange(spi, root); // WAL capture knows no partition changes
		bool rows_moved = kind.Count() && kind.Text(0, 0) == "p" &&
		                  (cdc::EnsurePartitionTriggers(spi, root) | cdc::DropOrphanCaptureTriggers(spi));
		if (relid != root && !rows_moved)
			continue;
		bool columns_changed = relid == root && cdc::SyncBufferColumns(spi, relid) == cdc::BufferSync::ColumnsChanged;
		if (!columns_changed && !rows_moved)
			continue;
		relid = root;
		pg::SpiRows readers = spi.Query(
		    "UPDATE pgtrickle.pgt_stream_tables SET needs_reinit = true, updated_at = pg_catalog.now() "
		    "WHERE pgt_id IN (SELECT pgt_id FROM pgtrickle.pgt_dependencies WHERE source_relid = $1) "
		    "RETURNING pgt_schema || '.' || pgt_name, "
		    "pg_catalog.pg_notify('pg_trickle_alert', pg_catalog.jsonb_build_object('event', 'reinitialize_needed', "
		    "'pgt_schema', pgt_schema, 'pgt_name', pgt_name, 'st', pgt_schema || '.' || pgt_name, "
		    "'reason', $2 || $1::pg_catalog.regclass::text)::text)",
		    pg::SqlParams().Oid(relid).Text(columns_changed ? "columns changed on source " : "partitions attached to or detached from source "));
		std::vector<std::string> names;
		for (size_t r = 0; r < readers.Count(); r++)
			names.push_back(readers.Text(r, 0));
		if (!names.empty()) {
			std::string list = Join(names, ", ");
			pg::PgCall([&]() {
				ereport(NOTICE, (errmsg("stream tables reading this table will be reinitialized on their next refresh"),
				                 errdetail("Stream tables: %s.", list.c_str()),
				                 errhint("If the change renamed or dropped a column they use, change their query "
				                         "with pgtrickle.alter_stream_table.")));
			});
		}
	}
}

} // namespace

InternalDdlScope::InternalDdlScope() {
	internal_ddl_depth++;
}

InternalDdlScope::~InternalDdlScope() {
	internal_ddl_depth--;
}

} // namespace pgtrickle::api

extern "C" {
PG_FUNCTION_INFO_V1(pgt_on_sql_drop);
Datum
pgt_on_sql_drop(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() {
		pgtrickle::api::OnSqlDrop(fcinfo);
		PG_RETURN_VOID();
	});
}

PG_FUNCTION_INFO_V1(pgt_on_ddl_end);
Datum
pgt_on_ddl_end(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() {
		pgtrickle::api::OnDdlEnd(fcinfo);
		PG_RETURN_VOID();
	});
}
}
