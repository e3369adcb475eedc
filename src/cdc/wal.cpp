// WAL capture: slots, decoding into the change buffers, the trigger <-> WAL transitions and the
// fallback (see README.md, "WAL capture"). The output plugin itself is wal_decoder.cpp.
#include "cdc/cdc.hpp"

#include "api/ddl.hpp"

#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "guc.hpp"
#include "pg/guc_scope.hpp"
#include "pg/security.hpp"
#include "pg/subxact.hpp"

extern "C" {
#include "access/transam.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "replication/slot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/pgstat_internal.h"
#include "utils/tuplestore.h"
}

#include <algorithm>
#include <stdexcept>

namespace pgtrickle::cdc {

namespace {

// Decoded rows carry no command id; they get the largest one, so a refresh whose own transaction
// (the frontier's xid) wrote the source *after* that refresh consumes them next time. A refresh in a
// transaction that wrote a WAL-captured source *before* it is refused (CheckNoOwnWrites).
constexpr const char *kDecodedCid = "4294967295";

struct Tracking {
	Oid relid = InvalidOid;
	std::string mode;
	std::optional<std::string> slot;
	std::optional<std::string> confirmed; // pg_lsn text
	std::string buffer;
	std::string qualified; // quoted source name
	std::string display;   // schema.name
	std::optional<std::string> replica_identity_before;
	double transitioning_seconds = 0;
};

// Runs slot work (decoding, advancing, creating, dropping) in a subtransaction. A failure inside
// leaves the slot acquired by this backend (only the top-level error handler of a client backend
// releases it): release it, so it can be dropped or used again.
template <typename F>
std::optional<std::string>
TrySlotWork(F &&fn) {
	auto error = pg::TrySubtransaction(fn);
	if (error)
		pg::PgCall([]() {
			if (MyReplicationSlot != nullptr)
				ReplicationSlotRelease();
		});
	return error;
}

// PostgreSQL loads only output plugins listed in output_plugin_libraries (default "pgoutput,
// test_decoding"). pg_trickle is preloaded by the administrator and decodes only its own slots, so it
// lists itself for the duration of its own slot calls.
std::string
PluginsWithOurs() {
	const char *current = pg::PgCall([]() { return GetConfigOption("output_plugin_libraries", true, false); });
	return (current && current[0] ? std::string(current) + ", " : std::string()) + "pg_trickle";
}

class OwnPluginAllowed : public pg::ScopedSetting {
public:
	OwnPluginAllowed() : pg::ScopedSetting("output_plugin_libraries", PluginsWithOurs(), PGC_SUSET) {}
};

std::optional<Tracking>
ReadTracking(pg::SpiSession &spi, Oid relid, const char *lock_clause = "") {
	pg::SpiRows r = spi.Query(
	    std::string("SELECT cdc_mode, slot_name, decoder_confirmed_lsn::text, buffer_name, "
	                "pg_catalog.quote_ident(source_schema) || '.' || pg_catalog.quote_ident(source_name), "
	                "source_schema || '.' || source_name, replica_identity_before, "
	                "COALESCE(extract(epoch FROM pg_catalog.now() - transition_started_at)::float8, 0) "
	                "FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1 ") +
	        lock_clause,
	    pg::SqlParams().Oid(relid));
	if (r.Count() == 0)
		return std::nullopt;
	Tracking t;
	t.relid = relid;
	t.mode = r.Text(0, 0);
	t.slot = r.OptText(0, 1);
	t.confirmed = r.OptText(0, 2);
	t.buffer = r.Text(0, 3);
	t.qualified = r.Text(0, 4);
	t.display = r.Text(0, 5);
	t.replica_identity_before = r.OptText(0, 6);
	t.transitioning_seconds = r.Float8(0, 7);
	return t;
}

std::string
PgArray(const std::vector<int64_t> &ids) {
	std::string s = "{";
	for (size_t i = 0; i < ids.size(); i++)
		s += (i ? "," : "") + std::to_string(ids[i]);
	return s + "}";
}

bool
WalLevelLogical(pg::SpiSession &spi) {
	return spi.Query("SELECT pg_catalog.current_setting('wal_level') = 'logical'").Bool(0, 0);
}

bool
InRecovery() {
	return pg::PgCall([]() { return RecoveryInProgress(); });
}

// The current end of WAL, flushed: every transaction that committed before this call has its commit
// record below the returned position, readable by decoding.
std::string
FlushedInsertLsn() {
	XLogRecPtr lsn = pg::PgCall([]() {
		XLogRecPtr l = GetXLogInsertEndRecPtr(); // not past a page header: flushable
		XLogFlush(l);
		return l;
	});
	char buf[40];
	snprintf(buf, sizeof buf, "%X/%X", static_cast<uint32>(lsn >> 32), static_cast<uint32>(lsn));
	return buf;
}

// Why a slot cannot be decoded, or nullopt if it can.
std::optional<std::string>
SlotProblem(pg::SpiSession &spi, const std::string &slot) {
	if (!WalLevelLogical(spi))
		return std::string("wal_level is not logical");
	pg::SpiRows s = spi.Query("SELECT plugin::text, COALESCE(invalidation_reason, CASE WHEN wal_status = 'lost' "
	                          "THEN 'wal removed' END), database = pg_catalog.current_database() "
	                          "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
	                          pg::SqlParams().Text(slot));
	if (s.Count() == 0)
		return "replication slot \"" + slot + "\" does not exist";
	if (s.IsNull(0, 0) || s.Text(0, 0) != "pg_trickle")
		return "replication slot \"" + slot + "\" uses output plugin \"" + s.OptText(0, 0).value_or("") +
		       "\", not pg_trickle";
	if (!s.IsNull(0, 1))
		return "replication slot \"" + slot + "\" was invalidated (" + s.Text(0, 1) + ")";
	if (!s.Bool(0, 2))
		return "replication slot \"" + slot + "\" belongs to another database";
	return std::nullopt;
}

void
DropSlotIfExists(pg::SpiSession &spi, const std::string &slot) {
	auto error = TrySlotWork([&]() {
		spi.Exec("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots "
		         "WHERE slot_name = $1",
		         pg::SqlParams().Text(slot));
	});
	if (error) {
		std::string msg = *error;
		pg::PgCall([&]() {
			ereport(WARNING, (errmsg("pg_trickle: could not drop replication slot \"%s\": %s", slot.c_str(), msg.c_str()),
			                  errhint("It is dropped later, or drop it with pg_drop_replication_slot().")));
		});
	}
}

void
Alert(pg::SpiSession &spi, const std::string &event, const Tracking &t, const std::string &previous,
      const std::string &mode, const std::string &reason, bool reinitialize) {
	spi.Exec("SELECT pg_catalog.pg_notify('pg_trickle_alert', pg_catalog.jsonb_build_object('event', $1::text, "
	         "'source', $2::text, 'source_relid', $3::oid, 'previous_mode', $4::text, 'cdc_mode', $5::text, "
	         "'reason', $6::text, 'reinitialize', $7::boolean)::text)",
	         pg::SqlParams().Text(event).Text(t.display).Oid(t.relid).Text(previous).Text(mode).Text(reason).Bool(reinitialize));
}

void
SetDependencyMode(pg::SpiSession &spi, Oid relid, const char *mode) {
	spi.Exec("UPDATE pgtrickle.pgt_dependencies SET cdc_mode = $2 WHERE source_relid = $1 AND cdc_mode <> $2",
	         pg::SqlParams().Oid(relid).Text(mode));
}

// The source's replica identity as stored in replica_identity_before: d, n, f, or i:<index name>.
std::string
ReplicaIdentity(pg::SpiSession &spi, Oid relid) {
	pg::SpiRows r = spi.Query(
	    "SELECT c.relreplident::text, (SELECT pg_catalog.quote_ident(i.relname) FROM pg_catalog.pg_index x "
	    "JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid AND x.indisreplident) "
	    "FROM pg_catalog.pg_class c WHERE c.oid = $1",
	    pg::SqlParams().Oid(relid));
	if (r.Count() == 0)
		return "d";
	if (r.Text(0, 0) == "i" && !r.IsNull(0, 1))
		return "i:" + r.Text(0, 1);
	return r.Text(0, 0);
}

// The tables holding a source's rows: the source itself, or for a partitioned table every leaf
// partition below it (a partitioned table has no storage: the WAL names the leaves). (oid, quoted name)
std::vector<std::pair<Oid, std::string>>
StorageTables(pg::SpiSession &spi, Oid relid) {
	pg::SpiRows r = spi.Query(
	    "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) "
	    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	    "WHERE c.relkind = 'r' AND (c.oid = $1 OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1))) "
	    "ORDER BY 1",
	    pg::SqlParams().Oid(relid));
	std::vector<std::pair<Oid, std::string>> out;
	for (size_t i = 0; i < r.Count(); i++)
		out.emplace_back(static_cast<Oid>(r.Int64(i, 0)), r.Text(i, 1));
	return out;
}

// (From the syscache: the own-write check of every refresh asks.)
bool
IsPartitioned(pg::SpiSession &, Oid relid) {
	return pg::PgCall([&]() { return get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE; });
}

// replica_identity_before: for a plain table its identity (d, n, f, i:<index>); for a partitioned one
// a line "<oid> <identity>" per leaf partition.
void
RestoreOneIdentity(pg::SpiSession &spi, Oid relid, const std::string &ri) {
	if (ri == "f" || ri.empty())
		return;
	std::string clause = ri == "n" ? "NOTHING" : ri.rfind("i:", 0) == 0 ? "USING INDEX " + ri.substr(2) : "DEFAULT";
	auto error = TrySlotWork([&]() {
		pg::SpiRows name = spi.Query("SELECT $1::pg_catalog.regclass::text FROM pg_catalog.pg_class WHERE oid = $1",
		                             pg::SqlParams().Oid(relid));
		if (name.Count() > 0)
			spi.Exec("ALTER TABLE " + name.Text(0, 0) + " REPLICA IDENTITY " + clause);
	});
	(void)error; // the table may be going away; its replica identity then does not matter
}

void
RestoreReplicaIdentity(pg::SpiSession &spi, const Tracking &t) {
	if (!t.replica_identity_before)
		return;
	const std::string &ri = *t.replica_identity_before;
	if (ri.find(' ') == std::string::npos) {
		RestoreOneIdentity(spi, t.relid, ri);
		return;
	}
	size_t pos = 0;
	while (pos < ri.size()) {
		size_t end = ri.find('\n', pos);
		std::string line = ri.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
		size_t sp = line.find(' ');
		if (sp != std::string::npos)
			RestoreOneIdentity(spi, static_cast<Oid>(std::stoul(line.substr(0, sp))), line.substr(sp + 1));
		if (end == std::string::npos)
			break;
		pos = end + 1;
	}
}

// Refuses to decode for a transaction that itself wrote the source: its own changes are visible to
// it but cannot be decoded before it commits.
void
CheckNoOwnWrites(pg::SpiSession &spi, const Tracking &t) {
	// The pending table statistics hold this transaction's (and its live subtransactions') row counts in
	// their `trans` chain; the rest of the entry may still hold earlier transactions' unflushed counts.
	// A partitioned source's rows are written to its leaves.
	std::vector<Oid> relids{t.relid};
	if (IsPartitioned(spi, t.relid))
		for (const auto &leaf : StorageTables(spi, t.relid))
			relids.push_back(leaf.first);
	bool wrote = pg::PgCall([&]() {
		for (Oid relid : relids) {
			PgStat_EntryRef *ref = pgstat_fetch_pending_entry(PGSTAT_KIND_RELATION, MyDatabaseId, relid);
			if (!ref || !ref->pending)
				continue;
			for (PgStat_TableXactStatus *x = static_cast<PgStat_TableStatus *>(ref->pending)->trans; x; x = x->upper)
				if (x->tuples_inserted + x->tuples_updated + x->tuples_deleted > 0 || x->truncdropped)
					return true;
		}
		return false;
	});
	if (wrote)
		throw UserError(sqlstate::kObjectNotInPrerequisiteState,
		                "cannot refresh in a transaction that has changed source table \"" + t.display + "\"",
		                "Changes of \"" + t.display +
		                    "\" are captured from the WAL, which holds this transaction's changes only once it "
		                    "commits.",
		                "Commit the changes first, or capture this table with triggers (cdc_mode => 'trigger').");
}

// Decodes the source's slot up to the current WAL position into its buffer (the caller holds the
// tracking row FOR NO KEY UPDATE).
//
// The rows are written by the decoding transaction, so they are visible to its own reads (and, once it
// commits, to every later snapshot) whatever the source transaction's visibility: a transaction is
// therefore written only if `visible_in` (the refresh snapshot; by default the statement's) shows it
// as committed. The others (commit record written, not yet visible) are held back: the decoding
// position stops before the first of them, and the next pass decodes them again. A transaction whose
// rows are already in the buffer (written by an earlier pass) is not written twice; one whose rows were
// trimmed has been consumed by every reader, so writing it again is harmless.
void
DecodeSource(pg::SpiSession &spi, const Tracking &t, const std::optional<std::string> &visible_in = std::nullopt) {
	if (!t.slot || !t.confirmed)
		throw std::runtime_error("source " + t.display + " has no slot or decoding position");
	if (auto problem = SlotProblem(spi, *t.slot))
		throw std::runtime_error(*problem);
	pg::AsRole as_owner(pg::ExtensionOwner(spi));
	// Everything up to the committed decoding position is in the buffer: the slot may forget it. Not
	// if this transaction wrote the position itself (a second pass in one refresh): it may roll back.
	pg::SpiRows row = spi.Query("SELECT xmin::text FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1",
	                            pg::SqlParams().Oid(t.relid));
	TransactionId row_xmin = row.Count() ? static_cast<TransactionId>(std::stoul(row.Text(0, 0))) : InvalidTransactionId;
	bool ours = pg::PgCall([&]() { return TransactionIdIsCurrentTransactionId(row_xmin); });
	if (!ours)
		spi.Exec("SELECT pg_catalog.pg_replication_slot_advance(s.slot_name, $2::pg_catalog.pg_lsn) "
		         "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1 "
		         "AND s.confirmed_flush_lsn OPERATOR(pg_catalog.<) $2::pg_catalog.pg_lsn",
		         pg::SqlParams().Text(*t.slot).Text(*t.confirmed));
	std::string upto = FlushedInsertLsn();

	pg::SpiRows cols = spi.Query(
	    "SELECT pg_catalog.quote_ident(c.name), pg_catalog.format_type(b.atttypid, b.atttypmod), COALESCE(s.attnum, 0) "
	    "FROM pgtrickle.pgt_change_tracking t CROSS JOIN LATERAL pg_catalog.unnest(t.captured_columns) WITH ORDINALITY c(name, ord) "
	    "JOIN pg_catalog.pg_attribute b ON b.attrelid = ('pgtrickle_changes.' || pg_catalog.quote_ident(t.buffer_name))"
	    "::pg_catalog.regclass AND b.attname = c.name AND NOT b.attisdropped "
	    "LEFT JOIN pg_catalog.pg_attribute s ON s.attrelid = t.source_relid AND s.attname = c.name AND s.attnum > 0 "
	    "AND NOT s.attisdropped WHERE t.source_relid = $1 ORDER BY c.ord",
	    pg::SqlParams().Oid(t.relid));
	std::vector<std::string> target{"\"__pgt_xid\"", "\"__pgt_op\"", "\"__pgt_cid\""};
	std::vector<std::string> values{"x.xid", "d.a[1]::pg_catalog.\"char\"", std::string(kDecodedCid) + "::pg_catalog.int8"};
	std::vector<std::string> attnums;
	for (size_t i = 0; i < cols.Count(); i++) {
		target.push_back(cols.Text(i, 0));
		values.push_back("d.a[" + std::to_string(4 + i) + "]::" + cols.Text(i, 1));
		attnums.push_back(cols.Text(i, 2));
	}
	std::string buf = QuoteQualified("pgtrickle_changes", t.buffer);
	OwnPluginAllowed plugin_allowed;
	pg::SqlParams params;
	params.Text(*t.slot).Text(upto).Text(std::to_string(t.relid)).Text(Join(attnums, ",")).Text(*t.confirmed);
	if (visible_in)
		params.Text(*visible_in);
	else
		params.Null(TEXTOID);
	pg::SpiRows r = spi.Query(
	    "WITH d AS MATERIALIZED (SELECT c.data::pg_catalog.text[] AS a FROM pg_catalog.pg_logical_slot_peek_changes("
	    "$1::pg_catalog.name, $2::pg_catalog.pg_lsn, NULL, VARIADIC ARRAY['relid', $3::pg_catalog.text, 'attnums', $4, "
	    "'after', $5]) c), "
	    "x AS MATERIALIZED (SELECT d.a[2]::pg_catalog.xid8 AS xid, pg_catalog.min(d.a[3]::pg_catalog.pg_lsn) AS lsn, "
	    "pg_catalog.pg_visible_in_snapshot(d.a[2]::pg_catalog.xid8, COALESCE($6::pg_catalog.pg_snapshot, "
	    "pg_catalog.pg_current_snapshot())) AS visible FROM d GROUP BY 1), "
	    "ins AS (INSERT INTO " + buf + " (" + Join(target, ", ") + ") SELECT " + Join(values, ", ") +
	        " FROM d JOIN x ON x.xid OPERATOR(pg_catalog.=) d.a[2]::pg_catalog.xid8 WHERE x.visible AND NOT EXISTS "
	        "(SELECT 1 FROM " + buf + " b WHERE b.\"__pgt_xid\" OPERATOR(pg_catalog.=) x.xid)) "
	        "SELECT CASE WHEN pg_catalog.bool_or(NOT x.visible) THEN (pg_catalog.min(x.lsn) FILTER (WHERE NOT x.visible)) "
	        "OPERATOR(pg_catalog.-) 1::pg_catalog.numeric ELSE GREATEST(pg_catalog.max(x.lsn), $2::pg_catalog.pg_lsn "
	        "OPERATOR(pg_catalog.-) 1::pg_catalog.numeric, $5::pg_catalog.pg_lsn) END::text FROM x",
	    params);
	spi.Exec("UPDATE pgtrickle.pgt_change_tracking SET decoder_confirmed_lsn = GREATEST(decoder_confirmed_lsn, "
	         "$2::pg_catalog.pg_lsn) WHERE source_relid = $1",
	         pg::SqlParams().Oid(t.relid).Text(r.Text(0, 0)));
}

// WAL (or TRANSITIONING) -> TRIGGER. The caller holds the tracking row. With `lossless` (the slot is
// healthy), changes decoded up to the moment the triggers exist go to the buffer; otherwise the
// stream tables reading the source are reinitialised (a full recompute on their next refresh).
void
ReturnToTriggers(pg::SpiSession &spi, const Tracking &t, const std::string &reason, bool failure, bool lossless,
                 std::vector<CdcEvent> *events) {
	bool reinit = false;
	{
		pg::AsRole as_owner(pg::ExtensionOwner(spi));
		api::InternalDdlScope own_ddl;
		if (t.mode == "WAL") {
			// Writers wait for this lock; the ones that finished before are below the decoding position.
			InstallTriggers(spi, t.qualified);
			if (IsPartitioned(spi, t.relid))
				(void)EnsurePartitionTriggers(spi, t.relid); // every partition, as trigger capture needs
			bool decoded = false;
			if (lossless) {
				Tracking current = t;
				decoded = !TrySlotWork([&]() { DecodeSource(spi, current); }).has_value();
			}
			if (!decoded) {
				reinit = true;
				spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET needs_reinit = true WHERE pgt_id IN "
				         "(SELECT pgt_id FROM pgtrickle.pgt_dependencies WHERE source_relid = $1)",
				         pg::SqlParams().Oid(t.relid));
			}
			RestoreReplicaIdentity(spi, t);
		}
		if (t.slot)
			DropSlotIfExists(spi, *t.slot);
	}
	spi.Exec("UPDATE pgtrickle.pgt_change_tracking SET cdc_mode = 'TRIGGER', slot_name = NULL, "
	         "decoder_confirmed_lsn = NULL, transition_started_at = NULL, wal_since = NULL, "
	         "replica_identity_before = NULL, last_fallback_reason = CASE WHEN $3 THEN $2 ELSE last_fallback_reason END, "
	         "last_fallback_at = CASE WHEN $3 THEN pg_catalog.now() ELSE last_fallback_at END WHERE source_relid = $1",
	         pg::SqlParams().Oid(t.relid).Text(reason).Bool(failure));
	SetDependencyMode(spi, t.relid, "TRIGGER");
	Alert(spi, failure ? "cdc_fallback" : "cdc_transition", t, t.mode, "TRIGGER", reason, reinit);
	if (failure) {
		std::string display = t.display;
		pg::PgCall([&]() {
			ereport(WARNING, (errmsg("pg_trickle: change capture of \"%s\" fell back to triggers", display.c_str()),
			                  errdetail("%s", reason.c_str()),
			                  reinit ? errhint("Stream tables reading it are reinitialized on their next refresh.") : 0));
		});
	}
	if (events)
		events->push_back({t.display, t.mode, "TRIGGER", reason + (reinit ? " (stream tables reinitialized)" : "")});
}

// TRANSITIONING -> WAL: REPLICA IDENTITY FULL (the decoder needs whole old rows), drop the triggers
// (the lock waits for every writer of the source to finish), and record the current WAL position B.
// Every transaction that wrote the source with the triggers committed below B; every later one above.
void
HandOver(pg::SpiSession &spi, const Tracking &t) {
	if (auto problem = SlotProblem(spi, *t.slot))
		throw std::runtime_error(*problem);
	pg::AsRole as_owner(pg::ExtensionOwner(spi));
	api::InternalDdlScope own_ddl; // replica identity, triggers: not a user's partition change
	std::string before;
	if (IsPartitioned(spi, t.relid)) {
		// Every leaf logs whole old rows; the triggers go from the root and every partition.
		for (const auto &[oid, name] : StorageTables(spi, t.relid)) {
			std::string ri = ReplicaIdentity(spi, oid);
			before += (before.empty() ? "" : "\n") + std::to_string(oid) + " " + ri;
			if (ri != "f")
				spi.Exec("ALTER TABLE " + name + " REPLICA IDENTITY FULL");
		}
		pg::SpiRows parts = spi.Query("SELECT relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_tree($1) "
		                              "WHERE relid <> $1",
		                              pg::SqlParams().Oid(t.relid));
		for (size_t i = 0; i < parts.Count(); i++)
			DropTriggers(spi, parts.Text(i, 0));
		if (before.find(' ') == std::string::npos)
			before = "0 d"; // no leaf yet: keep the tree format
	} else {
		before = ReplicaIdentity(spi, t.relid);
		if (before != "f")
			spi.Exec("ALTER TABLE " + t.qualified + " REPLICA IDENTITY FULL");
	}
	DropTriggers(spi, t.qualified);
	std::string handover = FlushedInsertLsn();
	// Catch the decoder up past the triggers' last change (it never needs what lies before).
	spi.Exec("SELECT pg_catalog.pg_replication_slot_advance($1, $2::pg_catalog.pg_lsn)",
	         pg::SqlParams().Text(*t.slot).Text(handover));
	spi.Exec("UPDATE pgtrickle.pgt_change_tracking SET cdc_mode = 'WAL', decoder_confirmed_lsn = $2::pg_catalog.pg_lsn, "
	         "wal_since = pg_catalog.now(), replica_identity_before = $3 WHERE source_relid = $1",
	         pg::SqlParams().Oid(t.relid).Text(handover).Text(before));
	SetDependencyMode(spi, t.relid, "WAL");
}

// Runs `fn` with lock_timeout set (restored afterwards), so a hand-over does not queue behind a long
// writer while blocking every other session's access to the table.
template <typename F>
std::optional<std::string>
WithLockTimeout(const char *timeout, F &&fn) {
	pg::ScopedSetting lock_timeout("lock_timeout", timeout);
	return TrySlotWork(fn);
}

} // namespace

