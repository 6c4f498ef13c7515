#include "csv.h"

namespace lepard::data::detail {

CsvParse parse_csv(std::string_view text) {
  CsvParse out;
  size_t i = 0;
  int64_t line = 1;
  const size_t n = text.size();
  while (i < n) {
    CsvRow row;
    row.line = line;
    std::string field;
    bool ok = true, done = false;
    std::string problem;
    while (!done) {
      field.clear();
      if (i < n && text[i] == '"') {  // quoted field
        ++i;
        bool closed = false;
        while (i < n) {
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {
              field += '"';
              ++i;
            } else {
              closed = true;
              break;
            }
          } else {
            if (c == '\n') ++line;
            field += c;
          }
        }
        if (!closed) {
          ok = false;
          problem = "unterminated quoted field";
          done = true;
          break;
        }
        if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          ok = false;
          problem = "text after a closing quote";
        }
      }
      while (i < n && text[i] != ',' && text[i] != '\n') {
        if (text[i] != '\r') field += text[i];
        ++i;
      }
      row.fields.push_back(field);
      if (i >= n) {
        done = true;
      } else if (text[i] == ',') {
        ++i;
      } else {  // '\n'
        ++i;
        ++line;
        done = true;
      }
    }
    if (!ok) {
      out.errors.emplace_back(row.line, problem);
      continue;
    }
    if (row.fields.size() == 1 && row.fields[0].empty()) continue;  // blank line
    out.rows.push_back(std::move(row));
  }
  return out;
}

}  // namespace lepard::data::detail
