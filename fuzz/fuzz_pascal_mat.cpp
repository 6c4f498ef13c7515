// The Pascal-Part .mat path (data/readers.h, libmatio): the input is
// Annotations_Part/2008_000001.mat of a dataset with that image listed for horse.
#include <lepard/data/readers.h>
#include <lepard/io/atomic_file.h>

#include "fuzz_common.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto root = [] {
    const auto r = lepard::fuzz::scratch("pascal");
    std::filesystem::create_directories(r / "JPEGImages");
    cv::imwrite((r / "JPEGImages" / "2008_000001.jpg").string(), cv::Mat(24, 32, CV_8UC3, cv::Scalar(90, 90, 90)));
    lepard::io::write_file_atomic(r / "image_sets" / "horse.txt", "2008_000001\n");
    return r;
  }();
  lepard::fuzz::write(root / "Annotations_Part" / "2008_000001.mat", data, size);
  lepard::data::ReaderOptions o;
  o.crop_size = 16;
  o.skip_bad = true;
  lepard::fuzz::expect_value_or_error([&] { lepard::data::read_pascal_part(root, "horse", o); });
  return 0;
}
