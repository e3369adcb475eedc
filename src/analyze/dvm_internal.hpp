// Internal declarations shared by the differential engine's translation units (src/analyze/dvm*.cpp):
// the PostgreSQL-tree helpers, C-style, run under one PgCall. Not for use outside src/analyze.
#pragma once

#include "analyze/dvm.hpp"
#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "core/shared_windows.hpp"
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
#include "parser/parse_coerce.h"
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
#include "catalog/pg_am_d.h"
#include "utils/syscache.h"
#include "parser/parsetree.h"
#include "parser/parse_relation.h"
#include "access/sysattr.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_attribute.h"
}

namespace pgtrickle::dvm_detail {

struct BuildCtx {
	const char *unsupported; // first reason found (palloc'd)
	StringInfoData tree;     // operator tree
};

// The states of a keyed base-table input, as weighted SQL (see ConsistentJoinDelta).
struct KeyedStates {
	char *pos;     // rows the window inserted (net)
	char *neg;     // rows the window deleted (net), weight positive
	char *neg_shared; // neg from the window computed once per statement (BaseDeltaSql's `shared`)
	char *kept;    // live rows whose key the window did not touch
	char *kept_ok; // kept, plus the "__pgt_ok" flag column
	char *before;  // the old state: kept + neg
	// The old state as the live table (flag "__pgt_ok": key untouched) plus neg (flag true). The
	// live arm has no WHERE, so PostgreSQL can scan it by index inside a join; the term filters on
	// the flag (and guards error-prone conditions with it, see GuardMixedStateQuals).
	char *before_ok;
	char *live_ok; // the live arm of before_ok alone: every live row, flagged
	// The old state (weighted rows, no flag) as before_ok filtered on its flag above the UNION ALL: the
	// live arm is flattened into an append relation, so the planner reaches it by index (`before` is
	// a subquery with its own WHERE, scanned whole).
	char *before_flat;
};

struct SublinkCollect {
	List *sublinks;
};

struct RelCheckCtx {
	BuildCtx *ctx;
	List *relids; // every table read (Oid list, with repeats removed)
	bool ok;
};

void Unsupported(BuildCtx *ctx, const char *fmt, const char *arg);
char *Deparse(Query *q);
char *RewriteWindowLevels(Query *q);
Query *LevelInput(Query *q);
List *PartitionExprs(Query *q, WindowClause *wc);
Query *ParseGenerated(const char *sql);
void TreeLine(BuildCtx *ctx, int depth, const char *text);
bool IsUnionAllTree(Node *n);
void CollectSetopLeaves(Node *n, List **leaves);
void CollectJoinInputs(Node *n, List **inputs);
bool CheckPaddedSide(BuildCtx *ctx, Query *q, Node *n);
bool CheckJoinTree(BuildCtx *ctx, Node *n, Query *q = nullptr);
bool CheckSpjLevel(BuildCtx *ctx, Query *q, int depth, bool allow_grouping);
bool CheckDifferentiable(BuildCtx *ctx, Query *q, int depth);
char *RelationColumns(Oid relid, const char *alias, bool from_buffer, bool named = true);
bool AllColumnsGroupable(Oid relid);
char *BaseDeltaSql(RangeTblEntry *rte, bool shared = false);
char *LiveRelation(RangeTblEntry *rte);
char *BufferRelation(Oid relid);
char *BasePostSql(RangeTblEntry *rte);
char *PreStateSql(const char *post_sql, const char *delta_sql, int ncols);
char *InputDeltaSql(RangeTblEntry *rte);
char *InputPostSql(RangeTblEntry *rte);
void ReplaceWithWeighted(RangeTblEntry *rte, const char *sql, bool with_ok = false);
Expr *WeightVar(Index rtindex, RangeTblEntry *rte);
Expr *Int8Const(int64 v);
// Set while building the variant of the delta for large change windows (see BuildDvmPlan).
extern bool g_large_windows;
List *OneTarget();
List *KeyTargets(List *exprs, int first_resno);
int AddKeyTargets(Query *q, List *keys, bool keys_first);
void AddConjunct(Query *q, Expr *conj);
List *InputRelations(RangeTblEntry *rte);
List *FenceSublinkConditions(Query *term, List *quals);
void FenceTermSublinks(Query *term);
void AppendTerm(StringInfo s, Query *term, Expr *weight, List *gate = NIL, List *also_gate = NIL);
void MakePlaceholderRte(RangeTblEntry *rte, const char *name);
BuildCtx ScratchCtx();
List *VisibleTargets(List *tlist);
void CollectJoinQuals(Node *n, List **quals);
Query *FlattenInnerJoins(Query *q);
List *RelationKey(Oid relid);
char *PositionalNames(int n);
char *PositionalRefs(const char *alias, int n);
void GuardMixedStateQuals(Query *term, Bitmapset *kept_rels);
KeyedStates KeyedStatesOf(RangeTblEntry *rte);
// Also returns each input's old state (kept + deleted rows) in old_state[i].
char *ConsistentJoinDelta(Query *q, List *inputs, Oid mul, char **old_state);
bool IsDependentItem(RangeTblEntry *rte);
List *DeltaInputs(Query *q);
List *LateralBodies(Query *q);
bool InputsKeyed(Query *q, List *inputs);
char *DeltaOfQuery(Query *q);
bool CollectAggsWalker(Node *node, void *context);
Param *MakePlaceholder(int id, Node *like);
Node *PlaceholderMutator(Node *node, void *context);
char *DeparseStandalone(Expr *expr);
bool AggLevelSublinksWalker(Node *node, void *context);
const char *TypeSql(Oid type, int32 typmod);
bool Hashable(Oid type);
int ClassifyAgg(Aggref *a, Oid *argtype);
char *ChangedRowsSql(RangeTblEntry *rte);
char *AnyChangeSql(List *relids);
char *AllImagesSql(RangeTblEntry *rte);
char *PositionalColumnDefs(Oid relid);
char *OldRowsSql(RangeTblEntry *rte);
bool CollectSublinksWalker(Node *node, void *context);
List *LevelSublinks(Query *q);
bool SublinkOutsideAggs(Node *node, void *context);
bool ContainsSublink(Node *n);
List *FromRelations(Query *q, List *out);
bool IsPlainSpj(Query *q);
bool BodyIsSimple(Query *body);
bool CheckRelationsWalker(Node *node, void *context);
void CheckRelationsIn(Query *q, RelCheckCtx *c);
List *RelationsRead(Query *q);
bool CheckSublinkBody(BuildCtx *ctx, Query *body);
bool CheckLevelSublinks(BuildCtx *ctx, Query *q, int depth);
Node *SublinkParamMutator(Node *node, void *context);
Expr *SublinkRowCondition(SubLink *sl);
SubLink *MakeExists(Query *sub);
List *ProbeArms(SubLink *sl, Query *outer);
void ReplaceWithRows(RangeTblEntry *rte, const char *sql);
bool OldStateWalker(Node *node, void *context);
void OldStateInQuery(Query *q);
char *SublinkStateDelta(Query *q, List *inputs, Oid mul, char **old_state);
// A condition (SQL) under which a change can alter some subquery's result for every row of level q, or
// nullptr (see dvm_sublink.cpp).
char *EveryRowCondition(Query *q);
JoinExpr *FindOuterJoin(Node *n);
Node *ReplaceJoinNode(Node *n, Node *target, Node *replacement);
Bitmapset *JoinTreeRelids(Node *n);
Node *NullOutMutator(Node *node, void *context);
Node *LevelUpMutator(Node *node, void *context);
// Null when the subquery range-table entry `pad` on the NULL-padded side of `j` is maintained (the
// anti-join arm reads its tables), else why not.
const char *PaddedSubqueryProblem(Query *q, JoinExpr *j, Node *pad);
Query *AntiJoinArm(Query *q, JoinExpr *j, bool keep_left);
List *OuterJoinArms(Query *q);
Query *FlattenJoinAliases(Query *q);
bool NeedsKeyedRecompute(Query *q);
const char *RecomputeKeys(Query *q, List **keys);
Query *RecomputeInput(Query *q, List *keys);
char *KeyedPart(Query *full, int nkeys, int nvisible, const char *touched, int sign);
char *KeyedRecomputeDelta(Query *q);
extern int g_touched_seq; // names the touched-keys CTEs of one delta (reset per build)
bool InlineCtesWalker(Node *node, void *context);
Query *InlineCtes(Query *q);
bool SetopNeedsRewrite(Node *n);
char *SetopText(Query *q, Node *n, SetOperationStmt *top);
char *RewriteSetops(Query *q);
char *BasePostWeighted(RangeTblEntry *rte);
char *RecursiveDelta(BuildCtx *ctx, Query *q, List *visible_names, bool *set_semantics, List **index_columns);
Node *GroupingSetMutator(Node *node, void *context);
char *RewriteGroupingSets(Query *q);

} // namespace pgtrickle::dvm_detail
