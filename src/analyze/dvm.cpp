// Translation of an analysed PostgreSQL Query into a differential plan.
//
// Technique: the select-project-join core of a query is differentiated on the Query tree itself.
// For inputs X1..Xn (base tables, or subqueries that are themselves differentiable) the delta is the
// telescoping sum   ΔQ = Σi Q[X1₁ .. X(i-1)₁, ΔXi, X(i+1)₀ .. Xn₀]   where X₁ is the live table (the
// post-state under the refresh snapshot), ΔX the change buffer window as a Z-set, and X₀ = X₁ − ΔX.
// Each term is a copy of the Query whose range-table entries are replaced by subqueries (parsed from
// SQL text we generate) carrying a weight column, plus a target column multiplying the weights; the
// term is then deparsed by PostgreSQL's own ruleutils, so every expression, join condition and
// qualification comes out exactly as PostgreSQL understands it. Aggregation, DISTINCT and the apply
// step are emitted as text around those fragments (src/core/dvm_plan.cpp).
//
// The code working on PostgreSQL trees is C-style (palloc, no C++ objects) and runs under one PgCall.
#include "analyze/dvm.hpp"

#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "pg/bridge.hpp"
#include "pg/postgres.hpp"
#include "pg/subxact.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/clauses.h"
#include "parser/analyze.h"
#include "parser/parse_agg.h"
#include "parser/parser.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rewriteManip.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/typcache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "utils/syscache.h"
#include "parser/parsetree.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_attribute.h"
}

namespace pgtrickle {

namespace {

constexpr int kGroupParamBase = 987650000;

// Set while building the variant of the delta for large change windows (see BuildDvmPlan).
bool g_large_windows = false;
constexpr int kAggParamBase = 987660000;

// ------------------------------------------------------------------------------------------------
// PostgreSQL-side builder (C style)
// ------------------------------------------------------------------------------------------------

struct BuildCtx {
	const char *unsupported; // first reason found (palloc'd)
	StringInfoData tree;     // operator tree
};

void
Unsupported(BuildCtx *ctx, const char *fmt, const char *arg) {
	if (ctx->unsupported == nullptr)
		ctx->unsupported = psprintf(fmt, arg);
}

char *
Deparse(Query *q) {
	int nest = NewGUCNestLevel();
	(void)set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	char *sql = pg_get_querydef(q, false);
	AtEOXact_GUC(true, nest);
	return sql;
}

// Parses and analyses SQL text we generated ($1 = pg_snapshot) into a Query.
Query *
ParseGenerated(const char *sql) {
	List *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Oid types[3] = {PG_SNAPSHOTOID, XID8OID, INT8OID};
	return parse_analyze_fixedparams(linitial_node(RawStmt, raw), sql, types, 3, nullptr);
}

void
TreeLine(BuildCtx *ctx, int depth, const char *text) {
	for (int i = 0; i < depth; i++)
		appendStringInfoString(&ctx->tree, "  ");
	appendStringInfoString(&ctx->tree, text);
	appendStringInfoChar(&ctx->tree, '\n');
}

bool CheckDifferentiable(BuildCtx *ctx, Query *q, int depth);
bool CheckLevelSublinks(BuildCtx *ctx, Query *q, int depth);
bool ContainsSublink(Node *n);
JoinExpr *FindOuterJoin(Node *n);
bool SublinkOutsideAggs(Node *node, void *context);
bool NeedsKeyedRecompute(Query *q);
const char *RecomputeKeys(Query *q, List **keys);
Query *RecomputeInput(Query *q, List *keys);
bool Hashable(Oid type);
List *RelationsRead(Query *q);
char *AnyChangeSql(List *relids);
bool CheckSublinkBody(BuildCtx *ctx, Query *body);
void BuildRawPlan(const char *sql, struct RawPlan *out);
void ReplaceWithRows(RangeTblEntry *rte, const char *sql);

bool
IsUnionAllTree(Node *n) {
	if (IsA(n, RangeTblRef))
		return true;
	if (!IsA(n, SetOperationStmt))
		return false;
	auto *s = reinterpret_cast<SetOperationStmt *>(n);
	return s->op == SETOP_UNION && s->all && IsUnionAllTree(s->larg) && IsUnionAllTree(s->rarg);
}

void
CollectSetopLeaves(Node *n, List **leaves) {
	if (IsA(n, RangeTblRef)) {
		*leaves = lappend_int(*leaves, reinterpret_cast<RangeTblRef *>(n)->rtindex);
		return;
	}
	auto *s = reinterpret_cast<SetOperationStmt *>(n);
	CollectSetopLeaves(s->larg, leaves);
	CollectSetopLeaves(s->rarg, leaves);
}

void
CollectJoinInputs(Node *n, List **inputs) {
	if (n == nullptr)
		return;
	if (IsA(n, RangeTblRef)) {
		*inputs = lappend_int(*inputs, reinterpret_cast<RangeTblRef *>(n)->rtindex);
	} else if (IsA(n, FromExpr)) {
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			CollectJoinInputs(static_cast<Node *>(lfirst(lc)), inputs);
	} else if (IsA(n, JoinExpr)) {
		CollectJoinInputs(reinterpret_cast<JoinExpr *>(n)->larg, inputs);
		CollectJoinInputs(reinterpret_cast<JoinExpr *>(n)->rarg, inputs);
	}
}

// The NULL-padded side of an outer join becomes the body of a NOT EXISTS subquery: base tables with
// inner joins only.
bool
CheckPaddedSide(BuildCtx *ctx, Query *q, Node *n) {
	if (IsA(n, RangeTblRef)) {
		RangeTblEntry *rte = rt_fetch(reinterpret_cast<RangeTblRef *>(n)->rtindex, q->rtable);
		if (rte->rtekind == RTE_RELATION && (rte->relkind == RELKIND_RELATION || rte->relkind == RELKIND_PARTITIONED_TABLE) &&
		    !rte->tablesample)
			return true;
		Unsupported(ctx, "%s", "the NULL-padded side of an outer join is not a table (a subquery, view, function or "
		                       "VALUES there is not maintained differentially yet)");
		return false;
	}
	if (IsA(n, JoinExpr) && reinterpret_cast<JoinExpr *>(n)->jointype == JOIN_INNER)
		return CheckPaddedSide(ctx, q, reinterpret_cast<JoinExpr *>(n)->larg) &&
		       CheckPaddedSide(ctx, q, reinterpret_cast<JoinExpr *>(n)->rarg);
	Unsupported(ctx, "%s", "an outer join nested on the NULL-padded side of another outer join is not maintained "
	                       "differentially yet");
	return false;
}

bool
CheckJoinTree(BuildCtx *ctx, Node *n, Query *q = nullptr) {
	if (n == nullptr || IsA(n, RangeTblRef))
		return true;
	if (IsA(n, FromExpr)) {
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			if (!CheckJoinTree(ctx, static_cast<Node *>(lfirst(lc)), q))
				return false;
		return true;
	}
	if (IsA(n, JoinExpr)) {
		auto *j = reinterpret_cast<JoinExpr *>(n);
		if (j->jointype != JOIN_INNER) {
			bool outer = j->jointype == JOIN_LEFT || j->jointype == JOIN_RIGHT || j->jointype == JOIN_FULL;
			if (!outer || q == nullptr) {
				Unsupported(ctx, "%s", outer ? "an outer join inside a subquery in an expression is not maintained "
				                               "differentially yet"
				                             : "this join type is not maintained differentially");
				return false;
			}
			if (ContainsSublink(j->quals)) {
				Unsupported(ctx, "%s", "a subquery in the ON condition of an outer join is not maintained "
				                       "differentially yet");
				return false;
			}
			if ((j->jointype != JOIN_RIGHT && !CheckPaddedSide(ctx, q, j->rarg)) ||
			    (j->jointype != JOIN_LEFT && !CheckPaddedSide(ctx, q, j->larg)))
				return false;
		}
		return CheckJoinTree(ctx, j->larg, q) && CheckJoinTree(ctx, j->rarg, q);
	}
	Unsupported(ctx, "%s", "unexpected join tree node");
	return false;
}

// A select-project-join block (possibly UNION ALL of such blocks) whose inputs are base tables or
// differentiable subqueries. Aggregation/DISTINCT at this level are handled by the caller.
bool
CheckSpjLevel(BuildCtx *ctx, Query *q, int depth, bool allow_grouping) {
	if (q->cteList != NIL) {
		Unsupported(ctx, "%s", q->hasRecursive ? "WITH RECURSIVE is not maintained differentially yet"
		                                       : "WITH (common table expressions) is not maintained differentially yet");
		return false;
	}
	if (q->hasWindowFuncs) {
		Unsupported(ctx, "%s", "window functions are not maintained differentially yet");
		return false;
	}
	if (q->limitCount || q->limitOffset) {
		Unsupported(ctx, "%s", "LIMIT/OFFSET is not maintained differentially yet");
		return false;
	}
	if (q->hasDistinctOn) {
		Unsupported(ctx, "%s", "DISTINCT ON is not maintained differentially yet");
		return false;
	}
	if (q->groupingSets) {
		Unsupported(ctx, "%s", "GROUPING SETS/ROLLUP/CUBE are not maintained differentially yet");
		return false;
	}
	if (!allow_grouping && (q->hasAggs || q->groupClause || q->havingQual || q->distinctClause)) {
		Unsupported(ctx, "%s", depth <= 1 ? "DISTINCT together with GROUP BY or aggregates is not maintained "
		                                    "differentially yet"
		                                  : "aggregation or DISTINCT inside a subquery is not maintained "
		                                    "differentially yet");
		return false;
	}
	if (q->setOperations) {
		if (!IsUnionAllTree(q->setOperations)) {
			Unsupported(ctx, "%s", depth <= 1 ? "INTERSECT/EXCEPT (and UNION inside other set operations) are "
			                                    "not maintained differentially yet"
			                                  : "set operations other than UNION ALL inside a subquery are not "
			                                    "maintained differentially yet");
			return false;
		}
		TreeLine(ctx, depth, "UnionAll");
		List *leaves = NIL;
		CollectSetopLeaves(q->setOperations, &leaves);
		ListCell *lc;
		foreach (lc, leaves) {
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), q->rtable);
			if (!CheckDifferentiable(ctx, rte->subquery, depth + 1))
				return false;
		}
		return true;
	}
	if (!CheckJoinTree(ctx, reinterpret_cast<Node *>(q->jointree), q))
		return false;
	if (!CheckLevelSublinks(ctx, q, depth))
		return false;
	List *inputs = NIL;
	CollectJoinInputs(reinterpret_cast<Node *>(q->jointree), &inputs);
	if (FindOuterJoin(reinterpret_cast<Node *>(q->jointree)))
		TreeLine(ctx, depth, psprintf("Join (outer: inner-join arm + NOT EXISTS arms with NULL padding, %d inputs)%s",
		                              list_length(inputs), q->jointree->quals ? " + Filter" : ""));
	else if (list_length(inputs) > 1)
		TreeLine(ctx, depth, psprintf("Join (inner, %d inputs)%s", list_length(inputs), q->jointree->quals ? " + Filter" : ""));
	else if (q->jointree->quals)
		TreeLine(ctx, depth, "Filter");
	int child_depth = list_length(inputs) > 1 || q->jointree->quals ? depth + 1 : depth;
	ListCell *lc;
	foreach (lc, inputs) {
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), q->rtable);
		switch (rte->rtekind) {
		case RTE_RELATION: {
			char kind = rte->relkind;
			if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE) {
				Unsupported(ctx, "%s has no change capture",
				            psprintf("%s \"%s\"", kind == RELKIND_MATVIEW ? "materialized view" : "foreign table",
				                     get_rel_name(rte->relid)));
				return false;
			}
			if (rte->tablesample) {
				Unsupported(ctx, "%s", "TABLESAMPLE is not maintained differentially");
				return false;
			}
			TreeLine(ctx, child_depth,
			         psprintf("Scan %s.%s", get_namespace_name(get_rel_namespace(rte->relid)), get_rel_name(rte->relid)));
			break;
		}
		case RTE_SUBQUERY:
			if (rte->lateral) {
				// Like a subquery in an expression: evaluated per row of the other inputs.
				TreeLine(ctx, child_depth, "Lateral subquery (live and old state, probed by changed rows)");
				if (!CheckSublinkBody(ctx, rte->subquery))
					return false;
				break;
			}
			if (!CheckDifferentiable(ctx, rte->subquery, child_depth))
				return false;
			break;
		case RTE_FUNCTION:
		case RTE_VALUES:
			// Expanded per row of the inputs it refers to (or constant): no change of its own.
			if (ContainsSublink(reinterpret_cast<Node *>(rte->functions)) ||
			    ContainsSublink(reinterpret_cast<Node *>(rte->values_lists))) {
				Unsupported(ctx, "%s", "a subquery inside a function or VALUES in FROM is not maintained differentially");
				return false;
			}
			TreeLine(ctx, child_depth, rte->rtekind == RTE_VALUES ? "Values (constant)" : "Function (per-row expansion)");
			break;
		case RTE_CTE:
			Unsupported(ctx, "%s", "WITH (common table expressions) is not maintained differentially yet");
			return false;
		default:
			Unsupported(ctx, "%s", "this kind of FROM item is not maintained differentially");
			return false;
		}
	}
	return true;
}

