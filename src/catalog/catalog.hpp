// Typed access to the pgtrickle catalog tables (see README.md).
#pragma once

#include "pg/postgres.hpp"
#include "pg/spi.hpp"
#include "core/adaptive.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pgtrickle::catalog {

struct StreamTable {
	int64_t pgt_id = 0;
	Oid relid = InvalidOid;
	std::string schema;
	std::string name;
	std::string defining_query;
	std::string original_query;
	std::optional<std::string> schedule; // nullopt = calculated
	std::string refresh_mode;            // FULL | DIFFERENTIAL
	std::string requested_refresh_mode;  // AUTO | FULL | DIFFERENTIAL
	std::string status;
	bool is_populated = false;
	std::optional<std::string> frontier;     // pg_snapshot text
	std::optional<std::string> frontier_xid; // xid8 text
	std::optional<int64_t> frontier_cid;
	std::string updated_at; // changes with the definition or configuration, not with refreshes
	bool needs_reinit = false;
	RefreshCosts costs; // the adaptive choice's measurements (core/adaptive.hpp)

	std::string QualifiedName() const; // "schema"."name"
	std::string DisplayName() const;   // schema.name
};

struct Dependency {
	Oid source_relid;
	std::string source_schema;
	std::string source_name;
	std::string source_type;
};

struct QualifiedName {
	std::string schema;
	std::string name;
	bool schema_given = false;
};

// Splits a user-given name ("a.b", "\"A\".b", "b") following SQL identifier rules.
QualifiedName ParseQualifiedName(const std::string &name);
// The schema a new stream table with this name goes to (search_path's first existing schema if none given).
QualifiedName ResolveCreationName(const std::string &name);

// Finds a stream table by user-given name; throws 42P01 if no such relation, 42809 if not a stream table.
StreamTable GetStreamTableByName(pg::SpiSession &spi, const std::string &name);
std::optional<StreamTable> FindStreamTableByRelid(pg::SpiSession &spi, Oid relid);
std::optional<StreamTable> FindStreamTableById(pg::SpiSession &spi, int64_t pgt_id);

int64_t InsertStreamTable(pg::SpiSession &spi, const StreamTable &st, const std::optional<std::string> &mode_reason,
                          const std::vector<std::string> &functions_used);
void InsertDependency(pg::SpiSession &spi, int64_t pgt_id, const Dependency &dep);
void DeleteDependencies(pg::SpiSession &spi, int64_t pgt_id);
std::vector<Dependency> GetDependencies(pg::SpiSession &spi, int64_t pgt_id);
// Stream tables that read `relid` directly.
std::vector<int64_t> GetDependents(pg::SpiSession &spi, Oid relid);
// True if any stream table still reads `relid`.
bool IsSourceInUse(pg::SpiSession &spi, Oid relid);
void DeleteStreamTable(pg::SpiSession &spi, int64_t pgt_id);

} // namespace pgtrickle::catalog
