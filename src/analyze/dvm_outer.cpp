// The differential engine (see dvm.cpp): Outer joins: an inner-join arm plus NULL-padded NOT EXISTS arms.
#include "analyze/dvm_internal.hpp"

namespace pgtrickle::dvm_detail {

// --- Outer joins ---------------------------------------------------------------------------------------
//
// A LEFT JOIN B ON c  =  (A JOIN B ON c)  ⊎  (A WHERE NOT EXISTS (SELECT FROM B WHERE c), B's columns NULL)
// RIGHT JOIN the mirror image, FULL JOIN both anti-join arms. A level with an outer join is rewritten
// into these arms (one outer join at a time, recursively) and their deltas added: the inner arm is an
// ordinary join, the anti-join arm a subquery in an expression (see above), whose old and new
// states are compared for the rows the changes can reach.

JoinExpr *
FindOuterJoin(Node *n) {
	if (n == nullptr || IsA(n, RangeTblRef))
		return nullptr;
	if (IsA(n, FromExpr)) {
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			if (JoinExpr *j = FindOuterJoin(static_cast<Node *>(lfirst(lc))))
				return j;
		return nullptr;
	}
	auto *j = reinterpret_cast<JoinExpr *>(n);
	if (j->jointype == JOIN_LEFT || j->jointype == JOIN_RIGHT || j->jointype == JOIN_FULL)
		return j;
	if (JoinExpr *inner = FindOuterJoin(j->larg))
		return inner;
	return FindOuterJoin(j->rarg);
}

// Replaces the join tree node `target` (found by identity) by `replacement`.
Node *
ReplaceJoinNode(Node *n, Node *target, Node *replacement) {
	if (n == target)
		return replacement;
	if (n == nullptr || IsA(n, RangeTblRef))
		return n;
	if (IsA(n, FromExpr)) {
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			lfirst(lc) = ReplaceJoinNode(static_cast<Node *>(lfirst(lc)), target, replacement);
		return n;
	}
	auto *j = reinterpret_cast<JoinExpr *>(n);
	j->larg = ReplaceJoinNode(j->larg, target, replacement);
	j->rarg = ReplaceJoinNode(j->rarg, target, replacement);
	return n;
}

// Range-table indexes of the inputs (and joins) under a join tree node.
Bitmapset *
JoinTreeRelids(Node *n) {
	if (n == nullptr)
		return nullptr;
	if (IsA(n, RangeTblRef))
		return bms_make_singleton(reinterpret_cast<RangeTblRef *>(n)->rtindex);
	if (IsA(n, FromExpr)) {
		Bitmapset *out = nullptr;
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			out = bms_union(out, JoinTreeRelids(static_cast<Node *>(lfirst(lc))));
		return out;
	}
	auto *j = reinterpret_cast<JoinExpr *>(n);
	Bitmapset *out = bms_union(JoinTreeRelids(j->larg), JoinTreeRelids(j->rarg));
	return j->rtindex ? bms_add_member(out, j->rtindex) : out;
}

struct NullOutCtx {
	Bitmapset *relids;
	int depth;
};

// Columns of the NULL-padded side become typed NULLs (at any subquery depth).
Node *
NullOutMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	auto *c = static_cast<NullOutCtx *>(context);
	if (IsA(node, Var)) {
		auto *v = reinterpret_cast<Var *>(node);
		if (static_cast<int>(v->varlevelsup) == c->depth && bms_is_member(static_cast<int>(v->varno), c->relids))
			return reinterpret_cast<Node *>(makeNullConst(v->vartype, v->vartypmod, v->varcollid));
		return node;
	}
	if (IsA(node, Query)) {
		c->depth++;
		Node *out = reinterpret_cast<Node *>(query_tree_mutator(reinterpret_cast<Query *>(node), NullOutMutator, context, 0));
		c->depth--;
		return out;
	}
	return expression_tree_mutator(node, NullOutMutator, context);
}

// Outer references of a join condition, as seen from a subquery holding the nullable side.
struct LevelUpCtx {
	Bitmapset *inner_relids;
};

Node *
LevelUpMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	if (IsA(node, Var)) {
		auto *v = reinterpret_cast<Var *>(copyObject(node));
		if (v->varlevelsup == 0 && !bms_is_member(static_cast<int>(v->varno), static_cast<LevelUpCtx *>(context)->inner_relids))
			v->varlevelsup = 1;
		return reinterpret_cast<Node *>(v);
	}
	return expression_tree_mutator(node, LevelUpMutator, context);
}

