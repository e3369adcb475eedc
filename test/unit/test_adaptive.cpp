// Unit tests for the adaptive DIFFERENTIAL/FULL choice (src/core/adaptive.cpp).
#include "core/adaptive.hpp"

#include <gtest/gtest.h>

namespace pgtrickle {
namespace {

RefreshCosts
Costs(double full_ms, double diff_ms, int64_t diff_changes, int64_t streak = 0) {
	RefreshCosts c;
	c.full_ms = full_ms;
	c.diff_ms = diff_ms;
	c.diff_changes = diff_changes;
	c.full_streak = streak;
	return c;
}

TEST(Adaptive, NothingMeasuredMeansDifferential) {
	EXPECT_FALSE(ChooseAdaptively(RefreshCosts{}, 1000000).full);
	RefreshCosts only_full;
	only_full.full_ms = 1;
	EXPECT_FALSE(ChooseAdaptively(only_full, 1000000).full);
	RefreshCosts only_diff;
	only_diff.diff_ms = 1000;
	only_diff.diff_changes = 1;
	EXPECT_FALSE(ChooseAdaptively(only_diff, 1000000).full);
}

TEST(Adaptive, FullWhenTheDeltaIsKnownToCostMore) {
	// 500 ms for 10,000 changes; FULL 50 ms.
	RefreshCosts c = Costs(50, 500, 10000);
	AdaptiveChoice same = ChooseAdaptively(c, 10000);
	EXPECT_TRUE(same.full);
	EXPECT_DOUBLE_EQ(same.lower_bound_ms, 500);
	EXPECT_NE(same.reason.find("more than the last FULL refresh (50.0 ms)"), std::string::npos) << same.reason;
	EXPECT_TRUE(ChooseAdaptively(c, 50000).full); // more changes: at least as slow
	// Fewer changes: the sample scaled down proportionally is the lower bound.
	EXPECT_TRUE(ChooseAdaptively(c, 1001).full);  // >= 50.05 ms
	EXPECT_FALSE(ChooseAdaptively(c, 1000).full); // 50 ms: not more than FULL
	EXPECT_FALSE(ChooseAdaptively(c, 10).full);
}

TEST(Adaptive, SmallDeltasAreNeverSwitched) {
	// 6 ms against 1 ms for FULL: slower, but under kAdaptiveMinMs.
	RefreshCosts c = Costs(1, 6, 100);
	EXPECT_FALSE(ChooseAdaptively(c, 100).full);
	c = Costs(1, 12, 100);
	EXPECT_TRUE(ChooseAdaptively(c, 100).full);
	EXPECT_FALSE(ChooseAdaptively(c, 80).full); // 9.6 ms
}

TEST(Adaptive, DifferentialWhenItWasCheaper) {
	RefreshCosts c = Costs(200, 20, 10000);
	EXPECT_FALSE(ChooseAdaptively(c, 10000).full);
	// More changes than the sample: the lower bound stays the sample (no extrapolation upwards).
	EXPECT_FALSE(ChooseAdaptively(c, 1000000).full);
}

TEST(Adaptive, ProbesAfterSixteenThirtyTwoSixtyFourFullRefreshes) {
	RefreshCosts c = Costs(50, 500, 10000);
	int probes = 0;
	std::vector<int64_t> at;
	for (int i = 0; i < 200; i++) {
		AdaptiveChoice ch = ChooseAdaptively(c, 10000);
		if (ch.probe) {
			EXPECT_FALSE(ch.full);
			probes++;
			at.push_back(i);
			c = AfterDifferential(c, 10000, 500, true); // still slow
		} else {
			ASSERT_TRUE(ch.full);
			c = AfterFull(c, 50, true);
		}
	}
	EXPECT_EQ(at, (std::vector<int64_t>{16, 32, 64, 128}));
	EXPECT_EQ(probes, 4);
}

TEST(Adaptive, ACheapProbeReturnsToDifferential) {
	RefreshCosts c = Costs(50, 500, 10000, kAdaptiveFirstProbe);
	AdaptiveChoice ch = ChooseAdaptively(c, 10000);
	ASSERT_TRUE(ch.probe);
	c = AfterDifferential(c, 10000, 5, true); // an index made the delta cheap
	ch = ChooseAdaptively(c, 10000);
	EXPECT_FALSE(ch.full);
	EXPECT_FALSE(ch.probe);
	c = AfterDifferential(c, 10000, 5, false);
	EXPECT_EQ(c.full_streak, 0);
}

TEST(Adaptive, FewerChangesReturnToDifferential) {
	RefreshCosts c = Costs(50, 500, 10000);
	ASSERT_TRUE(ChooseAdaptively(c, 10000).full);
	c = AfterFull(c, 50, true);
	EXPECT_FALSE(ChooseAdaptively(c, 100).full); // 5 ms at most by the bound
}

TEST(Adaptive, AFullRefreshRenewsItsTime) {
	RefreshCosts c = Costs(50, 500, 10000);
	c = AfterFull(c, 800, false); // the data grew; a reinitialisation took 800 ms
	EXPECT_FALSE(ChooseAdaptively(c, 10000).full);
	EXPECT_EQ(c.full_streak, 0);
}

TEST(Adaptive, ARefreshWithoutChangesKeepsTheSample) {
	RefreshCosts c = Costs(50, 500, 10000);
	c = AfterDifferential(c, 0, 1, false);
	EXPECT_EQ(*c.diff_changes, 10000);
	EXPECT_DOUBLE_EQ(*c.diff_ms, 500);
}

} // namespace
} // namespace pgtrickle

