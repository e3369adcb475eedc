// The differential engine (see dvm.cpp): WITH RECURSIVE.
//
// Maintained shape: WITH RECURSIVE r(cols) AS (seed UNION [ALL] step) SELECT <r's columns, in order> FROM r,
// where seed and step are select-project-join levels over keyed base tables and step reads r once.
// The storage table then holds r itself, so r's old value is read from it during a refresh
// (kStoragePlaceholder). Base table states come from KeyedStatesOf: old = kept + neg, new = kept + pos.
//
// UNION ALL (a bag: one row per derivation) counts derivations:
//   D⁻ = step_kept*(∇seed + ∇step(S))                  old derivations using a deleted row
//   K  = Δ⁺step(S) − Δ⁺step(D⁻), consolidated (> 0)      = Δ⁺step(r_old − D⁻): kept prefixes, one new row
//   D⁺ = step_new*(Δ⁺seed + K)                           new derivations using an inserted row
//   Δr = D⁺ − D⁻
// UNION (a set) deletes and rederives (DRed):
//   O  = step_old*(∇seed ∪ ∇step(S))                     rows of S that lost a derivation
//   R  = lfp re. ((seed_new ∪ step_new(S − O)) ∩ O) ∪ (step_new(re) ∩ O)
//   S' = (S − O) ∪ R;  I = lfp i. ((Δ⁺seed ∪ Δ⁺step(S')) − S') ∪ (step_new(i) − S')
//   Δr = −(O − R) + I
// The reasoning (and why each recursion terminates) is in src/analyze/README.md.
#include "analyze/dvm_internal.hpp"

