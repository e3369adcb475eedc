#include "refresh/refresh.hpp"

#include "analyze/dvm.hpp"
#include "cdc/cdc.hpp"
#include "core/dvm_plan.hpp"
#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "guc.hpp"
#include "pg/guc_scope.hpp"
#include "pg/subxact.hpp"

extern "C" {
#include "commands/trigger.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/timeout.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "storage/latch.h"
}

#include <algorithm>
#include <optional>
#include <unordered_map>

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
	explicit RegisteredSnapshot(Snapshot shared = nullptr) : owned_(shared == nullptr) {
		snapshot_ = shared ? shared : pg::PgCall([]() { return RegisterSnapshot(GetLatestSnapshot()); });
	}
	~RegisteredSnapshot() {
		if (!owned_ || pg::PgErrorPending())
			return; // not ours, or the resource owner releases it at abort
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
	// A newer snapshot in place of the owned one (WAL capture fell back or changed mode meanwhile).
	void
	Renew() {
		Snapshot old = snapshot_;
		snapshot_ = pg::PgCall([&]() {
			UnregisterSnapshot(old);
			return RegisterSnapshot(GetLatestSnapshot());
		});
	}

private:
	Snapshot snapshot_;
	bool owned_;
};

// work_mem for the delta of a recursive query: `kb`, or nullptr when it is no more already (README): PostgreSQL sizes
// the hash table of each recursive UNION from the planner's estimate of the recursion's rows, capped
// by work_mem × hash_mem_multiplier, and allocates and zeroes it when the statement starts. The
// estimate of a recursion over the old result is huge while a delta recursion holds a handful, so
// with a large work_mem most of a small refresh went to zeroing memory. The tables grow as needed.
const char *
CappedWorkMem(int kb) {
	static char value[32];
	if (work_mem <= kb)
		return nullptr;
	snprintf(value, sizeof value, "%d", kb);
	return value;
}

// Per stream table and backend: the differential plan and its prepared statements, rebuilt when the
// definition changes (PostgreSQL itself replans kept statements when a source's schema changes).
struct CachedPlan {
	std::string key;
	DvmPlan plan;
	std::string apply_sql;
	std::string apply_large_sql; // empty: the same as apply_sql
	std::string population_sql;
	std::string census_sql;
	std::vector<Oid> census_sources;
	SPIPlanPtr apply = nullptr;
	SPIPlanPtr apply_large = nullptr;
	SPIPlanPtr census = nullptr;
};

// work_mem while the delta of a recursive query runs (see CappedWorkMem).
constexpr int kRecursiveDeltaWorkMemKb = 4096;

std::unordered_map<int64_t, CachedPlan> &
PlanCache() {
	static std::unordered_map<int64_t, CachedPlan> cache;
	return cache;
}

// $1, $2, $3 of every statement reading change buffers (see BufferWindowPredicate).
pg::SqlParams
FrontierParams(const catalog::StreamTable &st) {
	pg::SqlParams p;
	p.Typed(PG_SNAPSHOTOID, st.frontier.value_or("1:1:"));
	if (st.frontier_xid)
		p.Typed(XID8OID, *st.frontier_xid);
	else
		p.Null(XID8OID);
	p.OptInt64(st.frontier_cid);
	return p;
}

pg::SqlParams
FrontierParamTypes() {
	pg::SqlParams p;
	p.Null(PG_SNAPSHOTOID).Null(XID8OID).Null(INT8OID);
	return p;
}

