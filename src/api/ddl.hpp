// DDL tracking (event triggers) and the scope marking pg_trickle's own DDL, which they ignore.
#pragma once

namespace pgtrickle::api {

// While alive, the event triggers leave this backend's DDL alone (create/alter/drop of stream tables
// and capture objects keep the catalog consistent themselves).
class InternalDdlScope {
public:
	InternalDdlScope();
	~InternalDdlScope();
	InternalDdlScope(const InternalDdlScope &) = delete;
	InternalDdlScope &operator=(const InternalDdlScope &) = delete;
};

} // namespace pgtrickle::api
