// The logical decoding output plugin "pg_trickle" (this library; see README.md, "WAL capture").
//
// PostgreSQL calls these callbacks while a backend runs pg_logical_slot_peek_changes() on one of
// pg_trickle's slots. They are plain C code (no C++ objects, nothing that throws): an ereport(ERROR)
// longjmps straight through them to the decoding function's PG_CATCH.
//
// Options (all required):
//   relid    the source table (decimal OID): changes of other relations are skipped, except of
//            partitions below it (mapped to its columns by name)
//   attnums  comma-separated attribute numbers, in the order of the buffer's captured columns
//            (0 = the column no longer exists: NULL)
//   after    an LSN ("X/X"): transactions whose commit record starts at or before it are skipped
//            (already in the buffer, or captured by the triggers before the hand-over)
//
// Output, one text row per changed row: a text[] literal
//   {op,full xid,commit lsn,value,value,...}
// with op I (insert), D (delete; an UPDATE is D + I) or T (TRUNCATE marker, no values), the
// transaction's 64-bit id and its commit LSN, then the values in their type's text form (NULL for SQL
// NULL), so the reading statement casts each with the buffer column's type.
#include "pg/postgres.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/partition.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "varatt.h"
}

namespace {

// A partition of a partitioned source: its attribute numbers for the captured columns (by name).
struct LeafMap {
	Oid relid;
	bool captured; // a partition below the source
	AttrNumber *attnums;
};

struct DecoderState {
	Oid relid;
	XLogRecPtr after;
	int natts;
	AttrNumber *attnums;
	MemoryContext cxt; // reset per row
	MemoryContext leaf_cxt;
	LeafMap *leaves;
	int nleaves, leaves_cap;
};

XLogRecPtr
ParseLsn(const char *text) {
	unsigned int hi = 0;
	unsigned int lo = 0;
	if (sscanf(text, "%X/%X", &hi, &lo) != 2)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid LSN \"%s\" for option \"after\"", text)));
	return (static_cast<XLogRecPtr>(hi) << 32) | lo;
}

void
Startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init) {
	auto *state = static_cast<DecoderState *>(palloc0(sizeof(DecoderState)));
	state->cxt = AllocSetContextCreate(ctx->context, "pg_trickle decoder row", ALLOCSET_DEFAULT_SIZES);
	state->leaf_cxt = ctx->context;
	bool have_relid = false;
	bool have_after = false;
	bool have_attnums = false;
	ListCell *lc;
	foreach (lc, ctx->output_plugin_options) {
		DefElem *elem = static_cast<DefElem *>(lfirst(lc));
		const char *value = elem->arg ? strVal(elem->arg) : "";
		if (strcmp(elem->defname, "relid") == 0) {
			state->relid = static_cast<Oid>(strtoul(value, nullptr, 10));
			have_relid = true;
		} else if (strcmp(elem->defname, "after") == 0) {
			state->after = ParseLsn(value);
			have_after = true;
		} else if (strcmp(elem->defname, "attnums") == 0) {
			int n = *value ? 1 : 0;
			for (const char *p = value; *p; p++)
				n += *p == ',';
			state->natts = n;
			state->attnums = static_cast<AttrNumber *>(palloc0(sizeof(AttrNumber) * (n + 1)));
			const char *p = value;
			for (int i = 0; i < n; i++) {
				state->attnums[i] = static_cast<AttrNumber>(strtol(p, nullptr, 10));
				p = strchr(p, ',');
				if (!p)
					break;
				p++;
			}
			have_attnums = true;
		} else {
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			                errmsg("option \"%s\" is not known to the pg_trickle output plugin", elem->defname)));
		}
	}
	// Creating the slot (is_init) passes no options; decoding always does.
	if (!is_init && (!have_relid || !have_after || !have_attnums))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("the pg_trickle output plugin needs the options relid, attnums and after")));
	ctx->output_plugin_private = state;
	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;
}

