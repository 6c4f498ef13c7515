// The YAML training configuration (train/config.h): the file, then its validation.
#include <lepard/train/config.h>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = lepard::fuzz::scratch("config.yaml");
  lepard::fuzz::write(path, data, size);
  lepard::fuzz::expect_value_or_error([&] { lepard::train::load_train_config(path); });
  return 0;
}
