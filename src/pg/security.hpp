// Running a block as another role (RAII over SetUserIdAndSecContext).
#pragma once

#include "pg/spi.hpp"

namespace pgtrickle::pg {

class AsRole {
public:
	explicit AsRole(Oid role) {
		GetUserIdAndSecContext(&saved_user_, &saved_context_);
		SetUserIdAndSecContext(role, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
	}
	~AsRole() {
		// A plain setter: safe even while a PostgreSQL error is pending.
		SetUserIdAndSecContext(saved_user_, saved_context_);
	}
	AsRole(const AsRole &) = delete;
	AsRole &operator=(const AsRole &) = delete;

private:
	Oid saved_user_;
	int saved_context_;
};

// The owner of the pg_trickle extension (a superuser: the extension requires one to install).
inline Oid
ExtensionOwner(SpiSession &spi) {
	SpiRows rows = spi.Query("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_trickle'");
	if (rows.Count() == 0)
		throw UserError(sqlstate::kObjectNotInPrerequisiteState, "extension \"pg_trickle\" is not installed");
	return static_cast<Oid>(rows.Int64(0, 0));
}

} // namespace pgtrickle::pg
