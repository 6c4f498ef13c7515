#pragma once
// Writing files so that a crash never leaves a half-written one: the content goes to a
// temporary file beside the target, which is then renamed over it.

#include <filesystem>
#include <string_view>

namespace lepard::io {

// Writes `contents` to `path` atomically, creating missing parent folders.
// Throws std::runtime_error naming the path and the system error on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace lepard::io
