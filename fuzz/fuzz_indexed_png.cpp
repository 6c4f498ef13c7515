// Indexed (palette) PNG reader of the pseudo-labels and part maps (io/indexed_png.h).
#include <lepard/io/indexed_png.h>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = lepard::fuzz::scratch("input.png");
  lepard::fuzz::write(path, data, size);
  lepard::fuzz::expect_value_or_error([&] {
    lepard::io::Palette palette;
    lepard::io::read_indexed_png(path, &palette);
  });
  return 0;
}