void
Shutdown(LogicalDecodingContext *ctx) {
	auto *state = static_cast<DecoderState *>(ctx->output_plugin_private);
	if (state)
		MemoryContextDelete(state->cxt);
}

void
Begin(LogicalDecodingContext *, ReorderBufferTXN *) {
}

void
Commit(LogicalDecodingContext *, ReorderBufferTXN *, XLogRecPtr) {
}

void
AppendQuoted(StringInfo out, const char *value) {
	appendStringInfoChar(out, '"');
	for (const char *p = value; *p; p++) {
		if (*p == '"' || *p == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *p);
	}
	appendStringInfoChar(out, '"');
}

void
AppendHeader(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, char op) {
	FullTransactionId fxid = FullTransactionIdFromAllowableAt(ReadNextFullTransactionId(), txn->xid);
	appendStringInfo(ctx->out, "{%c,%llu,%X/%X", op, static_cast<unsigned long long>(U64FromFullTransactionId(fxid)),
	                 static_cast<uint32>(txn->final_lsn >> 32), static_cast<uint32>(txn->final_lsn));
}

// One row: the header and the captured columns of `tuple`. An UPDATE's new tuple does not carry
// TOASTed values it left unchanged; they are taken from `fill_from` (the old tuple, complete under
// REPLICA IDENTITY FULL).
void
WriteRow(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation rel, const AttrNumber *attnums, char op,
         HeapTuple tuple, HeapTuple fill_from) {
	auto *state = static_cast<DecoderState *>(ctx->output_plugin_private);
	TupleDesc desc = RelationGetDescr(rel);
	MemoryContext old = MemoryContextSwitchTo(state->cxt);
	OutputPluginPrepareWrite(ctx, true);
	AppendHeader(ctx, txn, op);
	for (int i = 0; i < state->natts; i++) {
		AttrNumber attnum = attnums[i];
		appendStringInfoChar(ctx->out, ',');
		if (attnum <= 0 || attnum > desc->natts || TupleDescAttr(desc, attnum - 1)->attisdropped) {
			appendStringInfoString(ctx->out, "NULL");
			continue;
		}
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
		bool isnull = false;
		Datum value = heap_getattr(tuple, attnum, desc, &isnull);
		if (!isnull && att->attlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value))) {
			if (!fill_from)
				ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				                errmsg("decoded row of \"%s\" lacks the unchanged TOASTed value of column \"%s\"",
				                       RelationGetRelationName(rel), NameStr(att->attname)),
				                errdetail("The table's REPLICA IDENTITY is not FULL.")));
			value = heap_getattr(fill_from, attnum, desc, &isnull);
		}
		if (isnull) {
			appendStringInfoString(ctx->out, "NULL");
			continue;
		}
		Oid output_fn;
		bool is_varlena;
		getTypeOutputInfo(att->atttypid, &output_fn, &is_varlena);
		if (is_varlena)
			value = PointerGetDatum(PG_DETOAST_DATUM(value));
		AppendQuoted(ctx->out, OidOutputFunctionCall(output_fn, value));
	}
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
	MemoryContextSwitchTo(old);
	MemoryContextReset(state->cxt);
}