// --- A subquery on the NULL-padded side ---------------------------------------------------------------
//
// A view, or a subquery filtering, projecting or grouping tables, on the NULL-padded side: the inner arm
// joins it as any subquery in FROM; the anti-join arm's NOT EXISTS reads its tables directly,
//   NOT EXISTS (SELECT 1 FROM <its FROM> WHERE <its WHERE> AND c[its columns := their expressions]),
// which holds exactly when no row of the subquery meets c. For a grouped subquery, c may read only its
// group keys (a group with key k exists iff a row of its input has key k); no HAVING. A LATERAL
// subquery's references to the kept side stay outer references of the body. With LIMIT k (k > 0), c
// may read none of its columns (typically ON true): it has a row iff its unlimited form has one.

// Base tables joined by inner joins only.
static bool
TablesAndInnerJoins(Query *sq, Node *n) {
	if (IsA(n, RangeTblRef)) {
		RangeTblEntry *rte = rt_fetch(reinterpret_cast<RangeTblRef *>(n)->rtindex, sq->rtable);
		return rte->rtekind == RTE_RELATION &&
		       (rte->relkind == RELKIND_RELATION || rte->relkind == RELKIND_PARTITIONED_TABLE) && !rte->tablesample;
	}
	if (IsA(n, FromExpr)) {
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			if (!TablesAndInnerJoins(sq, static_cast<Node *>(lfirst(lc))))
				return false;
		return true;
	}
	return IsA(n, JoinExpr) && reinterpret_cast<JoinExpr *>(n)->jointype == JOIN_INNER &&
	       !ContainsSublink(reinterpret_cast<JoinExpr *>(n)->quals) &&
	       TablesAndInnerJoins(sq, reinterpret_cast<JoinExpr *>(n)->larg) &&
	       TablesAndInnerJoins(sq, reinterpret_cast<JoinExpr *>(n)->rarg);
}

// The subquery's output expressions, group references resolved (PostgreSQL 18 parses grouped
// expressions as Vars of a GROUP entry).
static List *
PaddedTargets(Query *sq) {
	List *tl = static_cast<List *>(copyObject(sq->targetList));
	if (sq->hasGroupRTE)
		tl = reinterpret_cast<List *>(flatten_group_exprs(nullptr, sq, reinterpret_cast<Node *>(tl)));
	return tl;
}

struct PadRefsCtx {
	int varno;
	Query *sq;
	List *targets;
	bool ok;
};

// Every reference of the join condition to the padded subquery is a column (not the whole row) that
// the NOT EXISTS body can compute: any output column, or for a grouped subquery a group key.
static bool
PadRefsWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	auto *c = static_cast<PadRefsCtx *>(context);
	if (IsA(node, Var)) {
		auto *v = reinterpret_cast<Var *>(node);
		if (v->varlevelsup != 0 || static_cast<int>(v->varno) != c->varno)
			return false;
		if (v->varattno <= 0 || v->varattno > list_length(c->targets)) {
			c->ok = false;
			return false;
		}
		auto *tle = static_cast<TargetEntry *>(list_nth(c->targets, v->varattno - 1));
		bool grouped = c->sq->groupClause != NIL || c->sq->hasAggs;
		if (tle->resjunk || (grouped && (tle->ressortgroupref == 0 ||
		                                 get_sortgroupref_clause_noerr(tle->ressortgroupref, c->sq->groupClause) == nullptr)))
			c->ok = false;
		return false;
	}
	return expression_tree_walker(node, PadRefsWalker, context);
}

