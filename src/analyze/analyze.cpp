#include "analyze/analyze.hpp"

#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "pg/bridge.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "rewrite/rewriteHandler.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "catalog/pg_proc.h"
}

namespace pgtrickle {

const char *
SourceRelation::SourceType() const {
	if (is_stream_table)
		return "STREAM_TABLE";
	if (is_partition)
		return "PARTITION";
	switch (relkind) {
	case 'v':
		return "VIEW";
	case 'm':
		return "MATVIEW";
	case 'f':
		return "FOREIGN_TABLE";
	default:
		return "TABLE";
	}
}

namespace {

// --- PostgreSQL-side helpers (C style: only trivially destructible state) -------------------------

struct QueryErrorContext {
	const char *query;
};

// Report syntax/analysis error positions relative to the stream table's query, like SQL functions do.
void
QueryErrorCallback(void *arg) {
	auto *ctx = static_cast<QueryErrorContext *>(arg);
	int pos = geterrposition();
	if (pos > 0) {
		errposition(0);
		internalerrposition(pos);
		internalerrquery(ctx->query);
	}
	errcontext("stream table query");
}

bool
CollectRelationsWalker(Node *node, void *context) {
	List **relids = static_cast<List **>(context);
	if (node == nullptr)
		return false;
	if (IsA(node, RangeTblEntry)) {
		auto *rte = reinterpret_cast<RangeTblEntry *>(node);
		// An expanded view keeps its relid on the RTE_SUBQUERY that replaced it (PostgreSQL 16+).
		if ((rte->rtekind == RTE_RELATION || rte->rtekind == RTE_SUBQUERY) && OidIsValid(rte->relid))
			*relids = list_append_unique_oid(*relids, rte->relid);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker(reinterpret_cast<Query *>(node), CollectRelationsWalker, context,
		                         QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, CollectRelationsWalker, context);
}

bool
RowMarkWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	if (IsA(node, Query)) {
		if (reinterpret_cast<Query *>(node)->rowMarks != NIL)
			return true;
		return query_tree_walker(reinterpret_cast<Query *>(node), RowMarkWalker, context, 0);
	}
	return expression_tree_walker(node, RowMarkWalker, context);
}

bool
VolatileChecker(Oid func_id, void *context) {
	if (func_volatile(func_id) == PROVOLATILE_VOLATILE) {
		List **funcs = static_cast<List **>(context);
		*funcs = list_append_unique_oid(*funcs, func_id);
	}
	return false;
}

bool
VolatileWalker(Node *node, void *context) {
	if (node == nullptr)
		return false;
	check_functions_in_node(node, VolatileChecker, context);
	if (IsA(node, Query))
		return query_tree_walker(reinterpret_cast<Query *>(node), VolatileWalker, context, 0);
	return expression_tree_walker(node, VolatileWalker, context);
}

struct RawAnalysis {
	Query *query;           // analysed, not rewritten
	Query *rewritten;       // views expanded
	char *deparsed;
	List *relids;
	List *volatile_funcs;
	bool has_volatile;
	bool has_row_marks;
	int statement_count;
	NodeTag statement_tag;
};

// Phase 1: parse only; tells what kind of statement it is. Runs under PgCall.
void
ParseStatement(const char *sql, RawAnalysis *out, RawStmt **raw) {
	QueryErrorContext qctx{sql};
	ErrorContextCallback cb;
	cb.callback = QueryErrorCallback;
	cb.arg = &qctx;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	List *stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	error_context_stack = cb.previous;
	out->statement_count = list_length(stmts);
	if (out->statement_count == 1) {
		*raw = linitial_node(RawStmt, stmts);
		out->statement_tag = nodeTag((*raw)->stmt);
	}
}

// Phase 2: analyse, rewrite, deparse, collect. Runs under PgCall.
void
AnalyzeStatement(const char *sql, RawStmt *raw, RawAnalysis *out) {
	QueryErrorContext qctx{sql};
	ErrorContextCallback cb;
	cb.callback = QueryErrorCallback;
	cb.arg = &qctx;
	cb.previous = error_context_stack;
	error_context_stack = &cb;

	Query *query = parse_analyze_fixedparams(raw, sql, nullptr, 0, nullptr);
	out->query = query;
	if (query->commandType == CMD_SELECT && query->utilityStmt == nullptr) {
		List *rewritten = QueryRewrite(static_cast<Query *>(copyObject(query)));
		if (list_length(rewritten) != 1)
			elog(ERROR, "stream table query rewrote into %d queries", list_length(rewritten));
		out->rewritten = linitial_node(Query, rewritten);

		// Deparse with an empty search_path so that every object name comes out qualified.
		int nest = NewGUCNestLevel();
		(void)set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
		                        false);
		out->deparsed = pg_get_querydef(query, false);
		AtEOXact_GUC(true, nest);

		out->relids = NIL;
		(void)CollectRelationsWalker(reinterpret_cast<Node *>(out->rewritten), &out->relids);
		out->volatile_funcs = NIL;
		(void)VolatileWalker(reinterpret_cast<Node *>(out->rewritten), &out->volatile_funcs);
		out->has_volatile = contain_volatile_functions(reinterpret_cast<Node *>(out->rewritten));
		out->has_row_marks = RowMarkWalker(reinterpret_cast<Node *>(query), nullptr);
	}
	error_context_stack = cb.previous;
}

} // namespace