namespace pgtrickle::dvm_detail {

namespace {

// One level (seed arm or step) of the recursive CTE, ready to be written in any state.
struct RecLevel {
	Query *q;        // inner joins flattened
	List *inputs;    // rtindexes of the base tables
	int self;        // rtindex of the recursive reference (0 in a seed arm)
	KeyedStates *st; // per input
};

enum class LevelState {
	Kept,      // every base table's untouched rows
	Old,       // every base table as before the window
	New,       // every base table as after it
	Nabla,     // Σj kept(<j) ⋈ neg(j) ⋈ old(>j): applications using a deleted row
	DeltaPlus, // Σj kept(<j) ⋈ pos(j) ⋈ new(>j): applications using an inserted row
};

struct RecShape {
	const char *ctename;
	int ncols;
	List *coltypes;
	List *coltypmods;
	bool set; // UNION (not ALL)
	List *seeds; // RecLevel*
	RecLevel *step;
};

const char *
LevelWhat(bool is_step) {
	return is_step ? "the recursive term" : "the non-recursive term";
}

bool
CheckRecJoinTree(BuildCtx *ctx, Node *n, bool is_step) {
	if (n == nullptr || IsA(n, RangeTblRef))
		return true;
	if (IsA(n, FromExpr)) {
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			if (!CheckRecJoinTree(ctx, static_cast<Node *>(lfirst(lc)), is_step))
				return false;
		return true;
	}
	if (IsA(n, JoinExpr) && reinterpret_cast<JoinExpr *>(n)->jointype == JOIN_INNER)
		return CheckRecJoinTree(ctx, reinterpret_cast<JoinExpr *>(n)->larg, is_step) &&
		       CheckRecJoinTree(ctx, reinterpret_cast<JoinExpr *>(n)->rarg, is_step);
	Unsupported(ctx, "an outer join in %s of a recursive query is not maintained differentially yet", LevelWhat(is_step));
	return false;
}

// A seed arm or the step: a select-project-join level over keyed base tables (and, in the step, one
// reference to the recursive CTE). Writes its operator tree lines at `depth`.
RecLevel *
CheckRecLevel(BuildCtx *ctx, Query *leaf, int depth, bool is_step, const char *ctename) {
	const char *what = LevelWhat(is_step);
	if (leaf->cteList != NIL) {
		Unsupported(ctx, "WITH inside %s of a recursive query is not maintained differentially yet", what);
		return nullptr;
	}
	if (leaf->hasAggs || leaf->groupClause || leaf->havingQual || leaf->groupingSets || leaf->distinctClause) {
		Unsupported(ctx, "aggregates, GROUP BY or DISTINCT in %s of a recursive query are not maintained "
		                 "differentially yet", what);
		return nullptr;
	}
	if (leaf->hasWindowFuncs || leaf->limitCount || leaf->limitOffset || leaf->hasTargetSRFs) {
		Unsupported(ctx, "window functions, LIMIT/OFFSET or set-returning functions in %s of a recursive query are "
		                 "not maintained differentially yet", what);
		return nullptr;
	}
	if (leaf->hasSubLinks) {
		Unsupported(ctx, "a subquery in an expression of %s of a recursive query is not maintained differentially yet",
		            what);
		return nullptr;
	}
	if (leaf->setOperations) {
		Unsupported(ctx, "a set operation inside %s of a recursive query is not maintained differentially yet", what);
		return nullptr;
	}
	if (!CheckRecJoinTree(ctx, reinterpret_cast<Node *>(leaf->jointree), is_step))
		return nullptr;
	Query *flat = FlattenInnerJoins(leaf);
	List *all = NIL;
	CollectJoinInputs(reinterpret_cast<Node *>(flat->jointree), &all);
	RecLevel *lv = static_cast<RecLevel *>(palloc0(sizeof(RecLevel)));
	lv->q = flat;
	int nrel = 0;
	ListCell *lc;
	foreach (lc, all) {
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), flat->rtable);
		if (rte->rtekind == RTE_CTE && is_step && rte->self_reference && strcmp(rte->ctename, ctename) == 0) {
			lv->self = lfirst_int(lc);
			continue;
		}
		if (rte->rtekind == RTE_CTE) {
			Unsupported(ctx, "a reference to another common table expression (\"%s\") inside a recursive query is not "
			                 "maintained differentially yet", rte->ctename);
			return nullptr;
		}
		if (rte->rtekind != RTE_RELATION) {
			Unsupported(ctx, "%s of a recursive query reads a subquery, view, function or VALUES list (only tables "
			                 "are maintained differentially there)", what);
			return nullptr;
		}
		if (rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_PARTITIONED_TABLE) {
			Unsupported(ctx, "%s has no change capture",
			            psprintf("%s \"%s\"", rte->relkind == RELKIND_MATVIEW ? "materialized view" : "foreign table",
			                     get_rel_name(rte->relid)));
			return nullptr;
		}
		if (rte->tablesample) {
			Unsupported(ctx, "%s", "TABLESAMPLE is not maintained differentially");
			return nullptr;
		}
		if (RelationKey(rte->relid) == NIL || !AllColumnsGroupable(rte->relid)) {
			Unsupported(ctx, "table %s read by a recursive query has no primary key (or unique index over NOT NULL "
			                 "columns) or has a column without equality; such tables are not maintained differentially "
			                 "inside WITH RECURSIVE yet",
			            psprintf("%s.%s", quote_identifier(get_namespace_name(get_rel_namespace(rte->relid))),
			                     quote_identifier(get_rel_name(rte->relid))));
			return nullptr;
		}
		lv->inputs = lappend_int(lv->inputs, lfirst_int(lc));
		nrel++;
	}
	if (is_step && lv->self == 0) {
		Unsupported(ctx, "%s", "the recursive term does not read the recursive query in its FROM list");
		return nullptr;
	}
	int n = nrel + (lv->self ? 1 : 0);
	if (n > 1)
		TreeLine(ctx, depth, psprintf("Join (inner, %d inputs)%s", n, flat->jointree->quals ? " + Filter" : ""));
	else if (flat->jointree->quals)
		TreeLine(ctx, depth, "Filter");
	else if (n == 0)
		TreeLine(ctx, depth, "Result (constant)");
	int child = n > 1 || flat->jointree->quals ? depth + 1 : depth;
	foreach (lc, all) {
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), flat->rtable);
		if (lfirst_int(lc) == lv->self)
			TreeLine(ctx, child, psprintf("Recursive reference %s", quote_identifier(ctename)));
		else
			TreeLine(ctx, child, psprintf("Scan %s.%s", quote_identifier(get_namespace_name(get_rel_namespace(rte->relid))),
			                              quote_identifier(get_rel_name(rte->relid))));
	}
	return lv;
}

bool
CollectSeedLeaves(BuildCtx *ctx, Query *cteq, Node *n, bool set, List **leaves) {
	if (IsA(n, RangeTblRef)) {
		*leaves = lappend(*leaves, rt_fetch(reinterpret_cast<RangeTblRef *>(n)->rtindex, cteq->rtable)->subquery);
		return true;
	}
	auto *s = reinterpret_cast<SetOperationStmt *>(n);
	// In a UNION ALL recursion the seed arms must add up (UNION ALL); in a UNION one duplicates vanish anyway.
	if (s->op != SETOP_UNION || (!set && !s->all)) {
		Unsupported(ctx, "%s", "the non-recursive term of a recursive query is a set operation other than UNION ALL "
		                       "(or UNION in a UNION recursion); not maintained differentially yet");
		return false;
	}
	return CollectSeedLeaves(ctx, cteq, s->larg, set, leaves) && CollectSeedLeaves(ctx, cteq, s->rarg, set, leaves);
}

