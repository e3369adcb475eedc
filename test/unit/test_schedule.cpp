// Unit tests for src/core/schedule: ParseSchedule, CronNextAfter and FormatDuration.
// CronNextAfter is checked against libc's timegm/gmtime_r, an implementation of the calendar that shares no
// code with ours.
#include "core/errors.hpp"
#include "core/schedule.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

namespace pgtrickle {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Helpers

int64_t
Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
	struct tm tm {};
	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = minute;
	tm.tm_sec = second;
	return static_cast<int64_t>(timegm(&tm));
}

// Readable form for assertions, so a failure shows a date rather than a ten-digit number.
std::string
Iso(int64_t epoch) {
	if (epoch == -1)
		return "none";
	time_t t = static_cast<time_t>(epoch);
	struct tm tm {};
	gmtime_r(&t, &tm);
	char buf[64];
	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

CronSpec
Cron(std::string_view text) {
	Schedule s = ParseSchedule(text, 0);
	EXPECT_EQ(s.kind, ScheduleKind::Cron) << text;
	return s.cron;
}

std::string
Next(std::string_view cron, int64_t after) {
	return Iso(CronNextAfter(Cron(cron), after));
}

UserError
ErrorFor(std::string_view input, int64_t min_schedule_seconds = 0) {
	try {
		Schedule s = ParseSchedule(input, min_schedule_seconds);
		ADD_FAILURE() << "expected an error for \"" << input << "\", got kind " << static_cast<int>(s.kind)
		              << " text \"" << s.text << "\"";
	} catch (const UserError &e) {
		EXPECT_STREQ(e.Sqlstate(), sqlstate::kInvalidParameterValue) << input;
		EXPECT_FALSE(e.Hint().empty()) << input;
		return e;
	}
	return UserError(sqlstate::kInternalError, "no error");
}

uint64_t
Bits(std::initializer_list<int> values) {
	uint64_t bits = 0;
	for (int v : values)
		bits |= uint64_t{1} << v;
	return bits;
}

uint64_t
BitRange(int lo, int hi) {
	uint64_t bits = 0;
	for (int v = lo; v <= hi; v++)
		bits |= uint64_t{1} << v;
	return bits;
}

bool
Contains(const std::string &haystack, std::string_view needle) {
	return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------------------
// calculated and empty input

TEST(ParseScheduleTest, CalculatedIsCaseInsensitiveAndTrimmed) {
	for (const char *input : {"calculated", "CALCULATED", "Calculated", "  calculated", "\tCalCulated \n"}) {
		Schedule s = ParseSchedule(input, 60);
		EXPECT_EQ(s.kind, ScheduleKind::Calculated) << input;
		EXPECT_EQ(s.text, "calculated") << input;
		EXPECT_EQ(s.seconds, 0) << input;
	}
}

TEST(ParseScheduleTest, CalculatedIsNotSubjectToMinimum) {
	EXPECT_EQ(ParseSchedule("calculated", std::numeric_limits<int64_t>::max()).kind, ScheduleKind::Calculated);
}

TEST(ParseScheduleTest, EmptyAndWhitespaceOnlyAreRejected) {
	for (const char *input : {"", " ", "   ", "\t", " \n\t\r "}) {
		UserError e = ErrorFor(input);
		EXPECT_STREQ(e.what(), "schedule must not be empty") << '"' << input << '"';
		EXPECT_TRUE(Contains(e.Hint(), "'calculated'")) << e.Hint();
	}
}

TEST(ParseScheduleTest, MisspelledCalculatedIsADurationError) {
	UserError e = ErrorFor("calculate");
	EXPECT_STREQ(e.what(), "invalid schedule \"calculate\"");
	EXPECT_EQ(e.Detail(), "Expected a number at \"calculate\".");
	EXPECT_TRUE(Contains(e.Hint(), "'calculated'"));
}

// ---------------------------------------------------------------------------------------------------------
// Durations

struct DurationCase {
	const char *input;
	int64_t seconds;
	const char *text;
};

TEST(ParseScheduleTest, AcceptsDurations) {
	const DurationCase cases[] = {
	    {"90", 90, "90"},
	    {"1", 1, "1"},
	    {"007", 7, "007"},
	    {"30s", 30, "30s"},
	    {"5m", 300, "5m"},
	    {"1h", 3600, "1h"},
	    {"1d", 86400, "1d"},
	    {"1w", 604800, "1w"},
	    {"1h30m", 5400, "1h30m"},
	    {"2m30s", 150, "2m30s"},
	    {"1w2d", 777600, "1w2d"},
	    {"1d12h", 129600, "1d12h"},
	    {"1w1d1h1m1s", 694861, "1w1d1h1m1s"},
	    {"1h1s", 3601, "1h1s"},
	    {"90m", 5400, "90m"},
	    {"0h5m", 300, "0h5m"},
	    {"05M", 300, "05m"},
	    {"1H30M", 5400, "1h30m"},
	    {"2W", 1209600, "2w"},
	    {"  5m  ", 300, "5m"},
	    {"\t10S\n", 10, "10s"},
	    {"3650d", 315360000, "3650d"},
	    {"521w", 315100800, "521w"},
	    {"315360000", 315360000, "315360000"},
	};
	for (const DurationCase &c : cases) {
		Schedule s = ParseSchedule(c.input, 0);
		EXPECT_EQ(s.kind, ScheduleKind::Duration) << c.input;
		EXPECT_EQ(s.seconds, c.seconds) << c.input;
		EXPECT_EQ(s.text, c.text) << c.input;
	}
}

struct ErrorCase {
	const char *input;
	const char *detail;
};

TEST(ParseScheduleTest, RejectsBadDurationsWithPreciseDetail) {
	const ErrorCase cases[] = {
	    {"0", "A schedule interval must be greater than zero."},
	    {"000", "A schedule interval must be greater than zero."},
	    {"0s", "A schedule interval must be greater than zero."},
	    {"0h0m0s", "A schedule interval must be greater than zero."},
	    {"3651d", "The interval exceeds the maximum of 10 years (3650 days)."},
	    {"522w", "The interval exceeds the maximum of 10 years (3650 days)."},
	    {"315360001", "The interval exceeds the maximum of 10 years (3650 days)."},
	    {"3650d1s", "The interval exceeds the maximum of 10 years (3650 days)."},
	    {"99999999999999999999999999s", "The interval exceeds the maximum of 10 years (3650 days)."},
	    {"99999999999999999999999999w99999999999999999999d",
	     "The interval exceeds the maximum of 10 years (3650 days)."},
	    {"99999999999999999999999999", "The interval exceeds the maximum of 10 years (3650 days)."},
	    {"5x", "Unknown unit \"x\"; units are w, d, h, m and s."},
	    {"5min", "Unknown unit \"min\"; units are w, d, h, m and s."},
	    {"1h30x", "Unknown unit \"x\"; units are w, d, h, m and s."},
	    {"2ms", "Unknown unit \"ms\"; units are w, d, h, m and s."},
	    {"1h30", "Number 30 has no unit; units are w, d, h, m and s."},
	    {"30m1h", "Unit \"h\" must come before \"m\"; write units in the order w, d, h, m, s."},
	    {"1s1w", "Unit \"w\" must come before \"s\"; write units in the order w, d, h, m, s."},
	    {"1m2M", "Unit \"m\" appears more than once."},
	    {"1h1h", "Unit \"h\" appears more than once."},
	    {"-5m", "A schedule interval must not be negative."},
	    {"-1", "A schedule interval must not be negative."},
	    {"+5m", "Expected a number at \"+5m\"."},
	    {"1.5h", "Unexpected character \".\" after number 1."},
	    {"5_m", "Unexpected character \"_\" after number 5."},
	    {"h", "Expected a number at \"h\"."},
	    {"m5", "Expected a number at \"m5\"."},
	    {"5m!", "Expected a number at \"!\"."},
	    {"*", "Expected a number at \"*\"."},
	    {"daily", "Expected a number at \"daily\"."},
	};
	for (const ErrorCase &c : cases) {
		UserError e = ErrorFor(c.input);
		EXPECT_EQ(std::string(e.what()), "invalid schedule \"" + std::string(c.input) + "\"") << c.input;
		EXPECT_EQ(e.Detail(), c.detail) << c.input;
		EXPECT_TRUE(Contains(e.Hint(), "'calculated'")) << c.input;
		EXPECT_TRUE(Contains(e.Hint(), "'1h30m'")) << c.input;
	}
}

TEST(ParseScheduleTest, ErrorMessageQuotesInputVerbatim) {
	UserError e = ErrorFor("  5X ");
	EXPECT_STREQ(e.what(), "invalid schedule \"  5X \"");
	EXPECT_EQ(e.Detail(), "Unknown unit \"X\"; units are w, d, h, m and s.");
}

TEST(ParseScheduleTest, EnforcesMinimumScheduleSeconds) {
	UserError e = ErrorFor("30s", 60);
	EXPECT_STREQ(e.what(), "invalid schedule \"30s\"");
	EXPECT_EQ(e.Detail(), "The interval is 30 seconds, but the minimum is 60 seconds.");
	EXPECT_EQ(e.Hint(), "Choose a longer interval, or lower pg_trickle.min_schedule_seconds.");

	EXPECT_EQ(ErrorFor("59", 60).Detail(), "The interval is 59 seconds, but the minimum is 60 seconds.");
	EXPECT_EQ(ErrorFor("1h", 3601).Detail(), "The interval is 3600 seconds, but the minimum is 3601 seconds.");

	EXPECT_EQ(ParseSchedule("60", 60).seconds, 60);
	EXPECT_EQ(ParseSchedule("1m", 60).seconds, 60);
	EXPECT_EQ(ParseSchedule("1m1s", 60).seconds, 61);
	EXPECT_EQ(ParseSchedule("1s", 0).seconds, 1);
	EXPECT_EQ(ParseSchedule("1s", 1).seconds, 1);
	EXPECT_EQ(ParseSchedule("1s", -5).seconds, 1);
}

TEST(ParseScheduleTest, ZeroIsReportedAsZeroNotAsBelowMinimum) {
	EXPECT_EQ(ErrorFor("0s", 60).Detail(), "A schedule interval must be greater than zero.");
}

TEST(ParseScheduleTest, MinimumDoesNotApplyToCron) {
	// min_schedule_seconds bounds fixed intervals; a cron expression is taken as written.
	Schedule s = ParseSchedule("* * * * * *", 60);
	EXPECT_EQ(s.kind, ScheduleKind::Cron);
	EXPECT_EQ(s.seconds, 0);
}

// ---------------------------------------------------------------------------------------------------------
// Cron parsing

constexpr uint64_t kAllSeconds = (uint64_t{1} << 60) - 1;
constexpr uint64_t kAllHours = (uint64_t{1} << 24) - 1;
constexpr uint64_t kAllDaysOfMonth = ((uint64_t{1} << 32) - 1) & ~uint64_t{1};
constexpr uint64_t kAllMonths = ((uint64_t{1} << 13) - 1) & ~uint64_t{1};
constexpr uint64_t kAllDaysOfWeek = (uint64_t{1} << 7) - 1;

TEST(CronParseTest, AllStarsFiveFields) {
	Schedule s = ParseSchedule("* * * * *", 0);
	EXPECT_EQ(s.kind, ScheduleKind::Cron);
	EXPECT_EQ(s.text, "* * * * *");
	EXPECT_EQ(s.seconds, 0);
	EXPECT_EQ(s.cron.seconds, uint64_t{1});
	EXPECT_EQ(s.cron.minutes, kAllSeconds);
	EXPECT_EQ(s.cron.hours, kAllHours);
	EXPECT_EQ(s.cron.days_of_month, kAllDaysOfMonth);
	EXPECT_EQ(s.cron.months, kAllMonths);
	EXPECT_EQ(s.cron.days_of_week, kAllDaysOfWeek);
	EXPECT_FALSE(s.cron.dom_restricted);
	EXPECT_FALSE(s.cron.dow_restricted);
}

TEST(CronParseTest, AllStarsSixFields) {
	CronSpec c = Cron("* * * * * *");
	EXPECT_EQ(c.seconds, kAllSeconds);
	EXPECT_EQ(c.minutes, kAllSeconds);
	EXPECT_EQ(c.days_of_week, kAllDaysOfWeek);
}

TEST(CronParseTest, TextIsTrimmedButOtherwiseKept) {
	EXPECT_EQ(ParseSchedule("  0 9 * * Mon-Fri \n", 0).text, "0 9 * * Mon-Fri");
	EXPECT_EQ(ParseSchedule("0\t9   *  * *", 0).text, "0\t9   *  * *");
	EXPECT_EQ(ParseSchedule(" @Daily ", 0).text, "@Daily");
}

TEST(CronParseTest, AnyWhitespaceSeparatesFields) {
	EXPECT_EQ(Cron("0\t9   *\n* *"), Cron("0 9 * * *"));
}

TEST(CronParseTest, Values) {
	CronSpec c = Cron("7 13 21 4 3");
	EXPECT_EQ(c.seconds, Bits({0}));
	EXPECT_EQ(c.minutes, Bits({7}));
	EXPECT_EQ(c.hours, Bits({13}));
	EXPECT_EQ(c.days_of_month, Bits({21}));
	EXPECT_EQ(c.months, Bits({4}));
	EXPECT_EQ(c.days_of_week, Bits({3}));
	EXPECT_TRUE(c.dom_restricted);
	EXPECT_TRUE(c.dow_restricted);
}

TEST(CronParseTest, Bounds) {
	CronSpec lo = Cron("0 0 0 1 1 0");
	EXPECT_EQ(lo.seconds, Bits({0}));
	EXPECT_EQ(lo.minutes, Bits({0}));
	EXPECT_EQ(lo.hours, Bits({0}));
	EXPECT_EQ(lo.days_of_month, Bits({1}));
	EXPECT_EQ(lo.months, Bits({1}));
	EXPECT_EQ(lo.days_of_week, Bits({0}));
	CronSpec hi = Cron("59 59 23 31 12 6");
	EXPECT_EQ(hi.seconds, Bits({59}));
	EXPECT_EQ(hi.minutes, Bits({59}));
	EXPECT_EQ(hi.hours, Bits({23}));
	EXPECT_EQ(hi.days_of_month, Bits({31}));
	EXPECT_EQ(hi.months, Bits({12}));
	EXPECT_EQ(hi.days_of_week, Bits({6}));
}

TEST(CronParseTest, RangesListsAndSteps) {
	EXPECT_EQ(Cron("*/15 * * * *").minutes, Bits({0, 15, 30, 45}));
	EXPECT_EQ(Cron("0,30 * * * *").minutes, Bits({0, 30}));
	EXPECT_EQ(Cron("10-14 * * * *").minutes, BitRange(10, 14));
	EXPECT_EQ(Cron("5-20/5 * * * *").minutes, Bits({5, 10, 15, 20}));
	EXPECT_EQ(Cron("5-21/5 * * * *").minutes, Bits({5, 10, 15, 20}));
	EXPECT_EQ(Cron("10/20 * * * *").minutes, Bits({10, 30, 50}));
	EXPECT_EQ(Cron("1,5-7,*/20 * * * *").minutes, Bits({0, 1, 5, 6, 7, 20, 40}));
	EXPECT_EQ(Cron("3-3 * * * *").minutes, Bits({3}));
	EXPECT_EQ(Cron("*/60 * * * *").minutes, Bits({0}));
	EXPECT_EQ(Cron("59/10 * * * *").minutes, Bits({59}));
	EXPECT_EQ(Cron("0 */6 * * *").hours, Bits({0, 6, 12, 18}));
	EXPECT_EQ(Cron("0 9-17 * * *").hours, BitRange(9, 17));
	EXPECT_EQ(Cron("0 0 */10 * *").days_of_month, Bits({1, 11, 21, 31}));
	EXPECT_EQ(Cron("0 0 1-31/2 * *").days_of_month, Bits({1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}));
	EXPECT_EQ(Cron("0 0 1 */3 *").months, Bits({1, 4, 7, 10}));
	EXPECT_EQ(Cron("0 0 1 2/5 *").months, Bits({2, 7, 12}));
	EXPECT_EQ(Cron("*/20 0 0 1 1 *").seconds, Bits({0, 20, 40}));
	EXPECT_EQ(Cron("0,1,2,3 0 0 1 1 *").seconds, BitRange(0, 3));
	EXPECT_EQ(Cron("0 0 * * */2").days_of_week, Bits({0, 2, 4, 6}));
	EXPECT_EQ(Cron("0 0 * * 1/2").days_of_week, Bits({1, 3, 5}));
}

TEST(CronParseTest, MonthNames) {
	EXPECT_EQ(Cron("0 0 1 jan *").months, Bits({1}));
	EXPECT_EQ(Cron("0 0 1 DEC *").months, Bits({12}));
	EXPECT_EQ(Cron("0 0 1 Jan,jul *").months, Bits({1, 7}));
	EXPECT_EQ(Cron("0 0 1 MAR-May *").months, Bits({3, 4, 5}));
	EXPECT_EQ(Cron("0 0 1 jan-dec/6 *").months, Bits({1, 7}));
	EXPECT_EQ(Cron("0 0 1 feb,4,JUN *").months, Bits({2, 4, 6}));
	const char *names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
	for (int i = 0; i < 12; i++)
		EXPECT_EQ(Cron(std::string("0 0 1 ") + names[i] + " *").months, Bits({i + 1})) << names[i];
}

TEST(CronParseTest, WeekdayNamesAndSevenIsSunday) {
	const char *names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
	for (int i = 0; i < 7; i++)
		EXPECT_EQ(Cron(std::string("0 0 * * ") + names[i]).days_of_week, Bits({i})) << names[i];
	EXPECT_EQ(Cron("0 0 * * mon-FRI").days_of_week, BitRange(1, 5));
	EXPECT_EQ(Cron("0 0 * * sat,Sun").days_of_week, Bits({0, 6}));
	EXPECT_EQ(Cron("0 0 * * 7").days_of_week, Bits({0}));
	EXPECT_EQ(Cron("0 0 * * 5-7").days_of_week, Bits({0, 5, 6}));
	EXPECT_EQ(Cron("0 0 * * 0-7").days_of_week, kAllDaysOfWeek);
	EXPECT_EQ(Cron("0 0 * * 0,7").days_of_week, Bits({0}));
}

TEST(CronParseTest, QuestionMarkIsStarInDayFields) {
	CronSpec c = Cron("0 0 ? * MON");
	EXPECT_EQ(c.days_of_month, kAllDaysOfMonth);
	EXPECT_FALSE(c.dom_restricted);
	EXPECT_TRUE(c.dow_restricted);
	CronSpec d = Cron("0 0 15 * ?");
	EXPECT_EQ(d.days_of_week, kAllDaysOfWeek);
	EXPECT_TRUE(d.dom_restricted);
	EXPECT_FALSE(d.dow_restricted);
}

TEST(CronParseTest, RestrictionFollowsLeadingCharacter) {
	// Vixie cron: a day field starting with '*' is unrestricted even with a step; anything else is restricted,
	// even when it happens to cover every value.
	CronSpec c = Cron("0 0 */2 * 1-7");
	EXPECT_FALSE(c.dom_restricted);
	EXPECT_TRUE(c.dow_restricted);
	EXPECT_EQ(c.days_of_week, kAllDaysOfWeek);
	CronSpec d = Cron("0 0 1-31 * */2");
	EXPECT_TRUE(d.dom_restricted);
	EXPECT_FALSE(d.dow_restricted);
}

TEST(CronParseTest, Nicknames) {
	struct {
		const char *nickname;
		const char *expansion;
	} cases[] = {
	    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
	    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"}, {"@HOURLY", "0 * * * *"},
	    {"@Weekly", "0 0 * * 0"},  {" @daily\t", "0 0 * * *"},
	};
	for (const auto &c : cases) {
		Schedule s = ParseSchedule(c.nickname, 0);
		EXPECT_EQ(s.kind, ScheduleKind::Cron) << c.nickname;
		EXPECT_EQ(s.cron, Cron(c.expansion)) << c.nickname;
	}
	CronSpec daily = Cron("@daily");
	EXPECT_EQ(daily.seconds, Bits({0}));
	EXPECT_EQ(daily.minutes, Bits({0}));
	EXPECT_EQ(daily.hours, Bits({0}));
	EXPECT_EQ(daily.days_of_month, kAllDaysOfMonth);
	EXPECT_EQ(daily.days_of_week, kAllDaysOfWeek);
	EXPECT_FALSE(daily.dom_restricted);
	EXPECT_FALSE(daily.dow_restricted);
}

TEST(CronParseTest, RejectsBadExpressionsWithPreciseDetail) {
	const ErrorCase cases[] = {
	    // out of range, naming the field and the token
	    {"61 * * * *", "Minute value 61 is out of range 0-59."},
	    {"60 * * * *", "Minute value 60 is out of range 0-59."},
	    {"* 24 * * *", "Hour value 24 is out of range 0-23."},
	    {"* * 0 * *", "Day-of-month value 0 is out of range 1-31."},
	    {"* * 32 * *", "Day-of-month value 32 is out of range 1-31."},
	    {"* * * 0 *", "Month value 0 is out of range 1-12."},
	    {"* * * 13 *", "Month value 13 is out of range 1-12."},
	    {"* * * * 8", "Day-of-week value 8 is out of range 0-7."},
	    {"60 * * * * *", "Second value 60 is out of range 0-59."},
	    {"* 60 * * * *", "Minute value 60 is out of range 0-59."},
	    {"1,2,99 * * * *", "Minute value 99 is out of range 0-59."},
	    {"0-60 * * * *", "Minute value 60 is out of range 0-59."},
	    {"99999999999999999999999 * * * *", "Minute value 99999999999999999999999 is out of range 0-59."},
	    // field counts
	    {"* * * *", "Expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields (second minute "
	                "hour day-of-month month day-of-week), found 4."},
	    {"* * * * * * *", "Expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields (second "
	                      "minute hour day-of-month month day-of-week), found 7."},
	    {"1h 30m", "Expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields (second minute "
	               "hour day-of-month month day-of-week), found 2."},
	    // steps
	    {"*/0 * * * *", "Minute step 0 in \"*/0\" must be at least 1."},
	    {"0 0 1-10/0 * *", "Day-of-month step 0 in \"1-10/0\" must be at least 1."},
	    {"*/61 * * * *", "Minute step 61 in \"*/61\" is out of range 1-60."},
	    {"0 */25 * * *", "Hour step 25 in \"*/25\" is out of range 1-24."},
	    {"0 0 * * */8", "Day-of-week step 8 in \"*/8\" is out of range 1-7."},
	    {"*/x * * * *", "Minute step \"x\" is not a number."},
	    {"*/-1 * * * *", "Minute step \"-1\" is not a number."},
	    // ranges
	    {"30-10 * * * *", "Minute range \"30-10\" starts after it ends."},
	    {"0 0 * DEC-JAN *", "Month range \"DEC-JAN\" starts after it ends."},
	    {"0 0 * * SAT-SUN", "Day-of-week range \"SAT-SUN\" starts after it ends."},
	    // empty list elements
	    {"1,,2 * * * *", "Minute field \"1,,2\" has an empty list element."},
	    {", * * * *", "Minute field \",\" has an empty list element."},
	    {"0 0 * * MON,", "Day-of-week field \"MON,\" has an empty list element."},
	    // malformed elements
	    {"1- * * * *", "Minute element \"1-\" is malformed; "
	     "expected *, a value, a range a-b, optionally followed by /step."},
	    {"-1 * * * *", "Minute element \"-1\" is malformed; "
	     "expected *, a value, a range a-b, optionally followed by /step."},
	    {"1-2-3 * * * *", "Minute element \"1-2-3\" is malformed; "
	     "expected *, a value, a range a-b, optionally followed by /step."},
	    {"1/2/3 * * * *", "Minute element \"1/2/3\" is malformed; "
	     "expected *, a value, a range a-b, optionally followed by /step."},
	    {"/5 * * * *", "Minute element \"/5\" is malformed; "
	     "expected *, a value, a range a-b, optionally followed by /step."},
	    {"5/ * * * *", "Minute element \"5/\" is malformed; "
	     "expected *, a value, a range a-b, optionally followed by /step."},
	    // names where they do not belong, unknown names
	    {"abc * * * *", "Minute value \"abc\" is not a number."},
	    {"*-5 * * * *", "Minute value \"*\" is not a number."},
	    {"0 noon * * *", "Hour value \"noon\" is not a number."},
	    {"0 0 L * *", "Day-of-month value \"L\" is not a number."},
	    {"0 0 1 FOO *", "Month value \"FOO\" is not a number or a month name (JAN-DEC)."},
	    {"0 0 1 MON *", "Month value \"MON\" is not a number or a month name (JAN-DEC)."},
	    {"0 0 1 January *", "Month value \"January\" is not a number or a month name (JAN-DEC)."},
	    {"0 0 * * FUNDAY", "Day-of-week value \"FUNDAY\" is not a number or a weekday name (SUN-SAT)."},
	    {"0 0 * * JAN", "Day-of-week value \"JAN\" is not a number or a weekday name (SUN-SAT)."},
	    {"1.5 * * * *", "Minute value \"1.5\" is not a number."},
	    // '?' outside the day fields
	    {"? * * * *", "\"?\" is only allowed in the day-of-month and day-of-week fields, not in the minute field."},
	    {"0 0 1 ? *", "\"?\" is only allowed in the day-of-month and day-of-week fields, not in the month field."},
	    // nicknames
	    {"@reboot", "Unknown nickname \"@reboot\"; accepted nicknames are @yearly, @annually, @monthly, @weekly, "
	                "@daily, @midnight and @hourly."},
	    {"@", "Unknown nickname \"@\"; accepted nicknames are @yearly, @annually, @monthly, @weekly, @daily, "
	          "@midnight and @hourly."},
	    {"@daily *", "Unknown nickname \"@daily *\"; accepted nicknames are @yearly, @annually, @monthly, "
	                 "@weekly, @daily, @midnight and @hourly."},
	};
	for (const ErrorCase &c : cases) {
		UserError e = ErrorFor(c.input);
		EXPECT_EQ(std::string(e.what()), "invalid cron expression \"" + std::string(c.input) + "\"") << c.input;
		EXPECT_EQ(e.Detail(), c.detail) << c.input;
		EXPECT_TRUE(Contains(e.Hint(), "5 fields")) << c.input;
		EXPECT_TRUE(Contains(e.Hint(), "@daily")) << c.input;
	}
}

TEST(CronParseTest, DurationWithSpacesGetsAHintAboutDurations) {
	UserError e = ErrorFor("1h 30m");
	EXPECT_TRUE(Contains(e.Hint(), "Durations are written without spaces, e.g. '1h30m'.")) << e.Hint();
}

TEST(CronParseTest, ErrorMessageQuotesInputVerbatim) {
	UserError e = ErrorFor(" 61 * * * * ");
	EXPECT_STREQ(e.what(), "invalid cron expression \" 61 * * * * \"");
	EXPECT_EQ(e.Detail(), "Minute value 61 is out of range 0-59.");
}

// ---------------------------------------------------------------------------------------------------------
// CronNextAfter

TEST(CronNextAfterTest, IsStrictlyAfter) {
	EXPECT_EQ(Next("* * * * *", Utc(2024, 5, 10, 12, 0, 0)), "2024-05-10 12:01:00");
	EXPECT_EQ(Next("* * * * *", Utc(2024, 5, 10, 12, 0, 30)), "2024-05-10 12:01:00");
	EXPECT_EQ(Next("* * * * *", Utc(2024, 5, 10, 12, 0, 59)), "2024-05-10 12:01:00");
	EXPECT_EQ(Next("* * * * *", Utc(2024, 5, 10, 12, 1, 0)), "2024-05-10 12:02:00");
	EXPECT_EQ(Next("* * * * * *", Utc(2024, 5, 10, 12, 0, 0)), "2024-05-10 12:00:01");
	EXPECT_EQ(Next("0 0 * * *", Utc(2024, 5, 10)), "2024-05-11 00:00:00");
	EXPECT_EQ(Next("0 0 * * *", Utc(2024, 5, 10) - 1), "2024-05-10 00:00:00");
}

TEST(CronNextAfterTest, Steps) {
	EXPECT_EQ(Next("*/15 * * * *", Utc(2024, 5, 10, 12, 7, 0)), "2024-05-10 12:15:00");
	EXPECT_EQ(Next("*/15 * * * *", Utc(2024, 5, 10, 12, 45, 0)), "2024-05-10 13:00:00");
	EXPECT_EQ(Next("*/15 * * * *", Utc(2024, 5, 10, 23, 59, 59)), "2024-05-11 00:00:00");
	EXPECT_EQ(Next("30 9-17/4 * * *", Utc(2024, 5, 10, 13, 30, 0)), "2024-05-10 17:30:00");
	EXPECT_EQ(Next("30 9-17/4 * * *", Utc(2024, 5, 10, 17, 30, 0)), "2024-05-11 09:30:00");
}

TEST(CronNextAfterTest, SixFieldSeconds) {
	EXPECT_EQ(Next("*/15 30 9 * * *", Utc(2024, 1, 1, 9, 30, 14)), "2024-01-01 09:30:15");
	EXPECT_EQ(Next("*/15 30 9 * * *", Utc(2024, 1, 1, 9, 30, 45)), "2024-01-02 09:30:00");
	EXPECT_EQ(Next("*/15 30 9 * * *", Utc(2024, 1, 1, 9, 29, 59)), "2024-01-01 09:30:00");
	EXPECT_EQ(Next("45 * * * * *", Utc(2024, 1, 1, 9, 0, 45)), "2024-01-01 09:01:45");
	EXPECT_EQ(Next("59 59 23 31 12 *", Utc(2024, 6, 1)), "2024-12-31 23:59:59");
	EXPECT_EQ(Next("5,10 * * * * *", Utc(2024, 1, 1, 23, 59, 10)), "2024-01-02 00:00:05");
}

TEST(CronNextAfterTest, MonthEnds) {
	EXPECT_EQ(Next("0 0 1 * *", Utc(2024, 1, 31, 12, 0, 0)), "2024-02-01 00:00:00");
	EXPECT_EQ(Next("0 0 31 * *", Utc(2024, 1, 31)), "2024-03-31 00:00:00");
	EXPECT_EQ(Next("0 0 31 * *", Utc(2024, 3, 31)), "2024-05-31 00:00:00");
	EXPECT_EQ(Next("0 0 31 * *", Utc(2024, 7, 31)), "2024-08-31 00:00:00");
	EXPECT_EQ(Next("0 12 30 * *", Utc(2024, 1, 30, 13, 0, 0)), "2024-03-30 12:00:00");
	EXPECT_EQ(Next("0 0 * * *", Utc(2024, 4, 30, 23, 59, 59)), "2024-05-01 00:00:00");
	EXPECT_EQ(Next("0 0 * * *", Utc(2023, 2, 28, 12, 0, 0)), "2023-03-01 00:00:00");
	EXPECT_EQ(Next("0 0 * * *", Utc(2024, 2, 28, 12, 0, 0)), "2024-02-29 00:00:00");
}

TEST(CronNextAfterTest, YearEnds) {
	EXPECT_EQ(Next("0 0 * * *", Utc(2023, 12, 31, 23, 59, 59)), "2024-01-01 00:00:00");
	EXPECT_EQ(Next("59 23 31 12 *", Utc(2023, 12, 31, 23, 59, 0)), "2024-12-31 23:59:00");
	EXPECT_EQ(Next("0 0 1 1 *", Utc(2024, 1, 1)), "2025-01-01 00:00:00");
	EXPECT_EQ(Next("0 0 1 JAN,JUL *", Utc(2024, 7, 1, 0, 0, 1)), "2025-01-01 00:00:00");
}

TEST(CronNextAfterTest, LeapYears) {
	EXPECT_EQ(Next("0 0 29 2 *", Utc(2023, 3, 1)), "2024-02-29 00:00:00");
	EXPECT_EQ(Next("0 0 29 2 *", Utc(2024, 2, 29)), "2028-02-29 00:00:00");
	EXPECT_EQ(Next("0 0 29 2 *", Utc(2024, 2, 28, 23, 59, 59)), "2024-02-29 00:00:00");
	// 2000 is a leap year (divisible by 400), 1900 and 2100 are not.
	EXPECT_EQ(Next("0 0 29 2 *", Utc(1999, 3, 1)), "2000-02-29 00:00:00");
	EXPECT_EQ(Next("0 0 29 2 *", Utc(1899, 3, 1)), "1904-02-29 00:00:00");
	EXPECT_EQ(Next("0 0 29 2 *", Utc(2099, 3, 1)), "2104-02-29 00:00:00");
	// 2096 -> 2104 is an eight-year gap, beyond the five-year horizon.
	EXPECT_EQ(CronNextAfter(Cron("0 0 29 2 *"), Utc(2097, 3, 1)), -1);
	EXPECT_EQ(CronNextAfter(Cron("0 0 29 2 *"), Utc(1897, 3, 1)), -1);
	EXPECT_EQ(Next("0 0 * 2 *", Utc(2100, 2, 28, 1, 0, 0)), "2101-02-01 00:00:00");
	EXPECT_EQ(Next("0 0 * * *", Utc(2100, 2, 28, 1, 0, 0)), "2100-03-01 00:00:00");
}

TEST(CronNextAfterTest, ImpossibleDatesReturnMinusOne) {
	for (const char *cron : {"0 0 30 2 *", "0 0 31 2 *", "0 0 31 4 *", "0 0 31 4,6,9,11 *", "0 0 30,31 FEB *",
	                         "* * * 31 6 *"})
		EXPECT_EQ(CronNextAfter(Cron(cron), Utc(2024, 1, 1)), -1) << cron;
}

TEST(CronNextAfterTest, DayOfMonthOrDayOfWeekWhenBothRestricted) {
	// Both restricted: the 13th OR any Friday.
	EXPECT_EQ(Next("0 0 13 * FRI", Utc(2024, 1, 1)), "2024-01-05 00:00:00");
	EXPECT_EQ(Next("0 0 13 * FRI", Utc(2024, 1, 5)), "2024-01-12 00:00:00");
	EXPECT_EQ(Next("0 0 13 * FRI", Utc(2024, 1, 12)), "2024-01-13 00:00:00");
	EXPECT_EQ(Next("0 0 13 * FRI", Utc(2024, 1, 13)), "2024-01-19 00:00:00");
	// February 30 never exists, but Mondays in February do.
	EXPECT_EQ(Next("0 0 30 2 MON", Utc(2024, 1, 1)), "2024-02-05 00:00:00");
	EXPECT_EQ(Next("0 0 30 2 1", Utc(2024, 2, 26)), "2025-02-03 00:00:00");
}

TEST(CronNextAfterTest, DayOfWeekOnly) {
	EXPECT_EQ(Next("0 0 * * SUN", Utc(2024, 1, 1)), "2024-01-07 00:00:00");
	EXPECT_EQ(Next("0 0 * * 7", Utc(2024, 1, 1)), "2024-01-07 00:00:00");
	EXPECT_EQ(Next("0 0 ? * 0", Utc(2024, 1, 1)), "2024-01-07 00:00:00");
	EXPECT_EQ(Next("0 9 * * MON-FRI", Utc(2024, 1, 5, 10, 0, 0)), "2024-01-08 09:00:00");
	EXPECT_EQ(Next("0 9 * * SAT", Utc(2024, 12, 30)), "2025-01-04 09:00:00");
}

TEST(CronNextAfterTest, DayOfMonthOnly) {
	EXPECT_EQ(Next("0 0 15 * *", Utc(2024, 1, 1)), "2024-01-15 00:00:00");
	EXPECT_EQ(Next("0 0 15 * ?", Utc(2024, 1, 15)), "2024-02-15 00:00:00");
}

TEST(CronNextAfterTest, StarredDayOfMonthWithStepStillMeansAnd) {
	// Vixie semantics: "*/2" leaves day-of-month unrestricted, so both fields must match (odd days that are
	// Mondays) rather than either.
	EXPECT_EQ(Next("0 0 */2 * MON", Utc(2023, 12, 31)), "2024-01-01 00:00:00");
	EXPECT_EQ(Next("0 0 */2 * MON", Utc(2024, 1, 1)), "2024-01-15 00:00:00");
}

TEST(CronNextAfterTest, Nicknames) {
	EXPECT_EQ(Next("@hourly", Utc(2024, 3, 10, 12, 34, 56)), "2024-03-10 13:00:00");
	EXPECT_EQ(Next("@daily", Utc(2024, 3, 10, 12, 34, 56)), "2024-03-11 00:00:00");
	EXPECT_EQ(Next("@midnight", Utc(2024, 3, 10)), "2024-03-11 00:00:00");
	EXPECT_EQ(Next("@weekly", Utc(2024, 1, 3)), "2024-01-07 00:00:00");
	EXPECT_EQ(Next("@monthly", Utc(2024, 1, 15)), "2024-02-01 00:00:00");
	EXPECT_EQ(Next("@yearly", Utc(2024, 6, 1)), "2025-01-01 00:00:00");
	EXPECT_EQ(Next("@annually", Utc(2024, 1, 1)), "2025-01-01 00:00:00");
}

TEST(CronNextAfterTest, BeforeTheEpoch) {
	EXPECT_EQ(CronNextAfter(Cron("0 0 * * *"), Utc(1969, 12, 31, 12, 0, 0)), 0);
	EXPECT_EQ(Next("0 0 1 1 *", Utc(1960, 6, 15)), "1961-01-01 00:00:00");
	EXPECT_EQ(Next("0 0 * * THU", Utc(1969, 12, 24, 12, 0, 0)), "1969-12-25 00:00:00");
	EXPECT_EQ(Next("30 * * * *", -1), "1970-01-01 00:30:00");
	EXPECT_EQ(Next("59 23 31 12 *", -60), "1970-12-31 23:59:00");
}

TEST(CronNextAfterTest, DegenerateSpecsAndExtremeTimes) {
	EXPECT_EQ(CronNextAfter(CronSpec{}, 0), -1);
	CronSpec no_months = Cron("* * * * *");
	no_months.months = 0;
	EXPECT_EQ(CronNextAfter(no_months, 0), -1);
	EXPECT_EQ(CronNextAfter(Cron("* * * * *"), std::numeric_limits<int64_t>::max()), -1);
	EXPECT_EQ(CronNextAfter(Cron("* * * * *"), std::numeric_limits<int64_t>::max() - 10), -1);
}

TEST(CronNextAfterTest, ImpossibleExpressionsAreCheap) {
	// A second-by-second scan would need ~1.6e8 steps per call; a thousand calls of that would time out.
	CronSpec feb30 = Cron("0 0 30 2 *");
	CronSpec rare = Cron("59 59 23 31 4 *");
	for (int i = 0; i < 1000; i++) {
		ASSERT_EQ(CronNextAfter(feb30, Utc(2024, 1, 1) + i * 7919), -1);
		ASSERT_EQ(CronNextAfter(rare, Utc(2024, 1, 1) + i * 7919), -1);
	}
}

// Brute force: walk minute by minute using libc's calendar and check each minute against the spec.
int64_t
BruteForceNext(const CronSpec &spec, int64_t after, int64_t max_minutes) {
	int64_t minute_start = after - ((after % 60) + 60) % 60;
	for (int64_t i = 0; i <= max_minutes; i++, minute_start += 60) {
		time_t t = static_cast<time_t>(minute_start);
		struct tm tm {};
		gmtime_r(&t, &tm);
		if (!((spec.months >> (tm.tm_mon + 1)) & 1) || !((spec.hours >> tm.tm_hour) & 1) ||
		    !((spec.minutes >> tm.tm_min) & 1))
			continue;
		bool dom = (spec.days_of_month >> tm.tm_mday) & 1;
		bool dow = (spec.days_of_week >> tm.tm_wday) & 1;
		if (!((spec.dom_restricted && spec.dow_restricted) ? (dom || dow) : (dom && dow)))
			continue;
		for (int s = 0; s < 60; s++)
			if (((spec.seconds >> s) & 1) && minute_start + s > after)
				return minute_start + s;
	}
	return -2; // "not found within the scan", distinct from CronNextAfter's -1
}

TEST(CronNextAfterTest, AgreesWithBruteForce) {
	const char *expressions[] = {
	    "* * * * *",         "*/7 * * * *",     "0 * * * *",         "13 7 * * *",        "0 0 * * *",
	    "0 0 1 * *",         "0 0 31 * *",      "30 23 28-31 * *",   "0 0 13 * FRI",      "0 12 * * MON-FRI",
	    "0 0 * * SUN",       "0 0 */2 * MON",   "0 0 1,15 * 3",      "15 */6 1-7 * 1",    "0 0 * FEB *",
	    "0 0 29 FEB,MAR *",  "45 3 10-20 * *", "*/20 * * * * *",    "7 30 9 * * *",      "59 59 23 * * *",
	    "0 0 0 31 * *",      "0 0 12 ? * SAT",  "0 0 * * 7",         "10-50/20 5 * * *",  "0 0 1 */2 *",
	};
	// Deterministic spread of start times between 1960 and 2100.
	uint64_t state = 88172645463325252ull;
	std::vector<int64_t> starts = {Utc(2024, 2, 28, 23, 59, 59), Utc(2023, 12, 31, 23, 59, 30), Utc(2000, 2, 29),
	                               Utc(2100, 2, 28, 12, 0, 0), Utc(1969, 12, 31, 23, 59, 59), 0, -1};
	const int64_t lo = Utc(1960, 1, 1);
	const int64_t hi = Utc(2100, 1, 1);
	while (starts.size() < 40) {
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		starts.push_back(lo + static_cast<int64_t>(state % static_cast<uint64_t>(hi - lo)));
	}
	int compared = 0;
	for (const char *expression : expressions) {
		CronSpec spec = Cron(expression);
		for (int64_t start : starts) {
			int64_t expected = BruteForceNext(spec, start, int64_t{400} * 24 * 60);
			ASSERT_NE(expected, -2) << expression << " after " << Iso(start);
			ASSERT_EQ(Iso(CronNextAfter(spec, start)), Iso(expected)) << expression << " after " << Iso(start);
			compared++;
		}
	}
	EXPECT_EQ(compared, 25 * 40);
}

// ---------------------------------------------------------------------------------------------------------
// FormatDuration

TEST(FormatDurationTest, ExactValues) {
	EXPECT_EQ(FormatDuration(5400), "1h30m");
	EXPECT_EQ(FormatDuration(30), "30s");
	EXPECT_EQ(FormatDuration(86400), "1d");
	EXPECT_EQ(FormatDuration(0), "0s");
	EXPECT_EQ(FormatDuration(1), "1s");
	EXPECT_EQ(FormatDuration(59), "59s");
	EXPECT_EQ(FormatDuration(60), "1m");
	EXPECT_EQ(FormatDuration(90), "1m30s");
	EXPECT_EQ(FormatDuration(3600), "1h");
	EXPECT_EQ(FormatDuration(3601), "1h1s");
	EXPECT_EQ(FormatDuration(86399), "23h59m59s");
	EXPECT_EQ(FormatDuration(90000), "1d1h");
	EXPECT_EQ(FormatDuration(604800), "1w");
	EXPECT_EQ(FormatDuration(691200), "1w1d");
	EXPECT_EQ(FormatDuration(694861), "1w1d1h1m1s");
	EXPECT_EQ(FormatDuration(315360000), "521w3d");
	EXPECT_EQ(FormatDuration(-90), "-1m30s");
	EXPECT_EQ(FormatDuration(std::numeric_limits<int64_t>::min()), "-15250284452471w3d15h30m8s");
	EXPECT_EQ(FormatDuration(std::numeric_limits<int64_t>::max()), "15250284452471w3d15h30m7s");
}

TEST(FormatDurationTest, RoundTripsThroughParseSchedule) {
	std::vector<int64_t> values = {1,     59,     60,     61,     3599,   3600,      3601,     86399,
	                               86400, 86401,  604799, 604800, 604801, 777600,    5400,     150,
	                               300,   694861, 1209600, 31536000, 315359999, 315360000};
	uint64_t state = 0x9E3779B97F4A7C15ull;
	for (int i = 0; i < 2000; i++) {
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		values.push_back(1 + static_cast<int64_t>((state >> 11) % static_cast<uint64_t>(kMaxScheduleSeconds)));
	}
	for (int64_t v : values) {
		std::string text = FormatDuration(v);
		Schedule s = ParseSchedule(text, 0);
		ASSERT_EQ(s.kind, ScheduleKind::Duration) << v;
		ASSERT_EQ(s.seconds, v) << text;
		ASSERT_EQ(s.text, text) << v;
	}
}

TEST(FormatDurationTest, NormalisesParsedDurations) {
	EXPECT_EQ(FormatDuration(ParseSchedule("90m", 0).seconds), "1h30m");
	EXPECT_EQ(FormatDuration(ParseSchedule("90", 0).seconds), "1m30s");
	EXPECT_EQ(FormatDuration(ParseSchedule("14d", 0).seconds), "2w");
	EXPECT_EQ(FormatDuration(ParseSchedule("0h5m", 0).seconds), "5m");
}

} // namespace
} // namespace pgtrickle
