// Change capture: buffers and triggers (see README.md).
#pragma once

#include "analyze/analyze.hpp"
#include "pg/spi.hpp"

#include <string>
#include <vector>

namespace pgtrickle::cdc {

std::string BufferName(Oid source_relid);

// Creates the buffer and capture triggers for `source` unless they already exist.
void EnsureCapture(pg::SpiSession &spi, const SourceRelation &source);
// Makes the buffer's columns match the source's current columns (names and types): columns gone or
// changed are dropped from the buffer (their pending values are lost: readers must reinitialise),
// new ones added.
enum class BufferSync { Unchanged, ColumnsAdded, ColumnsChanged };
BufferSync SyncBufferColumns(pg::SpiSession &spi, Oid source_relid);
// Installs the capture triggers on partitions of a captured partitioned table that lack them. Returns
// true if such a partition already had rows (they entered the table uncaptured: readers must be
// reinitialised).
bool EnsurePartitionTriggers(pg::SpiSession &spi, Oid root_relid);
// Removes capture triggers from tables that no stream table reads any more, neither directly nor
// through their partitioned root (a partition detached from a captured table). Returns true if any.
bool DropOrphanCaptureTriggers(pg::SpiSession &spi);
// Drops the buffer and triggers of `source_relid` if no stream table reads it any more.
void DropCaptureIfUnused(pg::SpiSession &spi, Oid source_relid);
// Deletes buffer rows every consumer has consumed. Does nothing while another transaction is trimming
// the same buffer (the rows are left to a later refresh).
uint64_t TrimBuffer(pg::SpiSession &spi, Oid source_relid);

// The four capture triggers on `target` (a quoted, qualified table name), as the caller's role.
void InstallTriggers(pg::SpiSession &spi, const std::string &target);
void DropTriggers(pg::SpiSession &spi, const std::string &target);

// ---- WAL capture (wal.cpp; see README.md "WAL capture") -------------------------------------------

// The replication slot a source uses in WAL mode: pgtrickle_<database oid>_<source oid>.
std::string SlotName(Oid source_relid);

// Refresh side, in two steps around the refresh snapshot. `locked` accumulates the sources whose
// tracking row this transaction holds (FOR NO KEY UPDATE), which serialises decoding per source.
// Before the snapshot: locks the tracking rows of the WAL-captured sources of these stream tables.
void LockWalSources(pg::SpiSession &spi, const std::vector<int64_t> &pgt_ids, std::vector<Oid> &locked);
// After the snapshot: decodes every WAL-captured source up to the current WAL position into its
// buffer, so every change visible in `snapshot` is in the buffers. Returns true if the caller must take
// a new snapshot and call again (a source changed mode since the snapshot, or fell back to triggers).
bool CatchUpWalSources(pg::SpiSession &spi, const std::vector<int64_t> &pgt_ids, Snapshot snapshot,
                       std::vector<Oid> &locked);

struct CdcEvent {
	std::string source;
	std::string previous_mode;
	std::string mode;
	std::string detail;
};
// One step of every source's transition (TRIGGER -> TRANSITIONING -> WAL, fallback to TRIGGER) and a
// decoding pass over WAL sources. Must start in a transaction that has not written yet (slot creation).
std::vector<CdcEvent> AdvanceTransitions(pg::SpiSession &spi);
// True if some source might transition or is WAL-captured (the scheduler skips the step otherwise).
bool CdcWorkPossible(pg::SpiSession &spi);

// Drops the slot of `source_relid` (if any) and restores its replica identity; called before its
// tracking row goes.
void ReleaseWalCapture(pg::SpiSession &spi, Oid source_relid);
// A partitioned source in WAL or TRANSITIONING mode whose partitions changed (created, attached,
// detached): back to triggers on every partition; from WAL its readers are reinitialised.
void ReturnForPartitionChange(pg::SpiSession &spi, Oid root);
// Validates a cdc_mode parameter value: returns auto|trigger|wal.
std::string ParseCdcMode(const std::string &text);
// Installs the hook that drops this database's capture slots on DROP EXTENSION pg_trickle.
void RegisterExtensionDropHook();

// Registered once per backend: forgets cached capture plans on relcache invalidation.
void RegisterInvalidationCallbacks();

} // namespace pgtrickle::cdc
