// Unit tests for SQL text helpers (src/core/sql_text.cpp).
#include "core/sql_text.hpp"

#include <gtest/gtest.h>

namespace pgtrickle {
namespace {

TEST(QuoteIdent, AlwaysQuotesAndDoublesQuotes) {
	EXPECT_EQ(QuoteIdent("abc"), "\"abc\"");
	EXPECT_EQ(QuoteIdent("MixedCase"), "\"MixedCase\"");
	EXPECT_EQ(QuoteIdent("a\"b"), "\"a\"\"b\"");
	EXPECT_EQ(QuoteQualified("s", "t"), "\"s\".\"t\"");
}

TEST(QuoteLiteral, EscapesQuotesAndBackslashes) {
	EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
	EXPECT_EQ(QuoteLiteral("a\\b"), "E'a\\\\b'");
}

TEST(TrimQueryText, RemovesTrailingSemicolonsAndWhitespace) {
	EXPECT_EQ(TrimQueryText("  SELECT 1 ;; \n"), "SELECT 1");
	EXPECT_EQ(TrimQueryText(";"), "");
}

TEST(ReplacePlaceholders, ReplacesNineDigitParametersItKnows) {
	auto known = [](long id) -> std::optional<std::string> {
		if (id == 987670001)
			return std::string("ARRAY(SELECT 1)");
		return std::nullopt;
	};
	EXPECT_EQ(ReplacePlaceholders("x = ANY ($987670001)", known), "x = ANY (ARRAY(SELECT 1))");
	EXPECT_EQ(ReplacePlaceholders("$987670001 + $987670001", known), "ARRAY(SELECT 1) + ARRAY(SELECT 1)");
	// Unknown ids, other lengths, the window parameters and text inside quotes stay as they are.
	EXPECT_EQ(ReplacePlaceholders("$987670002 $1 $98767000 $9876700010", known), "$987670002 $1 $98767000 $9876700010");
	EXPECT_EQ(ReplacePlaceholders("'$987670001' \"$987670001\" 'it''s $987670001'", known),
	          "'$987670001' \"$987670001\" 'it''s $987670001'");
	EXPECT_EQ(ReplacePlaceholders("a'$987670001", known), "a'$987670001"); // an unterminated literal
	EXPECT_EQ(ReplacePlaceholders("f($987670001)", known), "f(ARRAY(SELECT 1))");
}

TEST(ReservedNames, HiddenPrefixCaseInsensitive) {
	EXPECT_TRUE(IsReservedColumnName("__pgt_x"));
	EXPECT_TRUE(IsReservedColumnName("__PGT_X"));
	EXPECT_FALSE(IsReservedColumnName("_pgt_x"));
	EXPECT_FALSE(IsReservedColumnName("__pg"));
}

} // namespace
} // namespace pgtrickle
