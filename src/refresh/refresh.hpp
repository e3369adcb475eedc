// One refresh of one stream table (see README.md).
#pragma once

#include "catalog/catalog.hpp"
#include "core/dvm_plan.hpp"
#include "pg/spi.hpp"

#include <string>

namespace pgtrickle::refresh {

enum class InitiatedBy { Scheduler, Manual, Initial };

struct RefreshResult {
	std::string action; // FULL, DIFFERENTIAL, NO_DATA
	int64_t rows_inserted = 0;
	int64_t rows_deleted = 0;
};

// Refreshes `st` in the current transaction. The caller holds an SPI session. With `shared_snapshot`
// (the scheduler refreshing a group of connected stream tables together), the caller has already
// locked every stream table of the group and took that snapshot afterwards; every member then reads
// the same state of every source.
RefreshResult RefreshStreamTable(pg::SpiSession &spi, const catalog::StreamTable &st, InitiatedBy who,
                                 Snapshot shared_snapshot = nullptr);

// The SELECT that produces every storage column (the plain query for FULL mode, the population query
// with hidden columns for DIFFERENTIAL mode).
std::string StorageQuery(pg::SpiSession &spi, const catalog::StreamTable &st);

// True while this backend is writing a stream table as part of a refresh.
bool InRefresh();

// RAII: marks this backend as writing stream tables (the guard trigger lets writes through).
class RefreshWriteScope {
public:
	RefreshWriteScope();
	~RefreshWriteScope();
	RefreshWriteScope(const RefreshWriteScope &) = delete;
	RefreshWriteScope &operator=(const RefreshWriteScope &) = delete;
};

} // namespace pgtrickle::refresh
