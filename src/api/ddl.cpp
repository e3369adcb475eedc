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

namespace pgtrickle::api {

namespace {

void
OnSqlDrop(FunctionCallInfo fcinfo) {
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		throw UserError(sqlstate::kObjectNotInPrerequisiteState, "_on_sql_drop() must be called as an event trigger");
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

} // namespace

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
}
