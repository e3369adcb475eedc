#include "pg/subxact.hpp"

extern "C" {
#include "utils/resowner.h"
}

namespace pgtrickle::pg {

SubxactState
BeginSubtransaction() {
	SubxactState state{CurrentMemoryContext, CurrentResourceOwner};
	PgCall([]() { BeginInternalSubTransaction(nullptr); });
	// Work inside allocates where the caller does, so results outlive the subtransaction.
	MemoryContextSwitchTo(state.memory);
	return state;
}

void
CommitSubtransaction(const SubxactState &state) {
	PgCall([]() { ReleaseCurrentSubTransaction(); });
	MemoryContextSwitchTo(state.memory);
	CurrentResourceOwner = state.owner;
}

void
RollbackSubtransaction(const SubxactState &state) {
	PgCall([]() { RollbackAndReleaseCurrentSubTransaction(); });
	MemoryContextSwitchTo(state.memory);
	CurrentResourceOwner = state.owner;
}

} // namespace pgtrickle::pg
