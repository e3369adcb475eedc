// The differential engine (see dvm.cpp): Subqueries in expressions and LATERAL: probes, old states, the re-evaluated terms.
#include "analyze/dvm_internal.hpp"

namespace pgtrickle::dvm_detail {

// --- Subqueries in expressions (EXISTS, IN, NOT IN, op ANY/ALL, scalar subqueries) -----------------
//
// A level Q(L; S) reads its FROM inputs L and, through its subqueries, relations S. Split
//   Q(L₁; S₁) − Q(L₀; S₀) = [Q(L₁; S₁) − Q(L₀; S₁)] + [Q(L₀; S₁) − Q(L₀; S₀)].
// The first bracket is the ordinary join delta with the subqueries left as they are (reading the live
// tables). The second re-evaluates the level over the old state of its inputs twice — subqueries on
// the live tables, then on the old state of their relations — restricted to the input rows whose
// subquery results can differ: those for which a subquery finds a changed row (a probe). Any superset
// of the affected rows gives the same result, so the probe may be generous; what it must not do is
// miss a row. Probes are disjoint pieces (EXISTS probe k AND NOT EXISTS probes 1..k-1), so each is a
// plain semi-join the planner can drive from the change buffers.

// Changed rows of a base table in the window (every image, inserted or deleted), weight 1.
char *
ChangedRowsSql(RangeTblEntry *rte) {
	char *buffer = BufferRelation(rte->relid);
	return psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s b WHERE b.\"__pgt_op\" "
	                "OPERATOR(pg_catalog.<>) 'T' AND %s",
	                RelationColumns(rte->relid, "b", true), buffer, BufferWindowPredicate("b", !g_large_windows).c_str());
}

// One row if any of the tables changed in the window (a coarse, uncorrelated probe).
char *
AnyChangeSql(List *relids) {
	StringInfoData s;
	initStringInfo(&s);
	ListCell *lc;
	foreach (lc, relids) {
		appendStringInfo(&s, "%sSELECT 1 FROM (%s) p", s.len ? " UNION ALL " : "",
		                 BufferWindowProbe(BufferRelation(lfirst_oid(lc))).c_str());
	}
	if (s.len == 0)
		appendStringInfoString(&s, "SELECT 1 WHERE false");
	return psprintf("SELECT 1 AS \"__pgt_one\" FROM (%s) x LIMIT 1", s.data);
}

// Every row version of either state: the live table plus every changed row.
char *
AllImagesSql(RangeTblEntry *rte) {
	return psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s UNION ALL %s",
	                RelationColumns(rte->relid, "a", false), LiveRelation(rte), ChangedRowsSql(rte));
}

// Column definition list "c1 type, ..., __pgt_w int8" for the positional columns of a relation.
char *
PositionalColumnDefs(Oid relid) {
	StringInfoData s;
	initStringInfo(&s);
	for (int attno = 1;; attno++) {
		HeapTuple tp = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attno));
		if (!HeapTupleIsValid(tp))
			break;
		Form_pg_attribute att = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(tp));
		appendStringInfo(&s, "\"__pgt_c%d\" %s, ", attno,
		                 att->attisdropped ? "pg_catalog.int4" : format_type_with_typemod(att->atttypid, att->atttypmod));
		ReleaseSysCache(tp);
	}
	appendStringInfoString(&s, "\"__pgt_w\" pg_catalog.int8");
	return s.data;
}

// The old state of a base table as a bag of rows (weight 1 each).
char *
OldRowsSql(RangeTblEntry *rte) {
	if (RelationKey(rte->relid) != NIL) {
		// Keyed: each key once, so neg weights are 1. The deleted rows are aggregated once per
		// statement into an array (an InitPlan) and unnested: inside a correlated subquery the
		// consolidated window would otherwise be computed again for every outer row. The live arm
		// carries "untouched" as a flag column filtered above the UNION ALL, not as its own WHERE:
		// an arm without conditions is flattened into an append relation, so the planner reaches
		// the live table by index from correlated and join conditions (a filtered arm stays a
		// subquery, scanned whole).
		KeyedStates st = KeyedStatesOf(rte);
		int ncols = list_length(rte->eref->colnames);
		return psprintf("SELECT %s, f.\"__pgt_w\" FROM (%s UNION ALL SELECT u.*, true FROM pg_catalog.unnest((SELECT "
		                "pg_catalog.array_agg(n) FROM (%s) n)) AS u(%s)) f(%s\"__pgt_w\", \"__pgt_ok\") WHERE f.\"__pgt_ok\"",
		                PositionalRefs("f", ncols), st.live_ok, st.neg_shared, PositionalColumnDefs(rte->relid),
		                PositionalNames(ncols));
	}
	int ncols = list_length(rte->eref->colnames);
	char *names = PositionalNames(ncols);
	char *delta = BaseDeltaSql(rte);
	char *cols = RelationColumns(rte->relid, "a", false);
	char *live = LiveRelation(rte);
	char *same = psprintf("ROW(%s) IS NOT DISTINCT FROM ROW(%s)", RelationColumns(rte->relid, "a", false, false),
	                      PositionalRefs("d", ncols));
	// Rows equal to no changed row, plus each changed row as often as the old state held it.
	return psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s WHERE NOT EXISTS (SELECT 1 FROM (%s) d(%s\"__pgt_cw\") "
	                "WHERE %s) UNION ALL SELECT %s, 1::pg_catalog.int8 FROM (SELECT d.*, (SELECT pg_catalog.count(*) FROM %s "
	                "WHERE %s) OPERATOR(pg_catalog.-) d.\"__pgt_cw\" AS \"__pgt_n\" FROM (%s) d(%s\"__pgt_cw\")) v, "
	                "pg_catalog.generate_series(1::pg_catalog.int8, v.\"__pgt_n\") g",
	                cols, live, delta, names, same, PositionalRefs("v", ncols), live, same, delta, names);
}


// SubLinks of one query level (not those inside them or inside subqueries in FROM).
bool
CollectSublinksWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, SubLink)) {
		auto *c = static_cast<SublinkCollect *>(context);
		c->sublinks = lappend(c->sublinks, node);
		return CollectSublinksWalker(reinterpret_cast<SubLink *>(node)->testexpr, context);
	}
	if (IsA(node, Query))
		return false;
	return expression_tree_walker(node, CollectSublinksWalker, context);
}