// Subqueries in FROM (and expanded views) must be plain select-project-join blocks or UNION ALLs.
bool
CheckDifferentiable(BuildCtx *ctx, Query *q, int depth) {
	if (NeedsKeyedRecompute(q)) {
		List *keys = NIL;
		const char *why = RecomputeKeys(q, &keys);
		if (why) {
			Unsupported(ctx, "%s", why);
			return false;
		}
		TreeLine(ctx, depth, psprintf("Recompute touched keys (%s inside a subquery; %d key(s); new minus old state)",
		                              q->hasWindowFuncs ? "window functions" : q->distinctClause && !q->hasAggs && !q->groupClause ? "DISTINCT" : "aggregation",
		                              list_length(keys)));
		return CheckSpjLevel(ctx, RecomputeInput(q, keys), depth + 1, false);
	}
	if (!q->setOperations)
		TreeLine(ctx, depth, "Project");
	return CheckSpjLevel(ctx, q, q->setOperations ? depth : depth + 1, false);
}

// --- Delta SQL generation ---------------------------------------------------------------------------

char *DeltaOfQuery(Query *q);

// Output column list of a base relation in attribute order. Dropped columns become typed NULL
// placeholders; reading a change buffer, so do columns the buffer does not capture (a stream table's
// hidden columns), typed like the relation's column so both sides of a UNION ALL agree.
char *
RelationColumns(Oid relid, const char *alias, bool from_buffer) {
	StringInfoData s;
	initStringInfo(&s);
	Oid buffer = InvalidOid;
	if (from_buffer) {
		Oid nsp = get_namespace_oid("pgtrickle_changes", false);
		buffer = get_relname_relid(psprintf("changes_%u", relid), nsp);
	}
	int natts = 0;
	HeapTuple tp;
	for (int attno = 1;; attno++) {
		tp = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attno));
		if (!HeapTupleIsValid(tp))
			break;
		Form_pg_attribute att = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(tp));
		if (natts++ > 0)
			appendStringInfoString(&s, ", ");
		if (att->attisdropped)
			appendStringInfo(&s, "NULL::pg_catalog.int4 AS \"__pgt_dropped_%d\"", attno);
		else if (from_buffer && get_attnum(buffer, NameStr(att->attname)) == InvalidAttrNumber)
			appendStringInfo(&s, "NULL::%s AS %s", format_type_with_typemod(att->atttypid, att->atttypmod),
			                 quote_identifier(NameStr(att->attname)));
		else
			appendStringInfo(&s, "%s.%s", alias, quote_identifier(NameStr(att->attname)));
		ReleaseSysCache(tp);
	}
	return s.data;
}

// True if every live column of `relid` has an equality operator (so the delta can be consolidated).
bool
AllColumnsGroupable(Oid relid) {
	for (int attno = 1;; attno++) {
		HeapTuple tp = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attno));
		if (!HeapTupleIsValid(tp))
			return true;
		Form_pg_attribute att = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(tp));
		bool ok = att->attisdropped ||
		          OidIsValid(lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR | TYPECACHE_HASH_PROC)->hash_proc);
		ReleaseSysCache(tp);
		if (!ok)
			return false;
	}
}

// The change window of a base table as a consolidated Z-set: a row inserted and deleted again (or the
// old image of a row updated twice) cancels out before any expression of the query sees it, so the
// delta only ever evaluates expressions on row versions that existed at one of the two frontiers.
char *
BaseDeltaSql(RangeTblEntry *rte) {
	Oid relid = rte->relid;
	char *buffer = psprintf("pgtrickle_changes.%s", quote_identifier(psprintf("changes_%u", relid)));
	char *raw = psprintf("SELECT %s, CASE b.\"__pgt_op\" WHEN 'I' THEN 1::pg_catalog.int8 ELSE (-1)::pg_catalog.int8 END "
	                     "AS \"__pgt_w\" FROM %s b WHERE b.\"__pgt_op\" OPERATOR(pg_catalog.<>) 'T' AND %s",
	                     RelationColumns(relid, "b", true), buffer, BufferWindowPredicate("b").c_str());
	if (!AllColumnsGroupable(relid))
		return raw;
	int n = 0;
	for (int attno = 1;; attno++, n++) {
		HeapTuple tp = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attno));
		if (!HeapTupleIsValid(tp))
			break;
		ReleaseSysCache(tp);
	}
	// The raw columns renamed positionally (c1 .. cn), grouped, weights summed.
	StringInfoData names;
	StringInfoData refs;
	initStringInfo(&names);
	initStringInfo(&refs);
	for (int i = 1; i <= n; i++) {
		appendStringInfo(&names, "\"__pgt_c%d\", ", i);
		appendStringInfo(&refs, "%sr.\"__pgt_c%d\"", i > 1 ? ", " : "", i);
	}
	return psprintf("SELECT %s, pg_catalog.sum(r.\"__pgt_cw\")::pg_catalog.int8 AS \"__pgt_w\" FROM (%s) r(%s\"__pgt_cw\") "
	                "GROUP BY %s HAVING pg_catalog.sum(r.\"__pgt_cw\") OPERATOR(pg_catalog.<>) 0",
	                refs.data, raw, names.data, refs.data);
}

// The live table of a base-table input as a FROM item with alias a (ONLY unless it reads partitions
// or children).
char *
LiveRelation(RangeTblEntry *rte) {
	return psprintf("%s%s.%s a", rte->inh ? "" : "ONLY ",
	                quote_identifier(get_namespace_name(get_rel_namespace(rte->relid))),
	                quote_identifier(get_rel_name(rte->relid)));
}

char *
BasePostSql(RangeTblEntry *rte) {
	return psprintf("SELECT %s FROM %s", RelationColumns(rte->relid, "a", false), LiveRelation(rte));
}

// X₀ = X₁ − ΔX as a Z-set (the delta's columns renamed positionally to negate its weight).
char *
PreStateSql(const char *post_sql, const char *delta_sql, int ncols) {
	StringInfoData names;
	StringInfoData cols;
	initStringInfo(&names);
	initStringInfo(&cols);
	for (int i = 1; i <= ncols; i++) {
		appendStringInfo(&names, "\"__pgt_c%d\", ", i);
		appendStringInfo(&cols, "d.\"__pgt_c%d\", ", i);
	}
	return psprintf("SELECT p.*, 1::pg_catalog.int8 AS \"__pgt_w\" FROM (%s) p UNION ALL "
	                "SELECT %s(OPERATOR(pg_catalog.-) d.\"__pgt_cw\") FROM (%s) d(%s\"__pgt_cw\")",
	                post_sql, cols.data, delta_sql, names.data);
}

char *
InputDeltaSql(RangeTblEntry *rte) {
	return rte->rtekind == RTE_RELATION ? BaseDeltaSql(rte) : DeltaOfQuery(rte->subquery);
}

char *
InputPostSql(RangeTblEntry *rte) {
	return rte->rtekind == RTE_RELATION ? BasePostSql(rte) : Deparse(rte->subquery);
}

// Turns range-table entry `rte` into a subquery over `sql` whose last column is the weight.
void
ReplaceWithWeighted(RangeTblEntry *rte, const char *sql, bool with_ok = false) {
	Query *sub = ParseGenerated(sql);
	char *refname = rte->eref->aliasname;
	// Dropped columns have empty names in eref; give every position a name for the alias list.
	List *colnames = NIL;
	int pos = 1;
	ListCell *lc;
	foreach (lc, rte->eref->colnames) {
		const char *name = strVal(lfirst(lc));
		colnames = lappend(colnames, makeString(name[0] ? pstrdup(name) : psprintf("__pgt_dropped_%d", pos)));
		pos++;
	}
	colnames = lappend(colnames, makeString(pstrdup("__pgt_w")));
	if (with_ok)
		colnames = lappend(colnames, makeString(pstrdup("__pgt_ok")));
	rte->rtekind = RTE_SUBQUERY;
	rte->subquery = sub;
	rte->relid = InvalidOid;
	rte->inh = false;
	rte->tablesample = nullptr;
	// Explicit column aliases: the generated subquery's own output names may differ.
	rte->alias = makeAlias(refname, list_copy(colnames));
	rte->eref = makeAlias(refname, colnames);
}

Expr *
WeightVar(Index rtindex, RangeTblEntry *rte) {
	// The last column of that name: a source column may be called "__pgt_w" too.
	int attno = 0, pos = 1;
	ListCell *lc;
	foreach (lc, rte->eref->colnames) {
		if (strcmp(strVal(lfirst(lc)), "__pgt_w") == 0)
			attno = pos;
		pos++;
	}
	return reinterpret_cast<Expr *>(makeVar(rtindex, static_cast<AttrNumber>(attno), INT8OID, -1, InvalidOid, 0));
}

