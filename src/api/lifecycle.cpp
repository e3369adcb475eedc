// create_stream_table, alter_stream_table, drop_stream_table, refresh_stream_table.
#include "analyze/analyze.hpp"
#include "analyze/dvm.hpp"
#include "api/ddl.hpp"
#include "api/lifecycle.hpp"
#include "core/dvm_plan.hpp"
#include "catalog/catalog.hpp"
#include "cdc/cdc.hpp"
#include "core/errors.hpp"
#include "core/schedule.hpp"
#include "core/sql_text.hpp"
#include "guc.hpp"
#include "pg/bridge.hpp"
#include "pg/spi.hpp"
#include "refresh/refresh.hpp"
#include "scheduler/scheduler.hpp"

extern "C" {
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "utils/lsyscache.h"
}

#include <algorithm>
#include <optional>
#include <set>

namespace pgtrickle::api {

namespace {

std::optional<std::string>
ArgText(FunctionCallInfo fcinfo, int i) {
	if (PG_ARGISNULL(i))
		return std::nullopt;
	char *s = pg::PgCall([&]() { return text_to_cstring(PG_GETARG_TEXT_PP(i)); });
	return std::string(s);
}

std::string
RequireText(FunctionCallInfo fcinfo, int i, const char *what) {
	auto v = ArgText(fcinfo, i);
	if (!v)
		throw UserError(sqlstate::kInvalidParameterValue, std::string(what) + " must not be NULL");
	return *v;
}

Schedule
ParseScheduleArg(const std::string &text) {
	return ParseSchedule(text, guc::min_schedule_seconds);
}

std::optional<std::string>
StoredSchedule(const Schedule &s) {
	if (s.kind == ScheduleKind::Calculated)
		return std::nullopt;
	return s.text;
}

std::string
ParseRefreshMode(const std::string &text) {
	std::string mode = AsciiUpper(TrimQueryText(text));
	if (mode == "AUTO" || mode == "FULL" || mode == "DIFFERENTIAL")
		return mode;
	if (mode == "INCREMENTAL")
		return "DIFFERENTIAL";
	throw UserError(sqlstate::kInvalidParameterValue, "invalid refresh mode \"" + text + "\"",
	                {}, "Valid refresh modes are AUTO, FULL and DIFFERENTIAL.");
}

struct ModeDecision {
	std::string mode;                  // FULL | DIFFERENTIAL
	std::optional<std::string> reason; // why not DIFFERENTIAL
	std::optional<DvmPlan> plan;       // DIFFERENTIAL
};

// Reasons that rule out differential maintenance before any planning.
std::optional<std::string>
DifferentialBlocker(const AnalyzedQuery &aq) {
	if (aq.has_volatile) {
		if (!aq.volatile_functions.empty())
			return "the query calls volatile function " + aq.volatile_functions.front() + "()";
		return "the query contains a volatile expression";
	}
	for (const auto &s : aq.sources)
		if (s.is_partition)
			return "partition \"" + s.schema + "." + s.name + "\" is read directly; changes written through its "
			       "partitioned table are captured for that table only (read the partitioned table instead)";
	for (const auto &s : aq.sources)
		if (s.relkind == 'm' || s.relkind == 'f')
			return std::string(s.relkind == 'm' ? "materialized view" : "foreign table") + " \"" + s.schema + "." +
			       s.name + "\" has no change capture";
	return std::nullopt;
}

ModeDecision
DecideMode(const std::string &requested, const AnalyzedQuery &aq) {
	if (requested == "FULL")
		return {"FULL", std::nullopt, std::nullopt};
	auto blocker = DifferentialBlocker(aq);
	if (!blocker) {
		DvmBuildResult built = BuildDvmPlan(aq.deparsed, true);
		if (built.plan)
			return {"DIFFERENTIAL", std::nullopt, std::move(built.plan)};
		blocker = built.unsupported;
	}
	if (requested == "DIFFERENTIAL") {
		if (aq.has_volatile)
			throw UserError(sqlstate::kFeatureNotSupported,
			                "volatile functions are not allowed in a DIFFERENTIAL stream table",
			                "Reason: " + *blocker + ".",
			                "Use refresh_mode => 'FULL', or replace the function with a stable or immutable one.");
		throw UserError(sqlstate::kFeatureNotSupported, "query cannot be maintained with DIFFERENTIAL refresh",
		                "Reason: " + *blocker + ".", "Use refresh_mode => 'FULL' or 'AUTO'.");
	}
	pg::PgCall([&]() {
		ereport(WARNING, (errmsg("stream table will use FULL refresh"), errdetail("Reason: %s.", blocker->c_str())));
	});
	return {"FULL", blocker, std::nullopt};
}

// The SELECT whose columns define the storage table.
std::string
StorageSql(const AnalyzedQuery &aq, const ModeDecision &mode) {
	if (mode.plan)
		return PopulationSql(*mode.plan);
	return "SELECT * FROM (\n" + aq.deparsed + "\n) AS q";
}

// cdc_mode => auto | trigger | wal; 'wal' needs wal_level = logical now (auto quietly keeps triggers).
std::string
CheckCdcMode(const std::string &text) {
	std::string mode = cdc::ParseCdcMode(text);
	if (mode == "wal") {
		pg::SpiSession spi;
		if (!spi.Query("SELECT pg_catalog.current_setting('wal_level') = 'logical'").Bool(0, 0))
			throw UserError(sqlstate::kObjectNotInPrerequisiteState, "cdc_mode 'wal' needs wal_level = logical",
			                "The server runs with wal_level = " +
			                    spi.Query("SELECT pg_catalog.current_setting('wal_level')").Text(0, 0) + ".",
			                "Set wal_level = logical and restart the server, or use cdc_mode => 'auto'.");
	}
	return mode;
}

void
MarkStreamTableSources(pg::SpiSession &spi, AnalyzedQuery &aq) {
	for (auto &src : aq.sources)
		if (catalog::FindStreamTableByRelid(spi, src.relid))
			src.is_stream_table = true;
}

Oid
RelationOid(const std::string &schema, const std::string &name) {
	const char *s = schema.c_str();
	const char *n = name.c_str();
	return pg::PgCall([&]() {
		Oid nsp = get_namespace_oid(s, true);
		return OidIsValid(nsp) ? get_relname_relid(n, nsp) : InvalidOid;
	});
}

// Creates the storage table (the query's columns, no rows) and its write guard; returns its OID.
Oid
CreateStorage(pg::SpiSession &spi, const std::string &schema, const std::string &name, const AnalyzedQuery &aq,
              const ModeDecision &mode) {
	std::string qualified = QuoteQualified(schema, name);
	spi.Exec("CREATE TABLE " + qualified + " AS " + StorageSql(aq, mode) + " WITH NO DATA");
	if (mode.plan) {
		spi.Exec("CREATE INDEX ON " + qualified + " (" + QuoteIdent(kRidColumn) + ")");
		for (const auto &col : mode.plan->storage_index_columns)
			spi.Exec("CREATE INDEX ON " + qualified + " (" + QuoteIdent(col) + ")");
	}
	spi.Exec("CREATE TRIGGER pgt_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON " + qualified +
	         " FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle.pgt_guard()");
	return RelationOid(schema, name);
}

// Capture starts before anything reads the sources: the differential plan reads the change buffers,
// and the initial population's snapshot must be taken after the triggers exist.
void
StartCapture(pg::SpiSession &spi, const AnalyzedQuery &aq) {
	for (const auto &src : aq.sources)
		if (src.IsCaptured())
			cdc::EnsureCapture(spi, src);
}

void
RecordSources(pg::SpiSession &spi, int64_t pgt_id, const AnalyzedQuery &aq) {
	for (const auto &src : aq.sources)
		catalog::InsertDependency(spi, pgt_id, {src.relid, src.schema, src.name, src.SourceType()});
}

void
CheckNoSelfReference(const AnalyzedQuery &aq, Oid relid, const std::string &display) {
	for (const auto &src : aq.sources)
		if (src.relid == relid)
			throw UserError(sqlstate::kInvalidRecursion,
			                "stream table \"" + display + "\" cannot read itself",
			                "Its query would form a cycle in the stream table graph.");
}

// Refuses a query that reads `target` through other stream tables (a cycle).
void
CheckNoCycle(pg::SpiSession &spi, const AnalyzedQuery &aq, Oid target, const std::string &display) {
	CheckNoSelfReference(aq, target, display);
	std::vector<Oid> frontier;
	std::set<Oid> seen;
	for (const auto &src : aq.sources)
		if (src.is_stream_table)
			frontier.push_back(src.relid);
	while (!frontier.empty()) {
		Oid rel = frontier.back();
		frontier.pop_back();
		if (!seen.insert(rel).second)
			continue;
		auto st = catalog::FindStreamTableByRelid(spi, rel);
		if (!st)
			continue;
		for (const auto &dep : catalog::GetDependencies(spi, st->pgt_id)) {
			if (dep.source_relid == target)
				throw UserError(sqlstate::kInvalidRecursion,
				                "stream table \"" + display + "\" would depend on itself",
				                "It reads \"" + st->DisplayName() + "\", which reads \"" + display + "\".");
			if (dep.source_type == "STREAM_TABLE")
				frontier.push_back(dep.source_relid);
		}
	}
}

// ---------------------------------------------------------------------------------------------------

void
CreateStreamTable(FunctionCallInfo fcinfo) {
	std::string name = RequireText(fcinfo, 0, "name");
	std::string query = RequireText(fcinfo, 1, "query");
	if (PG_ARGISNULL(2))
		throw UserError(sqlstate::kInvalidParameterValue, "schedule must not be NULL", {},
		                "Use 'calculated' to derive the schedule from downstream stream tables.");
	Schedule schedule = ParseScheduleArg(*ArgText(fcinfo, 2));
	std::string requested = ParseRefreshMode(RequireText(fcinfo, 3, "refresh_mode"));
	bool initialize = PG_ARGISNULL(4) ? true : PG_GETARG_BOOL(4);
	std::optional<std::string> cdc_mode;
	if (auto text = ArgText(fcinfo, 5))
		cdc_mode = CheckCdcMode(*text);

	pg::SpiSession spi;
	catalog::QualifiedName qn = catalog::ResolveCreationName(name);
	Oid existing = RelationOid(qn.schema, qn.name);
	if (OidIsValid(existing)) {
		bool is_st = catalog::FindStreamTableByRelid(spi, existing).has_value();
		throw UserError(sqlstate::kDuplicateTable,
		                std::string(is_st ? "stream table" : "relation") + " \"" + qn.schema + "." + qn.name +
		                    "\" already exists",
		                {}, is_st ? "Use pgtrickle.alter_stream_table to change it." : "");
	}

	AnalyzedQuery aq = AnalyzeDefiningQuery(query);
	MarkStreamTableSources(spi, aq);
	StartCapture(spi, aq);
	ModeDecision mode = DecideMode(requested, aq);

	catalog::StreamTable st;
	st.schema = qn.schema;
	st.name = qn.name;
	st.defining_query = aq.deparsed;
	st.original_query = aq.original;
	st.schedule = StoredSchedule(schedule);
	st.refresh_mode = mode.mode;
	st.requested_refresh_mode = requested;
	st.status = "INITIALIZING";
	st.relid = CreateStorage(spi, st.schema, st.name, aq, mode);
	st.pgt_id = catalog::InsertStreamTable(spi, st, mode.reason, aq.volatile_functions);
	RecordSources(spi, st.pgt_id, aq);
	if (cdc_mode)
		spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET requested_cdc_mode = $1 WHERE pgt_id = $2",
		         pg::SqlParams().Text(*cdc_mode).Int64(st.pgt_id));