List *
LevelSublinks(Query *q) {
	SublinkCollect c{NIL};
	(void)CollectSublinksWalker(reinterpret_cast<Node *>(q->targetList), &c);
	(void)CollectSublinksWalker(reinterpret_cast<Node *>(q->jointree), &c);
	(void)CollectSublinksWalker(q->havingQual, &c);
	return c.sublinks;
}

bool
SublinkOutsideAggs(Node *node, void *context) {
	if (node == nullptr || IsA(node, Aggref) || IsA(node, Query))
		return false;
	if (IsA(node, SubLink))
		return true;
	return expression_tree_walker(node, SublinkOutsideAggs, context);
}

bool
ContainsSublink(Node *n) {
	SublinkCollect c{NIL};
	(void)CollectSublinksWalker(n, &c);
	return c.sublinks != NIL;
}

// Base-table entries of a query's FROM, descending into subqueries in FROM (not into expressions), in
// a fixed order.
List *
FromRelations(Query *q, List *out) {
	ListCell *lc;
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_RELATION)
			out = lappend(out, rte);
		else if (rte->rtekind == RTE_SUBQUERY)
			out = FromRelations(rte->subquery, out);
	}
	return out;
}

bool IsPlainSpj(Query *q);

// FROM of tables, inner joins and plain subqueries (join, grouping and placeholder entries aside).
bool
FromIsPlain(Query *q) {
	BuildCtx scratch = ScratchCtx();
	if (!CheckJoinTree(&scratch, reinterpret_cast<Node *>(q->jointree)))
		return false;
	ListCell *lc;
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_JOIN || rte->rtekind == RTE_GROUP || rte->rtekind == RTE_RESULT)
			continue;
		if (rte->rtekind == RTE_SUBQUERY ? !IsPlainSpj(rte->subquery) : rte->rtekind != RTE_RELATION)
			return false;
	}
	return true;
}

// A subquery in FROM a probe can look through: tables, inner joins, WHERE, projections.
bool
IsPlainSpj(Query *q) {
	if (q->hasAggs || q->groupClause || q->havingQual || q->distinctClause || q->hasWindowFuncs || q->setOperations ||
	    q->limitCount || q->limitOffset || q->hasTargetSRFs || q->hasSubLinks || q->cteList || q->rowMarks)
		return false;
	return FromIsPlain(q);
}

// A subquery's body is "simple" when it reads base tables joined by inner joins, with WHERE and
// optional aggregation, more subqueries only in its WHERE/ON conditions: then its probe finds the outer
// rows a change can reach (ProbeArms). Any other body is probed coarsely (did any table it reads
// change?), which is exact too but re-evaluates every outer row when it fires.
bool
BodyIsSimple(Query *body) {
	if (body->setOperations || body->cteList || body->hasWindowFuncs || body->hasTargetSRFs || body->limitCount ||
	    body->limitOffset || body->groupingSets || body->hasDistinctOn || body->rowMarks)
		return false;
	if (ContainsSublink(reinterpret_cast<Node *>(body->targetList)) || ContainsSublink(body->havingQual))
		return false;
	return FromIsPlain(body);
}

void CheckRelationsIn(Query *q, RelCheckCtx *c);

bool
CheckRelationsWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Query)) {
		CheckRelationsIn(reinterpret_cast<Query *>(node), static_cast<RelCheckCtx *>(context));
		return false;
	}
	return expression_tree_walker(node, CheckRelationsWalker, context);
}

// Every table a subquery reads, at any depth, must have change capture and an old state we can
// rebuild (a key, or columns with equality).
void
CheckRelationsIn(Query *q, RelCheckCtx *c) {
	if (q->hasRecursive) {
		Unsupported(c->ctx, "%s", "WITH RECURSIVE inside a subquery is not maintained differentially yet");
		c->ok = false;
		return;
	}
	ListCell *lc;
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_SUBQUERY) {
			CheckRelationsIn(rte->subquery, c);
		} else if (rte->rtekind == RTE_RELATION) {
			if ((rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_PARTITIONED_TABLE) || rte->tablesample) {
				Unsupported(c->ctx, "%s", "a subquery reads a relation without change capture (a materialized view "
				                          "or foreign table) or uses TABLESAMPLE");
				c->ok = false;
			} else if (RelationKey(rte->relid) == NIL && !AllColumnsGroupable(rte->relid)) {
				Unsupported(c->ctx, "table \"%s\" read by a subquery has no key and a column without equality",
				            get_rel_name(rte->relid));
				c->ok = false;
			}
			c->relids = list_append_unique_oid(c->relids, rte->relid);
		} else if (rte->rtekind == RTE_CTE) {
			Unsupported(c->ctx, "%s", "WITH RECURSIVE inside a subquery is not maintained differentially yet");
			c->ok = false;
		}
	}
	(void)query_tree_walker(q, CheckRelationsWalker, c, QTW_IGNORE_RANGE_TABLE | QTW_IGNORE_CTE_SUBQUERIES);
}

List *
RelationsRead(Query *q) {
	BuildCtx scratch = ScratchCtx();
	RelCheckCtx c{&scratch, NIL, true};
	CheckRelationsIn(q, &c);
	return c.relids;
}

bool
CheckSublinkBody(BuildCtx *ctx, Query *body) {
	RelCheckCtx c{ctx, NIL, true};
	CheckRelationsIn(body, &c);
	return c.ok;
}

