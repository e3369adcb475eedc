// Unit tests for the SQL emitted from a differential plan (src/core/dvm_plan.cpp).
#include "core/dvm_plan.hpp"

#include <gtest/gtest.h>

namespace pgtrickle {
namespace {

bool
Contains(const std::string &haystack, const std::string &needle) {
	return haystack.find(needle) != std::string::npos;
}

DvmPlan
BagPlan() {
	DvmPlan p;
	p.kind = DvmKind::Bag;
	p.visible = {{"id", "integer"}, {"amount", "numeric"}};
	p.input_sql = "SELECT id, amount FROM t";
	p.delta_sql = "SELECT id, amount, __pgt_w FROM d";
	return p;
}

DvmPlan
GroupedPlan(bool with_key) {
	DvmPlan p;
	p.kind = DvmKind::Grouped;
	p.visible = {{"n", "bigint"}, {"total", "numeric"}};
	if (with_key)
		p.group_keys = {{"__pgt_gk_1", "text"}};
	p.aggs = {AggSpec{AggKind::CountStar, false, "pg_catalog.int8", "pg_catalog.int8"},
	          AggSpec{AggKind::Sum, true, "pg_catalog.numeric", "pg_catalog.numeric"}};
	p.visible_from_state = {"(s.\"__pgt_a_1\")::bigint", "(s.\"__pgt_a_2\")::numeric"};
	p.input_sql = "SELECT g AS __pgt_gk_1, amount AS __pgt_arg_2, ok AS __pgt_f_2 FROM t";
	p.delta_sql = "SELECT g AS __pgt_gk_1, amount AS __pgt_arg_2, ok AS __pgt_f_2, __pgt_w FROM d";
	return p;
}

TEST(RidExpr, HashesAllColumnsAsOneRecord) {
	EXPECT_EQ(RidExpr({"a.x", "a.y"}), "pg_catalog.hash_record_extended(ROW(a.x, a.y), 0)");
	EXPECT_EQ(RidExpr({}), "0::pg_catalog.int8");
}

TEST(BufferWindow, UsesFrontierSnapshotAndOwnTransactionCommandId) {
	std::string w = BufferWindowPredicate("b");
	EXPECT_TRUE(Contains(w, "pg_catalog.pg_visible_in_snapshot(b.\"__pgt_xid\", $1)"));
	EXPECT_TRUE(Contains(w, "b.\"__pgt_xid\" OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($1)"));
	EXPECT_TRUE(Contains(w, "b.\"__pgt_xid\" IS DISTINCT FROM $2"));
	EXPECT_TRUE(Contains(w, "b.\"__pgt_cid\" OPERATOR(pg_catalog.>=) $3"));
}

TEST(BufferWindow, BoundedStatesBothBoundsAsConditionsOfTheirOwn) {
	std::string w = BufferWindowPredicate("b", true);
	std::string bounds = "b.\"__pgt_xid\" OPERATOR(pg_catalog.>=) LEAST(pg_catalog.pg_snapshot_xmin($1), $2) AND "
	                     "b.\"__pgt_xid\" OPERATOR(pg_catalog.<=) '18446744073709551615'::pg_catalog.xid8 AND ";
	EXPECT_EQ(w, bounds + BufferWindowPredicate("b"));
	EXPECT_FALSE(Contains(BufferWindowPredicate("b"), "LEAST"));
}

TEST(BufferWindow, ProbeReadsNewestRowsFirstBoundedByTheWindowsLeastXid) {
	std::string p = BufferWindowProbe("pgtrickle_changes.changes_1");
	EXPECT_TRUE(Contains(p, "FROM pgtrickle_changes.changes_1 b WHERE "));
	EXPECT_TRUE(Contains(p, "b.\"__pgt_xid\" OPERATOR(pg_catalog.>=) LEAST(pg_catalog.pg_snapshot_xmin($1), $2) AND "));
	EXPECT_TRUE(Contains(p, BufferWindowPredicate("b")));
	EXPECT_TRUE(Contains(p, "ORDER BY b.\"__pgt_xid\" DESC LIMIT 1"));
}

TEST(PopulationSql, BagAddsRowIdentity) {
	std::string sql = PopulationSql(BagPlan());
	EXPECT_TRUE(Contains(sql, "SELECT q.\"id\", q.\"amount\", pg_catalog.hash_record_extended(ROW(q.\"id\", q.\"amount\"), 0) AS \"__pgt_rid\""));
	EXPECT_TRUE(Contains(sql, "SELECT id, amount FROM t"));
}

TEST(PopulationSql, GroupedComputesStateFromScratch) {
	std::string sql = PopulationSql(GroupedPlan(true));
	EXPECT_TRUE(Contains(sql, "pg_catalog.count(*) AS \"__pgt_count\""));
	EXPECT_TRUE(Contains(sql, "pg_catalog.count(*) AS \"__pgt_a_1\""));
	EXPECT_TRUE(Contains(sql, "pg_catalog.sum(x.\"__pgt_arg_2\") FILTER (WHERE x.\"__pgt_f_2\") AS \"__pgt_a_2\""));
	EXPECT_TRUE(Contains(sql, "pg_catalog.count(x.\"__pgt_arg_2\") FILTER (WHERE x.\"__pgt_f_2\") AS \"__pgt_nn_2\""));
	EXPECT_TRUE(Contains(sql, "GROUP BY x.\"__pgt_gk_1\""));
	EXPECT_TRUE(Contains(sql, "(s.\"__pgt_a_1\")::bigint AS \"n\""));
}

TEST(PopulationSql, AggregateWithoutGroupByHasNoGroupClause) {
	std::string sql = PopulationSql(GroupedPlan(false));
	EXPECT_FALSE(Contains(sql, "GROUP BY"));
	EXPECT_TRUE(Contains(sql, "0::pg_catalog.int8 AS \"__pgt_rid\""));
}

TEST(ApplySql, BagConsolidatesAndAppliesCopies) {
	std::string sql = ApplySql(BagPlan(), "\"public\".\"st\"");
	// Consolidation: weights summed per row, zero rows dropped.
	EXPECT_TRUE(Contains(sql, "GROUP BY x.\"id\", x.\"amount\" HAVING pg_catalog.sum(x.\"__pgt_w\") OPERATOR(pg_catalog.<>) 0"));
	// Deletes remove exactly -w copies, matched by identity hash and by value (NULL-safe).
	EXPECT_TRUE(Contains(sql, "LIMIT (OPERATOR(pg_catalog.-) k.\"__pgt_w\")"));
	EXPECT_TRUE(Contains(sql, "s.\"id\" IS NOT DISTINCT FROM k.\"id\" AND s.\"amount\" IS NOT DISTINCT FROM k.\"amount\""));
	// Inserts add w copies.
	EXPECT_TRUE(Contains(sql, "pg_catalog.generate_series(1, k.\"__pgt_w\")"));
	EXPECT_TRUE(Contains(sql, "DELETE FROM \"public\".\"st\" WHERE ctid OPERATOR(pg_catalog.=) ANY"));
}

TEST(ApplySql, BagReadingStorageNamesTheStorageTable) {
	DvmPlan p = BagPlan();
	p.reads_storage = true;
	p.delta_sql = std::string("SELECT s.id, s.amount, 1 AS __pgt_w FROM ") + kStoragePlaceholder + " s JOIN " +
	              kStoragePlaceholder + " t USING (id)";
	std::string sql = ApplySql(p, "\"app\".\"st\"");
	EXPECT_FALSE(Contains(sql, kStoragePlaceholder));
	EXPECT_TRUE(Contains(sql, "FROM \"app\".\"st\" s JOIN \"app\".\"st\" t USING (id)"));
	EXPECT_EQ(DeltaSqlFor(p, "x.y", "a " + std::string(kStoragePlaceholder) + " b"), "a x.y b");
	p.reads_storage = false;
	EXPECT_EQ(DeltaSqlFor(p, "x.y", "unchanged"), "unchanged");
}

TEST(ApplySql, GroupedUpdatesStateAlgebraically) {
	std::string sql = ApplySql(GroupedPlan(true), "\"public\".\"st\"");
	EXPECT_TRUE(Contains(sql, "pg_catalog.sum(x.\"__pgt_w\") AS __pgt_dc"));
	// SUM delta multiplies the weight by the (filtered, non-null) argument.
	EXPECT_TRUE(Contains(sql, "CASE WHEN x.\"__pgt_arg_2\" IS NOT NULL AND x.\"__pgt_f_2\" THEN x.\"__pgt_w\" OPERATOR(pg_catalog.*) x.\"__pgt_arg_2\"::pg_catalog.numeric END"));
	// A SUM over no non-null input is NULL.
	EXPECT_TRUE(Contains(sql, "CASE WHEN (COALESCE(o.__pgt_onn_2, 0) OPERATOR(pg_catalog.+) o.__pgt_dnn_2) OPERATOR(pg_catalog.=) 0 THEN NULL"));
	// Groups whose count reaches zero are deleted; the others updated or inserted.
	EXPECT_TRUE(Contains(sql, "v.\"__pgt_count\" OPERATOR(pg_catalog.=) 0"));
	EXPECT_TRUE(Contains(sql, "UPDATE \"public\".\"st\" t SET \"n\" = v.__pgt_v_1"));
	EXPECT_TRUE(Contains(sql, "LEFT JOIN \"public\".\"st\" t ON t.\"__pgt_rid\" OPERATOR(pg_catalog.=)"));
}

TEST(ApplySql, GroupedEveryGroupReplacesTheStoredGroupsByThePopulation) {
	DvmPlan p = GroupedPlan(true);
	p.every_group_when = "EXISTS (SELECT 1 FROM cu)";
	std::string sql = ApplySql(p, "\"public\".\"st\"");
	EXPECT_TRUE(Contains(sql, "WITH __pgt_every AS MATERIALIZED (SELECT EXISTS (SELECT 1 FROM cu) AS f),\n__pgt_d AS"));
	// The delta is not evaluated then; the population replaces every stored group, in the storage's columns.
	EXPECT_TRUE(Contains(sql, ") AS x\n  WHERE NOT (SELECT e.f FROM __pgt_every e)\n  GROUP BY"));
	EXPECT_TRUE(Contains(sql, "__pgt_del_every AS (\n  DELETE FROM \"public\".\"st\" WHERE (SELECT e.f FROM __pgt_every e)"));
	EXPECT_TRUE(Contains(sql, "SELECT p.* FROM (\n" + PopulationSql(p) + "\n  ) AS p WHERE (SELECT e.f FROM __pgt_every e)"));
	EXPECT_TRUE(Contains(sql, "+ (SELECT pg_catalog.count(*) FROM __pgt_ins_every)"));
	EXPECT_FALSE(Contains(ApplySql(GroupedPlan(true), "st"), "__pgt_every"));
}

TEST(ApplySql, SingleGroupIsNeverDeleted) {
	std::string sql = ApplySql(GroupedPlan(false), "\"public\".\"st\"");
	EXPECT_FALSE(Contains(sql, "__pgt_del AS"));
	EXPECT_TRUE(Contains(sql, "HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0"));
}

TEST(ApplySql, MinRecomputesOnlyWhenExtremeIsDeleted) {
	DvmPlan p = GroupedPlan(true);
	p.aggs = {AggSpec{AggKind::Min, false, "integer", "pg_catalog.numeric"}};
	p.visible = {{"lo", "integer"}};
	p.visible_from_state = {"(s.\"__pgt_a_1\")::integer"};
	std::string sql = ApplySql(p, "\"st\"");
	EXPECT_TRUE(Contains(sql, "pg_catalog.min(CASE WHEN x.\"__pgt_arg_1\" IS NOT NULL AND x.\"__pgt_w\" OPERATOR(pg_catalog.>) 0"));
	EXPECT_TRUE(Contains(sql, "o.__pgt_ddel_1 OPERATOR(pg_catalog.<=) o.__pgt_oa_1"));
	EXPECT_TRUE(Contains(sql, "ELSE LEAST(o.__pgt_oa_1, o.__pgt_dins_1)"));
	EXPECT_TRUE(Contains(sql, "r.\"__pgt_gk_1\" IS NOT DISTINCT FROM o.\"__pgt_gk_1\""));
}

TEST(ApplySql, RescanReplacesTouchedGroups) {
	DvmPlan p;
	p.kind = DvmKind::Rescan;
	p.visible = {{"g", "text"}, {"names", "text"}};
	p.group_keys = {{"__pgt_gk_1", "text"}};
	p.input_sql = "SELECT g, string_agg(n, ',') AS names, g AS __pgt_gk_1 FROM t GROUP BY g";
	p.delta_sql = "SELECT g AS __pgt_gk_1, __pgt_w FROM d";
	std::string sql = ApplySql(p, "\"st\"");
	EXPECT_TRUE(Contains(sql, "SELECT DISTINCT x.\"__pgt_gk_1\""));
	// Coarse filter PostgreSQL can push below GROUP BY, then the exact NULL-safe match.
	EXPECT_TRUE(Contains(sql, "q.\"__pgt_gk_1\" OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT a.\"__pgt_gk_1\" FROM __pgt_aff a))"));
	EXPECT_TRUE(Contains(sql, "a.\"__pgt_gk_1\" IS NOT DISTINCT FROM q.\"__pgt_gk_1\""));
	EXPECT_TRUE(Contains(sql, "INSERT INTO \"st\" (\"g\", \"names\", \"__pgt_gk_1\", \"__pgt_rid\")"));
}

TEST(ApplySql, RescanEveryGroupWhenASubqueryTableChanged) {
	DvmPlan p;
	p.kind = DvmKind::Rescan;
	p.visible = {{"g", "text"}, {"s", "numeric"}};
	p.group_keys = {{"__pgt_gk_1", "text"}};
	p.input_sql = "SELECT g, sum(a) AS s, g AS __pgt_gk_1 FROM t GROUP BY g HAVING sum(a) > (SELECT sum(a) FROM u)";
	p.delta_sql = "SELECT g AS __pgt_gk_1, __pgt_w FROM d";
	p.every_group_when = "EXISTS (SELECT 1 FROM cu)";
	std::string sql = ApplySql(p, "\"st\"");
	EXPECT_TRUE(Contains(sql, "WITH __pgt_every AS MATERIALIZED (SELECT EXISTS (SELECT 1 FROM cu) AS f)"));
	// The touched keys and their filtered recompute only when not every group is touched.
	EXPECT_TRUE(Contains(sql, ") AS x\n  WHERE NOT (SELECT e.f FROM __pgt_every e)"));
	EXPECT_TRUE(Contains(sql, ") AS q\n  WHERE NOT (SELECT e.f FROM __pgt_every e)\n    AND (q.\"__pgt_gk_1\" OPERATOR"));
	// Otherwise every group, unfiltered, replaces every stored row.
	EXPECT_TRUE(Contains(sql, ") AS q\n  WHERE (SELECT e.f FROM __pgt_every e)\n)"));
	EXPECT_TRUE(Contains(sql, "__pgt_del_every AS (\n  DELETE FROM \"st\" WHERE (SELECT e.f FROM __pgt_every e)"));
	EXPECT_TRUE(Contains(sql, "(SELECT pg_catalog.count(*) FROM __pgt_del) + (SELECT pg_catalog.count(*) FROM __pgt_del_every)"));
}

TEST(ApplySql, RescanWithoutGroupKeysFoldsEveryGroupIntoTheTrigger) {
	DvmPlan p;
	p.kind = DvmKind::Rescan;
	p.visible = {{"n", "bigint"}, {"m", "integer"}};
	p.input_sql = "SELECT count(*) AS n, (SELECT max(v) FROM u) AS m FROM t";
	p.delta_sql = "SELECT 1 AS __pgt_w FROM d";
	p.every_group_when = "EXISTS (SELECT 1 FROM cu)";
	std::string sql = ApplySql(p, "\"st\"");
	EXPECT_FALSE(Contains(sql, "__pgt_every"));
	EXPECT_TRUE(Contains(sql, ") AS x) OR EXISTS (SELECT 1 FROM cu)\n)"));
}

TopKGroups
Q3LikeTopK() {
	TopKGroups t;
	t.keys_delta_sql = "SELECT k AS __pgt_gk_1, d AS __pgt_gk_2, __pgt_w FROM delta";
	t.grouped_sql = "SELECT k, sum(v) AS revenue, d, k, d FROM t GROUP BY k, d";
	t.storage_columns = {"l_orderkey", "revenue", "o_orderdate"};
	t.group_key_visible = {0, 2};
	t.order = {TopKSortKey{1, true, true}, TopKSortKey{2, false, false}};
	t.limit = 10;
	return t;
}

TEST(TopKGroupsTrigger, TouchedKeysOnceAndStoredRowsOfTouchedGroups) {
	std::string sql = TopKGroupsTriggerSql(Q3LikeTopK());
	EXPECT_TRUE(Contains(sql, "WITH __pgt_k AS MATERIALIZED (SELECT DISTINCT d.\"__pgt_gk_1\", d.\"__pgt_gk_2\" FROM ("));
	EXPECT_TRUE(Contains(sql, "SELECT k AS __pgt_gk_1, d AS __pgt_gk_2, __pgt_w FROM delta"));
	// A stored row whose group was touched: its key columns compared with NULLs equal.
	EXPECT_TRUE(Contains(sql, "a.\"__pgt_gk_1\" IS NOT DISTINCT FROM s.\"l_orderkey\" AND a.\"__pgt_gk_2\" IS NOT "
	                          "DISTINCT FROM s.\"o_orderdate\""));
	EXPECT_TRUE(Contains(sql, std::string("FROM ") + kStoragePlaceholder + " s WHERE EXISTS"));
}

TEST(TopKGroupsTrigger, NewRowsRankedAgainstStoredOnesFirstAmongEquals) {
	std::string sql = TopKGroupsTriggerSql(Q3LikeTopK());
	EXPECT_TRUE(Contains(sql, "ORDER BY x.\"__pgt_c2\" DESC NULLS FIRST, x.\"__pgt_c3\" ASC NULLS LAST, x.\"__pgt_d\" DESC"));
	EXPECT_TRUE(Contains(sql, "y.\"__pgt_d\" AND y.\"__pgt_rn\" OPERATOR(pg_catalog.<=) 10"));
	// The grouped query read positionally, restricted to the touched keys (a filter that goes below GROUP BY).
	EXPECT_TRUE(Contains(sql, "q(\"__pgt_c1\", \"__pgt_c2\", \"__pgt_c3\", \"__pgt_gk_1\", \"__pgt_gk_2\")"));
	EXPECT_TRUE(Contains(sql, "q.\"__pgt_gk_2\" OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT a.\"__pgt_gk_2\" FROM __pgt_k a))"));
	EXPECT_TRUE(Contains(sql, "SELECT s.\"l_orderkey\", s.\"revenue\", s.\"o_orderdate\", false FROM"));
}

TEST(TopKGroupsTrigger, RescanApplyReadsTheStorageTable) {
	DvmPlan p;
	p.kind = DvmKind::Rescan;
	p.visible = {{"l_orderkey", "bigint"}, {"revenue", "numeric"}, {"o_orderdate", "date"}};
	p.input_sql = "SELECT * FROM q3";
	p.delta_sql = TopKGroupsTriggerSql(Q3LikeTopK());
	p.reads_storage = true;
	std::string sql = ApplySql(p, "public.st");
	EXPECT_FALSE(Contains(sql, kStoragePlaceholder));
	EXPECT_TRUE(Contains(sql, "FROM public.st s WHERE EXISTS"));
}

TEST(TopKGroupsTrigger, RefusesNoKeysOrNoOrder) {
	TopKGroups t = Q3LikeTopK();
	t.group_key_visible.clear();
	EXPECT_THROW(TopKGroupsTriggerSql(t), std::logic_error);
	t = Q3LikeTopK();
	t.order.clear();
	EXPECT_THROW(TopKGroupsTriggerSql(t), std::logic_error);
}

} // namespace
} // namespace pgtrickle
