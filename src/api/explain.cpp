// pgtrickle.explain_st(name): how a stream table is maintained, and the SQL it runs.
#include "analyze/dvm.hpp"
#include "catalog/catalog.hpp"
#include "core/dvm_plan.hpp"
#include "core/errors.hpp"
#include "core/sql_text.hpp"
#include "pg/bridge.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "utils/tuplestore.h"
}

#include <utility>
#include <vector>

namespace pgtrickle::api {

namespace {

// Replaces the frontier parameters $1..$3 by literals so the statement can be run by hand.
std::string
WithFrontier(const std::string &sql, const catalog::StreamTable &st) {
	std::string literals[3] = {
	    st.frontier ? QuoteLiteral(*st.frontier) + "::pg_catalog.pg_snapshot" : "pg_catalog.pg_current_snapshot()",
	    st.frontier_xid ? QuoteLiteral(*st.frontier_xid) + "::pg_catalog.xid8" : "NULL::pg_catalog.xid8",
	    st.frontier_cid ? std::to_string(*st.frontier_cid) + "::pg_catalog.int8" : "NULL::pg_catalog.int8"};
	std::string out;
	for (size_t i = 0; i < sql.size(); i++) {
		if (sql[i] == '$' && i + 1 < sql.size() && sql[i + 1] >= '1' && sql[i + 1] <= '3' &&
		    (i + 2 >= sql.size() || !std::isdigit(static_cast<unsigned char>(sql[i + 2])))) {
			out += literals[sql[i + 1] - '1'];
			i++;
			continue;
		}
		out += sql[i];
	}
	return out;
}

std::vector<std::pair<std::string, std::string>>
Explain(FunctionCallInfo fcinfo) {
	if (PG_ARGISNULL(0))
		throw UserError(sqlstate::kInvalidParameterValue, "name must not be NULL");
	std::string name = pg::PgCall([&]() { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
	pg::SpiSession spi;
	catalog::StreamTable st = catalog::GetStreamTableByName(spi, name);
	pg::SpiRows extra = spi.Query("SELECT refresh_mode_reason, is_populated FROM pgtrickle.pgt_stream_tables "
	                              "WHERE pgt_id = $1",
	                              pg::SqlParams().Int64(st.pgt_id));

	std::vector<std::pair<std::string, std::string>> rows;
	rows.emplace_back("pgt_name", st.DisplayName());
	rows.emplace_back("original_query", st.original_query);
	rows.emplace_back("defining_query", st.defining_query);
	rows.emplace_back("requested_refresh_mode", st.requested_refresh_mode);
	rows.emplace_back("refresh_mode", st.refresh_mode);
	rows.emplace_back("status", st.status);
	rows.emplace_back("is_populated", st.is_populated ? "true" : "false");
	rows.emplace_back("frontier", st.frontier.value_or("(none: next refresh is FULL)"));

	DvmBuildResult built = BuildDvmPlan(st.defining_query, true);
	if (!built.plan) {
		rows.emplace_back("dvm_supported", "false");
		rows.emplace_back("mode_reason", extra.Count() && !extra.IsNull(0, 0) ? extra.Text(0, 0) : built.unsupported);
		rows.emplace_back("full_refresh_query", "SELECT * FROM (\n" + st.defining_query + "\n) AS q");
		return rows;
	}
	const DvmPlan &plan = *built.plan;
	rows.emplace_back("dvm_supported", "true");
	if (st.refresh_mode != "DIFFERENTIAL")
		rows.emplace_back("mode_reason", "refresh_mode is " + st.refresh_mode + " (requested " +
		                                     st.requested_refresh_mode + ")");
	rows.emplace_back("strategy", plan.strategy);
	rows.emplace_back("operator_tree", plan.operator_tree);
	std::vector<std::string> cols;
	for (const auto &c : plan.visible)
		cols.push_back(c.name + " " + c.type);
	rows.emplace_back("output_columns", Join(cols, ", "));
	pg::SpiRows sources = spi.Query("SELECT string_agg(source_schema || '.' || source_name || ' (' || source_type || "
	                                "', oid ' || source_relid || ', capture ' || cdc_mode || ')', ', ' ORDER BY "
	                                "source_schema, source_name) FROM pgtrickle.pgt_dependencies WHERE pgt_id = $1",
	                                pg::SqlParams().Int64(st.pgt_id));
	rows.emplace_back("sources", sources.Count() && !sources.IsNull(0, 0) ? sources.Text(0, 0) : "");
	rows.emplace_back("delta_query", WithFrontier(DeltaSqlFor(plan, st.QualifiedName(), plan.delta_sql), st));
	if (!plan.delta_sql_large.empty()) // run instead when the window holds 1,000 changed rows or more
		rows.emplace_back("delta_query_large_window", WithFrontier(plan.delta_sql_large, st));
	rows.emplace_back("apply_statement", WithFrontier(ApplySql(plan, st.QualifiedName()), st));
	rows.emplace_back("population_query", PopulationSql(plan));
	return rows;
}

} // namespace

} // namespace pgtrickle::api

extern "C" {
PG_FUNCTION_INFO_V1(explain_st);
Datum
explain_st(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() {
		auto rows = pgtrickle::api::Explain(fcinfo);
		pgtrickle::pg::PgCall([&]() {
			InitMaterializedSRF(fcinfo, 0);
			ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
			for (const auto &row : rows) {
				Datum values[2] = {CStringGetTextDatum(row.first.c_str()), CStringGetTextDatum(row.second.c_str())};
				bool nulls[2] = {false, false};
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
		});
		return (Datum)0;
	});
}
}