	if (schedule.kind == ScheduleKind::Calculated)
		pg::PgCall([&]() {
			ereport(NOTICE,
			        (errmsg("stream table \"%s.%s\" has a calculated schedule and no consumers yet", qn.schema.c_str(),
			                qn.name.c_str()),
			         errdetail("It is refreshed whenever its sources change, until a stream table reading it sets "
			                   "a pace.")));
		});
	scheduler::WakeLauncher(spi);
	if (initialize) {
		refresh::RefreshStreamTable(spi, st, refresh::InitiatedBy::Initial);
	} else {
		spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET status = 'ACTIVE' WHERE pgt_id = $1",
		         pg::SqlParams().Int64(st.pgt_id));
	}
}

void DropStreamTableRecursive(pg::SpiSession &spi, const catalog::StreamTable &st, bool cascade);

void
DropStreamTableRecursive(pg::SpiSession &spi, const catalog::StreamTable &st, bool cascade) {
	std::vector<int64_t> dependents = catalog::GetDependents(spi, st.relid);
	if (!dependents.empty() && !cascade) {
		std::vector<std::string> names;
		for (int64_t id : dependents)
			if (auto d = catalog::FindStreamTableById(spi, id))
				names.push_back(d->DisplayName());
		throw UserError(sqlstate::kDependentObjectsStillExist,
		                "cannot drop stream table \"" + st.DisplayName() + "\" because other stream tables depend on it",
		                "Stream tables reading it: " + Join(names, ", ") + ".",
		                "Use cascade => true to drop them too.");
	}
	for (int64_t id : dependents)
		if (auto d = catalog::FindStreamTableById(spi, id))
			DropStreamTableRecursive(spi, *d, cascade);

	std::vector<catalog::Dependency> deps = catalog::GetDependencies(spi, st.pgt_id);
	catalog::DeleteStreamTable(spi, st.pgt_id);
	spi.Exec("DROP TABLE IF EXISTS " + st.QualifiedName());
	for (const auto &dep : deps)
		cdc::DropCaptureIfUnused(spi, dep.source_relid);
	cdc::DropCaptureIfUnused(spi, st.relid);
}

