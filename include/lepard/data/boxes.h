#pragma once
// The object boxes of lepard-infer --boxes: a CSV with a header line and one row per image,
// file,left,top,width,height (pixels of the original image). Every value is range-checked:
// an empty name, a repeated name, a value that is not a finite number, a width or height
// that is not positive, anything beyond 1e6 pixels or a sixth field is an error
// (std::invalid_argument) naming the file and row. Whether a box overlaps its image is for
// the caller, who knows the image's size.
#include <array>
#include <filesystem>
#include <map>
#include <string>

namespace lepard::data {

struct BoxRow {
  std::array<double, 4> ltwh{};  // left, top, width, height
  std::string where;             // "file:row", for the caller's errors
};

// file name -> its box.
std::map<std::string, BoxRow> read_boxes_csv(const std::filesystem::path& path);

}  // namespace lepard::data
