// Parse + analyze a defining query (see README.md).
#pragma once

#include "pg/postgres.hpp"

#include <string>
#include <vector>

namespace pgtrickle {

struct OutputColumn {
	std::string name;
	Oid type;
	int32 typmod;
	Oid collation;
	std::string type_sql; // format_type_with_typemod
};

struct SourceRelation {
	Oid relid;
	char relkind;       // 'r' table, 'p' partitioned, 'v' view, 'm' matview, 'f' foreign
	std::string schema;
	std::string name;
	bool is_stream_table = false;
	bool is_partition = false; // a partition read directly: its changes are captured on its root
	// 'TABLE', 'STREAM_TABLE', 'VIEW', 'MATVIEW', 'FOREIGN_TABLE'
	const char *SourceType() const;
	// Tables whose changes are captured by triggers.
	bool
	IsCaptured() const {
		return (relkind == 'r' || relkind == 'p') && !is_partition;
	}
};

struct AnalyzedQuery {
	std::string original;      // as given, trailing semicolons removed
	std::string deparsed;      // schema-qualified, search_path independent
	std::vector<OutputColumn> columns;
	std::vector<SourceRelation> sources; // base relations after view expansion, plus the views themselves
	std::vector<std::string> volatile_functions;
	bool has_volatile = false;
};

// Parses and analyses `sql` (must be a single SELECT / VALUES / set operation / WITH query).
// Raises PostgreSQL-style errors: syntax (42601), missing objects (42P01...), unsupported statement
// kinds (0A000), reserved or duplicate output column names (42939 / 42701), temporary or system
// relations as sources (0A000).
AnalyzedQuery AnalyzeDefiningQuery(const std::string &sql);




} // namespace pgtrickle
