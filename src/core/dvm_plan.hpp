// The differential maintenance plan of one stream table, and the SQL emitted from it.
//
// src/analyze/dvm.cpp translates a PostgreSQL Query into a DvmPlan: the query's shape (bag of rows,
// algebraically maintained groups, or groups recomputed when touched), its output columns, group keys,
// aggregates, and SQL fragments for the post-state input and for its delta as a Z-set
// (rows with a signed weight column "__pgt_w"). Everything here turns a plan into SQL text; nothing
// here knows PostgreSQL's internals, so it is unit-tested without a server.
//
// Storage table layout (the population query defines it, CREATE TABLE AS ... WITH NO DATA):
//   visible columns ...                    what users read: exactly the query's output
//   __pgt_gk_<j>     (Grouped/Rescan)       group key values
//   __pgt_count      (Grouped)              rows in the group (Z-set multiplicity)
//   __pgt_a_<k>, __pgt_nn_<k> (Grouped)     per-aggregate state: value, non-null input count
//   __pgt_rid        (all)                  hash of the identity columns (visible columns for a bag,
//                                           group keys otherwise); indexed; lookups also compare the
//                                           values themselves, so a hash collision cannot mix rows.
#pragma once

#include <string>
#include <vector>

namespace pgtrickle {

struct DvmColumn {
	std::string name; // unquoted
	std::string type; // SQL type text (format_type)
};

// Min/Max are semi-algebraic: an insertion below the minimum replaces it; a deletion that reaches
// the current extreme recomputes that one group's extreme from the sources.
enum class AggKind { CountStar, Count, Sum, Avg, Min, Max };

struct AggSpec {
	AggKind kind;
	bool has_filter = false;  // input column __pgt_f_<k> (boolean) exists
	std::string value_type;   // type of the stored value __pgt_a_<k> (bigint for counts, the SUM result type,
	                          // the argument type for MIN/MAX)
	std::string arg_cast;     // cast applied to the input before multiplying by the weight ("bigint" for int2/int4)
};

enum class DvmKind {
	Bag,     // select-project-join (and UNION ALL): the table holds the multiset of rows
	Grouped, // GROUP BY / DISTINCT with COUNT/SUM/AVG maintained algebraically
	Rescan,  // GROUP BY with other aggregates or HAVING: touched groups are recomputed from the sources
};

struct DvmPlan {
	DvmKind kind = DvmKind::Bag;
	std::vector<DvmColumn> visible;
	std::vector<DvmColumn> group_keys; // Grouped/Rescan; empty = one group (aggregate without GROUP BY)
	std::vector<AggSpec> aggs;         // Grouped
	// Grouped: visible column expressions over the new state, written against alias "s" with columns
	// s."__pgt_gk_<j>", s."__pgt_count", s."__pgt_a_<k>", s."__pgt_nn_<k>".
	std::vector<std::string> visible_from_state;

	// SQL producing the post-state input rows:
	//   Bag:     the visible columns;
	//   Grouped: __pgt_gk_<j>, __pgt_arg_<k> (non-count aggregates and count(x)), __pgt_f_<k> (filters);
	//   Rescan:  the query itself with extra columns __pgt_gk_<j> (group keys of each output row).
	std::string input_sql;
	// SQL producing the delta of the input as a Z-set: the same columns as input_sql (for Rescan: at least
	// the group keys __pgt_gk_<j>) plus "__pgt_w" bigint. Reads change buffers through parameter $1, the
	// previous frontier (pg_snapshot).
	std::string delta_sql;
	// The same delta written for large change windows (joins' old states hashed rather than probed
	// row by row); empty when it would be the same text. The refresh picks it by the window's size.
	std::string delta_sql_large;
	// Rescan, Grouped: a condition (SQL, same parameters) under which every group counts as touched (a table
	// read by a subquery in the select list or HAVING changed, or a change can move every input row); empty
	// when none. Then delta_sql is not evaluated: Rescan recomputes every group without filtering by touched
	// keys, Grouped replaces the stored groups by the population's.
	std::string every_group_when;
	// True when delta_sql reads the storage table itself (the old result, a recursive CTE's): it names it
	// kStoragePlaceholder, replaced by the table's name (DeltaSqlFor).
	bool reads_storage = false;
	// True for the delta of a WITH RECURSIVE query (the refresh caps work_mem while it runs).
	bool recursive = false;
	// Visible columns worth an index on the storage table (a recursive step joins the old result by them).
	std::vector<std::string> storage_index_columns;