// The captured columns' attribute numbers in `rel`, or nullptr when `rel` is neither the source nor
// a partition below it. Partitions are looked up (catalog as of the change) once per decoding call.
const AttrNumber *
CapturedAttnums(DecoderState *state, Relation rel) {
	Oid relid = RelationGetRelid(rel);
	if (relid == state->relid)
		return state->attnums;
	if (!rel->rd_rel->relispartition)
		return nullptr;
	for (int i = 0; i < state->nleaves; i++)
		if (state->leaves[i].relid == relid)
			return state->leaves[i].captured ? state->leaves[i].attnums : nullptr;
	MemoryContext old = MemoryContextSwitchTo(state->leaf_cxt);
	if (state->nleaves == state->leaves_cap) {
		int cap = state->leaves_cap ? state->leaves_cap * 2 : 8;
		state->leaves = static_cast<LeafMap *>(state->leaves ? repalloc(state->leaves, sizeof(LeafMap) * cap)
		                                                     : palloc(sizeof(LeafMap) * cap));
		state->leaves_cap = cap;
	}
	LeafMap *m = &state->leaves[state->nleaves++];
	m->relid = relid;
	m->captured = list_member_oid(get_partition_ancestors(relid), state->relid);
	m->attnums = static_cast<AttrNumber *>(palloc0(sizeof(AttrNumber) * (state->natts + 1)));
	if (m->captured) {
		for (int i = 0; i < state->natts; i++) {
			char *name = state->attnums[i] > 0 ? get_attname(state->relid, state->attnums[i], true) : nullptr;
			AttrNumber a = name ? get_attnum(relid, name) : InvalidAttrNumber;
			m->attnums[i] = a == InvalidAttrNumber ? 0 : a;
		}
	}
	MemoryContextSwitchTo(old);
	return m->captured ? m->attnums : nullptr;
}

void
Change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation rel, ReorderBufferChange *change) {
	auto *state = static_cast<DecoderState *>(ctx->output_plugin_private);
	if (txn->final_lsn <= state->after)
		return;
	const AttrNumber *attnums = CapturedAttnums(state, rel);
	if (!attnums)
		return;
	HeapTuple oldtuple = change->data.tp.oldtuple;
	HeapTuple newtuple = change->data.tp.newtuple;
	switch (change->action) {
	case REORDER_BUFFER_CHANGE_INSERT:
		if (newtuple)
			WriteRow(ctx, txn, rel, attnums, 'I', newtuple, nullptr);
		break;
	case REORDER_BUFFER_CHANGE_UPDATE:
	case REORDER_BUFFER_CHANGE_DELETE:
		// The relation as of this change (historic catalog): under any other replica identity the old
		// row carries at most the key columns (the others read as NULL), which must not reach the buffer.
		if (rel->rd_rel->relreplident != REPLICA_IDENTITY_FULL)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			                errmsg("decoded %s on \"%s\" under REPLICA IDENTITY other than FULL",
			                       change->action == REORDER_BUFFER_CHANGE_UPDATE ? "UPDATE" : "DELETE",
			                       RelationGetRelationName(rel)),
			                errdetail("WAL capture needs REPLICA IDENTITY FULL on the source table; it was changed.")));
		if (!oldtuple)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			                errmsg("decoded %s on \"%s\" carries no old row", change->action == REORDER_BUFFER_CHANGE_UPDATE ? "UPDATE" : "DELETE",
			                       RelationGetRelationName(rel)),
			                errdetail("WAL capture needs REPLICA IDENTITY FULL on the source table.")));
		WriteRow(ctx, txn, rel, attnums, 'D', oldtuple, nullptr);
		if (change->action == REORDER_BUFFER_CHANGE_UPDATE && newtuple)
			WriteRow(ctx, txn, rel, attnums, 'I', newtuple, oldtuple);
		break;
	default:
		break;
	}
}

void
Truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, int nrelations, Relation relations[],
         ReorderBufferChange *) {
	auto *state = static_cast<DecoderState *>(ctx->output_plugin_private);
	if (txn->final_lsn <= state->after)
		return;
	for (int i = 0; i < nrelations; i++) {
		if (!CapturedAttnums(state, relations[i]))
			continue;
		OutputPluginPrepareWrite(ctx, true);
		AppendHeader(ctx, txn, 'T');
		for (int c = 0; c < state->natts; c++)
			appendStringInfoString(ctx->out, ",NULL");
		appendStringInfoChar(ctx->out, '}');
		OutputPluginWrite(ctx, true);
		return;
	}
}

} // namespace

extern "C" {
PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);

void
_PG_output_plugin_init(OutputPluginCallbacks *cb) {
	cb->startup_cb = Startup;
	cb->begin_cb = Begin;
	cb->change_cb = Change;
	cb->truncate_cb = Truncate;
	cb->commit_cb = Commit;
	cb->shutdown_cb = Shutdown;
}
}
