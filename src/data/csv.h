#pragma once
// Private to lepard_data: a CSV parser for the files datasets ship (RFC 4180: quoted
// fields, doubled quotes inside them, line breaks inside quotes).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lepard::data::detail {

struct CsvRow {
  int64_t line = 0;  // 1-based line where the row starts
  std::vector<std::string> fields;
};

struct CsvParse {
  std::vector<CsvRow> rows;
  // Rows that could not be parsed, with their line and what is wrong: text after a
  // closing quote (parsing goes on with the next row), or an unterminated quote (which
  // runs to the end of the file).
  std::vector<std::pair<int64_t, std::string>> errors;
};

CsvParse parse_csv(std::string_view text);

}  // namespace lepard::data::detail
