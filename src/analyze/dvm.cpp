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
//
// This file: the select-project-join delta (telescoping and consistent-state joins), aggregates, the
// plan kinds and BuildDvmPlan. Alongside, sharing dvm_internal.hpp: dvm_sublink.cpp (subqueries in
// expressions, LATERAL, old states), dvm_outer.cpp (outer joins), dvm_keyed.cpp (aggregating
// subqueries in FROM), dvm_rewrite.cpp (CTE inlining, INTERSECT/EXCEPT, grouping sets) and
// dvm_recursive.cpp (WITH RECURSIVE).
#include "analyze/dvm_internal.hpp"

namespace pgtrickle {

namespace dvm_detail {

constexpr int kGroupParamBase = 987650000;

// Set while building the variant of the delta for large change windows (see BuildDvmPlan).
bool g_large_windows = false;
// Set when a consistent-state join delta was written: only then does that variant differ.
bool g_consistent_join_used = false;
constexpr int kAggParamBase = 987660000;

// ------------------------------------------------------------------------------------------------
// PostgreSQL-side builder (C style)
// ------------------------------------------------------------------------------------------------

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
		// (A subquery or view that is the whole NULL-padded side is checked by PaddedSubqueryProblem.)
		Unsupported(ctx, "%s", rte->rtekind == RTE_SUBQUERY
		                           ? "a subquery or view nested in a join on the NULL-padded side of an outer join is not "
		                             "maintained differentially yet"
		                           : "a function, VALUES or table sample on the NULL-padded side of an outer join is not "
		                             "maintained differentially yet");
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
CheckJoinTree(BuildCtx *ctx, Node *n, Query *q) {
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
			for (Node *pad : {j->jointype != JOIN_RIGHT ? j->rarg : nullptr, j->jointype != JOIN_LEFT ? j->larg : nullptr}) {
				if (pad == nullptr)
					continue;
				// A subquery there (a view, a filtered or grouped subquery): see PaddedSubqueryProblem.
				if (IsA(pad, RangeTblRef) && rt_fetch(reinterpret_cast<RangeTblRef *>(pad)->rtindex, q->rtable)->rtekind ==
				                                 RTE_SUBQUERY) {
					if (const char *why = PaddedSubqueryProblem(q, j, pad)) {
						Unsupported(ctx, "%s", why);
						return false;
					}
				} else if (!CheckPaddedSide(ctx, q, pad)) {
					return false;
				}
			}
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

// --- Columns the statement reads ----------------------------------------------------------------
//
// A delta reads a keyed base table only through the columns the query references (and its key): the
// others take no part in any expression, condition or grouping. Every read of such a table, the live
// table and its change window alike, outputs NULL for them (RelationColumns), so the engine works on
// the table's projection throughout, and consolidating a window groups the referenced columns only
// (12,000 changed lineitem rows: 16 columns ~9 ms, 8 columns ~4 ms); an update of unreferenced columns
// cancels out in the window, so its key counts as untouched. Keyless tables keep every column: their
// rows are matched whole. Set for the duration of BuildDvmPlan, from the defining query; every query
// the engine derives from it reads a subset of those columns plus keys.
struct NeededColumns {
	Oid relid;
	Bitmapset *attnos; // attribute numbers read (key included); unused when all
	bool all;
};
List *g_needed_columns = NIL; // of NeededColumns *; NIL outside BuildDvmPlan: every column

namespace {

NeededColumns *
NeededEntry(List *entries, Oid relid) {
	ListCell *lc;
	foreach (lc, entries) {
		auto *e = static_cast<NeededColumns *>(lfirst(lc));
		if (e->relid == relid)
			return e;
	}
	return nullptr;
}

bool
CollectNeededWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Query)) {
		auto *q = reinterpret_cast<Query *>(node);
		auto *entries = static_cast<List **>(context);
		ListCell *lc;
		foreach (lc, q->rtable) {
			auto *rte = static_cast<RangeTblEntry *>(lfirst(lc));
			if (rte->rtekind != RTE_RELATION)
				continue;
			NeededColumns *e = NeededEntry(*entries, rte->relid);
			if (e == nullptr) {
				e = static_cast<NeededColumns *>(palloc0(sizeof(NeededColumns)));
				e->relid = rte->relid;
				*entries = lappend(*entries, e);
			}
			if (rte->perminfoindex == 0) {
				e->all = true;
				continue;
			}
			RTEPermissionInfo *perm = getRTEPermissionInfo(q->rteperminfos, rte);
			int m = -1;
			while ((m = bms_next_member(perm->selectedCols, m)) >= 0) {
				AttrNumber attno = static_cast<AttrNumber>(m + FirstLowInvalidHeapAttributeNumber);
				if (attno == InvalidAttrNumber)
					e->all = true; // a whole-row reference
				else if (attno > 0)
					e->attnos = bms_add_member(e->attnos, attno);
			}
		}
		return query_tree_walker(q, CollectNeededWalker, context, 0);
	}
	return expression_tree_walker(node, CollectNeededWalker, context);
}

} // namespace