// The query's shape, or nullptr with the reason in ctx.
RecShape *
CheckRecursiveShape(BuildCtx *ctx, Query *q) {
	if (list_length(q->cteList) != 1) {
		Unsupported(ctx, "%s", "WITH RECURSIVE with more than one common table expression is not maintained "
		                       "differentially yet");
		return nullptr;
	}
	auto *cte = linitial_node(CommonTableExpr, q->cteList);
	if (!cte->cterecursive || !IsA(cte->ctequery, Query)) {
		Unsupported(ctx, "%s", "WITH RECURSIVE whose common table expression does not refer to itself is not "
		                       "maintained differentially yet");
		return nullptr;
	}
	if (cte->search_clause || cte->cycle_clause) {
		Unsupported(ctx, "%s", "SEARCH or CYCLE clauses of a recursive query are not maintained differentially yet");
		return nullptr;
	}
	// The outer query: SELECT <every column of r, in order> FROM r.
	const char *outer_why = "WITH RECURSIVE is maintained differentially only as SELECT <all columns of the recursive "
	                        "query, in order> FROM <it>; here the outer query %s";
	const char *outer_what = q->hasAggs || q->groupClause || q->havingQual || q->groupingSets ? "aggregates"
	                         : q->distinctClause                                           ? "applies DISTINCT"
	                         : q->hasWindowFuncs                                           ? "has window functions"
	                         : q->limitCount || q->limitOffset                             ? "has LIMIT/OFFSET"
	                         : q->hasTargetSRFs                                            ? "has set-returning functions"
	                         : q->hasSubLinks                                              ? "has subqueries in expressions"
	                         : q->setOperations                                            ? "is a set operation"
	                                                                                       : nullptr;
	if (outer_what) {
		Unsupported(ctx, outer_why, outer_what);
		return nullptr;
	}
	if (list_length(q->jointree->fromlist) != 1 || !IsA(linitial(q->jointree->fromlist), RangeTblRef)) {
		Unsupported(ctx, outer_why, "joins the recursive query with other tables");
		return nullptr;
	}
	int rti = linitial_node(RangeTblRef, q->jointree->fromlist)->rtindex;
	RangeTblEntry *ref = rt_fetch(rti, q->rtable);
	if (ref->rtekind != RTE_CTE || ref->ctelevelsup != 0 || strcmp(ref->ctename, cte->ctename) != 0) {
		Unsupported(ctx, outer_why, "does not read the recursive query directly");
		return nullptr;
	}
	if (q->jointree->quals) {
		Unsupported(ctx, outer_why, "has a WHERE clause");
		return nullptr;
	}
	List *vis = VisibleTargets(q->targetList);
	int ncols = list_length(cte->ctecolnames);
	bool all_cols = list_length(vis) == ncols;
	int i = 1;
	ListCell *lc;
	foreach (lc, vis) {
		Expr *e = static_cast<TargetEntry *>(lfirst(lc))->expr;
		if (!IsA(e, Var) || reinterpret_cast<Var *>(e)->varno != rti || reinterpret_cast<Var *>(e)->varattno != i ||
		    reinterpret_cast<Var *>(e)->varlevelsup != 0)
			all_cols = false;
		i++;
	}
	if (!all_cols) {
		Unsupported(ctx, outer_why, "computes expressions or selects a subset or another order of its columns");
		return nullptr;
	}
	auto *cteq = reinterpret_cast<Query *>(cte->ctequery);
	auto *top = reinterpret_cast<SetOperationStmt *>(cteq->setOperations);
	if (top == nullptr || top->op != SETOP_UNION || !IsA(top->rarg, RangeTblRef)) {
		Unsupported(ctx, "%s", "the recursive term of a recursive query is itself a set operation; not maintained "
		                       "differentially yet");
		return nullptr;
	}
	RecShape *shape = static_cast<RecShape *>(palloc0(sizeof(RecShape)));
	shape->ctename = cte->ctename;
	shape->ncols = ncols;
	shape->coltypes = cte->ctecoltypes;
	shape->coltypmods = cte->ctecoltypmods;
	shape->set = !top->all;
	foreach (lc, cte->ctecoltypes) {
		if (!Hashable(lfirst_oid(lc))) {
			Unsupported(ctx, "column of type %s has no hashing/equality support", format_type_be(lfirst_oid(lc)));
			return nullptr;
		}
	}
	TreeLine(ctx, 0,
	         psprintf("RecursiveCte %s (%s; old result read from the storage table)", quote_identifier(cte->ctename),
	                  shape->set ? "UNION: delete and rederive" : "UNION ALL: derivations counted"));
	List *seed_queries = NIL;
	if (!CollectSeedLeaves(ctx, cteq, top->larg, shape->set, &seed_queries))
		return nullptr;
	int arm = 1;
	foreach (lc, seed_queries) {
		TreeLine(ctx, 1, list_length(seed_queries) > 1 ? psprintf("Seed (arm %d)", arm) : "Seed");
		RecLevel *lv = CheckRecLevel(ctx, static_cast<Query *>(lfirst(lc)), 2, false, cte->ctename);
		if (lv == nullptr)
			return nullptr;
		shape->seeds = lappend(shape->seeds, lv);
		arm++;
	}
	TreeLine(ctx, 1, psprintf("Step (reads %s once)", quote_identifier(cte->ctename)));
	shape->step = CheckRecLevel(ctx, rt_fetch(reinterpret_cast<RangeTblRef *>(top->rarg)->rtindex, cteq->rtable)->subquery,
	                            2, true, cte->ctename);
	return shape->step ? shape : nullptr;
}

