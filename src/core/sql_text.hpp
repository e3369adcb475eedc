// Small SQL text helpers used when emitting SQL: identifier quoting and query-text cleanup.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtrickle {

// Always double-quotes (so case and special characters survive exactly): foo -> "foo", a"b -> "a""b".
std::string QuoteIdent(std::string_view ident);
// "schema"."name"
std::string QuoteQualified(std::string_view schema, std::string_view name);
// Standard SQL string literal: it's -> 'it''s'. Only for text that must be embedded in DDL
// (values in DML always go in as parameters).
std::string QuoteLiteral(std::string_view text);
// Removes trailing whitespace and semicolons, and leading whitespace.
std::string TrimQueryText(std::string_view sql);
// ASCII upper/lower case.
std::string AsciiUpper(std::string_view s);
std::string AsciiLower(std::string_view s);
// Joins with a separator.
std::string Join(const std::vector<std::string> &parts, std::string_view sep);
// True if `name` begins with the reserved prefix for hidden columns ("__pgt_", case-insensitive).
bool IsReservedColumnName(std::string_view name);

// `sql` with each placeholder "$<id>" (a parameter reference of exactly 9 digits, outside quoted
// identifiers and string literals) replaced by replace(id) where that gives a value; everything else
// unchanged. The engine writes such parameters into PostgreSQL trees as stand-ins for SQL text that
// exists only after deparsing (state columns, touched keys).
std::string ReplacePlaceholders(std::string_view sql, const std::function<std::optional<std::string>(long)> &replace);

inline constexpr std::string_view kHiddenPrefix = "__pgt_";

} // namespace pgtrickle