void
ReturnForPartitionChange(pg::SpiSession &spi, Oid root) {
	auto t = ReadTracking(spi, root, "FOR NO KEY UPDATE");
	if (!t || t->mode == "TRIGGER")
		return;
	// WAL: the partitions' rows may have moved (attach, detach) without any change in the WAL, so the
	// readers are recomputed; TRANSITIONING: the triggers still capture everything.
	ReturnToTriggers(spi, *t, "partitions of the source changed", false, t->mode == "TRANSITIONING", nullptr);
	if (t->mode == "WAL") {
		spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET needs_reinit = true WHERE pgt_id IN "
		         "(SELECT pgt_id FROM pgtrickle.pgt_dependencies WHERE source_relid = $1)",
		         pg::SqlParams().Oid(root));
	}
}

std::string
SlotName(Oid source_relid) {
	return "pgtrickle_" + std::to_string(MyDatabaseId) + "_" + std::to_string(source_relid);
}

std::string
ParseCdcMode(const std::string &text) {
	std::string mode = AsciiLower(TrimQueryText(text));
	if (mode == "auto" || mode == "trigger" || mode == "wal")
		return mode;
	throw UserError(sqlstate::kInvalidParameterValue, "invalid cdc_mode \"" + text + "\"", {},
	                "Valid values are auto, trigger and wal.");
}

