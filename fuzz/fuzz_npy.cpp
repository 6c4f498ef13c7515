// .npy reader (io/npy.h).
#include <lepard/io/npy.h>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = lepard::fuzz::scratch("input.npy");
  lepard::fuzz::write(path, data, size);
  lepard::fuzz::expect_value_or_error([&] { lepard::io::read_npy(path); });
  return 0;
}
