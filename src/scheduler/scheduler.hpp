#pragma once

#include "pg/spi.hpp"

namespace pgtrickle::scheduler {

// Asks the launcher to make sure this database has a scheduler now (after create_stream_table).
void WakeLauncher(pg::SpiSession &spi);
void HandleRescanSignal(int signo);

// Registers the launcher (called from _PG_init while shared_preload_libraries is processed).
void RegisterLauncher();

} // namespace pgtrickle::scheduler
