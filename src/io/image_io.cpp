#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>

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

at::Tensor read_image(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw std::runtime_error("read_image: " + path.string() + " does not exist");
  const cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
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
