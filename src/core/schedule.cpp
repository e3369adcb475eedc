#include "core/schedule.hpp"
#include "core/core_only.hpp"

#include "core/errors.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace pgtrickle {

namespace {

constexpr int64_t kSecondsPerMinute = 60;
constexpr int64_t kSecondsPerHour = 3600;
constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kSecondsPerWeek = 7 * kSecondsPerDay;

constexpr const char *kScheduleHint =
    "Use 'calculated', a duration such as '30s', '5m', '1h30m', '1d' or '1w', or a cron expression such as "
    "'*/5 * * * *' or '@daily'.";

constexpr const char *kCronHint =
    "A cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 fields (second first), "
    "e.g. '*/5 * * * *', or is one of @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly. "
    "Durations are written without spaces, e.g. '1h30m'.";

// ASCII-only helpers: the <cctype> versions depend on the locale and are undefined for negative chars.
bool
IsSpace(char c) {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool
IsDigit(char c) {
	return c >= '0' && c <= '9';
}

bool
IsAlpha(char c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

char
ToLower(char c) {
	return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string
Lower(std::string_view s) {
	std::string out(s);
	for (char &c : out)
		c = ToLower(c);
	return out;
}

bool
EqualsIgnoreCase(std::string_view a, std::string_view b) {
	if (a.size() != b.size())
		return false;
	for (size_t i = 0; i < a.size(); i++)
		if (ToLower(a[i]) != ToLower(b[i]))
			return false;
	return true;
}

std::string_view
Trim(std::string_view s) {
	while (!s.empty() && IsSpace(s.front()))
		s.remove_prefix(1);
	while (!s.empty() && IsSpace(s.back()))
		s.remove_suffix(1);
	return s;
}

bool
AllDigits(std::string_view s) {
	return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

// Saturates instead of overflowing: every caller range-checks the result, and a 30-digit number must be
// reported as out of range rather than wrap around into range.
int64_t
DigitsValue(std::string_view digits) {
	constexpr int64_t kSaturated = int64_t{1} << 40;
	int64_t value = 0;
	for (char c : digits) {
		value = value * 10 + (c - '0');
		if (value > kSaturated)
			return kSaturated;
	}
	return value;
}

std::string
Quoted(std::string_view s) {
	std::string out = "\"";
	out += s;
	out += '"';
	return out;
}

std::string
Capitalized(std::string_view s) {
	std::string out(s);
	if (!out.empty() && out[0] >= 'a' && out[0] <= 'z')
		out[0] = static_cast<char>(out[0] - 'a' + 'A');
	return out;
}

[[noreturn]] void
ThrowSchedule(std::string_view input, std::string detail) {
	throw UserError(sqlstate::kInvalidParameterValue, "invalid schedule " + Quoted(input), std::move(detail),
	                kScheduleHint);
}

[[noreturn]] void
ThrowCron(std::string_view input, std::string detail) {
	throw UserError(sqlstate::kInvalidParameterValue, "invalid cron expression " + Quoted(input), std::move(detail),
	                kCronHint);
}

// ---------------------------------------------------------------------------------------------------------
// Durations

int64_t
ParseDuration(std::string_view input, std::string_view text) {
	// Unit ranks enforce the decreasing order w, d, h, m, s.
	constexpr std::string_view kUnits = "wdhms";
	constexpr int64_t kUnitSeconds[] = {kSecondsPerWeek, kSecondsPerDay, kSecondsPerHour, kSecondsPerMinute, 1};

	if (text.front() == '-')
		ThrowSchedule(input, "A schedule interval must not be negative.");

	int64_t total = 0;
	int last_rank = -1;
	size_t pos = 0;
	while (pos < text.size()) {
		size_t number_start = pos;
		while (pos < text.size() && IsDigit(text[pos]))
			pos++;
		if (pos == number_start)
			ThrowSchedule(input, "Expected a number at " + Quoted(text.substr(pos)) + ".");
		std::string_view number = text.substr(number_start, pos - number_start);
		int64_t value = DigitsValue(number);

		if (pos == text.size()) {
			if (last_rank >= 0)
				ThrowSchedule(input, "Number " + std::string(number) + " has no unit; units are w, d, h, m and s.");
			total = value; // a bare integer means seconds
			break;
		}

		size_t unit_start = pos;
		while (pos < text.size() && IsAlpha(text[pos]))
			pos++;
		std::string_view unit = text.substr(unit_start, pos - unit_start);
		if (unit.empty())
			ThrowSchedule(input, "Unexpected character " + Quoted(text.substr(pos, 1)) + " after number " +
			                         std::string(number) + ".");
		size_t rank = unit.size() == 1 ? kUnits.find(ToLower(unit[0])) : std::string_view::npos;
		if (rank == std::string_view::npos)
			ThrowSchedule(input, "Unknown unit " + Quoted(unit) + "; units are w, d, h, m and s.");
		if (static_cast<int>(rank) == last_rank)
			ThrowSchedule(input, "Unit " + Quoted(Lower(unit)) + " appears more than once.");
		if (static_cast<int>(rank) < last_rank)
			ThrowSchedule(input, "Unit " + Quoted(Lower(unit)) + " must come before " +
			                         Quoted(kUnits.substr(static_cast<size_t>(last_rank), 1)) +
			                         "; write units in the order w, d, h, m, s.");
		last_rank = static_cast<int>(rank);
		// Cannot overflow: value <= 2^40 and at most five terms of at most 2^40 * 604800 each.
		total += std::min(value, kMaxScheduleSeconds + 1) * kUnitSeconds[rank];
	}

	if (total == 0)
		ThrowSchedule(input, "A schedule interval must be greater than zero.");
	if (total > kMaxScheduleSeconds)
		ThrowSchedule(input, "The interval exceeds the maximum of 10 years (3650 days).");
	return total;
}

// ---------------------------------------------------------------------------------------------------------
// Cron expressions

constexpr std::string_view kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::string_view kWeekdayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct CronField {
	const char *name;
	int min;
	int max;      // largest value accepted in the input
	int star_max; // where '*' and 'a/n' stop; differs from max only for day-of-week, where 7 is an alias
	const std::string_view *names;
	int first_name_value;
	int name_count;
	bool allows_question;
};

constexpr CronField kSecondField = {"second", 0, 59, 59, nullptr, 0, 0, false};
constexpr CronField kMinuteField = {"minute", 0, 59, 59, nullptr, 0, 0, false};
constexpr CronField kHourField = {"hour", 0, 23, 23, nullptr, 0, 0, false};
constexpr CronField kDayOfMonthField = {"day-of-month", 1, 31, 31, nullptr, 0, 0, true};
constexpr CronField kMonthField = {"month", 1, 12, 12, kMonthNames, 1, 12, false};
constexpr CronField kDayOfWeekField = {"day-of-week", 0, 7, 6, kWeekdayNames, 0, 7, true};

class CronParser {
public:
	explicit CronParser(std::string_view input) : input_(input) {
	}

	CronSpec
	Parse(std::string_view text) {
		if (text.front() == '@')
			return ParseNickname(text);

		std::vector<std::string_view> fields;
		size_t pos = 0;
		while (pos < text.size()) {
			while (pos < text.size() && IsSpace(text[pos]))
				pos++;
			size_t start = pos;
			while (pos < text.size() && !IsSpace(text[pos]))
				pos++;
			if (pos > start)
				fields.push_back(text.substr(start, pos - start));
		}
		if (fields.size() != 5 && fields.size() != 6)
			ThrowCron(input_, "Expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields "
			                  "(second minute hour day-of-month month day-of-week), found " +
			                      std::to_string(fields.size()) + ".");

		CronSpec spec{};
		size_t i = 0;
		spec.seconds = fields.size() == 6 ? ParseField(kSecondField, fields[i++]) : uint64_t{1};
		spec.minutes = ParseField(kMinuteField, fields[i++]);
		spec.hours = ParseField(kHourField, fields[i++]);
		spec.dom_restricted = IsRestricted(fields[i]);
		spec.days_of_month = ParseField(kDayOfMonthField, fields[i++]);
		spec.months = ParseField(kMonthField, fields[i++]);
		spec.dow_restricted = IsRestricted(fields[i]);
		uint64_t dow = ParseField(kDayOfWeekField, fields[i++]);
		if (dow & (uint64_t{1} << 7))
			dow = (dow & ~(uint64_t{1} << 7)) | uint64_t{1};
		spec.days_of_week = dow;
		return spec;
	}

private:
	CronSpec
	ParseNickname(std::string_view text) {
		struct Nickname {
			std::string_view name;
			std::string_view expansion;
		};
		static constexpr Nickname kNicknames[] = {
		    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
		    {"@weekly", "0 0 * * 0"},  {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
		    {"@hourly", "0 * * * *"},
		};
		for (const Nickname &nickname : kNicknames)
			if (EqualsIgnoreCase(text, nickname.name))
				return Parse(nickname.expansion);
		ThrowCron(input_, "Unknown nickname " + Quoted(text) +
		                      "; accepted nicknames are @yearly, @annually, @monthly, @weekly, @daily, @midnight "
		                      "and @hourly.");
	}

	// Vixie cron treats "*/2" as unrestricted too: only the leading character decides.
	static bool
	IsRestricted(std::string_view field) {
		return field.front() != '*' && field.front() != '?';
	}

	uint64_t
	ParseField(const CronField &field, std::string_view text) {
		uint64_t bits = 0;
		size_t start = 0;
		while (true) {
			size_t comma = text.find(',', start);
			std::string_view element = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
			if (element.empty())
				ThrowCron(input_, Capitalized(field.name) + " field " + Quoted(text) + " has an empty list element.");
			bits |= ParseElement(field, element);
			if (comma == std::string_view::npos)
				break;
			start = comma + 1;
		}
		return bits;
	}

	uint64_t
	ParseElement(const CronField &field, std::string_view element) {
		std::string_view base = element;
		std::string_view step_text;
		bool has_step = false;
		if (size_t slash = element.find('/'); slash != std::string_view::npos) {
			base = element.substr(0, slash);
			step_text = element.substr(slash + 1);
			has_step = true;
			if (base.empty() || step_text.empty() || step_text.find('/') != std::string_view::npos)
				Malformed(field, element);
		}

		int lo;
		int hi;
		if (base == "*" || base == "?") {
			if (base == "?" && !field.allows_question)
				ThrowCron(input_, "\"?\" is only allowed in the day-of-month and day-of-week fields, not in the " +
				                      std::string(field.name) + " field.");
			lo = field.min;
			hi = field.star_max;
		} else if (size_t dash = base.find('-'); dash != std::string_view::npos) {
			std::string_view first = base.substr(0, dash);
			std::string_view last = base.substr(dash + 1);
			if (first.empty() || last.empty() || last.find('-') != std::string_view::npos)
				Malformed(field, element);
			lo = ParseValue(field, first);
			hi = ParseValue(field, last);
			if (lo > hi)
				ThrowCron(input_, Capitalized(field.name) + " range " + Quoted(base) +
				                      " starts after it ends.");
		} else {
			lo = ParseValue(field, base);
			// "a/n" means every n-th value from a up to the end of the field.
			hi = has_step ? std::max(lo, field.star_max) : lo;
		}

		int step = 1;
		if (has_step) {
			const int span = field.star_max - field.min + 1;
			if (!AllDigits(step_text))
				ThrowCron(input_, Capitalized(field.name) + " step " + Quoted(step_text) + " is not a number.");
			int64_t value = DigitsValue(step_text);
			if (value == 0)
				ThrowCron(input_, Capitalized(field.name) + " step 0 in " + Quoted(element) +
				                      " must be at least 1.");
			if (value > span)
				ThrowCron(input_, Capitalized(field.name) + " step " + std::string(step_text) + " in " +
				                      Quoted(element) + " is out of range 1-" + std::to_string(span) + ".");
			step = static_cast<int>(value);
		}

		uint64_t bits = 0;
		for (int v = lo; v <= hi; v += step)
			bits |= uint64_t{1} << v;
		return bits;
	}

	int
	ParseValue(const CronField &field, std::string_view token) {
		if (AllDigits(token)) {
			int64_t value = DigitsValue(token);
			if (value < field.min || value > field.max)
				ThrowCron(input_, Capitalized(field.name) + " value " + std::string(token) + " is out of range " +
				                      std::to_string(field.min) + "-" + std::to_string(field.max) + ".");
			return static_cast<int>(value);
		}
		for (int i = 0; i < field.name_count; i++)
			if (EqualsIgnoreCase(token, field.names[i]))
				return field.first_name_value + i;
		if (field.names == nullptr)
			ThrowCron(input_, Capitalized(field.name) + " value " + Quoted(token) + " is not a number.");
		ThrowCron(input_, Capitalized(field.name) + " value " + Quoted(token) + " is not a number or a " +
		                      (field.names == kMonthNames ? "month name (JAN-DEC)." : "weekday name (SUN-SAT)."));
	}

	[[noreturn]] void
	Malformed(const CronField &field, std::string_view element) {
		ThrowCron(input_, Capitalized(field.name) + " element " + Quoted(element) +
		                      " is malformed; expected *, a value, a range a-b, optionally followed by /step.");
	}

	std::string_view input_;
};

// ---------------------------------------------------------------------------------------------------------
// Civil-date arithmetic on the proleptic Gregorian calendar (Howard Hinnant's days_from_civil algorithms).

int64_t
DaysFromCivil(int64_t y, int m, int d) {
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const int64_t yoe = y - era * 400;                                   // [0, 399]
	const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; // [0, 365]
	const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           // [0, 146096]
	return era * 146097 + doe - 719468;
}

struct CivilDate {
	int64_t year;
	int month; // 1-12
	int day;   // 1-31
};

CivilDate
CivilFromDays(int64_t z) {
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const int64_t doe = z - era * 146097;                                 // [0, 146096]
	const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; // [0, 399]
	const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);          // [0, 365]
	const int64_t mp = (5 * doy + 2) / 153;                               // [0, 11]
	const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
	const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
	return {yoe + era * 400 + (month <= 2), month, day};
}

// 1970-01-01 (day 0) was a Thursday.
int
WeekdayFromDays(int64_t z) {
	return static_cast<int>(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

int64_t
FloorDiv(int64_t a, int64_t b) {
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

bool
HasBit(uint64_t bits, int64_t n) {
	return (bits >> n) & 1;
}

// Smallest value >= from in bits (values below 64), or -1.
int
NextBit(uint64_t bits, int from) {
	if (from >= 64)
		return -1;
	uint64_t rest = bits >> from;
	if (rest == 0)
		return -1;
	return from + std::countr_zero(rest);
}

bool
DayMatches(const CronSpec &spec, int day, int weekday) {
	bool dom = HasBit(spec.days_of_month, day);
	bool dow = HasBit(spec.days_of_week, weekday);
	return (spec.dom_restricted && spec.dow_restricted) ? (dom || dow) : (dom && dow);
}

} // namespace

Schedule
ParseSchedule(std::string_view input, int64_t min_schedule_seconds) {
	std::string_view text = Trim(input);
	if (text.empty())
		throw UserError(sqlstate::kInvalidParameterValue, "schedule must not be empty", {}, kScheduleHint);

	Schedule schedule{};
	if (EqualsIgnoreCase(text, "calculated")) {
		schedule.kind = ScheduleKind::Calculated;
		schedule.text = "calculated";
		return schedule;
	}

	if (text.front() == '@' || std::any_of(text.begin(), text.end(), IsSpace)) {
		schedule.kind = ScheduleKind::Cron;
		schedule.cron = CronParser(input).Parse(text);
		schedule.text = std::string(text);
		return schedule;
	}

	schedule.kind = ScheduleKind::Duration;
	schedule.seconds = ParseDuration(input, text);
	schedule.text = Lower(text);
	if (schedule.seconds < min_schedule_seconds)
		throw UserError(sqlstate::kInvalidParameterValue, "invalid schedule " + Quoted(input),
		                "The interval is " + std::to_string(schedule.seconds) + " seconds, but the minimum is " +
		                    std::to_string(min_schedule_seconds) + " seconds.",
		                "Choose a longer interval, or lower pg_trickle.min_schedule_seconds.");
	return schedule;
}

int64_t
CronNextAfter(const CronSpec &spec, int64_t after_epoch_seconds) {
	if (spec.seconds == 0 || spec.minutes == 0 || spec.hours == 0 || spec.months == 0 ||
	    (spec.days_of_month == 0 && spec.days_of_week == 0))
		return -1;
	if (after_epoch_seconds > std::numeric_limits<int64_t>::max() - 2 * kCronHorizonSeconds)
		return -1;

	const int64_t limit = after_epoch_seconds + kCronHorizonSeconds;
	int64_t t = after_epoch_seconds + 1;
	// Each pass either returns or jumps t forward to the start of the next month, day, hour or minute that
	// could still match, so the loop runs at most a few thousand times even for impossible expressions.
	while (t <= limit) {
		const int64_t days = FloorDiv(t, kSecondsPerDay);
		const int64_t day_start = days * kSecondsPerDay;
		const CivilDate date = CivilFromDays(days);

		if (!HasBit(spec.months, date.month)) {
			const int64_t year = date.month == 12 ? date.year + 1 : date.year;
			const int month = date.month == 12 ? 1 : date.month + 1;
			t = DaysFromCivil(year, month, 1) * kSecondsPerDay;
			continue;
		}
		if (!DayMatches(spec, date.day, WeekdayFromDays(days))) {
			t = day_start + kSecondsPerDay;
			continue;
		}

		const int64_t second_of_day = t - day_start;
		const int hour = static_cast<int>(second_of_day / kSecondsPerHour);
		const int minute = static_cast<int>(second_of_day / kSecondsPerMinute % 60);
		const int second = static_cast<int>(second_of_day % 60);

		const int next_hour = NextBit(spec.hours, hour);
		if (next_hour < 0 || next_hour > 23) {
			t = day_start + kSecondsPerDay;
			continue;
		}
		if (next_hour != hour) {
			t = day_start + next_hour * kSecondsPerHour;
			continue;
		}

		const int64_t hour_start = day_start + hour * kSecondsPerHour;
		const int next_minute = NextBit(spec.minutes, minute);
		if (next_minute < 0 || next_minute > 59) {
			t = hour_start + kSecondsPerHour;
			continue;
		}
		if (next_minute != minute) {
			t = hour_start + next_minute * kSecondsPerMinute;
			continue;
		}

		const int64_t minute_start = hour_start + minute * kSecondsPerMinute;
		const int next_second = NextBit(spec.seconds, second);
		if (next_second < 0 || next_second > 59) {
			t = minute_start + kSecondsPerMinute;
			continue;
		}
		const int64_t result = minute_start + next_second;
		return result <= limit ? result : -1;
	}
	return -1;
}

std::string
FormatDuration(int64_t seconds) {
	if (seconds == 0)
		return "0s";
	// Unsigned arithmetic so that INT64_MIN has a magnitude.
	uint64_t rest = seconds < 0 ? uint64_t{0} - static_cast<uint64_t>(seconds) : static_cast<uint64_t>(seconds);
	std::string out = seconds < 0 ? "-" : "";
	constexpr struct {
		uint64_t seconds;
		char unit;
	} kUnits[] = {{kSecondsPerWeek, 'w'}, {kSecondsPerDay, 'd'}, {kSecondsPerHour, 'h'}, {kSecondsPerMinute, 'm'},
	              {1, 's'}};
	for (const auto &unit : kUnits) {
		if (rest >= unit.seconds) {
			out += std::to_string(rest / unit.seconds);
			out += unit.unit;
			rest %= unit.seconds;
		}
	}
	return out;
}

} // namespace pgtrickle
