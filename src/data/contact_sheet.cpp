#include <lepard/data/contact_sheet.h>
#include <lepard/render/pictures.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/full.h>
#include <ATen/ops/where.h>
#include <c10/util/Exception.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>

namespace lepard::data {

at::Tensor contact_sheet(const std::vector<Sample>& samples, int64_t columns) {
  TORCH_CHECK(!samples.empty(), "contact_sheet: no samples");
  TORCH_CHECK(columns > 0, "contact_sheet: columns must be positive");
  const int64_t S = samples[0].image.size(0), gap = 4;
  const int64_t n = static_cast<int64_t>(samples.size()), cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  auto sheet = at::full({rows * (S + gap) - gap, cols * (S + gap) - gap, 3}, 255, at::kByte);
  int64_t colours = 17;  // the 16 part labels; pseudo-label sheets may have more clusters
  for (const auto& s : samples)
    if (s.part_labels.defined()) colours = std::max<int64_t>(colours, s.part_labels.max().item<int64_t>() + 1);
  const auto palette = render::part_palette(colours).contiguous();
  const auto kp_colours = render::part_palette(14).contiguous();
  for (int64_t i = 0; i < n; ++i) {
    const auto& s = samples[i];
    TORCH_CHECK(s.image.size(0) == S && s.image.size(1) == S, "contact_sheet: samples differ in crop size");
    auto tile = s.image.clone();
    cv::Mat m(static_cast<int>(S), static_cast<int>(S), CV_8UC3, tile.data_ptr<uint8_t>());
    if (s.part_labels.defined() || s.mask.defined()) {
      const auto labels = s.part_labels.defined() ? s.part_labels.to(at::kLong) : s.mask.to(at::kLong) * 16;
      const auto colour = palette.index_select(0, labels.reshape({-1})).view({S, S, 3}).to(at::kFloat);
      const auto fg = (labels > 0).unsqueeze(-1);
      tile = at::where(fg, (tile.to(at::kFloat) * 0.45 + colour * 0.55).round().to(at::kByte), tile).contiguous();
      m = cv::Mat(static_cast<int>(S), static_cast<int>(S), CV_8UC3, tile.data_ptr<uint8_t>());
    }
    if (s.mask.defined()) {
      cv::Mat mask(static_cast<int>(S), static_cast<int>(S), CV_8UC1,
                   const_cast<uint8_t*>(s.mask.contiguous().data_ptr<uint8_t>()));
      std::vector<std::vector<cv::Point>> contours;
      cv::Mat copy = mask.clone();
      cv::findContours(copy, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
      cv::drawContours(m, contours, -1, cv::Scalar(255, 255, 255), 1);
    }
    if (s.keypoints.defined()) {
      const auto k = s.keypoints.contiguous();
      for (int64_t j = 0; j < k.size(0); ++j) {
        const float* p = k.data_ptr<float>() + 3 * j;
        if (p[2] <= 0) continue;
        const uint8_t* c = kp_colours.data_ptr<uint8_t>() + 3 * j;
        const cv::Point at(static_cast<int>(std::lround(p[0])), static_cast<int>(std::lround(p[1])));
        cv::circle(m, at, std::max<int>(2, static_cast<int>(S / 80)), cv::Scalar(c[0], c[1], c[2]), cv::FILLED);
        cv::circle(m, at, std::max<int>(2, static_cast<int>(S / 80)), cv::Scalar(0, 0, 0), 1);
      }
    }
    sheet.narrow(0, (i / cols) * (S + gap), S).narrow(1, (i % cols) * (S + gap), S).copy_(tile);
  }
  return sheet;
}

}  // namespace lepard::data
