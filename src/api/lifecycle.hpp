// Lifecycle operations other modules reuse.
#pragma once

#include "catalog/catalog.hpp"
#include "pg/spi.hpp"

#include <string>

namespace pgtrickle::api {

// Re-analyses `query_text` for `st` (its current query when a view or function it uses changed, or a
// new one from alter_stream_table), re-plans its refresh mode from `effective_requested`, keeps or
// rebuilds the storage table, re-records its sources and their capture, and refreshes it FULL.
void RedefineStreamTable(pg::SpiSession &spi, catalog::StreamTable st, const std::string &query_text,
                         const std::string &effective_requested, bool new_query);

} // namespace pgtrickle::api
