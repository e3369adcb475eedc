// The differential engine (see dvm.cpp): rewrites before planning: CTE inlining, INTERSECT/EXCEPT, grouping sets.
#include "analyze/dvm_internal.hpp"

namespace pgtrickle::dvm_detail {

// --- Common table expressions -----------------------------------------------------------------------

// Non-recursive CTEs are inlined: every reference becomes a subquery in FROM holding a copy of the
// CTE's query (for the immutable queries a stream table allows, a CTE's result does not depend on
// whether it is evaluated once or per reference). The CTEs of a WITH RECURSIVE that refer to
// themselves stay (dvm_recursive.cpp); the others are inlined there too.
struct CteInlineCtx {
	List *stack; // Query*, innermost first
};

bool InlineCtesWalker(Node *node, void *context);

void
InlineCtesIn(Query *q, CteInlineCtx *ctx) {
	ctx->stack = lcons(q, ctx->stack);
	ListCell *lc;
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind != RTE_CTE || rte->self_reference)
			continue;
		Query *owner = static_cast<Query *>(list_nth(ctx->stack, static_cast<int>(rte->ctelevelsup)));
		ListCell *cl;
		foreach (cl, owner->cteList) {
			auto *cte = static_cast<CommonTableExpr *>(lfirst(cl));
			if (strcmp(cte->ctename, rte->ctename) != 0 || !IsA(cte->ctequery, Query) || cte->cterecursive)
				continue;
			auto *sub = reinterpret_cast<Query *>(copyObject(cte->ctequery));
			if (rte->ctelevelsup > 0)
				IncrementVarSublevelsUp(reinterpret_cast<Node *>(sub), static_cast<int>(rte->ctelevelsup), 1);
			rte->rtekind = RTE_SUBQUERY;
			rte->subquery = sub;
			// The CTE's column names (WITH x (a, b) AS ...) as explicit column aliases.
			rte->alias = makeAlias(rte->alias ? rte->alias->aliasname : rte->eref->aliasname,
			                       static_cast<List *>(copyObject(rte->eref->colnames)));
			rte->security_barrier = false;
			rte->ctename = nullptr;
			rte->ctelevelsup = 0;
			rte->self_reference = false;
			rte->coltypes = NIL;
			rte->coltypmods = NIL;
			rte->colcollations = NIL;
			break;
		}
	}
	(void)query_tree_walker(q, InlineCtesWalker, ctx, QTW_IGNORE_CTE_SUBQUERIES);
	// Under WITH RECURSIVE only the CTEs that refer to themselves stay; references to the others inside
	// them are inlined too.
	List *kept = NIL;
	foreach (lc, q->cteList) {
		auto *cte = static_cast<CommonTableExpr *>(lfirst(lc));
		if (!cte->cterecursive || !IsA(cte->ctequery, Query))
			continue;
		InlineCtesIn(reinterpret_cast<Query *>(cte->ctequery), ctx);
		kept = lappend(kept, cte);
	}
	q->cteList = kept;
	if (kept == NIL)
		q->hasRecursive = false;
	ctx->stack = list_delete_first(ctx->stack);
}

bool
InlineCtesWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Query)) {
		InlineCtesIn(reinterpret_cast<Query *>(node), static_cast<CteInlineCtx *>(context));
		return false;
	}
	return expression_tree_walker(node, InlineCtesWalker, context);
}

Query *
InlineCtes(Query *q) {
	q = static_cast<Query *>(copyObject(q));
	CteInlineCtx ctx{NIL};
	InlineCtesIn(q, &ctx);
	return q;
}

// --- INTERSECT / EXCEPT --------------------------------------------------------------------------------
//
// Rewritten into constructs the engine maintains (then planned again from the rewritten text):
//   A INTERSECT B      SELECT DISTINCT a.* FROM A a WHERE EXISTS (SELECT FROM B b WHERE b = a)
//   A EXCEPT B         ... NOT EXISTS ...
//   A INTERSECT ALL B  the copies of each row of A numbered per distinct row (a window), kept while the
//                      number is at most the row's count in B; EXCEPT ALL: above it
// with "=" meaning IS NOT DISTINCT FROM on every column, as set operations compare rows.

bool
SetopNeedsRewrite(Node *n) {
	if (n == nullptr || IsA(n, RangeTblRef))
		return false;
	auto *s = reinterpret_cast<SetOperationStmt *>(n);
	if (s->op != SETOP_UNION)
		return true;
	return SetopNeedsRewrite(s->larg) || SetopNeedsRewrite(s->rarg);
}

