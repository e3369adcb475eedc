// Self-test entry points for the error bridge. Not part of the extension's SQL API: tests declare
//   CREATE FUNCTION pgt_selftest_bridge(text) RETURNS void LANGUAGE C AS 'pg_trickle', 'pgt_selftest_bridge';
//   CREATE FUNCTION pgt_selftest_destructors() RETURNS bigint LANGUAGE C AS 'pg_trickle', 'pgt_selftest_destructors';
// and check that each kind of failure reaches SQL with the right SQLSTATE, DETAIL, HINT and CONTEXT,
// that C++ destructors ran, and that the backend survives.
#include "pg/bridge.hpp"
#include "pg/spi.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int64_t destructor_runs = 0;

// Non-trivial C++ state alive while an error passes through: its destructor must run.
struct Witness {
	std::vector<std::string> payload{"a", "b", "c"};
	~Witness() {
		destructor_runs++;
	}
};

void
Run(const std::string &kind) {
	using namespace pgtrickle;
	Witness witness;
	auto heap_witness = std::make_unique<Witness>();
	if (kind == "user_error")
		throw UserError(sqlstate::kInvalidParameterValue, "self-test user error", "self-test detail", "self-test hint");
	if (kind == "runtime_error")
		throw std::runtime_error("self-test runtime error");
	if (kind == "pg_error") {
		// An ereport(ERROR) inside PostgreSQL code called from C++.
		pg::PgCall([]() { return DirectFunctionCall2(int4div, Int32GetDatum(1), Int32GetDatum(0)); });
	}
	if (kind == "spi_error") {
		pg::SpiSession spi;
		spi.Exec("SELECT 1 / 0");
	}
	if (kind == "spi_raise") {
		pg::SpiSession spi;
		spi.Exec("DO $$ BEGIN RAISE EXCEPTION 'self-test raise' USING ERRCODE = 'P0042', DETAIL = 'raised detail', "
		         "HINT = 'raised hint'; END $$");
	}
	if (kind == "nested_spi_ok") {
		pg::SpiSession outer;
		{
			pg::SpiSession inner;
			inner.Query("SELECT 1");
		}
		outer.Query("SELECT 2");
		return;
	}
	if (kind == "ok")
		return;
	throw UserError(sqlstate::kInvalidParameterValue, "unknown self-test kind \"" + kind + "\"");
}

} // namespace

extern "C" {
PG_FUNCTION_INFO_V1(pgt_selftest_bridge);
Datum
pgt_selftest_bridge(PG_FUNCTION_ARGS) {
	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	return pgtrickle::pg::CxxBoundary(__func__, [&]() {
		char *kind = pgtrickle::pg::PgCall([&]() { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
		Run(kind);
		PG_RETURN_VOID();
	});
}

PG_FUNCTION_INFO_V1(pgt_selftest_destructors);
Datum
pgt_selftest_destructors(PG_FUNCTION_ARGS) {
	PG_RETURN_INT64(destructor_runs);
}
}
