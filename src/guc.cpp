#include "guc.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgtrickle::guc {

int min_schedule_seconds = 1;

void
Register() {
	DefineCustomIntVariable("pg_trickle.min_schedule_seconds",
	                        "Shortest duration schedule a stream table may have, in seconds.", nullptr,
	                        &min_schedule_seconds, 1, 1, 86400, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
	MarkGUCPrefixReserved("pg_trickle");
}

} // namespace pgtrickle::guc