namespace pgtrickle {
namespace {

TEST(AdaptiveBudget, NoneWithoutAFullTime) {
	EXPECT_EQ(DeltaBudgetMs(RefreshCosts{}), 0);
}

TEST(AdaptiveBudget, TwiceTheFullTimeAtLeastTheFloor) {
	RefreshCosts c;
	c.full_ms = 10;
	EXPECT_DOUBLE_EQ(DeltaBudgetMs(c), kDeltaBudgetFloorMs);
	c.full_ms = 5000;
	EXPECT_DOUBLE_EQ(DeltaBudgetMs(c), kDeltaBudgetFactor * 5000);
}

TEST(AdaptiveBudget, ACancelledDeltaIsALowerBoundThatChoosesFull) {
	RefreshCosts c;
	c.full_ms = 10;
	// Never measured: the delta runs, is cancelled at its budget, and the refresh recomputes.
	ASSERT_FALSE(ChooseAdaptively(c, 5000).full);
	std::string reason = BudgetExceededReason(c, 5000, 100.4);
	EXPECT_NE(reason.find("cancelled after 100.4 ms, past its budget of 100.0 ms"), std::string::npos) << reason;
	c = AfterCancelledDelta(c, 5000, 100.4, 12);
	EXPECT_EQ(*c.diff_changes, 5000);
	EXPECT_DOUBLE_EQ(*c.diff_ms, 100.4);
	EXPECT_DOUBLE_EQ(*c.full_ms, 12);
	EXPECT_EQ(c.full_streak, 1);
	EXPECT_TRUE(ChooseAdaptively(c, 5000).full);  // at least 100.4 ms > 12 ms
	EXPECT_FALSE(ChooseAdaptively(c, 500).full);  // at least 10.0 ms: not known to cost more
}

} // namespace
} // namespace pgtrickle

namespace pgtrickle {
namespace {

TEST(LargeWindowVariant, FollowsTheSquareRootOfTheLargestSource) {
	// TPC-H SF 0.1 after a 1 % cycle: ~20,000 changes, lineitem 600,000 rows -> large.
	EXPECT_TRUE(UseLargeWindowVariant(20000, 1000, 600000));
	// SF 1 after a 0.01 % cycle: ~1,800 changes, lineitem 6,000,000 rows -> default.
	EXPECT_FALSE(UseLargeWindowVariant(1800, 1000, 6000000));
	// The boundary: 4 * sqrt(6,000,000) = 9,798.
	EXPECT_FALSE(UseLargeWindowVariant(9797, 1000, 6000000));
	EXPECT_TRUE(UseLargeWindowVariant(9798, 1000, 6000000));
}

TEST(LargeWindowVariant, TheSettingIsTheFloor) {
	EXPECT_FALSE(UseLargeWindowVariant(999, 1000, 10));
	EXPECT_TRUE(UseLargeWindowVariant(1000, 1000, 10));
	// Unknown size (never analysed): the floor alone.
	EXPECT_TRUE(UseLargeWindowVariant(1000, 1000, -1));
	EXPECT_TRUE(UseLargeWindowVariant(1000, 1000, 0));
}

} // namespace
} // namespace pgtrickle
