// safetensors reader (features/checkpoint.h).
#include <lepard/io/checkpoint.h>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = lepard::fuzz::scratch("input.safetensors");
  lepard::fuzz::write(path, data, size);
  lepard::fuzz::expect_value_or_error([&] { lepard::io::load_safetensors(path); });
  return 0;
}