char *
SetopText(Query *q, Node *n, SetOperationStmt *top) {
	int ncols = list_length(top->colTypes);
	char *names = PositionalNames(ncols);
	names[strlen(names) - 2] = '\0'; // no trailing ", "
	if (IsA(n, RangeTblRef)) {
		Query *leaf = rt_fetch(reinterpret_cast<RangeTblRef *>(n)->rtindex, q->rtable)->subquery;
		StringInfoData cols;
		initStringInfo(&cols);
		for (int i = 0; i < ncols; i++)
			appendStringInfo(&cols, "%sx.\"__pgt_c%d\"::%s AS \"__pgt_c%d\"", i ? ", " : "", i + 1,
			                 format_type_with_typemod(list_nth_oid(top->colTypes, i), list_nth_int(top->colTypmods, i)),
			                 i + 1);
		return psprintf("SELECT %s FROM (%s) x(%s)", cols.data, Deparse(leaf), names);
	}
	auto *s = reinterpret_cast<SetOperationStmt *>(n);
	char *l = SetopText(q, s->larg, top);
	char *r = SetopText(q, s->rarg, top);
	if (s->op == SETOP_UNION)
		return psprintf("SELECT %su.* FROM (SELECT a.* FROM (%s) a UNION ALL SELECT b.* FROM (%s) b) u", s->all ? "" : "DISTINCT ",
		                l, r);
	StringInfoData match;
	initStringInfo(&match);
	for (int i = 1; i <= ncols; i++)
		appendStringInfo(&match, "%sb.\"__pgt_c%d\" IS NOT DISTINCT FROM a.\"__pgt_c%d\"", i > 1 ? " AND " : "", i, i);
	bool intersect = s->op == SETOP_INTERSECT;
	if (!s->all)
		return psprintf("SELECT DISTINCT a.* FROM (%s) a WHERE %sEXISTS (SELECT 1 FROM (%s) b WHERE %s)", l,
		                intersect ? "" : "NOT ", r, match.data);
	return psprintf("SELECT %s FROM (SELECT x.*, pg_catalog.row_number() OVER (PARTITION BY %s) AS \"__pgt_rn\" FROM (%s) x) a "
	                "WHERE a.\"__pgt_rn\" OPERATOR(pg_catalog.%s) (SELECT pg_catalog.count(*) FROM (%s) b WHERE %s)",
	                PositionalRefs("a", ncols), PositionalRefs("x", ncols), l, intersect ? "<=" : ">", r, match.data);
}

// The whole query rewritten, its output columns named as before; nullptr if it needs no rewrite.
char *
RewriteSetops(Query *q) {
	if (!q->setOperations || !SetopNeedsRewrite(q->setOperations))
		return nullptr;
	auto *top = reinterpret_cast<SetOperationStmt *>(q->setOperations);
	StringInfoData cols;
	initStringInfo(&cols);
	int i = 1;
	ListCell *lc;
	foreach (lc, q->targetList) {
		auto *tle = static_cast<TargetEntry *>(lfirst(lc));
		if (tle->resjunk)
			continue;
		appendStringInfo(&cols, "%ss.\"__pgt_c%d\" AS %s", i > 1 ? ", " : "", i, quote_identifier(tle->resname));
		i++;
	}
	return psprintf("SELECT %s FROM (%s) s", cols.data, SetopText(q, q->setOperations, top));
}

// --- GROUPING SETS / ROLLUP / CUBE ----------------------------------------------------------------------
//
// Rewritten into a UNION ALL of one GROUP BY per grouping set: the grouped columns a set leaves out read
// as NULL, GROUPING(...) becomes the set's constant bit mask. Each arm is then an aggregating subquery
// of a UNION ALL, maintained by recomputing its touched groups.

struct GroupingSetCtx {
	List *set;         // sortgroupref of the columns grouped in this arm
	List *groupClause; // the query's, in RTE_GROUP column order
	int group_rtindex;
};

Node *
GroupingSetMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	auto *c = static_cast<GroupingSetCtx *>(context);
	if (IsA(node, GroupingFunc) && reinterpret_cast<GroupingFunc *>(node)->agglevelsup == 0) {
		int v = 0;
		ListCell *lc;
		foreach (lc, reinterpret_cast<GroupingFunc *>(node)->refs)
			v = (v << 1) | (list_member_int(c->set, lfirst_int(lc)) ? 0 : 1);
		return reinterpret_cast<Node *>(makeConst(INT4OID, -1, InvalidOid, 4, Int32GetDatum(v), false, true));
	}
	if (IsA(node, Var)) {
		auto *v = reinterpret_cast<Var *>(node);
		if (v->varlevelsup == 0 && c->group_rtindex > 0 && static_cast<int>(v->varno) == c->group_rtindex) {
			auto *sgc = static_cast<SortGroupClause *>(list_nth(c->groupClause, v->varattno - 1));
			if (!list_member_int(c->set, static_cast<int>(sgc->tleSortGroupRef)))
				return reinterpret_cast<Node *>(makeNullConst(v->vartype, v->vartypmod, v->varcollid));
		}
		return node;
	}
	return expression_tree_mutator(node, GroupingSetMutator, context);
}

char *
RewriteGroupingSets(Query *q) {
	int group_rtindex = 0, idx = 1;
	ListCell *lc;
	foreach (lc, q->rtable) {
		if (static_cast<RangeTblEntry *>(lfirst(lc))->rtekind == RTE_GROUP)
			group_rtindex = idx;
		idx++;
	}
	StringInfoData s;
	initStringInfo(&s);
	foreach (lc, expand_grouping_sets(q->groupingSets, q->groupDistinct, 4096)) {
		List *set = static_cast<List *>(lfirst(lc));
		Query *arm = static_cast<Query *>(copyObject(q));
		arm->groupingSets = NIL;
		arm->groupDistinct = false;
		arm->sortClause = NIL;
		List *gc = NIL;
		ListCell *gl;
		foreach (gl, q->groupClause)
			if (list_member_int(set, static_cast<int>(static_cast<SortGroupClause *>(lfirst(gl))->tleSortGroupRef)))
				gc = lappend(gc, copyObject(lfirst(gl)));
		arm->groupClause = gc;
		GroupingSetCtx ctx{set, q->groupClause, group_rtindex};
		arm->targetList = reinterpret_cast<List *>(GroupingSetMutator(reinterpret_cast<Node *>(arm->targetList), &ctx));
		arm->havingQual = GroupingSetMutator(arm->havingQual, &ctx);
		if (s.len > 0)
			appendStringInfoString(&s, "\nUNION ALL\n");
		appendStringInfo(&s, "SELECT * FROM (%s) g", Deparse(arm));
	}
	return s.data;
}

} // namespace pgtrickle::dvm_detail
