// Change capture: buffers and triggers (see README.md).
#pragma once

#include "analyze/analyze.hpp"
#include "pg/spi.hpp"

#include <string>

namespace pgtrickle::cdc {

std::string BufferName(Oid source_relid);

// Creates the buffer and capture triggers for `source` unless they already exist.
void EnsureCapture(pg::SpiSession &spi, const SourceRelation &source);
// Drops the buffer and triggers of `source_relid` if no stream table reads it any more.
void DropCaptureIfUnused(pg::SpiSession &spi, Oid source_relid);
// Deletes buffer rows every consumer has consumed. Skips rows another transaction is deleting.
uint64_t TrimBuffer(pg::SpiSession &spi, Oid source_relid);

// Registered once per backend: forgets cached capture plans on relcache invalidation.
void RegisterInvalidationCallbacks();

} // namespace pgtrickle::cdc
