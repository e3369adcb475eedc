#include "core/shared_windows.hpp"
#include "core/core_only.hpp"

#include <cctype>
#include <map>
#include <vector>

namespace pgtrickle {

std::string
WindowMarker(std::string_view name) {
	return std::string(kWindowMarkerPrefix) + std::string(name);
}

std::string
SharedWindowName(std::string_view name) {
	return "\"__pgt_shared_window_" + std::string(name) + "\"";
}

namespace {

struct Marked {
	size_t open;  // position of '(' of the subquery
	size_t close; // position of its ')'
	std::string name;
};

bool
StartsWithSelect(const std::string &sql, size_t pos) {
	while (pos < sql.size() && std::isspace(static_cast<unsigned char>(sql[pos])))
		pos++;
	static constexpr std::string_view kSelect = "SELECT";
	if (sql.size() - pos < kSelect.size())
		return false;
	for (size_t i = 0; i < kSelect.size(); i++)
		if (std::toupper(static_cast<unsigned char>(sql[pos + i])) != kSelect[i])
			return false;
	size_t after = pos + kSelect.size();
	return after == sql.size() || !(std::isalnum(static_cast<unsigned char>(sql[after])) || sql[after] == '_');
}

// Finds the marked subqueries; false if the text does not scan (unbalanced or unterminated).
bool
FindMarked(const std::string &sql, std::vector<Marked> *out) {
	std::vector<size_t> stack;          // open parentheses
	std::vector<int> pending;           // index into *out of a marked subquery per stack level, or -1
	for (size_t i = 0; i < sql.size(); i++) {
		char c = sql[i];
		if (c == '\'' || c == '"') {
			size_t start = i + 1;
			size_t j = start;
			for (;; j++) {
				if (j >= sql.size())
					return false;
				if (sql[j] == c) {
					if (j + 1 < sql.size() && sql[j + 1] == c) {
						j++;
						continue;
					}
					break;
				}
			}
			std::string_view content(sql.data() + start, j - start);
			if (c == '\'' && content.size() > kWindowMarkerPrefix.size() &&
			    content.substr(0, kWindowMarkerPrefix.size()) == kWindowMarkerPrefix) {
				// The innermost enclosing "(SELECT" owns the marker.
				int level = static_cast<int>(stack.size()) - 1;
				while (level >= 0 && !StartsWithSelect(sql, stack[level] + 1))
					level--;
				if (level < 0)
					return false;
				if (pending[level] < 0) {
					pending[level] = static_cast<int>(out->size());
					out->push_back({stack[level], 0, std::string(content.substr(kWindowMarkerPrefix.size()))});
				}
			}
			i = j;
		} else if (c == '(') {
			stack.push_back(i);
			pending.push_back(-1);
		} else if (c == ')') {
			if (stack.empty())
				return false;
			if (pending.back() >= 0)
				(*out)[pending.back()].close = i;
			stack.pop_back();
			pending.pop_back();
		}
	}
	return stack.empty();
}

} // namespace

std::string
ShareMarkedSubqueries(const std::string &sql) {
	std::vector<Marked> marked;
	if (!FindMarked(sql, &marked))
		return sql;
	std::map<std::string, int> count;
	for (const auto &m : marked)
		count[m.name]++;
	// Marked subqueries never nest (a window is a scan of one change buffer), but a shared one
	// inside another shared one would be replaced with it: keep only the outermost.
	std::vector<const Marked *> shared;
	for (const auto &m : marked) {
		if (count[m.name] < 2)
			continue;
		if (!shared.empty() && m.open < shared.back()->close)
			continue;
		shared.push_back(&m);
	}
	if (shared.empty())
		return sql;
	std::map<std::string, std::string> definitions;
	std::vector<std::string> order;
	std::string body;
	size_t at = 0;
	for (const Marked *m : shared) {
		if (!definitions.count(m->name)) {
			definitions[m->name] = sql.substr(m->open + 1, m->close - m->open - 1);
			order.push_back(m->name);
		}
		body.append(sql, at, m->open + 1 - at);
		body += "SELECT * FROM " + SharedWindowName(m->name);
		at = m->close;
	}
	body.append(sql, at, std::string::npos);
	std::string out = "WITH ";
	for (size_t i = 0; i < order.size(); i++) {
		if (i > 0)
			out += ", ";
		out += SharedWindowName(order[i]) + " AS MATERIALIZED (" + definitions[order[i]] + ")";
	}
	out += " SELECT * FROM (" + body + ") \"__pgt_shared\"";
	return out;
}

} // namespace pgtrickle
