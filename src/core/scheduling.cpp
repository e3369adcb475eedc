#include "core/scheduling.hpp"
#include "core/core_only.hpp"

#include "core/errors.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace pgtrickle {

namespace {

std::map<int64_t, const SchedNode *>
Index(const std::vector<SchedNode> &nodes) {
	std::map<int64_t, const SchedNode *> out;
	for (const auto &n : nodes)
		out[n.id] = &n;
	return out;
}

std::map<int64_t, std::vector<int64_t>>
Consumers(const std::vector<SchedNode> &nodes) {
	auto index = Index(nodes);
	std::map<int64_t, std::vector<int64_t>> out;
	for (const auto &n : nodes)
		for (int64_t up : n.upstream)
			if (index.count(up))
				out[up].push_back(n.id);
	return out;
}

bool
TimeDue(const SchedNode &n, double now) {
	if (n.last_refresh < 0)
		return true;
	switch (n.schedule.kind) {
	case ScheduleKind::Duration:
		return now - n.last_refresh >= static_cast<double>(n.schedule.seconds);
	case ScheduleKind::Cron: {
		int64_t next = CronNextAfter(n.schedule.cron, static_cast<int64_t>(std::floor(n.last_refresh)));
		return next >= 0 && static_cast<double>(next) <= now;
	}
	case ScheduleKind::Calculated:
		return false;
	}
	return false;
}

// Every stream table upstream of `n`.
std::set<int64_t>
UpstreamClosure(const SchedNode &n, const std::map<int64_t, const SchedNode *> &index) {
	std::set<int64_t> out;
	std::vector<int64_t> stack(n.upstream.begin(), n.upstream.end());
	while (!stack.empty()) {
		int64_t id = stack.back();
		stack.pop_back();
		if (!index.count(id) || !out.insert(id).second)
			continue;
		for (int64_t up : index.at(id)->upstream)
			stack.push_back(up);
	}
	return out;
}

// Everything (stream tables and base relations, tagged apart) reachable upstream through one input.
std::set<std::pair<int, int64_t>>
Ancestry(int64_t st, const std::map<int64_t, const SchedNode *> &index) {
	std::set<std::pair<int, int64_t>> out{{0, st}};
	std::vector<int64_t> stack{st};
	std::set<int64_t> seen;
	while (!stack.empty()) {
		int64_t id = stack.back();
		stack.pop_back();
		if (!index.count(id) || !seen.insert(id).second)
			continue;
		for (int64_t b : index.at(id)->base_sources)
			out.insert({1, b});
		for (int64_t up : index.at(id)->upstream) {
			out.insert({0, up});
			stack.push_back(up);
		}
	}
	return out;
}

// True if two of n's inputs (its stream-table inputs, and its base relations taken together) reach a
// common ancestor.
bool
OverDiamond(const SchedNode &n, const std::map<int64_t, const SchedNode *> &index) {
	std::vector<std::set<std::pair<int, int64_t>>> branches;
	std::set<std::pair<int, int64_t>> own;
	for (int64_t b : n.base_sources)
		own.insert({1, b});
	if (!own.empty())
		branches.push_back(own);
	for (int64_t up : n.upstream)
		if (index.count(up))
			branches.push_back(Ancestry(up, index));
	std::set<std::pair<int, int64_t>> seen;
	for (const auto &b : branches)
		for (const auto &x : b)
			if (!seen.insert(x).second)
				return true;
	return false;
}

// When a duration or cron schedule next falls due (-1 for calculated or never refreshed).
double
NextDue(const SchedNode &n) {
	if (n.last_refresh < 0)
		return -1;
	if (n.schedule.kind == ScheduleKind::Duration)
		return n.last_refresh + static_cast<double>(n.schedule.seconds);
	if (n.schedule.kind == ScheduleKind::Cron) {
		int64_t next = CronNextAfter(n.schedule.cron, static_cast<int64_t>(std::floor(n.last_refresh)));
		return next >= 0 ? static_cast<double>(next) : -1;
	}
	return -1;
}

} // namespace