bool
CheckLevelSublinks(BuildCtx *ctx, Query *q, int depth) {
	List *sublinks = LevelSublinks(q);
	if (sublinks == NIL)
		return true;
	TreeLine(ctx, depth, psprintf("SubqueryFilter (%d subquer%s: live and old state, probed by changed rows)",
	                              list_length(sublinks), list_length(sublinks) == 1 ? "y" : "ies"));
	ListCell *lc;
	foreach (lc, sublinks)
		if (!CheckSublinkBody(ctx, reinterpret_cast<Query *>(static_cast<SubLink *>(lfirst(lc))->subselect)))
			return false;
	return true;
}

// A sublink's testexpr refers to the subquery's output columns as PARAM_SUBLINK params. They are replaced
// by a copy of the output expression (`as_vars` false: the condition in the subquery's own terms), or by
// a Var of range-table entry 1 (true: the subquery read as the only FROM item).
struct ParamSubstCtx {
	List *targets; // the subquery's target list
	bool as_vars;
};

Node *
SublinkParamMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	if (IsA(node, Param) && reinterpret_cast<Param *>(node)->paramkind == PARAM_SUBLINK) {
		auto *c = static_cast<ParamSubstCtx *>(context);
		TargetEntry *tle = get_tle_by_resno(c->targets, reinterpret_cast<Param *>(node)->paramid);
		auto *e = reinterpret_cast<Node *>(tle->expr);
		if (!c->as_vars)
			return static_cast<Node *>(copyObject(e));
		return reinterpret_cast<Node *>(makeVar(1, tle->resno, exprType(e), exprTypmod(e), exprCollation(e), 0));
	}
	return expression_tree_mutator(node, SublinkParamMutator, context);
}

// For x op ANY (subquery) / x op ALL (subquery): the condition a subquery row must meet to be able to
// change the result for an outer row (ANY: an element that is not false; ALL: one that is not true),
// in the subquery's terms. nullptr when the subquery's output is an aggregate (no such restriction).
Expr *
SublinkRowCondition(SubLink *sl) {
	if ((sl->subLinkType != ANY_SUBLINK && sl->subLinkType != ALL_SUBLINK) || sl->testexpr == nullptr)
		return nullptr;
	auto *body = reinterpret_cast<Query *>(sl->subselect);
	if (body->hasAggs && contain_agg_clause(reinterpret_cast<Node *>(body->targetList)))
		return nullptr;
	Node *test = static_cast<Node *>(copyObject(sl->testexpr));
	IncrementVarSublevelsUp(test, 1, 0); // the outer row's columns, seen from inside the subquery
	ParamSubstCtx pc{body->targetList, false};
	test = SublinkParamMutator(test, &pc);
	BooleanTest *bt = makeNode(BooleanTest);
	bt->arg = reinterpret_cast<Expr *>(test);
	bt->booltesttype = sl->subLinkType == ANY_SUBLINK ? IS_NOT_FALSE : IS_NOT_TRUE;
	bt->location = -1;
	return reinterpret_cast<Expr *>(bt);
}

SubLink *
MakeExists(Query *sub) {
	SubLink *sl = makeNode(SubLink);
	sl->subLinkType = EXISTS_SUBLINK;
	sl->subLinkId = 0;
	sl->testexpr = nullptr;
	sl->operName = NIL;
	sl->subselect = reinterpret_cast<Node *>(sub);
	sl->location = -1;
	return sl;
}

// True when `e` cannot be NULL: a column declared NOT NULL (a valid constraint) of a table of `body`
// (varlevelsup 0) or of `outer` (1), read outside the nullable side of an outer join; a non-null
// constant.
bool
NeverNull(Node *e, Query *body, Query *outer) {
	if (IsA(e, RelabelType))
		return NeverNull(reinterpret_cast<Node *>(reinterpret_cast<RelabelType *>(e)->arg), body, outer);
	if (IsA(e, Const))
		return !reinterpret_cast<Const *>(e)->constisnull;
	if (!IsA(e, Var))
		return false;
	auto *v = reinterpret_cast<Var *>(e);
	Query *level = v->varlevelsup == 0 ? body : v->varlevelsup == 1 ? outer : nullptr;
	if (level == nullptr || v->varnullingrels != nullptr || v->varattno <= 0 ||
	    v->varno > static_cast<int>(list_length(level->rtable)))
		return false;
	RangeTblEntry *rte = rt_fetch(v->varno, level->rtable);
	if (rte->rtekind != RTE_RELATION)
		return false;
	Relation rel = RelationIdGetRelation(rte->relid);
	if (rel == nullptr)
		return false;
	bool valid = v->varattno <= RelationGetDescr(rel)->natts &&
	             TupleDescCompactAttr(RelationGetDescr(rel), v->varattno - 1)->attnullability == ATTNULLABLE_VALID;
	RelationClose(rel);
	return valid;
}

// Comparisons (btree operators, and AND/OR of them) of never-NULL operands: never NULL themselves.
bool
ComparisonNeverNull(Node *e, Query *body, Query *outer) {
	if (IsA(e, BoolExpr)) {
		auto *b = reinterpret_cast<BoolExpr *>(e);
		ListCell *lc;
		foreach (lc, b->args)
			if (!ComparisonNeverNull(static_cast<Node *>(lfirst(lc)), body, outer))
				return false;
		return true;
	}
	if (!IsA(e, OpExpr))
		return false;
	auto *op = reinterpret_cast<OpExpr *>(e);
	if (!op_strict(op->opno) || get_op_index_interpretation(op->opno) == NIL)
		return false;
	ListCell *lc;
	foreach (lc, op->args)
		if (!NeverNull(static_cast<Node *>(lfirst(lc)), body, outer))
			return false;
	return true;
}

// Without NULLs, (E) IS NOT FALSE is E and (E) IS NOT TRUE is NOT E: plain comparisons (x = y), which
// the planner uses as join and index conditions; wrapped, they are filters on a scan of every row.
Expr *
PlainRowCondition(Expr *cond, Query *body, Query *outer) {
	auto *bt = reinterpret_cast<BooleanTest *>(cond);
	if (!IsA(cond, BooleanTest) || outer == nullptr || !ComparisonNeverNull(reinterpret_cast<Node *>(bt->arg), body, outer))
		return cond;
	if (bt->booltesttype == IS_NOT_FALSE)
		return bt->arg;
	return reinterpret_cast<Expr *>(negate_clause(reinterpret_cast<Node *>(bt->arg)));
}