void
DropStreamTable(FunctionCallInfo fcinfo) {
	std::string name = RequireText(fcinfo, 0, "name");
	bool cascade = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	pg::SpiSession spi;
	catalog::StreamTable st = catalog::GetStreamTableByName(spi, name);
	DropStreamTableRecursive(spi, st, cascade);
}

void
RefreshStreamTableFn(FunctionCallInfo fcinfo) {
	std::string name = RequireText(fcinfo, 0, "name");
	if (pg::PgCall([]() { return RecoveryInProgress(); }))
		throw UserError(sqlstate::kReadOnlySqlTransaction, "cannot refresh stream table \"" + name + "\" on a standby",
		                "A standby receives stream tables from its primary, which refreshes them.",
		                "Refresh on the primary.");
	pg::SpiSession spi;
	catalog::StreamTable st = catalog::GetStreamTableByName(spi, name);
	refresh::RefreshStreamTable(spi, st, refresh::InitiatedBy::Manual);
}

// Output columns of an existing storage table, as (name, type) pairs.
std::vector<std::pair<std::string, std::string>>
StorageColumns(pg::SpiSession &spi, Oid relid) {
	pg::SpiRows rows = spi.Query("SELECT attname, pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
	                             "WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
	                             pg::SqlParams().Oid(relid));
	std::vector<std::pair<std::string, std::string>> out;
	for (size_t i = 0; i < rows.Count(); i++)
		out.emplace_back(rows.Text(i, 0), rows.Text(i, 1));
	return out;
}

