#include "core/sql_text.hpp"
#include "core/core_only.hpp"

#include <algorithm>
#include <cctype>

namespace pgtrickle {

std::string
QuoteIdent(std::string_view ident) {
	std::string out;
	out.reserve(ident.size() + 2);
	out.push_back('"');
	for (char c : ident) {
		if (c == '"')
			out.push_back('"');
		out.push_back(c);
	}
	out.push_back('"');
	return out;
}

std::string
QuoteQualified(std::string_view schema, std::string_view name) {
	return QuoteIdent(schema) + "." + QuoteIdent(name);
}

std::string
QuoteLiteral(std::string_view text) {
	std::string out;
	out.reserve(text.size() + 2);
	bool has_backslash = text.find('\\') != std::string_view::npos;
	if (has_backslash)
		out.push_back('E');
	out.push_back('\'');
	for (char c : text) {
		if (c == '\'' || (has_backslash && c == '\\'))
			out.push_back(c);
		out.push_back(c);
	}
	out.push_back('\'');
	return out;
}

std::string
TrimQueryText(std::string_view sql) {
	size_t begin = 0;
	while (begin < sql.size() && std::isspace(static_cast<unsigned char>(sql[begin])))
		begin++;
	size_t end = sql.size();
	while (end > begin && (std::isspace(static_cast<unsigned char>(sql[end - 1])) || sql[end - 1] == ';'))
		end--;
	return std::string(sql.substr(begin, end - begin));
}

std::string
AsciiUpper(std::string_view s) {
	std::string out(s);
	for (char &c : out)
		c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
	return out;
}

std::string
AsciiLower(std::string_view s) {
	std::string out(s);
	for (char &c : out)
		c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
	return out;
}

std::string
Join(const std::vector<std::string> &parts, std::string_view sep) {
	std::string out;
	for (size_t i = 0; i < parts.size(); i++) {
		if (i)
			out.append(sep);
		out.append(parts[i]);
	}
	return out;
}

bool
IsReservedColumnName(std::string_view name) {
	return name.size() >= kHiddenPrefix.size() && AsciiLower(name.substr(0, kHiddenPrefix.size())) == kHiddenPrefix;
}

std::string
ReplacePlaceholders(std::string_view sql, const std::function<std::optional<std::string>(long)> &replace) {
	constexpr size_t kDigits = 9;
	auto digit = [&](size_t i) { return i < sql.size() && std::isdigit(static_cast<unsigned char>(sql[i])); };
	std::string out;
	out.reserve(sql.size());
	for (size_t i = 0; i < sql.size();) {
		char c = sql[i];
		if (c == '\'' || c == '"') {
			// A quoted identifier or string literal, doubled quotes inside, copied as it is.
			size_t j = i + 1;
			while (j < sql.size() && !(sql[j] == c && !(j + 1 < sql.size() && sql[j + 1] == c)))
				j += sql[j] == c ? 2 : 1;
			j = std::min(j + 1, sql.size());
			out.append(sql.substr(i, j - i));
			i = j;
			continue;
		}
		if (c == '$' && !digit(i + kDigits + 1)) {
			bool all = true;
			for (size_t k = 1; k <= kDigits; k++)
				all = all && digit(i + k);
			if (all && !(i > 0 && (std::isalnum(static_cast<unsigned char>(sql[i - 1])) || sql[i - 1] == '_'))) {
				if (auto value = replace(std::stol(std::string(sql.substr(i + 1, kDigits))))) {
					out += *value;
					i += kDigits + 1;
					continue;
				}
			}
		}
		out += c;
		i++;
	}
	return out;
}

} // namespace pgtrickle
