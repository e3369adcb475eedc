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

namespace pgtrickle::dvm_detail {

// --- Windows with several PARTITION BY clauses -----------------------------------------------------------
//
// A level whose windows share no PARTITION BY expression is split into nested levels, each computing
// the windows of one group of windows that do share one (innermost first), over all rows of the level
// below and every column the level above needs:
//
//   SELECT <targets>, f1() OVER (PARTITION BY a), f2() OVER (PARTITION BY b) FROM <input> WHERE <w>
//   =  SELECT <targets, f1 read from below>, f2() OVER (PARTITION BY b)
//        FROM (SELECT <columns>, f1() OVER (PARTITION BY a) FROM <input> WHERE <w>) x
//
// Window functions do not filter or multiply rows, so every level sees exactly the rows of the
// original level, and each window is computed over the same partitions as before. Each new level is
// then maintained as a subquery with windows (touched partitions recomputed, dvm_keyed.cpp): a change
// recomputes the a-partitions it touches, and the b-partitions of every row whose f1 value or input
// changed. Levels are only split when every window has a PARTITION BY, no aggregation, DISTINCT or
// set-returning function shares the level, and the windows use no subquery and no outer column.

struct WindowGroup {
	List *keys;    // the PARTITION BY expressions the group's windows share
	List *winrefs; // its windows' winref (int list)
};

bool
OuterRefWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Var) && reinterpret_cast<Var *>(node)->varlevelsup > 0)
		return true;
	if (IsA(node, Aggref) && reinterpret_cast<Aggref *>(node)->agglevelsup > 0)
		return true;
	return expression_tree_walker(node, OuterRefWalker, context);
}

bool
HasOuterRefsOrSublinks(Node *n) {
	return n != nullptr && (ContainsSublink(n) || OuterRefWalker(n, nullptr));
}

// The windows of q, grouped (greedily, in order) so that the windows of a group share a PARTITION BY
// expression; NIL if a window has no PARTITION BY.
List *
GroupWindows(Query *q) {
	List *groups = NIL;
	ListCell *lc;
	foreach (lc, q->windowClause) {
		auto *wc = static_cast<WindowClause *>(lfirst(lc));
		List *exprs = PartitionExprs(q, wc);
		if (exprs == NIL)
			return NIL;
		WindowGroup *into = nullptr;
		ListCell *gc;
		foreach (gc, groups) {
			auto *g = static_cast<WindowGroup *>(lfirst(gc));
			List *shared = NIL;
			ListCell *kc;
			foreach (kc, g->keys)
				if (list_member(exprs, lfirst(kc)))
					shared = lappend(shared, lfirst(kc));
			if (shared != NIL) {
				g->keys = shared;
				into = g;
				break;
			}
		}
		if (!into) {
			into = static_cast<WindowGroup *>(palloc0(sizeof(WindowGroup)));
			into->keys = exprs;
			groups = lappend(groups, into);
		}
		into->winrefs = lappend_int(into->winrefs, static_cast<int>(wc->winref));
	}
	return groups;
}

bool
NeedsWindowSplit(Query *q) {
	if (!q->hasWindowFuncs || q->hasAggs || q->groupClause || q->havingQual || q->groupingSets ||
	    q->distinctClause || q->setOperations || q->hasTargetSRFs || q->windowClause == NIL)
		return false;
	List *groups = GroupWindows(q);
	if (list_length(groups) < 2)
		return false;
	// The window functions and their PARTITION BY / ORDER BY move into inner levels.
	return !HasOuterRefsOrSublinks(reinterpret_cast<Node *>(q->targetList));
}

struct WindowMapCtx {
	List *vars;       // the Vars of the original level, as columns 1..n of every level above the input
	List *done_funcs; // WindowFunc nodes computed below ...
	List *done_cols;  // ... and their column numbers (int list)
	List *winref_map; // pairs (old winref, new winref) of the windows computed at this level
};

