// The two-way error bridge between C++ and PostgreSQL.
//
// PostgreSQL -> C++: PgCall(lambda) runs PostgreSQL code under PG_TRY. An ereport(ERROR) inside it is
// copied (CopyErrorData) and rethrown as a C++ PgError, so destructors of the C++ frames above run.
// The lambda body itself must only hold trivially destructible locals: a longjmp crosses it.
//
// C++ -> PostgreSQL: every symbol PostgreSQL calls is a thin extern "C" function whose body is
// `return pgtrickle::pg::CxxBoundary(__func__, [&] { return Impl(fcinfo); });`. The boundary turns
// PgError back into the original PostgreSQL error (SQLSTATE, DETAIL, HINT, CONTEXT kept), UserError
// into ereport(ERROR) with its SQLSTATE, and any other exception into an internal error — always
// after every C++ object in the frames below has been destroyed.
//
// Invariant: after a PostgreSQL error has been caught, no PostgreSQL function is called until the
// error is rethrown at the boundary (or its subtransaction rolled back). RAII destructors check
// PgErrorPending() and skip PostgreSQL cleanup in that window; transaction abort does it instead.
#pragma once

#include "pg/postgres.hpp"

#include <exception>
#include <type_traits>
#include <utility>

#include "core/errors.hpp"

namespace pgtrickle::pg {

class PgError : public std::exception {
public:
	explicit PgError(ErrorData *edata) noexcept : edata_(edata) {
	}
	ErrorData *
	Data() const noexcept {
		return edata_;
	}
	int
	Sqlerrcode() const noexcept {
		return edata_ ? edata_->sqlerrcode : 0;
	}
	const char *
	what() const noexcept override;

private:
	ErrorData *edata_;
};

// True between catching a PostgreSQL error and rethrowing (or rolling it back).
bool PgErrorPending() noexcept;
// Called once a caught PostgreSQL error has been dealt with by a subtransaction rollback.
void ClearPgErrorPending() noexcept;

// Runs fn(arg) under PG_TRY. Returns nullptr on success, or a copy of the error (the error state is
// flushed). The copy lives in a context that outlives the caller's scratch contexts.
ErrorData *RunCatchingPgError(void (*fn)(void *), void *arg) noexcept;

[[noreturn]] void ThrowPgError(ErrorData *edata);

template <typename F>
auto
PgCall(F &&f) -> std::invoke_result_t<F &> {
	using R = std::invoke_result_t<F &>;
	using Fn = std::remove_reference_t<F>;
	if constexpr (std::is_void_v<R>) {
		ErrorData *e = RunCatchingPgError([](void *p) { (*static_cast<Fn *>(p))(); }, &f);
		if (e)
			ThrowPgError(e);
	} else {
		static_assert(std::is_trivially_copyable_v<R>, "PgCall results must be trivially copyable");
		struct Ctx {
			Fn *fn;
			R result;
		} ctx{&f, R{}};
		ErrorData *e = RunCatchingPgError(
		    [](void *p) {
			    auto *c = static_cast<Ctx *>(p);
			    c->result = (*c->fn)();
		    },
		    &ctx);
		if (e)
			ThrowPgError(e);
		return ctx.result;
	}
}

// Reports the exception currently being handled as a PostgreSQL ERROR. Only ever called by
// CxxBoundary, outside any catch handler.
struct PendingReport {
	ErrorData *pg_error = nullptr; // rethrown unchanged
	bool has_user_error = false;
	char sqlstate[6] = {0};
	char message[2048] = {0};
	char detail[2048] = {0};
	char hint[1024] = {0};
};
void CaptureCurrentException(PendingReport &report) noexcept;
[[noreturn]] void Report(const char *function, PendingReport &report);

template <typename F>
auto
CxxBoundary(const char *function, F &&f) -> std::invoke_result_t<F &> {
	// A frame holding only trivially destructible state: the ereport below longjmps out of it.
	PendingReport report;
	try {
		return f();
	} catch (...) {
		CaptureCurrentException(report);
	}
	Report(function, report);
}

} // namespace pgtrickle::pg
