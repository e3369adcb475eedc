#include "pg/bridge.hpp"

#include <cstdio>
#include <cstring>
#include <new>

namespace pgtrickle::pg {

namespace {
bool pg_error_pending = false;

void
CopyTruncated(char *dst, size_t size, const char *src) noexcept {
	if (!src) {
		dst[0] = '\0';
		return;
	}
	snprintf(dst, size, "%s", src);
}
} // namespace

const char *
PgError::what() const noexcept {
	return edata_ && edata_->message ? edata_->message : "PostgreSQL error";
}

bool
PgErrorPending() noexcept {
	return pg_error_pending;
}

void
ClearPgErrorPending() noexcept {
	pg_error_pending = false;
}

ErrorData *
RunCatchingPgError(void (*fn)(void *), void *arg) noexcept {
	MemoryContext oldcxt = CurrentMemoryContext;
	ErrorData *volatile edata = nullptr;
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		// Copy into a context that survives RAII scratch contexts being deleted while unwinding.
		MemoryContextSwitchTo(IsTransactionState() ? TopTransactionContext : TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	return edata;
}

void
ThrowPgError(ErrorData *edata) {
	pg_error_pending = true;
	throw PgError(edata);
}

void
CaptureCurrentException(PendingReport &report) noexcept {
	try {
		throw;
	} catch (const PgError &e) {
		report.pg_error = e.Data();
	} catch (const UserError &e) {
		report.has_user_error = true;
		CopyTruncated(report.sqlstate, sizeof report.sqlstate, e.Sqlstate());
		CopyTruncated(report.message, sizeof report.message, e.what());
		CopyTruncated(report.detail, sizeof report.detail, e.Detail().c_str());
		CopyTruncated(report.hint, sizeof report.hint, e.Hint().c_str());
	} catch (const std::bad_alloc &) {
		report.has_user_error = true;
		CopyTruncated(report.sqlstate, sizeof report.sqlstate, "53200");
		CopyTruncated(report.message, sizeof report.message, "out of memory in pg_trickle");
	} catch (const std::exception &e) {
		CopyTruncated(report.sqlstate, sizeof report.sqlstate, sqlstate::kInternalError);
		CopyTruncated(report.message, sizeof report.message, e.what());
	} catch (...) {
		CopyTruncated(report.sqlstate, sizeof report.sqlstate, sqlstate::kInternalError);
		CopyTruncated(report.message, sizeof report.message, "unknown C++ exception");
	}
}

void
Report(const char *function, PendingReport &report) {
	if (report.pg_error) {
		pg_error_pending = false;
		ReThrowError(report.pg_error);
	}
	pg_error_pending = false;
	const char *s = report.sqlstate;
	int code = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
	if (report.has_user_error) {
		ereport(ERROR, (errcode(code), errmsg_internal("%s", report.message),
		                report.detail[0] ? errdetail_internal("%s", report.detail) : 0,
		                report.hint[0] ? errhint("%s", report.hint) : 0));
	}
	ereport(ERROR, (errcode(code), errmsg_internal("pg_trickle internal error in %s: %s", function, report.message)));
	pg_unreachable();
}

} // namespace pgtrickle::pg
