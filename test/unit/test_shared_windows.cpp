// Unit tests for sharing marked change-window subqueries (src/core/shared_windows.cpp).
#include "core/shared_windows.hpp"

#include <gtest/gtest.h>

namespace pgtrickle {
namespace {

std::string
Window(const std::string &name, const std::string &alias) {
	return "(SELECT " + alias + ".c FROM t " + alias + " HAVING (('" + WindowMarker(name) + "'::text IS NOT NULL)))";
}

TEST(SharedWindows, SharesANameThatOccursTwice) {
	std::string sql = "SELECT 1 FROM " + Window("7", "b") + " d JOIN " + Window("7", "b_2") + " e ON true";
	EXPECT_EQ(ShareMarkedSubqueries(sql),
	          "WITH \"__pgt_shared_window_7\" AS MATERIALIZED (SELECT b.c FROM t b HAVING (('__pgt_window_7'::text "
	          "IS NOT NULL))) SELECT * FROM (SELECT 1 FROM (SELECT * FROM \"__pgt_shared_window_7\") d JOIN (SELECT "
	          "* FROM \"__pgt_shared_window_7\") e ON true) \"__pgt_shared\"");
}

TEST(SharedWindows, LeavesASingleOccurrenceInline) {
	std::string sql = "SELECT 1 FROM " + Window("7", "b") + " d, " + Window("8", "b") + " e, " + Window("8", "x") +
	                  " f";
	std::string out = ShareMarkedSubqueries(sql);
	EXPECT_NE(out.find("FROM (SELECT b.c FROM t b HAVING (('__pgt_window_7'"), std::string::npos) << out;
	EXPECT_NE(out.find("\"__pgt_shared_window_8\" AS MATERIALIZED"), std::string::npos) << out;
	EXPECT_EQ(out.find("\"__pgt_shared_window_7\""), std::string::npos) << out;
}

TEST(SharedWindows, MarkerInsideASublinkAndNestedParentheses) {
	std::string sql = "SELECT 1 WHERE (ROW(a.k) NOT IN (SELECT k.c FROM " + Window("3", "b") +
	                  " k)) AND EXISTS (SELECT 1 FROM " + Window("3", "b_1") + " z)";
	std::string out = ShareMarkedSubqueries(sql);
	EXPECT_EQ(out, "WITH \"__pgt_shared_window_3\" AS MATERIALIZED (SELECT b.c FROM t b HAVING "
	               "(('__pgt_window_3'::text IS NOT NULL))) SELECT * FROM (SELECT 1 WHERE (ROW(a.k) NOT IN (SELECT "
	               "k.c FROM (SELECT * FROM \"__pgt_shared_window_3\") k)) AND EXISTS (SELECT 1 FROM (SELECT * FROM "
	               "\"__pgt_shared_window_3\") z)) \"__pgt_shared\"");
}

TEST(SharedWindows, ParenthesesAndMarkersInQuotesAreText) {
	// A literal and an identifier holding parentheses, quotes and a marker-like text are not structure.
	std::string sql = "SELECT ')(', \"a)\"\"(\" FROM " + Window("5", "b") + " d, " + Window("5", "c") +
	                  " e WHERE x = 'it''s ''__pgt_window_5'' ('";
	std::string out = ShareMarkedSubqueries(sql);
	EXPECT_EQ(out, "WITH \"__pgt_shared_window_5\" AS MATERIALIZED (SELECT b.c FROM t b HAVING "
	               "(('__pgt_window_5'::text IS NOT NULL))) SELECT * FROM (SELECT ')(', \"a)\"\"(\" FROM (SELECT * "
	               "FROM \"__pgt_shared_window_5\") d, (SELECT * FROM \"__pgt_shared_window_5\") e WHERE x = 'it''s "
	               "''__pgt_window_5'' (') \"__pgt_shared\"");
}

TEST(SharedWindows, UnparsableTextIsLeftAlone) {
	std::string twice = Window("1", "b") + Window("1", "c");
	for (const std::string &sql : {"SELECT (" + twice, "SELECT " + twice + ")", "SELECT 'open" + twice,
	                               "SELECT '" + WindowMarker("1") + "', '" + WindowMarker("1") + "'"})
		EXPECT_EQ(ShareMarkedSubqueries(sql), sql);
}

TEST(SharedWindows, SelectMustBeAWord) {
	// "(SELECTED" is not a subquery: the marker's owner is the outer "(SELECT".
	std::string sql = "SELECT (SELECT x FROM (SELECTED('" + WindowMarker("2") + "')) q) a, (SELECT '" +
	                  WindowMarker("2") + "') b";
	std::string out = ShareMarkedSubqueries(sql);
	EXPECT_EQ(out, "WITH \"__pgt_shared_window_2\" AS MATERIALIZED (SELECT x FROM (SELECTED('__pgt_window_2')) q) "
	               "SELECT * FROM (SELECT (SELECT * FROM \"__pgt_shared_window_2\") a, (SELECT * FROM "
	               "\"__pgt_shared_window_2\") b) \"__pgt_shared\"");
}

} // namespace
} // namespace pgtrickle
