// ScopedSetting: a configuration parameter set for the lifetime of a C++ scope, restored at its end
// (PostgreSQL's GUC nest levels, as a function's SET clause does). If a PostgreSQL error is pending
// when the scope ends, nothing is done: the (sub)transaction abort restores the setting.
#pragma once

#include "pg/bridge.hpp"
#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

#include <string>

namespace pgtrickle::pg {

class ScopedSetting {
public:
	// `value` nullptr: only opens the nest level (a later Set() call sets within it).
	ScopedSetting(const char *name, const char *value, GucContext context = PGC_USERSET) {
		nest_ = PgCall([&]() {
			int nest = NewGUCNestLevel();
			if (value)
				(void)set_config_option(name, value, context, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
			return nest;
		});
	}
	ScopedSetting(const char *name, const std::string &value, GucContext context = PGC_USERSET)
	    : ScopedSetting(name, value.c_str(), context) {}
	~ScopedSetting() {
		if (PgErrorPending())
			return;
		int nest = nest_;
		try {
			PgCall([&]() { AtEOXact_GUC(true, nest); });
		} catch (...) {
		}
	}
	ScopedSetting(const ScopedSetting &) = delete;
	ScopedSetting &operator=(const ScopedSetting &) = delete;

private:
	int nest_;
};

} // namespace pgtrickle::pg