void
LockWalSources(pg::SpiSession &spi, const std::vector<int64_t> &pgt_ids, std::vector<Oid> &locked) {
	if (InRecovery())
		return;
	// Every refresh runs this (and the mode query below): kept plans, not parsed each time.
	static SPIPlanPtr plan = nullptr;
	pg::SqlParams params;
	params.Text(PgArray(pgt_ids));
	if (!plan)
		plan = pg::PrepareKept("SELECT DISTINCT ct.source_relid FROM pgtrickle.pgt_change_tracking ct "
		                       "JOIN pgtrickle.pgt_dependencies d ON d.source_relid = ct.source_relid "
		                       "WHERE d.pgt_id = ANY ($1::pg_catalog.int8[]) AND ct.cdc_mode = 'WAL' ORDER BY 1",
		                       params);
	pg::SpiRows r;
	spi.ExecPlan(plan, params, &r);
	for (size_t i = 0; i < r.Count(); i++) {
		Oid relid = static_cast<Oid>(r.Int64(i, 0));
		if (std::find(locked.begin(), locked.end(), relid) != locked.end())
			continue;
		spi.Query("SELECT 1 FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1 FOR NO KEY UPDATE",
		          pg::SqlParams().Oid(relid));
		locked.push_back(relid);
	}
}