Node *
WindowMapMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	auto *c = static_cast<WindowMapCtx *>(context);
	if (IsA(node, Var) && reinterpret_cast<Var *>(node)->varlevelsup == 0) {
		auto *v = reinterpret_cast<Var *>(node);
		int i = 1;
		ListCell *lc;
		foreach (lc, c->vars) {
			auto *u = static_cast<Var *>(lfirst(lc));
			if (u->varno == v->varno && u->varattno == v->varattno)
				return reinterpret_cast<Node *>(makeVar(1, static_cast<AttrNumber>(i), v->vartype, v->vartypmod,
				                                        v->varcollid, 0));
			i++;
		}
		elog(ERROR, "pg_trickle: column of a window level not found below it");
	}
	if (IsA(node, WindowFunc)) {
		auto *wf = reinterpret_cast<WindowFunc *>(node);
		ListCell *fc, *cc;
		forboth (fc, c->done_funcs, cc, c->done_cols)
			if (equal(lfirst(fc), wf))
				return reinterpret_cast<Node *>(
				    makeVar(1, static_cast<AttrNumber>(lfirst_int(cc)), wf->wintype, -1, exprCollation(node), 0));
		auto *copy = reinterpret_cast<WindowFunc *>(expression_tree_mutator(node, WindowMapMutator, context));
		for (int k = 0; k + 1 < list_length(c->winref_map); k += 2)
			if (list_nth_int(c->winref_map, k) == static_cast<int>(wf->winref))
				copy->winref = static_cast<Index>(list_nth_int(c->winref_map, k + 1));
		return reinterpret_cast<Node *>(copy);
	}
	return expression_tree_mutator(node, WindowMapMutator, context);
}

bool
CollectWindowFuncsWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, WindowFunc)) {
		auto **out = static_cast<List **>(context);
		if (!list_member(*out, node))
			*out = lappend(*out, node);
		return false;
	}
	return expression_tree_walker(node, CollectWindowFuncsWalker, context);
}

RangeTblEntry *
SubqueryRte(Query *sub, const char *alias) {
	List *names = NIL;
	ListCell *lc;
	foreach (lc, sub->targetList) {
		auto *tle = static_cast<TargetEntry *>(lfirst(lc));
		if (!tle->resjunk)
			names = lappend(names, makeString(pstrdup(tle->resname)));
	}
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_SUBQUERY;
	rte->subquery = sub;
	rte->alias = makeAlias(alias, NIL);
	rte->eref = makeAlias(alias, names);
	rte->inFromCl = true;
	return rte;
}

// A level reading `below` (as its only FROM item).
Query *
LevelOver(Query *below, const char *alias) {
	Query *l = makeNode(Query);
	l->commandType = CMD_SELECT;
	l->querySource = QSRC_ORIGINAL;
	l->canSetTag = true;
	l->rtable = list_make1(SubqueryRte(below, alias));
	RangeTblRef *ref = makeNode(RangeTblRef);
	ref->rtindex = 1;
	l->jointree = makeFromExpr(list_make1(ref), nullptr);
	return l;
}

