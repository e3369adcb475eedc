#include "cdc/cdc.hpp"

#include "catalog/catalog.hpp"
#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "guc.hpp"
#include "pg/security.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "storage/lock.h"
#include "utils/lsyscache.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"
}

#include <map>
#include <unordered_map>

namespace pgtrickle::cdc {

namespace {

constexpr const char *kTriggerNames[] = {"pgt_capture_ins", "pgt_capture_upd", "pgt_capture_del",
                                         "pgt_capture_trunc"};

std::string
BufferQualified(Oid relid) {
	return QuoteQualified("pgtrickle_changes", BufferName(relid));
}

} // namespace

std::string
BufferName(Oid source_relid) {
	return "changes_" + std::to_string(source_relid);
}

void
InstallTriggers(pg::SpiSession &spi, const std::string &target) {
	spi.Exec("CREATE TRIGGER pgt_capture_ins AFTER INSERT ON " + target +
	         " REFERENCING NEW TABLE AS __pgt_new FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle.pgt_capture()");
	spi.Exec("CREATE TRIGGER pgt_capture_upd AFTER UPDATE ON " + target +
	         " REFERENCING OLD TABLE AS __pgt_old NEW TABLE AS __pgt_new FOR EACH STATEMENT "
	         "EXECUTE FUNCTION pgtrickle.pgt_capture()");
	spi.Exec("CREATE TRIGGER pgt_capture_del AFTER DELETE ON " + target +
	         " REFERENCING OLD TABLE AS __pgt_old FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle.pgt_capture()");
	spi.Exec("CREATE TRIGGER pgt_capture_trunc AFTER TRUNCATE ON " + target +
	         " FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle.pgt_capture()");
	// Fire even under session_replication_role = replica (pg_restore, replication tools).
	for (const char *t : kTriggerNames)
		spi.Exec("ALTER TABLE " + target + " ENABLE ALWAYS TRIGGER " + t);
}

void
DropTriggers(pg::SpiSession &spi, const std::string &target) {
	for (const char *t : kTriggerNames)
		spi.Exec(std::string("DROP TRIGGER IF EXISTS ") + t + " ON " + target);
}

bool
EnsurePartitionTriggers(pg::SpiSession &spi, Oid root_relid) {
	// A partitioned table's statement triggers fire only for statements naming it; statements naming a
	// partition fire that partition's own triggers. So every partition (also ones attached later) gets
	// the same triggers.
	pg::SpiRows parts = spi.Query(
	    "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) "
	    "FROM pg_catalog.pg_partition_tree($1) t JOIN pg_catalog.pg_class c ON c.oid = t.relid "
	    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE t.relid <> $1 AND NOT EXISTS "
	    "(SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = 'pgt_capture_ins') "
	    "ORDER BY t.level, c.relname",
	    pg::SqlParams().Oid(root_relid));
	bool had_rows = false;
	pg::AsRole as_owner(pg::ExtensionOwner(spi));
	for (size_t i = 0; i < parts.Count(); i++) {
		InstallTriggers(spi, parts.Text(i, 0));
		// A table attached with rows brings them in without any change having been captured.
		had_rows = had_rows || spi.Query("SELECT EXISTS (SELECT 1 FROM " + parts.Text(i, 0) + ")").Bool(0, 0);
	}
	return had_rows;
}

bool
DropOrphanCaptureTriggers(pg::SpiSession &spi) {
	// Tables detached from a captured tree keep their capture triggers: remove them (their rows left
	// the source without any change having been captured).
	bool found = false;
	pg::AsRole as_owner(pg::ExtensionOwner(spi));
	pg::SpiRows orphans = spi.Query(
	    "SELECT DISTINCT g.tgrelid::pg_catalog.regclass::text FROM pg_catalog.pg_trigger g "
	    "WHERE g.tgname = 'pgt_capture_ins' AND NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking t "
	    "WHERE t.source_relid = g.tgrelid) AND NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking t "
	    "WHERE t.source_relid = COALESCE(pg_catalog.pg_partition_root(g.tgrelid)::pg_catalog.oid, g.tgrelid))");
	for (size_t i = 0; i < orphans.Count(); i++) {
		for (const char *t : kTriggerNames)
			spi.Exec(std::string("DROP TRIGGER IF EXISTS ") + t + " ON " + orphans.Text(i, 0));
		found = true;
	}
	return found;
}

void
EnsureCapture(pg::SpiSession &spi, const SourceRelation &source) {
	pg::SpiRows existing = spi.Query("SELECT 1 FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1",
	                                 pg::SqlParams().Oid(source.relid));
	if (existing.Count() > 0) {
		// A new reader may use a column added since capture started.
		SyncBufferColumns(spi, source.relid);
		return;
	}

	// Columns of the source, in order, without dropped ones.
	pg::SpiRows cols = spi.Query("SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 "
	                             "AND NOT attisdropped ORDER BY attnum",
	                             pg::SqlParams().Oid(source.relid));
	std::vector<std::string> names;
	std::vector<std::string> select_list;
	for (size_t i = 0; i < cols.Count(); i++) {
		const std::string &c = cols.Text(i, 0);
		// A stream table's own hidden columns are not part of what it shows its readers.
		if (source.is_stream_table && IsReservedColumnName(c))
			continue;
		if (IsReservedColumnName(c))
			throw UserError(sqlstate::kReservedName,
			                "column \"" + c + "\" of source table \"" + source.schema + "." + source.name +
			                    "\" uses a reserved name",
			                "Column names beginning with \"__pgt_\" are used by pg_trickle's change buffers.",
			                "Rename the column.");
		names.push_back(c);
		select_list.push_back("s." + QuoteIdent(c));
	}

	std::string src = QuoteQualified(source.schema, source.name);
	std::string buf = BufferQualified(source.relid);
	Oid owner = pg::ExtensionOwner(spi);
	{
		pg::AsRole as_owner(owner);
		spi.Exec("CREATE TABLE " + buf + " AS SELECT NULL::pg_catalog.xid8 AS \"__pgt_xid\", " +
		         "NULL::pg_catalog.\"char\" AS \"__pgt_op\", NULL::pg_catalog.int8 AS \"__pgt_cid\"" +
		         (select_list.empty() ? "" : ", ") +
		         Join(select_list, ", ") + " FROM " + src + " s WITH NO DATA");
		spi.Exec("ALTER TABLE " + buf + " ALTER COLUMN \"__pgt_xid\" SET NOT NULL, ALTER COLUMN \"__pgt_op\" SET NOT NULL, ALTER COLUMN \"__pgt_cid\" SET NOT NULL");
		spi.Exec("CREATE INDEX ON " + buf + " (\"__pgt_xid\")");
		// Planner statistics of an empty table (reltuples 0): the window of a buffer is small, and a
		// never-analyzed table would be estimated at hundreds of rows, turning index-driven delta joins
		// into hash joins over whole source tables. Autovacuum still vacuums the buffer but does not
		// re-analyze it at a moment when it happens to hold a bulk load.
		spi.Exec("ALTER TABLE " + buf + " SET (autovacuum_analyze_threshold = 2000000000)");
		spi.Exec("ANALYZE " + buf);
		InstallTriggers(spi, src);
		if (source.relkind == 'p')
			EnsurePartitionTriggers(spi, source.relid);
	}
	pg::SqlParams p;
	p.Oid(source.relid).Text(source.schema).Text(source.name).Text(BufferName(source.relid)).TextArray(names);
	spi.Exec("INSERT INTO pgtrickle.pgt_change_tracking (source_relid, source_schema, source_name, buffer_name, "
	         "captured_columns) VALUES ($1, $2, $3, $4, $5)",
	         p);
}

BufferSync
SyncBufferColumns(pg::SpiSession &spi, Oid source_relid) {
	pg::SpiRows tracking = spi.Query("SELECT buffer_name, EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables "
	                                 "WHERE pgt_relid = $1) FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1",
	                                 pg::SqlParams().Oid(source_relid));
	if (tracking.Count() == 0)
		return BufferSync::Unchanged;
	std::string buf = QuoteQualified("pgtrickle_changes", tracking.Text(0, 0));
	bool is_stream_table = tracking.Bool(0, 1);
	constexpr const char *kColumns =
	    "SELECT attname, pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
	    "WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum";
	pg::SpiRows src = spi.Query(kColumns, pg::SqlParams().Oid(source_relid));
	pg::SpiRows have = spi.Query(std::string(kColumns).replace(std::string(kColumns).find("$1"), 2,
	                                                           "('pgtrickle_changes.' || pg_catalog.quote_ident($1))::pg_catalog.regclass"),
	                             pg::SqlParams().Text(tracking.Text(0, 0)));
	std::map<std::string, std::string> wanted;
	std::vector<std::string> order;
	for (size_t i = 0; i < src.Count(); i++) {
		if (is_stream_table && IsReservedColumnName(src.Text(i, 0)))
			continue;
		wanted[src.Text(i, 0)] = src.Text(i, 1);
		order.push_back(src.Text(i, 0));
	}
	std::map<std::string, std::string> present;
	for (size_t i = 0; i < have.Count(); i++)
		if (!IsReservedColumnName(have.Text(i, 0)))
			present[have.Text(i, 0)] = have.Text(i, 1);
	std::vector<std::string> changes;
	bool lost = false;
	for (const auto &[name, type] : present)
		if (!wanted.count(name) || wanted[name] != type) {
			changes.push_back("DROP COLUMN " + QuoteIdent(name));
			lost = true;
		}
	for (const auto &name : order)
		if (!present.count(name) || present[name] != wanted[name])
			changes.push_back("ADD COLUMN " + QuoteIdent(name) + " " + wanted[name]);
	if (changes.empty())
		return BufferSync::Unchanged;
	{
		pg::AsRole as_owner(pg::ExtensionOwner(spi));
		spi.Exec("ALTER TABLE " + buf + " " + Join(changes, ", "));
	}
	spi.Exec("UPDATE pgtrickle.pgt_change_tracking SET captured_columns = $2 WHERE source_relid = $1",
	         pg::SqlParams().Oid(source_relid).TextArray(order));
	// Every backend rebuilds its capture statement for this source.
	pg::PgCall([&]() { CacheInvalidateRelcacheByRelid(source_relid); });
	return lost ? BufferSync::ColumnsChanged : BufferSync::ColumnsAdded;
}

void
DropCaptureIfUnused(pg::SpiSession &spi, Oid source_relid) {
	if (catalog::IsSourceInUse(spi, source_relid))
		return;
	// A WAL-captured source gives back its slot and replica identity first.
	ReleaseWalCapture(spi, source_relid);
	pg::SpiRows rows = spi.Query("DELETE FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1 RETURNING 1",
	                             pg::SqlParams().Oid(source_relid));
	if (rows.Count() == 0)
		return;
	Oid owner = pg::ExtensionOwner(spi);
	pg::AsRole as_owner(owner);
	// The source may already be gone (dropped with CASCADE); then its triggers went with it. A source
	// captured from the WAL has none: only existing triggers are dropped (no NOTICE for the others).
	pg::SpiRows rel = spi.Query(
	    "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), "
	    "pg_catalog.quote_ident(g.tgname) FROM pg_catalog.pg_class c "
	    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_trigger g ON g.tgrelid = c.oid "
	    "WHERE (c.oid = $1 OR (c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1)) AND c.relkind IN ('r', 'p'))) "
	    "AND g.tgname::text = ANY ($2::pg_catalog.text[]) ORDER BY 1, 2",
	    pg::SqlParams().Oid(source_relid).TextArray(std::vector<std::string>(std::begin(kTriggerNames),
	                                                                             std::end(kTriggerNames))));
	for (size_t i = 0; i < rel.Count(); i++)
		spi.Exec("DROP TRIGGER " + rel.Text(i, 1) + " ON " + rel.Text(i, 0));
	spi.Exec("DROP TABLE IF EXISTS " + BufferQualified(source_relid));
}

namespace {

// The trim lock of a source's buffer: an advisory lock tag of its own kind (field 4; the SQL-level
// advisory functions use 1 and 2), so it neither meets users' advisory locks nor VACUUM.
constexpr uint16 kTrimLockKind = 0x7074;

bool
TryTrimLock(Oid source_relid) {
	return pg::PgCall([&]() {
		LOCKTAG tag;
		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, source_relid, 0, kTrimLockKind);
		return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
	});
}

} // namespace

