// What the scheduler refreshes in one tick, and in which order (pure logic, unit-tested).
//
// Rules (docs/SQL_REFERENCE.md, "Schedules"):
//  - only ACTIVE stream tables are considered; one in error backoff waits until its retry time;
//  - an unpopulated stream table is due at once;
//  - a duration schedule is due when that long has passed since the last refresh;
//  - a cron schedule is due when it has fired since the last refresh;
//  - a calculated stream table is pulled by its consumers: it is due in every tick in which one of its
//    downstream stream tables (directly or through other calculated ones) is due, so the consumer reads
//    fresh data. One that nobody pulls is refreshed when its sources have pending changes;
//  - diamonds: a due stream table whose inputs share an ancestor (a stream table or a base table
//    reached through two different inputs) pulls every stream table upstream of it into the same tick,
//    whatever their schedules, so it never combines two versions of the shared ancestor;
//  - refreshes run upstream first (topological order), so a change reaches the bottom of a chain in
//    one tick; the scheduler refreshes each connected group under one snapshot.
// Its effective schedule (for monitoring) is the tightest duration among its consumers' effective
// schedules, transitively; none means "when its sources change".
#pragma once

#include "core/schedule.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace pgtrickle {

struct SchedNode {
	int64_t id = 0;
	Schedule schedule{ScheduleKind::Calculated, 0, {}, "calculated"};
	bool active = true;
	bool populated = true;
	double last_refresh = -1;  // Unix seconds; < 0 = never
	double not_before = 0;     // retry backoff: not before this time
	std::vector<int64_t> upstream;     // stream tables this one reads
	std::vector<int64_t> base_sources; // other relations it reads (any ids distinct from stream table ids' space)
};

struct TickPlan {
	std::vector<int64_t> order;  // every active node, upstream first
	std::set<int64_t> due;       // refresh now
	std::set<int64_t> on_change; // refresh if its sources have pending changes
	double next_due = -1;        // earliest future time a duration/cron schedule falls due (-1: none)
};

// Groups of nodes connected through stream-table edges, each in topological order.
std::vector<std::vector<int64_t>> ConnectedGroups(const std::vector<SchedNode> &nodes);

// Throws UserError (42P19) naming a node on a cycle.
std::vector<int64_t> TopologicalOrder(const std::vector<SchedNode> &nodes);

// `on_change_min_interval`: a calculated stream table no consumer paces is considered for an on-change
// refresh at most this often (seconds since its last refresh; pg_trickle.default_schedule_seconds).
TickPlan PlanTick(const std::vector<SchedNode> &nodes, double now, double on_change_min_interval = 0);

// Effective schedule in seconds for every node (nullopt: refreshed when its sources change).
std::map<int64_t, std::optional<int64_t>> EffectiveSchedules(const std::vector<SchedNode> &nodes);

// Retry delay after `consecutive_errors` failures: base * 2^(n-1), capped at `cap` seconds.
double RetryBackoffSeconds(int consecutive_errors, double base, double cap);

} // namespace pgtrickle