Expr *
Int8Const(int64 v) {
	return reinterpret_cast<Expr *>(makeConst(INT8OID, -1, InvalidOid, 8, Int64GetDatum(v), false, true));
}

// The target list "1 AS __pgt_one" (a query whose rows only count as existing).
List *
OneTarget() {
	return list_make1(makeTargetEntry(reinterpret_cast<Expr *>(makeConst(INT4OID, -1, InvalidOid, 4, Int32GetDatum(1),
	                                                                      false, true)),
	                                  1, pstrdup("__pgt_one"), false));
}

// Target entries "__pgt_gk_1" .. for key expressions (copies), numbered from `first_resno`.
List *
KeyTargets(List *exprs, int first_resno) {
	List *tl = NIL;
	int j = 1;
	ListCell *lc;
	foreach (lc, exprs) {
		tl = lappend(tl, makeTargetEntry(reinterpret_cast<Expr *>(copyObject(lfirst(lc))), first_resno + j - 1,
		                                 psprintf("__pgt_gk_%d", j), false));
		j++;
	}
	return tl;
}

void
AddConjunct(Query *q, Expr *conj) {
	List *quals = q->jointree->quals ? make_ands_implicit(reinterpret_cast<Expr *>(q->jointree->quals)) : NIL;
	q->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(lappend(quals, conj)));
}

// Finishes a delta term (its weight as the last column) and appends it to `s` as another UNION ALL arm.
void
AppendTerm(StringInfo s, Query *term, Expr *weight) {
	if (IsA(weight, OpExpr))
		set_opfuncid(reinterpret_cast<OpExpr *>(weight));
	term->targetList =
	    lappend(term->targetList, makeTargetEntry(weight, list_length(term->targetList) + 1, pstrdup("__pgt_w"), false));
	if (s->len > 0)
		appendStringInfoString(s, "\nUNION ALL\n");
	appendStringInfoString(s, Deparse(term));
}

// Turns a range-table entry into an unused placeholder (deparsed nowhere, holding no relation).
void
MakePlaceholderRte(RangeTblEntry *rte, const char *name) {
	rte->rtekind = RTE_RESULT;
	rte->relid = InvalidOid;
	rte->subquery = nullptr;
	rte->inh = false;
	rte->perminfoindex = 0;
	rte->joinaliasvars = NIL;
	rte->joinleftcols = NIL;
	rte->joinrightcols = NIL;
	rte->join_using_alias = nullptr;
	rte->alias = nullptr;
	rte->eref = makeAlias(name, NIL);
}

BuildCtx
ScratchCtx() {
	BuildCtx c;
	c.unsupported = nullptr;
	initStringInfo(&c.tree);
	return c;
}

// Non-junk target entries, renumbered.
List *
VisibleTargets(List *tlist) {
	List *out = NIL;
	ListCell *lc;
	foreach (lc, tlist) {
		auto *tle = static_cast<TargetEntry *>(lfirst(lc));
		if (tle->resjunk)
			continue;
		TargetEntry *copy = flatCopyTargetEntry(tle);
		copy->resno = list_length(out) + 1;
		copy->ressortgroupref = 0;
		out = lappend(out, copy);
	}
	return out;
}

void
CollectJoinQuals(Node *n, List **quals) {
	if (n == nullptr || IsA(n, RangeTblRef))
		return;
	if (IsA(n, FromExpr)) {
		ListCell *lc;
		foreach (lc, reinterpret_cast<FromExpr *>(n)->fromlist)
			CollectJoinQuals(static_cast<Node *>(lfirst(lc)), quals);
		return;
	}
	auto *j = reinterpret_cast<JoinExpr *>(n);
	CollectJoinQuals(j->larg, quals);
	CollectJoinQuals(j->rarg, quals);
	if (j->quals)
		*quals = lappend(*quals, j->quals);
}

// Inner joins only: rewrites JOIN ... ON into a flat FROM list with the join conditions in WHERE, and
// references to join columns into references to the underlying inputs. Replacing an input by a
// weighted subquery then cannot disturb join column bookkeeping.
Query *
FlattenInnerJoins(Query *q) {
	q = static_cast<Query *>(copyObject(q));
	List *inputs = NIL;
	CollectJoinInputs(reinterpret_cast<Node *>(q->jointree), &inputs);
	List *quals = NIL;
	CollectJoinQuals(reinterpret_cast<Node *>(q->jointree), &quals);
	if (q->jointree->quals)
		quals = lappend(quals, q->jointree->quals);
	List *fromlist = NIL;
	ListCell *lc;
	foreach (lc, inputs) {
		RangeTblRef *ref = makeNode(RangeTblRef);
		ref->rtindex = lfirst_int(lc);
		fromlist = lappend(fromlist, ref);
	}
	Node *where = quals == NIL ? nullptr : reinterpret_cast<Node *>(make_ands_explicit(quals));
	if (where)
		where = flatten_join_alias_vars(nullptr, q, where);
	q->targetList = reinterpret_cast<List *>(flatten_join_alias_vars(nullptr, q, reinterpret_cast<Node *>(q->targetList)));
	q->havingQual = flatten_join_alias_vars(nullptr, q, q->havingQual);
	q->jointree = makeFromExpr(fromlist, where);
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_GROUP)
			rte->groupexprs = reinterpret_cast<List *>(
			    flatten_join_alias_vars(nullptr, q, reinterpret_cast<Node *>(rte->groupexprs)));
	}
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_JOIN)
			MakePlaceholderRte(rte, "__pgt_join");
	}
	return q;
}

// The attribute numbers of a key of `relid` (primary key, or a unique index over NOT NULL columns
// without expressions or predicate); NIL if it has none.
List *
RelationKey(Oid relid) {
	Relation rel = table_open(relid, AccessShareLock);
	List *indexes = RelationGetIndexList(rel);
	List *best = NIL;
	ListCell *lc;
	foreach (lc, indexes) {
		HeapTuple tp = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		if (!HeapTupleIsValid(tp))
			continue;
		auto *idx = reinterpret_cast<Form_pg_index>(GETSTRUCT(tp));
		bool usable = (idx->indisprimary || idx->indisunique) && idx->indimmediate &&
		              heap_attisnull(tp, Anum_pg_index_indexprs, nullptr) &&
		              heap_attisnull(tp, Anum_pg_index_indpred, nullptr);
		List *cols = NIL;
		for (int i = 0; usable && i < idx->indnkeyatts; i++) {
			AttrNumber att = idx->indkey.values[i];
			Form_pg_attribute a = TupleDescAttr(RelationGetDescr(rel), att - 1);
			if (att <= 0 || !a->attnotnull)
				usable = false;
			else
				cols = lappend_int(cols, att);
		}
		if (usable && (best == NIL || idx->indisprimary || list_length(cols) < list_length(best)))
			best = cols;
		ReleaseSysCache(tp);
	}
	table_close(rel, AccessShareLock);
	return best;
}

// Positional column list d."__pgt_c1", ... for a relation of n attributes, and the names list.
char *
PositionalNames(int n) {
	StringInfoData s;
	initStringInfo(&s);
	for (int i = 1; i <= n; i++)
		appendStringInfo(&s, "\"__pgt_c%d\", ", i);
	return s.data;
}

char *
PositionalRefs(const char *alias, int n) {
	StringInfoData s;
	initStringInfo(&s);
	for (int i = 1; i <= n; i++)
		appendStringInfo(&s, "%s%s.\"__pgt_c%d\"", i > 1 ? ", " : "", alias, i);
	return s.data;
}

// Wraps each WHERE conjunct that can raise an error (is not leakproof) and reads a guarded kept input
// and some other input in CASE WHEN <those inputs' "__pgt_ok" flags> THEN conjunct ELSE false END, so
// it is evaluated only on pairs of rows that coexisted. Leakproof conjuncts (equality joins on
// built-in types) stay as they are, so the planner still joins by them.
void
GuardMixedStateQuals(Query *term, Bitmapset *kept_rels) {
	if (kept_rels == nullptr || term->jointree->quals == nullptr)
		return;
	// (A AND B) OR (A AND C) -> A AND (B OR C), as the planner would: a join key repeated in every arm
	// of an OR (TPC-H Q19) becomes a conjunct of its own, left unwrapped, so it stays a join key.
	List *conjuncts = make_ands_implicit(canonicalize_qual(reinterpret_cast<Expr *>(term->jointree->quals), false));
	List *out = NIL;
	ListCell *lc;
	foreach (lc, conjuncts) {
		Node *conj = static_cast<Node *>(lfirst(lc));
		Bitmapset *rels = pull_varnos(nullptr, conj);
		Bitmapset *guard_rels = bms_intersect(rels, kept_rels);
		if (bms_is_empty(guard_rels) || bms_num_members(rels) < 2 || !contain_leaked_vars(conj)) {
			out = lappend(out, conj);
			continue;
		}
		List *flags = NIL;
		int rtindex = -1;
		while ((rtindex = bms_next_member(guard_rels, rtindex)) >= 0) {
			RangeTblEntry *rte = rt_fetch(rtindex, term->rtable);
			flags = lappend(flags, makeVar(rtindex, static_cast<AttrNumber>(list_length(rte->eref->colnames)), BOOLOID,
			                               -1, InvalidOid, 0));
		}
		CaseWhen *when = makeNode(CaseWhen);
		when->expr = make_ands_explicit(flags);
		when->result = reinterpret_cast<Expr *>(conj);
		when->location = -1;
		CaseExpr *c = makeNode(CaseExpr);
		c->casetype = BOOLOID;
		c->casecollid = InvalidOid;
		c->arg = nullptr;
		c->args = list_make1(when);
		c->defresult = reinterpret_cast<Expr *>(makeBoolConst(false, false));
		c->location = -1;
		out = lappend(out, c);
	}
	term->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(out));
}

// The states of a keyed base-table input, as weighted SQL (see ConsistentJoinDelta).
struct KeyedStates {
	char *pos;     // rows the window inserted (net)
	char *neg;     // rows the window deleted (net), weight positive
	char *kept;    // live rows whose key the window did not touch
	char *kept_ok; // kept, plus the "__pgt_ok" flag column
	char *before;  // the old state: kept + neg
	// The old state as the live table (flag "__pgt_ok": key untouched) plus neg (flag true). The
	// live arm has no WHERE, so PostgreSQL can scan it by index inside a join; the term filters on
	// the flag (and guards error-prone conditions with it, see GuardMixedStateQuals).
	char *before_ok;
};

