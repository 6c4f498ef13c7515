#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>

#include "png_chunks.h"

#include <fstream>
#include <iterator>
#include <limits>
#include <utility>

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace lepard::io {

void write_png(const std::filesystem::path& path, const at::Tensor& image) {
  if (!(image.scalar_type() == at::kByte && (image.dim() == 2 || (image.dim() == 3 && image.size(2) == 3)))) {
    throw std::runtime_error("write_png(" + path.string() + "): expected a uint8 (H, W, 3) or (H, W) image");
  }
  const auto img = image.cpu().contiguous();
  const int H = static_cast<int>(img.size(0)), W = static_cast<int>(img.size(1));
  cv::Mat mat(H, W, img.dim() == 2 ? CV_8UC1 : CV_8UC3, img.data_ptr<uint8_t>());
  cv::Mat bgr;
  if (img.dim() == 3) {
    cv::cvtColor(mat, bgr, cv::COLOR_RGB2BGR);
  } else {
    bgr = mat;
  }
  std::vector<uchar> buffer;
  if (!cv::imencode(".png", bgr, buffer)) throw std::runtime_error("write_png(" + path.string() + "): encoding failed");
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(buffer.data()), buffer.size()));
}

namespace {

// Width and height from a PNG's IHDR or a JPEG's first SOF marker, without decoding; {0, 0}
// when the header is not one of those (OpenCV then decides).
std::pair<uint64_t, uint64_t> header_size(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(1 << 16, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  auto byte = [&](size_t i) { return static_cast<uint64_t>(static_cast<uint8_t>(head[i])); };
  if (head.size() >= 24 && head.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0 && head.compare(12, 4, "IHDR") == 0)
    return {byte(16) << 24 | byte(17) << 16 | byte(18) << 8 | byte(19),
            byte(20) << 24 | byte(21) << 16 | byte(22) << 8 | byte(23)};
  if (head.size() >= 4 && byte(0) == 0xFF && byte(1) == 0xD8) {
    size_t i = 2;
    while (i + 9 < head.size() && byte(i) == 0xFF) {
      const uint64_t marker = byte(i + 1), length = byte(i + 2) << 8 | byte(i + 3);
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC)
        return {byte(i + 7) << 8 | byte(i + 8), byte(i + 5) << 8 | byte(i + 6)};
      i += 2 + length;
    }
  }
  return {0, 0};
}

}  // namespace

at::Tensor read_image(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw std::runtime_error("read_image: " + path.string() + " does not exist");
  if (std::filesystem::is_directory(path)) throw std::runtime_error("read_image: " + path.string() + " is a folder");
  // Refuse absurd sizes from the header, before the decoder allocates them (a 30000 x 30000
  // PNG took 2.8 GB before failing).
  const auto [w, h] = header_size(path);
  if (w * h > kMaxImagePixels)
    throw std::runtime_error("read_image: " + path.string() + " is " + std::to_string(w) + " x " + std::to_string(h) +
                             " pixels, over the limit of " + std::to_string(kMaxImagePixels / 1000000) +
                             " megapixels; downscale it first");
  if (w > 0 && h == 0) throw std::runtime_error("read_image: " + path.string() + " has zero height");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("read_image: " + path.string() + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw std::runtime_error("read_image: " + path.string() + " is empty");
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw std::runtime_error("read_image: " + path.string() + " is over 2 GB");
  // A PNG's chunks are checked here, so that a truncated or corrupted file is an error naming
  // it rather than a raw "libpng error" line on stderr and an empty image.
  if (detail::is_png(bytes)) detail::for_each_png_chunk(bytes, "read_image: " + path.string() + ": ", [](auto&&...) {});
  const cv::Mat bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
                                   cv::IMREAD_COLOR);
  if (bgr.empty()) throw std::runtime_error("read_image: " + path.string() + " is not a readable image");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  auto out = at::empty({rgb.rows, rgb.cols, 3}, at::kByte);
  for (int r = 0; r < rgb.rows; ++r) {
    std::memcpy(out.data_ptr<uint8_t>() + int64_t(r) * rgb.cols * 3, rgb.ptr<uint8_t>(r), size_t(rgb.cols) * 3);
  }
  return out;
}

}  // namespace lepard::io