List *ProbeArms(SubLink *sl, Query *outer);

// Probe queries for one subquery: each is a copy of its body (aggregation removed, output 1) over
// changed rows; together they find every changed row that can change its result for an outer row.
// `outer` is the query level the subquery is in.
List *
ProbeArms(SubLink *sl, Query *outer) {
	if (!BodyIsSimple(reinterpret_cast<Query *>(sl->subselect)))
		return list_make1(ParseGenerated(AnyChangeSql(RelationsRead(reinterpret_cast<Query *>(sl->subselect)))));
	Expr *row_cond = SublinkRowCondition(sl);
	if (row_cond) { // in terms of the body's inputs (grouping and join alias columns resolved)
		auto *orig = reinterpret_cast<Query *>(sl->subselect);
		Node *c = reinterpret_cast<Node *>(row_cond);
		if (orig->hasGroupRTE)
			c = flatten_group_exprs(nullptr, orig, c);
		row_cond = PlainRowCondition(reinterpret_cast<Expr *>(flatten_join_alias_vars(nullptr, orig, c)), orig, outer);
	}
	Query *body = FlattenInnerJoins(reinterpret_cast<Query *>(sl->subselect));
	body->hasAggs = false;
	body->groupClause = NIL;
	body->havingQual = nullptr;
	body->distinctClause = NIL;
	body->sortClause = NIL;
	body->targetList = OneTarget();
	List *plain = NIL;
	List *nested = NIL; // conjuncts holding subqueries
	if (body->jointree->quals) {
		ListCell *lc;
		foreach (lc, make_ands_implicit(reinterpret_cast<Expr *>(body->jointree->quals))) {
			Node *c = static_cast<Node *>(lfirst(lc));
			if (ContainsSublink(c))
				nested = lappend(nested, c);
			else
				plain = lappend(plain, c);
		}
	}
	if (row_cond)
		plain = lappend(plain, row_cond);
	int nrels = list_length(FromRelations(body, NIL));
	List *arms = NIL;
	ListCell *lc;
	// A changed row of one table, with any version of the others' rows.
	for (int k = 0; k < nrels; k++) {
		Query *arm = static_cast<Query *>(copyObject(body));
		arm->jointree->quals = plain ? reinterpret_cast<Node *>(make_ands_explicit(list_copy(plain))) : nullptr;
		List *rels = FromRelations(arm, NIL);
		for (int m = 0; m < nrels; m++) {
			auto *rte = static_cast<RangeTblEntry *>(list_nth(rels, m));
			ReplaceWithRows(rte, m == k ? ChangedRowsSql(rte) : AllImagesSql(rte));
		}
		arms = lappend(arms, arm);
	}
	// Rows (any version) for which a nested subquery's result can change.
	foreach (lc, nested) {
		SublinkCollect c{NIL};
		(void)CollectSublinksWalker(static_cast<Node *>(lfirst(lc)), &c);
		ListCell *lc3;
		foreach (lc3, c.sublinks) {
			ListCell *lc4;
			foreach (lc4, ProbeArms(static_cast<SubLink *>(lfirst(lc3)), body)) {
				Query *arm = static_cast<Query *>(copyObject(body));
				List *conj = list_copy(plain);
				conj = lappend(conj, MakeExists(static_cast<Query *>(lfirst(lc4))));
				arm->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(conj));
				ListCell *lc2;
				foreach (lc2, FromRelations(arm, NIL)) {
					auto *rte = static_cast<RangeTblEntry *>(lfirst(lc2));
					ReplaceWithRows(rte, AllImagesSql(rte));
				}
				arms = lappend(arms, arm);
			}
		}
	}
	return arms;
}

// Turns a base-table entry into a subquery over weighted SQL `sql`, keeping exactly its columns (the
// weight dropped), so join column bookkeeping and every reference stay valid.
void
ReplaceWithRows(RangeTblEntry *rte, const char *sql) {
	int n = list_length(rte->eref->colnames);
	ReplaceWithWeighted(rte, psprintf("SELECT %s FROM (%s) o(%s\"__pgt_w\")", PositionalRefs("o", n), sql,
	                                  PositionalNames(n)));
	// ReplaceWithWeighted appended the weight's name: take it off again.
	rte->alias->colnames = list_truncate(rte->alias->colnames, n);
	rte->eref->colnames = list_truncate(rte->eref->colnames, n);
}

// A correlated equality of a subquery level: `v op e` (or `e op v`), v a column of the level's range
// entry `rti`, e a column of an enclosing level, op hashable. `outer_op` compares e with v.
struct CorrelatedEquality {
	Var *inner;
	Expr *outer;
	Oid outer_op;
};

std::vector<CorrelatedEquality>
CorrelatedEqualities(Query *q, Index rti) {
	std::vector<CorrelatedEquality> out;
	if (q->jointree == nullptr || q->jointree->quals == nullptr)
		return out;
	// Binary-compatible relabelings (varchar compared as text) are looked through, implicit or written
	// out: a stored query comes back from ruleutils with its casts explicit.
	auto strip = [](Node *n) {
		while (IsA(n, RelabelType))
			n = reinterpret_cast<Node *>(reinterpret_cast<RelabelType *>(n)->arg);
		return n;
	};
	ListCell *lc;
	foreach (lc, make_ands_implicit(reinterpret_cast<Expr *>(q->jointree->quals))) {
		auto *op = static_cast<Node *>(lfirst(lc));
		if (!IsA(op, OpExpr) || list_length(reinterpret_cast<OpExpr *>(op)->args) != 2)
			continue;
		auto *oe = reinterpret_cast<OpExpr *>(op);
		for (int side = 0; side < 2; side++) {
			Node *v = strip(static_cast<Node *>(list_nth(oe->args, side)));
			auto *e = static_cast<Expr *>(list_nth(oe->args, 1 - side));
			Node *ev = strip(reinterpret_cast<Node *>(e));
			if (!IsA(v, Var) || !IsA(ev, Var))
				continue;
			auto *iv = reinterpret_cast<Var *>(v);
			if (iv->varno != static_cast<int>(rti) || iv->varlevelsup != 0 || iv->varattno <= 0 ||
			    reinterpret_cast<Var *>(ev)->varlevelsup == 0)
				continue;
			// e op v, with e first: written `e = ANY (…)` below.
			Oid outer_op = side == 0 ? get_commutator(oe->opno) : oe->opno;
			if (!OidIsValid(outer_op) || !op_hashjoinable(outer_op, exprType(reinterpret_cast<Node *>(e))))
				continue;
			out.push_back({iv, e, outer_op});
			break;
		}
	}
	return out;
}