KeyedStates
KeyedStatesOf(RangeTblEntry *rte) {
	KeyedStates st;
	int ncols = list_length(rte->eref->colnames);
	char *names = PositionalNames(ncols);
	char *delta = BaseDeltaSql(rte);
	st.pos = psprintf("SELECT %s, d.\"__pgt_cw\" AS \"__pgt_w\" FROM (%s) d(%s\"__pgt_cw\") "
	                  "WHERE d.\"__pgt_cw\" OPERATOR(pg_catalog.>) 0",
	                  PositionalRefs("d", ncols), delta, names);
	st.neg = psprintf("SELECT %s, (OPERATOR(pg_catalog.-) d.\"__pgt_cw\") AS \"__pgt_w\" FROM (%s) d(%s\"__pgt_cw\") "
	                  "WHERE d.\"__pgt_cw\" OPERATOR(pg_catalog.<) 0",
	                  PositionalRefs("d", ncols), delta, names);
	StringInfoData live_key;
	StringInfoData delta_key;
	initStringInfo(&live_key);
	initStringInfo(&delta_key);
	ListCell *lc;
	foreach (lc, RelationKey(rte->relid)) {
		int att = lfirst_int(lc);
		appendStringInfo(&live_key, "%sa.%s", live_key.len ? ", " : "",
		                 quote_identifier(get_attname(rte->relid, static_cast<AttrNumber>(att), false)));
		appendStringInfo(&delta_key, "%sk.\"__pgt_c%d\"", delta_key.len ? ", " : "", att);
	}
	// Rows of the live table whose key the window did not touch. A NOT IN over the (NOT NULL) key
	// is a hashed subplan computed once, a filter on the scan: the planner can still reach the table
	// by index from the other inputs (an anti-join would fix the join order, and a correlated
	// NOT EXISTS would consolidate the window again for every row). kept_ok carries the same probe as
	// a column, for conditions the planner may evaluate before the filter (GuardMixedStateQuals).
	char *untouched = psprintf("(ROW(%s) NOT IN (SELECT %s FROM (%s) k(%s\"__pgt_cw\")))", live_key.data,
	                           delta_key.data, delta, names);
	char *live = LiveRelation(rte);
	char *cols = RelationColumns(rte->relid, "a", false);
	st.kept = psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s WHERE %s", cols, live, untouched);
	st.kept_ok = psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\", %s AS \"__pgt_ok\" FROM %s WHERE %s", cols,
	                      untouched, live, untouched);
	st.before = psprintf("SELECT * FROM (%s) k0 UNION ALL SELECT * FROM (%s) n0", st.kept, st.neg);
	st.before_ok = psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\", %s AS \"__pgt_ok\" FROM %s "
	                        "UNION ALL SELECT n0.*, true FROM (%s) n0",
	                        cols, untouched, live, st.neg);
	return st;
}

// Consistent-state delta of an inner join whose inputs all have keys:
//   Δ = Σi K<i ⋈ Pi ⋈ X₁>i  −  Σi K<i ⋈ Ni ⋈ X₀>i
// where Pi / Ni are the rows the window inserted / deleted (net), Ki the rows it left alone (X₁ minus
// the keys it touched) and X₀ = K ∪ N. Every term joins rows of one state only (the new one, or the
// old one), so no expression of the query is evaluated on a combination of rows that never coexisted
// (the plain telescoping sum pairs new rows of one input with old rows of another).
char *
ConsistentJoinDelta(Query *q, List *inputs, Oid mul) {
	int n = list_length(inputs);
	char **pos = static_cast<char **>(palloc(sizeof(char *) * n));
	char **neg = static_cast<char **>(palloc(sizeof(char *) * n));
	char **kept = static_cast<char **>(palloc(sizeof(char *) * n));
	char **kept_ok = static_cast<char **>(palloc(sizeof(char *) * n));
	char **before_ok = static_cast<char **>(palloc(sizeof(char *) * n));
	char **before = static_cast<char **>(palloc(sizeof(char *) * n));
	for (int i = 0; i < n; i++) {
		KeyedStates st = KeyedStatesOf(rt_fetch(list_nth_int(inputs, i), q->rtable));
		before_ok[i] = st.before_ok;
		before[i] = st.before;
		pos[i] = st.pos;
		neg[i] = st.neg;
		kept[i] = st.kept;
		kept_ok[i] = st.kept_ok;
	}
	StringInfoData s;
	initStringInfo(&s);
	for (int side = 0; side < 2; side++) {
		for (int i = 0; i < n; i++) {
			Query *term = static_cast<Query *>(copyObject(q));
			term->sortClause = NIL;
			term->targetList = VisibleTargets(term->targetList);
			Expr *weight = nullptr;
			Bitmapset *kept_rels = nullptr;
			for (int j = 0; j < n; j++) {
				if (side == 0 && j > i)
					continue; // the live table as it is now
				Index rtindex = list_nth_int(inputs, j);
				RangeTblEntry *rte = rt_fetch(rtindex, term->rtable);
				// Terms of the old state pair the live table's unchanged rows (kept) with old rows;
				// before the anti-join drops them, changed live rows would meet old ones.
				// The old state of a later input: for small windows the live table flagged (scanned by index
				// inside the join); for large ones a subquery of its own (hashed once, rather than its
				// deleted rows iterated again for every outer row).
				bool flagged = j > i && !g_large_windows;
				bool guarded = side == 1 && (j < i || flagged);
				const char *sql = j < i ? (guarded ? kept_ok[j] : kept[j])
				                  : j == i ? (side == 0 ? pos[j] : neg[j])
				                  : flagged ? before_ok[j] : before[j];
				ReplaceWithWeighted(rte, sql, guarded);
				if (guarded)
					kept_rels = bms_add_member(kept_rels, static_cast<int>(rtindex));
				if (flagged) // before_ok: the flag filters the live arm
					AddConjunct(term, reinterpret_cast<Expr *>(makeVar(rtindex, static_cast<AttrNumber>(list_length(
					                                                                    rte->eref->colnames)),
					                                                    BOOLOID, -1, InvalidOid, 0)));
				Expr *w = WeightVar(rtindex, rte);
				weight = weight ? make_opclause(mul, INT8OID, false, weight, w, InvalidOid, InvalidOid) : w;
			}
			GuardMixedStateQuals(term, kept_rels);
			if (side == 1)
				weight = make_opclause(mul, INT8OID, false, weight, Int8Const(-1), InvalidOid, InvalidOid);
			AppendTerm(&s, term, weight);
		}
	}
	return s.data;
}

// FROM items that are not inputs of their own: functions and VALUES (expanded per row of the inputs
// they refer to, or constant) and LATERAL subqueries (handled like subqueries in expressions).
bool
IsDependentItem(RangeTblEntry *rte) {
	return rte->rtekind == RTE_FUNCTION || rte->rtekind == RTE_VALUES || rte->rtekind == RTE_TABLEFUNC ||
	       (rte->rtekind == RTE_SUBQUERY && rte->lateral);
}

List *
DeltaInputs(Query *q) {
	List *all = NIL;
	CollectJoinInputs(reinterpret_cast<Node *>(q->jointree), &all);
	List *out = NIL;
	ListCell *lc;
	foreach (lc, all)
		if (!IsDependentItem(rt_fetch(lfirst_int(lc), q->rtable)))
			out = lappend_int(out, lfirst_int(lc));
	return out;
}

// The LATERAL subqueries of a level, as EXISTS subqueries (for their probes).
List *
LateralBodies(Query *q) {
	List *all = NIL;
	CollectJoinInputs(reinterpret_cast<Node *>(q->jointree), &all);
	List *out = NIL;
	ListCell *lc;
	foreach (lc, all) {
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), q->rtable);
		if (rte->rtekind == RTE_SUBQUERY && rte->lateral) {
			SubLink *sl = makeNode(SubLink);
			sl->subLinkType = EXISTS_SUBLINK;
			sl->subselect = reinterpret_cast<Node *>(copyObject(rte->subquery));
			sl->location = -1;
			out = lappend(out, sl);
		}
	}
	return out;
}

// True if every input is a base table with a key whose change window can be consolidated.
bool
InputsKeyed(Query *q, List *inputs) {
	ListCell *lc;
	foreach (lc, inputs) {
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), q->rtable);
		if (rte->rtekind != RTE_RELATION || !AllColumnsGroupable(rte->relid) || RelationKey(rte->relid) == NIL)
			return false;
	}
	return true;
}

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
	char *buffer = psprintf("pgtrickle_changes.%s", quote_identifier(psprintf("changes_%u", rte->relid)));
	return psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s b WHERE b.\"__pgt_op\" "
	                "OPERATOR(pg_catalog.<>) 'T' AND %s",
	                RelationColumns(rte->relid, "b", true), buffer, BufferWindowPredicate("b").c_str());
}

// One row if any of the tables changed in the window (a coarse, uncorrelated probe).
char *
AnyChangeSql(List *relids) {
	StringInfoData s;
	initStringInfo(&s);
	ListCell *lc;
	foreach (lc, relids) {
		appendStringInfo(&s, "%sSELECT 1 FROM pgtrickle_changes.%s b WHERE %s", s.len ? " UNION ALL " : "",
		                 quote_identifier(psprintf("changes_%u", lfirst_oid(lc))), BufferWindowPredicate("b").c_str());
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
		// consolidated window would otherwise be computed again for every outer row.
		KeyedStates st = KeyedStatesOf(rte);
		return psprintf("SELECT * FROM (%s) k0 UNION ALL SELECT u.* FROM pg_catalog.unnest((SELECT pg_catalog.array_agg(n) "
		                "FROM (%s) n)) AS u(%s)",
		                st.kept, st.neg, PositionalColumnDefs(rte->relid));
	}
	int ncols = list_length(rte->eref->colnames);
	char *names = PositionalNames(ncols);
	char *delta = BaseDeltaSql(rte);
	char *cols = RelationColumns(rte->relid, "a", false);
	char *live = LiveRelation(rte);
	char *same = psprintf("ROW(%s) IS NOT DISTINCT FROM ROW(%s)", cols, PositionalRefs("d", ncols));
	// Rows equal to no changed row, plus each changed row as often as the old state held it.
	return psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s WHERE NOT EXISTS (SELECT 1 FROM (%s) d(%s\"__pgt_cw\") "
	                "WHERE %s) UNION ALL SELECT %s, 1::pg_catalog.int8 FROM (SELECT d.*, (SELECT pg_catalog.count(*) FROM %s "
	                "WHERE %s) OPERATOR(pg_catalog.-) d.\"__pgt_cw\" AS \"__pgt_n\" FROM (%s) d(%s\"__pgt_cw\")) v, "
	                "pg_catalog.generate_series(1::pg_catalog.int8, v.\"__pgt_n\") g",
	                cols, live, delta, names, same, PositionalRefs("v", ncols), live, same, delta, names);
}

struct SublinkCollect {
	List *sublinks;
};

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

// A subquery's body is "simple" when it reads base tables joined by inner joins, with WHERE and
// optional aggregation, more subqueries only in its WHERE/ON conditions: then its probe finds the outer
// rows a change can reach (ProbeArms). Any other body is probed coarsely (did any table it reads
// change?), which is exact too but re-evaluates every outer row when it fires.
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

// A subquery in FROM a probe can look through: tables, inner joins, WHERE, projections.
bool
IsPlainSpj(Query *q) {
	if (q->hasAggs || q->groupClause || q->havingQual || q->distinctClause || q->hasWindowFuncs || q->setOperations ||
	    q->limitCount || q->limitOffset || q->hasTargetSRFs || q->hasSubLinks || q->cteList || q->rowMarks)
		return false;
	BuildCtx scratch = ScratchCtx();
	if (!CheckJoinTree(&scratch, reinterpret_cast<Node *>(q->jointree)))
		return false;
	ListCell *lc;
	foreach (lc, q->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_SUBQUERY ? !IsPlainSpj(rte->subquery)
		                                 : rte->rtekind != RTE_RELATION && rte->rtekind != RTE_JOIN && rte->rtekind != RTE_RESULT)
			return false;
	}
	return true;
}

