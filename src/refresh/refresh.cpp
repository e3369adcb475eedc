#include "refresh/refresh.hpp"

#include "cdc/cdc.hpp"
#include "core/errors.hpp"
#include "core/sql_text.hpp"

extern "C" {
#include "commands/trigger.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

namespace pgtrickle::refresh {

namespace {

int refresh_write_depth = 0;

const char *
InitiatedByText(InitiatedBy who) {
	switch (who) {
	case InitiatedBy::Scheduler:
		return "SCHEDULER";
	case InitiatedBy::Initial:
		return "INITIAL";
	case InitiatedBy::Manual:
	default:
		return "MANUAL";
	}
}

// The refresh snapshot, registered for the refresh's lifetime.
class RegisteredSnapshot {
public:
	RegisteredSnapshot() {
		snapshot_ = pg::PgCall([]() { return RegisterSnapshot(GetLatestSnapshot()); });
	}
	~RegisteredSnapshot() {
		if (pg::PgErrorPending())
			return; // the resource owner releases it at abort
		Snapshot s = snapshot_;
		try {
			pg::PgCall([&]() { UnregisterSnapshot(s); });
		} catch (...) {
		}
	}
	Snapshot
	Get() const {
		return snapshot_;
	}

private:
	Snapshot snapshot_;
};

// Runs the refresh with a fixed search_path: the stored query is fully qualified, and anything a
// user-defined function looks up must not depend on who (or which worker) runs the refresh.
class FixedSearchPath {
public:
	FixedSearchPath() {
		nest_ = pg::PgCall([]() {
			int nest = NewGUCNestLevel();
			(void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
			                        true, 0, false);
			return nest;
		});
	}
	~FixedSearchPath() {
		if (pg::PgErrorPending())
			return;
		int nest = nest_;
		try {
			pg::PgCall([&]() { AtEOXact_GUC(true, nest); });
		} catch (...) {
		}
	}

private:
	int nest_;
};

} // namespace

RefreshWriteScope::RefreshWriteScope() {
	refresh_write_depth++;
}

RefreshWriteScope::~RefreshWriteScope() {
	refresh_write_depth--;
}

bool
InRefresh() {
	return refresh_write_depth > 0;
}

RefreshResult
RefreshStreamTable(pg::SpiSession &spi, const catalog::StreamTable &st, InitiatedBy who) {
	if (st.status == "SUSPENDED" || st.status == "ERROR")
		throw UserError(sqlstate::kObjectNotInPrerequisiteState,
		                "stream table \"" + st.DisplayName() + "\" is " + AsciiLower(st.status),
		                {}, "Resume it with pgtrickle.alter_stream_table(name => '" + st.DisplayName() +
		                        "', status => 'ACTIVE').");
	int64_t start_time = pg::PgCall([]() { return GetCurrentTimestamp(); });

	// 1. The refresh lock, before the snapshot.
	Oid relid = st.relid;
	pg::PgCall([&]() { LockRelationOid(relid, ExclusiveLock); });
	// 2. The refresh snapshot.
	RegisteredSnapshot snapshot;
	int64_t data_timestamp = pg::PgCall([]() { return GetCurrentTimestamp(); });
	FixedSearchPath search_path;

	RefreshResult result;
	result.action = "FULL";
	{
		RefreshWriteScope writing;
		pg::SqlParams none;
		result.rows_deleted = static_cast<int64_t>(
		    spi.ExecWithSnapshot("DELETE FROM " + st.QualifiedName(), none, snapshot.Get()));
		result.rows_inserted = static_cast<int64_t>(spi.ExecWithSnapshot(
		    "INSERT INTO " + st.QualifiedName() + " SELECT * FROM (\n" + st.defining_query + "\n) AS q", none,
		    snapshot.Get()));
	}
	pg::SpiRows frontier;
	spi.ExecWithSnapshot("SELECT pg_catalog.pg_current_snapshot()::text", pg::SqlParams(), snapshot.Get(), &frontier);

	pg::SqlParams p;
	p.Text(frontier.Text(0, 0)).TimestampTz(data_timestamp).Int64(st.pgt_id);
	spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET frontier = $1::pg_catalog.pg_snapshot, data_timestamp = $2, "
	         "last_refresh_at = pg_catalog.now(), is_populated = true, needs_reinit = false, consecutive_errors = 0, "
	         "status = CASE WHEN status = 'INITIALIZING' THEN 'ACTIVE' ELSE status END, updated_at = pg_catalog.now() "
	         "WHERE pgt_id = $3",
	         p);

	pg::SqlParams h;
	h.Int64(st.pgt_id).TimestampTz(data_timestamp).TimestampTz(start_time).Text(result.action)
	    .Int64(result.rows_inserted).Int64(result.rows_deleted).Text(InitiatedByText(who));
	spi.Exec("INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, data_timestamp, start_time, end_time, action, "
	         "rows_inserted, rows_deleted, status, initiated_by) "
	         "VALUES ($1, $2, $3, pg_catalog.clock_timestamp(), $4, $5, $6, 'COMPLETED', $7)",
	         h);

	for (const auto &dep : catalog::GetDependencies(spi, st.pgt_id))
		if (dep.source_type == "TABLE" || dep.source_type == "STREAM_TABLE")
			cdc::TrimBuffer(spi, dep.source_relid);
	return result;
}

} // namespace pgtrickle::refresh

// ------------------------------------------------------------------------------------------------
// The write guard on storage tables
// ------------------------------------------------------------------------------------------------

namespace {
Datum
GuardImpl(FunctionCallInfo fcinfo) {
	using namespace pgtrickle;
	if (!CALLED_AS_TRIGGER(fcinfo))
		throw UserError(sqlstate::kObjectNotInPrerequisiteState, "pgt_guard() must be called as a trigger");
	if (refresh::InRefresh())
		return PointerGetDatum(nullptr);
	auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
	const char *op = TRIGGER_FIRED_BY_INSERT(td->tg_event)   ? "insert into"
	                 : TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "update"
	                 : TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "delete from"
	                                                         : "truncate";
	const char *relname = RelationGetRelationName(td->tg_relation);
	throw UserError(sqlstate::kWrongObjectType,
	                std::string("cannot ") + op + " stream table \"" + relname + "\"",
	                "Stream tables are maintained by pg_trickle from their defining query.",
	                "Change the source tables and refresh, or change the query with pgtrickle.alter_stream_table.");
}
} // namespace

extern "C" {
PG_FUNCTION_INFO_V1(pgt_guard);
Datum
pgt_guard(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() { return GuardImpl(fcinfo); });
}
}
