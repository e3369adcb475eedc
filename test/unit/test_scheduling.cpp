// Unit tests for the scheduler's tick planning (src/core/scheduling.cpp).
#include "core/scheduling.hpp"

#include "core/errors.hpp"

#include <gtest/gtest.h>

namespace pgtrickle {
namespace {

SchedNode
Node(int64_t id, const char *schedule, double last, std::vector<int64_t> upstream = {}) {
	SchedNode n;
	n.id = id;
	n.schedule = ParseSchedule(schedule, 1);
	n.last_refresh = last;
	n.upstream = std::move(upstream);
	return n;
}

TEST(Scheduling, TopologicalOrderPutsUpstreamFirst) {
	std::vector<SchedNode> nodes{Node(3, "1s", 0, {2}), Node(1, "1s", 0), Node(2, "1s", 0, {1})};
	EXPECT_EQ(TopologicalOrder(nodes), (std::vector<int64_t>{1, 2, 3}));
}

TEST(Scheduling, CycleIsRejected) {
	std::vector<SchedNode> nodes{Node(1, "1s", 0, {2}), Node(2, "1s", 0, {1})};
	try {
		TopologicalOrder(nodes);
		FAIL() << "expected a cycle error";
	} catch (const UserError &e) {
		EXPECT_STREQ(e.Sqlstate(), "42P19");
	}
}

TEST(Scheduling, DurationDueAfterInterval) {
	std::vector<SchedNode> nodes{Node(1, "30s", 100)};
	EXPECT_FALSE(PlanTick(nodes, 129).due.count(1));
	EXPECT_TRUE(PlanTick(nodes, 130).due.count(1));
}

TEST(Scheduling, NextDueIsEarliestFutureDeadline) {
	std::vector<SchedNode> nodes{Node(1, "30s", 100), Node(2, "10s", 100), Node(3, "calculated", 100, {2})};
	EXPECT_DOUBLE_EQ(PlanTick(nodes, 105).next_due, 110);
	EXPECT_DOUBLE_EQ(PlanTick(nodes, 115).next_due, 130); // node 2 is due now; node 1 next
}

TEST(Scheduling, CronDueOnceFired) {
	// @hourly: last refresh 00:30 UTC on day 0 fires next at 01:00.
	std::vector<SchedNode> nodes{Node(1, "@hourly", 1800)};
	EXPECT_FALSE(PlanTick(nodes, 3599).due.count(1));
	EXPECT_TRUE(PlanTick(nodes, 3600).due.count(1));
}

TEST(Scheduling, CalculatedPulledThroughChainByDueConsumer) {
	// 1 (calculated) -> 2 (calculated) -> 3 (every 10s)
	std::vector<SchedNode> nodes{Node(1, "calculated", 0), Node(2, "calculated", 0, {1}), Node(3, "10s", 0, {2})};
	TickPlan early = PlanTick(nodes, 5);
	EXPECT_TRUE(early.due.empty());
	EXPECT_TRUE(early.on_change.empty()); // pulled ones wait for their consumer
	TickPlan later = PlanTick(nodes, 10);
	EXPECT_EQ(later.due, (std::set<int64_t>{1, 2, 3}));
	EXPECT_EQ(later.order, (std::vector<int64_t>{1, 2, 3}));
}

TEST(Scheduling, CalculatedWithoutConsumersRefreshesOnChange) {
	std::vector<SchedNode> nodes{Node(1, "calculated", 0), Node(2, "calculated", 0, {1})};
	TickPlan p = PlanTick(nodes, 1000);
	EXPECT_TRUE(p.due.empty());
	EXPECT_EQ(p.on_change, (std::set<int64_t>{1, 2}));
}

TEST(Scheduling, OnChangeRespectsMinimumInterval) {
	std::vector<SchedNode> nodes{Node(1, "calculated", 100)};
	EXPECT_TRUE(PlanTick(nodes, 101, 5).on_change.empty());
	EXPECT_EQ(PlanTick(nodes, 105, 5).on_change, (std::set<int64_t>{1}));
}

TEST(Scheduling, UnpopulatedIsDueAndSuspendedSkipped) {
	std::vector<SchedNode> nodes{Node(1, "1h", 0), Node(2, "1s", 0)};
	nodes[0].populated = false;
	nodes[1].active = false;
	TickPlan p = PlanTick(nodes, 1);
	EXPECT_TRUE(p.due.count(1));
	EXPECT_FALSE(p.due.count(2));
	EXPECT_EQ(p.order, (std::vector<int64_t>{1}));
}

TEST(Scheduling, BackoffDelaysRetry) {
	std::vector<SchedNode> nodes{Node(1, "1s", 0)};
	nodes[0].not_before = 50;
	EXPECT_FALSE(PlanTick(nodes, 49).due.count(1));
	EXPECT_TRUE(PlanTick(nodes, 50).due.count(1));
	EXPECT_DOUBLE_EQ(RetryBackoffSeconds(1, 2, 60), 2);
	EXPECT_DOUBLE_EQ(RetryBackoffSeconds(3, 2, 60), 8);
	EXPECT_DOUBLE_EQ(RetryBackoffSeconds(10, 2, 60), 60);
}

TEST(Scheduling, DiamondPullsAllUpstreamWhateverTheirSchedule) {
	// base table 100 -> 1 (every 5m) and 2 (calculated) -> 3 (every 1s)
	std::vector<SchedNode> nodes{Node(1, "5m", 0), Node(2, "calculated", 0), Node(3, "1s", 0, {1, 2})};
	nodes[0].base_sources = {100};
	nodes[1].base_sources = {100};
	TickPlan p = PlanTick(nodes, 1);
	EXPECT_EQ(p.due, (std::set<int64_t>{1, 2, 3}));
	// Without the shared base table it is not a diamond: the 5-minute one keeps its pace.
	nodes[1].base_sources = {200};
	p = PlanTick(nodes, 1);
	EXPECT_EQ(p.due, (std::set<int64_t>{2, 3}));
}

TEST(Scheduling, ConnectedGroupsInTopologicalOrder) {
	std::vector<SchedNode> nodes{Node(4, "1s", 0), Node(3, "1s", 0, {1}), Node(1, "1s", 0), Node(2, "1s", 0, {3})};
	auto groups = ConnectedGroups(nodes);
	ASSERT_EQ(groups.size(), 2u);
	EXPECT_EQ(groups[0], (std::vector<int64_t>{1, 3, 2}));
	EXPECT_EQ(groups[1], (std::vector<int64_t>{4}));
}

TEST(Scheduling, EffectiveScheduleIsTightestConsumer) {
	// 1 calculated feeds 2 (5m) and 3 (calculated -> 4 at 30s); 5 calculated alone.
	std::vector<SchedNode> nodes{Node(1, "calculated", 0), Node(2, "5m", 0, {1}), Node(3, "calculated", 0, {1}),
	                             Node(4, "30s", 0, {3}), Node(5, "calculated", 0)};
	auto eff = EffectiveSchedules(nodes);
	EXPECT_EQ(eff[1], 30);
	EXPECT_EQ(eff[3], 30);
	EXPECT_EQ(eff[2], 300);
	EXPECT_FALSE(eff[5].has_value());
}

} // namespace
} // namespace pgtrickle