// Columns (name, type) a SELECT would produce, without running it.
std::vector<std::pair<std::string, std::string>>
DescribeColumns(pg::SpiSession &spi, const std::string &select_sql) {
	pg::SpiRows rows = spi.Query("SELECT * FROM (\n" + select_sql + "\n) AS q LIMIT 0");
	std::vector<std::pair<std::string, std::string>> out;
	for (size_t i = 0; i < rows.names_.size(); i++)
		out.emplace_back(rows.names_[i], rows.types_.at(i));
	return out;
}

} // namespace

// Redefines `st` (see lifecycle.hpp).
void
RedefineStreamTable(pg::SpiSession &spi, catalog::StreamTable st, const std::string &query_text,
                    const std::string &effective_requested, bool new_query) {
	AnalyzedQuery aq = AnalyzeDefiningQuery(query_text);
	if (!new_query)
		aq.original = st.original_query;
	MarkStreamTableSources(spi, aq);
	CheckNoCycle(spi, aq, st.relid, st.DisplayName());
	StartCapture(spi, aq);
	ModeDecision mode = DecideMode(effective_requested, aq);

	// Keep the storage table when its layout does not change; otherwise rebuild it (refused when
	// other stream tables read it, since they would see different columns).
	if (DescribeColumns(spi, StorageSql(aq, mode)) != StorageColumns(spi, st.relid)) {
		if (!catalog::GetDependents(spi, st.relid).empty())
			throw UserError(sqlstate::kFeatureNotSupported,
			                "cannot change the columns of stream table \"" + st.DisplayName() + "\"",
			                "Other stream tables read it.",
			                "Keep the same output columns and refresh mode, or drop the dependent stream tables "
			                "first.");
		spi.Exec("DROP TABLE " + st.QualifiedName());
		cdc::DropCaptureIfUnused(spi, st.relid);
		st.relid = CreateStorage(spi, st.schema, st.name, aq, mode);
	}
	std::vector<catalog::Dependency> old_deps = catalog::GetDependencies(spi, st.pgt_id);
	catalog::DeleteDependencies(spi, st.pgt_id);
	st.defining_query = aq.deparsed;
	st.original_query = aq.original;
	st.refresh_mode = mode.mode;
	st.requested_refresh_mode = effective_requested;
	pg::SqlParams p;
	p.Oid(st.relid).Text(st.defining_query).Text(st.original_query).Text(st.refresh_mode)
	    .Text(st.requested_refresh_mode).OptText(mode.reason).TextArray(aq.volatile_functions).Int64(st.pgt_id);
	spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET pgt_relid = $1, defining_query = $2, original_query = $3, "
	         "refresh_mode = $4, requested_refresh_mode = $5, refresh_mode_reason = $6, functions_used = $7, "
	         "frontier = NULL, is_populated = false, updated_at = pg_catalog.now(), last_full_ms = NULL, "
	         "last_differential_ms = NULL, last_differential_changes = NULL, adaptive_full_streak = 0 WHERE pgt_id = $8",
	         p);
	RecordSources(spi, st.pgt_id, aq);
	for (const auto &dep : old_deps)
		cdc::DropCaptureIfUnused(spi, dep.source_relid);
	st.is_populated = false;
	st.frontier.reset();
	if (st.status == "ACTIVE" || st.status == "INITIALIZING")
		refresh::RefreshStreamTable(spi, st, refresh::InitiatedBy::Manual);
}