// The columns each base table of `sql` (a defining query) is read through: PostgreSQL's record of
// the columns a query selects (RTEPermissionInfo.selectedCols, at every level), plus the key.
List *
CollectNeededColumns(const char *sql) {
	List *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Query *analysed = parse_analyze_fixedparams(linitial_node(RawStmt, raw), sql, nullptr, 0, nullptr);
	List *entries = NIL;
	ListCell *lc;
	foreach (lc, QueryRewrite(analysed))
		(void)CollectNeededWalker(static_cast<Node *>(lfirst(lc)), &entries);
	foreach (lc, entries) {
		auto *e = static_cast<NeededColumns *>(lfirst(lc));
		List *key = e->all ? NIL : RelationKey(e->relid);
		ListCell *kc;
		foreach (kc, key)
			e->attnos = bms_add_member(e->attnos, lfirst_int(kc));
	}
	return entries;
}

// False for a column of `relid` the statement does not read (see NeededColumns).
bool
ColumnNeeded(Oid relid, AttrNumber attno) {
	NeededColumns *e = NeededEntry(g_needed_columns, relid);
	return e == nullptr || e->all || bms_is_member(attno, e->attnos);
}

// Output column list of a base relation in attribute order. Dropped columns become typed NULL
// placeholders; reading a change buffer, so do columns the buffer does not capture (a stream table's
// hidden columns), typed like the relation's column so both sides of a UNION ALL agree; and so do
// columns the statement does not read (ColumnNeeded), on both sides. `named`: placeholders carry the
// column's name (AS), for a select list; without it the list is valid inside ROW(...) too.
char *
RelationColumns(Oid relid, const char *alias, bool from_buffer, bool named) {
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
		if (att->attisdropped) {
			appendStringInfoString(&s, "NULL::pg_catalog.int4");
			if (named)
				appendStringInfo(&s, " AS \"__pgt_dropped_%d\"", attno);
		} else if ((from_buffer && get_attnum(buffer, NameStr(att->attname)) == InvalidAttrNumber) ||
		           !ColumnNeeded(relid, static_cast<AttrNumber>(attno))) {
			appendStringInfo(&s, "NULL::%s", format_type_with_typemod(att->atttypid, att->atttypmod));
			if (named)
				appendStringInfo(&s, " AS %s", quote_identifier(NameStr(att->attname)));
		} else
			appendStringInfo(&s, "%s.%s", alias, quote_identifier(NameStr(att->attname)));
		ReleaseSysCache(tp);
	}
	return s.data;
}

// True if every live column of `relid` the statement reads has an equality operator (so the delta can
// be consolidated).
bool
AllColumnsGroupable(Oid relid) {
	for (int attno = 1;; attno++) {
		HeapTuple tp = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attno));
		if (!HeapTupleIsValid(tp))
			return true;
		Form_pg_attribute att = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(tp));
		bool ok = att->attisdropped || !ColumnNeeded(relid, static_cast<AttrNumber>(attno)) ||
		          OidIsValid(lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR | TYPECACHE_HASH_PROC)->hash_proc);
		ReleaseSysCache(tp);
		if (!ok)
			return false;
	}
}

// The change buffer of base table `relid`, schema-qualified and quoted.
char *
BufferRelation(Oid relid) {
	return psprintf("pgtrickle_changes.%s", quote_identifier(psprintf("changes_%u", relid)));
}

