#pragma once
// Shared by the libFuzzer harnesses (fuzz/README.md): the readers take paths, so each input
// is written to a file of this process under /dev/shm (or TMPDIR) and read back. An error
// the reader throws (std::exception, c10::Error) is the expected answer to bad input; a
// crash, a hang or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace lepard::fuzz {

inline std::filesystem::path scratch(const std::string& name) {
  const char* shm = "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path base = std::filesystem::is_directory(shm) ? shm : (tmp ? tmp : "/tmp");
  const auto dir = base / ("lepard_fuzz_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir / name;
}

inline void write(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// Runs the reader; expected errors are swallowed.
template <class F>
void expect_value_or_error(F&& read) {
  try {
    read();
  } catch (const std::exception&) {
  }
}

}  // namespace lepard::fuzz