// The range entry holding a function in FROM, at any depth of subqueries in FROM; `depth` counts the
// levels from q's range entries down to it (1: in the subquery of one of q's entries).
RangeTblEntry *
FunctionEntry(Query *q, int level, int *depth) {
	ListCell *lc;
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_FUNCTION) {
			*depth = level;
			return rte;
		}
		if (rte->rtekind == RTE_SUBQUERY)
			if (RangeTblEntry *f = FunctionEntry(rte->subquery, level + 1, depth))
				return f;
	}
	return nullptr;
}

// Inside a correlated aggregated subquery, the deleted rows of a keyed table's old state (OldRowsSql: an array
// unnested) are searched once per outer row, each time all of them: with thousands of deleted rows and
// as many outer rows, most of the refresh (TPC-H Q20 after a 1 % change: 1,700 outer rows × 6,400
// deleted rows). When the subquery ties a column of the table to the outer row by a hashable equality,
// the array is unnested only for an outer row whose values occur among the changed rows:
// `unnest(CASE WHEN (e1, …) IN (SELECT c1, … FROM <changed rows>) THEN <array> END)`, the `IN` hashed
// once per statement. A row the gate turns away has no deleted row meeting the equalities (every
// deleted row is a changed row). The changed rows are read as they are in the change buffer, not
// consolidated: the gate may let a few rows more through, and costs one scan of the window.
void
GateDeletedRows(RangeTblEntry *old_rte, const std::vector<CorrelatedEquality> &eqs, const char *changed_sql,
                int ncols) {
	int depth = 0;
	RangeTblEntry *fn = FunctionEntry(old_rte->subquery, 1, &depth);
	if (fn == nullptr || list_length(fn->functions) != 1)
		return;
	auto *rtf = static_cast<RangeTblFunction *>(linitial(fn->functions));
	if (!IsA(rtf->funcexpr, FuncExpr) || list_length(reinterpret_cast<FuncExpr *>(rtf->funcexpr)->args) != 1)
		return;
	auto *unnest = reinterpret_cast<FuncExpr *>(rtf->funcexpr);
	StringInfoData sel;
	initStringInfo(&sel);
	for (const auto &eq : eqs)
		appendStringInfo(&sel, "%sn.\"__pgt_c%d\"", sel.len ? ", " : "", eq.inner->varattno);
	Query *keys = ParseGenerated(psprintf("SELECT %s FROM (%s) n(%s\"__pgt_w\")", sel.data, changed_sql,
	                                      PositionalNames(ncols)));
	List *tests = NIL;
	int i = 0;
	ListCell *lc;
	foreach (lc, keys->targetList) {
		auto *te = static_cast<TargetEntry *>(lfirst(lc));
		Param *p = makeNode(Param);
		p->paramkind = PARAM_SUBLINK;
		p->paramid = i + 1;
		p->paramtype = exprType(reinterpret_cast<Node *>(te->expr));
		p->paramtypmod = exprTypmod(reinterpret_cast<Node *>(te->expr));
		p->paramcollid = exprCollation(reinterpret_cast<Node *>(te->expr));
		p->location = -1;
		Expr *outer = static_cast<Expr *>(copyObject(eqs[i].outer));
		IncrementVarSublevelsUp(reinterpret_cast<Node *>(outer), depth, 1);
		tests = lappend(tests, make_opclause(eqs[i].outer_op, BOOLOID, false, outer, reinterpret_cast<Expr *>(p),
		                                     InvalidOid, p->paramcollid));
		i++;
	}
	SubLink *gate = makeNode(SubLink);
	gate->subLinkType = ANY_SUBLINK;
	gate->subLinkId = 0;
	gate->testexpr = list_length(tests) == 1 ? static_cast<Node *>(linitial(tests))
	                                         : reinterpret_cast<Node *>(make_andclause(tests));
	gate->operName = list_make1(makeString(pstrdup("=")));
	gate->subselect = reinterpret_cast<Node *>(keys);
	gate->location = -1;
	auto *array = static_cast<Expr *>(linitial(unnest->args));
	CaseWhen *when = makeNode(CaseWhen);
	when->expr = reinterpret_cast<Expr *>(gate);
	when->result = array;
	when->location = -1;
	CaseExpr *c = makeNode(CaseExpr);
	c->casetype = exprType(reinterpret_cast<Node *>(array));
	c->casecollid = exprCollation(reinterpret_cast<Node *>(array));
	c->args = list_make1(when);
	c->defresult = reinterpret_cast<Expr *>(makeNullConst(c->casetype, -1, c->casecollid));
	c->location = -1;
	unnest->args = list_make1(c);
}

void OldStateInQuery(Query *q);

bool
OldStateWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Query)) {
		OldStateInQuery(reinterpret_cast<Query *>(node));
		return false;
	}
	return expression_tree_walker(node, OldStateWalker, context);
}

