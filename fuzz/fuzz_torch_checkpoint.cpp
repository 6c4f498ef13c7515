// torch.save zip + pickle reader (features/checkpoint.h), and the zip CRC check.
#include <lepard/io/checkpoint.h>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = lepard::fuzz::scratch("input.pth");
  lepard::fuzz::write(path, data, size);
  lepard::fuzz::expect_value_or_error([&] { lepard::io::load_torch_checkpoint(path); });
  lepard::fuzz::expect_value_or_error([&] { lepard::io::verify_zip(path); });
  return 0;
}
