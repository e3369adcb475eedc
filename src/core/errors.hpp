// Errors raised by pure C++ code, carrying a PostgreSQL SQLSTATE without PostgreSQL headers.
// The boundary (src/pg/boundary.hpp) turns a UserError into ereport(ERROR) with the same SQLSTATE,
// DETAIL and HINT.
#pragma once

#include <stdexcept>
#include <string>

namespace pgtrickle {

// Five-character SQLSTATE codes we use (see PostgreSQL's errcodes.txt).
namespace sqlstate {
inline constexpr const char *kFeatureNotSupported = "0A000";
inline constexpr const char *kInvalidParameterValue = "22023";
inline constexpr const char *kUndefinedTable = "42P01";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kDuplicateTable = "42P07";
inline constexpr const char *kDuplicateColumn = "42701";
inline constexpr const char *kInvalidColumnReference = "42P10";
inline constexpr const char *kReservedName = "42939";
inline constexpr const char *kSyntaxError = "42601";
inline constexpr const char *kWrongObjectType = "42809";
inline constexpr const char *kObjectNotInPrerequisiteState = "55000";
inline constexpr const char *kDependentObjectsStillExist = "2BP01";
inline constexpr const char *kInvalidRecursion = "42P19";
inline constexpr const char *kInsufficientPrivilege = "42501";
inline constexpr const char *kReadOnlySqlTransaction = "25006";
inline constexpr const char *kInternalError = "XX000";
} // namespace sqlstate

class UserError : public std::runtime_error {
public:
	UserError(const char *sqlstate, std::string message, std::string detail = {}, std::string hint = {})
	    : std::runtime_error(message), sqlstate_(sqlstate), detail_(std::move(detail)), hint_(std::move(hint)) {
	}

	const char *
	Sqlstate() const noexcept {
		return sqlstate_;
	}
	const std::string &
	Detail() const noexcept {
		return detail_;
	}
	const std::string &
	Hint() const noexcept {
		return hint_;
	}

private:
	const char *sqlstate_;
	std::string detail_;
	std::string hint_;
};

} // namespace pgtrickle
