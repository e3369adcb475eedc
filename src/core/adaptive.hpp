// The adaptive choice between a DIFFERENTIAL and a FULL refresh of an AUTO stream table (pure logic,
// unit-tested; docs/CONFIGURATION.md, pg_trickle.adaptive_refresh).
//
// Model: the cost of a differential refresh grows with the number of changed rows it consumes, n, and
// is at least affine in n with a non-negative fixed part (planning, scanning the change windows).
// From one sample (n0 changes took t0 ms) that gives a lower bound for n changes:
//     t0 * min(1, n / n0)
// (no less than t0 for more changes; for fewer, no less than the sample scaled down proportionally).
// A refresh goes FULL only when that lower bound exceeds the last FULL refresh's time: only when the
// delta is known to cost more, never on a guess. Every DIFFERENTIAL refresh replaces the sample, every
// FULL one (chosen by this rule or not) the FULL time, so the choice follows the data as it grows and
// the change rate as it shrinks. As the sample is not renewed while FULL wins, the rule still runs a
// DIFFERENTIAL refresh after 16, 32, 64, ... FULL refreshes in a row (a probe: an index or fresh
// statistics may have made the delta cheap again), so the probes cost little when FULL stays better.
//
// A delta that was never measured, or runs far past its lower bound, is stopped by a budget: once a
// FULL time is known, the delta of an adaptive refresh may run kDeltaBudgetFactor times that (at
// least kDeltaBudgetFloorMs); past it the delta is cancelled, its work rolled back, and the refresh
// recomputes. The time it ran is a lower bound of its cost and becomes the sample. So an AUTO refresh
// never costs more than about (1 + kDeltaBudgetFactor) FULL refreshes, even for a delta that would
// run for minutes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pgtrickle {

struct RefreshCosts {
	std::optional<double> full_ms;       // the last FULL (or reinitialising, or initial) refresh
	std::optional<double> diff_ms;       // the last DIFFERENTIAL refresh ...
	std::optional<int64_t> diff_changes; // ... and the changed rows it consumed
	int64_t full_streak = 0;             // FULL refreshes chosen by this rule in a row
};

struct AdaptiveChoice {
	bool full = false;
	bool probe = false;     // DIFFERENTIAL although the rule says FULL (see above)
	double lower_bound_ms = 0;
	std::string reason;     // when full: why, for the refresh history
};

// The first probe comes after this many FULL refreshes chosen in a row, then after twice as many, ...
constexpr int64_t kAdaptiveFirstProbe = 16;
// A delta whose lower bound is below this many ms is never switched: the difference does not matter,
// and a FULL refresh rewrites every row (which stream tables reading this one then receive as changes).
constexpr double kAdaptiveMinMs = 10.0;

AdaptiveChoice ChooseAdaptively(const RefreshCosts &costs, int64_t changes);

constexpr double kDeltaBudgetFactor = 2.0;
constexpr double kDeltaBudgetFloorMs = 100.0;

// The delta's budget in ms; 0 = none (no FULL time known yet).
double DeltaBudgetMs(const RefreshCosts &costs);
// The history's reason for a refresh whose delta ran out of its budget.
std::string BudgetExceededReason(const RefreshCosts &costs, int64_t changes, double delta_ms);

// The costs after a refresh: DIFFERENTIAL (chosen by the rule or as a probe) or FULL.
RefreshCosts AfterDifferential(RefreshCosts costs, int64_t changes, double ms, bool probe);
RefreshCosts AfterFull(RefreshCosts costs, double ms, bool chosen_adaptively);
// A delta cancelled after delta_ms (a lower bound of its cost), then a FULL refresh of full_ms.
RefreshCosts AfterCancelledDelta(RefreshCosts costs, int64_t changes, double delta_ms, double full_ms);

// Which delta variant a join of keyed tables runs (DvmPlan::delta_sql_large): the large-window one
// hashes the old state of later join inputs (a cost that grows with their rows), the default one
// reaches them by index and goes over the deleted rows again per outer row (about changes squared).
// The large one from `floor_rows` changes on (pg_trickle.large_window_rows), and only once the changes
// reach 4 × √(rows of the largest changed source); `largest_rows` <= 0 (unknown): the floor alone.
bool UseLargeWindowVariant(int64_t changes, int64_t floor_rows, double largest_rows);

} // namespace pgtrickle