// --- SQL ---------------------------------------------------------------------------------------------

const char *
ColumnList(int ncols, bool with_weight) {
	StringInfoData s;
	initStringInfo(&s);
	for (int i = 1; i <= ncols; i++)
		appendStringInfo(&s, "%s\"__pgt_c%d\"", i > 1 ? ", " : "", i);
	if (with_weight)
		appendStringInfoString(&s, ", \"__pgt_w\"");
	return s.data;
}

// An empty relation with the CTE's columns and a weight.
char *
EmptyRows(RecShape *sh) {
	StringInfoData s;
	initStringInfo(&s);
	appendStringInfoString(&s, "SELECT ");
	for (int i = 0; i < sh->ncols; i++)
		appendStringInfo(&s, "NULL::%s, ", format_type_with_typemod(list_nth_oid(sh->coltypes, i), list_nth_int(sh->coltypmods, i)));
	appendStringInfoString(&s, "0::pg_catalog.int8 WHERE false");
	return s.data;
}

// Makes the recursive reference at `rtindex` read CTE `name` (columns __pgt_c1.., __pgt_w).
void
RetargetSelfReference(RangeTblEntry *rte, const char *name, int ncols) {
	List *colnames = NIL;
	for (int i = 1; i <= ncols; i++)
		colnames = lappend(colnames, makeString(psprintf("__pgt_c%d", i)));
	colnames = lappend(colnames, makeString(pstrdup("__pgt_w")));
	char *refname = rte->eref->aliasname;
	rte->ctename = pstrdup(name);
	rte->ctelevelsup = 0;
	rte->self_reference = false;
	rte->coltypes = lappend_oid(list_copy(rte->coltypes), INT8OID);
	rte->coltypmods = lappend_int(list_copy(rte->coltypmods), -1);
	rte->colcollations = lappend_oid(list_copy(rte->colcollations), InvalidOid);
	rte->alias = makeAlias(refname, list_copy(colnames));
	rte->eref = makeAlias(refname, colnames);
}

// The level evaluated with its base tables in `state` and its recursive reference reading CTE `rec`,
// as UNION ALL of terms producing __pgt_c1.. (cast to the CTE's column types) and __pgt_w (the product
// of the inputs' weights times `sign`; 1 when `unit`). nullptr when no term exists (a Nabla or DeltaPlus
// of a level without base tables).
char *
LevelSql(RecShape *sh, RecLevel *lv, LevelState state, const char *rec, int sign, bool unit) {
	int n = list_length(lv->inputs);
	bool telescoping = state == LevelState::Nabla || state == LevelState::DeltaPlus;
	int nterms = telescoping ? n : 1;
	if (nterms == 0)
		return nullptr;
	Oid mul = OpernameGetOprid(list_make1(makeString(pstrdup("*"))), INT8OID, INT8OID);
	StringInfoData s;
	initStringInfo(&s);
	for (int t = 0; t < nterms; t++) {
		Query *term = static_cast<Query *>(copyObject(lv->q));
		term->sortClause = NIL;
		term->targetList = VisibleTargets(term->targetList);
		int i = 0;
		ListCell *lc;
		foreach (lc, term->targetList) {
			auto *tle = static_cast<TargetEntry *>(lfirst(lc));
			Oid want = list_nth_oid(sh->coltypes, i);
			int32 want_mod = list_nth_int(sh->coltypmods, i);
			Node *e = reinterpret_cast<Node *>(tle->expr);
			if (exprType(e) != want || exprTypmod(e) != want_mod) {
				Node *c = coerce_to_target_type(nullptr, e, exprType(e), want, want_mod, COERCION_EXPLICIT,
				                                COERCE_EXPLICIT_CAST, -1);
				if (c == nullptr)
					elog(ERROR, "cannot cast column %d of the recursive query to %s", i + 1, format_type_be(want));
				tle->expr = reinterpret_cast<Expr *>(c);
			}
			tle->resname = psprintf("__pgt_c%d", i + 1);
			i++;
		}
		Expr *weight = nullptr;
		for (int j = 0; j < n; j++) {
			Index rtindex = list_nth_int(lv->inputs, j);
			RangeTblEntry *rte = rt_fetch(rtindex, term->rtable);
			KeyedStates *st = &lv->st[j];
			const char *sql;
			switch (state) {
			case LevelState::Kept:
				sql = st->kept;
				break;
			case LevelState::Old:
				sql = st->before;
				break;
			case LevelState::New:
				sql = BasePostWeighted(rte);
				break;
			case LevelState::Nabla:
				sql = j < t ? st->kept : j == t ? st->neg : st->before;
				break;
			case LevelState::DeltaPlus:
			default:
				sql = j < t ? st->kept : j == t ? st->pos : BasePostWeighted(rte);
				break;
			}
			ReplaceWithWeighted(rte, sql);
			Expr *w = WeightVar(rtindex, rte);
			weight = weight ? make_opclause(mul, INT8OID, false, weight, w, InvalidOid, InvalidOid) : w;
		}
		if (lv->self) {
			RangeTblEntry *rte = rt_fetch(lv->self, term->rtable);
			RetargetSelfReference(rte, rec, sh->ncols);
			Expr *w = WeightVar(lv->self, rte);
			weight = weight ? make_opclause(mul, INT8OID, false, weight, w, InvalidOid, InvalidOid) : w;
		}
		if (unit || weight == nullptr)
			weight = Int8Const(1);
		else if (sign < 0)
			weight = make_opclause(mul, INT8OID, false, weight, Int8Const(-1), InvalidOid, InvalidOid);
		AppendTerm(&s, term, weight);
	}
	return s.data;
}