// Every table the query reads, at any depth (subqueries in FROM and in expressions), replaced by its
// old state: the query then computes its result as of the previous frontier.
void
OldStateInQuery(Query *q) {
	ListCell *lc;
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_RELATION) {
			// Only in an aggregated level: PostgreSQL runs it once per outer row (a SubPlan). Other
			// subqueries may become joins, whose inner side the gate would tie to each outer row.
			std::vector<CorrelatedEquality> eqs;
			if (q->hasAggs || q->groupClause != NIL)
				eqs = CorrelatedEqualities(q, foreach_current_index(lc) + 1);
			int ncols = list_length(rte->eref->colnames);
			char *changed = !eqs.empty() && RelationKey(rte->relid) != NIL ? ChangedRowsSql(rte) : nullptr;
			ReplaceWithRows(rte, OldRowsSql(rte));
			if (changed)
				GateDeletedRows(rte, eqs, changed, ncols);
		} else if (rte->rtekind == RTE_SUBQUERY)
			OldStateInQuery(rte->subquery);
	}
	(void)query_tree_walker(q, OldStateWalker, nullptr, QTW_IGNORE_RANGE_TABLE | QTW_IGNORE_CTE_SUBQUERIES);
}

bool
IsUncorrelatedAny(Node *c) {
	return IsA(c, SubLink) && reinterpret_cast<SubLink *>(c)->subLinkType == ANY_SUBLINK &&
	       !contain_vars_of_level(reinterpret_cast<SubLink *>(c)->subselect, 1);
}

Node *
IsTrue(Node *c) {
	BooleanTest *bt = makeNode(BooleanTest);
	bt->arg = reinterpret_cast<Expr *>(c);
	bt->booltesttype = IS_TRUE;
	bt->location = -1;
	return reinterpret_cast<Node *>(bt);
}

// True if `node` (an expression of one query level) holds a subquery that reads that level's columns.
bool
HasCorrelatedSublink(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, SubLink) && contain_vars_of_level(reinterpret_cast<SubLink *>(node)->subselect, 1))
		return true;
	if (IsA(node, Query))
		return false;
	return expression_tree_walker(node, HasCorrelatedSublink, context);
}

// In a body run once per outer row: when its WHERE also holds a correlated subquery (a filter costly per
// row), each uncorrelated x IN (subquery) of that WHERE is written (x IN (subquery)) IS TRUE, the same
// test there. PostgreSQL then keeps it as a hashed filter, built once per statement and ordered before
// the costly one by cost, instead of a semi-join: with the outer row's key fixing the scan, the planner
// (estimating one row per probe either way) drove from that scan and evaluated the costly filter on all
// its rows before the semi-join removed most of them (TPC-H Q20's correlated sum(l_quantity) on every
// partsupp row of a touched supplier, not only on the `forest%` parts' rows).
void
HashUncorrelatedIns(Query *body) {
	if (body->jointree == nullptr || body->jointree->quals == nullptr)
		return;
	List *quals = make_ands_implicit(reinterpret_cast<Expr *>(body->jointree->quals));
	bool costly = false;
	ListCell *lc;
	foreach (lc, quals) {
		Node *c = static_cast<Node *>(lfirst(lc));
		if (!IsUncorrelatedAny(c) && HasCorrelatedSublink(c, nullptr))
			costly = true;
	}
	if (!costly)
		return;
	foreach (lc, quals)
		if (IsUncorrelatedAny(static_cast<Node *>(lfirst(lc))))
			lfirst(lc) = IsTrue(static_cast<Node *>(lfirst(lc)));
	body->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(quals));
}

// (x op ANY (body)) IS TRUE as EXISTS (SELECT 1 FROM (body) s WHERE x op s.c): true exactly when some
// row of the body makes the comparison true. Correlated, so the planner pushes x into the body and
// reaches its tables by index for each outer row, instead of computing the whole body.
Node *
AnyAsCorrelatedExists(SubLink *sl) {
	auto *body = reinterpret_cast<Query *>(copyObject(sl->subselect));
	IncrementVarSublevelsUp(reinterpret_cast<Node *>(body), 1, 1); // one level deeper than before
	HashUncorrelatedIns(body);
	List *colnames = NIL;
	ListCell *lc;
	foreach (lc, body->targetList)
		if (!static_cast<TargetEntry *>(lfirst(lc))->resjunk)
			colnames = lappend(colnames, makeString(psprintf("__pgt_c%d", list_length(colnames) + 1)));
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_SUBQUERY;
	rte->subquery = body;
	rte->alias = makeAlias("__pgt_s", list_copy(colnames));
	rte->eref = makeAlias("__pgt_s", colnames);
	rte->inFromCl = true;
	RangeTblRef *rtr = makeNode(RangeTblRef);
	rtr->rtindex = 1;
	Node *test = static_cast<Node *>(copyObject(sl->testexpr));
	IncrementVarSublevelsUp(test, 1, 0); // the outer row's columns, seen from inside
	ParamSubstCtx pc{body->targetList, true};
	test = SublinkParamMutator(test, &pc);
	Query *ex = makeNode(Query);
	ex->commandType = CMD_SELECT;
	ex->querySource = QSRC_ORIGINAL;
	ex->canSetTag = true;
	ex->rtable = list_make1(rte);
	ex->jointree = makeFromExpr(list_make1(rtr), test);
	ex->targetList = OneTarget();
	ex->hasSubLinks = ContainsSublink(test);
	return IsTrue(reinterpret_cast<Node *>(MakeExists(ex)));
}

