#pragma once
// What every dataset reader does the same way (readers.cpp, pascal_part.cpp): how a bad
// input is handled (ReaderOptions::skip_bad), which ids a split keeps, how an image file's
// error becomes a DataError. Private to lepard_data.
#include <lepard/data/sample.h>
#include <lepard/io/image_io.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace lepard::data::detail {

// Runs `load` for one input; on an error either rethrows it as a DataError or, with
// skip_bad, warns once and records the skip.
template <typename Load>
void guarded(const ReaderOptions& options, ReadResult& result, Load&& load) {
  try {
    load();
  } catch (const std::exception& e) {
    if (!options.skip_bad) throw DataError(e.what());
    spdlog::warn("skipping: {}", e.what());
    result.skipped.emplace_back(e.what());
  }
}

// Whether the sample `id` belongs to the requested split (data/sample.h in_test_split).
inline bool wanted(const std::string& id, const ReaderOptions& options) {
  if (options.split == Split::All) return true;
  return in_test_split(id, options.test_fraction) == (options.split == Split::Test);
}

// An image file as (H, W, 3) bytes; a file that cannot be read is a DataError naming it.
inline at::Tensor load_image(const std::filesystem::path& path) {
  try {
    return io::read_image(path);
  } catch (const std::runtime_error& e) {
    throw DataError(e.what());
  }
}

}  // namespace lepard::data::detail
