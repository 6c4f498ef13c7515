#include <lepard/data/sample.h>

#include <lepard/core/hash.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace lepard::data {

CropBox square_crop_box(double left, double top, double width, double height, double scale) {
  // Python's int() truncates toward zero; so does the cast.
  const auto size = static_cast<int64_t>(std::max(width, height) * scale);
  const double cx = (left + left + width) / 2, cy = (top + top + height) / 2;
  return {static_cast<int64_t>(cx - size / 2.0), static_cast<int64_t>(cy - size / 2.0), size};
}

at::Tensor crop_image(const at::Tensor& image, const CropBox& box, int64_t out_size, Interpolation interpolation) {
  TORCH_CHECK(image.scalar_type() == at::kByte && (image.dim() == 2 || image.dim() == 3),
              "crop_image: expected a uint8 (H, W) or (H, W, C) image, got ", image.sizes());
  TORCH_CHECK(box.size > 0 && out_size > 0, "crop_image: empty crop box or output size");
  const auto src = image.contiguous();
  const int channels = image.dim() == 2 ? 1 : static_cast<int>(image.size(2));
  TORCH_CHECK(channels <= 4, "crop_image: at most 4 channels");
  cv::Mat in(static_cast<int>(src.size(0)), static_cast<int>(src.size(1)), CV_8UC(channels),
             const_cast<uint8_t*>(src.data_ptr<uint8_t>()));
  // Destination pixel centres map to source pixel centres: x_src + 0.5 = left + (x_dst + 0.5) size / out.
  const double s = static_cast<double>(out_size) / static_cast<double>(box.size);
  const cv::Matx23d m(s, 0, 0.5 * s - 0.5 - box.left * s, 0, s, 0.5 * s - 0.5 - box.top * s);
  auto out = image.dim() == 2 ? at::empty({out_size, out_size}, at::kByte)
                              : at::empty({out_size, out_size, image.size(2)}, at::kByte);
  cv::Mat dst(static_cast<int>(out_size), static_cast<int>(out_size), CV_8UC(channels), out.data_ptr<uint8_t>());
  cv::warpAffine(in, dst, m, dst.size(), interpolation == Interpolation::Nearest ? cv::INTER_NEAREST : cv::INTER_LINEAR,
                 cv::BORDER_CONSTANT, cv::Scalar::all(0));
  return out;
}

at::Tensor crop_keypoints(const at::Tensor& keypoints, const CropBox& box, int64_t out_size) {
  TORCH_CHECK(keypoints.dim() == 2 && keypoints.size(1) == 3, "crop_keypoints: expected (N, 3)");
  auto out = keypoints.to(at::kFloat).contiguous().clone();
  auto a = out.accessor<float, 2>();
  const double s = static_cast<double>(out_size) / static_cast<double>(box.size);
  for (int64_t i = 0; i < out.size(0); ++i) {
    const float v = a[i][2] > 0 ? 1.0f : 0.0f;
    a[i][0] = static_cast<float>((a[i][0] - box.left) * s) * v;
    a[i][1] = static_cast<float>((a[i][1] - box.top) * s) * v;
    a[i][2] = v;
  }
  return out;
}

bool in_test_split(const std::string& id, double test_fraction) {
  // FNV-1a barely mixes the last bytes into the high bits ("horse/1", "horse/2", ... would
  // all fall on one side): finish with MurmurHash3's fmix64.
  const uint64_t h = core::fmix64(core::fnv1a(id));
  return static_cast<double>(h >> 11) / static_cast<double>(1ull << 53) < test_fraction;
}

}  // namespace lepard::data