AnalyzedQuery
AnalyzeDefiningQuery(const std::string &sql_in) {
	AnalyzedQuery result;
	result.original = TrimQueryText(sql_in);
	if (result.original.empty())
		throw UserError(sqlstate::kInvalidParameterValue, "stream table query must not be empty");
	const char *sql = result.original.c_str();

	RawAnalysis raw_analysis{};
	RawStmt *raw = nullptr;
	pg::PgCall([&]() { ParseStatement(sql, &raw_analysis, &raw); });
	if (raw_analysis.statement_count != 1)
		throw UserError(sqlstate::kInvalidParameterValue,
		                "stream table query must be exactly one statement",
		                "The query text contains " + std::to_string(raw_analysis.statement_count) + " statements.");
	if (raw_analysis.statement_tag != T_SelectStmt)
		throw UserError(sqlstate::kFeatureNotSupported, "stream table query must be a SELECT statement",
		                "Only SELECT, VALUES, set operations and WITH queries define stream tables.");
	auto *select = reinterpret_cast<SelectStmt *>(raw->stmt);
	if (select->intoClause)
		throw UserError(sqlstate::kFeatureNotSupported, "SELECT INTO is not allowed in a stream table query");

	pg::PgCall([&]() { AnalyzeStatement(sql, raw, &raw_analysis); });
	Query *query = raw_analysis.query;
	if (query->commandType != CMD_SELECT || query->utilityStmt)
		throw UserError(sqlstate::kFeatureNotSupported, "stream table query must be a SELECT statement");
	if (query->hasModifyingCTE)
		throw UserError(sqlstate::kFeatureNotSupported,
		                "data-modifying statements in WITH are not allowed in a stream table query");
	if (raw_analysis.has_row_marks)
		throw UserError(sqlstate::kFeatureNotSupported,
		                "FOR UPDATE/FOR SHARE is not allowed in a stream table query");
	result.deparsed = raw_analysis.deparsed;

	// Output columns.
	ListCell *lc;
	foreach (lc, query->targetList) {
		auto *tle = static_cast<TargetEntry *>(lfirst(lc));
		if (tle->resjunk)
			continue;
		OutputColumn col;
		col.name = tle->resname ? tle->resname : "?column?";
		Node *expr = reinterpret_cast<Node *>(tle->expr);
		col.type = pg::PgCall([&]() { return exprType(expr); });
		col.typmod = pg::PgCall([&]() { return exprTypmod(expr); });
		col.collation = pg::PgCall([&]() { return exprCollation(expr); });
		Oid type = col.type;
		int32 typmod = col.typmod;
		char *type_sql = pg::PgCall([&]() { return format_type_with_typemod(type, typmod); });
		col.type_sql = type_sql;
		result.columns.push_back(std::move(col));
	}
	if (result.columns.empty())
		throw UserError(sqlstate::kFeatureNotSupported, "stream table query must return at least one column");
	for (size_t i = 0; i < result.columns.size(); i++) {
		const std::string &name = result.columns[i].name;
		if (IsReservedColumnName(name))
			throw UserError(sqlstate::kReservedName,
			                "column name \"" + name + "\" is reserved",
			                "Column names beginning with \"__pgt_\" are used by pg_trickle for hidden columns.",
			                "Give the column another alias in the query.");
		for (size_t j = 0; j < i; j++)
			if (result.columns[j].name == name)
				throw UserError(sqlstate::kDuplicateColumn,
				                "column \"" + name + "\" appears more than once in the stream table query",
				                {}, "Give each output column a distinct alias.");
	}

	// Sources.
	std::vector<Oid> raw_relids;
	foreach (lc, raw_analysis.relids)
		raw_relids.push_back(lfirst_oid(lc));
	std::vector<SourceRelation> extra_roots;
	foreach (lc, raw_analysis.relids) {
		Oid relid = lfirst_oid(lc);
		SourceRelation src;
		src.relid = relid;
		char persistence = 0;
		char *schema = nullptr;
		char *name = nullptr;
		pg::PgCall([&]() {
			src.relkind = get_rel_relkind(relid);
			persistence = get_rel_persistence(relid);
			schema = get_namespace_name(get_rel_namespace(relid));
			name = get_rel_name(relid);
		});
		src.schema = schema ? schema : "";
		src.name = name ? name : "";
		if (persistence == RELPERSISTENCE_TEMP)
			throw UserError(sqlstate::kFeatureNotSupported,
			                "temporary table \"" + src.name + "\" cannot be a source of a stream table",
			                "A stream table outlives the session that owns a temporary table.");
		if (src.schema == "pg_catalog" || src.schema == "information_schema" || src.schema == "pgtrickle" ||
		    src.schema == "pgtrickle_changes")
			if (src.relkind == 'r' || src.relkind == 'p')
				throw UserError(sqlstate::kFeatureNotSupported,
				                "system table \"" + src.schema + "." + src.name +
				                    "\" cannot be a source of a stream table",
				                "Changes to system catalogs cannot be captured.");
		bool is_partition = pg::PgCall([&]() { return get_rel_relispartition(relid); });
		if (is_partition) {
			// Writes usually go through the partitioned root, whose triggers capture them: the root is
			// captured (and recorded as a source), the partition itself is not.
			src.is_partition = true;
			Oid root = pg::PgCall([&]() { return llast_oid(get_partition_ancestors(relid)); });
			bool known = false;
			for (const auto &s : result.sources)
				known = known || s.relid == root;
			for (Oid other : raw_relids)
				known = known || other == root;
			if (!known) {
				SourceRelation r;
				r.relid = root;
				char *rs = nullptr;
				char *rn = nullptr;
				pg::PgCall([&]() {
					r.relkind = get_rel_relkind(root);
					rs = get_namespace_name(get_rel_namespace(root));
					rn = get_rel_name(root);
				});
				r.schema = rs;
				r.name = rn;
				extra_roots.push_back(std::move(r));
			}
		}
		result.sources.push_back(std::move(src));
	}
	for (auto &r : extra_roots)
		result.sources.push_back(std::move(r));

	// Volatile functions.
	foreach (lc, raw_analysis.volatile_funcs) {
		Oid f = lfirst_oid(lc);
		char *fname = pg::PgCall([&]() { return get_func_name(f); });
		result.volatile_functions.emplace_back(fname ? fname : "?");
	}
	result.has_volatile = raw_analysis.has_volatile;
	return result;
}

} // namespace pgtrickle
