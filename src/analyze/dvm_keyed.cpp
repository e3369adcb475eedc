// The differential engine (see dvm.cpp): Subqueries in FROM with aggregation, DISTINCT, DISTINCT ON or windows: touched keys, new minus old.
#include "analyze/dvm_internal.hpp"

#include <string>

extern "C" {
#include "optimizer/prep.h"
}

namespace pgtrickle::dvm_detail {

// --- Subqueries in FROM with aggregation, DISTINCT or window functions --------------------------------
//
// Such a subquery S is a function of keys (its GROUP BY expressions, its DISTINCT columns, or the
// PARTITION BY expressions its windows share): its rows for a key depend only on its input rows with
// that key. Its delta is  S₁|K − S₀|K  for the keys K its input's delta touches, S₀ being S over the
// old state of every table it reads.

bool
NeedsKeyedRecompute(Query *q) {
	return q->hasAggs || q->groupClause || q->havingQual || q->distinctClause || q->hasWindowFuncs;
}

// The PARTITION BY expressions of a window of q.
List *
PartitionExprs(Query *q, WindowClause *wc) {
	List *exprs = NIL;
	ListCell *pc;
	foreach (pc, wc->partitionClause)
		exprs = lappend(exprs, get_sortgroupclause_expr(static_cast<SortGroupClause *>(lfirst(pc)), q->targetList));
	return exprs;
}

// The keys of such a subquery (expressions over its input), or why it has none we can use.
const char *
RecomputeKeys(Query *q, List **keys) {
	*keys = NIL;
	if (q->setOperations)
		return "aggregation, DISTINCT or window functions over set operations inside a subquery are not "
		       "maintained differentially yet";
	if (q->groupingSets || q->limitCount || q->limitOffset || q->hasTargetSRFs)
		return "grouping sets, LIMIT or set-returning functions together with aggregates, DISTINCT or window "
		       "functions are not maintained differentially yet";
	if (SublinkOutsideAggs(reinterpret_cast<Node *>(q->targetList), nullptr) || SublinkOutsideAggs(q->havingQual, nullptr))
		return "a subquery in the select list or HAVING of an aggregating subquery is not maintained differentially yet";
	bool grouped = q->hasAggs || q->groupClause || q->havingQual;
	if (q->hasWindowFuncs && (grouped || (q->distinctClause && !q->hasDistinctOn)))
		return "window functions over aggregates or DISTINCT are not maintained differentially yet";
	if (q->hasDistinctOn && grouped)
		return "DISTINCT ON over aggregates is not maintained differentially yet";
	ListCell *lc;
	if (q->hasDistinctOn) {
		List *on = NIL;
		foreach (lc, q->distinctClause)
			on = lappend(on, get_sortgroupclause_expr(static_cast<SortGroupClause *>(lfirst(lc)), q->targetList));
		if (!q->hasWindowFuncs) {
			*keys = on;
		} else {
			List *w = NIL;
			Query *copy = static_cast<Query *>(copyObject(q));
			copy->hasDistinctOn = false;
			copy->distinctClause = NIL;
			if (const char *why = RecomputeKeys(copy, &w))
				return why;
			foreach (lc, on)
				if (list_member(w, lfirst(lc)))
					*keys = lappend(*keys, lfirst(lc));
			if (*keys == NIL)
				return "DISTINCT ON together with window functions needs an expression in both DISTINCT ON and every "
				       "PARTITION BY to be maintained differentially";
		}
	} else if (q->hasWindowFuncs) {
		bool first = true;
		foreach (lc, q->windowClause) {
			List *exprs = PartitionExprs(q, static_cast<WindowClause *>(lfirst(lc)));
			if (first) {
				*keys = exprs;
				first = false;
			} else {
				List *keep = NIL;
				ListCell *cc;
				foreach (cc, *keys)
					if (list_member(exprs, lfirst(cc)))
						keep = lappend(keep, lfirst(cc));
				*keys = keep;
			}
		}
		if (*keys == NIL)
			return "window functions without a PARTITION BY expression shared by every window are not maintained "
			       "differentially";
	} else if (grouped) {
		foreach (lc, q->groupClause)
			*keys = lappend(*keys, get_sortgroupclause_expr(static_cast<SortGroupClause *>(lfirst(lc)), q->targetList));
	} else {
		foreach (lc, q->targetList) {
			auto *tle = static_cast<TargetEntry *>(lfirst(lc));
			if (!tle->resjunk)
				*keys = lappend(*keys, tle->expr);
		}
	}
	foreach (lc, *keys) {
		Node *e = static_cast<Node *>(lfirst(lc));
		if (!Hashable(exprType(e)))
			return psprintf("a key of type %s (grouping, DISTINCT or PARTITION BY inside a subquery) has no "
			                "hashing/equality support", format_type_be(exprType(e)));
	}
	return nullptr;
}

// A copy of the level with only its input (FROM, WHERE): no aggregation, DISTINCT, windows, ORDER BY
// or LIMIT, and no targets yet.
Query *
LevelInput(Query *q) {
	Query *input = static_cast<Query *>(copyObject(q));
	input->hasAggs = false;
	input->groupClause = NIL;
	input->havingQual = nullptr;
	input->distinctClause = NIL;
	input->hasDistinctOn = false;
	input->hasWindowFuncs = false;
	input->windowClause = NIL;
	input->sortClause = NIL;
	input->limitCount = nullptr;
	input->limitOffset = nullptr;
	input->targetList = NIL;
	return input;
}

// The subquery's input (FROM, WHERE) producing its keys.
Query *
RecomputeInput(Query *q, List *keys) {
	Query *input = LevelInput(q);
	input->targetList = keys != NIL ? KeyTargets(keys, 1) : OneTarget();
	return input;
}

// S restricted to the touched keys (SQL `touched`, columns "__pgt_gk_j"), weighted `sign`.
char *
KeyedPart(Query *full, int nkeys, int nvisible, const char *touched, int sign) {
	StringInfoData names;
	initStringInfo(&names);
	for (int j = 1; j <= nkeys; j++)
		appendStringInfo(&names, "\"__pgt_gk_%d\", ", j);
	for (int i = 1; i <= nvisible; i++)
		appendStringInfo(&names, "%s\"__pgt_v%d\"", i > 1 ? ", " : "", i);
	StringInfoData cols;
	initStringInfo(&cols);
	for (int i = 1; i <= nvisible; i++)
		appendStringInfo(&cols, "s.\"__pgt_v%d\", ", i);
	StringInfoData where;
	initStringInfo(&where);
	if (nkeys == 0) {
		appendStringInfo(&where, "EXISTS (SELECT 1 FROM (%s) t)", touched);
	} else {
		for (int j = 1; j <= nkeys; j++)
			appendStringInfo(&where,
			                 "%s(s.\"__pgt_gk_%d\" OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT t.\"__pgt_gk_%d\" FROM (%s) t)) OR "
			                 "(s.\"__pgt_gk_%d\" IS NULL AND EXISTS (SELECT 1 FROM (%s) t WHERE t.\"__pgt_gk_%d\" IS NULL)))",
			                 j > 1 ? " AND " : "", j, j, touched, j, touched, j);
		if (nkeys > 1) {
			appendStringInfo(&where, " AND EXISTS (SELECT 1 FROM (%s) t WHERE ", touched);
			for (int j = 1; j <= nkeys; j++)
				appendStringInfo(&where, "%st.\"__pgt_gk_%d\" IS NOT DISTINCT FROM s.\"__pgt_gk_%d\"", j > 1 ? " AND " : "", j, j);
			appendStringInfoChar(&where, ')');
		}
	}
	return psprintf("SELECT %s(%d)::pg_catalog.int8 AS \"__pgt_w\" FROM (%s) s(%s) WHERE %s", cols.data, sign,
	                Deparse(full), names.data, where.data);
}

// --- The touched keys carried across join conditions -------------------------------------------------
//
// KeyedPart filters the subquery's keys (pushed below its grouping onto the key columns). PostgreSQL
// carries an equality to a constant across a join condition, not "= ANY (array)": with key c.id and
// join condition c.id = o.cid, the other table was read whole (TPC-H Q13: all 150,000 orders for the
// old state of 316 touched customers, a hash join, because the old state of orders, a live arm and an
// unnest arm, cannot be reached by a parameterised index scan). So the old state's level gets
// "o.cid = ANY (the touched keys)" next to each such condition itself. Harmless for the keys
// recomputed: a row with key k in K joined through c.id = o.cid has o.cid = k. Only where no row of a
// recomputed key can lose a partner or gain NULL padding through it: the WHERE, inner joins, and the
// nullable side of a LEFT or RIGHT join whose preserved side holds the key, none of them inside the
// nullable side of an outer join (a left row losing all its partners there would join the NULL key's
// group).

int g_touched_seq = 0;

constexpr int kTouchedParamBase = 987670000; // $98767000j: the touched values of key j (text-replaced)

Var *
PlainVar(Node *n) {
	while (n != nullptr && IsA(n, RelabelType))
		n = reinterpret_cast<Node *>(reinterpret_cast<RelabelType *>(n)->arg);
	return n != nullptr && IsA(n, Var) && reinterpret_cast<Var *>(n)->varlevelsup == 0 ? reinterpret_cast<Var *>(n)
	                                                                                    : nullptr;
}

// The base-table column behind a Var of `q`'s level (a grouping expression, PostgreSQL 18's RTE_GROUP,
// or a join's output column resolved to what they stand for); nullptr for a merged USING column or an
// expression.
Var *
BaseVar(Query *q, Node *n) {
	Var *v = PlainVar(n);
	while (v != nullptr && v->varattno > 0) {
		RangeTblEntry *rte = rt_fetch(v->varno, q->rtable);
		List *exprs = rte->rtekind == RTE_JOIN ? rte->joinaliasvars : rte->rtekind == RTE_GROUP ? rte->groupexprs : nullptr;
		if (rte->rtekind != RTE_JOIN && rte->rtekind != RTE_GROUP)
			return v;
		if (v->varattno > list_length(exprs))
			return nullptr;
		v = PlainVar(static_cast<Node *>(list_nth(exprs, v->varattno - 1)));
	}
	return nullptr;
}

// "other = ANY ($param)" for each conjunct of `quals` equating key j (a Var) with another Var of the
// same type, the key's relation in `key_side` and the other's in `other_side` (nullptr: any);
// appended to *out.
void
KeyFiltersFor(Query *q, Node *quals, List *keys, Relids key_side, Relids other_side, List **out) {
	if (quals == nullptr)
		return;
	ListCell *lc;
	foreach (lc, make_ands_implicit(reinterpret_cast<Expr *>(quals))) {
		auto *op = static_cast<Node *>(lfirst(lc));
		if (!IsA(op, OpExpr) || list_length(reinterpret_cast<OpExpr *>(op)->args) != 2)
			continue;
		auto *opx = reinterpret_cast<OpExpr *>(op);
		if (!op_mergejoinable(opx->opno, exprType(static_cast<Node *>(linitial(opx->args)))) &&
		    !op_hashjoinable(opx->opno, exprType(static_cast<Node *>(linitial(opx->args)))))
			continue;
		Var *sides[2] = {BaseVar(q, static_cast<Node *>(linitial(opx->args))),
		                 BaseVar(q, static_cast<Node *>(lsecond(opx->args)))};
		if (sides[0] == nullptr || sides[1] == nullptr || sides[0]->vartype != sides[1]->vartype)
			continue;
		for (int s = 0; s < 2; s++) {
			Var *key = sides[s];
			Var *other = sides[1 - s];
			if (other->varno == key->varno || (key_side != nullptr && !bms_is_member(key->varno, key_side)) ||
			    (other_side != nullptr && !bms_is_member(other->varno, other_side)))
				continue;
			int j = 0;
			ListCell *kc;
			foreach (kc, keys) {
				j++;
				Var *k = BaseVar(q, static_cast<Node *>(lfirst(kc)));
				if (k == nullptr || k->varno != key->varno || k->varattno != key->varattno || k->vartype != key->vartype)
					continue;
				Oid array_type = get_array_type(k->vartype);
				if (!OidIsValid(array_type))
					continue;
				Param *p = makeNode(Param);
				p->paramkind = PARAM_EXTERN;
				p->paramid = kTouchedParamBase + j;
				p->paramtype = array_type;
				p->paramtypmod = -1;
				p->paramcollid = k->varcollid;
				p->location = -1;
				ScalarArrayOpExpr *sa = makeNode(ScalarArrayOpExpr);
				sa->opno = opx->opno;
				sa->useOr = true;
				sa->inputcollid = opx->inputcollid;
				sa->args = list_make2(copyObject(other), p);
				sa->location = -1;
				*out = lappend(*out, sa);
			}
		}
	}
}

Node *
WithConjuncts(Node *quals, List *extra) {
	if (extra == NIL)
		return quals;
	List *all = quals == nullptr ? NIL : make_ands_implicit(reinterpret_cast<Expr *>(quals));
	return reinterpret_cast<Node *>(make_ands_explicit(list_concat(all, extra)));
}

void
CarryKeyFilters(Query *q, Node *n, List *keys, bool nullable) {
	if (n == nullptr || nullable)
		return;
	if (IsA(n, FromExpr)) {
		auto *f = reinterpret_cast<FromExpr *>(n);
		ListCell *lc;
		foreach (lc, f->fromlist)
			CarryKeyFilters(q, static_cast<Node *>(lfirst(lc)), keys, false);
		List *extra = NIL;
		KeyFiltersFor(q, f->quals, keys, nullptr, nullptr, &extra);
		f->quals = WithConjuncts(f->quals, extra);
	} else if (IsA(n, JoinExpr)) {
		auto *j = reinterpret_cast<JoinExpr *>(n);
		List *extra = NIL;
		Relids left = get_relids_in_jointree(j->larg, false, false);
		Relids right = get_relids_in_jointree(j->rarg, false, false);
		if (j->jointype == JOIN_INNER)
			KeyFiltersFor(q, j->quals, keys, nullptr, nullptr, &extra);
		else if (j->jointype == JOIN_LEFT) // the key on the preserved side, the other on the nullable one
			KeyFiltersFor(q, j->quals, keys, left, right, &extra);
		else if (j->jointype == JOIN_RIGHT)
			KeyFiltersFor(q, j->quals, keys, right, left, &extra);
		j->quals = WithConjuncts(j->quals, extra);
		CarryKeyFilters(q, j->larg, keys, j->jointype == JOIN_RIGHT || j->jointype == JOIN_FULL);
		CarryKeyFilters(q, j->rarg, keys, j->jointype == JOIN_LEFT || j->jointype == JOIN_FULL);
	}
}

// `sql` with every $98767000j replaced by the touched values of key j.
char *
ReplaceTouchedParams(const char *sql, int nkeys, const char *touched) {
	std::string out = ReplacePlaceholders(sql, [&](long id) -> std::optional<std::string> {
		long j = id - kTouchedParamBase;
		if (j < 1 || j > nkeys)
			return std::nullopt;
		return "ARRAY(SELECT t.\"__pgt_gk_" + std::to_string(j) + "\" FROM (" + std::string(touched) + ") t)";
	});
	return pstrdup(out.c_str());
}

char *
KeyedRecomputeDelta(Query *q) {
	List *keys = NIL;
	if (const char *why = RecomputeKeys(q, &keys))
		elog(ERROR, "%s", why);
	// The touched keys, computed once for both states and every filter on them.
	char *touched_cte = psprintf("\"__pgt_touched_%d\"", ++g_touched_seq);
	char *touched_sql = DeltaOfQuery(RecomputeInput(q, keys));
	char *touched = psprintf("SELECT * FROM %s", touched_cte);
	// The subquery with its keys as its first output columns (a re-parsed GROUP BY, DISTINCT or
	// PARTITION BY then refers to them, so a filter on them is pushed below).
	Query *full = static_cast<Query *>(copyObject(q));
	if (!full->hasDistinctOn) // DISTINCT ON keeps the ORDER BY choosing its rows
		full->sortClause = NIL;
	int nvisible = AddKeyTargets(full, keys, true);
	Query *old = static_cast<Query *>(copyObject(full));
	// Only in the old state: over live tables the planner reaches the other table by a parameterised
	// index scan already, and with the filter it also evaluated "= ANY (array)" at every rescan (Q13
	// at 1 %: 3,014 keys, 1,529 rescans, 320 ms).
	CarryKeyFilters(old, reinterpret_cast<Node *>(old->jointree), keys, false);
	OldStateInQuery(old);
	int nkeys = list_length(keys);
	char *sql = psprintf("WITH %s AS MATERIALIZED (%s)\n%s\nUNION ALL\n%s", touched_cte, touched_sql,
	                     KeyedPart(full, nkeys, nvisible, touched, 1), KeyedPart(old, nkeys, nvisible, touched, -1));
	return ReplaceTouchedParams(sql, nkeys, touched);
}

} // namespace pgtrickle::dvm_detail
