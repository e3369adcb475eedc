#include "catalog/catalog.hpp"

#include "core/errors.hpp"
#include "core/sql_text.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "nodes/makefuncs.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"
#include "utils/regproc.h"
}

namespace pgtrickle::catalog {

namespace {

constexpr const char *kSelectColumns =
    "SELECT pgt_id, pgt_relid, pgt_schema, pgt_name, defining_query, original_query, schedule, refresh_mode, "
    "requested_refresh_mode, status, is_populated, frontier::text, needs_reinit, frontier_xid::text, frontier_cid, updated_at::text, last_full_ms, last_differential_ms, last_differential_changes, "
    "adaptive_full_streak FROM pgtrickle.pgt_stream_tables ";

StreamTable
RowToStreamTable(const pg::SpiRows &rows, size_t i) {
	StreamTable st;
	st.pgt_id = rows.Int64(i, 0);
	st.relid = static_cast<Oid>(rows.Int64(i, 1));
	st.schema = rows.Text(i, 2);
	st.name = rows.Text(i, 3);
	st.defining_query = rows.Text(i, 4);
	st.original_query = rows.Text(i, 5);
	st.schedule = rows.OptText(i, 6);
	st.refresh_mode = rows.Text(i, 7);
	st.requested_refresh_mode = rows.Text(i, 8);
	st.status = rows.Text(i, 9);
	st.is_populated = rows.Bool(i, 10);
	st.frontier = rows.OptText(i, 11);
	st.needs_reinit = rows.Bool(i, 12);
	st.frontier_xid = rows.OptText(i, 13);
	if (!rows.IsNull(i, 14))
		st.frontier_cid = rows.Int64(i, 14);
	st.updated_at = rows.Text(i, 15);
	if (!rows.IsNull(i, 16))
		st.costs.full_ms = rows.Float8(i, 16);
	if (!rows.IsNull(i, 17))
		st.costs.diff_ms = rows.Float8(i, 17);
	if (!rows.IsNull(i, 18))
		st.costs.diff_changes = rows.Int64(i, 18);
	st.costs.full_streak = rows.Int64(i, 19);
	return st;
}

std::optional<StreamTable>
FindOne(pg::SpiSession &spi, const std::string &where, const pg::SqlParams &params) {
	pg::SpiRows rows = spi.Query(std::string(kSelectColumns) + where, params);
	if (rows.Count() == 0)
		return std::nullopt;
	return RowToStreamTable(rows, 0);
}

} // namespace

std::string
StreamTable::QualifiedName() const {
	return QuoteQualified(schema, name);
}

std::string
StreamTable::DisplayName() const {
	return schema + "." + name;
}

QualifiedName
ParseQualifiedName(const std::string &name) {
	if (TrimQueryText(name).empty())
		throw UserError(sqlstate::kInvalidParameterValue, "stream table name must not be empty");
	const char *cname = name.c_str();
	// stringToQualifiedNameList reports malformed names itself (invalid name syntax, 42602).
	List *parts = pg::PgCall([&]() { return stringToQualifiedNameList(cname, nullptr); });
	int n = pg::PgCall([&]() { return list_length(parts); });
	QualifiedName out;
	if (n == 1) {
		out.name = strVal(linitial(parts));
	} else if (n == 2) {
		out.schema = strVal(linitial(parts));
		out.name = strVal(lsecond(parts));
		out.schema_given = true;
	} else {
		throw UserError(sqlstate::kInvalidParameterValue, "invalid stream table name \"" + name + "\"",
		                "Use name or schema.name.");
	}
	return out;
}

QualifiedName
ResolveCreationName(const std::string &name) {
	QualifiedName qn = ParseQualifiedName(name);
	const char *schema = qn.schema_given ? qn.schema.c_str() : nullptr;
	const char *rel = qn.name.c_str();
	char *nspname = pg::PgCall([&]() {
		RangeVar *rv = makeRangeVar(const_cast<char *>(schema), const_cast<char *>(rel), -1);
		Oid nsp = RangeVarGetCreationNamespace(rv); // errors if the schema does not exist / no default schema
		return get_namespace_name(nsp);
	});
	qn.schema = nspname;
	qn.schema_given = true;
	return qn;
}

StreamTable
GetStreamTableByName(pg::SpiSession &spi, const std::string &name) {
	QualifiedName qn = ParseQualifiedName(name);
	const char *schema = qn.schema_given ? qn.schema.c_str() : nullptr;
	const char *rel = qn.name.c_str();
	Oid relid = pg::PgCall([&]() {
		RangeVar *rv = makeRangeVar(const_cast<char *>(schema), const_cast<char *>(rel), -1);
		return RangeVarGetRelid(rv, NoLock, true);
	});
	if (!OidIsValid(relid))
		throw UserError(sqlstate::kUndefinedTable, "stream table \"" + name + "\" does not exist");
	auto st = FindStreamTableByRelid(spi, relid);
	if (!st)
		throw UserError(sqlstate::kWrongObjectType, "\"" + name + "\" is not a stream table",
		                {}, "Create it with pgtrickle.create_stream_table.");
	return *st;
}

std::optional<StreamTable>
FindStreamTableByRelid(pg::SpiSession &spi, Oid relid) {
	return FindOne(spi, "WHERE pgt_relid = $1", pg::SqlParams().Oid(relid));
}

std::optional<StreamTable>
FindStreamTableById(pg::SpiSession &spi, int64_t pgt_id) {
	return FindOne(spi, "WHERE pgt_id = $1", pg::SqlParams().Int64(pgt_id));
}

int64_t
InsertStreamTable(pg::SpiSession &spi, const StreamTable &st, const std::optional<std::string> &mode_reason,
                  const std::vector<std::string> &functions_used) {
	pg::SqlParams p;
	p.Oid(st.relid).Text(st.name).Text(st.schema).Text(st.defining_query).Text(st.original_query).OptText(st.schedule)
	    .Text(st.refresh_mode).Text(st.requested_refresh_mode).OptText(mode_reason).Text(st.status)
	    .TextArray(functions_used);
	pg::SpiRows rows = spi.Query(
	    "INSERT INTO pgtrickle.pgt_stream_tables (pgt_relid, pgt_name, pgt_schema, defining_query, original_query, "
	    "schedule, refresh_mode, requested_refresh_mode, refresh_mode_reason, status, functions_used) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING pgt_id",
	    p);
	return rows.Int64(0, 0);
}

void
InsertDependency(pg::SpiSession &spi, int64_t pgt_id, const Dependency &dep) {
	pg::SqlParams p;
	p.Int64(pgt_id).Oid(dep.source_relid).Text(dep.source_schema).Text(dep.source_name).Text(dep.source_type);
	spi.Exec("INSERT INTO pgtrickle.pgt_dependencies (pgt_id, source_relid, source_schema, source_name, source_type, "
	         "cdc_mode) VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 IN ('TABLE', 'STREAM_TABLE') THEN 'TRIGGER' "
	         "ELSE 'NONE' END)",
	         p);
}

void
DeleteDependencies(pg::SpiSession &spi, int64_t pgt_id) {
	spi.Exec("DELETE FROM pgtrickle.pgt_dependencies WHERE pgt_id = $1", pg::SqlParams().Int64(pgt_id));
}

std::vector<Dependency>
GetDependencies(pg::SpiSession &spi, int64_t pgt_id) {
	pg::SpiRows rows = spi.Query("SELECT source_relid, source_schema, source_name, source_type "
	                             "FROM pgtrickle.pgt_dependencies WHERE pgt_id = $1 ORDER BY source_relid",
	                             pg::SqlParams().Int64(pgt_id));
	std::vector<Dependency> out;
	for (size_t i = 0; i < rows.Count(); i++)
		out.push_back({static_cast<Oid>(rows.Int64(i, 0)), rows.Text(i, 1), rows.Text(i, 2), rows.Text(i, 3)});
	return out;
}

std::vector<int64_t>
GetDependents(pg::SpiSession &spi, Oid relid) {
	pg::SpiRows rows = spi.Query("SELECT pgt_id FROM pgtrickle.pgt_dependencies WHERE source_relid = $1 ORDER BY 1",
	                             pg::SqlParams().Oid(relid));
	std::vector<int64_t> out;
	for (size_t i = 0; i < rows.Count(); i++)
		out.push_back(rows.Int64(i, 0));
	return out;
}

bool
IsSourceInUse(pg::SpiSession &spi, Oid relid) {
	return !GetDependents(spi, relid).empty();
}

void
DeleteStreamTable(pg::SpiSession &spi, int64_t pgt_id) {
	spi.Exec("DELETE FROM pgtrickle.pgt_stream_tables WHERE pgt_id = $1", pg::SqlParams().Int64(pgt_id));
}

} // namespace pgtrickle::catalog