CachedPlan &
GetCachedPlan(pg::SpiSession &spi, const catalog::StreamTable &st) {
	// updated_at moves with redefinitions and with DDL on sources (the DDL tracker bumps it).
	std::string key = std::to_string(st.relid) + "\n" + st.refresh_mode + "\n" + st.updated_at + "\n" +
	                  (guc::generic_delta_plans ? "generic" : "auto") + "\n" + st.defining_query;
	CachedPlan &cp = PlanCache()[st.pgt_id];
	if (cp.key == key)
		return cp;
	pg::FreeKept(cp.apply);
	pg::FreeKept(cp.apply_large);
	pg::FreeKept(cp.census);
	cp = CachedPlan{};
	DvmBuildResult built = BuildDvmPlan(st.defining_query, false);
	if (!built.plan)
		throw UserError(sqlstate::kFeatureNotSupported,
		                "stream table \"" + st.DisplayName() + "\" cannot be refreshed differentially",
		                "Reason: " + built.unsupported + ".", "Use pgtrickle.alter_stream_table(refresh_mode => 'FULL').");
	cp.plan = std::move(*built.plan);
	cp.population_sql = PopulationSql(cp.plan);
	cp.apply_sql = ApplySql(cp.plan, st.QualifiedName());
	if (!cp.plan.delta_sql_large.empty()) {
		DvmPlan large = cp.plan;
		large.delta_sql = cp.plan.delta_sql_large;
		cp.apply_large_sql = ApplySql(large, st.QualifiedName());
	}

	// One statement counting each captured source's pending changes (and TRUNCATE markers). With the
	// window's bounds stated (BufferWindowPredicate): unbounded, a window in a buffer kept large by a
	// slower reader was estimated at a fifth of it, and counted by a parallel scan (5.6 ms for 5,500
	// rows of 520,000, 0.7 ms bounded).
	std::vector<std::string> parts;
	for (const auto &dep : catalog::GetDependencies(spi, st.pgt_id)) {
		if (dep.source_type != "TABLE" && dep.source_type != "STREAM_TABLE")
			continue;
		std::string buf = QuoteQualified("pgtrickle_changes", cdc::BufferName(dep.source_relid));
		parts.push_back("(SELECT ROW(pg_catalog.count(*), COALESCE(pg_catalog.bool_or(b.\"__pgt_op\" "
		                "OPERATOR(pg_catalog.=) 'T'), false))::text FROM " +
		                buf + " b WHERE " + BufferWindowPredicate("b", true) + ")");
		cp.census_sources.push_back(dep.source_relid);
	}
	cp.census_sql = parts.empty() ? "SELECT NULL::text WHERE false" : "SELECT " + Join(parts, ", ");
	pg::SqlParams types = FrontierParamTypes();
	cp.census = pg::PrepareKept(cp.census_sql, types);
	// The delta for ordinary windows: planned once (planning a delta over many joins can cost more than
	// running it on a few changed rows). Its cost depends little on the window's size below the
	// large-window threshold; the large-window variant is planned by plan_cache_mode.
	cp.apply = pg::PrepareKept(cp.apply_sql, types, guc::generic_delta_plans ? CURSOR_OPT_GENERIC_PLAN : 0);
	if (!cp.apply_large_sql.empty())
		cp.apply_large = pg::PrepareKept(cp.apply_large_sql, types);
	cp.key = key;
	return cp;
}

double
MsSince(int64_t start) {
	int64_t now = pg::PgCall([]() { return GetCurrentTimestamp(); });
	return static_cast<double>(now - start) / 1000.0;
}

// The delta's budget (core/adaptive.hpp): a timer that, when it fires, asks for a query cancel the way
// PostgreSQL's own statement_timeout does, and a flag telling that cancel from one a user asked for.
volatile sig_atomic_t budget_expired = 0;
TimeoutId budget_timeout = MAX_TIMEOUTS; // registered on first use

