// PNG writing and image reading (OpenCV codecs).
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>

#include "test_support.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace lepard::io {
namespace {

namespace fs = std::filesystem;

TEST(ImageIo, PngRoundTripKeepsRgbOrder) {
  const auto dir = testing::temp_dir("png");
  // A gradient image with distinct channels: R = column, G = row, B = constant.
  auto img = at::zeros({5, 7, 3}, at::kByte);
  img.select(2, 0).copy_(at::arange(7, at::kLong).mul(30).view({1, 7}).expand({5, 7}));
  img.select(2, 1).copy_(at::arange(5, at::kLong).mul(50).view({5, 1}).expand({5, 7}));
  img.select(2, 2).fill_(200);
  write_png(dir / "a.png", img);
  std::ifstream in(dir / "a.png", std::ios::binary);
  char sig[8];
  in.read(sig, 8);
  EXPECT_EQ(std::string(sig + 1, 3), "PNG");
  const auto back = read_image(dir / "a.png");
  EXPECT_TRUE(back.equal(img));
  // Grey images are read back as RGB.
  write_png(dir / "g.png", img.select(2, 0).contiguous());
  const auto grey = read_image(dir / "g.png");
  EXPECT_TRUE(grey.select(2, 1).equal(img.select(2, 0)));
}

TEST(ImageIo, BadInputsNameTheFile) {
  const auto dir = testing::temp_dir("badimg");
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { read_image(dir / "missing.png"); }).find("missing.png does not exist"), std::string::npos);
  write_file_atomic(dir / "text.png", "this is not an image");
  EXPECT_NE(message([&] { read_image(dir / "text.png"); }).find("text.png is not a readable image"), std::string::npos);
  // A truncated PNG.
  write_png(dir / "full.png", at::zeros({16, 16, 3}, at::kByte));
  std::ifstream in(dir / "full.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file_atomic(dir / "cut.png", bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(message([&] { read_image(dir / "cut.png"); }).find("cut.png"), std::string::npos);
  EXPECT_NE(message([&] { write_png(dir / "f.png", at::zeros({4, 4, 3}, at::kFloat)); }).find("f.png"),
            std::string::npos);
}

}  // namespace
}  // namespace lepard::io
