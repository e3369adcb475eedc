#include "pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

#include <cstdlib>

namespace pgtrickle::pg {

SqlParams &
SqlParams::Text(const std::string &v) {
	types_.push_back(TEXTOID);
	values_.push_back({Value::Kind::Text, v});
	return *this;
}

SqlParams &
SqlParams::OptText(const std::optional<std::string> &v) {
	return v ? Text(*v) : Null(TEXTOID);
}

SqlParams &
SqlParams::OptInt64(const std::optional<int64_t> &v) {
	return v ? Int64(*v) : Null(INT8OID);
}

SqlParams &
SqlParams::OptFloat8(const std::optional<double> &v) {
	return v ? Float8(*v) : Null(FLOAT8OID);
}

SqlParams &
SqlParams::Int64(int64_t v) {
	types_.push_back(INT8OID);
	values_.push_back({Value::Kind::Int64, {}, v});
	return *this;
}

SqlParams &
SqlParams::Int32(int32_t v) {
	types_.push_back(INT4OID);
	values_.push_back({Value::Kind::Int32, {}, v});
	return *this;
}

SqlParams &
SqlParams::Oid(::Oid v) {
	types_.push_back(OIDOID);
	values_.push_back({Value::Kind::Oid, {}, static_cast<int64_t>(v)});
	return *this;
}

SqlParams &
SqlParams::Bool(bool v) {
	types_.push_back(BOOLOID);
	values_.push_back({Value::Kind::Bool, {}, v ? 1 : 0});
	return *this;
}

SqlParams &
SqlParams::Float8(double v) {
	types_.push_back(FLOAT8OID);
	Value val{Value::Kind::Float8};
	val.f = v;
	values_.push_back(val);
	return *this;
}

SqlParams &
SqlParams::TimestampTz(int64_t v) {
	types_.push_back(TIMESTAMPTZOID);
	values_.push_back({Value::Kind::TimestampTz, {}, v});
	return *this;
}

SqlParams &
SqlParams::Null(::Oid type) {
	types_.push_back(type);
	values_.push_back({Value::Kind::Null});
	return *this;
}

SqlParams &
SqlParams::Typed(::Oid type, const std::string &text_value) {
	types_.push_back(type);
	values_.push_back({Value::Kind::Typed, text_value});
	return *this;
}

SqlParams &
SqlParams::TextArray(const std::vector<std::string> &v) {
	types_.push_back(TEXTARRAYOID);
	Value val{Value::Kind::TextArray};
	val.array = v;
	values_.push_back(val);
	return *this;
}

// Runs under PgCall: no C++ objects are created here.
void
SqlParams::Materialize(::Oid **types, Datum **values, char **nulls) const {
	size_t n = types_.size();
	*types = static_cast<::Oid *>(palloc(sizeof(::Oid) * (n + 1)));
	*values = static_cast<Datum *>(palloc(sizeof(Datum) * (n + 1)));
	*nulls = static_cast<char *>(palloc(n + 1));
	for (size_t i = 0; i < n; i++) {
		const Value &v = values_[i];
		(*types)[i] = types_[i];
		(*nulls)[i] = ' ';
		switch (v.kind) {
		case Value::Kind::Text:
			(*values)[i] = PointerGetDatum(cstring_to_text_with_len(v.text.data(), static_cast<int>(v.text.size())));
			break;
		case Value::Kind::Int64:
			(*values)[i] = Int64GetDatum(v.i);
			break;
		case Value::Kind::TimestampTz:
			(*values)[i] = TimestampTzGetDatum(v.i);
			break;
		case Value::Kind::Int32:
			(*values)[i] = Int32GetDatum(static_cast<int32>(v.i));
			break;
		case Value::Kind::Oid:
			(*values)[i] = ObjectIdGetDatum(static_cast<::Oid>(v.i));
			break;
		case Value::Kind::Bool:
			(*values)[i] = BoolGetDatum(v.i != 0);
			break;
		case Value::Kind::Float8:
			(*values)[i] = Float8GetDatum(v.f);
			break;
		case Value::Kind::Null:
			(*values)[i] = (Datum)0;
			(*nulls)[i] = 'n';
			break;
		case Value::Kind::Typed: {
			::Oid typinput;
			::Oid typioparam;
			getTypeInputInfo(types_[i], &typinput, &typioparam);
			(*values)[i] = OidInputFunctionCall(typinput, const_cast<char *>(v.text.c_str()), typioparam, -1);
			break;
		}
		case Value::Kind::TextArray: {
			int count = static_cast<int>(v.array.size());
			Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (count + 1)));
			for (int j = 0; j < count; j++)
				elems[j] = PointerGetDatum(cstring_to_text(v.array[j].c_str()));
			(*values)[i] = PointerGetDatum(construct_array_builtin(elems, count, TEXTOID));
			break;
		}
		}
	}
}