bool
CatchUpWalSources(pg::SpiSession &spi, const std::vector<int64_t> &pgt_ids, Snapshot snapshot,
                  std::vector<Oid> &locked) {
	if (InRecovery())
		return false;
	// The modes as the snapshot sees them: a source whose hand-over is not visible in it was captured
	// by triggers for every transaction the snapshot shows.
	static SPIPlanPtr plan = nullptr;
	pg::SqlParams params;
	params.Text(PgArray(pgt_ids));
	if (!plan)
		plan = pg::PrepareKept("SELECT DISTINCT ct.source_relid, ct.cdc_mode FROM pgtrickle.pgt_change_tracking ct "
		                       "JOIN pgtrickle.pgt_dependencies d ON d.source_relid = ct.source_relid "
		                       "WHERE d.pgt_id = ANY ($1::pg_catalog.int8[]) AND ct.cdc_mode <> 'TRIGGER' ORDER BY 1",
		                       params);
	pg::SpiRows seen;
	spi.ExecPlanWithSnapshot(plan, params, snapshot, &seen);
	bool renew = false;
	std::vector<Tracking> to_decode;
	for (size_t i = 0; i < seen.Count(); i++) {
		Oid relid = static_cast<Oid>(seen.Int64(i, 0));
		bool is_locked = std::find(locked.begin(), locked.end(), relid) != locked.end();
		const std::string &mode_seen = seen.Text(i, 1);
		if (!is_locked && mode_seen != "WAL")
			continue;
		if (!is_locked) {
			// Moved to WAL after the caller locked its sources: lock it, and take a new snapshot.
			spi.Query("SELECT 1 FROM pgtrickle.pgt_change_tracking WHERE source_relid = $1 FOR NO KEY UPDATE",
			          pg::SqlParams().Oid(relid));
			locked.push_back(relid);
			renew = true;
			continue;
		}
		auto t = ReadTracking(spi, relid);
		if (!t)
			continue;
		if (t->mode != mode_seen) {
			renew = true; // changed between the lock and the snapshot's view: look again
			continue;
		}
		if (t->mode == "WAL")
			to_decode.push_back(*t);
	}
	if (renew)
		return true;
	std::string visible_in;
	if (!to_decode.empty()) {
		pg::SpiRows snap;
		spi.ExecWithSnapshot("SELECT pg_catalog.pg_current_snapshot()::text", pg::SqlParams(), snapshot, &snap);
		visible_in = snap.Text(0, 0);
	}
	for (const Tracking &t : to_decode) {
		CheckNoOwnWrites(spi, t);
		auto error = TrySlotWork([&]() { DecodeSource(spi, t, visible_in); });
		if (error) {
			ReturnToTriggers(spi, t, "decoding failed: " + *error, true, false, nullptr);
			renew = true;
		}
	}
	return renew;
}

