#include "core/dvm_plan.hpp"
#include "core/core_only.hpp"

#include "core/sql_text.hpp"

#include <stdexcept>

namespace pgtrickle {

namespace {

std::string
Col(const std::string &alias, const std::string &name) {
	return alias + "." + QuoteIdent(name);
}

std::vector<std::string>
Cols(const std::string &alias, const std::vector<DvmColumn> &cols) {
	std::vector<std::string> out;
	for (const auto &c : cols)
		out.push_back(Col(alias, c.name));
	return out;
}

std::vector<std::string>
GroupKeyNames(const DvmPlan &plan) {
	std::vector<std::string> out;
	for (size_t j = 0; j < plan.group_keys.size(); j++)
		out.push_back(GroupKeyColumn(j + 1));
	return out;
}

std::vector<std::string>
Prefixed(const std::string &alias, const std::vector<std::string> &names) {
	std::vector<std::string> out;
	for (const auto &n : names)
		out.push_back(Col(alias, n));
	return out;
}

// a."x" IS NOT DISTINCT FROM b."x" AND ... ("true" for none)
std::string
SameValues(const std::string &a, const std::string &b, const std::vector<std::string> &names) {
	std::vector<std::string> parts;
	for (const auto &n : names)
		parts.push_back(Col(a, n) + " IS NOT DISTINCT FROM " + Col(b, n));
	return parts.empty() ? "true" : Join(parts, " AND ");
}

bool
HasNonNull(AggKind k) {
	return k == AggKind::Sum || k == AggKind::Avg;
}

bool
HasArg(AggKind k) {
	return k != AggKind::CountStar;
}

// Aggregates over the input alias x computing the state of aggregate k from scratch.
std::string
StateFromScratch(const AggSpec &agg, size_t k, bool non_null_part) {
	std::string filter = agg.has_filter ? " FILTER (WHERE x." + QuoteIdent(AggFilterColumn(k)) + ")" : "";
	std::string arg = "x." + QuoteIdent(AggArgColumn(k));
	if (agg.kind == AggKind::CountStar)
		return "pg_catalog.count(*)" + filter;
	if (agg.kind == AggKind::Count || non_null_part)
		return "pg_catalog.count(" + arg + ")" + filter;
	if (agg.kind == AggKind::Min)
		return "pg_catalog.min(" + arg + ")" + filter;
	if (agg.kind == AggKind::Max)
		return "pg_catalog.max(" + arg + ")" + filter;
	return "pg_catalog.sum(" + arg + ")" + filter;
}

// Weighted condition for "this input row counts for aggregate k".
std::string
Counts(const AggSpec &agg, size_t k) {
	std::vector<std::string> conds;
	if (HasArg(agg.kind))
		conds.push_back("x." + QuoteIdent(AggArgColumn(k)) + " IS NOT NULL");
	if (agg.has_filter)
		conds.push_back("x." + QuoteIdent(AggFilterColumn(k)));
	return conds.empty() ? "true" : Join(conds, " AND ");
}

std::string
WeightSum(const std::string &cond) {
	if (cond == "true")
		return "pg_catalog.sum(x." + QuoteIdent(kWeightColumn) + ")";
	return "pg_catalog.sum(CASE WHEN " + cond + " THEN x." + QuoteIdent(kWeightColumn) + " ELSE 0 END)";
}

} // namespace

std::string
GroupKeyColumn(size_t j) {
	return "__pgt_gk_" + std::to_string(j);
}
std::string
AggValueColumn(size_t k) {
	return "__pgt_a_" + std::to_string(k);
}
std::string
AggNonNullColumn(size_t k) {
	return "__pgt_nn_" + std::to_string(k);
}
std::string
AggArgColumn(size_t k) {
	return "__pgt_arg_" + std::to_string(k);
}
std::string
AggFilterColumn(size_t k) {
	return "__pgt_f_" + std::to_string(k);
}

std::string
RidExpr(const std::vector<std::string> &exprs) {
	if (exprs.empty())
		return "0::pg_catalog.int8";
	return "pg_catalog.hash_record_extended(ROW(" + Join(exprs, ", ") + "), 0)";
}

std::string
BufferWindowPredicate(const std::string &alias, bool bounded) {
	std::string xid = alias + ".\"__pgt_xid\"";
	// Both bounds hold for every row of the window: the previous refresh's transaction ($2) is not
	// older than the oldest transaction its snapshot ($1) saw running.
	std::string bounds = bounded ? xid + " OPERATOR(pg_catalog.>=) LEAST(pg_catalog.pg_snapshot_xmin($1), $2) AND " + xid +
	                                   " OPERATOR(pg_catalog.<=) '18446744073709551615'::pg_catalog.xid8 AND "
	                             : "";
	// A snapshot never shows its own transaction as visible (its xid may be >= xmax), so rows of the
	// previous refresh's transaction are judged by command id alone.
	return bounds + "((" + xid + " IS DISTINCT FROM $2 AND NOT pg_catalog.pg_visible_in_snapshot(" + xid + ", $1) AND " + xid +
	       " OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($1)) OR (" + xid + " OPERATOR(pg_catalog.=) $2 AND " +
	       alias + ".\"__pgt_cid\" OPERATOR(pg_catalog.>=) $3))";
}

std::string
BufferWindowProbe(const std::string &buffer) {
	return "SELECT 1 FROM " + buffer + " b WHERE " + BufferWindowPredicate("b", true) +
	       " ORDER BY b.\"__pgt_xid\" DESC LIMIT 1";
}

std::string
PopulationSql(const DvmPlan &plan) {
	switch (plan.kind) {
	case DvmKind::Bag: {
		std::vector<std::string> cols = Cols("q", plan.visible);
		return "SELECT " + Join(cols, ", ") + ", " + RidExpr(cols) + " AS " + QuoteIdent(kRidColumn) + " FROM (\n" +
		       plan.input_sql + "\n) AS q";
	}
	case DvmKind::Rescan: {
		std::vector<std::string> cols = Cols("q", plan.visible);
		std::vector<std::string> gk = Prefixed("q", GroupKeyNames(plan));
		std::vector<std::string> all = cols;
		all.insert(all.end(), gk.begin(), gk.end());
		return "SELECT " + Join(all, ", ") + ", " + RidExpr(gk) + " AS " + QuoteIdent(kRidColumn) + " FROM (\n" +
		       plan.input_sql + "\n) AS q";
	}
	case DvmKind::Grouped: {
		std::vector<std::string> inner;
		std::vector<std::string> gk_names = GroupKeyNames(plan);
		for (const auto &g : gk_names)
			inner.push_back("x." + QuoteIdent(g) + " AS " + QuoteIdent(g));
		inner.push_back("pg_catalog.count(*) AS " + QuoteIdent(kCountColumn));
		for (size_t k = 1; k <= plan.aggs.size(); k++) {
			const AggSpec &agg = plan.aggs[k - 1];
			inner.push_back(StateFromScratch(agg, k, false) + " AS " + QuoteIdent(AggValueColumn(k)));
			if (HasNonNull(agg.kind))
				inner.push_back(StateFromScratch(agg, k, true) + " AS " + QuoteIdent(AggNonNullColumn(k)));
		}
		std::string inner_sql = "SELECT " + Join(inner, ", ") + " FROM (\n" + plan.input_sql + "\n) AS x";
		if (!gk_names.empty())
			inner_sql += " GROUP BY " + Join(Prefixed("x", gk_names), ", ");

		std::vector<std::string> outer;
		for (size_t i = 0; i < plan.visible.size(); i++)
			outer.push_back(plan.visible_from_state.at(i) + " AS " + QuoteIdent(plan.visible[i].name));
		std::vector<std::string> gk = Prefixed("s", gk_names);
		for (const auto &g : gk_names)
			outer.push_back(Col("s", g));
		outer.push_back(Col("s", kCountColumn));
		for (size_t k = 1; k <= plan.aggs.size(); k++) {
			outer.push_back(Col("s", AggValueColumn(k)));
			if (HasNonNull(plan.aggs[k - 1].kind))
				outer.push_back(Col("s", AggNonNullColumn(k)));
		}
		outer.push_back(RidExpr(gk) + " AS " + QuoteIdent(kRidColumn));
		return "SELECT " + Join(outer, ", ") + " FROM (\n" + inner_sql + "\n) AS s";
	}
	}
	throw std::logic_error("unknown plan kind");
}

std::string
EveryCte(const std::string &when) {
	return "__pgt_every AS MATERIALIZED (SELECT " + when + " AS f)";
}

namespace {

std::string
BagApply(const DvmPlan &plan, const std::string &st) {
	std::vector<std::string> names;
	for (const auto &c : plan.visible)
		names.push_back(c.name);
	std::vector<std::string> xcols = Prefixed("x", names);
	std::vector<std::string> dcols = Prefixed("d", names);
	std::vector<std::string> kcols = Prefixed("k", names);
	std::string w = QuoteIdent(kWeightColumn);
	std::string rid = QuoteIdent(kRidColumn);
	std::vector<std::string> target;
	for (const auto &n : names)
		target.push_back(QuoteIdent(n));
	target.push_back(rid);

	std::string sql;
	sql += "WITH __pgt_d AS MATERIALIZED (\n  SELECT " + Join(xcols, ", ") + ", pg_catalog.sum(x." + w +
	       ")::pg_catalog.int8 AS " + w + "\n  FROM (\n" + plan.delta_sql + "\n  ) AS x\n  GROUP BY " +
	       Join(xcols, ", ") + " HAVING pg_catalog.sum(x." + w + ") OPERATOR(pg_catalog.<>) 0\n)";
	sql += ", __pgt_k AS MATERIALIZED (\n  SELECT " + Join(dcols, ", ") + ", d." + w + ", " + RidExpr(dcols) +
	       " AS " + rid + " FROM __pgt_d d\n)";
	sql += ", __pgt_del AS (\n  DELETE FROM " + st + " WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(\n" +
	       "    SELECT t.tid FROM __pgt_k k CROSS JOIN LATERAL (\n      SELECT s.ctid AS tid FROM " + st +
	       " s WHERE s." + rid + " OPERATOR(pg_catalog.=) k." + rid + " AND " + SameValues("s", "k", names) +
	       "\n      LIMIT (OPERATOR(pg_catalog.-) k." + w + ")\n    ) AS t WHERE k." + w +
	       " OPERATOR(pg_catalog.<) 0))\n  RETURNING 1\n)";
	sql += ", __pgt_ins AS (\n  INSERT INTO " + st + " (" + Join(target, ", ") + ")\n  SELECT " + Join(kcols, ", ") +
	       ", k." + rid + " FROM __pgt_k k CROSS JOIN LATERAL pg_catalog.generate_series(1, k." + w +
	       ") AS g WHERE k." + w + " OPERATOR(pg_catalog.>) 0\n  RETURNING 1\n)";
	sql += "\nSELECT (SELECT pg_catalog.count(*) FROM __pgt_ins), (SELECT pg_catalog.count(*) FROM __pgt_del), "
	       "(SELECT pg_catalog.count(*) FROM __pgt_d)";
	return sql;
}

std::string
GroupedApply(const DvmPlan &plan, const std::string &st) {
	std::vector<std::string> gk_names = GroupKeyNames(plan);
	bool single_group = gk_names.empty();
	std::string w = QuoteIdent(kWeightColumn);
	std::string rid = QuoteIdent(kRidColumn);
	std::string cnt = QuoteIdent(kCountColumn);

	// 1. The delta grouped per group key.
	std::vector<std::string> d_list;
	for (const auto &g : gk_names)
		d_list.push_back("x." + QuoteIdent(g) + " AS " + QuoteIdent(g));
	d_list.push_back(WeightSum("true") + " AS __pgt_dc");
	for (size_t k = 1; k <= plan.aggs.size(); k++) {
		const AggSpec &agg = plan.aggs[k - 1];
		std::string cond = Counts(agg, k);
		if (agg.kind == AggKind::CountStar || agg.kind == AggKind::Count) {
			d_list.push_back(WeightSum(cond) + " AS __pgt_da_" + std::to_string(k));
		} else if (agg.kind == AggKind::Min || agg.kind == AggKind::Max) {
			// The extreme of the inserted values, and the deleted value closest to the current extreme.
			std::string fn = agg.kind == AggKind::Min ? "pg_catalog.min" : "pg_catalog.max";
			std::string arg = "x." + QuoteIdent(AggArgColumn(k));
			d_list.push_back(fn + "(CASE WHEN " + cond + " AND x." + w + " OPERATOR(pg_catalog.>) 0 THEN " + arg +
			                 " END) AS __pgt_dins_" + std::to_string(k));
			d_list.push_back(fn + "(CASE WHEN " + cond + " AND x." + w + " OPERATOR(pg_catalog.<) 0 THEN " + arg +
			                 " END) AS __pgt_ddel_" + std::to_string(k));
		} else {
			d_list.push_back("pg_catalog.sum(CASE WHEN " + cond + " THEN x." + w + " OPERATOR(pg_catalog.*) x." +
			                 QuoteIdent(AggArgColumn(k)) + "::" + agg.arg_cast + " END) AS __pgt_da_" +
			                 std::to_string(k));
			d_list.push_back(WeightSum(cond) + " AS __pgt_dnn_" + std::to_string(k));
		}
	}
	// Every group touched (see DvmPlan::every_group_when): the delta is not evaluated; the stored groups are
	// replaced by the population's (5. below).
	const bool every = !plan.every_group_when.empty();
	std::string sql = "WITH ";
	if (every)
		sql += EveryCte(plan.every_group_when) + ",\n";
	sql += "__pgt_d AS MATERIALIZED (\n  SELECT " + Join(d_list, ", ") + "\n  FROM (\n" + plan.delta_sql +
	       "\n  ) AS x";
	if (every)
		sql += "\n  WHERE NOT " + std::string(kEveryFlag);
	if (!single_group)
		sql += "\n  GROUP BY " + Join(Prefixed("x", gk_names), ", ");
	else
		sql += "\n  HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0";
	sql += "\n)";

	// 2. Joined with the stored state.
	std::vector<std::string> o_list{"d.*", RidExpr(Prefixed("d", gk_names)) + " AS " + rid, "t.ctid AS __pgt_tid",
	                                "t." + cnt + " AS __pgt_oc"};
	for (size_t k = 1; k <= plan.aggs.size(); k++) {
		o_list.push_back("t." + QuoteIdent(AggValueColumn(k)) + " AS __pgt_oa_" + std::to_string(k));
		if (HasNonNull(plan.aggs[k - 1].kind))
			o_list.push_back("t." + QuoteIdent(AggNonNullColumn(k)) + " AS __pgt_onn_" + std::to_string(k));
	}
	sql += ", __pgt_o AS MATERIALIZED (\n  SELECT " + Join(o_list, ", ") + "\n  FROM __pgt_d d LEFT JOIN " + st +
	       " t ON t." + rid + " OPERATOR(pg_catalog.=) " + RidExpr(Prefixed("d", gk_names)) + " AND " +
	       SameValues("t", "d", gk_names) + "\n)";

	// 3. The new state.
	std::vector<std::string> n_list{"o.__pgt_tid", "o." + rid};
	for (const auto &g : gk_names)
		n_list.push_back("o." + QuoteIdent(g));
	n_list.push_back("(COALESCE(o.__pgt_oc, 0) OPERATOR(pg_catalog.+) o.__pgt_dc)::pg_catalog.int8 AS " +
	                 cnt);
	for (size_t k = 1; k <= plan.aggs.size(); k++) {
		const AggSpec &agg = plan.aggs[k - 1];
		std::string ks = std::to_string(k);
		if (agg.kind == AggKind::Min || agg.kind == AggKind::Max) {
			bool is_min = agg.kind == AggKind::Min;
			std::string old_v = "o.__pgt_oa_" + ks;
			std::string del = "o.__pgt_ddel_" + ks;
			std::string reaches = del + (is_min ? " OPERATOR(pg_catalog.<=) " : " OPERATOR(pg_catalog.>=) ") + old_v;
			// Recompute this group's extreme from the sources (post-state input).
			std::vector<std::string> match;
			for (const auto &g : gk_names)
				match.push_back("r." + QuoteIdent(g) + " IS NOT DISTINCT FROM o." + QuoteIdent(g));
			if (agg.has_filter)
				match.push_back("r." + QuoteIdent(AggFilterColumn(k)));
			std::string rescan = "(SELECT " + std::string(is_min ? "pg_catalog.min" : "pg_catalog.max") + "(r." +
			                     QuoteIdent(AggArgColumn(k)) + ") FROM (\n" + plan.input_sql + "\n) AS r" +
			                     (match.empty() ? "" : " WHERE " + Join(match, " AND ")) + ")";
			n_list.push_back("(CASE WHEN " + del + " IS NOT NULL AND (" + old_v + " IS NULL OR " + reaches + ") THEN " +
			                 rescan + " ELSE " + (is_min ? "LEAST(" : "GREATEST(") + old_v + ", o.__pgt_dins_" + ks +
			                 ") END)::" + agg.value_type + " AS " + QuoteIdent(AggValueColumn(k)));
		} else if (!HasNonNull(agg.kind)) {
			n_list.push_back("(COALESCE(o.__pgt_oa_" + ks + ", 0) OPERATOR(pg_catalog.+) o.__pgt_da_" + ks +
			                 ")::pg_catalog.int8 AS " + QuoteIdent(AggValueColumn(k)));
		} else {
			std::string nn = "(COALESCE(o.__pgt_onn_" + ks + ", 0) OPERATOR(pg_catalog.+) o.__pgt_dnn_" + ks +
			                 ")";
			n_list.push_back("CASE WHEN " + nn + " OPERATOR(pg_catalog.=) 0 THEN NULL ELSE (COALESCE(o.__pgt_oa_" +
			                 ks + ", 0) OPERATOR(pg_catalog.+) COALESCE(o.__pgt_da_" + ks + ", 0))::" +
			                 agg.value_type + " END AS " + QuoteIdent(AggValueColumn(k)));
			n_list.push_back(nn + "::pg_catalog.int8 AS " + QuoteIdent(AggNonNullColumn(k)));
		}
	}
	sql += ", __pgt_n AS MATERIALIZED (\n  SELECT " + Join(n_list, ", ") + " FROM __pgt_o o\n)";

	// 4. Visible columns from the new state.
	std::vector<std::string> v_list{"s.*"};
	for (size_t i = 0; i < plan.visible.size(); i++)
		v_list.push_back(plan.visible_from_state.at(i) + " AS __pgt_v_" + std::to_string(i + 1));
	sql += ", __pgt_v AS MATERIALIZED (\n  SELECT " + Join(v_list, ", ") + " FROM __pgt_n s\n)";

	// 5. Apply: groups that emptied go, changed groups are updated, new groups inserted.
	std::string keep = single_group ? "true" : "v." + cnt + " OPERATOR(pg_catalog.>) 0";
	std::vector<std::string> sets;
	std::vector<std::string> target;
	std::vector<std::string> values;
	for (size_t i = 0; i < plan.visible.size(); i++) {
		sets.push_back(QuoteIdent(plan.visible[i].name) + " = v.__pgt_v_" + std::to_string(i + 1));
		target.push_back(QuoteIdent(plan.visible[i].name));
		values.push_back("v.__pgt_v_" + std::to_string(i + 1));
	}
	for (const auto &g : gk_names) {
		target.push_back(QuoteIdent(g));
		values.push_back("v." + QuoteIdent(g));
	}
	std::vector<std::string> state_cols{kCountColumn};
	for (size_t k = 1; k <= plan.aggs.size(); k++) {
		state_cols.push_back(AggValueColumn(k));
		if (HasNonNull(plan.aggs[k - 1].kind))
			state_cols.push_back(AggNonNullColumn(k));
	}
	for (const auto &c : state_cols) {
		sets.push_back(QuoteIdent(c) + " = v." + QuoteIdent(c));
		target.push_back(QuoteIdent(c));
		values.push_back("v." + QuoteIdent(c));
	}
	target.push_back(rid);
	values.push_back("v." + rid);

	if (!single_group)
		sql += ", __pgt_del AS (\n  DELETE FROM " + st +
		       " WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT v.__pgt_tid FROM __pgt_v v WHERE v.__pgt_tid IS "
		       "NOT NULL AND v." +
		       cnt + " OPERATOR(pg_catalog.=) 0))\n  RETURNING 1\n)";
	sql += ", __pgt_upd AS (\n  UPDATE " + st + " t SET " + Join(sets, ", ") + "\n  FROM __pgt_v v WHERE t." + rid +
	       " OPERATOR(pg_catalog.=) v." + rid + " AND t.ctid OPERATOR(pg_catalog.=) v.__pgt_tid AND " + keep +
	       "\n  RETURNING 1\n)";
	sql += ", __pgt_ins AS (\n  INSERT INTO " + st + " (" + Join(target, ", ") + ")\n  SELECT " + Join(values, ", ") +
	       " FROM __pgt_v v WHERE v.__pgt_tid IS NULL AND " + keep + "\n  RETURNING 1\n)";
	std::string del = single_group ? "0" : "(SELECT pg_catalog.count(*) FROM __pgt_del)";
	std::string ins = "(SELECT pg_catalog.count(*) FROM __pgt_ins)";
	std::string touched = "(SELECT pg_catalog.count(*) FROM __pgt_d)";
	if (every) {
		sql += ", __pgt_del_every AS (\n  DELETE FROM " + st + " WHERE " + kEveryFlag + "\n  RETURNING 1\n)";
		sql += ", __pgt_ins_every AS (\n  INSERT INTO " + st + " (" + Join(target, ", ") + ")\n  SELECT p.* FROM (\n" +
		       PopulationSql(plan) + "\n  ) AS p WHERE " + kEveryFlag + "\n  RETURNING 1\n)";
		del += " + (SELECT pg_catalog.count(*) FROM __pgt_del_every)";
		ins += " + (SELECT pg_catalog.count(*) FROM __pgt_ins_every)";
		touched += " + (SELECT pg_catalog.count(*) FROM __pgt_ins_every)";
	}
	sql += "\nSELECT " + ins + " + (SELECT pg_catalog.count(*) FROM __pgt_upd), " + del +
	       " + (SELECT pg_catalog.count(*) FROM __pgt_upd), " + touched;
	return sql;
}

std::string
RescanApply(const DvmPlan &plan, const std::string &st) {
	std::vector<std::string> gk_names = GroupKeyNames(plan);
	std::string rid = QuoteIdent(kRidColumn);
	// Every group touched (a table read by a subquery at the aggregation level changed): all groups are
	// recomputed and the stored rows replaced, without evaluating the delta or filtering by touched keys (a
	// filter over thousands of keys is a linear scan of the key array for each input row).
	const bool every = !plan.every_group_when.empty() && !gk_names.empty();
	const std::string all = kEveryFlag;
	std::string sql = "WITH ";
	if (every)
		sql += EveryCte(plan.every_group_when) + ",\n";
	if (gk_names.empty()) {
		std::string when = plan.every_group_when.empty() ? "" : " OR " + plan.every_group_when;
		sql += "__pgt_aff AS MATERIALIZED (\n  SELECT 1 AS __pgt_one WHERE EXISTS (SELECT 1 FROM (\n" +
		       plan.delta_sql + "\n  ) AS x)" + when + "\n)";
	} else {
		sql += "__pgt_aff AS MATERIALIZED (\n  SELECT DISTINCT " + Join(Prefixed("x", gk_names), ", ") + " FROM (\n" +
		       plan.delta_sql + "\n  ) AS x" + (every ? "\n  WHERE NOT " + all : "") + "\n)";
	}
	// New rows of the touched groups: coarse per-key filters PostgreSQL can push below the GROUP BY, then the
	// exact match (NULL keys included).
	std::vector<std::string> where;
	if (gk_names.empty()) {
		where.push_back("EXISTS (SELECT 1 FROM __pgt_aff)");
	} else {
		for (const auto &g : gk_names) {
			std::string q = "q." + QuoteIdent(g);
			std::string a = "a." + QuoteIdent(g);
			where.push_back("(" + q + " OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT " + a + " FROM __pgt_aff a)) OR (" +
			                q + " IS NULL AND EXISTS (SELECT 1 FROM __pgt_aff a WHERE " + a + " IS NULL)))");
		}
		where.push_back("EXISTS (SELECT 1 FROM __pgt_aff a WHERE " + SameValues("a", "q", gk_names) + ")");
		if (every)
			where.insert(where.begin(), "NOT " + all);
	}
	std::vector<std::string> cols = Cols("q", plan.visible);
	std::vector<std::string> gk = Prefixed("q", gk_names);
	std::vector<std::string> out_cols = cols;
	out_cols.insert(out_cols.end(), gk.begin(), gk.end());
	std::string new_rows = "  SELECT " + Join(out_cols, ", ") + ", " + RidExpr(gk) + " AS " + rid + " FROM (\n" +
	                       plan.input_sql + "\n  ) AS q\n  WHERE ";
	sql += ", __pgt_new AS MATERIALIZED (\n" + new_rows + Join(where, "\n    AND ");
	if (every)
		sql += "\n  UNION ALL\n" + new_rows + all;
	sql += "\n)";
	std::string old_match =
	    gk_names.empty() ? "true"
	                     : "t." + rid + " OPERATOR(pg_catalog.=) " + RidExpr(Prefixed("a", gk_names)) + " AND " +
	                           SameValues("t", "a", gk_names);
	sql += ", __pgt_del AS (\n  DELETE FROM " + st + " WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT t.ctid FROM " +
	       "__pgt_aff a JOIN " + st + " t ON " + old_match + "))\n  RETURNING 1\n)";
	std::string deleted = "(SELECT pg_catalog.count(*) FROM __pgt_del)";
	std::string touched = "(SELECT pg_catalog.count(*) FROM __pgt_aff)";
	if (every) {
		sql += ", __pgt_del_every AS (\n  DELETE FROM " + st + " WHERE " + all + "\n  RETURNING 1\n)";
		deleted += " + (SELECT pg_catalog.count(*) FROM __pgt_del_every)";
		touched = "CASE WHEN " + all + " THEN (SELECT pg_catalog.count(*) FROM __pgt_new) ELSE " + touched + " END";
	}
	std::vector<std::string> target;
	std::vector<std::string> values;
	for (const auto &c : plan.visible) {
		target.push_back(QuoteIdent(c.name));
		values.push_back("n." + QuoteIdent(c.name));
	}
	for (const auto &g : gk_names) {
		target.push_back(QuoteIdent(g));
		values.push_back("n." + QuoteIdent(g));
	}
	target.push_back(rid);
	values.push_back("n." + rid);
	sql += ", __pgt_ins AS (\n  INSERT INTO " + st + " (" + Join(target, ", ") + ")\n  SELECT " + Join(values, ", ") +
	       " FROM __pgt_new n\n  RETURNING 1\n)";
	sql += "\nSELECT (SELECT pg_catalog.count(*) FROM __pgt_ins), " + deleted + ", " + touched;
	return sql;
}

} // namespace

std::string
TopKGroupsTriggerSql(const TopKGroups &t) {
	const size_t nvis = t.storage_columns.size();
	const size_t ngk = t.group_key_visible.size();
	if (ngk == 0 || t.order.empty() || t.limit < 0)
		throw std::logic_error("top-k trigger needs group keys and an order");
	std::vector<std::string> gk;
	for (size_t j = 0; j < ngk; j++)
		gk.push_back(GroupKeyColumn(j + 1));
	// Touched group keys, once.
	std::string sql = "WITH __pgt_k AS MATERIALIZED (SELECT DISTINCT " + Join(Prefixed("d", gk), ", ") + " FROM (\n" +
	                  t.keys_delta_sql + "\n) d)\n";
	// A stored row of a touched group.
	std::vector<std::string> stored_match;
	for (size_t j = 0; j < ngk; j++)
		stored_match.push_back(Col("a", gk[j]) + " IS NOT DISTINCT FROM " +
		                       Col("s", t.storage_columns.at(t.group_key_visible[j])));
	sql += "SELECT 1 AS \"__pgt_one\" FROM " + std::string(kStoragePlaceholder) +
	       " s WHERE EXISTS (SELECT 1 FROM __pgt_k a WHERE " + Join(stored_match, " AND ") + ")\nUNION ALL\n";
	// New rows of the touched groups: per-key filters PostgreSQL pushes below the GROUP BY, then the exact
	// match (NULL keys included).
	std::vector<std::string> pos;
	for (size_t i = 1; i <= nvis; i++)
		pos.push_back("__pgt_c" + std::to_string(i));
	std::vector<std::string> names = pos;
	names.insert(names.end(), gk.begin(), gk.end());
	std::vector<std::string> where;
	for (const auto &g : gk) {
		std::string q = Col("q", g);
		std::string a = Col("a", g);
		where.push_back("(" + q + " OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT " + a + " FROM __pgt_k a)) OR (" + q +
		                " IS NULL AND EXISTS (SELECT 1 FROM __pgt_k a WHERE " + a + " IS NULL)))");
	}
	where.push_back("EXISTS (SELECT 1 FROM __pgt_k a WHERE " + SameValues("a", "q", gk) + ")");
	std::vector<std::string> quoted_names;
	for (const auto &n : names)
		quoted_names.push_back(QuoteIdent(n));
	std::vector<std::string> stored_cols;
	for (const auto &c : t.storage_columns)
		stored_cols.push_back(Col("s", c));
	// Ranked together: stored rows, then new rows first among equals.
	std::vector<std::string> order;
	for (const auto &k : t.order)
		order.push_back(Col("x", pos.at(k.visible)) + (k.descending ? " DESC" : " ASC") +
		                (k.nulls_first ? " NULLS FIRST" : " NULLS LAST"));
	order.push_back("x.\"__pgt_d\" DESC");
	std::vector<std::string> x_names = quoted_names;
	x_names.resize(nvis);
	x_names.push_back("\"__pgt_d\"");
	sql += "SELECT 1 FROM (SELECT x.\"__pgt_d\", pg_catalog.row_number() OVER (ORDER BY " + Join(order, ", ") +
	       ") AS \"__pgt_rn\" FROM (\n  SELECT " + Join(stored_cols, ", ") + ", false FROM " + kStoragePlaceholder +
	       " s\n  UNION ALL\n  SELECT " + Join(Prefixed("q", std::vector<std::string>(pos.begin(), pos.end())), ", ") +
	       ", true FROM (\n" + t.grouped_sql + "\n  ) q(" + Join(quoted_names, ", ") + ")\n  WHERE " +
	       Join(where, "\n    AND ") + "\n) x(" + Join(x_names, ", ") + ")) y WHERE y.\"__pgt_d\" AND y.\"__pgt_rn\" " +
	       "OPERATOR(pg_catalog.<=) " + std::to_string(t.limit);
	return sql;
}

std::string
DeltaSqlFor(const DvmPlan &plan, const std::string &st, const std::string &delta) {
	if (!plan.reads_storage)
		return delta;
	std::string out;
	const std::string token = kStoragePlaceholder;
	size_t from = 0;
	for (size_t at; (at = delta.find(token, from)) != std::string::npos; from = at + token.size())
		out += delta.substr(from, at - from) + st;
	return out + delta.substr(from);
}

std::string
ApplySql(const DvmPlan &plan, const std::string &st) {
	switch (plan.kind) {
	case DvmKind::Bag:
		if (plan.reads_storage) {
			DvmPlan resolved = plan;
			resolved.delta_sql = DeltaSqlFor(plan, st, plan.delta_sql);
			resolved.reads_storage = false;
			return BagApply(resolved, st);
		}
		return BagApply(plan, st);
	case DvmKind::Grouped:
		return GroupedApply(plan, st);
	case DvmKind::Rescan:
		if (plan.reads_storage) {
			DvmPlan resolved = plan;
			resolved.delta_sql = DeltaSqlFor(plan, st, plan.delta_sql);
			resolved.reads_storage = false;
			return RescanApply(resolved, st);
		}
		return RescanApply(plan, st);
	}
	throw std::logic_error("unknown plan kind");
}

} // namespace pgtrickle
