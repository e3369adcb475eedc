// Query -> DvmPlan: decides whether a defining query can be maintained differentially and, if so,
// produces the plan (src/core/dvm_plan.hpp) with its SQL fragments.
#pragma once

#include "core/dvm_plan.hpp"

#include <optional>
#include <string>

namespace pgtrickle {

struct DvmBuildResult {
	std::optional<DvmPlan> plan;
	std::string unsupported; // why not, naming the construct (when !plan)
};

// `query` is a stored, schema-qualified defining query. Errors in PostgreSQL while building are
// reported as unsupported when `catch_errors` (a subtransaction protects the caller), else raised.
DvmBuildResult BuildDvmPlan(const std::string &query, bool catch_errors);

} // namespace pgtrickle
