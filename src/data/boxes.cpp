#include <lepard/data/boxes.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lepard::data {

std::map<std::string, BoxRow> read_boxes_csv(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path.string() + ": cannot open");
  std::map<std::string, BoxRow> boxes;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (n == 1 || line.empty()) continue;  // header
    const std::string where = path.string() + ":" + std::to_string(n);
    std::stringstream ss(line);
    std::string name, field;
    std::getline(ss, name, ',');
    if (name.empty()) throw std::invalid_argument(where + ": empty file name");
    BoxRow b;
    b.where = where;
    static const char* columns[] = {"left", "top", "width", "height"};
    for (size_t i = 0; i < 4; ++i) {
      if (!std::getline(ss, field, ',')) throw std::invalid_argument(where + ": expected file,left,top,width,height");
      double v = 0;
      size_t used = 0;
      try {
        v = std::stod(field, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || field.find_first_not_of(" \t", used) != std::string::npos || !std::isfinite(v))
        throw std::invalid_argument(where + ": " + columns[i] + " '" + field + "' is not a finite number");
      if (std::abs(v) > 1e6)
        throw std::invalid_argument(where + ": " + columns[i] + " " + field + " is beyond 1e6 pixels");
      if (i >= 2 && !(v > 0))
        throw std::invalid_argument(where + ": " + columns[i] + " must be positive, got " + field);
      b.ltwh[i] = v;
    }
    if (std::getline(ss, field, ',')) throw std::invalid_argument(where + ": more than 5 fields");
    if (boxes.count(name))
      throw std::invalid_argument(where + ": a second box for " + name + " (" + boxes[name].where + ")");
    boxes[name] = b;
  }
  return boxes;
}

}  // namespace lepard::data