bool
BodyIsSimple(Query *body) {
	if (body->setOperations || body->cteList || body->hasWindowFuncs || body->hasTargetSRFs || body->limitCount ||
	    body->limitOffset || body->groupingSets || body->hasDistinctOn || body->rowMarks)
		return false;
	if (ContainsSublink(reinterpret_cast<Node *>(body->targetList)) || ContainsSublink(body->havingQual))
		return false;
	BuildCtx scratch = ScratchCtx();
	if (!CheckJoinTree(&scratch, reinterpret_cast<Node *>(body->jointree)))
		return false;
	ListCell *lc;
	foreach (lc, body->rtable) {
		auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
		if (rte->rtekind == RTE_JOIN || rte->rtekind == RTE_GROUP || rte->rtekind == RTE_RESULT)
			continue;
		if (rte->rtekind == RTE_SUBQUERY ? !IsPlainSpj(rte->subquery) : rte->rtekind != RTE_RELATION)
			return false;
	}
	return true;
}

struct RelCheckCtx {
	BuildCtx *ctx;
	List *relids; // every table read (Oid list, with repeats removed)
	bool ok;
};

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

struct ParamSubstCtx {
	List *targets; // the subquery's target list
};

Node *
SublinkParamMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	if (IsA(node, Param) && reinterpret_cast<Param *>(node)->paramkind == PARAM_SUBLINK) {
		auto *c = static_cast<ParamSubstCtx *>(context);
		TargetEntry *tle = get_tle_by_resno(c->targets, reinterpret_cast<Param *>(node)->paramid);
		return reinterpret_cast<Node *>(copyObject(tle->expr));
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
	ParamSubstCtx pc{body->targetList};
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

List *ProbeArms(SubLink *sl);

// Probe queries for one subquery: each is a copy of its body (aggregation removed, output 1) over
// changed rows; together they find every changed row that can change its result for an outer row.
List *
ProbeArms(SubLink *sl) {
	if (!BodyIsSimple(reinterpret_cast<Query *>(sl->subselect)))
		return list_make1(ParseGenerated(AnyChangeSql(RelationsRead(reinterpret_cast<Query *>(sl->subselect)))));
	Expr *row_cond = SublinkRowCondition(sl);
	if (row_cond) { // in terms of the body's inputs (grouping and join alias columns resolved)
		auto *orig = reinterpret_cast<Query *>(sl->subselect);
		Node *c = reinterpret_cast<Node *>(row_cond);
		if (orig->hasGroupRTE)
			c = flatten_group_exprs(nullptr, orig, c);
		row_cond = reinterpret_cast<Expr *>(flatten_join_alias_vars(nullptr, orig, c));
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
			foreach (lc4, ProbeArms(static_cast<SubLink *>(lfirst(lc3)))) {
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
		if (rte->rtekind == RTE_RELATION)
			ReplaceWithRows(rte, OldRowsSql(rte));
		else if (rte->rtekind == RTE_SUBQUERY)
			OldStateInQuery(rte->subquery);
	}
	(void)query_tree_walker(q, OldStateWalker, nullptr, QTW_IGNORE_RANGE_TABLE | QTW_IGNORE_CTE_SUBQUERIES);
}

// The second bracket above: Q(L₀; S₁) − Q(L₀; S₀) over the probed rows.
char *
SublinkStateDelta(Query *q, List *inputs, Oid mul, char **old_state) {
	List *sublinks = LevelSublinks(q);
	List *arms = NIL;
	ListCell *lc;
	sublinks = list_concat(sublinks, LateralBodies(q));
	foreach (lc, sublinks)
		arms = list_concat(arms, ProbeArms(static_cast<SubLink *>(lfirst(lc))));
	int n = list_length(inputs);
	StringInfoData s;
	initStringInfo(&s);
	for (int k = 0; k < list_length(arms); k++) {
		List *probe = list_make1(MakeExists(static_cast<Query *>(copyObject(list_nth(arms, k)))));
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
			// An uncorrelated x IN (subquery) among the conditions is evaluated once, as a hashed
			// subplan, rather than pulled up into a semi-join the planner may run again for every
			// probed row (it underestimates how many the probe lets through).
			ListCell *qc;
			foreach (qc, quals) {
				Node *c = static_cast<Node *>(lfirst(qc));
				if (IsA(c, SubLink) && reinterpret_cast<SubLink *>(c)->subLinkType == ANY_SUBLINK &&
				    !contain_vars_of_level(reinterpret_cast<SubLink *>(c)->subselect, 1)) {
					BooleanTest *bt = makeNode(BooleanTest);
					bt->arg = reinterpret_cast<Expr *>(c);
					bt->booltesttype = IS_TRUE;
					bt->location = -1;
					lfirst(qc) = bt;
				}
			}
			quals = list_concat(quals, static_cast<List *>(copyObject(probe)));
			term->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(quals));
			Expr *sign = Int8Const(side == 0 ? 1 : -1);
			AppendTerm(&s, term, weight ? make_opclause(mul, INT8OID, false, weight, sign, InvalidOid, InvalidOid) : sign);
		}
	}
	return s.data;
}

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
	sub->jointree = makeFromExpr(list_make1(copyObject(pad)), LevelUpMutator(static_cast<Node *>(copyObject(aj->quals)), &lu));
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
			auto *wc = static_cast<WindowClause *>(lfirst(lc));
			List *exprs = NIL;
			ListCell *pc;
			foreach (pc, wc->partitionClause)
				exprs = lappend(exprs, get_sortgroupclause_expr(static_cast<SortGroupClause *>(lfirst(pc)), q->targetList));
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

// The subquery's input (FROM, WHERE) producing its keys.
Query *
RecomputeInput(Query *q, List *keys) {
	Query *input = static_cast<Query *>(copyObject(q));
	input->hasAggs = false;
	input->groupClause = NIL;
	input->havingQual = nullptr;
	input->distinctClause = NIL;
	input->hasDistinctOn = false;
	input->hasWindowFuncs = false;
	input->windowClause = NIL;
	input->sortClause = NIL;
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
	List *tl = KeyTargets(keys, 1);
	ListCell *lc;
	int nvisible = 0;
	List *junk = NIL;
	foreach (lc, full->targetList) {
		auto *tle = static_cast<TargetEntry *>(lfirst(lc));
		if (tle->resjunk) {
			junk = lappend(junk, tle);
		} else {
			tl = lappend(tl, tle);
			nvisible++;
		}
	}
	tl = list_concat(tl, junk);
	int resno = 1;
	foreach (lc, tl)
		static_cast<TargetEntry *>(lfirst(lc))->resno = resno++;
	full->targetList = tl;
	Query *old = static_cast<Query *>(copyObject(full));
	OldStateInQuery(old);
	int nkeys = list_length(keys);
	return psprintf("%s\nUNION ALL\n%s", KeyedPart(full, nkeys, nvisible, touched, 1),
	                KeyedPart(old, nkeys, nvisible, touched, -1));
}

// Delta of a select-project-join level (or UNION ALL), producing its visible columns + "__pgt_w".
char *
DeltaOfQuery(Query *q) {
	if (q->setOperations) {
		List *leaves = NIL;
		CollectSetopLeaves(q->setOperations, &leaves);
		StringInfoData s;
		initStringInfo(&s);
		ListCell *lc;
		foreach (lc, leaves) {
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), q->rtable);
			if (s.len > 0)
				appendStringInfoString(&s, "\nUNION ALL\n");
			appendStringInfo(&s, "SELECT * FROM (%s) AS u", DeltaOfQuery(rte->subquery));
		}
		return s.data;
	}

	if (NeedsKeyedRecompute(q))
		return KeyedRecomputeDelta(q);
	if (FindOuterJoin(reinterpret_cast<Node *>(q->jointree))) {
		StringInfoData s;
		initStringInfo(&s);
		ListCell *lc;
		foreach (lc, OuterJoinArms(FlattenJoinAliases(q))) {
			char *arm = DeltaOfQuery(static_cast<Query *>(lfirst(lc)));
			if (!arm[0])
				continue;
			if (s.len > 0)
				appendStringInfoString(&s, "\nUNION ALL\n");
			appendStringInfoString(&s, arm);
		}
		return s.data;
	}
	q = FlattenInnerJoins(q);
	List *inputs = DeltaInputs(q);
	int n = list_length(inputs);
	Oid mul = OpernameGetOprid(list_make1(makeString(pstrdup("*"))), INT8OID, INT8OID);
	bool keyed = n > 1 && InputsKeyed(q, inputs);
	StringInfoData s;
	initStringInfo(&s);
	char **old_state = static_cast<char **>(palloc(sizeof(char *) * (n + 1)));
	if (keyed) {
		appendStringInfoString(&s, ConsistentJoinDelta(q, inputs, mul));
		for (int i = 0; i < n; i++)
			old_state[i] = KeyedStatesOf(rt_fetch(list_nth_int(inputs, i), q->rtable)).before;
	} else {
		// Each input's delta and post-state, generated once.
		char **delta = static_cast<char **>(palloc(sizeof(char *) * (n + 1)));
		char **post = static_cast<char **>(palloc(sizeof(char *) * (n + 1)));
		for (int i = 0; i < n; i++) {
			RangeTblEntry *rte = rt_fetch(list_nth_int(inputs, i), q->rtable);
			delta[i] = InputDeltaSql(rte);
			post[i] = InputPostSql(rte);
			old_state[i] = PreStateSql(post[i], delta[i], list_length(rte->eref->colnames));
		}
		for (int i = 0; i < n; i++) {
			Query *term = static_cast<Query *>(copyObject(q));
			term->sortClause = NIL;
			term->targetList = VisibleTargets(term->targetList);
			Expr *weight = nullptr;
			for (int j = i; j < n; j++) {
				Index rtindex = list_nth_int(inputs, j);
				RangeTblEntry *rte = rt_fetch(rtindex, term->rtable);
				ReplaceWithWeighted(rte, j == i ? delta[j] : old_state[j]);
				Expr *w = WeightVar(rtindex, rte);
				weight = weight ? make_opclause(mul, INT8OID, false, weight, w, InvalidOid, InvalidOid) : w;
			}
			AppendTerm(&s, term, weight);
		}
	}
	if (LevelSublinks(q) != NIL || LateralBodies(q) != NIL) {
		char *sub = SublinkStateDelta(q, inputs, mul, old_state);
		if (s.len > 0 && sub[0])
			appendStringInfoString(&s, "\nUNION ALL\n");
		appendStringInfoString(&s, sub);
	}
	if (s.len == 0) {
		// Nothing here can change (only constants, VALUES or functions): an empty delta, typed.
		Query *term = static_cast<Query *>(copyObject(q));
		term->sortClause = NIL;
		term->targetList = VisibleTargets(term->targetList);
		term->jointree->quals = reinterpret_cast<Node *>(makeBoolConst(false, false));
		AppendTerm(&s, term, Int8Const(0));
	}
	return s.data;
}