std::vector<int64_t>
TopologicalOrder(const std::vector<SchedNode> &nodes) {
	auto index = Index(nodes);
	std::map<int64_t, int> state; // 0 new, 1 visiting, 2 done
	std::vector<int64_t> order;
	std::function<void(int64_t)> visit = [&](int64_t id) {
		int &s = state[id];
		if (s == 2)
			return;
		if (s == 1)
			throw UserError(sqlstate::kInvalidRecursion,
			                "stream tables form a cycle through stream table with id " + std::to_string(id));
		s = 1;
		for (int64_t up : index.at(id)->upstream)
			if (index.count(up))
				visit(up);
		state[id] = 2;
		order.push_back(id);
	};
	std::vector<int64_t> ids;
	for (const auto &n : nodes)
		ids.push_back(n.id);
	std::sort(ids.begin(), ids.end());
	for (int64_t id : ids)
		visit(id);
	return order;
}

TickPlan
PlanTick(const std::vector<SchedNode> &nodes, double now, double on_change_min_interval) {
	TickPlan plan;
	auto index = Index(nodes);
	auto consumers = Consumers(nodes);
	std::vector<int64_t> order = TopologicalOrder(nodes);
	auto effective = EffectiveSchedules(nodes);

	// Consumers first: a calculated node is pulled when any consumer is due or pulled; a due node over a
	// diamond pulls everything upstream of it.
	std::set<int64_t> wanted;
	std::set<int64_t> diamond_pulled;
	for (auto it = order.rbegin(); it != order.rend(); ++it) {
		const SchedNode &n = *index.at(*it);
		if (!n.active)
			continue;
		bool due = !n.populated || TimeDue(n, now) || diamond_pulled.count(n.id);
		if (n.schedule.kind == ScheduleKind::Calculated)
			for (int64_t c : consumers[n.id])
				if (wanted.count(c))
					due = true;
		if (!due)
			continue;
		wanted.insert(n.id);
		if (OverDiamond(n, index))
			for (int64_t a : UpstreamClosure(n, index))
				diamond_pulled.insert(a);
	}
	for (int64_t id : order) {
		const SchedNode &n = *index.at(id);
		if (!n.active)
			continue;
		double next = NextDue(n);
		if (next > now && (plan.next_due < 0 || next < plan.next_due))
			plan.next_due = next;
		if (n.not_before > now && (plan.next_due < 0 || n.not_before < plan.next_due))
			plan.next_due = n.not_before;
		plan.order.push_back(id);
		if (now < n.not_before)
			continue;
		if (wanted.count(id))
			plan.due.insert(id);
		else if (n.schedule.kind == ScheduleKind::Calculated && !effective[id] &&
		         (n.last_refresh < 0 || now - n.last_refresh >= on_change_min_interval))
			plan.on_change.insert(id); // no consumer sets a pace: follow the sources
	}
	return plan;
}

std::vector<std::vector<int64_t>>
ConnectedGroups(const std::vector<SchedNode> &nodes) {
	auto index = Index(nodes);
	std::map<int64_t, int64_t> parent;
	std::function<int64_t(int64_t)> find = [&](int64_t x) {
		while (parent[x] != x)
			x = parent[x] = parent[parent[x]];
		return x;
	};
	for (const auto &n : nodes)
		parent[n.id] = n.id;
	for (const auto &n : nodes)
		for (int64_t up : n.upstream)
			if (index.count(up))
				parent[find(n.id)] = find(up);
	std::map<int64_t, std::vector<int64_t>> groups;
	for (int64_t id : TopologicalOrder(nodes))
		groups[find(id)].push_back(id);
	std::vector<std::vector<int64_t>> out;
	for (auto &g : groups)
		out.push_back(std::move(g.second));
	return out;
}

std::map<int64_t, std::optional<int64_t>>
EffectiveSchedules(const std::vector<SchedNode> &nodes) {
	auto index = Index(nodes);
	auto consumers = Consumers(nodes);
	std::vector<int64_t> order = TopologicalOrder(nodes);
	std::map<int64_t, std::optional<int64_t>> eff;
	for (auto it = order.rbegin(); it != order.rend(); ++it) {
		const SchedNode &n = *index.at(*it);
		std::optional<int64_t> e;
		if (n.schedule.kind == ScheduleKind::Duration) {
			e = n.schedule.seconds;
		} else if (n.schedule.kind == ScheduleKind::Calculated) {
			for (int64_t c : consumers[n.id])
				if (eff[c] && (!e || *eff[c] < *e))
					e = eff[c];
		}
		eff[n.id] = e;
	}
	return eff;
}

double
RetryBackoffSeconds(int consecutive_errors, double base, double cap) {
	if (consecutive_errors <= 0)
		return 0;
	double d = base * std::pow(2.0, consecutive_errors - 1);
	return std::min(d, cap);
}

} // namespace pgtrickle
