// Change capture: buffers and triggers (see README.md).
#pragma once

#include "analyze/analyze.hpp"
#include "pg/spi.hpp"

#include <string>

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
// Deletes buffer rows every consumer has consumed. Skips rows another transaction is deleting.
uint64_t TrimBuffer(pg::SpiSession &spi, Oid source_relid);

// Registered once per backend: forgets cached capture plans on relcache invalidation.
void RegisterInvalidationCallbacks();

} // namespace pgtrickle::cdc