const std::string &
SpiRows::Text(size_t row, size_t col) const {
	const auto &cell = rows_.at(row).at(col);
	if (!cell)
		throw std::runtime_error("unexpected NULL in SPI result column " + std::to_string(col));
	return *cell;
}

int64_t
SpiRows::Int64(size_t row, size_t col) const {
	return std::strtoll(Text(row, col).c_str(), nullptr, 10);
}

bool
SpiRows::Bool(size_t row, size_t col) const {
	return Text(row, col) == "t";
}

double
SpiRows::Float8(size_t row, size_t col) const {
	return std::strtod(Text(row, col).c_str(), nullptr);
}

namespace {
struct RawTable {
	char **cells; // rows * cols, NULL cell = nullptr
	char **names;
	char **types;
	uint64 rows;
	int cols;
};
} // namespace

SpiRows
CopyTupTable(uint64_t processed) {
	RawTable raw = PgCall([&]() {
		RawTable r{nullptr, nullptr, nullptr, 0, 0};
		if (!SPI_tuptable)
			return r;
		TupleDesc desc = SPI_tuptable->tupdesc;
		r.rows = processed;
		r.cols = desc->natts;
		r.cells = static_cast<char **>(palloc0(sizeof(char *) * (r.rows * r.cols + 1)));
		r.names = static_cast<char **>(palloc0(sizeof(char *) * (r.cols + 1)));
		r.types = static_cast<char **>(palloc0(sizeof(char *) * (r.cols + 1)));
		for (int c = 0; c < r.cols; c++) {
			r.names[c] = SPI_fname(desc, c + 1);
			Form_pg_attribute att = TupleDescAttr(desc, c);
			r.types[c] = format_type_with_typemod(att->atttypid, att->atttypmod);
		}
		for (uint64 i = 0; i < r.rows; i++)
			for (int c = 0; c < r.cols; c++)
				r.cells[i * r.cols + c] = SPI_getvalue(SPI_tuptable->vals[i], desc, c + 1);
		return r;
	});
	SpiRows out;
	out.columns_ = static_cast<size_t>(raw.cols);
	for (int c = 0; c < raw.cols; c++) {
		out.names_.emplace_back(raw.names[c] ? raw.names[c] : "");
		out.types_.emplace_back(raw.types[c] ? raw.types[c] : "");
	}
	out.rows_.reserve(raw.rows);
	for (uint64 i = 0; i < raw.rows; i++) {
		std::vector<std::optional<std::string>> row;
		row.reserve(raw.cols);
		for (int c = 0; c < raw.cols; c++) {
			char *v = raw.cells[i * raw.cols + c];
			if (v)
				row.emplace_back(std::string(v));
			else
				row.emplace_back(std::nullopt);
		}
		out.rows_.push_back(std::move(row));
	}
	return out;
}

SpiSession::SpiSession() : uncaught_(std::uncaught_exceptions()) {
	depth_ = PgCall([]() { return SPI_connect(); });
}