// UNION ALL of the pieces that exist (nullptr when none).
char *
UnionAll(List *parts) {
	StringInfoData s;
	initStringInfo(&s);
	ListCell *lc;
	foreach (lc, parts) {
		const char *p = static_cast<const char *>(lfirst(lc));
		if (p == nullptr)
			continue;
		if (s.len > 0)
			appendStringInfoString(&s, "\nUNION ALL\n");
		appendStringInfo(&s, "SELECT * FROM (%s) AS u", p);
	}
	return s.len ? s.data : nullptr;
}

// Seed arms evaluated in `state`, UNION ALL.
List *
SeedParts(RecShape *sh, LevelState state, bool unit) {
	List *parts = NIL;
	ListCell *lc;
	foreach (lc, sh->seeds)
		parts = lappend(parts, LevelSql(sh, static_cast<RecLevel *>(lfirst(lc)), state, nullptr, 1, unit));
	return parts;
}

// a.__pgt_c1 IS NOT DISTINCT FROM b.__pgt_c1 AND ... (row equality as UNION sees it)
char *
SameRow(const char *a, const char *b, int ncols) {
	StringInfoData s;
	initStringInfo(&s);
	for (int i = 1; i <= ncols; i++)
		appendStringInfo(&s, "%s%s.\"__pgt_c%d\" IS NOT DISTINCT FROM %s.\"__pgt_c%d\"", i > 1 ? " AND " : "", a, i, b, i);
	return s.data;
}

// The identity hash of a row of CTE columns (as the storage table's __pgt_rid).
char *
RowHash(const char *alias, int ncols) {
	return psprintf("pg_catalog.hash_record_extended(ROW(%s), 0)", PositionalRefs(alias, ncols));
}

// "x matches a row of CTE `cte`" (hash first, so it can be a hash join key; then the values).
char *
InCte(const char *cte, const char *x, int ncols) {
	return psprintf("EXISTS (SELECT FROM %s m WHERE %s OPERATOR(pg_catalog.=) %s AND %s)", cte, RowHash("m", ncols),
	                RowHash(x, ncols), SameRow("m", x, ncols));
}

// The storage table (the old result) with the CTE columns, a weight and its identity hash.
char *
StorageCte(RecShape *sh, List *visible_names) {
	StringInfoData cols;
	initStringInfo(&cols);
	ListCell *lc;
	foreach (lc, visible_names)
		appendStringInfo(&cols, "s.%s, ", quote_identifier(static_cast<char *>(lfirst(lc))));
	return psprintf("\"__pgt_s\"(%s, \"__pgt_rid\") AS NOT MATERIALIZED (SELECT %s1::pg_catalog.int8, s.\"__pgt_rid\" "
	                "FROM %s s)",
	                ColumnList(sh->ncols, true), cols.data, kStoragePlaceholder);
}