uint64_t
TrimBuffer(pg::SpiSession &spi, Oid source_relid) {
	// Two kept statements per source. The first gives the horizon, the oldest transaction any consumer
	// may still need (NULL, so nothing is deleted, while a populated consumer has no frontier, e.g.
	// after a restore; unpopulated consumers recompute fully and hold nothing back), and whether the
	// buffer holds a row below it. Its `min` is read by a plain index scan, which marks the entries of
	// rows an earlier trim deleted as dead: a trim with nothing to delete (every consumer but the last
	// to refresh) is an index probe, not a walk over every row deleted since the last VACUUM.
	// The second deletes below the horizon by a plain scan (no `ctid = ANY (ARRAY(…))`: as a filter,
	// that searches the array once per row; 13,000 rows took 300 ms).
	// Both are planned at every call (custom plans): the planner sizes a buffer by its current number
	// of pages, and a plan kept from a call when the buffer was empty scanned it sequentially forever.
	struct Plans {
		SPIPlanPtr horizon = nullptr, del = nullptr;
	};
	static std::unordered_map<Oid, Plans> plans;
	static Oid owner = InvalidOid;
	Plans &p = plans[source_relid];
	pg::SqlParams src;
	src.Oid(source_relid);
	if (!p.horizon) {
		std::string buf = BufferQualified(source_relid);
		p.horizon = pg::PrepareKept(
		    "SELECT h.x::text FROM (SELECT CASE WHEN pg_catalog.bool_or(st.frontier IS NULL AND st.is_populated) "
		    "THEN NULL ELSE pg_catalog.min(LEAST(pg_catalog.pg_snapshot_xmin(st.frontier), st.frontier_xid)) END "
		    "AS x FROM pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_stream_tables st USING (pgt_id) "
		    "WHERE d.source_relid = $1) h WHERE h.x OPERATOR(pg_catalog.>) (SELECT pg_catalog.min(b.\"__pgt_xid\") "
		    "FROM " + buf + " b)",
		    src, CURSOR_OPT_CUSTOM_PLAN);
		pg::SqlParams x;
		x.Typed(XID8OID, "0");
		p.del = pg::PrepareKept("DELETE FROM " + buf + " WHERE \"__pgt_xid\" OPERATOR(pg_catalog.<) $1", x,
		                        CURSOR_OPT_CUSTOM_PLAN);
	}
	if (!OidIsValid(owner))
		owner = pg::ExtensionOwner(spi);
	pg::AsRole as_owner(owner);
	pg::SpiRows horizon;
	spi.ExecPlan(p.horizon, src, &horizon);
	if (horizon.Count() == 0)
		return 0;
	// One trimmer per buffer at a time. A transaction that cannot take the lock at once leaves the
	// rows to a later refresh: no refresh waits on rows another one is deleting, and two refreshes
	// trimming the same buffers in different orders cannot deadlock.
	if (!TryTrimLock(source_relid))
		return 0;
	pg::SqlParams below;
	below.Typed(XID8OID, horizon.Text(0, 0));
	return spi.ExecPlan(p.del, below);
}

