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

TEST(ReservedNames, HiddenPrefixCaseInsensitive) {
	EXPECT_TRUE(IsReservedColumnName("__pgt_x"));
	EXPECT_TRUE(IsReservedColumnName("__PGT_X"));
	EXPECT_FALSE(IsReservedColumnName("_pgt_x"));
	EXPECT_FALSE(IsReservedColumnName("__pg"));
}

} // namespace
} // namespace pgtrickle