// The CTE columns of `from_alias` named as the visible columns, each followed by ", ".
char *
FinalSelect(List *visible_names, const char *from_alias) {
	StringInfoData s;
	initStringInfo(&s);
	int i = 1;
	ListCell *lc;
	foreach (lc, visible_names) {
		appendStringInfo(&s, "%s.\"__pgt_c%d\" AS %s, ", from_alias, i, quote_identifier(static_cast<char *>(lfirst(lc))));
		i++;
	}
	return s.data;
}

char *
BagDelta(RecShape *sh, List *visible_names) {
	const char *cols = ColumnList(sh->ncols, true);
	RecLevel *step = sh->step;
	// D⁻: old derivations using a deleted row.
	List *dm_base = SeedParts(sh, LevelState::Nabla, false);
	dm_base = lappend(dm_base, LevelSql(sh, step, LevelState::Nabla, "__pgt_s", 1, false));
	char *dm_nonrec = UnionAll(dm_base);
	char *dm = psprintf("\"__pgt_dm\"(%s) AS (\nSELECT * FROM (%s) AS n\nUNION ALL\n%s\n)", cols,
	                    dm_nonrec ? dm_nonrec : EmptyRows(sh), LevelSql(sh, step, LevelState::Kept, "__pgt_dm", 1, false));
	// K: Δ⁺step over the kept derivations (the old result minus D⁻), consolidated.
	char *k = nullptr;
	char *kplus = LevelSql(sh, step, LevelState::DeltaPlus, "__pgt_s", 1, false);
	if (kplus) {
		char *kminus = LevelSql(sh, step, LevelState::DeltaPlus, "__pgt_dm", -1, false);
		k = psprintf("\"__pgt_k\"(%s) AS (\nSELECT %s, pg_catalog.sum(x.\"__pgt_w\")::pg_catalog.int8 FROM (%s\nUNION ALL\n%s) "
		             "AS x(%s) GROUP BY %s HAVING pg_catalog.sum(x.\"__pgt_w\") OPERATOR(pg_catalog.>) 0\n)",
		             cols, PositionalRefs("x", sh->ncols), kplus, kminus, cols, PositionalRefs("x", sh->ncols));
	}
	// D⁺: new derivations using an inserted row.
	List *dp_base = SeedParts(sh, LevelState::DeltaPlus, false);
	if (k)
		dp_base = lappend(dp_base, pstrdup("SELECT * FROM \"__pgt_k\""));
	char *dp_nonrec = UnionAll(dp_base);
	char *dp = psprintf("\"__pgt_dp\"(%s) AS (\nSELECT * FROM (%s) AS n\nUNION ALL\n%s\n)", cols,
	                    dp_nonrec ? dp_nonrec : EmptyRows(sh), LevelSql(sh, step, LevelState::New, "__pgt_dp", 1, false));
	return psprintf("WITH RECURSIVE %s,\n%s,\n%s%s%s\nSELECT %sp.\"__pgt_w\" FROM \"__pgt_dp\" p\nUNION ALL\n"
	                "SELECT %s(OPERATOR(pg_catalog.-) m.\"__pgt_w\") FROM \"__pgt_dm\" m",
	                StorageCte(sh, visible_names), dm, k ? k : "", k ? ",\n" : "", dp, FinalSelect(visible_names, "p"),
	                FinalSelect(visible_names, "m"));
}

// "row x (CTE columns) is in the storage table": probed through the __pgt_rid index, values compared.
char *
InStorage(const char *x, int ncols, List *visible_names) {
	StringInfoData same;
	initStringInfo(&same);
	int i = 1;
	ListCell *lc;
	foreach (lc, visible_names) {
		appendStringInfo(&same, " AND t.%s IS NOT DISTINCT FROM %s.\"__pgt_c%d\"",
		                 quote_identifier(static_cast<char *>(lfirst(lc))), x, i);
		i++;
	}
	return psprintf("EXISTS (SELECT FROM %s t WHERE t.\"__pgt_rid\" OPERATOR(pg_catalog.=) %s%s)", kStoragePlaceholder,
	                RowHash(x, ncols), same.data);
}