// --- Aggregates ------------------------------------------------------------------------------------

struct AggCollect {
	List *aggs; // distinct Aggref nodes
};

bool
CollectAggsWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Aggref)) {
		auto *c = static_cast<AggCollect *>(context);
		ListCell *lc;
		foreach (lc, c->aggs)
			if (equal(lfirst(lc), node))
				return false;
		c->aggs = lappend(c->aggs, node);
		return false; // aggregates do not nest
	}
	return expression_tree_walker(node, CollectAggsWalker, context);
}

struct PlaceholderCtx {
	List *group_exprs;
	List *aggs;
};

Param *
MakePlaceholder(int id, Node *like) {
	Param *p = makeNode(Param);
	p->paramkind = PARAM_EXTERN;
	p->paramid = id;
	p->paramtype = exprType(like);
	p->paramtypmod = exprTypmod(like);
	p->paramcollid = exprCollation(like);
	p->location = -1;
	return p;
}

Node *
PlaceholderMutator(Node *node, void *context) {
	if (node == nullptr)
		return nullptr;
	auto *c = static_cast<PlaceholderCtx *>(context);
	int j = 1;
	ListCell *lc;
	foreach (lc, c->group_exprs) {
		if (equal(lfirst(lc), node))
			return reinterpret_cast<Node *>(MakePlaceholder(kGroupParamBase + j, node));
		j++;
	}
	if (IsA(node, Aggref)) {
		int k = 1;
		foreach (lc, c->aggs) {
			if (equal(lfirst(lc), node))
				return reinterpret_cast<Node *>(MakePlaceholder(kAggParamBase + k, node));
			k++;
		}
	}
	return expression_tree_mutator(node, PlaceholderMutator, context);
}

// Deparses an expression without any FROM (only placeholders and constants inside).
char *
DeparseStandalone(Expr *expr) {
	Query *q = makeNode(Query);
	q->commandType = CMD_SELECT;
	q->querySource = QSRC_ORIGINAL;
	q->canSetTag = true;
	q->jointree = makeFromExpr(NIL, nullptr);
	q->targetList = list_make1(makeTargetEntry(expr, 1, pstrdup("__pgt_expr"), false));
	char *sql = Deparse(q);
	while (*sql == ' ' || *sql == '\n')
		sql++;
	const char *prefix = "SELECT ";
	const char *suffix = " AS __pgt_expr";
	size_t len = strlen(sql);
	size_t plen = strlen(prefix);
	size_t slen = strlen(suffix);
	if (len < plen + slen || strncmp(sql, prefix, plen) != 0 || strcmp(sql + len - slen, suffix) != 0)
		elog(ERROR, "unexpected deparse output: %s", sql);
	return pnstrdup(sql + plen, len - plen - slen);
}

// --- Common table expressions -----------------------------------------------------------------------