// The change window of a base table as a consolidated Z-set: a row inserted and deleted again (or the
// old image of a row updated twice) cancels out before any expression of the query sees it, so the
// delta only ever evaluates expressions on row versions that existed at one of the two frontiers.
//
// `shared`: marked, so that ShareMarkedSubqueries computes it once per statement (a CTE) however many
// terms read it. Only where the planner's estimate of it matters little (the keys a window touched,
// hashed; the deleted rows inside an old state): a CTE has no statistics and takes no conditions
// pushed down, so a term driven by it was planned from a guess (TPC-H Q19 at 1 %: 157 deleted
// lineitem rows estimated as 1 made a nested loop scan part 157 times, 105 → 400 ms).
char *
BaseDeltaSql(RangeTblEntry *rte, bool shared) {
	Oid relid = rte->relid;
	char *buffer = BufferRelation(relid);
	// Weights to be summed are int4: sum(int4) accumulates in an int8, sum(int8) in a numeric (grouping
	// 12,000 changed lineitem rows: about 30 % faster).
	bool groupable = AllColumnsGroupable(relid);
	const char *wtype = groupable ? "int4" : "int8";
	char *raw = psprintf("SELECT %s, CASE b.\"__pgt_op\" WHEN 'I' THEN 1::pg_catalog.%s ELSE (-1)::pg_catalog.%s END "
	                     "AS \"__pgt_w\" FROM %s b WHERE b.\"__pgt_op\" OPERATOR(pg_catalog.<>) 'T' AND %s",
	                     RelationColumns(relid, "b", true), wtype, wtype, buffer,
	                     BufferWindowPredicate("b", !g_large_windows).c_str());
	if (!groupable)
		return raw;
	// The raw columns renamed positionally (c1 .. cn), grouped, weights summed. Columns the statement
	// does not read are NULL already, and left out of the grouping (their type may have no equality).
	StringInfoData names;
	StringInfoData refs;
	StringInfoData keys;
	initStringInfo(&names);
	initStringInfo(&refs);
	initStringInfo(&keys);
	for (int i = 1;; i++) {
		HeapTuple tp = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(i));
		if (!HeapTupleIsValid(tp))
			break;
		Form_pg_attribute att = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(tp));
		appendStringInfo(&names, "\"__pgt_c%d\", ", i);
		if (!att->attisdropped && !ColumnNeeded(relid, static_cast<AttrNumber>(i))) {
			appendStringInfo(&refs, "%sNULL::%s", i > 1 ? ", " : "",
			                 format_type_with_typemod(att->atttypid, att->atttypmod));
		} else {
			appendStringInfo(&refs, "%sr.\"__pgt_c%d\"", i > 1 ? ", " : "", i);
			appendStringInfo(&keys, "%sr.\"__pgt_c%d\"", keys.len ? ", " : "", i);
		}
		ReleaseSysCache(tp);
	}
	// The marker is a constant condition the planner drops.
	char *marker = shared ? psprintf(" AND '%s'::pg_catalog.text IS NOT NULL", WindowMarker(std::to_string(relid)).c_str())
	                      : pstrdup("");
	// No column read at all (a keyless table under count(*)): every row is the same, one group.
	return psprintf("SELECT %s, pg_catalog.sum(r.\"__pgt_cw\")::pg_catalog.int8 AS \"__pgt_w\" FROM (%s) r(%s\"__pgt_cw\") "
	                "%s%s HAVING pg_catalog.sum(r.\"__pgt_cw\") OPERATOR(pg_catalog.<>) 0%s",
	                refs.data, raw, names.data, keys.len ? "GROUP BY " : "", keys.data, marker);
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
ReplaceWithWeighted(RangeTblEntry *rte, const char *sql, bool with_ok) {
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

// Adds target entries "__pgt_gk_<j>" for `keys` to q's target list, before its visible entries
// (`keys_first`) or after them, junk entries last; renumbers them. Returns the number of visible entries.
int
AddKeyTargets(Query *q, List *keys, bool keys_first) {
	List *visible = NIL;
	List *junk = NIL;
	ListCell *lc;
	foreach (lc, q->targetList) {
		auto *tle = static_cast<TargetEntry *>(lfirst(lc));
		if (tle->resjunk)
			junk = lappend(junk, tle);
		else
			visible = lappend(visible, tle);
	}
	int nvisible = list_length(visible);
	List *tl = keys_first ? list_concat(KeyTargets(keys, 1), visible) : list_concat(visible, KeyTargets(keys, 1));
	tl = list_concat(tl, junk);
	int resno = 1;
	foreach (lc, tl)
		static_cast<TargetEntry *>(lfirst(lc))->resno = resno++;
	q->targetList = tl;
	return nvisible;
}

void
AddConjunct(Query *q, Expr *conj) {
	List *quals = q->jointree->quals ? make_ands_implicit(reinterpret_cast<Expr *>(q->jointree->quals)) : NIL;
	q->jointree->quals = reinterpret_cast<Node *>(make_ands_explicit(lappend(quals, conj)));
}

// In a join-delta term, the conditions holding subqueries go behind a lateral fence
// (FenceSublinkConditions): evaluated for the joined rows the changed input drives, by index, rather
// than at the scan of another input for every row, or as a semi-join with the whole subquery. (Also in
// the large-window variant: at 1 % TPC-H cycles Q20's refresh went from over 60 s to 1 s, Q17's from
// 414 to 160 ms.)
void
FenceTermSublinks(Query *term) {
	if (term->jointree->quals == nullptr || !ContainsSublink(term->jointree->quals))
		return;
	List *quals = FenceSublinkConditions(term, make_ands_implicit(reinterpret_cast<Expr *>(term->jointree->quals)));
	term->jointree->quals = quals ? reinterpret_cast<Node *>(make_ands_explicit(quals)) : nullptr;
}

// The tables an input reads: itself, or every table of a subquery at any depth.
List *
InputRelations(RangeTblEntry *rte) {
	if (rte->rtekind == RTE_RELATION)
		return list_make1_oid(rte->relid);
	if (rte->rtekind == RTE_SUBQUERY)
		return RelationsRead(rte->subquery);
	return NIL;
}

// Finishes a delta term (its weight as the last column) and appends it to `s` as another UNION ALL arm.
//
// With `gate` (tables), the term can only produce rows if one of them changed in the window, and is
// skipped otherwise: SELECT * FROM (term OFFSET 0) g WHERE EXISTS (<a change in one of them>). The
// uncorrelated EXISTS is evaluated once, as a one-time filter. The planner cannot know a window is
// empty and may otherwise join all the other inputs before finding no changed row to join them with
// (TPC-H Q8: the terms of the unchanged region and nations). The gate stays outside the term: inside,
// a condition on no table would count as a join condition between every pair of its inputs, and the
// join search would try all of their cross products.
void
AppendTerm(StringInfo s, Query *term, Expr *weight, List *gate, List *also_gate) {
	if (IsA(weight, OpExpr))
		set_opfuncid(reinterpret_cast<OpExpr *>(weight));
	term->targetList =
	    lappend(term->targetList, makeTargetEntry(weight, list_length(term->targetList) + 1, pstrdup("__pgt_w"), false));
	if (s->len > 0)
		appendStringInfoString(s, "\nUNION ALL\n");
	if (gate == NIL || term->limitCount || term->limitOffset) {
		appendStringInfoString(s, Deparse(term));
		return;
	}
	term->limitOffset = reinterpret_cast<Node *>(Int8Const(0));
	term->limitOption = LIMIT_OPTION_COUNT;
	appendStringInfo(s, "SELECT * FROM (%s) g WHERE EXISTS (%s)", Deparse(term), AnyChangeSql(gate));
	if (also_gate != NIL)
		appendStringInfo(s, " AND EXISTS (%s)", AnyChangeSql(also_gate));
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

// The condition on range-table entry `rtindex` alone that an OR of conjunctions implies:
// (A1 AND B1) OR (A2 AND B2), with A1 and A2 reading only that entry, implies (A1 OR A2). Null when
// some arm has no such conjunct. PostgreSQL derives these itself (extract_restriction_or_clauses),
// but not through the CASE of a guarded condition.
static Node *
ImpliedRestriction(BoolExpr *orclause, int rtindex) {
	List *arms = NIL;
	ListCell *lc;
	foreach (lc, orclause->args) {
		List *mine = NIL;
		ListCell *lc2;
		foreach (lc2, make_ands_implicit(static_cast<Expr *>(lfirst(lc)))) {
			Node *c = static_cast<Node *>(lfirst(lc2));
			Bitmapset *rels = pull_varnos(nullptr, c);
			if (bms_membership(rels) == BMS_SINGLETON && bms_is_member(rtindex, rels))
				mine = lappend(mine, c);
		}
		if (mine == NIL)
			return nullptr;
		arms = lappend(arms, make_ands_explicit(mine));
	}
	return reinterpret_cast<Node *>(make_orclause(arms));
}

// Wraps each WHERE conjunct that can raise an error (is not leakproof) and reads a guarded kept input
// and some other input in CASE WHEN <those inputs' "__pgt_ok" flags> THEN conjunct ELSE false END, so
// it is evaluated only on pairs of rows that coexisted. Leakproof conjuncts (equality joins on
// built-in types) stay as they are, so the planner still joins by them. A wrapped OR also gives each
// input the condition it implies on that input alone, unwrapped (ImpliedRestriction): a condition on
// one input's rows is evaluated on rows that exist in one state, as the query itself would, and it
// filters the input before the join (TPC-H Q19: the changed parts of the three brands, not all).
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
		if (is_orclause(conj) && !contain_volatile_functions(conj) && !checkExprHasSubLink(conj)) {
			int r = -1;
			while ((r = bms_next_member(rels, r)) >= 0) {
				Node *implied = ImpliedRestriction(reinterpret_cast<BoolExpr *>(conj), r);
				if (implied != nullptr)
					out = lappend(out, implied);
			}
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


KeyedStates
KeyedStatesOf(RangeTblEntry *rte) {
	KeyedStates st;
	int ncols = list_length(rte->eref->colnames);
	char *names = PositionalNames(ncols);
	char *delta = BaseDeltaSql(rte);
	char *shared = BaseDeltaSql(rte, true);
	char *refs = PositionalRefs("d", ncols);
	st.pos = psprintf("SELECT %s, d.\"__pgt_cw\" AS \"__pgt_w\" FROM (%s) d(%s\"__pgt_cw\") "
	                  "WHERE d.\"__pgt_cw\" OPERATOR(pg_catalog.>) 0",
	                  refs, delta, names);
	// The deleted rows of a window, weight positive.
	auto deleted = [&](const char *window) {
		return psprintf("SELECT %s, (OPERATOR(pg_catalog.-) d.\"__pgt_cw\") AS \"__pgt_w\" FROM (%s) d(%s\"__pgt_cw\") "
		                "WHERE d.\"__pgt_cw\" OPERATOR(pg_catalog.<) 0",
		                refs, window, names);
	};
	st.neg = deleted(delta);
	// The same rows from the window computed once per statement, where they are not a term's driver.
	st.neg_shared = deleted(shared);
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
	// Written as "(CASE WHEN key IN (…) THEN NULL ELSE 1 END) IS NOT NULL", the same test for NOT NULL
	// keys, because PostgreSQL estimates a NOT IN to keep half the rows and this 99.5 %: most rows are
	// untouched, and with half of each kept input gone from the estimates, a join of several came out
	// as one row, and the planner rescanned a window's rows for every row of it (TPC-H Q9 at 1 %).
	char *untouched = psprintf("((CASE WHEN ROW(%s) IN (SELECT %s FROM (%s) k(%s\"__pgt_cw\")) THEN NULL "
	                           "ELSE 1 END) IS NOT NULL)",
	                           live_key.data, delta_key.data, shared, names);
	char *live = LiveRelation(rte);
	char *cols = RelationColumns(rte->relid, "a", false);
	st.kept = psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\" FROM %s WHERE %s", cols, live, untouched);
	st.kept_ok = psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\", %s AS \"__pgt_ok\" FROM %s WHERE %s", cols,
	                      untouched, live, untouched);
	st.before = psprintf("SELECT * FROM (%s) k0 UNION ALL SELECT * FROM (%s) n0", st.kept, st.neg_shared);
	st.live_ok = psprintf("SELECT %s, 1::pg_catalog.int8 AS \"__pgt_w\", %s AS \"__pgt_ok\" FROM %s", cols, untouched,
	                      live);
	st.before_ok = psprintf("%s UNION ALL SELECT n0.*, true FROM (%s) n0", st.live_ok, st.neg_shared);
	st.before_flat = psprintf("SELECT %s, f.\"__pgt_w\" FROM (%s) f(%s\"__pgt_w\", \"__pgt_ok\") WHERE f.\"__pgt_ok\"",
	                          PositionalRefs("f", ncols), st.before_ok, names);
	return st;
}

// Consistent-state delta of an inner join whose inputs all have keys:
//   Δ = Σi K<i ⋈ Pi ⋈ X₁>i  −  Σi K<i ⋈ Ni ⋈ X₀>i
// where Pi / Ni are the rows the window inserted / deleted (net), Ki the rows it left alone (X₁ minus
// the keys it touched) and X₀ = K ∪ N. Every term joins rows of one state only (the new one, or the
// old one), so no expression of the query is evaluated on a combination of rows that never coexisted
// (the plain telescoping sum pairs new rows of one input with old rows of another).
char *
ConsistentJoinDelta(Query *q, List *inputs, Oid mul, char **old_state) {
	g_consistent_join_used = true;
	int n = list_length(inputs);
	char **pos = static_cast<char **>(palloc(sizeof(char *) * n));
	char **neg = static_cast<char **>(palloc(sizeof(char *) * n));
	char **kept = static_cast<char **>(palloc(sizeof(char *) * n));
	char **kept_ok = static_cast<char **>(palloc(sizeof(char *) * n));
	char **before_ok = static_cast<char **>(palloc(sizeof(char *) * n));
	for (int i = 0; i < n; i++) {
		KeyedStates st = KeyedStatesOf(rt_fetch(list_nth_int(inputs, i), q->rtable));
		before_ok[i] = st.before_ok;
		// The old state the subquery terms read (SublinkStateDelta), reachable by index.
		old_state[i] = st.before_flat;
		pos[i] = st.pos;
		neg[i] = st.neg;
		kept[i] = st.kept;
		kept_ok[i] = st.kept_ok;
	}
	StringInfoData s;
	initStringInfo(&s);
	// One term: `second` < 0 is the plain form (Pi or Ni, later inputs in the state of the side);
	// otherwise a negative term with a second deleted-rows input (large windows, see below).
	auto term_of = [&](int side, int i, int second) {
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
			// The old state of a later input: for small windows the live table flagged (scanned by
			// index inside the join). Large windows split it (below): kept rows only, then terms
			// with one more input's deleted rows, after which the old state is flagged again.
			bool old_later = side == 1 && j > i && j != second;
			bool kept_later = old_later && g_large_windows && (second < 0 || j < second);
			bool flagged = old_later && !kept_later;
			bool deleted = side == 1 && (j == i || j == second);
			bool guarded = side == 1 && (j < i || kept_later || flagged);
			const char *sql = deleted                 ? neg[j]
			                  : side == 0 && j == i   ? pos[j]
			                  : j < i || kept_later ? (guarded ? kept_ok[j] : kept[j])
			                                          : before_ok[j];
			ReplaceWithWeighted(rte, sql, guarded);
			if (guarded)
				kept_rels = bms_add_member(kept_rels, static_cast<int>(rtindex));
			if (flagged) // before_ok: the flag filters the live arm
				AddConjunct(term, reinterpret_cast<Expr *>(makeVar(
				                      rtindex, static_cast<AttrNumber>(list_length(rte->eref->colnames)), BOOLOID, -1,
				                      InvalidOid, 0)));
			Expr *w = WeightVar(rtindex, rte);
			weight = weight ? make_opclause(mul, INT8OID, false, weight, w, InvalidOid, InvalidOid) : w;
		}
		FenceTermSublinks(term);
		GuardMixedStateQuals(term, kept_rels);
		if (side == 1)
			weight = make_opclause(mul, INT8OID, false, weight, Int8Const(-1), InvalidOid, InvalidOid);
		AppendTerm(&s, term, weight, InputRelations(rt_fetch(list_nth_int(inputs, i), q->rtable)),
		           second < 0 ? NIL : InputRelations(rt_fetch(list_nth_int(inputs, second), q->rtable)));
	};
	for (int side = 0; side < 2; side++)
		for (int i = 0; i < n; i++) {
			term_of(side, i, -1);
			// Large windows: X₀ = K ∪ N of every later input, written as one UNION ALL, cannot be
			// reached by index (the planner has no parameterized path into its deleted-rows arm), so
			// the planner hashed whole tables to join them with a few deleted rows (TPC-H Q5 at 1 %:
			// all of lineitem for 233 deleted orders). The old-state term i is therefore split by the
			// next input k whose deleted rows it reads:
			//   K<i ⋈ Ni ⋈ X₀>i  =  K<i ⋈ Ni ⋈ K>i  +  Σk>i K<i ⋈ Ni ⋈ K(i,k) ⋈ Nk ⋈ X₀>k
			// The first reads kept rows only (plain tables with a filter, reachable by index); the
			// others are driven by two inputs' deleted rows and read the later old states flagged,
			// as small windows do.
			if (side == 1 && g_large_windows)
				for (int k = i + 1; k < n; k++)
					term_of(side, i, k);
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
		appendStringInfoString(&s, ConsistentJoinDelta(q, inputs, mul, old_state));
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
			FenceTermSublinks(term);
			AppendTerm(&s, term, weight, n > 1 ? InputRelations(rt_fetch(list_nth_int(inputs, i), q->rtable)) : NIL);
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
	// Rescan with subqueries at the aggregation level: every group is touched when this condition holds
	// (a table those subqueries read changed); every_group_keys lists every group's keys then.
	char *every_group_when;
	char *every_group_keys;
	bool reads_storage; // delta_sql reads the storage table (kStoragePlaceholder)
	bool recursive;     // the delta of a WITH RECURSIVE query
	List *storage_index_columns; // char*
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

// The plan's visible columns from the query's target list (also returned in *visible_out), the
// other lists empty; false (with the reason) when the query calls a function that is not immutable.
bool
StartRawPlan(Query *q, RawPlan *out, List **visible_out = nullptr) {
	List *visible = VisibleTargets(q->targetList);
	if (visible_out)
		*visible_out = visible;
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
		return false;
	}
	return true;
}

// WITH RECURSIVE r AS (seed UNION [ALL] step) SELECT * FROM r: a bag of rows whose delta reads the
// old result from the storage table (dvm_recursive.cpp).
void
BuildRecursivePlan(Query *q, BuildCtx *ctx, RawPlan *out) {
	if (!StartRawPlan(q, out))
		return;
	bool set = false;
	List *index_columns = NIL;
	char *delta = RecursiveDelta(ctx, q, out->visible_names, &set, &index_columns);
	if (delta == nullptr) {
		out->unsupported = ctx->unsupported ? ctx->unsupported : "this WITH RECURSIVE query is not maintained differentially";
		return;
	}
	out->kind = static_cast<int>(DvmKind::Bag);
	out->input_sql = Deparse(q);
	out->delta_sql = delta;
	out->reads_storage = true;
	out->recursive = true;
	out->storage_index_columns = index_columns;
	out->strategy = pstrdup(set ? "recursive query (UNION): rows that lost a derivation deleted unless rederived, "
	                              "rows gained inserted; the old result is read from the storage table"
	                            : "recursive query (UNION ALL): derivations lost and gained counted through the "
	                              "changed rows; the old result is read from the storage table");
	out->tree = ctx->tree.data;
}

// 0-based position of a target entry among the visible (non-junk) ones; -1 when it is junk.
int
VisiblePosition(List *target_list, TargetEntry *tle) {
	if (tle->resjunk)
		return -1;
	int pos = 0;
	ListCell *lc;
	foreach (lc, target_list) {
		auto *t = static_cast<TargetEntry *>(lfirst(lc));
		if (t == tle)
			return pos;
		if (!t->resjunk)
			pos++;
	}
	return -1;
}

void BuildRawPlan(const char *sql, RawPlan *out);

// The operator tree of a top-k over groups: the tree written for P (its first two lines: the top-k and
// P's keyed recompute) described as the trigger works instead.
char *
TopKGroupsTree(const char *tree, int64 window) {
	std::string t(tree);
	size_t first = t.find('\n');
	size_t second = first == std::string::npos ? first : t.find('\n', first + 1);
	const std::string old_agg = "Recompute touched keys (aggregation inside a subquery; ";
	size_t at = first == std::string::npos ? first : t.find(old_agg, first);
	if (second == std::string::npos || at == std::string::npos || at > second)
		return pstrdup(tree);
	size_t close = t.find("; new minus old state)", at);
	if (close == std::string::npos || close > second)
		return pstrdup(tree);
	std::string keys = t.substr(at + old_agg.size(), close - at - old_agg.size());
	std::string out = "TopK over groups (LIMIT window " + std::to_string(window) +
	                  ": recomputed when a change touches a stored group or a touched group ranks inside it)\n" +
	                  t.substr(first + 1, at - first - 1) + "Aggregate (touched groups over the new state, ranked against the stored rows; " +
	                  keys + ")" + t.substr(second);
	return pstrdup(out.c_str());
}

// ORDER BY ... LIMIT k (no OFFSET) over GROUP BY whose group keys are all output columns: the trigger of
// core's TopKGroupsTriggerSql, from the delta of the grouped query's input (its touched group keys) and
// the grouped query itself. nullptr when the shape does not fit (the caller recomputes on any change).
char *
TopKGroupsTrigger(Query *q, int64 limit, const std::vector<TopKSortKey> &order) {
	if (q->groupClause == NIL || q->groupingSets || q->hasWindowFuncs || q->distinctClause || q->hasTargetSRFs ||
	    q->setOperations || q->limitOffset)
		return nullptr;
	Query *p = static_cast<Query *>(copyObject(q));
	p->limitCount = nullptr;
	p->limitOffset = nullptr;
	p->sortClause = NIL;
	RawPlan raw{};
	BuildRawPlan(Deparse(p), &raw);
	if (raw.unsupported || raw.reads_storage ||
	    (raw.kind != static_cast<int>(DvmKind::Grouped) && raw.kind != static_cast<int>(DvmKind::Rescan)))
		return nullptr;
	TopKGroups t;
	List *group_exprs = NIL;
	ListCell *lc;
	foreach (lc, q->groupClause) {
		TargetEntry *tle = get_sortgroupclause_tle(static_cast<SortGroupClause *>(lfirst(lc)), q->targetList);
		int pos = VisiblePosition(q->targetList, tle);
		if (pos < 0)
			return nullptr;
		t.group_key_visible.push_back(static_cast<size_t>(pos));
		group_exprs = lappend(group_exprs, tle->expr);
	}
	if (list_length(raw.gk_types) != list_length(group_exprs))
		return nullptr;
	// P with its group keys as extra output columns, after the visible ones (as a Rescan plan's input).
	foreach (lc, VisibleTargets(p->targetList))
		t.storage_columns.push_back(static_cast<TargetEntry *>(lfirst(lc))->resname);
	(void)AddKeyTargets(p, group_exprs, false);
	t.keys_delta_sql = raw.every_group_when == nullptr
	                       ? raw.delta_sql
	                       : psprintf("%s\nUNION ALL\nSELECT i.*, 1::pg_catalog.int8 AS \"__pgt_w\" FROM (%s) i WHERE %s",
	                                  raw.delta_sql, raw.every_group_keys, raw.every_group_when);
	t.grouped_sql = Deparse(p);
	t.order = order;
	t.limit = limit;
	return pstrdup(TopKGroupsTriggerSql(t).c_str());
}

void
BuildRawPlan(const char *sql, RawPlan *out) {
	BuildCtx ctx;
	ctx.unsupported = nullptr;
	initStringInfo(&ctx.tree);

	List *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Query *analysed = parse_analyze_fixedparams(linitial_node(RawStmt, raw), sql, nullptr, 0, nullptr);
	List *rewritten = QueryRewrite(analysed);
	bool had_ctes = linitial_node(Query, rewritten)->cteList != NIL;
	Query *q = InlineCtes(linitial_node(Query, rewritten));
	if (q->hasRecursive && q->cteList != NIL) {
		BuildRecursivePlan(q, &ctx, out);
		return;
	}
	if (char *rewritten_sql = RewriteSetops(q)) {
		BuildRawPlan(rewritten_sql, out);
		return;
	}
	if (char *rewritten_sql = RewriteWindowLevels(q)) {
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

	List *visible = NIL;
	if (!StartRawPlan(q, out, &visible))
		return;
	ListCell *lc;

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
		// Without OFFSET, the stored rows are the old top-k; with every sort key an output column, they
		// can be ranked against the changes directly (the old top-k need not be recomputed).
		std::vector<TopKSortKey> sort_visible;
		bool stored_top = q->limitOffset == nullptr;
		foreach (lc, q->sortClause) {
			auto *sgc = static_cast<SortGroupClause *>(lfirst(lc));
			TargetEntry *tle = get_sortgroupclause_tle(sgc, q->targetList);
			Oid opfamily, opcintype;
			CompareType cmp;
			if (!get_ordering_op_properties(sgc->sortop, &opfamily, &opcintype, &cmp)) {
				out->unsupported = "ORDER BY ... USING a non-btree operator is not maintained differentially";
				return;
			}
			int pos = VisiblePosition(q->targetList, tle);
			if (pos < 0)
				stored_top = false;
			else
				sort_visible.push_back(TopKSortKey{static_cast<size_t>(pos), cmp == COMPARE_GT, sgc->nulls_first});
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
		// For large change windows, computing which groups the changes touch (or the delta of a query
		// with subqueries) costs more than recomputing (TPC-H at 1 % cycles): that variant recomputes
		// whenever a table it reads changed.
		if (NeedsKeyedRecompute(p) && stored_top && !g_large_windows) {
			if (char *trigger = TopKGroupsTrigger(q, window, sort_visible)) {
				out->kind = static_cast<int>(DvmKind::Rescan);
				out->input_sql = Deparse(q);
				out->delta_sql = trigger;
				out->reads_storage = true;
				out->strategy = pstrdup("top-k over groups: recomputed when a change touches a stored group or a "
				                        "touched group ranks inside the LIMIT window");
				out->tree = TopKGroupsTree(ctx.tree.data, window);
				return;
			}
		}
		if (NeedsKeyedRecompute(p) || (p->hasSubLinks && (!stored_top || g_large_windows))) {
			// Over aggregates, DISTINCT, windows (or subqueries in expressions, with OFFSET or a sort key
			// that is not an output column) the old top-k would be recomputed from the old state of every
			// table (several times a FULL refresh): the result is recomputed instead whenever a table it
			// reads changed.
			out->kind = static_cast<int>(DvmKind::Rescan);
			out->input_sql = Deparse(q);
			out->delta_sql = AnyChangeSql(RelationsRead(q));
			out->strategy = pstrdup("top-k over aggregates, DISTINCT, windows or subqueries: recomputed when a table it "
			                        "reads changes");
			out->tree = ctx.tree.data;
			return;
		}
		char *names = PositionalNames(ncols);
		char *delta = DeltaOfQuery(p);
		char *old_top = nullptr;
		if (!stored_top) {
			Query *old = static_cast<Query *>(copyObject(p));
			OldStateInQuery(old);
			// ORDER BY over positional columns (the same order, delta rows first among equals).
			char *order_old = pstrdup(order.data);
			order_old[strlen(order_old) - 2] = '\0';
			char *alias = pstrdup(names);
			alias[strlen(alias) - 2] = '\0';
			old_top = psprintf("SELECT * FROM (%s) x(%s) ORDER BY %s LIMIT %lld", Deparse(old), alias, order_old,
			                   static_cast<long long>(window));
		} else {
			// The stored rows (the old top-k), with the sort keys again after the visible columns.
			StringInfoData cols;
			initStringInfo(&cols);
			int i = 0;
			foreach (lc, VisibleTargets(q->targetList)) {
				appendStringInfo(&cols, "%ss.%s AS \"__pgt_c%d\"", i > 0 ? ", " : "",
				                 quote_identifier(static_cast<TargetEntry *>(lfirst(lc))->resname), i + 1);
				i++;
			}
			List *vis = VisibleTargets(q->targetList);
			for (const TopKSortKey &k : sort_visible) {
				appendStringInfo(&cols, ", s.%s AS \"__pgt_c%d\"",
				                 quote_identifier(static_cast<TargetEntry *>(list_nth(vis, static_cast<int>(k.visible)))->resname),
				                 i + 1);
				i++;
			}
			old_top = psprintf("SELECT %s FROM %s s", cols.data, kStoragePlaceholder);
			out->reads_storage = true;
		}
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
		(void)AddKeyTargets(full, common, true);
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
		// The rows are the query's own: with CTEs, its text as written, so PostgreSQL computes a CTE
		// read several times once (the inlined form would compute it for every reference).
		out->input_sql = had_ctes ? pstrdup(sql) : Deparse(q);
		out->delta_sql = DeltaOfQuery(q);
		out->strategy = pstrdup("bag of rows: delta rows inserted/deleted by identity hash");
		if (char *every = EveryRowCondition(q)) {
			// A change that can move every row (a subquery not tied to particular rows, e.g. a scalar
			// aggregate in WHERE): the new result compared with the stored one, the old result, rather than
			// every row evaluated over both states.
			StringInfoData cols;
			initStringInfo(&cols);
			foreach (lc, visible)
				appendStringInfo(&cols, "s.%s, ", quote_identifier(static_cast<TargetEntry *>(lfirst(lc))->resname));
			const char *all = kEveryFlag;
			out->delta_sql = psprintf("WITH %s\nSELECT * FROM (%s) d WHERE NOT "
			                          "%s\nUNION ALL\nSELECT q.*, 1::pg_catalog.int8 AS \"__pgt_w\" FROM (%s) q WHERE %s\n"
			                          "UNION ALL\nSELECT %s(-1)::pg_catalog.int8 FROM %s s WHERE %s",
			                          EveryCte(every).c_str(), out->delta_sql, all, out->input_sql, all, cols.data,
			                          kStoragePlaceholder, all);
			out->reads_storage = true;
			out->strategy = pstrdup("bag of rows: delta rows inserted/deleted by identity hash; recomputed and compared "
			                        "with the stored rows when a change can move every row (a subquery not tied to "
			                        "particular rows)");
		}
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
	// Every group is recomputed when a change can move every input row or every group's result.
	char *every_row = EveryRowCondition(input);
	if (agg_level_sublinks || every_row) {
		out->every_group_when =
		    agg_level_sublinks ? psprintf("EXISTS (%s)%s%s", AnyChangeSql(agg_level_relids), every_row ? " OR " : "",
		                                  every_row ? every_row : "")
		                       : every_row;
		out->every_group_keys = Deparse(input);
	}
	out->tree = ctx.tree.data;
	if (algebraic) {
		out->kind = static_cast<int>(DvmKind::Grouped);
		out->input_sql = Deparse(input);
		out->strategy = pstrdup(every_row ? "aggregates maintained algebraically (COUNT/SUM/AVG state per group; MIN/MAX "
		                                    "recompute a group only when its extreme is deleted); every group recomputed "
		                                    "when a change can move every input row (a subquery not tied to particular rows)"
		                                  : "aggregates maintained algebraically (COUNT/SUM/AVG state per group; MIN/MAX "
		                                    "recompute a group only when its extreme is deleted)");
	} else {
		// Rescan: the query itself, with its group keys as extra output columns.
		out->kind = static_cast<int>(DvmKind::Rescan);
		Query *full = static_cast<Query *>(copyObject(q));
		full->sortClause = NIL;
		(void)AddKeyTargets(full, group_exprs, false);
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
	return ReplacePlaceholders(expr, [&](long id) -> std::optional<std::string> {
		if (id > kAggParamBase && id < kAggParamBase + 10000)
			return "(" + agg_state.at(static_cast<size_t>(id - kAggParamBase - 1)) + ")";
		if (id > kGroupParamBase && id < kGroupParamBase + 10000)
			return "s." + QuoteIdent(GroupKeyColumn(static_cast<size_t>(id - kGroupParamBase)));
		return std::nullopt;
	});
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
	plan.every_group_when = raw.every_group_when ? raw.every_group_when : "";
	plan.reads_storage = raw.reads_storage;
	plan.recursive = raw.recursive;
	plan.storage_index_columns = ToStrings(raw.storage_index_columns);
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

// The plan, then the delta's variant for large change windows: returned only if it differs.
const char *
BuildVariants(const char *sql, RawPlan *raw) {
	g_large_windows = false;
	g_consistent_join_used = false;
	g_touched_seq = 0;
	BuildRawPlan(sql, raw);
	if (raw->unsupported != nullptr || raw->delta_sql == nullptr || !g_consistent_join_used)
		return nullptr;
	RawPlan raw_large{};
	g_large_windows = true;
	g_touched_seq = 0;
	PG_TRY();
	{
		BuildRawPlan(sql, &raw_large);
	}
	PG_FINALLY();
	{
		g_large_windows = false;
	}
	PG_END_TRY();
	if (raw_large.delta_sql && strcmp(raw_large.delta_sql, raw->delta_sql) != 0)
		return raw_large.delta_sql;
	return nullptr;
}

} // namespace dvm_detail

using namespace dvm_detail;

DvmBuildResult
BuildDvmPlan(const std::string &query, bool catch_errors) {
	const char *sql = query.c_str();
	RawPlan raw{};
	std::string large;
	// The plan, then the delta's variant for large change windows (kept only if it differs).
	auto build = [&]() {
		pg::PgCall([&]() {
			g_needed_columns = CollectNeededColumns(sql);
			PG_TRY();
			{
				if (const char *l = BuildVariants(sql, &raw))
					large = l;
			}
			PG_FINALLY();
			{
				g_needed_columns = NIL;
			}
			PG_END_TRY();
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
	if (result.plan) {
		result.plan->delta_sql = ShareMarkedSubqueries(result.plan->delta_sql);
		result.plan->delta_sql_large = large.empty() ? large : ShareMarkedSubqueries(large);
	}
	return result;
}

} // namespace pgtrickle
