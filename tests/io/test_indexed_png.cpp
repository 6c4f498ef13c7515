// Indexed PNG against other tools: PIL reads our files as mode "P" with our indices and
// palette, OpenCV (libpng) decodes them to the palette's colours, and we read PIL's
// palette files and a hand-made file that uses all five row filters.
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>
#include <lepard/io/indexed_png.h>
#include <lepard/io/npy.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

namespace lepard::io {
namespace {

int fixtures(const std::filesystem::path& dir) {
  const std::string cmd = std::string(LEPARD_PYTHON) + " " + LEPARD_IO_FIXTURES + " " + dir.string();
  return std::system(cmd.c_str());
}

const Palette kPalette = {{0, 0, 0}, {230, 25, 75}, {60, 180, 75}, {255, 225, 25}, {0, 130, 200}};

TEST(IndexedPng, OthersReadWhatWeWrite) {
  const auto dir = testing::temp_dir("png_ours");
  const auto labels = at::randint(0, 5, {21, 34}, at::kByte);
  write_indexed_png(dir / "ours.png", labels, kPalette);
  write_npy(dir / "ours.npy", labels);
  EXPECT_EQ(fixtures(dir), 0);                    // PIL: mode P, same indices, same palette
  const auto rgb = read_image(dir / "ours.png");  // OpenCV expands the palette
  const auto l = labels.accessor<uint8_t, 2>();
  const auto c = rgb.accessor<uint8_t, 3>();
  for (int64_t y = 0; y < 21; ++y)
    for (int64_t x = 0; x < 34; ++x)
      for (int k = 0; k < 3; ++k) ASSERT_EQ(c[y][x][k], kPalette[l[y][x]][static_cast<size_t>(k)]);
  Palette back;
  EXPECT_TRUE(read_indexed_png(dir / "ours.png", &back).equal(labels));
  EXPECT_EQ(back, kPalette);
}

TEST(IndexedPng, WeReadWhatOthersWrite) {
  const auto dir = testing::temp_dir("png_theirs");
  ASSERT_EQ(fixtures(dir), 0);
  Palette palette;
  EXPECT_TRUE(read_indexed_png(dir / "pil_palette.png", &palette).equal(read_npy(dir / "pil_palette.npy")));
  ASSERT_GE(palette.size(), 5u);
  EXPECT_EQ(palette[4], (std::array<uint8_t, 3>{255, 255, 0}));
  EXPECT_TRUE(read_indexed_png(dir / "filters.png", &palette).equal(read_npy(dir / "filters.npy")));
  EXPECT_TRUE(palette.empty());
}

TEST(IndexedPng, BadFilesAndLabels) {
  const auto dir = testing::temp_dir("png_bad");
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] {
              write_indexed_png(dir / "x.png", at::full({2, 2}, 7, at::kByte), kPalette);
            }).find("label 7 has no palette colour"),
            std::string::npos);
  write_indexed_png(dir / "ok.png", at::zeros({40, 40}, at::kByte), kPalette);
  std::ifstream in(dir / "ok.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file_atomic(dir / "cut.png", bytes.substr(0, bytes.size() - 20));
  EXPECT_NE(message([&] { read_indexed_png(dir / "cut.png"); }).find("cut.png: truncated"), std::string::npos);
  bytes[40] = static_cast<char>(bytes[40] ^ 0x55);
  write_file_atomic(dir / "crc.png", bytes);
  EXPECT_NE(message([&] { read_indexed_png(dir / "crc.png"); }).find("bad CRC"), std::string::npos);
  write_png(dir / "rgb.png", at::zeros({4, 4, 3}, at::kByte));
  EXPECT_NE(message([&] { read_indexed_png(dir / "rgb.png"); }).find("colour type 2"), std::string::npos);
}

}  // namespace
}  // namespace lepard::io