// Non-recursive CTEs are inlined: every reference becomes a subquery in FROM holding a copy of the
// CTE's query (for the immutable queries a stream table allows, a CTE's result does not depend on
// whether it is evaluated once or per reference). WITH RECURSIVE stays as it is (reported
// unsupported later).
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
		if (owner->hasRecursive)
			continue;
		ListCell *cl;
		foreach (cl, owner->cteList) {
			auto *cte = static_cast<CommonTableExpr *>(lfirst(cl));
			if (strcmp(cte->ctename, rte->ctename) != 0 || !IsA(cte->ctequery, Query))
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
	if (!q->hasRecursive)
		q->cteList = NIL;
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

struct AggLevelSublinks {
	List *sublinks;
};

// Subqueries of an aggregating level outside aggregate arguments.
bool
AggLevelSublinksWalker(Node *node, void *context) {
	if (node == nullptr || IsA(node, Aggref) || IsA(node, Query))
		return false;
	if (IsA(node, SubLink)) {
		auto *c = static_cast<AggLevelSublinks *>(context);
		c->sublinks = lappend(c->sublinks, node);
		return AggLevelSublinksWalker(reinterpret_cast<SubLink *>(node)->testexpr, context);
	}
	return expression_tree_walker(node, AggLevelSublinksWalker, context);
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

// --- The whole plan ----------------------------------------------------------------------------------

struct RawAgg {
	int kind; // AggKind, or -1 for "needs rescan"
	Node *arg;
	Node *filter;
	Oid argtype;
	char *result_type; // format_type of the aggregate's result
};

struct RawPlan {
	int kind;            // DvmKind
	List *visible_names; // char*
	List *visible_types; // char*
	List *gk_types;      // char*
	List *aggs;          // RawAgg*
	List *visible_exprs; // char* (Grouped: deparsed with placeholders)
	char *input_sql;
	char *delta_sql;
	const char *unsupported;
	char *tree;
	char *strategy;
};

const char *
TypeSql(Oid type, int32 typmod) {
	return format_type_with_typemod(type, typmod);
}

bool
Hashable(Oid type) {
	TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_HASH_EXTENDED_PROC | TYPECACHE_EQ_OPR);
	return OidIsValid(tc->hash_extended_proc) && OidIsValid(tc->eq_opr);
}

// Classifies an aggregate for algebraic maintenance: returns the AggKind or -1.
int
ClassifyAgg(Aggref *a, Oid *argtype) {
	*argtype = InvalidOid;
	if (a->aggdistinct || a->aggorder || a->agglevelsup != 0 || a->aggkind != AGGKIND_NORMAL ||
	    a->aggsplit != AGGSPLIT_SIMPLE)
		return -1;
	if (get_func_namespace(a->aggfnoid) != PG_CATALOG_NAMESPACE)
		return -1;
	char *name = get_func_name(a->aggfnoid);
	if (strcmp(name, "count") == 0)
		return a->aggstar ? static_cast<int>(AggKind::CountStar) : static_cast<int>(AggKind::Count);
	if ((strcmp(name, "min") == 0 || strcmp(name, "max") == 0) && list_length(a->args) == 1) {
		*argtype = exprType(reinterpret_cast<Node *>(linitial_node(TargetEntry, a->args)->expr));
		return strcmp(name, "min") == 0 ? static_cast<int>(AggKind::Min) : static_cast<int>(AggKind::Max);
	}
	if ((strcmp(name, "sum") == 0 || strcmp(name, "avg") == 0) && list_length(a->args) == 1) {
		Oid t = exprType(reinterpret_cast<Node *>(linitial_node(TargetEntry, a->args)->expr));
		if (t == INT2OID || t == INT4OID || t == INT8OID || t == NUMERICOID) {
			*argtype = t;
			return strcmp(name, "sum") == 0 ? static_cast<int>(AggKind::Sum) : static_cast<int>(AggKind::Avg);
		}
	}
	return -1;
}

void
BuildRawPlan(const char *sql, RawPlan *out) {
	BuildCtx ctx;
	ctx.unsupported = nullptr;
	initStringInfo(&ctx.tree);

	List *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Query *analysed = parse_analyze_fixedparams(linitial_node(RawStmt, raw), sql, nullptr, 0, nullptr);
	List *rewritten = QueryRewrite(analysed);
	Query *q = InlineCtes(linitial_node(Query, rewritten));
	if (char *rewritten_sql = RewriteSetops(q)) {
		BuildRawPlan(rewritten_sql, out);
		return;
	}
	if (q->groupingSets && !q->setOperations && !contain_mutable_functions(reinterpret_cast<Node *>(q))) {
		if (SublinkOutsideAggs(reinterpret_cast<Node *>(q->targetList), nullptr) || SublinkOutsideAggs(q->havingQual, nullptr) ||
		    q->hasWindowFuncs || q->distinctClause || q->hasTargetSRFs) {
			out->unsupported = "grouping sets together with subqueries in the select list or HAVING, window functions, "
			                   "DISTINCT or set-returning functions are not maintained differentially yet";
			return;
		}
		BuildRawPlan(RewriteGroupingSets(q), out);
		return;
	}

	List *visible = VisibleTargets(q->targetList);
	out->visible_names = NIL;
	out->visible_types = NIL;
	ListCell *lc;
	foreach (lc, visible) {
		auto *tle = static_cast<TargetEntry *>(lfirst(lc));
		Node *e = reinterpret_cast<Node *>(tle->expr);
		out->visible_names = lappend(out->visible_names, pstrdup(tle->resname));
		out->visible_types = lappend(out->visible_types, pstrdup(TypeSql(exprType(e), exprTypmod(e))));
	}
	out->unsupported = nullptr;
	out->gk_types = NIL;
	out->aggs = NIL;
	out->visible_exprs = NIL;

	if (contain_mutable_functions(reinterpret_cast<Node *>(q))) {
		out->unsupported = "the query calls a function that is not immutable (its result can change without any "
		                   "change to the sources, e.g. now())";
		return;
	}

	bool grouped = q->hasAggs || q->groupClause != NIL || q->havingQual != nullptr;
	bool distinct = q->distinctClause != NIL && !q->hasDistinctOn;
	bool union_distinct = false;
	if (q->setOperations && !IsUnionAllTree(q->setOperations)) {
		auto *top = reinterpret_cast<SetOperationStmt *>(q->setOperations);
		// UNION (distinct) at the top of a UNION ALL tree = DISTINCT over the UNION ALL.
		if (top->op == SETOP_UNION && !top->all && IsUnionAllTree(top->larg) && IsUnionAllTree(top->rarg)) {
			union_distinct = true;
			q = static_cast<Query *>(copyObject(q));
			reinterpret_cast<SetOperationStmt *>(q->setOperations)->all = true;
		}
	}

	if (q->limitCount || q->limitOffset) {
		// ORDER BY ... LIMIT k [OFFSET m] (top-k): the query without its LIMIT (P) is maintained as
		// usual; the result is recomputed (Rescan without keys) only when a row of P's delta ranks
		// among the first m + k rows of the old top-k together with the delta rows (delta rows first
		// among equals). If none does, every deleted row was after the old k-th row and every new
		// row sorts after it too, so the first m + k rows stay the same.
		if (q->sortClause == NIL) {
			out->unsupported = "LIMIT/OFFSET without ORDER BY is not maintained differentially (its rows are not "
			                   "determined)";
			return;
		}
		if (q->limitOption != LIMIT_OPTION_COUNT) {
			out->unsupported = "FETCH ... WITH TIES is not maintained differentially yet";
			return;
		}
		int64 window = 0;
		for (Node *lim : {q->limitCount, q->limitOffset}) {
			if (lim == nullptr)
				continue;
			lim = eval_const_expressions(nullptr, lim);
			if (!IsA(lim, Const) || reinterpret_cast<Const *>(lim)->constisnull) {
				out->unsupported = "LIMIT/OFFSET must be constants to be maintained differentially";
				return;
			}
			window += DatumGetInt64(reinterpret_cast<Const *>(lim)->constvalue);
		}
		if (q->limitCount == nullptr) {
			out->unsupported = "OFFSET without LIMIT is not maintained differentially yet";
			return;
		}
		Query *p = static_cast<Query *>(copyObject(q));
		p->limitCount = nullptr;
		p->limitOffset = nullptr;
		p->sortClause = NIL;
		// Keep every entry (GROUP BY refers to them); the sort keys become extra output columns.
		List *ptl = p->targetList;
		int nvis = list_length(VisibleTargets(ptl));
		StringInfoData order;
		initStringInfo(&order);
		int s = 1;
		foreach (lc, q->sortClause) {
			auto *sgc = static_cast<SortGroupClause *>(lfirst(lc));
			TargetEntry *tle = get_sortgroupclause_tle(sgc, q->targetList);
			Oid opfamily, opcintype;
			CompareType cmp;
			if (!get_ordering_op_properties(sgc->sortop, &opfamily, &opcintype, &cmp)) {
				out->unsupported = "ORDER BY ... USING a non-btree operator is not maintained differentially";
				return;
			}
			ptl = lappend(ptl, makeTargetEntry(static_cast<Expr *>(copyObject(tle->expr)), list_length(ptl) + 1,
			                                   psprintf("__pgt_s_%d", s), false));
			appendStringInfo(&order, "x.\"__pgt_c%d\" %s NULLS %s, ", nvis + s, cmp == COMPARE_GT ? "DESC" : "ASC",
			                 sgc->nulls_first ? "FIRST" : "LAST");
			s++;
		}
		p->targetList = ptl;
		int ncols = list_length(VisibleTargets(ptl));
		TreeLine(&ctx, 0, psprintf("TopK (LIMIT window %lld: recomputed when a change ranks inside it)",
		                           static_cast<long long>(window)));
		if (!CheckDifferentiable(&ctx, p, 1)) {
			out->unsupported = ctx.unsupported;
			return;
		}
		if (NeedsKeyedRecompute(p)) {
			// Over aggregates, DISTINCT or windows the old top-k would be recomputed from the old state
			// of every table (several times a FULL refresh): the result is recomputed instead whenever a
			// table it reads changed.
			out->kind = static_cast<int>(DvmKind::Rescan);
			out->input_sql = Deparse(q);
			out->delta_sql = AnyChangeSql(RelationsRead(q));
			out->strategy = pstrdup("top-k over aggregates, DISTINCT or windows: recomputed when a table it reads changes");
			out->tree = ctx.tree.data;
			return;
		}
		char *names = PositionalNames(ncols);
		char *delta = DeltaOfQuery(p);
		Query *old = static_cast<Query *>(copyObject(p));
		OldStateInQuery(old);
		// ORDER BY over positional columns (the same order, delta rows first among equals).
		char *order_old = pstrdup(order.data);
		order_old[strlen(order_old) - 2] = '\0';
		char *alias = pstrdup(names);
		alias[strlen(alias) - 2] = '\0';
		char *old_top = psprintf("SELECT * FROM (%s) x(%s) ORDER BY %s LIMIT %lld", Deparse(old), alias, order_old,
		                         static_cast<long long>(window));
		out->delta_sql = psprintf(
		    "SELECT 1 AS \"__pgt_one\" FROM (SELECT x.\"__pgt_d\", pg_catalog.row_number() OVER (ORDER BY %sx.\"__pgt_d\" DESC) "
		    "AS \"__pgt_rn\" FROM (SELECT o.*, false AS \"__pgt_d\" FROM (%s) o UNION ALL SELECT %s, true FROM (%s) d(%s\"__pgt_w\")) "
		    "x) y WHERE y.\"__pgt_d\" AND y.\"__pgt_rn\" OPERATOR(pg_catalog.<=) %lld",
		    order.data, old_top, PositionalRefs("d", ncols), delta, names, static_cast<long long>(window));
		out->kind = static_cast<int>(DvmKind::Rescan);
		out->input_sql = Deparse(q);
		out->strategy = pstrdup("top-k: recomputed when a change ranks inside the LIMIT window");
		out->tree = ctx.tree.data;
		return;
	}
	if (q->hasTargetSRFs && (grouped || distinct || union_distinct || q->hasWindowFuncs)) {
		out->unsupported = "set-returning functions in the select list of a query with aggregates, DISTINCT or window "
		                   "functions are not maintained differentially yet";
		return;
	}
	if ((q->hasWindowFuncs || q->hasDistinctOn) && !grouped && !distinct && !union_distinct && !q->setOperations) {
		// Window functions / DISTINCT ON: rows depend only on the input rows with the same keys (the
		// PARTITION BY expressions every window shares, the DISTINCT ON expressions), so the keys the
		// changes touch are recomputed (Rescan keyed by them).
		List *common = NIL;
		if (const char *why = RecomputeKeys(q, &common)) {
			out->unsupported = why;
			return;
		}
		foreach (lc, common) {
			Node *e = static_cast<Node *>(lfirst(lc));
			out->gk_types = lappend(out->gk_types, pstrdup(TypeSql(exprType(e), exprTypmod(e))));
		}
		Query *input = RecomputeInput(q, common);
		TreeLine(&ctx, 0, psprintf("%s (recompute touched keys; %d key(s))",
		                           q->hasWindowFuncs ? "Window" : "DistinctOn", list_length(common)));
		if (!CheckSpjLevel(&ctx, input, 1, false)) {
			out->unsupported = ctx.unsupported;
			return;
		}
		// The query with its keys as extra output columns, placed first so that the re-parsed
		// PARTITION BY / DISTINCT ON refers to them (a filter on them can then be pushed below).
		Query *full = static_cast<Query *>(copyObject(q));
		if (!full->hasDistinctOn)
			full->sortClause = NIL;
		List *ntl = KeyTargets(common, 1);
		foreach (lc, full->targetList)
			ntl = lappend(ntl, lfirst(lc));
		int resno = 1;
		foreach (lc, ntl)
			static_cast<TargetEntry *>(lfirst(lc))->resno = resno++;
		full->targetList = ntl;
		out->kind = static_cast<int>(DvmKind::Rescan);
		out->input_sql = Deparse(full);
		out->delta_sql = DeltaOfQuery(input);
		out->strategy = pstrdup(q->hasWindowFuncs ? "window functions: touched partitions recomputed from the sources"
		                                          : "DISTINCT ON: touched keys recomputed from the sources");
		out->tree = ctx.tree.data;
		return;
	}

	if (!grouped && !distinct && !union_distinct) {
		// Bag of rows.
		TreeLine(&ctx, 0, q->setOperations ? "Result (bag of rows)" : "Project (bag of rows)");
		if (!CheckSpjLevel(&ctx, q, 1, false)) {
			out->unsupported = ctx.unsupported;
			return;
		}
		foreach (lc, visible) {
			auto *tle = static_cast<TargetEntry *>(lfirst(lc));
			if (!Hashable(exprType(reinterpret_cast<Node *>(tle->expr)))) {
				out->unsupported = psprintf("column \"%s\" has a type without hashing/equality support", tle->resname);
				return;
			}
		}
		out->kind = static_cast<int>(DvmKind::Bag);
		out->input_sql = Deparse(q);
		out->delta_sql = DeltaOfQuery(q);
		out->strategy = pstrdup("bag of rows: delta rows inserted/deleted by identity hash");
		out->tree = ctx.tree.data;
		return;
	}

	if (distinct || union_distinct) {
		// DISTINCT = GROUP BY every output column, tracking each row's multiplicity.
		Query *input = static_cast<Query *>(copyObject(q));
		input->distinctClause = NIL;
		input->sortClause = NIL;
		input->targetList = VisibleTargets(input->targetList);
		TreeLine(&ctx, 0, "Distinct (multiplicity per row)");
		if (!CheckSpjLevel(&ctx, input, 1, false)) {
			out->unsupported = ctx.unsupported;
			return;
		}
		int j = 1;
		foreach (lc, input->targetList) {
			auto *tle = static_cast<TargetEntry *>(lfirst(lc));
			Node *e = reinterpret_cast<Node *>(tle->expr);
			if (!Hashable(exprType(e))) {
				out->unsupported = psprintf("column \"%s\" has a type without hashing/equality support", tle->resname);
				return;
			}
			out->gk_types = lappend(out->gk_types, pstrdup(TypeSql(exprType(e), exprTypmod(e))));
			out->visible_exprs = lappend(out->visible_exprs, psprintf("$%d", kGroupParamBase + j));
			tle->resname = psprintf("__pgt_gk_%d", j);
			j++;
		}
		if (input->setOperations) {
			// Rename through a wrapper: set-operation output names come from the first arm.
			out->input_sql = Deparse(input);
			StringInfoData names;
			initStringInfo(&names);
			for (int k = 1; k < j; k++)
				appendStringInfo(&names, "%s\"__pgt_gk_%d\"", k > 1 ? ", " : "", k);
			out->input_sql = psprintf("SELECT * FROM (%s) AS u(%s)", out->input_sql, names.data);
			out->delta_sql = psprintf("SELECT * FROM (%s) AS u(%s, \"__pgt_w\")", DeltaOfQuery(input), names.data);
		} else {
			out->input_sql = Deparse(input);
			out->delta_sql = DeltaOfQuery(input);
		}
		out->kind = static_cast<int>(DvmKind::Grouped);
		out->strategy = pstrdup("distinct rows: multiplicity counter per row (__pgt_count)");
		out->tree = ctx.tree.data;
		return;
	}

	// GROUP BY / aggregates. Subqueries in the select list or HAVING (outside aggregate arguments) are
	// evaluated per group: every group is recomputed when a table they read changes.
	List *agg_level_relids = NIL;
	bool agg_level_sublinks = false;
	{
		AggLevelSublinks als{NIL};
		(void)AggLevelSublinksWalker(reinterpret_cast<Node *>(q->targetList), &als);
		(void)AggLevelSublinksWalker(q->havingQual, &als);
		foreach (lc, als.sublinks) {
			auto *body = reinterpret_cast<Query *>(static_cast<SubLink *>(lfirst(lc))->subselect);
			BuildCtx scratch = ScratchCtx();
			RelCheckCtx rc{&scratch, agg_level_relids, true};
			CheckRelationsIn(body, &rc);
			if (!rc.ok) {
				out->unsupported = scratch.unsupported;
				return;
			}
			agg_level_relids = rc.relids;
			agg_level_sublinks = true;
		}
	}
	if (q->setOperations) {
		out->unsupported = "aggregates over set operations are not maintained differentially yet";
		return;
	}
	List *group_exprs = NIL;
	foreach (lc, q->groupClause) {
		auto *sgc = static_cast<SortGroupClause *>(lfirst(lc));
		TargetEntry *tle = get_sortgroupclause_tle(sgc, q->targetList);
		Node *e = reinterpret_cast<Node *>(tle->expr);
		if (!Hashable(exprType(e))) {
			out->unsupported = psprintf("GROUP BY expression of type %s has no hashing/equality support",
			                            format_type_be(exprType(e)));
			return;
		}
		group_exprs = lappend(group_exprs, e);
		out->gk_types = lappend(out->gk_types, pstrdup(TypeSql(exprType(e), exprTypmod(e))));
	}
	AggCollect collect{NIL};
	foreach (lc, visible)
		(void)CollectAggsWalker(reinterpret_cast<Node *>(static_cast<TargetEntry *>(lfirst(lc))->expr), &collect);
	(void)CollectAggsWalker(q->havingQual, &collect);

	bool algebraic = q->havingQual == nullptr && !agg_level_sublinks;
	foreach (lc, collect.aggs) {
		auto *a = static_cast<Aggref *>(lfirst(lc));
		RawAgg *ra = static_cast<RawAgg *>(palloc0(sizeof(RawAgg)));
		ra->kind = ClassifyAgg(a, &ra->argtype);
		ra->arg = a->args ? reinterpret_cast<Node *>(linitial_node(TargetEntry, a->args)->expr) : nullptr;
		ra->filter = reinterpret_cast<Node *>(a->aggfilter);
		ra->result_type = pstrdup(TypeSql(a->aggtype, -1));
		if (ra->kind < 0)
			algebraic = false;
		out->aggs = lappend(out->aggs, ra);
	}
	// Output expressions in terms of group keys and aggregates; a remaining column reference (a column
	// functionally dependent on a grouped primary key) needs the rescan strategy.
	PlaceholderCtx pctx{group_exprs, collect.aggs};
	if (algebraic) {
		foreach (lc, visible) {
			auto *tle = static_cast<TargetEntry *>(lfirst(lc));
			Node *e = PlaceholderMutator(reinterpret_cast<Node *>(copyObject(tle->expr)), &pctx);
			if (contain_var_clause(e)) {
				algebraic = false;
				break;
			}
			out->visible_exprs = lappend(out->visible_exprs, DeparseStandalone(reinterpret_cast<Expr *>(e)));
		}
	}

	// The select-project-join input below the aggregation.
	Query *input = static_cast<Query *>(copyObject(q));
	input->hasAggs = false;
	input->groupClause = NIL;
	input->havingQual = nullptr;
	input->sortClause = NIL;
	input->distinctClause = NIL;
	List *tl = KeyTargets(group_exprs, 1);
	if (algebraic) {
		int k = 1;
		foreach (lc, out->aggs) {
			auto *ra = static_cast<RawAgg *>(lfirst(lc));
			if (ra->arg)
				tl = lappend(tl, makeTargetEntry(reinterpret_cast<Expr *>(copyObject(ra->arg)), list_length(tl) + 1,
				                                 psprintf("__pgt_arg_%d", k), false));
			if (ra->filter)
				tl = lappend(tl, makeTargetEntry(reinterpret_cast<Expr *>(copyObject(ra->filter)), list_length(tl) + 1,
				                                 psprintf("__pgt_f_%d", k), false));
			k++;
		}
	}
	input->targetList = tl != NIL ? tl : OneTarget();

	TreeLine(&ctx, 0,
	         psprintf("Aggregate (%s; %d group key(s), %d aggregate(s))",
	                  algebraic ? "algebraic" : "recompute touched groups", list_length(group_exprs),
	                  list_length(collect.aggs)));
	if (!CheckSpjLevel(&ctx, input, 1, false)) {
		out->unsupported = ctx.unsupported;
		return;
	}
	out->delta_sql = DeltaOfQuery(input);
	if (agg_level_sublinks)
		out->delta_sql = psprintf("%s\nUNION ALL\nSELECT i.*, 1::pg_catalog.int8 AS \"__pgt_w\" FROM (%s) i WHERE EXISTS (%s)",
		                          out->delta_sql, Deparse(input), AnyChangeSql(agg_level_relids));
	out->tree = ctx.tree.data;
	if (algebraic) {
		out->kind = static_cast<int>(DvmKind::Grouped);
		out->input_sql = Deparse(input);
		out->strategy = pstrdup("aggregates maintained algebraically (COUNT/SUM/AVG state per group; MIN/MAX "
		                        "recompute a group only when its extreme is deleted)");
	} else {
		// Rescan: the query itself, with its group keys as extra output columns.
		out->kind = static_cast<int>(DvmKind::Rescan);
		Query *full = static_cast<Query *>(copyObject(q));
		full->sortClause = NIL;
		List *ntl = NIL;
		List *junk = NIL;
		foreach (lc, full->targetList) {
			auto *tle = static_cast<TargetEntry *>(lfirst(lc));
			if (tle->resjunk)
				junk = lappend(junk, tle);
			else
				ntl = lappend(ntl, tle);
		}
		ntl = list_concat(ntl, KeyTargets(group_exprs, 0));
		ntl = list_concat(ntl, junk);
		int resno = 1;
		foreach (lc, ntl)
			static_cast<TargetEntry *>(lfirst(lc))->resno = resno++;
		full->targetList = ntl;
		out->input_sql = Deparse(full);
		out->strategy = pstrdup(agg_level_sublinks ? "touched groups recomputed from the sources (every group when a "
		                                             "table read by a subquery in the select list or HAVING changes)"
		                        : q->havingQual ? "touched groups recomputed from the sources (HAVING)"
		                                      : "touched groups recomputed from the sources (aggregate without an "
		                                        "algebraic rule)");
	}
}

// Replaces placeholders $98765xxxx / $98766xxxx in `expr` with state references.
std::string
SubstitutePlaceholders(const std::string &expr, const std::vector<std::string> &agg_state) {
	std::string out;
	for (size_t i = 0; i < expr.size();) {
		if (expr[i] == '$' && i + 10 <= expr.size() && expr.compare(i + 1, 4, "9876") == 0) {
			int id = std::stoi(expr.substr(i + 1, 9));
			if (id > kAggParamBase && id < kAggParamBase + 10000) {
				out += "(" + agg_state.at(static_cast<size_t>(id - kAggParamBase - 1)) + ")";
				i += 10;
				continue;
			}
			if (id > kGroupParamBase && id < kGroupParamBase + 10000) {
				out += "s." + QuoteIdent(GroupKeyColumn(static_cast<size_t>(id - kGroupParamBase)));
				i += 10;
				continue;
			}
		}
		out += expr[i++];
	}
	return out;
}

std::vector<std::string>
ToStrings(List *l) {
	std::vector<std::string> out;
	ListCell *lc;
	foreach (lc, l)
		out.emplace_back(static_cast<char *>(lfirst(lc)));
	return out;
}

DvmBuildResult
ConvertRaw(const RawPlan &raw) {
	DvmBuildResult result;
	if (raw.unsupported) {
		result.unsupported = raw.unsupported;
		return result;
	}
	DvmPlan plan;
	plan.kind = static_cast<DvmKind>(raw.kind);
	std::vector<std::string> names = ToStrings(raw.visible_names);
	std::vector<std::string> types = ToStrings(raw.visible_types);
	for (size_t i = 0; i < names.size(); i++)
		plan.visible.push_back({names[i], types[i]});
	std::vector<std::string> gk_types = ToStrings(raw.gk_types);
	for (size_t j = 0; j < gk_types.size(); j++)
		plan.group_keys.push_back({GroupKeyColumn(j + 1), gk_types[j]});
	plan.input_sql = raw.input_sql;
	plan.delta_sql = raw.delta_sql;
	plan.operator_tree = raw.tree ? raw.tree : "";
	plan.strategy = raw.strategy ? raw.strategy : "";
	if (plan.kind == DvmKind::Grouped) {
		std::vector<std::string> agg_state;
		ListCell *lc;
		size_t k = 1;
		foreach (lc, raw.aggs) {
			auto *ra = static_cast<RawAgg *>(lfirst(lc));
			AggSpec spec;
			spec.kind = static_cast<AggKind>(ra->kind);
			spec.has_filter = ra->filter != nullptr;
			bool small_int = ra->argtype == INT2OID || ra->argtype == INT4OID;
			spec.value_type = (spec.kind == AggKind::Sum || spec.kind == AggKind::Avg) && !small_int
			                      ? "pg_catalog.numeric"
			                      : "pg_catalog.int8";
			spec.arg_cast = small_int ? "pg_catalog.int8" : "pg_catalog.numeric";
			if (spec.kind == AggKind::Min || spec.kind == AggKind::Max)
				spec.value_type = ra->result_type;
			std::string a = "s." + QuoteIdent(AggValueColumn(k));
			std::string nn = "s." + QuoteIdent(AggNonNullColumn(k));
			if (spec.kind == AggKind::Avg)
				agg_state.push_back("CASE WHEN " + nn + " OPERATOR(pg_catalog.=) 0 THEN NULL ELSE " + a +
				                    "::pg_catalog.numeric OPERATOR(pg_catalog./) " + nn + "::pg_catalog.numeric END");
			else
				agg_state.push_back(a);
			plan.aggs.push_back(spec);
			k++;
		}
		std::vector<std::string> exprs = ToStrings(raw.visible_exprs);
		for (size_t i = 0; i < exprs.size(); i++)
			plan.visible_from_state.push_back("(" + SubstitutePlaceholders(exprs[i], agg_state) + ")::" + types[i]);
	}
	result.plan = std::move(plan);
	return result;
}

} // namespace

