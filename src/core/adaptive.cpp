#include "core/adaptive.hpp"

#include <algorithm>
#include <cstdio>

#include "core/core_only.hpp"

namespace pgtrickle {

namespace {

bool
IsProbeStreak(int64_t streak) {
	// 16, 32, 64, ...: powers of two from kAdaptiveFirstProbe on.
	return streak >= kAdaptiveFirstProbe && (streak & (streak - 1)) == 0;
}

} // namespace

AdaptiveChoice
ChooseAdaptively(const RefreshCosts &costs, int64_t changes) {
	AdaptiveChoice c;
	if (!costs.full_ms || !costs.diff_ms || !costs.diff_changes || *costs.diff_changes <= 0 || changes <= 0)
		return c; // nothing measured yet: DIFFERENTIAL, which measures
	double scale = std::min(1.0, static_cast<double>(changes) / static_cast<double>(*costs.diff_changes));
	c.lower_bound_ms = *costs.diff_ms * scale;
	if (c.lower_bound_ms <= *costs.full_ms || c.lower_bound_ms < kAdaptiveMinMs)
		return c;
	if (IsProbeStreak(costs.full_streak)) {
		c.probe = true;
		return c;
	}
	c.full = true;
	char buf[320];
	snprintf(buf, sizeof buf,
	         "adaptive: %lld changed rows would take at least %.1f ms differentially (the last DIFFERENTIAL refresh "
	         "took %.1f ms for %lld), more than the last FULL refresh (%.1f ms)",
	         static_cast<long long>(changes), c.lower_bound_ms, *costs.diff_ms,
	         static_cast<long long>(*costs.diff_changes), *costs.full_ms);
	c.reason = buf;
	return c;
}

double
DeltaBudgetMs(const RefreshCosts &costs) {
	if (!costs.full_ms)
		return 0;
	return std::max(kDeltaBudgetFloorMs, kDeltaBudgetFactor * *costs.full_ms);
}

std::string
BudgetExceededReason(const RefreshCosts &costs, int64_t changes, double delta_ms) {
	char buf[320];
	snprintf(buf, sizeof buf,
	         "adaptive: the delta of %lld changed rows was cancelled after %.1f ms, past its budget of %.1f ms "
	         "(%.0f times the last FULL refresh, %.1f ms, at least %.0f ms); recomputed instead",
	         static_cast<long long>(changes), delta_ms, DeltaBudgetMs(costs), kDeltaBudgetFactor,
	         costs.full_ms ? *costs.full_ms : 0.0, kDeltaBudgetFloorMs);
	return buf;
}

bool
UseLargeWindowVariant(int64_t changes, int64_t floor_rows, double largest_rows) {
	double n = static_cast<double>(changes);
	return changes >= floor_rows && n * n >= 16.0 * largest_rows;
}

RefreshCosts
AfterCancelledDelta(RefreshCosts costs, int64_t changes, double delta_ms, double full_ms) {
	if (changes > 0) {
		costs.diff_ms = delta_ms;
		costs.diff_changes = changes;
	}
	return AfterFull(costs, full_ms, true);
}

RefreshCosts
AfterDifferential(RefreshCosts costs, int64_t changes, double ms, bool probe) {
	if (changes > 0) {
		costs.diff_ms = ms;
		costs.diff_changes = changes;
	}
	// A probe keeps the streak counting, so the next probe comes twice as late if FULL still wins.
	if (!probe)
		costs.full_streak = 0;
	else
		costs.full_streak++;
	return costs;
}

RefreshCosts
AfterFull(RefreshCosts costs, double ms, bool chosen_adaptively) {
	costs.full_ms = ms;
	if (chosen_adaptively)
		costs.full_streak++;
	return costs;
}

} // namespace pgtrickle