void
BudgetTimeoutHandler() {
	budget_expired = 1;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

// Runs fn in a subtransaction with a budget of `ms`. True if it completed (its work kept); false if
// the budget ran out (its work rolled back). Any other error, a user's cancel included, propagates.
template <typename F>
bool
RunWithinBudget(double ms, F &&fn) {
	pg::PgCall([&]() {
		if (budget_timeout == MAX_TIMEOUTS)
			budget_timeout = RegisterTimeout(USER_TIMEOUT, BudgetTimeoutHandler);
	});
	pg::SubxactState sx = pg::BeginSubtransaction();
	// The timer is disarmed on every path (disable_timeout only touches the timer list, so it is safe
	// with an error pending): one left armed would cancel whatever statement runs when it fires.
	struct Disarm {
		~Disarm() {
			disable_timeout(budget_timeout, false);
		}
	};
	try {
		{
			budget_expired = 0;
			Disarm disarm;
			int timeout_ms = static_cast<int>(std::min(ms, 2e9)) + 1;
			pg::PgCall([&]() { enable_timeout_after(budget_timeout, timeout_ms); });
			fn();
		}
		// Fired after the work finished but before it was disarmed: that cancel is ours, not wanted.
		if (budget_expired)
			QueryCancelPending = false;
		pg::CommitSubtransaction(sx);
		return true;
	} catch (const pg::PgError &e) {
		bool ours = budget_expired && e.Sqlerrcode() == ERRCODE_QUERY_CANCELED;
		pg::ClearPgErrorPending();
		pg::RollbackSubtransaction(sx);
		if (!ours)
			pg::ThrowPgError(e.Data());
		return false;
	} catch (...) {
		pg::ClearPgErrorPending();
		pg::RollbackSubtransaction(sx);
		throw;
	}
}

struct Census {
	int64_t changes = 0;
	std::optional<Oid> truncated;
	std::optional<Oid> largest_source;
	double largest_ratio = 0;
	double largest_rows = 0; // PostgreSQL's estimate of the largest changed source's rows (0: unknown)
};

// PostgreSQL's estimate of a relation's rows (pg_class.reltuples, from the syscache: every refresh with
// changes asks); -1 before the first ANALYZE or if the relation is gone.
double
RelTuples(Oid relid) {
	return pg::PgCall([&]() {
		double tuples = -1;
		HeapTuple tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		if (HeapTupleIsValid(tp)) {
			tuples = reinterpret_cast<Form_pg_class>(GETSTRUCT(tp))->reltuples;
			ReleaseSysCache(tp);
		}
		return tuples;
	});
}

Census
CountChanges(pg::SpiSession &spi, CachedPlan &cp, const catalog::StreamTable &st, Snapshot snapshot) {
	Census c;
	if (cp.census_sources.empty())
		return c;
	pg::SpiRows rows;
	spi.ExecPlanWithSnapshot(cp.census, FrontierParams(st), snapshot, &rows);
	for (size_t i = 0; i < cp.census_sources.size(); i++) {
		const std::string &cell = rows.Text(0, i); // "(count,t|f)"
		size_t comma = cell.find(',');
		int64_t n = std::stoll(cell.substr(1, comma - 1));
		bool trunc = cell.size() > comma + 1 && cell[comma + 1] == 't';
		c.changes += n;
		if (trunc && !c.truncated)
			c.truncated = cp.census_sources[i];
		if (n > 0) {
			double tuples = RelTuples(cp.census_sources[i]);
			double ratio = tuples > 0 ? static_cast<double>(n) / tuples : 0;
			if (ratio > c.largest_ratio) {
				c.largest_ratio = ratio;
				c.largest_source = cp.census_sources[i];
			}
			c.largest_rows = std::max(c.largest_rows, tuples);
		}
	}
	return c;
}

std::string
RelationName(pg::SpiSession &spi, Oid relid) {
	pg::SpiRows r = spi.Query("SELECT $1::pg_catalog.regclass::text", pg::SqlParams().Oid(relid));
	return r.Count() ? r.Text(0, 0) : std::to_string(relid);
}

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

std::string
StorageQuery(pg::SpiSession &spi, const catalog::StreamTable &st) {
	if (st.refresh_mode == "DIFFERENTIAL")
		return GetCachedPlan(spi, st).population_sql;
	return "SELECT * FROM (\n" + st.defining_query + "\n) AS q";
}

RefreshResult
RefreshStreamTable(pg::SpiSession &spi, const catalog::StreamTable &st, InitiatedBy who, Snapshot shared_snapshot) {
	if (st.status == "SUSPENDED" || st.status == "ERROR")
		throw UserError(sqlstate::kObjectNotInPrerequisiteState,
		                "stream table \"" + st.DisplayName() + "\" is " + AsciiLower(st.status), {},
		                "Resume it with pgtrickle.resume_stream_table(" + QuoteLiteral(st.QualifiedName()) + ").");
	int64_t start_time = pg::PgCall([]() { return GetCurrentTimestamp(); });

	// 1. The refresh lock, before the snapshot.
	Oid relid = st.relid;
	pg::PgCall([&]() { LockRelationOid(relid, ExclusiveLock); });
	// The catalog row as of now: another refresh may have advanced the frontier while we waited.
	std::optional<catalog::StreamTable> current = catalog::FindStreamTableById(spi, st.pgt_id);
	if (!current)
		throw UserError(sqlstate::kUndefinedTable, "stream table \"" + st.DisplayName() + "\" no longer exists");
	// WAL-captured sources: their tracking rows are locked before the snapshot, so a decoder that
	// committed before it wrote rows this snapshot sees (see src/cdc/README.md). A scheduler group has
	// done this for all its members before taking the shared snapshot.
	std::vector<Oid> wal_locked;
	if (!shared_snapshot)
		cdc::LockWalSources(spi, {st.pgt_id}, wal_locked);
	// 2. The refresh snapshot. This transaction's own earlier changes are visible in it; the command id
	// marks which of them (see BufferWindowPredicate).
	RegisteredSnapshot snapshot(shared_snapshot);
	if (!shared_snapshot) {
		// Every change the snapshot shows must be in the buffers before the delta is computed.
		bool renewed = false;
		while (cdc::CatchUpWalSources(spi, {st.pgt_id}, snapshot.Get(), wal_locked)) {
			snapshot.Renew();
			renewed = true;
		}
		if (renewed) {
			current = catalog::FindStreamTableById(spi, st.pgt_id);
			if (!current)
				throw UserError(sqlstate::kUndefinedTable, "stream table \"" + st.DisplayName() + "\" no longer exists");
		}
	}
	// Every row this transaction wrote before now (also the captured output of stream tables refreshed
	// earlier in the same transaction, under a shared snapshot) is read by this refresh.
	int64_t snapshot_cid = pg::PgCall([]() { return static_cast<int64_t>(GetCurrentCommandId(false)); });
	int64_t data_timestamp = pg::PgCall([]() { return GetCurrentTimestamp(); });
	// A fixed search_path: the stored query is fully qualified, and anything a user-defined function
	// looks up must not depend on who (or which worker) runs the refresh.
	pg::ScopedSetting search_path("search_path", "pg_catalog, pg_temp");

	RefreshResult result;
	std::optional<std::string> fallback_reason;
	bool differential = current->refresh_mode == "DIFFERENTIAL";
	int64_t delta_rows = 0;
	// AUTO stream tables choose per refresh between the delta and a recomputation (core/adaptive.hpp);
	// an explicit DIFFERENTIAL is kept to.
	bool adaptive = differential && guc::adaptive_refresh && current->requested_refresh_mode == "AUTO";
	AdaptiveChoice choice;
	int64_t consumed_changes = 0;
	int64_t work_start = 0;
	std::optional<double> cancelled_delta_ms; // the delta ran out of its budget (then FULL)

	if (differential && current->is_populated && current->frontier && !current->needs_reinit) {
		CachedPlan &cp = GetCachedPlan(spi, *current);
		Census census = CountChanges(spi, cp, *current, snapshot.Get());
		if (census.truncated) {
			result.action = "FULL";
			fallback_reason = "source " + RelationName(spi, *census.truncated) + " was truncated";
		} else if (census.changes == 0) {
			result.action = "NO_DATA";
		} else if (guc::differential_max_change_ratio > 0 && census.largest_ratio > guc::differential_max_change_ratio) {
			result.action = "FULL";
			char ratio[64];
			snprintf(ratio, sizeof ratio, "%.3f", census.largest_ratio);
			fallback_reason = "changes amount to " + std::string(ratio) + " of source " +
			                  RelationName(spi, *census.largest_source) +
			                  " (above pg_trickle.differential_max_change_ratio)";
		} else if (adaptive && (choice = ChooseAdaptively(current->costs, census.changes)).full) {
			result.action = "FULL";
			fallback_reason = choice.reason;
		} else {
			result.action = "DIFFERENTIAL";
			RefreshWriteScope writing;
			pg::SpiRows counts;
			bool large = guc::delta_variant == guc::kVariantLarge ||
			             (guc::delta_variant == guc::kVariantAuto &&
			              UseLargeWindowVariant(census.changes, guc::large_window_rows, census.largest_rows));
			SPIPlanPtr apply = cp.apply_large && large ? cp.apply_large : cp.apply;
			std::optional<pg::ScopedSetting> capped;
			if (cp.plan.recursive)
				capped.emplace("work_mem", CappedWorkMem(kRecursiveDeltaWorkMemKb));
			consumed_changes = census.changes;
			work_start = pg::PgCall([]() { return GetCurrentTimestamp(); });
			auto run_delta = [&]() { spi.ExecPlanWithSnapshot(apply, FrontierParams(*current), snapshot.Get(), &counts); };
			double budget = adaptive ? DeltaBudgetMs(current->costs) : 0;
			bool done = true;
			if (budget > 0)
				done = RunWithinBudget(budget, run_delta);
			else
				run_delta();
			capped.reset();
			if (done) {
				result.rows_inserted = counts.Int64(0, 0);
				result.rows_deleted = counts.Int64(0, 1);
				delta_rows = counts.Int64(0, 2);
			} else {
				cancelled_delta_ms = MsSince(work_start);
				result.action = "FULL";
				fallback_reason = BudgetExceededReason(current->costs, consumed_changes, *cancelled_delta_ms);
			}
		}
	} else {
		// A reinitialisation (after DDL on a source, or a restore) is a full recompute, recorded as such.
		result.action = current->needs_reinit && current->is_populated ? "REINITIALIZE" : "FULL";
		if (differential)
			fallback_reason = !current->is_populated ? "not populated yet"
			                  : current->needs_reinit
			                      ? "reinitialization requested (a source's columns or partitions changed, the "
			                        "database was restored from a dump, or WAL capture of a source fell back to triggers)"
			                      : "no frontier to read changes from";
	}

	if (result.action == "FULL" || result.action == "REINITIALIZE") {
		std::string population = StorageQuery(spi, *current);
		RefreshWriteScope writing;
		pg::SqlParams none;
		work_start = pg::PgCall([]() { return GetCurrentTimestamp(); });
		result.rows_deleted =
		    static_cast<int64_t>(spi.ExecWithSnapshot("DELETE FROM " + current->QualifiedName(), none, snapshot.Get()));
		result.rows_inserted = static_cast<int64_t>(
		    spi.ExecWithSnapshot("INSERT INTO " + current->QualifiedName() + "\n" + population, none, snapshot.Get()));
	}

	// The time of the work itself (the delta, or the recomputation), for the adaptive choice.
	RefreshCosts costs = current->costs;
	if (result.action != "NO_DATA") {
		double ms = MsSince(work_start);
		costs = cancelled_delta_ms ? AfterCancelledDelta(costs, consumed_changes, *cancelled_delta_ms, ms)
		        : result.action == "DIFFERENTIAL" ? AfterDifferential(costs, consumed_changes, ms, choice.probe)
		                                          : AfterFull(costs, ms, adaptive && choice.full);
	}

	pg::SpiRows frontier;
	spi.ExecWithSnapshot("SELECT pg_catalog.pg_current_snapshot()::text", pg::SqlParams(), snapshot.Get(), &frontier);

	// The frontier and the history row, through statements prepared once per backend.
	static SPIPlanPtr update_plan = nullptr;
	static SPIPlanPtr history_plan = nullptr;
	pg::SqlParams p;
	p.Text(frontier.Text(0, 0)).TimestampTz(data_timestamp).Int64(st.pgt_id).Int64(snapshot_cid);
	p.OptFloat8(costs.full_ms).OptFloat8(costs.diff_ms).OptInt64(costs.diff_changes).Int64(costs.full_streak);
	if (!update_plan)
		update_plan = pg::PrepareKept(
		    "UPDATE pgtrickle.pgt_stream_tables SET frontier = $1::pg_catalog.pg_snapshot, data_timestamp = $2, "
		    "frontier_xid = pg_catalog.pg_current_xact_id(), frontier_cid = $4, "
		    "last_refresh_at = pg_catalog.now(), is_populated = true, needs_reinit = false, consecutive_errors = 0, "
		    "status = CASE WHEN status = 'INITIALIZING' THEN 'ACTIVE' ELSE status END, last_full_ms = $5, "
		    "last_differential_ms = $6, last_differential_changes = $7, adaptive_full_streak = $8 WHERE pgt_id = $3",
		    p);
	spi.ExecPlan(update_plan, p);

	pg::SqlParams h;
	h.Int64(st.pgt_id).TimestampTz(data_timestamp).TimestampTz(start_time).Text(result.action)
	    .Int64(result.rows_inserted).Int64(result.rows_deleted).Text(InitiatedByText(who))
	    .Bool(fallback_reason.has_value()).OptText(fallback_reason).Int64(delta_rows);
	if (!history_plan)
		history_plan = pg::PrepareKept(
		    "INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, data_timestamp, start_time, end_time, action, "
		    "rows_inserted, rows_deleted, status, initiated_by, was_full_fallback, fallback_reason, delta_row_count) "
		    "VALUES ($1, $2, $3, pg_catalog.clock_timestamp(), $4, $5, $6, 'COMPLETED', $7, $8, $9, $10)",
		    h);
	spi.ExecPlan(history_plan, h);

	// Buffer rows no consumer needs any more. Also after NO_DATA: this consumer's frontier moved, and
	// it may have been the one holding back rows the others have consumed.
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
	throw UserError(sqlstate::kWrongObjectType, std::string("cannot ") + op + " stream table \"" + relname + "\"",
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
