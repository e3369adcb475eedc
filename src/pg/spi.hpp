// SPI behind RAII. Every call that can ereport goes through PgCall, so a PostgreSQL error becomes a
// PgError and the C++ frames unwind normally.
//
//   pg::SpiSession spi;                       // SPI_connect; SPI_finish at scope exit
//   pg::SqlParams p; p.Text(name).Int64(id);  // $1, $2 ...
//   auto rows = spi.Query("SELECT ... WHERE a = $1 AND b = $2", p);
//   for (size_t i = 0; i < rows.Count(); i++) rows.Text(i, 0);
#pragma once

#include "pg/bridge.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pgtrickle::pg {

// Positional parameters for SPI statements. Values are converted to Datums when the statement runs,
// in the SPI procedure's memory context.
class SqlParams {
public:
	SqlParams &Text(const std::string &v);
	SqlParams &OptText(const std::optional<std::string> &v);
	SqlParams &OptInt64(const std::optional<int64_t> &v);
	SqlParams &OptFloat8(const std::optional<double> &v);
	SqlParams &Int64(int64_t v);
	SqlParams &Int32(int32_t v);
	SqlParams &Oid(::Oid v);
	SqlParams &Bool(bool v);
	SqlParams &Float8(double v);
	SqlParams &TimestampTz(int64_t v); // PostgreSQL TimestampTz (µs since 2000-01-01)
	SqlParams &Null(::Oid type);
	// A value of any type given in its text form, cast by the input function of `type`.
	SqlParams &Typed(::Oid type, const std::string &text_value);
	SqlParams &TextArray(const std::vector<std::string> &v);

	size_t
	Size() const {
		return types_.size();
	}
	const std::vector<::Oid> &
	Types() const {
		return types_;
	}

	// Builds the Datum arrays (in CurrentMemoryContext). Must be called under PgCall.
	void Materialize(::Oid **types, Datum **values, char **nulls) const;

private:
	struct Value {
		enum class Kind { Text, Int64, Int32, Oid, Bool, Float8, Null, Typed, TextArray, TimestampTz } kind;
		std::string text;
		int64_t i = 0;
		double f = 0;
		std::vector<std::string> array;
	};
	std::vector<::Oid> types_;
	std::vector<Value> values_;
};

// A materialised SPI result (copied out of SPI memory into C++ values as text).
class SpiRows {
public:
	size_t
	Count() const {
		return rows_.size();
	}
	size_t
	Columns() const {
		return columns_;
	}
	bool
	IsNull(size_t row, size_t col) const {
		return !rows_.at(row).at(col).has_value();
	}
	const std::string &Text(size_t row, size_t col) const;
	std::optional<std::string>
	OptText(size_t row, size_t col) const {
		return rows_.at(row).at(col);
	}
	int64_t Int64(size_t row, size_t col) const;
	bool Bool(size_t row, size_t col) const;
	double Float8(size_t row, size_t col) const;

	std::vector<std::vector<std::optional<std::string>>> rows_;
	std::vector<std::string> names_;
	std::vector<std::string> types_; // format_type of each column
	size_t columns_ = 0;
};

class SpiSession {
public:
	SpiSession();
	~SpiSession();
	SpiSession(const SpiSession &) = delete;
	SpiSession &operator=(const SpiSession &) = delete;

	// Runs a statement; returns the number of rows processed.
	uint64_t Exec(const std::string &sql, const SqlParams &params = {}, bool read_only = false);
	// Runs a query and copies its result out as text.
	SpiRows Query(const std::string &sql, const SqlParams &params = {}, bool read_only = false);
	// Runs a statement under an explicit snapshot (all reads see exactly `snapshot`, with the command id
	// advanced so this transaction's own earlier writes are visible).
	uint64_t ExecWithSnapshot(const std::string &sql, const SqlParams &params, Snapshot snapshot,
	                          SpiRows *out = nullptr);

	// Runs a kept plan (see PrepareKept) with the usual snapshot rules.
	uint64_t ExecPlan(SPIPlanPtr plan, const SqlParams &params, SpiRows *out = nullptr);
	// Runs a kept plan (see PrepareKept) under an explicit snapshot.
	uint64_t ExecPlanWithSnapshot(SPIPlanPtr plan, const SqlParams &params, Snapshot snapshot, SpiRows *out = nullptr);

private:
	int depth_;
	int uncaught_;
};

SpiRows CopyTupTable(uint64_t processed);

// Prepares `sql` with the parameter types of `params` and keeps the plan across transactions
// (SPI_keepplan). The plan is revalidated by PostgreSQL when objects it uses change.
// `cursor_options`: CURSOR_OPT_* (e.g. CURSOR_OPT_GENERIC_PLAN: always the plan made once).
SPIPlanPtr PrepareKept(const std::string &sql, const SqlParams &params, int cursor_options = 0);
void FreeKept(SPIPlanPtr plan) noexcept;

} // namespace pgtrickle::pg
