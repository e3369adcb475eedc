// Running a piece of work in an internal subtransaction, so that its failure (a PostgreSQL error or a
// C++ exception) rolls back only that piece and the caller carries on.
#pragma once

#include "pg/bridge.hpp"

#include <optional>
#include <string>

namespace pgtrickle::pg {

struct SubxactState {
	MemoryContext memory;
	ResourceOwner owner;
};

SubxactState BeginSubtransaction();
void CommitSubtransaction(const SubxactState &state);
void RollbackSubtransaction(const SubxactState &state);

// Returns nullopt if `fn` succeeded (its work is kept), else the error message (its work is undone).
template <typename F>
std::optional<std::string>
TrySubtransaction(F &&fn) {
	SubxactState state = BeginSubtransaction();
	std::string message;
	try {
		fn();
		CommitSubtransaction(state);
		return std::nullopt;
	} catch (const std::exception &e) {
		message = e.what();
	}
	ClearPgErrorPending();
	RollbackSubtransaction(state);
	return message;
}

} // namespace pgtrickle::pg
