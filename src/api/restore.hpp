// Re-linking the catalog to relations after pg_dump/pg_restore (see restore.cpp).
#pragma once

#include "pg/spi.hpp"

namespace pgtrickle::api {

// True when a stream table's name resolves to another relation than its catalog row says.
bool CatalogNeedsRestore(pg::SpiSession &spi);
// Re-resolves OIDs by name, rebuilds change capture, marks every stream table for a FULL refresh.
// Returns the number of stream tables re-linked.
int64_t RestoreStreamTables(pg::SpiSession &spi);

} // namespace pgtrickle::api