namespace {

void
AlterStreamTable(FunctionCallInfo fcinfo) {
	std::string name = RequireText(fcinfo, 0, "name");
	std::optional<std::string> query = ArgText(fcinfo, 1);
	std::optional<std::string> schedule_text = ArgText(fcinfo, 2);
	std::optional<std::string> mode_text = ArgText(fcinfo, 3);
	std::optional<std::string> status_text = ArgText(fcinfo, 4);
	std::optional<std::string> cdc_mode;
	if (auto text = ArgText(fcinfo, 5))
		cdc_mode = CheckCdcMode(*text);

	// Validate every argument before changing anything.
	std::optional<Schedule> schedule;
	if (schedule_text)
		schedule = ParseScheduleArg(*schedule_text);
	std::optional<std::string> requested;
	if (mode_text)
		requested = ParseRefreshMode(*mode_text);
	std::optional<std::string> status;
	if (status_text) {
		status = AsciiUpper(TrimQueryText(*status_text));
		if (*status != "ACTIVE" && *status != "SUSPENDED")
			throw UserError(sqlstate::kInvalidParameterValue, "invalid status \"" + *status_text + "\"", {},
			                "Valid statuses are ACTIVE and SUSPENDED.");
	}

	pg::SpiSession spi;
	catalog::StreamTable st = catalog::GetStreamTableByName(spi, name);
	std::string effective_requested = requested.value_or(st.requested_refresh_mode);

	if (schedule) {
		spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET schedule = $1, updated_at = pg_catalog.now() WHERE pgt_id = $2",
		         pg::SqlParams().OptText(StoredSchedule(*schedule)).Int64(st.pgt_id));
	}
	if (status) {
		spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET status = $1, consecutive_errors = CASE WHEN $1 = 'ACTIVE' "
		         "THEN 0 ELSE consecutive_errors END, updated_at = pg_catalog.now() WHERE pgt_id = $2",
		         pg::SqlParams().Text(*status).Int64(st.pgt_id));
		st.status = *status;
	}

	if (cdc_mode) {
		// The scheduler (or pgtrickle.advance_cdc_transitions()) moves the sources accordingly.
		spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET requested_cdc_mode = $1 WHERE pgt_id = $2",
		         pg::SqlParams().Text(*cdc_mode).Int64(st.pgt_id));
	}

	if (query || requested)
		RedefineStreamTable(spi, st, query ? *query : st.defining_query, effective_requested, query.has_value());
}

