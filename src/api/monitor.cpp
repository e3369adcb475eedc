// Monitoring entry points that need C++ logic: effective schedules of the stream table graph,
// and resume_stream_table.
#include "catalog/catalog.hpp"
#include "core/errors.hpp"
#include "core/schedule.hpp"
#include "core/scheduling.hpp"
#include "pg/bridge.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "utils/tuplestore.h"
}

#include <map>

namespace pgtrickle::api {

namespace {

struct EffectiveRow {
	int64_t pgt_id;
	std::string effective;
};

std::vector<EffectiveRow>
ComputeEffective() {
	pg::SpiSession spi;
	pg::SpiRows rows = spi.Query("SELECT pgt_id, COALESCE(schedule, 'calculated') FROM pgtrickle.pgt_stream_tables "
	                             "ORDER BY pgt_id",
	                             {}, true);
	pg::SpiRows edges = spi.Query("SELECT d.pgt_id, up.pgt_id FROM pgtrickle.pgt_dependencies d "
	                              "JOIN pgtrickle.pgt_stream_tables up ON up.pgt_relid = d.source_relid",
	                              {}, true);
	std::map<int64_t, std::vector<int64_t>> upstream;
	for (size_t i = 0; i < edges.Count(); i++)
		upstream[edges.Int64(i, 0)].push_back(edges.Int64(i, 1));
	std::vector<SchedNode> nodes;
	for (size_t i = 0; i < rows.Count(); i++) {
		SchedNode n;
		n.id = rows.Int64(i, 0);
		try {
			n.schedule = ParseSchedule(rows.Text(i, 1), 0);
		} catch (const UserError &) {
		}
		n.upstream = upstream[n.id];
		nodes.push_back(std::move(n));
	}
	auto eff = EffectiveSchedules(nodes);
	std::vector<EffectiveRow> out;
	for (const auto &n : nodes) {
		std::string text;
		if (n.schedule.kind == ScheduleKind::Cron)
			text = n.schedule.text;
		else if (eff[n.id])
			text = FormatDuration(*eff[n.id]);
		else
			text = "on source change";
		out.push_back({n.id, text});
	}
	return out;
}

void
Resume(FunctionCallInfo fcinfo) {
	if (PG_ARGISNULL(0))
		throw UserError(sqlstate::kInvalidParameterValue, "name must not be NULL");
	std::string name = pg::PgCall([&]() { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
	pg::SpiSession spi;
	catalog::StreamTable st = catalog::GetStreamTableByName(spi, name);
	if (st.status != "SUSPENDED" && st.status != "ERROR")
		throw UserError(sqlstate::kObjectNotInPrerequisiteState,
		                "stream table \"" + st.DisplayName() + "\" is not suspended", "Its status is " + st.status + ".");
	spi.Exec("UPDATE pgtrickle.pgt_stream_tables SET status = 'ACTIVE', consecutive_errors = 0, "
	         "updated_at = pg_catalog.now() WHERE pgt_id = $1",
	         pg::SqlParams().Int64(st.pgt_id));
	spi.Exec("SELECT pg_catalog.pg_notify('pg_trickle_alert', pg_catalog.jsonb_build_object('event', 'resumed', "
	         "'pgt_schema', $1::text, 'pgt_name', $2::text, 'st', $1::text || '.' || $2::text, 'previous_status', "
	         "$3::text)::text)",
	         pg::SqlParams().Text(st.schema).Text(st.name).Text(st.status));
}

} // namespace

} // namespace pgtrickle::api

extern "C" {
PG_FUNCTION_INFO_V1(pgt_effective_schedules);
Datum
pgt_effective_schedules(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() {
		auto rows = pgtrickle::api::ComputeEffective();
		pgtrickle::pg::PgCall([&]() {
			InitMaterializedSRF(fcinfo, 0);
			ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
			for (const auto &row : rows) {
				Datum values[2] = {Int64GetDatum(row.pgt_id), CStringGetTextDatum(row.effective.c_str())};
				bool nulls[2] = {false, false};
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
		});
		return (Datum)0;
	});
}

PG_FUNCTION_INFO_V1(resume_stream_table);
Datum
resume_stream_table(PG_FUNCTION_ARGS) {
	return pgtrickle::pg::CxxBoundary(__func__, [&]() {
		pgtrickle::api::Resume(fcinfo);
		PG_RETURN_VOID();
	});
}
}