SpiSession::~SpiSession() {
	if (PgErrorPending())
		return; // transaction abort cleans the SPI stack
	try {
		PgCall([]() { SPI_finish(); });
	} catch (...) {
		// Destructors must not throw; the pending error (if any) reaches the boundary.
	}
}

namespace {
struct ExecArgs {
	const char *sql;
	const SqlParams *params;
	bool read_only;
	Snapshot snapshot;
};

int
ExecRaw(const ExecArgs &a) {
	::Oid *types;
	Datum *values;
	char *nulls;
	a.params->Materialize(&types, &values, &nulls);
	int n = static_cast<int>(a.params->Size());
	int rc;
	if (a.snapshot) {
		SPIPlanPtr plan = SPI_prepare(a.sql, n, types);
		if (!plan)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		rc = SPI_execute_snapshot(plan, values, nulls, a.snapshot, InvalidSnapshot, a.read_only, true, 0);
		SPI_freeplan(plan);
	} else if (n == 0) {
		rc = SPI_execute(a.sql, a.read_only, 0);
	} else {
		rc = SPI_execute_with_args(a.sql, n, types, values, nulls, a.read_only, 0);
	}
	if (rc < 0)
		elog(ERROR, "SPI failed (%s) running: %s", SPI_result_code_string(rc), a.sql);
	return rc;
}
} // namespace

uint64_t
SpiSession::Exec(const std::string &sql, const SqlParams &params, bool read_only) {
	ExecArgs a{sql.c_str(), &params, read_only, nullptr};
	return PgCall([&]() {
		ExecRaw(a);
		return static_cast<uint64_t>(SPI_processed);
	});
}

SpiRows
SpiSession::Query(const std::string &sql, const SqlParams &params, bool read_only) {
	ExecArgs a{sql.c_str(), &params, read_only, nullptr};
	uint64_t n = PgCall([&]() {
		ExecRaw(a);
		return static_cast<uint64_t>(SPI_processed);
	});
	return CopyTupTable(n);
}

uint64_t
SpiSession::ExecPlanWithSnapshot(SPIPlanPtr plan, const SqlParams &params, Snapshot snapshot, SpiRows *out) {
	const SqlParams *p = &params;
	uint64_t n = PgCall([&]() {
		::Oid *types;
		Datum *values;
		char *nulls;
		p->Materialize(&types, &values, &nulls);
		int rc = SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot, false, true, 0);
		if (rc < 0)
			elog(ERROR, "SPI failed (%s) running a kept plan", SPI_result_code_string(rc));
		return static_cast<uint64_t>(SPI_processed);
	});
	if (out)
		*out = CopyTupTable(n);
	return n;
}

uint64_t
SpiSession::ExecPlan(SPIPlanPtr plan, const SqlParams &params, SpiRows *out) {
	// No snapshot given: the usual per-statement snapshot, as SPI_execute_plan.
	return ExecPlanWithSnapshot(plan, params, InvalidSnapshot, out);
}

SPIPlanPtr
PrepareKept(const std::string &sql, const SqlParams &params, int cursor_options) {
	const char *text = sql.c_str();
	const SqlParams *p = &params;
	return PgCall([&]() {
		SPIPlanPtr plan = SPI_prepare_cursor(text, static_cast<int>(p->Size()), const_cast<::Oid *>(p->Types().data()),
		                                     cursor_options);
		if (!plan)
			elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), text);
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		return plan;
	});
}

void
FreeKept(SPIPlanPtr plan) noexcept {
	if (!plan || PgErrorPending())
		return;
	try {
		PgCall([&]() { SPI_freeplan(plan); });
	} catch (...) {
	}
}

uint64_t
SpiSession::ExecWithSnapshot(const std::string &sql, const SqlParams &params, Snapshot snapshot, SpiRows *out) {
	ExecArgs a{sql.c_str(), &params, false, snapshot};
	uint64_t n = PgCall([&]() {
		ExecRaw(a);
		return static_cast<uint64_t>(SPI_processed);
	});
	if (out)
		*out = CopyTupTable(n);
	return n;
}

} // namespace pgtrickle::pg