// ------------------------------------------------------------------------------------------------
// The capture trigger
// ------------------------------------------------------------------------------------------------

namespace {

enum CaptureOp { kInsert = 0, kUpdate, kDelete, kTruncate, kOpCount };

// Per source: the INSERT ... SELECT statement for each operation, prepared when that operation first
// fires (its transition tables must be registered to prepare it) and kept across transactions.
struct CapturePlans {
	SPIPlanPtr plans[kOpCount] = {nullptr, nullptr, nullptr, nullptr};
	std::string sql[kOpCount];
	Oid owner = InvalidOid;
	bool valid = false;
	bool untracked = false;
	// The direct path (rows written into the buffer without an SQL statement): for each buffer
	// attribute, where its value comes from (kFrom* or a 0-based attribute of the captured relation).
	std::string buffer_name;
	Oid buffer_relid = InvalidOid;
	bool direct_checked = false;
	bool direct = false;
	std::vector<int> from;
};

constexpr int kFromNull = -1, kFromXid = -2, kFromOp = -3, kFromCid = -4;

std::unordered_map<Oid, CapturePlans> &
PlanCache() {
	static std::unordered_map<Oid, CapturePlans> cache;
	return cache;
}

void
InvalidateCapturePlans(Datum, Oid relid) {
	// Called by PostgreSQL: no allocation, no throwing; plans are freed lazily on next use.
	auto &cache = PlanCache();
	if (relid == InvalidOid) {
		for (auto &entry : cache)
			entry.second.valid = false;
		return;
	}
	auto it = cache.find(relid);
	if (it != cache.end())
		it->second.valid = false;
	// A change to a buffer (columns added or retyped along with its source) invalidates its map.
	for (auto &entry : cache)
		if (entry.second.buffer_relid == relid)
			entry.second.valid = false;
}

SPIPlanPtr
PrepareKept(const std::string &sql) {
	const char *text = sql.c_str();
	return pg::PgCall([&]() {
		Oid types[2] = {XID8OID, INT8OID};
		SPIPlanPtr plan = SPI_prepare(text, 2, types);
		if (!plan)
			elog(ERROR, "could not prepare capture statement: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep capture plan");
		return plan;
	});
}

void
FreePlans(CapturePlans &plans) {
	for (SPIPlanPtr &p : plans.plans) {
		if (p) {
			SPIPlanPtr plan = p;
			pg::PgCall([&]() { SPI_freeplan(plan); });
			p = nullptr;
		}
	}
	plans.valid = false;
}

// Builds the statements' text (cheap) when the entry is new or invalidated.
CapturePlans &
GetPlans(pg::SpiSession &spi, Oid relid) {
	auto &cache = PlanCache();
	CapturePlans &plans = cache[relid];
	if (plans.valid)
		return plans;
	FreePlans(plans);
	plans.untracked = false;
	plans.direct_checked = false;
	plans.direct = false;
	plans.buffer_relid = InvalidOid;
	plans.from.clear();

	// The tracking row is the relation's own, or (for a partition) its partitioned root's.
	// Right after pg_restore (before the catalog is re-linked) OIDs are stale: match by name then.
	constexpr const char *kTracking =
	    "(SELECT * FROM pgtrickle.pgt_change_tracking WHERE source_relid IN ($1, "
	    "COALESCE(pg_catalog.pg_partition_root($1)::pg_catalog.oid, $1)) OR (source_schema, source_name) = "
	    "(SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
	    "ON n.oid = c.relnamespace WHERE c.oid = $1) "
	    "ORDER BY source_relid OPERATOR(pg_catalog.=) $1 DESC LIMIT 1)";
	// A captured column the relation no longer has (dropped or renamed) is captured as NULL rather
	// than failing the user's statement; the stream tables reading it need reinitialising anyway.
	pg::SpiRows rows = spi.Query(std::string("SELECT c, EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 "
	                                         "AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped) FROM ") +
	                                 kTracking + " t, pg_catalog.unnest(t.captured_columns) c",
	                             pg::SqlParams().Oid(relid));
	pg::SpiRows header = spi.Query(std::string("SELECT buffer_name, (SELECT relowner FROM pg_catalog.pg_class WHERE oid = "
	                                           "('pgtrickle_changes.' || pg_catalog.quote_ident(buffer_name))::pg_catalog.regclass) "
	                                           "FROM ") +
	                                   kTracking + " t",
	                               pg::SqlParams().Oid(relid));
	if (header.Count() == 0) {
		// No stream table reads this relation any more (e.g. a partition detached from a captured
		// table): a buffer exists exactly while a reader does, so there is nothing to record.
		plans.valid = true;
		plans.untracked = true;
		return plans;
	}
	std::string buf = QuoteQualified("pgtrickle_changes", header.Text(0, 0));
	plans.buffer_name = header.Text(0, 0);
	plans.owner = static_cast<Oid>(header.Int64(0, 1));
	std::vector<std::string> target{"\"__pgt_xid\"", "\"__pgt_op\"", "\"__pgt_cid\""};
	std::vector<std::string> from_old;
	std::vector<std::string> from_new;
	for (size_t i = 0; i < rows.Count(); i++) {
		std::string c = QuoteIdent(rows.Text(i, 0));
		bool present = rows.Bool(i, 1);
		target.push_back(c);
		from_old.push_back(present ? "o." + c : "NULL");
		from_new.push_back(present ? "n." + c : "NULL");
	}
	std::string insert_into = "INSERT INTO " + buf + " (" + Join(target, ", ") + ") ";
	std::string old_list = from_old.empty() ? "" : ", " + Join(from_old, ", ");
	std::string new_list = from_new.empty() ? "" : ", " + Join(from_new, ", ");
	plans.sql[kInsert] = insert_into + "SELECT $1, 'I', $2" + new_list + " FROM __pgt_new n";
	plans.sql[kDelete] = insert_into + "SELECT $1, 'D', $2" + old_list + " FROM __pgt_old o";
	plans.sql[kUpdate] = insert_into + "SELECT $1, 'D', $2" + old_list + " FROM __pgt_old o UNION ALL SELECT $1, 'I', $2" +
	                     new_list + " FROM __pgt_new n";
	plans.sql[kTruncate] = "INSERT INTO " + buf + " (\"__pgt_xid\", \"__pgt_op\", \"__pgt_cid\") VALUES ($1, 'T', $2)";
	plans.valid = true;
	return plans;
}

// Maps the buffer's attributes to the captured relation's by name, as the INSERT ... SELECT does. A
// column the relation no longer has is NULL. The direct path is used only when every mapped column
// has exactly the buffer's type (else the statement, which would coerce, is used).
void
CheckDirect(CapturePlans &plans, Relation source) {
	plans.direct_checked = true;
	plans.direct = false;
	plans.from.clear();
	std::string name = plans.buffer_name;
	pg::PgCall([&]() {
		Oid nsp = get_namespace_oid("pgtrickle_changes", true);
		Oid relid = OidIsValid(nsp) ? get_relname_relid(name.c_str(), nsp) : InvalidOid;
		if (!OidIsValid(relid))
			return;
		Relation buf = table_open(relid, AccessShareLock);
		TupleDesc bd = RelationGetDescr(buf);
		TupleDesc sd = RelationGetDescr(source);
		bool ok = true;
		for (int i = 0; i < bd->natts && ok; i++) {
			Form_pg_attribute b = TupleDescAttr(bd, i);
			int from = kFromNull;
			if (b->attisdropped)
				from = kFromNull;
			else if (strcmp(NameStr(b->attname), "__pgt_xid") == 0)
				from = kFromXid;
			else if (strcmp(NameStr(b->attname), "__pgt_op") == 0)
				from = kFromOp;
			else if (strcmp(NameStr(b->attname), "__pgt_cid") == 0)
				from = kFromCid;
			else {
				for (int j = 0; j < sd->natts; j++) {
					Form_pg_attribute a = TupleDescAttr(sd, j);
					if (!a->attisdropped && strcmp(NameStr(a->attname), NameStr(b->attname)) == 0) {
						if (a->atttypid != b->atttypid || (b->atttypmod != -1 && a->atttypmod != b->atttypmod))
							ok = false;
						from = j;
						break;
					}
				}
			}
			plans.from.push_back(from);
		}
		table_close(buf, NoLock);
		if (ok) {
			plans.buffer_relid = relid;
			plans.direct = true;
		}
	});
	if (!plans.direct)
		plans.from.clear();
}

// Writes the transition rows into the buffer as the INSERT ... SELECT would (old rows as 'D' first,
// then new rows as 'I'), without planning or executing a statement: heap multi-insert in batches,
// then the buffer's index entries.
void
DirectInsert(const CapturePlans &plans, TriggerData *td, CaptureOp op, Datum xid, int64 cid) {
	pg::PgCall([&]() {
		Relation buf = table_open(plans.buffer_relid, RowExclusiveLock);
		ResultRelInfo *rri = makeNode(ResultRelInfo);
		InitResultRelInfo(rri, buf, 1, nullptr, 0);
		ExecOpenIndices(rri, false);
		EState *estate = CreateExecutorState();
		CommandId mycid = GetCurrentCommandId(true);
		TupleDesc bd = RelationGetDescr(buf);
		TupleTableSlot *in = MakeSingleTupleTableSlot(RelationGetDescr(td->tg_relation), &TTSOpsMinimalTuple);
		constexpr int kBatch = 1000;
		TupleTableSlot *slots[kBatch];
		int nslots = 0, used = 0;
		BulkInsertState bistate = nullptr;
		auto flush = [&]() {
			if (used == 0)
				return;
			MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
			table_multi_insert(buf, slots, used, mycid, 0, bistate);
			MemoryContextSwitchTo(old);
			for (int i = 0; i < used; i++) {
				if (rri->ri_NumIndices > 0)
					list_free(ExecInsertIndexTuples(rri, slots[i], estate, false, false, nullptr, NIL, false));
				ExecClearTuple(slots[i]);
			}
			ResetPerTupleExprContext(estate);
			used = 0;
		};
		auto copy = [&](Tuplestorestate *rows, char opchar) {
			int ptr = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
			tuplestore_select_read_pointer(rows, ptr);
			tuplestore_rescan(rows);
			if (bistate == nullptr && tuplestore_tuple_count(rows) > 100)
				bistate = GetBulkInsertState();
			while (tuplestore_gettupleslot(rows, true, false, in)) {
				slot_getallattrs(in);
				if (used == nslots)
					slots[nslots++] = table_slot_create(buf, nullptr);
				TupleTableSlot *s = slots[used++];
				ExecClearTuple(s);
				for (int i = 0; i < bd->natts; i++) {
					int from = plans.from[i];
					s->tts_isnull[i] = false;
					switch (from) {
					case kFromNull:
						s->tts_values[i] = (Datum)0;
						s->tts_isnull[i] = true;
						break;
					case kFromXid:
						s->tts_values[i] = xid;
						break;
					case kFromOp:
						s->tts_values[i] = CharGetDatum(opchar);
						break;
					case kFromCid:
						s->tts_values[i] = Int64GetDatum(cid);
						break;
					default:
						s->tts_values[i] = in->tts_values[from];
						s->tts_isnull[i] = in->tts_isnull[from];
					}
				}
				ExecStoreVirtualTuple(s);
				ExecMaterializeSlot(s); // its values pointed into the transition tuple
				if (used == kBatch)
					flush();
			}
			tuplestore_select_read_pointer(rows, 0);
		};
		if (op == kUpdate || op == kDelete)
			copy(td->tg_oldtable, 'D');
		if (op == kUpdate || op == kInsert)
			copy(td->tg_newtable, 'I');
		flush();
		if (bistate)
			FreeBulkInsertState(bistate);
		for (int i = 0; i < nslots; i++)
			ExecDropSingleTupleTableSlot(slots[i]);
		ExecDropSingleTupleTableSlot(in);
		ExecCloseIndices(rri);
		FreeExecutorState(estate);
		table_close(buf, NoLock);
	});
}

Datum
CaptureImpl(FunctionCallInfo fcinfo) {
	if (!CALLED_AS_TRIGGER(fcinfo))
		throw UserError(sqlstate::kObjectNotInPrerequisiteState, "pgt_capture() must be called as a trigger");
	auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
	if (!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
		throw UserError(sqlstate::kObjectNotInPrerequisiteState,
		                "pgt_capture() must be an AFTER ... FOR EACH STATEMENT trigger");
	Oid relid = RelationGetRelid(td->tg_relation);

	CaptureOp op;
	Tuplestorestate *rows;
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) {
		op = kInsert;
		rows = td->tg_newtable;
	} else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
		op = kUpdate;
		rows = td->tg_newtable;
	} else if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
		op = kDelete;
		rows = td->tg_oldtable;
	} else {
		op = kTruncate;
		rows = nullptr;
	}
	// A statement that changed nothing writes nothing (and does not force an xid to be assigned).
	if (op != kTruncate && (rows == nullptr || pg::PgCall([&]() { return tuplestore_tuple_count(rows); }) == 0))
		return PointerGetDatum(nullptr);

	pg::SpiSession spi;
	pg::PgCall([&]() {
		if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
			elog(ERROR, "could not register transition tables");
	});
	// The writer needs no privileges on pg_trickle's catalog or buffers: capture runs as the owner of
	// the extension (looked up once per backend).
	static Oid extension_owner = InvalidOid;
	if (!OidIsValid(extension_owner))
		extension_owner = pg::ExtensionOwner(spi);
	pg::AsRole as_extension_owner(extension_owner);
	CapturePlans &plans = GetPlans(spi, relid);
	if (plans.untracked)
		return PointerGetDatum(nullptr);
	if (op != kTruncate && guc::direct_capture) {
		if (!plans.direct_checked)
			CheckDirect(plans, td->tg_relation);
		if (plans.direct) {
			// The command id lets a refresh in this same transaction tell which of its rows it has consumed.
			Datum xid = pg::PgCall([]() { return FullTransactionIdGetDatum(GetTopFullTransactionId()); });
			int64 cid = pg::PgCall([]() { return static_cast<int64>(GetCurrentCommandId(false)); });
			DirectInsert(plans, td, op, xid, cid);
			return PointerGetDatum(nullptr);
		}
	}
	if (!plans.plans[op])
		plans.plans[op] = PrepareKept(plans.sql[op]);
	SPIPlanPtr plan = plans.plans[op];
	pg::AsRole as_owner(plans.owner);
	pg::PgCall([&]() {
		// The command id lets a refresh in this same transaction tell which of its rows it has consumed.
		Datum values[2] = {FullTransactionIdGetDatum(GetTopFullTransactionId()),
		                   Int64GetDatum(static_cast<int64>(GetCurrentCommandId(false)))};
		int rc = SPI_execute_plan(plan, values, nullptr, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "change capture insert failed: %s", SPI_result_code_string(rc));
	});
	return PointerGetDatum(nullptr);
}

} // namespace

void
RegisterInvalidationCallbacks() {
	CacheRegisterRelcacheCallback(InvalidateCapturePlans, (Datum)0);
}

} // namespace pgtrickle::cdc

extern "C" {
PG_FUNCTION_INFO_V1(pgt_capture);
Datum
pgt_capture(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() { return pgtrickle::cdc::CaptureImpl(fcinfo); });
}
}
