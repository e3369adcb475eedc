// Module entry: PG_MODULE_MAGIC and _PG_init.
#include "pg/postgres.hpp"

#include "cdc/cdc.hpp"
#include "guc.hpp"
#include "scheduler/scheduler.hpp"

extern "C" {
PG_MODULE_MAGIC_EXT(.name = "pg_trickle", .version = PGT_VERSION);

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void) {
	// The scheduler's background workers and shared memory need the library at server start.
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("pg_trickle must be loaded via shared_preload_libraries"),
		                errhint("Add pg_trickle to shared_preload_libraries in postgresql.conf and restart the server.")));
	pgtrickle::guc::Register();
	pgtrickle::cdc::RegisterInvalidationCallbacks();
	pgtrickle::cdc::RegisterExtensionDropHook();
	pgtrickle::scheduler::RegisterLauncher();
}
}