char *
SetDelta(RecShape *sh, Query *q, List *visible_names) {
	int n = sh->ncols;
	const char *cols = ColumnList(n, true);
	RecLevel *step = sh->step;
	// O: rows of S that lost a derivation (old derivations through a deleted row).
	List *o_base = SeedParts(sh, LevelState::Nabla, true);
	o_base = lappend(o_base, LevelSql(sh, step, LevelState::Nabla, "__pgt_s", 1, true));
	char *o_nonrec = UnionAll(o_base);
	char *o = psprintf("\"__pgt_o\"(%s) AS (\nSELECT * FROM (%s) AS n\nUNION\n%s\n)", cols,
	                   o_nonrec ? o_nonrec : EmptyRows(sh), LevelSql(sh, step, LevelState::Old, "__pgt_o", 1, true));
	// Rederiving costs a probe of O per candidate row and step: when O is a large part of the old
	// result (a twentieth of the stored rows as PostgreSQL estimates them, at least 100 and at most
	// 10,000 rows; 10,000 before the first ANALYZE), the new result is recomputed and compared with the
	// old one instead (below).
	char *big = psprintf("\"__pgt_big\"(b) AS (SELECT (SELECT pg_catalog.count(*) FROM \"__pgt_o\") OPERATOR(pg_catalog.>) "
	                     "GREATEST(100, LEAST(10000, COALESCE((SELECT CASE WHEN c.reltuples OPERATOR(pg_catalog.<) 0 THEN "
	                     "200000 ELSE c.reltuples END FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) (SELECT "
	                     "t.tableoid FROM %s t LIMIT 1)), 0) OPERATOR(pg_catalog./) 20)))",
	                     kStoragePlaceholder);
	// S − O.
	char *so = psprintf("\"__pgt_so\"(%s, \"__pgt_rid\") AS NOT MATERIALIZED (SELECT s.* FROM \"__pgt_s\" s WHERE NOT "
	                    "EXISTS (SELECT FROM \"__pgt_o\" m WHERE %s OPERATOR(pg_catalog.=) s.\"__pgt_rid\" AND %s))",
	                    cols, RowHash("m", n), SameRow("m", "s", n));
	// R: rows of O derivable in the new state from S − O.
	List *r_base = SeedParts(sh, LevelState::New, true);
	r_base = lappend(r_base, LevelSql(sh, step, LevelState::New, "__pgt_so", 1, true));
	char *r = psprintf("\"__pgt_r\"(%s) AS (\nSELECT x.* FROM (%s) AS x(%s) WHERE NOT (SELECT b FROM \"__pgt_big\") AND "
	                   "EXISTS (SELECT FROM \"__pgt_o\") AND %s\nUNION\nSELECT x.* FROM (%s) AS x(%s) WHERE %s\n)",
	                   cols, UnionAll(r_base), cols, InCte("\"__pgt_o\"", "x", n),
	                   LevelSql(sh, step, LevelState::New, "__pgt_r", 1, true), cols, InCte("\"__pgt_o\"", "x", n));
	// D = O − R: the rows that go.
	char *d = psprintf("\"__pgt_d\"(%s) AS (SELECT o.* FROM \"__pgt_o\" o WHERE NOT %s)", cols, InCte("\"__pgt_r\"", "o", n));
	// S' = (S − O) ∪ R, used as Δ⁺step(S') = Δ⁺step(S − O) ∪ Δ⁺step(R) (the step is linear in its
	// recursive reference): S − O stays a scan of the storage table with an anti-join, which
	// PostgreSQL can reach by index from the inserted rows; a UNION ALL of the two could not be
	// (an append member with a WHERE clause is planned as a whole: the whole old result hashed).
	// x ∉ S' ⟺ x ∉ S, or x ∈ D: the storage probed by index, D (small) scanned; both stay per-row
	// probes (under OR), so a step of the recursion does not rebuild a hash of the whole old result.
	char *not_in_sp = psprintf("(NOT %s OR %s)", InStorage("x", n, visible_names), InCte("\"__pgt_d\"", "x", n));
	// I: rows derivable in the new state through an inserted row, not in S'.
	List *i_base = SeedParts(sh, LevelState::DeltaPlus, true);
	i_base = lappend(i_base, LevelSql(sh, step, LevelState::DeltaPlus, "__pgt_so", 1, true));
	i_base = lappend(i_base, LevelSql(sh, step, LevelState::DeltaPlus, "__pgt_r", 1, true));
	char *i_nonrec = UnionAll(i_base);
	char *ins = psprintf("\"__pgt_i\"(%s) AS (\nSELECT x.* FROM (%s) AS x(%s) WHERE NOT (SELECT b FROM \"__pgt_big\") AND "
	                     "%s\nUNION\nSELECT x.* FROM (%s) AS x(%s) WHERE %s\n)",
	                     cols, i_nonrec ? i_nonrec : EmptyRows(sh), cols, not_in_sp,
	                     LevelSql(sh, step, LevelState::New, "__pgt_i", 1, true), cols, not_in_sp);
	// The new result, for a large O: compared with the old one row by row.
	StringInfoData qcols;
	initStringInfo(&qcols);
	for (int i = 1; i <= n; i++)
		appendStringInfo(&qcols, "%s\"__pgt_c%d\"", i > 1 ? ", " : "", i);
	char *renew = psprintf("\"__pgt_new\"(%s) AS (SELECT * FROM (%s) AS q WHERE (SELECT b FROM \"__pgt_big\"))",
	                       qcols.data, Deparse(q));
	return psprintf("WITH RECURSIVE %s,\n%s,\n%s,\n%s,\n%s,\n%s,\n%s,\n%s\n"
	                "SELECT %s(-1)::pg_catalog.int8 AS \"__pgt_w\" FROM \"__pgt_d\" o WHERE NOT (SELECT b FROM \"__pgt_big\")\n"
	                "UNION ALL\nSELECT %s1::pg_catalog.int8 FROM \"__pgt_i\" i WHERE NOT (SELECT b FROM \"__pgt_big\")\n"
	                "UNION ALL\nSELECT %s(-1)::pg_catalog.int8 FROM \"__pgt_s\" s WHERE (SELECT b FROM \"__pgt_big\") AND NOT "
	                "EXISTS (SELECT FROM \"__pgt_new\" m WHERE %s OPERATOR(pg_catalog.=) s.\"__pgt_rid\" AND %s)\n"
	                "UNION ALL\nSELECT %s1::pg_catalog.int8 FROM \"__pgt_new\" x WHERE (SELECT b FROM \"__pgt_big\") AND NOT %s",
	                StorageCte(sh, visible_names), o, big, so, r, d, ins, renew,
	                FinalSelect(visible_names, "o"), FinalSelect(visible_names, "i"),
	                FinalSelect(visible_names, "s"), RowHash("m", n), SameRow("m", "s", n),
	                FinalSelect(visible_names, "x"), InStorage("x", n, visible_names));
}

} // namespace