// Splits q (in place) into nested window levels; see above.
void
SplitWindowLevel(Query *q) {
	List *groups = GroupWindows(q);
	int ngroups = list_length(groups);
	// Level 0: the input, projecting every column the targets use.
	List *vars = pull_var_clause(reinterpret_cast<Node *>(q->targetList), PVC_RECURSE_WINDOWFUNCS |
	                                                                       PVC_RECURSE_PLACEHOLDERS);
	List *uniq = NIL;
	ListCell *lc;
	foreach (lc, vars) {
		auto *v = static_cast<Var *>(lfirst(lc));
		bool seen = false;
		ListCell *uc;
		foreach (uc, uniq) {
			auto *u = static_cast<Var *>(lfirst(uc));
			seen = seen || (u->varno == v->varno && u->varattno == v->varattno);
		}
		if (!seen)
			uniq = lappend(uniq, v);
	}
	Query *below = LevelInput(q);
	int ncols = 0;
	foreach (lc, uniq) {
		ncols++;
		below->targetList = lappend(below->targetList, makeTargetEntry(static_cast<Expr *>(copyObject(lfirst(lc))),
		                                                               static_cast<AttrNumber>(ncols),
		                                                               psprintf("__pgt_wc_%d", ncols), false));
	}
	// The window functions of each group, in the order of the targets.
	List *all_funcs = NIL;
	(void)CollectWindowFuncsWalker(reinterpret_cast<Node *>(q->targetList), &all_funcs);

	WindowMapCtx ctx{uniq, NIL, NIL, NIL};
	int depth = 0;
	for (int g = 0; g < ngroups; g++) {
		auto *grp = static_cast<WindowGroup *>(list_nth(groups, g));
		bool top = g == ngroups - 1;
		// Below this level, outer references of what moved down are one more level away.
		IncrementVarSublevelsUp(reinterpret_cast<Node *>(below), 1, 1);
		Query *l = LevelOver(below, psprintf("__pgt_w%d", ++depth));
		ctx.winref_map = NIL;
		Index next_ref = 1;
		List *clauses = NIL;
		ListCell *wl;
		foreach (wl, q->windowClause) {
			auto *wc = static_cast<WindowClause *>(lfirst(wl));
			if (!list_member_int(grp->winrefs, static_cast<int>(wc->winref)))
				continue;
			auto *copy = static_cast<WindowClause *>(copyObject(wc));
			ctx.winref_map = lappend_int(lappend_int(ctx.winref_map, static_cast<int>(wc->winref)), static_cast<int>(next_ref));
			copy->winref = next_ref++;
			copy->name = nullptr;
			copy->refname = nullptr;
			clauses = lappend(clauses, copy);
		}
		l->windowClause = clauses;
		l->hasWindowFuncs = true;
		if (top) {
			// The original targets (their sort/group references kept for the clauses above).
			l->targetList = reinterpret_cast<List *>(WindowMapMutator(reinterpret_cast<Node *>(q->targetList), &ctx));
			l->sortClause = q->sortClause;
			l->limitCount = q->limitCount;
			l->limitOffset = q->limitOffset;
			l->limitOption = q->limitOption;
		} else {
			// Every column from below, this group's window functions, and (junk) the expressions its
			// PARTITION BY / ORDER BY refer to.
			List *tl = NIL;
			int resno = 0;
			foreach (lc, below->targetList) {
				auto *tle = static_cast<TargetEntry *>(lfirst(lc));
				if (tle->resjunk)
					continue;
				resno++;
				tl = lappend(tl, makeTargetEntry(reinterpret_cast<Expr *>(makeVar(1, static_cast<AttrNumber>(resno),
				                                                                  exprType(reinterpret_cast<Node *>(tle->expr)),
				                                                                  exprTypmod(reinterpret_cast<Node *>(tle->expr)),
				                                                                  exprCollation(reinterpret_cast<Node *>(tle->expr)),
				                                                                  0)),
				                                 static_cast<AttrNumber>(resno), pstrdup(tle->resname), false));
			}
			List *new_funcs = NIL, *new_cols = NIL;
			ListCell *fc;
			foreach (fc, all_funcs) {
				auto *wf = static_cast<WindowFunc *>(lfirst(fc));
				if (!list_member_int(grp->winrefs, static_cast<int>(wf->winref)))
					continue;
				resno++;
				tl = lappend(tl, makeTargetEntry(reinterpret_cast<Expr *>(WindowMapMutator(reinterpret_cast<Node *>(wf), &ctx)),
				                                 static_cast<AttrNumber>(resno), psprintf("__pgt_wf_%d", resno), false));
				new_funcs = lappend(new_funcs, wf);
				new_cols = lappend_int(new_cols, resno);
			}
			foreach (wl, clauses) {
				auto *wc = static_cast<WindowClause *>(lfirst(wl));
				List *refs = list_concat_copy(wc->partitionClause, wc->orderClause);
				ListCell *sc;
				foreach (sc, refs) {
					auto *sgc = static_cast<SortGroupClause *>(lfirst(sc));
					bool have = false;
					ListCell *tc;
					foreach (tc, tl)
						have = have || static_cast<TargetEntry *>(lfirst(tc))->ressortgroupref == sgc->tleSortGroupRef;
					if (have)
						continue;
					Node *e = reinterpret_cast<Node *>(get_sortgroupclause_expr(sgc, q->targetList));
					TargetEntry *tle = makeTargetEntry(reinterpret_cast<Expr *>(WindowMapMutator(e, &ctx)),
					                                   static_cast<AttrNumber>(++resno), nullptr, true);
					tle->ressortgroupref = sgc->tleSortGroupRef;
					tl = lappend(tl, tle);
				}
			}
			l->targetList = tl;
			// Columns from below keep their positions; this level's window results follow them.
			ctx.done_funcs = list_concat(ctx.done_funcs, new_funcs);
			ctx.done_cols = list_concat(ctx.done_cols, new_cols);
			// The input columns stay columns 1..ncols at every level: ctx.vars maps them as before.
		}
		below = l;
	}
	*q = *below;
}

bool
SplitWindowsWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Query)) {
		auto *q = reinterpret_cast<Query *>(node);
		(void)query_tree_walker(q, SplitWindowsWalker, context, QTW_IGNORE_CTE_SUBQUERIES);
		if (NeedsWindowSplit(q)) {
			SplitWindowLevel(q);
			*static_cast<bool *>(context) = true;
		}
		return false;
	}
	return expression_tree_walker(node, SplitWindowsWalker, context);
}

// The whole query with its window levels split (see above); nullptr if none needed it.
char *
RewriteWindowLevels(Query *q) {
	bool changed = false;
	(void)SplitWindowsWalker(reinterpret_cast<Node *>(q), &changed);
	return changed ? Deparse(q) : nullptr;
}

} // namespace pgtrickle::dvm_detail
