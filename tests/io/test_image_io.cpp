// PNG writing and image reading (OpenCV codecs).
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>

#include "test_support.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <cstdlib>
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

// The image kinds a folder of downloads holds, written by PIL (python3-pil): each reads as
// RGB with the pixel values PIL reports, or (too large from its header) fails fast naming it.
TEST(ImageIo, OddFormatsReadAsRgbOrFailNamingTheFile) {
  const auto dir = testing::temp_dir("oddimg");
  const std::string script =
      "import sys, struct, zlib, numpy as np\n"
      "from PIL import Image\n"
      "d = sys.argv[1]\n"
      "g = (np.arange(12 * 10).reshape(10, 12) * 2).astype(np.uint8)\n"
      "Image.fromarray(g, 'L').save(d + '/grey.png')\n"
      "Image.fromarray((g.astype(np.uint16) * 257), 'I;16').save(d + '/grey16.png')\n"
      "rgba = np.dstack([g, 255 - g, np.full_like(g, 7), np.full_like(g, 128)])\n"
      "Image.fromarray(rgba, 'RGBA').save(d + '/rgba.png')\n"
      "Image.fromarray(rgba[..., :3], 'RGB').convert('P', palette=Image.ADAPTIVE, colors=16).save(d + '/palette.png')\n"
      "Image.fromarray(np.full((1, 1, 3), 200, np.uint8), 'RGB').save(d + '/one.png')\n"
      "Image.fromarray(np.full((8, 8, 3), (200, 40, 90), np.uint8), 'RGB').convert('CMYK').save(d + '/cmyk.jpg', "
      "quality=100)\n"
      "def chunk(t, b): return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b))\n"
      "ihdr = struct.pack('>IIBBBBB', 30000, 30000, 8, 2, 0, 0, 0)\n"
      "open(d + '/huge.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', ihdr) + chunk(b'IEND', b''))\n";
  write_file_atomic(dir / "make.py", script);
  ASSERT_EQ(std::system((std::string(LEPARD_PYTHON) + " " + (dir / "make.py").string() + " " + dir.string()).c_str()),
            0);
  const auto grey = read_image(dir / "grey.png");
  ASSERT_EQ(grey.sizes(), (at::IntArrayRef{10, 12, 3}));
  EXPECT_EQ(grey[3][5][0].item<int64_t>(), (3 * 12 + 5) * 2);
  EXPECT_TRUE(grey.select(2, 0).equal(grey.select(2, 2)));
  const auto grey16 = read_image(dir / "grey16.png");
  EXPECT_TRUE(grey16.equal(grey)) << "16-bit grey scaled to 8 bits";
  const auto rgba = read_image(dir / "rgba.png");
  EXPECT_EQ(rgba[3][5][0].item<int64_t>(), (3 * 12 + 5) * 2);
  EXPECT_EQ(rgba[3][5][1].item<int64_t>(), 255 - (3 * 12 + 5) * 2);
  EXPECT_EQ(rgba[3][5][2].item<int64_t>(), 7);
  EXPECT_EQ(read_image(dir / "palette.png").sizes(), (at::IntArrayRef{10, 12, 3}));
  const auto one = read_image(dir / "one.png");
  EXPECT_EQ(one.sizes(), (at::IntArrayRef{1, 1, 3}));
  EXPECT_EQ(one[0][0][1].item<int64_t>(), 200);
  const auto cmyk = read_image(dir / "cmyk.jpg");
  ASSERT_EQ(cmyk.sizes(), (at::IntArrayRef{8, 8, 3}));
  EXPECT_NEAR(cmyk[4][4][0].item<double>(), 200, 12);
  EXPECT_NEAR(cmyk[4][4][1].item<double>(), 40, 12);
  EXPECT_NEAR(cmyk[4][4][2].item<double>(), 90, 12);
  try {
    read_image(dir / "huge.png");
    FAIL() << "a 30000 x 30000 PNG was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("huge.png is 30000 x 30000 pixels, over the limit"), std::string::npos)
        << e.what();
  }
  try {
    read_image(dir);
    FAIL() << "a folder was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is a folder"), std::string::npos) << e.what();
  }
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
  // The error names the file and says what is wrong, and libpng prints nothing of its own
  // (it used to put a raw "libpng error: Read Error" line on stderr).
  ::testing::internal::CaptureStderr();
  const auto cut = message([&] { read_image(dir / "cut.png"); });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_NE(cut.find("cut.png: truncated"), std::string::npos) << cut;
  // One flipped byte in the image data: a CRC error naming the chunk.
  std::string flipped = bytes;
  const auto idat = flipped.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  flipped[idat + 6] = static_cast<char>(flipped[idat + 6] ^ 0x5a);
  write_file_atomic(dir / "flipped.png", flipped);
  ::testing::internal::CaptureStderr();
  const auto bad_crc = message([&] { read_image(dir / "flipped.png"); });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_NE(bad_crc.find("flipped.png: bad CRC in chunk IDAT"), std::string::npos) << bad_crc;
  write_file_atomic(dir / "empty.png", "");
  EXPECT_NE(message([&] { read_image(dir / "empty.png"); }).find("empty.png is empty"), std::string::npos);
  EXPECT_NE(message([&] {
              write_png(dir / "f.png", at::zeros({4, 4, 3}, at::kFloat));
            }).find("f.png"),
            std::string::npos);
}

}  // namespace
}  // namespace lepard::io