int64_t
ParseDurationSeconds(FunctionCallInfo fcinfo) {
	std::string text = RequireText(fcinfo, 0, "input");
	Schedule s = ParseSchedule(text, 0);
	if (s.kind != ScheduleKind::Duration)
		throw UserError(sqlstate::kInvalidParameterValue, "\"" + text + "\" is not a duration",
		                {}, "Durations look like '30s', '5m', '1h30m' or a number of seconds.");
	return s.seconds;
}

} // namespace

} // namespace pgtrickle::api

extern "C" {

using pgtrickle::pg::CxxBoundary;

PG_FUNCTION_INFO_V1(create_stream_table);
Datum
create_stream_table(PG_FUNCTION_ARGS) {
	return CxxBoundary(__func__, [&]() {
		pgtrickle::api::InternalDdlScope internal;
		pgtrickle::api::CreateStreamTable(fcinfo);
		PG_RETURN_VOID();
	});
}

PG_FUNCTION_INFO_V1(alter_stream_table);
Datum
alter_stream_table(PG_FUNCTION_ARGS) {
	return CxxBoundary(__func__, [&]() {
		pgtrickle::api::InternalDdlScope internal;
		pgtrickle::api::AlterStreamTable(fcinfo);
		PG_RETURN_VOID();
	});
}

PG_FUNCTION_INFO_V1(drop_stream_table);
Datum
drop_stream_table(PG_FUNCTION_ARGS) {
	return CxxBoundary(__func__, [&]() {
		pgtrickle::api::InternalDdlScope internal;
		pgtrickle::api::DropStreamTable(fcinfo);
		PG_RETURN_VOID();
	});
}

PG_FUNCTION_INFO_V1(refresh_stream_table);
Datum
refresh_stream_table(PG_FUNCTION_ARGS) {
	return CxxBoundary(__func__, [&]() {
		pgtrickle::api::RefreshStreamTableFn(fcinfo);
		PG_RETURN_VOID();
	});
}

PG_FUNCTION_INFO_V1(parse_duration_seconds);
Datum
parse_duration_seconds(PG_FUNCTION_ARGS) {
	return CxxBoundary(__func__, [&]() { PG_RETURN_INT64(pgtrickle::api::ParseDurationSeconds(fcinfo)); });
}

PG_FUNCTION_INFO_V1(pgt_version);
Datum
pgt_version(PG_FUNCTION_ARGS) {
	PG_RETURN_TEXT_P(cstring_to_text(PGT_VERSION));
}
}
