// The differential engine (see dvm.cpp): Subqueries in FROM with aggregation, DISTINCT, DISTINCT ON or windows: touched keys, new minus old.
#include "analyze/dvm_internal.hpp"

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

char *
KeyedRecomputeDelta(Query *q) {
	List *keys = NIL;
	if (const char *why = RecomputeKeys(q, &keys))
		elog(ERROR, "%s", why);
	char *touched = DeltaOfQuery(RecomputeInput(q, keys));
	// The subquery with its keys as its first output columns (a re-parsed GROUP BY, DISTINCT or
	// PARTITION BY then refers to them, so a filter on them is pushed below).
	Query *full = static_cast<Query *>(copyObject(q));
	if (!full->hasDistinctOn) // DISTINCT ON keeps the ORDER BY choosing its rows
		full->sortClause = NIL;
	int nvisible = AddKeyTargets(full, keys, true);
	Query *old = static_cast<Query *>(copyObject(full));
	OldStateInQuery(old);
	int nkeys = list_length(keys);
	return psprintf("%s\nUNION ALL\n%s", KeyedPart(full, nkeys, nvisible, touched, 1),
	                KeyedPart(old, nkeys, nvisible, touched, -1));
}

} // namespace pgtrickle::dvm_detail
