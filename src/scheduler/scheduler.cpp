// Launcher and per-database scheduler background workers (see README.md).
#include "scheduler/scheduler.hpp"

#include "api/restore.hpp"
#include "catalog/catalog.hpp"
#include "cdc/cdc.hpp"
#include "core/schedule.hpp"
#include "core/dvm_plan.hpp"
#include "core/scheduling.hpp"
#include "core/sql_text.hpp"
#include "guc.hpp"
#include "pg/bridge.hpp"
#include "pg/spi.hpp"
#include "pg/subxact.hpp"
#include "refresh/refresh.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/lmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace pgtrickle::scheduler {

namespace {

double
NowSeconds() {
	return static_cast<double>(GetCurrentTimestamp()) / 1e6 + 946684800.0; // PostgreSQL epoch -> Unix
}

void
ReloadIfRequested() {
	if (ConfigReloadPending) {
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

// --- Launcher ----------------------------------------------------------------------------------------

// SIGUSR2 from a backend that created a stream table: start schedulers without the probe delay.
volatile sig_atomic_t rescan_requested = false;

struct DbWorker {
	BackgroundWorkerHandle *handle = nullptr;
	double stopped_at = 0;
};

bool
StartScheduler(Oid dboid, BackgroundWorkerHandle **handle) {
	BackgroundWorker worker;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, sizeof(worker.bgw_library_name), "pg_trickle");
	snprintf(worker.bgw_function_name, sizeof(worker.bgw_function_name), "pg_trickle_scheduler_main");
	snprintf(worker.bgw_name, sizeof(worker.bgw_name), "pg_trickle scheduler (database %u)", dboid);
	snprintf(worker.bgw_type, sizeof(worker.bgw_type), "pg_trickle scheduler");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

// Databases that accept connections (shared catalog scan; the launcher has no database).
std::vector<Oid>
ListDatabases() {
	std::vector<Oid> out;
	StartTransactionCommand();
	Relation rel = table_open(DatabaseRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
	HeapTuple tup;
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
		auto *db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
		if (db->datallowconn && !db->datistemplate)
			out.push_back(db->oid);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return out;
}

void
LauncherLoop() {
	std::map<Oid, DbWorker> workers;
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		ReloadIfRequested();
		bool rescan = rescan_requested;
		rescan_requested = false;
		if (guc::scheduler_enabled) {
			double now = NowSeconds();
			std::vector<Oid> dbs = ListDatabases();
			for (Oid db : dbs) {
				DbWorker &w = workers[db];
				if (w.handle) {
					pid_t pid;
					if (GetBackgroundWorkerPid(w.handle, &pid) != BGWH_STOPPED)
						continue;
					pfree(w.handle);
					w.handle = nullptr;
					w.stopped_at = now;
				}
				// A scheduler that exited (no extension there) is probed again later.
				if (!rescan && w.stopped_at > 0 && now - w.stopped_at < 10)
					continue;
				BackgroundWorkerHandle *h = nullptr;
				if (StartScheduler(db, &h))
					w.handle = h;
				else
					ereport(WARNING, (errmsg("pg_trickle: could not start a scheduler for database %u", db),
					                  errhint("Raise max_worker_processes.")));
			}
		}
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

// --- Scheduler ---------------------------------------------------------------------------------------

struct Backoff {
	double not_before = 0;
};

std::map<int64_t, Backoff> &
Backoffs() {
	static std::map<int64_t, Backoff> b;
	return b;
}

bool
ExtensionInstalled() {
	StartTransactionCommand();
	bool installed = OidIsValid(get_extension_oid("pg_trickle", true));
	CommitTransactionCommand();
	return installed;
}

// Per captured source: "does the buffer hold rows this frontier has not consumed?", prepared once per
// scheduler (a tick over 100 idle stream tables costs 100 executions of a kept plan, no parsing).
std::map<Oid, SPIPlanPtr> &
PendingPlans() {
	static std::map<Oid, SPIPlanPtr> plans;
	return plans;
}

bool
SourceHasPending(pg::SpiSession &spi, Oid source, const pg::SqlParams &frontier) {
	SPIPlanPtr &plan = PendingPlans()[source];
	if (!plan) {
		pg::SqlParams types;
		types.Null(PG_SNAPSHOTOID).Null(XID8OID).Null(INT8OID);
		plan = pg::PrepareKept("SELECT (" +
		                           BufferWindowProbe(QuoteQualified("pgtrickle_changes", cdc::BufferName(source))) +
		                           ") IS NOT NULL",
		                       types);
	}
	pg::SpiRows r;
	spi.ExecPlanWithSnapshot(plan, frontier, GetActiveSnapshot(), &r);
	return r.Bool(0, 0);
}

void Notify(pg::SpiSession &spi, const char *event, int64_t pgt_id, const std::string &extra_json_pairs);

// stale_data alert: an active stream table whose data is older than twice its effective schedule
// (once per episode: again only after it has been fresh in between).
void
AlertStale(pg::SpiSession &spi, const std::vector<SchedNode> &nodes, double now) {
	static std::set<int64_t> alerted;
	auto effective = EffectiveSchedules(nodes);
	for (const auto &n : nodes) {
		std::optional<int64_t> e = effective[n.id];
		bool stale = n.active && e && n.last_refresh >= 0 && now - n.last_refresh > 2.0 * static_cast<double>(*e);
		if (!stale) {
			alerted.erase(n.id);
			continue;
		}
		if (!alerted.insert(n.id).second)
			continue;
		char payload[160];
		snprintf(payload, sizeof payload, "{\"staleness_seconds\": %.1f, \"schedule_seconds\": %lld}", now - n.last_refresh,
		         static_cast<long long>(*e));
		Notify(spi, "stale_data", n.id, payload);
	}
}

// Reads the graph and decides what this tick refreshes. Stream tables that follow their sources
// (on_change) are kept in the plan only if a source has changes they have not consumed.
struct Tick {
	TickPlan plan;
	std::vector<std::vector<int64_t>> groups; // connected stream tables, upstream first
	std::map<int64_t, std::vector<int64_t>> upstream;
	std::map<int64_t, std::string> names;
	std::map<int64_t, Oid> relids;
};

Tick
PlanThisTick() {
	Tick tick;
	std::map<int64_t, std::string> &names = tick.names;
	std::vector<SchedNode> nodes;
	TickPlan plan;
	std::map<int64_t, std::vector<int64_t>> upstream;
	{
		pg::SpiSession spi;
		if (api::CatalogNeedsRestore(spi)) {
			int64_t n = api::RestoreStreamTables(spi);
			ereport(LOG, (errmsg("pg_trickle: re-linked %lld restored stream tables", static_cast<long long>(n))));
			return tick; // plan from the re-linked catalog in the next tick (this snapshot predates it)
		}
		pg::SpiRows rows = spi.Query(
		    "SELECT pgt_id, status, COALESCE(schedule, 'calculated'), is_populated, "
		    "COALESCE(extract(epoch FROM last_refresh_at)::float8, -1), pgt_schema || '.' || pgt_name, "
		    "frontier::text, frontier_xid::text, frontier_cid, needs_reinit, consecutive_errors "
		    "FROM pgtrickle.pgt_stream_tables ORDER BY pgt_id",
		    {}, true);
		pg::SpiRows captured = spi.Query("SELECT pgt_id, source_relid FROM pgtrickle.pgt_dependencies "
		                                 "WHERE source_type IN ('TABLE', 'STREAM_TABLE')",
		                                 {}, true);
		std::map<int64_t, std::vector<Oid>> sources;
		for (size_t i = 0; i < captured.Count(); i++)
			sources[captured.Int64(i, 0)].push_back(static_cast<Oid>(captured.Int64(i, 1)));
		pg::SpiRows relids = spi.Query("SELECT pgt_id, pgt_relid FROM pgtrickle.pgt_stream_tables", {}, true);
		std::set<Oid> st_relids;
		for (size_t i = 0; i < relids.Count(); i++) {
			tick.relids[relids.Int64(i, 0)] = static_cast<Oid>(relids.Int64(i, 1));
			st_relids.insert(static_cast<Oid>(relids.Int64(i, 1)));
		}
		pg::SpiRows edges = spi.Query("SELECT d.pgt_id, up.pgt_id FROM pgtrickle.pgt_dependencies d "
		                              "JOIN pgtrickle.pgt_stream_tables up ON up.pgt_relid = d.source_relid",
		                              {}, true);
		for (size_t i = 0; i < edges.Count(); i++)
			upstream[edges.Int64(i, 0)].push_back(edges.Int64(i, 1));
		for (size_t i = 0; i < rows.Count(); i++) {
			SchedNode n;
			n.id = rows.Int64(i, 0);
			n.active = rows.Text(i, 1) == "ACTIVE";
			try {
				n.schedule = ParseSchedule(rows.Text(i, 2), 0);
			} catch (const UserError &) {
				n.active = false; // a schedule that no longer parses is never due
			}
			n.populated = rows.Bool(i, 3);
			n.last_refresh = rows.Float8(i, 4);
			if (rows.Int64(i, 10) == 0)
				Backoffs().erase(n.id); // resumed (or succeeded) since: no backoff
			n.not_before = Backoffs().count(n.id) ? Backoffs()[n.id].not_before : 0;
			n.upstream = upstream[n.id];
			for (Oid src : sources[n.id])
				if (!st_relids.count(src))
					n.base_sources.push_back(static_cast<int64_t>(src));
			names[n.id] = rows.Text(i, 5);
			nodes.push_back(std::move(n));
		}
		double now = NowSeconds();
		plan = PlanTick(nodes, now, guc::default_schedule_seconds);
		tick.groups = ConnectedGroups(nodes);
		AlertStale(spi, nodes, now);
		tick.upstream = upstream;
		std::set<int64_t> pending;
		for (size_t i = 0; i < rows.Count(); i++) {
			int64_t id = rows.Int64(i, 0);
			if (!plan.on_change.count(id))
				continue;
			if (!rows.Bool(i, 3) || rows.IsNull(i, 6) || rows.Bool(i, 9)) {
				pending.insert(id);
				continue;
			}
			pg::SqlParams frontier;
			frontier.Typed(PG_SNAPSHOTOID, rows.Text(i, 6));
			if (rows.IsNull(i, 7))
				frontier.Null(XID8OID);
			else
				frontier.Typed(XID8OID, rows.Text(i, 7));
			if (rows.IsNull(i, 8))
				frontier.Null(INT8OID);
			else
				frontier.Int64(rows.Int64(i, 8));
			for (Oid src : sources[id])
				if (SourceHasPending(spi, src, frontier)) {
					pending.insert(id);
					break;
				}
		}
		plan.on_change = pending;
	}
	tick.plan = std::move(plan);
	return tick;
}

void
Notify(pg::SpiSession &spi, const char *event, int64_t pgt_id, const std::string &extra_json_pairs) {
	spi.Exec("SELECT pg_catalog.pg_notify('pg_trickle_alert', (pg_catalog.jsonb_build_object('event', $1::text, "
	         "'pgt_schema', st.pgt_schema, 'pgt_name', st.pgt_name, 'st', st.pgt_schema || '.' || st.pgt_name) || "
	         "$3::jsonb)::text) FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = $2",
	         pg::SqlParams().Text(event).Int64(pgt_id).Text(extra_json_pairs.empty() ? "{}" : extra_json_pairs));
}

// Records a failed attempt (in the group's transaction; the attempt's subtransaction was rolled back).
void
RecordFailure(pg::SpiSession &spi, int64_t pgt_id, const std::string &message, double started) {
	pg::SpiRows r = spi.Query(
	    "UPDATE pgtrickle.pgt_stream_tables SET consecutive_errors = consecutive_errors + 1, "
	    "last_error_message = $2, last_error_at = pg_catalog.now(), "
	    "status = CASE WHEN consecutive_errors + 1 >= $3 THEN 'SUSPENDED' ELSE status END "
	    "WHERE pgt_id = $1 RETURNING consecutive_errors, status",
	    pg::SqlParams().Int64(pgt_id).Text(message).Int32(guc::max_consecutive_errors));
	if (r.Count() == 0)
		return;
	int errors = static_cast<int>(r.Int64(0, 0));
	spi.Exec("INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, start_time, end_time, action, status, "
	         "error_message, initiated_by) SELECT $1, pg_catalog.to_timestamp($2), pg_catalog.clock_timestamp(), "
	         "refresh_mode, 'FAILED', $3, 'SCHEDULER' FROM pgtrickle.pgt_stream_tables WHERE pgt_id = $1",
	         pg::SqlParams().Int64(pgt_id).Float8(started).Text(message));
	pg::SpiRows payload = spi.Query("SELECT pg_catalog.jsonb_build_object('error', $1::text, "
	                                "'consecutive_errors', $2::int)::text",
	                                pg::SqlParams().Text(message).Int32(errors));
	Notify(spi, "refresh_failed", pgt_id, payload.Text(0, 0));
	if (r.Text(0, 1) == "SUSPENDED") {
		Notify(spi, "auto_suspended", pgt_id, "{\"consecutive_errors\": " + std::to_string(errors) + "}");
		ereport(WARNING, (errmsg("pg_trickle: stream table suspended after %d consecutive errors", errors)));
	}
	Backoffs()[pgt_id].not_before = NowSeconds() + RetryBackoffSeconds(errors, guc::scheduler_interval_ms / 1000.0, 300.0);
}

// Refreshes the due members of one connected group in one transaction: every member is locked first,
// then one snapshot is taken and shared, so a stream table reading two others that share an ancestor
// sees them at the same moment. Each member runs in a subtransaction: a failure rolls back that member
// only, and the members downstream of it wait for the next tick.
void
RefreshGroup(const Tick &tick, const std::vector<int64_t> &members) {
	double started = NowSeconds();
	SetCurrentStatementStartTimestamp(); // now() of the transaction
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pg_trickle refresh");
	try {
		pg::SpiSession spi;
		for (int64_t id : members) {
			Oid relid = tick.relids.at(id);
			pg::PgCall([&]() { LockRelationOid(relid, ExclusiveLock); });
		}
		// WAL-captured sources: locked before the snapshot, decoded up to it after (src/cdc/README.md).
		std::vector<Oid> wal_locked;
		cdc::LockWalSources(spi, members, wal_locked);
		Snapshot shared = pg::PgCall([]() { return RegisterSnapshot(GetLatestSnapshot()); });
		while (cdc::CatchUpWalSources(spi, members, shared, wal_locked)) {
			Snapshot old = shared;
			shared = pg::PgCall([&]() {
				UnregisterSnapshot(old);
				return RegisterSnapshot(GetLatestSnapshot());
			});
		}
		std::set<int64_t> failed;
		for (int64_t id : members) {
			bool upstream_failed = false;
			for (int64_t up : tick.upstream.count(id) ? tick.upstream.at(id) : std::vector<int64_t>{})
				upstream_failed = upstream_failed || failed.count(up);
			if (upstream_failed) {
				failed.insert(id);
				continue;
			}
			auto error = pg::TrySubtransaction([&]() {
				auto st = catalog::FindStreamTableById(spi, id);
				if (!st || st->status != "ACTIVE")
					return;
				refresh::RefreshResult r =
				    refresh::RefreshStreamTable(spi, *st, refresh::InitiatedBy::Scheduler, shared);
				if (r.action != "NO_DATA")
					Notify(spi, "refresh_completed", id,
				       "{\"action\": \"" + r.action + "\", \"rows_inserted\": " + std::to_string(r.rows_inserted) +
				           ", \"rows_deleted\": " + std::to_string(r.rows_deleted) + "}");
			});
			if (error) {
				failed.insert(id);
				ereport(LOG, (errmsg("pg_trickle: refresh of stream table %s failed: %s", tick.names.at(id).c_str(),
				                     error->c_str())));
				RecordFailure(spi, id, *error, started);
			} else {
				Backoffs().erase(id);
			}
		}
		pg::PgCall([&]() { UnregisterSnapshot(shared); });
	} catch (const std::exception &e) {
		std::string msg = e.what();
		MemoryContextSwitchTo(TopMemoryContext);
		AbortCurrentTransaction();
		pg::ClearPgErrorPending();
		ereport(LOG, (errmsg("pg_trickle: refreshing a group of stream tables failed: %s", msg.c_str())));
		pgstat_report_activity(STATE_IDLE, nullptr);
		return;
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	// Table statistics (autovacuum and ANALYZE decisions, reltuples) see the scheduler's writes.
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, nullptr);
}

// Runs `body` in a transaction of its own, with an SPI session. On an error the transaction is aborted
// and "pg_trickle: <failure>: <error>" logged; returns false then.
template <typename Body>
bool
RunInTransaction(const char *failure, Body &&body) {
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	try {
		pg::SpiSession spi;
		body(spi);
	} catch (const std::exception &e) {
		std::string msg = e.what();
		MemoryContextSwitchTo(TopMemoryContext);
		AbortCurrentTransaction();
		pg::ClearPgErrorPending();
		ereport(LOG, (errmsg("pg_trickle: %s: %s", failure, msg.c_str())));
		return false;
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return true;
}

void
PruneHistory(double &last_prune) {
	double now = NowSeconds();
	if (now - last_prune < 60)
		return;
	last_prune = now;
	(void)RunInTransaction("could not prune refresh history", [](pg::SpiSession &spi) {
		spi.Exec("DELETE FROM pgtrickle.pgt_refresh_history WHERE start_time < pg_catalog.now() - "
		         "pg_catalog.make_interval(days => $1)",
		         pg::SqlParams().Int32(guc::history_retention_days));
	});
}

// True while pg_restore is connected to this database (by its application_name, "pg_restore" unless
// the user set another). The scheduler then does nothing here: re-linking the restored catalog (which
// rebuilds the capture triggers) or moving a source to WAL capture (which drops them) while the
// restore is still creating objects broke it ("trigger pgt_capture_del for table o does not exist"
// at its ALTER TABLE … ENABLE ALWAYS TRIGGER), and a refresh would read half-restored tables.
bool
RestoreRunning() {
	static bool logged = false;
	bool running = false;
	if (!RunInTransaction("could not check for a running pg_restore", [&](pg::SpiSession &spi) {
		    running = spi.Query("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity WHERE datname "
		                        "OPERATOR(pg_catalog.=) pg_catalog.current_database() AND application_name "
		                        "OPERATOR(pg_catalog.=) 'pg_restore' AND pid OPERATOR(pg_catalog.<>) "
		                        "pg_catalog.pg_backend_pid())",
		                        {}, true)
		                  .Bool(0, 0);
	    }))
		return false;
	if (running && !logged)
		ereport(LOG, (errmsg("pg_trickle: pg_restore is connected to this database; the scheduler waits until it is done")));
	logged = running;
	return running;
}

// Change capture transitions (trigger <-> WAL) and decoding of WAL-captured sources, in a transaction
// of its own that starts without writes (creating a replication slot needs that).
void
CdcStep() {
	(void)RunInTransaction("change capture step failed", [](pg::SpiSession &spi) {
		if (!cdc::CdcWorkPossible(spi))
			return;
		for (const auto &e : cdc::AdvanceTransitions(spi))
			ereport(LOG, (errmsg("pg_trickle: change capture of %s: %s -> %s (%s)", e.source.c_str(),
			                     e.previous_mode.c_str(), e.mode.c_str(), e.detail.c_str())));
	});
}

void
SchedulerLoop() {
	double last_prune = 0;
	double next_due = -1;
	MemoryContext tick_cxt = AllocSetContextCreate(TopMemoryContext, "pg_trickle scheduler tick", ALLOCSET_DEFAULT_SIZES);
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		ReloadIfRequested();
		if (!ExtensionInstalled())
			proc_exit(0); // the launcher probes this database again later
		if (guc::scheduler_enabled && !RestoreRunning()) {
			MemoryContextSwitchTo(tick_cxt);
			CdcStep();
			MemoryContextSwitchTo(tick_cxt);
			Tick tick;
			bool planned = false;
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
			try {
				tick = PlanThisTick();
				planned = true;
			} catch (const std::exception &e) {
				std::string msg = e.what();
				MemoryContextSwitchTo(TopMemoryContext);
				AbortCurrentTransaction();
				pg::ClearPgErrorPending();
				ereport(LOG, (errmsg("pg_trickle: scheduler could not plan a tick: %s", msg.c_str())));
			}
			if (planned) {
				PopActiveSnapshot();
				CommitTransactionCommand();
				next_due = tick.plan.next_due;
				for (const auto &group : tick.groups) {
					CHECK_FOR_INTERRUPTS();
					std::vector<int64_t> members;
					for (int64_t id : group)
						if (tick.plan.due.count(id) || tick.plan.on_change.count(id))
							members.push_back(id);
					if (!members.empty())
						RefreshGroup(tick, members);
				}
			}
			PruneHistory(last_prune);
			MemoryContextSwitchTo(TopMemoryContext);
			MemoryContextReset(tick_cxt);
		}
		// Wake for the next tick, or earlier when a schedule falls due before it: a '1s' schedule is
		// honoured to the millisecond, not rounded up to the tick.
		long wait_ms = guc::scheduler_interval_ms;
		if (next_due > 0) {
			double until = (next_due - NowSeconds()) * 1000.0;
			wait_ms = std::max(1L, std::min(wait_ms, static_cast<long>(until) + 1));
		}
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

} // namespace

void
HandleRescanSignal(SIGNAL_ARGS) {
	rescan_requested = true;
	SetLatch(MyLatch);
}

void
WakeLauncher(pg::SpiSession &spi) {
	pg::SpiRows r = spi.Query("SELECT pid FROM pg_catalog.pg_stat_activity WHERE backend_type = 'pg_trickle launcher'",
	                          {}, true);
	for (size_t i = 0; i < r.Count(); i++)
		(void)kill(static_cast<pid_t>(r.Int64(i, 0)), SIGUSR2);
}

void
RegisterLauncher() {
	BackgroundWorker worker;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, sizeof(worker.bgw_library_name), "pg_trickle");
	snprintf(worker.bgw_function_name, sizeof(worker.bgw_function_name), "pg_trickle_launcher_main");
	snprintf(worker.bgw_name, sizeof(worker.bgw_name), "pg_trickle launcher");
	snprintf(worker.bgw_type, sizeof(worker.bgw_type), "pg_trickle launcher");
	RegisterBackgroundWorker(&worker);
}

} // namespace pgtrickle::scheduler

extern "C" {
PGDLLEXPORT void pg_trickle_launcher_main(Datum arg);
PGDLLEXPORT void pg_trickle_scheduler_main(Datum arg);

void
pg_trickle_launcher_main(Datum) {
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGUSR2, pgtrickle::scheduler::HandleRescanSignal);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
	pgstat_report_appname("pg_trickle launcher");
	try {
		pgtrickle::scheduler::LauncherLoop();
	} catch (const std::exception &e) {
		ereport(FATAL, (errmsg("pg_trickle launcher: %s", e.what())));
	}
}

void
pg_trickle_scheduler_main(Datum arg) {
	Oid dboid = DatumGetObjectId(arg);
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pg_trickle scheduler");
	try {
		pgtrickle::scheduler::SchedulerLoop();
	} catch (const std::exception &e) {
		ereport(FATAL, (errmsg("pg_trickle scheduler: %s", e.what())));
	}
}
}