DvmBuildResult
BuildDvmPlan(const std::string &query, bool catch_errors) {
	const char *sql = query.c_str();
	RawPlan raw{};
	std::string large;
	// The plan, then the delta's variant for large change windows (kept only if it differs).
	auto build = [&]() {
		pg::PgCall([&]() {
			g_large_windows = false;
			BuildRawPlan(sql, &raw);
			if (raw.unsupported == nullptr && raw.delta_sql != nullptr) {
				RawPlan raw_large{};
				g_large_windows = true;
				PG_TRY();
				{
					BuildRawPlan(sql, &raw_large);
				}
				PG_FINALLY();
				{
					g_large_windows = false;
				}
				PG_END_TRY();
				if (raw_large.delta_sql && strcmp(raw_large.delta_sql, raw.delta_sql) != 0)
					large = raw_large.delta_sql;
			}
		});
	};
	if (!catch_errors) {
		build();
	} else {
		// Protect the caller: an unexpected PostgreSQL error while planning means "not differentiable".
		auto failure = pg::TrySubtransaction(build);
		if (failure) {
			DvmBuildResult result;
			result.unsupported = "planning the differential query failed: " + *failure;
			return result;
		}
	}
	DvmBuildResult result = ConvertRaw(raw);
	if (result.plan)
		result.plan->delta_sql_large = large;
	return result;
}

} // namespace pgtrickle