// Moves the conditions holding subqueries out of a re-evaluation term's WHERE into a lateral fence,
// FROM ..., LATERAL (SELECT 1 WHERE <conditions> OFFSET 0): conditions on one input are otherwise
// evaluated when that input is scanned, for every row, before the probe's semi-joins have cut the
// rows down to the few a change reaches. Behind the fence (not pulled up) they are evaluated once per
// joined, probed row. An uncorrelated x IN (subquery) becomes a correlated EXISTS, evaluated by index
// for those rows rather than computed whole. Returns the conditions left in WHERE.
List *
FenceSublinkConditions(Query *term, List *quals) {
	List *plain = NIL;
	List *fenced = NIL;
	ListCell *lc;
	foreach (lc, quals) {
		Node *c = static_cast<Node *>(lfirst(lc));
		if (!ContainsSublink(c)) {
			plain = lappend(plain, c);
			continue;
		}
		if (IsUncorrelatedAny(c))
			c = AnyAsCorrelatedExists(reinterpret_cast<SubLink *>(c));
		IncrementVarSublevelsUp(c, 1, 0);
		fenced = lappend(fenced, c);
	}
	if (fenced == NIL)
		return plain;
	Query *fence = makeNode(Query);
	fence->commandType = CMD_SELECT;
	fence->querySource = QSRC_ORIGINAL;
	fence->canSetTag = true;
	fence->jointree = makeFromExpr(NIL, reinterpret_cast<Node *>(make_ands_explicit(fenced)));
	fence->targetList = OneTarget();
	fence->hasSubLinks = true;
	fence->limitOffset = reinterpret_cast<Node *>(Int8Const(0));
	fence->limitOption = LIMIT_OPTION_COUNT;
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_SUBQUERY;
	rte->subquery = fence;
	rte->lateral = true;
	rte->inFromCl = true;
	rte->alias = makeAlias("__pgt_fence", NIL);
	rte->eref = makeAlias("__pgt_fence", list_make1(makeString(pstrdup("__pgt_one"))));
	term->rtable = lappend(term->rtable, rte);
	RangeTblRef *rtr = makeNode(RangeTblRef);
	rtr->rtindex = list_length(term->rtable);
	term->jointree->fromlist = lappend(term->jointree->fromlist, rtr);
	return plain;
}

// When a change can alter a subquery's result for every row of level q: the probes of its subqueries
// that no condition ties to particular outer rows (uncorrelated, not an IN/ANY/ALL comparison with a row
// of the subquery, or probed coarsely), OR-ed; through a subquery that is q's only FROM item too (each
// of its rows is a row of q). nullptr when there is none.
char *
EveryRowCondition(Query *q) {
	StringInfoData s;
	initStringInfo(&s);
	ListCell *lc;
	if (list_length(q->jointree->fromlist) == 1 && IsA(linitial(q->jointree->fromlist), RangeTblRef)) {
		RangeTblEntry *rte = rt_fetch(linitial_node(RangeTblRef, q->jointree->fromlist)->rtindex, q->rtable);
		if (rte->rtekind == RTE_SUBQUERY && !rte->lateral && rte->subquery->setOperations == nullptr)
			if (char *inner = EveryRowCondition(rte->subquery))
				appendStringInfoString(&s, inner);
	}
	foreach (lc, LevelSublinks(q)) {
		auto *sl = static_cast<SubLink *>(lfirst(lc));
		auto *body = reinterpret_cast<Query *>(sl->subselect);
		bool coarse = !BodyIsSimple(body);
		if (!coarse && (SublinkRowCondition(sl) != nullptr || contain_vars_of_level(reinterpret_cast<Node *>(body), 1)))
			continue;
		ListCell *lc2;
		foreach (lc2, ProbeArms(sl, q))
			appendStringInfo(&s, "%sEXISTS (%s)", s.len ? " OR " : "", Deparse(static_cast<Query *>(lfirst(lc2))));
	}
	return s.len ? s.data : nullptr;
}

// A probe as a condition of the term: EXISTS (arm), and, when an equality "outer.x = e" ties the arm to
// the outer row (x a column of a table of `outer_level` that leads an index), x = ANY (ARRAY(SELECT e
// FROM <the arm without its conditions on the outer row>)) too.
// Implied by the EXISTS (the comparison is strict), and the same condition when that equality is the
// arm's only tie to the outer row (the EXISTS is dropped then). The array is computed once and x is
// reached by index for its few elements; as a semi-join alone, the planner believed its estimates of the
// change buffers and could walk every outer row against every changed one (TPC-H Q18 at SF 1: 1.5
// million orders by 1,285 changed lineitem rows in a nested loop).
// True when column `attno` of table `relid` leads a valid, non-partial btree index.
bool
LeadsAnIndex(Oid relid, AttrNumber attno) {
	Relation rel = table_open(relid, AccessShareLock);
	List *indexes = RelationGetIndexList(rel);
	table_close(rel, AccessShareLock);
	bool found = false;
	ListCell *lc;
	foreach (lc, indexes) {
		HeapTuple tp = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		if (!HeapTupleIsValid(tp))
			continue;
		auto *idx = reinterpret_cast<Form_pg_index>(GETSTRUCT(tp));
		if (idx->indisvalid && heap_attisnull(tp, Anum_pg_index_indpred, nullptr) && idx->indnatts > 0 &&
		    idx->indkey.values[0] == attno && get_rel_relam(idx->indexrelid) == BTREE_AM_OID)
			found = true;
		ReleaseSysCache(tp);
	}
	return found;
}