// See dvm_internal.hpp. `pad` is a RangeTblRef to a subquery entry.
const char *
PaddedSubqueryProblem(Query *q, JoinExpr *j, Node *pad) {
	int varno = reinterpret_cast<RangeTblRef *>(pad)->rtindex;
	RangeTblEntry *rte = rt_fetch(varno, q->rtable);
	Query *sq = rte->subquery;
	// Its conditions would meet the ON condition in one WHERE, evaluated in any order.
	if (rte->security_barrier)
		return "a security_barrier view on the NULL-padded side of an outer join is not maintained differentially";
	if (sq->setOperations != nullptr || sq->cteList != NIL || sq->hasWindowFuncs || sq->hasTargetSRFs ||
	    sq->hasSubLinks || sq->distinctClause != NIL || sq->limitOffset != nullptr ||
	    sq->groupingSets != NIL || sq->rowMarks != NIL || sq->hasRecursive || sq->hasModifyingCTE ||
	    sq->commandType != CMD_SELECT || sq->havingQual != nullptr ||
	    (sq->hasAggs && sq->groupClause == NIL) || contain_volatile_functions(reinterpret_cast<Node *>(sq)))
		return "a subquery on the NULL-padded side of an outer join is maintained differentially only when it "
		       "filters, projects, groups (without HAVING) or limits tables: here it uses set operations, WITH, "
		       "window functions, set-returning functions, subqueries in expressions, DISTINCT, OFFSET, HAVING, "
		       "an aggregate without GROUP BY or a volatile function";
	if (!TablesAndInnerJoins(sq, reinterpret_cast<Node *>(sq->jointree)))
		return "a subquery on the NULL-padded side of an outer join is maintained differentially only over tables "
		       "joined by inner joins";
	PadRefsCtx c{varno, sq, PaddedTargets(sq), true};
	(void)PadRefsWalker(j->quals, &c);
	if (sq->limitCount != nullptr) {
		// LIMIT k (k > 0) keeps a row if there is one: with an ON condition that reads none of its columns
		// (LEFT JOIN LATERAL (… ORDER BY … LIMIT 1) ON true), the row is padded iff its unlimited form is
		// empty. The body reads that form (the ORDER BY and LIMIT dropped).
		Node *lim = eval_const_expressions(nullptr, static_cast<Node *>(copyObject(sq->limitCount)));
		auto *k = reinterpret_cast<Const *>(lim);
		if (!IsA(lim, Const) || k->constisnull || k->consttype != INT8OID || DatumGetInt64(k->constvalue) <= 0)
			return "a subquery on the NULL-padded side of an outer join is maintained differentially with LIMIT only "
			       "for a positive constant LIMIT without OFFSET";
		if (bms_is_member(varno, pull_varnos(nullptr, j->quals)))
			return "the ON condition of an outer join reads a column of the LIMIT subquery on its NULL-padded side: "
			       "maintained differentially only when it reads none (ON true)";
	}
	if (!c.ok)
		return "the ON condition of an outer join reads the whole row of the subquery on its NULL-padded side, or "
		       "an aggregate of it: only its columns, and of a grouped subquery its group keys, are maintained "
		       "differentially";
	return nullptr;
}

struct PadSubstCtx {
	int varno;
	List *targets;
};

// Columns of the padded subquery in the join condition become their expressions over its tables.
static Node *
PadSubstMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	auto *c = static_cast<PadSubstCtx *>(context);
	if (IsA(node, Var)) {
		auto *v = reinterpret_cast<Var *>(node);
		if (v->varlevelsup == 0 && static_cast<int>(v->varno) == c->varno)
			return reinterpret_cast<Node *>(copyObject(static_cast<TargetEntry *>(list_nth(c->targets, v->varattno - 1))->expr));
		return static_cast<Node *>(copyObject(node));
	}
	return expression_tree_mutator(node, PadSubstMutator, context);
}

