// lepard-infer's --boxes CSV (data/boxes.h).
#include <lepard/data/boxes.h>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = lepard::fuzz::scratch("boxes.csv");
  lepard::fuzz::write(path, data, size);
  lepard::fuzz::expect_value_or_error([&] { lepard::data::read_boxes_csv(path); });
  return 0;
}
