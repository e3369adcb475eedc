// Refresh schedules: 'calculated' (derived from downstream consumers), fixed durations such as '5m', and
// cron expressions. Parsing happens when a stream table is created or altered, so every mistake must come
// back as a precise user error; CronNextAfter runs in the scheduler loop, so it must never scan slowly.
// All times are UTC Unix seconds: a cron schedule here has no time zone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgtrickle {

enum class ScheduleKind { Calculated, Duration, Cron };

// A parsed cron expression. Each field is a bit set: bit n set means value n is allowed.
struct CronSpec {
	uint64_t seconds;       // bits 0-59
	uint64_t minutes;       // bits 0-59
	uint64_t hours;         // bits 0-23
	uint64_t days_of_month; // bits 1-31
	uint64_t months;        // bits 1-12
	uint64_t days_of_week;  // bits 0-6, 0 = Sunday (an input of 7 is folded onto 0)
	// Classic (Vixie) cron rule: a field is restricted unless its text starts with '*' or '?'. When both day
	// fields are restricted a day matches if EITHER matches; otherwise both must match.
	bool dom_restricted;
	bool dow_restricted;

	bool operator==(const CronSpec &) const = default;
};

struct Schedule {
	ScheduleKind kind;
	int64_t seconds = 0; // Duration only
	CronSpec cron{};     // Cron only
	std::string text;    // "calculated"; a duration trimmed and lower-cased; a cron expression trimmed
};

// Durations longer than this are rejected: they are almost certainly a unit mistake, and the bound keeps
// all schedule arithmetic far away from integer overflow.
inline constexpr int64_t kMaxScheduleSeconds = int64_t{3650} * 86400;

// How far CronNextAfter looks ahead before concluding that a cron expression never fires.
inline constexpr int64_t kCronHorizonSeconds = int64_t{5} * 366 * 86400;

// Parses 'calculated', a duration ("90", "30s", "1h30m", "1w2d", ...) or a cron expression (5 or 6 fields, or a
// nickname such as "@daily"). Durations shorter than min_schedule_seconds are rejected. Throws UserError with
// SQLSTATE 22023 on any invalid input.
Schedule ParseSchedule(std::string_view input, int64_t min_schedule_seconds);

// The first time strictly after after_epoch_seconds at which spec fires, or -1 if it does not fire within
// kCronHorizonSeconds (e.g. "0 0 30 2 *").
int64_t CronNextAfter(const CronSpec &spec, int64_t after_epoch_seconds);

// Compact form in the same syntax ParseSchedule accepts: 5400 -> "1h30m", 30 -> "30s", 86400 -> "1d",
// 0 -> "0s". Negative values get a leading '-'.
std::string FormatDuration(int64_t seconds);

} // namespace pgtrickle