void
ReleaseWalCapture(pg::SpiSession &spi, Oid source_relid) {
	auto t = ReadTracking(spi, source_relid);
	if (!t || t->mode == "TRIGGER")
		return;
	pg::AsRole as_owner(pg::ExtensionOwner(spi));
	if (t->mode == "WAL")
		RestoreReplicaIdentity(spi, *t);
	if (t->slot)
		DropSlotIfExists(spi, *t->slot);
}

bool
CdcWorkPossible(pg::SpiSession &spi) {
	pg::SpiRows r = spi.Query(
	    "SELECT EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking WHERE cdc_mode <> 'TRIGGER') OR "
	    "EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables WHERE COALESCE(requested_cdc_mode, $1) <> 'trigger' "
	    "AND is_populated) OR EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name LIKE $2)",
	    pg::SqlParams().Text(guc::cdc_mode == guc::kCdcAuto ? "auto" : guc::cdc_mode == guc::kCdcWal ? "wal" : "trigger")
	        .Text("pgtrickle\\_" + std::to_string(MyDatabaseId) + "\\_%"),
	    true);
	return r.Bool(0, 0);
}

std::vector<CdcEvent>
AdvanceTransitions(pg::SpiSession &spi) {
	std::vector<CdcEvent> events;
	if (InRecovery())
		return events; // a standby decodes nothing; after promotion the slots are checked again
	std::string guc_mode = guc::cdc_mode == guc::kCdcAuto ? "auto" : guc::cdc_mode == guc::kCdcWal ? "wal" : "trigger";
	bool wal_ok = WalLevelLogical(spi);
	// Per source: does any reader want triggers, are all readers populated (first refresh done), and
	// can the source be decoded (a plain table, not a partition, not a stream table).
	pg::SpiRows rows = spi.Query(
	    "SELECT ct.source_relid, ct.cdc_mode, "
	    "pg_catalog.bool_or(COALESCE(st.requested_cdc_mode, $1) = 'trigger'), pg_catalog.bool_and(st.is_populated), "
	    "pg_catalog.bool_or(COALESCE(st.requested_cdc_mode, $1) = 'wal'), "
	    "pg_catalog.bool_and(d.source_type = 'TABLE') AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
	    "AND NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_relid = ct.source_relid) "
	    "FROM pgtrickle.pgt_change_tracking ct "
	    "JOIN pgtrickle.pgt_dependencies d ON d.source_relid = ct.source_relid "
	    "JOIN pgtrickle.pgt_stream_tables st ON st.pgt_id = d.pgt_id "
	    "JOIN pg_catalog.pg_class c ON c.oid = ct.source_relid "
	    "GROUP BY ct.source_relid, ct.cdc_mode, c.relkind, c.relispartition ORDER BY 1",
	    pg::SqlParams().Text(guc_mode));

	// Phase 1, before this transaction writes anything: slots (creating one needs that).
	// Slots of this database that no source refers to (an attempt that rolled back, a source dropped
	// while its slot was busy) go first.
	pg::SpiRows orphans = spi.Query(
	    "SELECT s.slot_name::text FROM pg_catalog.pg_replication_slots s WHERE s.slot_name LIKE $1 AND NOT s.active "
	    "AND s.database = pg_catalog.current_database() AND NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking t "
	    "WHERE t.slot_name = s.slot_name)",
	    pg::SqlParams().Text("pgtrickle\\_" + std::to_string(MyDatabaseId) + "\\_%"));
	{
		pg::AsRole as_owner(pg::ExtensionOwner(spi));
		for (size_t i = 0; i < orphans.Count(); i++)
			DropSlotIfExists(spi, orphans.Text(i, 0));
	}
	std::vector<std::pair<Oid, std::string>> created;
	std::vector<std::pair<Oid, std::string>> failed;
	// Creating a logical slot waits until every transaction that holds a transaction id when it starts
	// has ended. A long transaction (or a prepared one) would hold the scheduler for as long, so slots
	// are created only when no other writing transaction is older than a second; otherwise later.
	std::optional<bool> writers_quiet;
	auto quiet = [&]() {
		if (!writers_quiet)
			writers_quiet = spi.Query("SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity WHERE backend_xid "
			                          "IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() AND xact_start < "
			                          "pg_catalog.clock_timestamp() - interval '1 second') AND NOT EXISTS "
			                          "(SELECT 1 FROM pg_catalog.pg_prepared_xacts)")
			                    .Bool(0, 0);
		return *writers_quiet;
	};
	// Free replication slots (counted once a source is ready to move); a source only 'auto' asks for
	// leaves the last one free (for a standby, a backup, another consumer) and moves silently when
	// there is room.
	std::optional<int64> free_slots;
	for (size_t i = 0; i < rows.Count(); i++) {
		Oid relid = static_cast<Oid>(rows.Int64(i, 0));
		if (rows.Text(i, 1) != "TRIGGER" || rows.Bool(i, 2) || !rows.Bool(i, 3) || !rows.Bool(i, 5) || !wal_ok)
			continue;
		if (!free_slots)
			free_slots = spi.Query("SELECT pg_catalog.current_setting('max_replication_slots')::pg_catalog.int8 - "
			                       "(SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots)")
			                 .Int64(0, 0);
		bool explicit_wal = rows.Bool(i, 4);
		if (!explicit_wal && *free_slots <= 1)
			continue;
		if (!quiet())
			break;
		--*free_slots;
		std::string slot = SlotName(relid);
		pg::AsRole as_owner(pg::ExtensionOwner(spi));
		auto error = TrySlotWork([&]() {
			OwnPluginAllowed plugin_allowed;
			spi.Exec("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pg_trickle')", pg::SqlParams().Text(slot));
		});
		if (error)
			failed.emplace_back(relid, *error);
		else
			created.emplace_back(relid, slot);
	}

	// Phase 2: the catalog.
	for (const auto &[relid, slot] : created) {
		auto t = ReadTracking(spi, relid, "FOR NO KEY UPDATE");
		if (!t || t->mode != "TRIGGER") {
			pg::AsRole as_owner(pg::ExtensionOwner(spi));
			DropSlotIfExists(spi, slot);
			continue;
		}
		spi.Exec("UPDATE pgtrickle.pgt_change_tracking SET cdc_mode = 'TRANSITIONING', slot_name = $2, "
		         "transition_started_at = pg_catalog.now() WHERE source_relid = $1",
		         pg::SqlParams().Oid(relid).Text(slot));
		SetDependencyMode(spi, relid, "TRANSITIONING");
		t->slot = slot;
		Alert(spi, "cdc_transition", *t, "TRIGGER", "TRANSITIONING", "replication slot " + slot + " created", false);
		events.push_back({t->display, "TRIGGER", "TRANSITIONING", "replication slot " + slot + " created"});
	}
	for (const auto &[relid, error] : failed) {
		auto t = ReadTracking(spi, relid);
		if (t)
			events.push_back({t->display, "TRIGGER", "TRIGGER", "could not create a replication slot: " + error});
	}

	for (size_t i = 0; i < rows.Count(); i++) {
		Oid relid = static_cast<Oid>(rows.Int64(i, 0));
		const std::string &mode = rows.Text(i, 1);
		if (mode == "TRIGGER")
			continue;
		bool wants_trigger = rows.Bool(i, 2) || !rows.Bool(i, 5);
		auto t = ReadTracking(spi, relid, "FOR NO KEY UPDATE");
		if (!t || t->mode != mode)
			continue;
		if (mode == "TRANSITIONING") {
			if (wants_trigger) {
				ReturnToTriggers(spi, *t, "a stream table reading it asks for trigger capture", false, true, &events);
			} else if (!wal_ok) {
				ReturnToTriggers(spi, *t, "wal_level is not logical", true, true, &events);
			} else if (t->transitioning_seconds > guc::wal_transition_timeout) {
				ReturnToTriggers(spi, *t, "transition did not complete within pg_trickle.wal_transition_timeout",
				                 true, true, &events);
			} else {
				auto error = WithLockTimeout("2s", [&]() { HandOver(spi, *t); });
				if (error) {
					auto problem = SlotProblem(spi, *t->slot);
					if (problem)
						ReturnToTriggers(spi, *t, *problem, true, true, &events);
					else
						events.push_back({t->display, mode, mode, "hand-over postponed: " + *error});
				} else {
					Alert(spi, "cdc_transition", *t, "TRANSITIONING", "WAL", "capture triggers dropped", false);
					events.push_back({t->display, "TRANSITIONING", "WAL", "capture triggers dropped"});
				}
			}
			continue;
		}
		// WAL: still wanted, and healthy?
		if (wants_trigger) {
			ReturnToTriggers(spi, *t, "a stream table reading it asks for trigger capture", false, true, &events);
			continue;
		}
		if (auto problem = SlotProblem(spi, *t->slot)) {
			ReturnToTriggers(spi, *t, *problem, true, false, &events);
			continue;
		}
		pg::SpiRows lag = spi.Query("SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), $1::pg_catalog.pg_lsn) "
		                            "> $2::pg_catalog.int8 * 1048576",
		                            pg::SqlParams().Text(*t->confirmed).Int64(guc::slot_lag_critical_threshold_mb));
		if (lag.Bool(0, 0)) {
			ReturnToTriggers(spi, *t,
			                 "decoding fell behind by more than pg_trickle.slot_lag_critical_threshold_mb (" +
			                     std::to_string(guc::slot_lag_critical_threshold_mb) + " MB)",
			                 true, false, &events);
			continue;
		}
		auto error = TrySlotWork([&]() { DecodeSource(spi, *t); });
		if (error)
			ReturnToTriggers(spi, *t, "decoding failed: " + *error, true, false, &events);
	}
	return events;
}