	std::string operator_tree; // human-readable, for explain_st
	std::string strategy;      // one line, for explain_st
};

// pg_catalog.hash_record_extended(ROW(e1, ...), 0): the identity hash of a row.
std::string RidExpr(const std::vector<std::string> &exprs);

// SELECT producing every storage column (visible + hidden) from the sources' current state.
std::string PopulationSql(const DvmPlan &plan);

// One statement applying the delta since frontier $1 to the storage table `st` (qualified, quoted).
// Returns one row: (rows_inserted bigint, rows_deleted bigint, delta_rows bigint) where an updated row
// counts as one deleted and one inserted row.
std::string ApplySql(const DvmPlan &plan, const std::string &st);

// The predicate selecting the rows of change buffer alias `b` that a refresh with previous frontier
// ($1 snapshot, $2 xid, $3 command id) consumes. Under the refresh snapshot, buffer rows of
// transactions not yet visible are invisible anyway, so only the lower bound needs stating: rows of
// transactions the previous refresh did not see, plus rows the previous refresh's own transaction
// wrote after it ($2/$3: that transaction counted as visible in $1, but only up to command $3).
//
// `bounded`: the same rows, with the xid also stated between the window's least xid and the largest
// xid8 as two conditions of their own. Buffers have no column statistics (cdc.cpp), so PostgreSQL
// estimates a pair of bounds on one column as 0.5 % of the table's rows, the predicate alone as about
// a fifth: for a window far smaller than its buffer (a slower consumer keeps the older rows, or not
// yet vacuumed ones take its pages) the unbounded estimate had the delta join whole tables by hash for
// a window of a hundred rows.
std::string BufferWindowPredicate(const std::string &alias, bool bounded = false);

// One row if change buffer `buffer` (qualified, quoted) holds a row of the window, none otherwise (used
// as a subquery in FROM or a scalar subquery: an EXISTS would drop its ORDER BY and LIMIT). The window's
// rows are the buffer's newest, so it reads the buffer's xid index backwards from the newest row,
// bounded below by the window's least xid: a sequential scan, which the planner prefers for a first
// row, read every older row a slower consumer keeps first (35 ms for 475,000 rows, now 0.1 ms).
std::string BufferWindowProbe(const std::string &buffer);

// The "every row/group" switch (see DvmPlan::every_group_when): the CTE computing condition `when` once
// per statement, and the flag as read where it gates.
std::string EveryCte(const std::string &when);
inline constexpr const char *kEveryFlag = "(SELECT e.f FROM __pgt_every e)";

// The storage table as written in a delta that reads it (see DvmPlan::reads_storage).
inline constexpr const char *kStoragePlaceholder = "\"__pgt_storage_table__\"";

// plan.delta_sql (or `delta`, a variant of it) with the storage table `st` (qualified, quoted) in place
// of kStoragePlaceholder.
std::string DeltaSqlFor(const DvmPlan &plan, const std::string &st, const std::string &delta);

// ORDER BY ... LIMIT k over a grouped query P, without OFFSET: the condition under which the stored
// top-k (the storage table S) is no longer a top-k of P and must be recomputed. With K the groups the
// changes touch (their keys, from the delta of P's input): recompute when a row of S belongs to K, or
// when a new row of a group of K ranks among the first k of S together with those new rows (new rows
// first among equals). Otherwise every row of P outside S is either unchanged (it sorted after the k-th
// row of S before, and still does) or a new row of K sorting after k rows of S, and S stays a top-k.
struct TopKSortKey {
	size_t visible;   // 0-based index of the visible column it sorts by
	bool descending;
	bool nulls_first;
};
struct TopKGroups {
	std::string keys_delta_sql;              // rows with columns __pgt_gk_1 .. __pgt_gk_G (and others)
	std::string grouped_sql;                 // P: the visible columns, then the G group keys, positionally
	std::vector<std::string> storage_columns; // the visible columns' names, in order
	std::vector<size_t> group_key_visible;   // per group key: 0-based index of the visible column holding it
	std::vector<TopKSortKey> order;
	long long limit = 0;
};
// A query returning a row exactly when the stored top-k must be recomputed (the delta of a Rescan plan
// without group keys). Reads the storage table through kStoragePlaceholder.
std::string TopKGroupsTriggerSql(const TopKGroups &t);

// Parameter types of every statement reading change buffers: pg_snapshot, xid8, int8.
inline constexpr int kFrontierParamCount = 3;

// Hidden column names.
std::string GroupKeyColumn(size_t j);
std::string AggValueColumn(size_t k);
std::string AggNonNullColumn(size_t k);
std::string AggArgColumn(size_t k);
std::string AggFilterColumn(size_t k);
inline constexpr const char *kWeightColumn = "__pgt_w";
inline constexpr const char *kCountColumn = "__pgt_count";
inline constexpr const char *kRidColumn = "__pgt_rid";

} // namespace pgtrickle