// The new state of a base table as weighted rows.
char *
BasePostWeighted(RangeTblEntry *rte) {
	return psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s", RelationColumns(rte->relid, "a", false),
	                LiveRelation(rte));
}

// WITH RECURSIVE at the top of a defining query: the delta (reading the storage table through
// kStoragePlaceholder), or nullptr with the reason in ctx.
// Columns of the recursive reference the step compares by equality with something else (r.x = e.y):
// an index on them lets the delta reach the old result's matching rows from the changed ones.
static List *
EqualityJoinColumns(RecLevel *step, List *visible_names) {
	List *out = NIL;
	if (step->q->jointree->quals == nullptr)
		return out;
	ListCell *lc;
	foreach (lc, make_ands_implicit(reinterpret_cast<Expr *>(step->q->jointree->quals))) {
		Node *conj = static_cast<Node *>(lfirst(lc));
		if (!IsA(conj, OpExpr) || list_length(reinterpret_cast<OpExpr *>(conj)->args) != 2 ||
		    !op_mergejoinable(reinterpret_cast<OpExpr *>(conj)->opno,
		                      exprType(static_cast<Node *>(linitial(reinterpret_cast<OpExpr *>(conj)->args)))))
			continue;
		for (int side = 0; side < 2; side++) {
			Node *a = strip_implicit_coercions(static_cast<Node *>(list_nth(reinterpret_cast<OpExpr *>(conj)->args, side)));
			Node *b = static_cast<Node *>(list_nth(reinterpret_cast<OpExpr *>(conj)->args, 1 - side));
			if (!IsA(a, Var) || reinterpret_cast<Var *>(a)->varno != step->self ||
			    reinterpret_cast<Var *>(a)->varlevelsup != 0 || reinterpret_cast<Var *>(a)->varattno < 1 ||
			    bms_is_member(step->self, pull_varnos(nullptr, b)))
				continue;
			char *name = static_cast<char *>(list_nth(visible_names, reinterpret_cast<Var *>(a)->varattno - 1));
			ListCell *seen;
			bool dup = false;
			foreach (seen, out)
				dup = dup || strcmp(static_cast<char *>(lfirst(seen)), name) == 0;
			if (!dup)
				out = lappend(out, name);
		}
	}
	return out;
}

char *
RecursiveDelta(BuildCtx *ctx, Query *q, List *visible_names, bool *set_semantics, List **index_columns) {
	RecShape *sh = CheckRecursiveShape(ctx, q);
	if (sh == nullptr)
		return nullptr;
	List *levels = list_copy(sh->seeds);
	levels = lappend(levels, sh->step);
	ListCell *lc;
	foreach (lc, levels) {
		auto *lv = static_cast<RecLevel *>(lfirst(lc));
		int n = list_length(lv->inputs);
		lv->st = static_cast<KeyedStates *>(palloc0(sizeof(KeyedStates) * (n + 1)));
		for (int j = 0; j < n; j++)
			lv->st[j] = KeyedStatesOf(rt_fetch(list_nth_int(lv->inputs, j), lv->q->rtable));
	}
	*set_semantics = sh->set;
	*index_columns = EqualityJoinColumns(sh->step, visible_names);
	return sh->set ? SetDelta(sh, q, visible_names) : BagDelta(sh, visible_names);
}

} // namespace pgtrickle::dvm_detail