// ---- DROP EXTENSION ---------------------------------------------------------------------------------

namespace {

object_access_hook_type previous_object_access_hook = nullptr;

// DROP EXTENSION drops the catalog before the extension object: when pgt_change_tracking goes, the
// WAL-captured sources get their replica identity back (while the catalog is still readable); when
// the extension goes, every slot of this database named like pg_trickle's goes too.
void
ReleaseAllWalCapture() {
	pg::SpiSession spi;
	pg::SpiRows rows = spi.Query("SELECT source_relid FROM pgtrickle.pgt_change_tracking WHERE cdc_mode <> 'TRIGGER'");
	for (size_t i = 0; i < rows.Count(); i++)
		ReleaseWalCapture(spi, static_cast<Oid>(rows.Int64(i, 0)));
}

void
DropDatabaseSlots() {
	pg::SpiSession spi;
	pg::SpiRows slots = spi.Query("SELECT slot_name::text FROM pg_catalog.pg_replication_slots WHERE slot_name LIKE $1 "
	                              "AND database = pg_catalog.current_database()",
	                              pg::SqlParams().Text("pgtrickle\\_" + std::to_string(MyDatabaseId) + "\\_%"));
	pg::AsRole as_owner(BOOTSTRAP_SUPERUSERID);
	for (size_t i = 0; i < slots.Count(); i++)
		DropSlotIfExists(spi, slots.Text(i, 0));
}

void
OnObjectAccess(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void *arg) {
	if (previous_object_access_hook)
		previous_object_access_hook(access, class_id, object_id, sub_id, arg);
	if (access != OAT_DROP || (class_id != ExtensionRelationId && class_id != RelationRelationId))
		return;
	if (class_id == RelationRelationId) {
		Oid nsp = get_namespace_oid("pgtrickle", true);
		if (!OidIsValid(nsp) || object_id != get_relname_relid("pgt_change_tracking", nsp))
			return;
		pg::CxxBoundary("pg_trickle extension drop", [&]() { ReleaseAllWalCapture(); });
		return;
	}
	if (object_id != get_extension_oid("pg_trickle", true))
		return;
	pg::CxxBoundary("pg_trickle extension drop", [&]() { DropDatabaseSlots(); });
}

} // namespace

void
RegisterExtensionDropHook() {
	previous_object_access_hook = object_access_hook;
	object_access_hook = OnObjectAccess;
}

} // namespace pgtrickle::cdc

// ---- SQL: pgtrickle.advance_cdc_transitions() --------------------------------------------------------

extern "C" {
PG_FUNCTION_INFO_V1(advance_cdc_transitions);
Datum
advance_cdc_transitions(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() {
		std::vector<pgtrickle::cdc::CdcEvent> events;
		{
			pgtrickle::pg::SpiSession spi;
			events = pgtrickle::cdc::AdvanceTransitions(spi);
		}
		pgtrickle::pg::PgCall([&]() {
			InitMaterializedSRF(fcinfo, 0);
			ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
			for (const auto &e : events) {
				Datum values[4] = {CStringGetTextDatum(e.source.c_str()), CStringGetTextDatum(e.previous_mode.c_str()),
				                   CStringGetTextDatum(e.mode.c_str()), CStringGetTextDatum(e.detail.c_str())};
				bool nulls[4] = {false, false, false, false};
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
		});
		return (Datum)0;
	});
}
}
