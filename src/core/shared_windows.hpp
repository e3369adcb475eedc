// Sharing one computation of a change window between the terms of a delta statement (pure text).
//
// The engine writes each base table's consolidated change window as a subquery carrying a marker,
// a string literal '<prefix><name>' (WindowMarker), and deparses the terms with PostgreSQL's
// ruleutils. A delta over n inputs reads a window in many terms (its inserted rows, its deleted rows,
// the keys it touched), and each copy was consolidated again: at 1 % TPC-H cycles, grouping 12,000
// changed lineitem rows took about 15 ms per copy. ShareMarkedSubqueries replaces every marked
// subquery whose name occurs at least twice by a reference to one MATERIALIZED CTE computed once per
// statement.
#pragma once

#include <string>
#include <string_view>

namespace pgtrickle {

inline constexpr std::string_view kWindowMarkerPrefix = "__pgt_window_";

// The marker literal's content for a window `name` (digits, letters and '_' only).
std::string WindowMarker(std::string_view name);

// The CTE name a shared window gets.
std::string SharedWindowName(std::string_view name);

// `sql` with each subquery holding a marker whose name occurs in two or more subqueries replaced by
// "SELECT * FROM <SharedWindowName>", and those CTEs defined in front (the text of the first such
// subquery being the definition): "WITH <name> AS MATERIALIZED (...), ... SELECT * FROM (<sql>)
// __pgt_shared". A marked subquery is the innermost parenthesised "(SELECT ...)" around the marker.
// Quoted identifiers and string literals are skipped when matching parentheses. Returns `sql`
// unchanged when no name occurs twice (or the text cannot be parsed as expected: unbalanced
// parentheses, or a marker outside any subquery).
std::string ShareMarkedSubqueries(const std::string &sql);

} // namespace pgtrickle