Node *
ProbeCondition(Query *arm, Query *outer_level) {
	auto *exists = reinterpret_cast<Node *>(MakeExists(static_cast<Query *>(copyObject(arm))));
	if (arm->jointree->quals == nullptr || arm->setOperations || arm->hasAggs || arm->groupClause || arm->limitCount)
		return exists;
	Query *a = static_cast<Query *>(copyObject(arm));
	Node *outer = nullptr;
	Node *inner = nullptr;
	Oid opno = InvalidOid;
	Oid collid = InvalidOid;
	bool only_tie = true;
	List *rest = NIL;
	ListCell *lc;
	foreach (lc, make_ands_implicit(reinterpret_cast<Expr *>(a->jointree->quals))) {
		Node *c = static_cast<Node *>(lfirst(lc));
		if (!contain_vars_of_level(c, 1)) {
			rest = lappend(rest, c);
			continue;
		}
		auto *op = reinterpret_cast<OpExpr *>(c);
		if (outer == nullptr && IsA(c, OpExpr) && list_length(op->args) == 2) {
			auto *l = static_cast<Node *>(linitial(op->args));
			auto *r = static_cast<Node *>(lsecond(op->args));
			bool outer_left = IsA(l, Var) && reinterpret_cast<Var *>(l)->varlevelsup == 1 && !contain_vars_of_level(r, 1);
			bool outer_right =
			    IsA(r, Var) && reinterpret_cast<Var *>(r)->varlevelsup == 1 && !contain_vars_of_level(l, 1);
			// Only a column that leads an index: as a filter on a scan, x = ANY searches the array linearly
			// for each row.
			auto *v = reinterpret_cast<Var *>(outer_left ? l : r);
			RangeTblEntry *rte = outer_left || outer_right ? rt_fetch(v->varno, outer_level->rtable) : nullptr;
			if (rte == nullptr || rte->rtekind != RTE_RELATION || v->varattno <= 0 || !LeadsAnIndex(rte->relid, v->varattno))
				outer_left = outer_right = false;
			Oid o = outer_left ? op->opno : outer_right ? get_commutator(op->opno) : InvalidOid;
			Oid t = exprType(outer_left ? r : l);
			if (OidIsValid(o) && op_mergejoinable(op->opno, exprType(l)) && !type_is_array(t) &&
			    !type_is_rowtype(t) && OidIsValid(get_array_type(t))) {
				outer = outer_left ? l : r;
				inner = outer_left ? r : l;
				opno = o;
				collid = op->inputcollid;
				continue;
			}
		}
		only_tie = false; // another condition on the outer row: left out of the array, kept in the EXISTS
	}
	if (outer == nullptr)
		return exists;
	a->jointree->quals = rest != NIL ? reinterpret_cast<Node *>(make_ands_explicit(rest)) : nullptr;
	a->targetList = list_make1(makeTargetEntry(reinterpret_cast<Expr *>(copyObject(inner)), 1, pstrdup("k"), false));
	if (contain_vars_of_level(reinterpret_cast<Node *>(a), 1))
		return exists; // tied to the outer row in its FROM or deeper: no array
	auto *x = reinterpret_cast<Var *>(copyObject(outer));
	x->varlevelsup = 0;
	SubLink *sl = makeNode(SubLink);
	sl->subLinkType = ARRAY_SUBLINK;
	sl->subselect = reinterpret_cast<Node *>(a);
	sl->location = -1;
	ScalarArrayOpExpr *any = makeNode(ScalarArrayOpExpr);
	any->opno = opno;
	any->opfuncid = get_opcode(opno);
	any->useOr = true;
	any->inputcollid = collid;
	any->args = list_make2(x, sl);
	any->location = -1;
	if (only_tie)
		return reinterpret_cast<Node *>(any);
	return reinterpret_cast<Node *>(makeBoolExpr(AND_EXPR, list_make2(any, exists), -1));
}

// The second bracket above: Q(L₀; S₁) − Q(L₀; S₀) over the probed rows.
char *
SublinkStateDelta(Query *q, List *inputs, Oid mul, char **old_state) {
	List *sublinks = LevelSublinks(q);
	List *arms = NIL;
	List *arm_relations = NIL; // per arm: the tables its subquery reads
	ListCell *lc;
	sublinks = list_concat(sublinks, LateralBodies(q));
	foreach (lc, sublinks) {
		auto *sl = static_cast<SubLink *>(lfirst(lc));
		List *these = ProbeArms(sl, q);
		List *relids = RelationsRead(reinterpret_cast<Query *>(sl->subselect));
		for (int k = 0; k < list_length(these); k++)
			arm_relations = lappend(arm_relations, relids);
		arms = list_concat(arms, these);
	}
	int n = list_length(inputs);
	StringInfoData s;
	initStringInfo(&s);
	for (int k = 0; k < list_length(arms); k++) {
		// For large windows the semi-join stays: the planner can hash it, where the array's probe, computed
		// once per term, may be joined row by row (TPC-H Q20 at 1 %: 1.1 s became 1.7 s).
		auto *arm = static_cast<Query *>(list_nth(arms, k));
		List *probe = list_make1(g_large_windows ? reinterpret_cast<Node *>(MakeExists(static_cast<Query *>(copyObject(arm))))
		                                         : ProbeCondition(arm, q));
		for (int m = 0; m < k; m++) {
			Expr *e = reinterpret_cast<Expr *>(MakeExists(static_cast<Query *>(copyObject(list_nth(arms, m)))));
			probe = lappend(probe, makeBoolExpr(NOT_EXPR, list_make1(e), -1));
		}
		for (int side = 0; side < 2; side++) {
			Query *term = static_cast<Query *>(copyObject(q));
			term->sortClause = NIL;
			term->targetList = VisibleTargets(term->targetList);
			Expr *weight = nullptr;
			for (int j = 0; j < n; j++) {
				Index rtindex = list_nth_int(inputs, j);
				RangeTblEntry *rte = rt_fetch(rtindex, term->rtable);
				ReplaceWithWeighted(rte, old_state[j]);
				Expr *w = WeightVar(rtindex, rte);
				weight = weight ? make_opclause(mul, INT8OID, false, weight, w, InvalidOid, InvalidOid) : w;
			}
			List *quals = term->jointree->quals ? make_ands_implicit(reinterpret_cast<Expr *>(term->jointree->quals)) : NIL;
			if (side == 1) {
				// Subqueries over the old state (the probe itself stays on the change buffers).
				(void)OldStateWalker(reinterpret_cast<Node *>(quals), nullptr);
				(void)OldStateWalker(reinterpret_cast<Node *>(term->targetList), nullptr);
				ListCell *rc;
				foreach (rc, term->rtable) {
					auto *rte = static_cast<RangeTblEntry *>(lfirst(rc));
					if (rte->rtekind == RTE_SUBQUERY && rte->lateral)
						OldStateInQuery(rte->subquery);
				}
			}
			quals = FenceSublinkConditions(term, quals);
			quals = list_concat(quals, static_cast<List *>(copyObject(probe)));
			term->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(quals));
			Expr *sign = Int8Const(side == 0 ? 1 : -1);
			AppendTerm(&s, term, weight ? make_opclause(mul, INT8OID, false, weight, sign, InvalidOid, InvalidOid) : sign,
			           static_cast<List *>(list_nth(arm_relations, k)));
		}
	}
	return s.data;
}

} // namespace pgtrickle::dvm_detail