// The anti-join arm of `j` keeping side `keep` and padding side `pad` with NULLs.
Query *
AntiJoinArm(Query *q, JoinExpr *j, bool keep_left) {
	Query *arm = static_cast<Query *>(copyObject(q));
	JoinExpr *aj = FindOuterJoin(reinterpret_cast<Node *>(arm->jointree));
	// FindOuterJoin finds the same (first) outer join in the copy.
	Node *keep = keep_left ? aj->larg : aj->rarg;
	Node *pad = keep_left ? aj->rarg : aj->larg;
	Bitmapset *pad_relids = JoinTreeRelids(pad);
	// NOT EXISTS (SELECT 1 FROM pad WHERE c)
	Query *sub = makeNode(Query);
	sub->commandType = CMD_SELECT;
	sub->querySource = QSRC_ORIGINAL;
	sub->canSetTag = true;
	sub->rtable = static_cast<List *>(copyObject(arm->rtable));
	sub->rteperminfos = static_cast<List *>(copyObject(arm->rteperminfos));
	// Entries of the kept side are unused here: placeholders, so nothing scans them for relations.
	int idx = 1;
	ListCell *lc;
	foreach (lc, sub->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (!bms_is_member(idx++, pad_relids))
			MakePlaceholderRte(rte, "__pgt_unused");
	}
	LevelUpCtx lu{pad_relids};
	Node *cond = LevelUpMutator(static_cast<Node *>(copyObject(aj->quals)), &lu);
	RangeTblEntry *pad_rte = IsA(pad, RangeTblRef) ? rt_fetch(reinterpret_cast<RangeTblRef *>(pad)->rtindex, sub->rtable)
	                                               : nullptr;
	if (pad_rte != nullptr && pad_rte->rtekind == RTE_SUBQUERY) {
		// A subquery (PaddedSubqueryProblem): its tables join the body, its WHERE and the condition over
		// its expressions are the body's WHERE.
		Query *sq = static_cast<Query *>(copyObject(pad_rte->subquery));
		int varno = reinterpret_cast<RangeTblRef *>(pad)->rtindex;
		int offset = list_length(sub->rtable);
		// Group references resolved first (against the subquery's own range table); then the whole subquery
		// moves, its join entries' alias variables too.
		List *targets = PaddedTargets(sq);
		OffsetVarNodes(reinterpret_cast<Node *>(sq), offset, 0);
		OffsetVarNodes(reinterpret_cast<Node *>(targets), offset, 0);
		CombineRangeTables(&sub->rtable, &sub->rteperminfos, sq->rtable, sq->rteperminfos);
		int i = 1;
		foreach (lc, sub->rtable) {
			auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
			if (i == varno || (i > offset && rte->rtekind == RTE_GROUP))
				MakePlaceholderRte(rte, "__pgt_unused");
			i++;
		}
		PadSubstCtx ps{varno, targets};
		cond = PadSubstMutator(cond, &ps);
		List *quals = sq->jointree->quals ? make_ands_implicit(reinterpret_cast<Expr *>(sq->jointree->quals)) : NIL;
		if (cond != nullptr)
			quals = list_concat(quals, make_ands_implicit(reinterpret_cast<Expr *>(cond)));
		sub->jointree = makeFromExpr(sq->jointree->fromlist, reinterpret_cast<Node *>(make_ands_explicit(quals)));
	} else {
		sub->jointree = makeFromExpr(list_make1(copyObject(pad)), cond);
	}
	sub->targetList = OneTarget();
	SubLink *sl = makeNode(SubLink);
	sl->subLinkType = EXISTS_SUBLINK;
	sl->subselect = reinterpret_cast<Node *>(sub);
	sl->location = -1;
	Expr *anti = makeBoolExpr(NOT_EXPR, list_make1(sl), -1);
	arm->jointree = reinterpret_cast<FromExpr *>(ReplaceJoinNode(reinterpret_cast<Node *>(arm->jointree),
	                                                              reinterpret_cast<Node *>(aj), keep));
	NullOutCtx nc{pad_relids, 0};
	arm->targetList = reinterpret_cast<List *>(NullOutMutator(reinterpret_cast<Node *>(arm->targetList), &nc));
	arm->jointree = reinterpret_cast<FromExpr *>(NullOutMutator(reinterpret_cast<Node *>(arm->jointree), &nc));
	List *quals = arm->jointree->quals ? make_ands_implicit(reinterpret_cast<Expr *>(arm->jointree->quals)) : NIL;
	quals = lappend(quals, anti);
	arm->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(quals));
	arm->hasSubLinks = true;
	(void)j;
	return arm;
}

// The arms of the first outer join of q (join alias columns already resolved).
List *
OuterJoinArms(Query *q) {
	JoinExpr *j = FindOuterJoin(reinterpret_cast<Node *>(q->jointree));
	Query *inner = static_cast<Query *>(copyObject(q));
	FindOuterJoin(reinterpret_cast<Node *>(inner->jointree))->jointype = JOIN_INNER;
	List *arms = list_make1(inner);
	if (j->jointype == JOIN_LEFT || j->jointype == JOIN_FULL)
		arms = lappend(arms, AntiJoinArm(q, j, true));
	if (j->jointype == JOIN_RIGHT || j->jointype == JOIN_FULL)
		arms = lappend(arms, AntiJoinArm(q, j, false));
	return arms;
}

// Join alias columns (USING/merged columns, join.* references) replaced by their definitions.
Query *
FlattenJoinAliases(Query *q) {
	q = static_cast<Query *>(copyObject(q));
	if (q->hasGroupRTE)
		q->targetList = reinterpret_cast<List *>(flatten_group_exprs(nullptr, q, reinterpret_cast<Node *>(q->targetList)));
	q->targetList = reinterpret_cast<List *>(flatten_join_alias_vars(nullptr, q, reinterpret_cast<Node *>(q->targetList)));
	q->jointree = reinterpret_cast<FromExpr *>(flatten_join_alias_vars(nullptr, q, reinterpret_cast<Node *>(q->jointree)));
	return q;
}

} // namespace pgtrickle::dvm_detail
