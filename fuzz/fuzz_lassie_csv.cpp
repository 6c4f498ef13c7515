// The LASSIE annotation CSV with its Label-Studio keypoint JSON (data/readers.h): the input
// is annotations/horse.csv of a dataset whose images/horse/input_<id>.png exist for ids 0-2.
#include <lepard/data/readers.h>
#include <lepard/io/image_io.h>

#include "fuzz_common.h"

#include <ATen/ops/zeros.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto root = [] {
    const auto r = lepard::fuzz::scratch("lassie");
    for (int i = 0; i < 3; ++i)
      lepard::io::write_png(r / "images" / "horse" / ("input_" + std::to_string(i) + ".png"),
                            at::zeros({24, 32, 3}, at::kByte));
    return r;
  }();
  lepard::fuzz::write(root / "annotations" / "horse.csv", data, size);
  lepard::data::ReaderOptions o;
  o.crop_size = 16;
  o.skip_bad = true;  // every row is parsed, bad ones reported
  lepard::fuzz::expect_value_or_error([&] { lepard::data::read_lassie_web_images(root, "horse", o); });
  o.skip_bad = false;
  lepard::fuzz::expect_value_or_error([&] { lepard::data::read_lassie_web_images(root, "horse", o); });
  return 0;
}
