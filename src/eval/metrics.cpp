#include <lepard/eval/metrics.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace lepard::eval {

double silhouette_iou(const at::Tensor& pred, const at::Tensor& ref) {
  if (pred.sizes() != ref.sizes() || pred.dim() != 3)
    throw std::invalid_argument("silhouette_iou: expected two (N, H, W) maps of the same size");
  const auto p = pred.ne(0).flatten(1), r = ref.ne(0).flatten(1);
  const auto inter = (p & r).sum(1).to(at::kDouble), uni = (p | r).sum(1).to(at::kDouble);
  const auto iou = at::where(uni > 0, inter / uni.clamp_min(1), at::ones_like(uni));
  return iou.mean().item<double>();
}

PartIou part_iou(const at::Tensor& pred, const at::Tensor& ref, int64_t parts, int64_t labels) {
  if (pred.sizes() != ref.sizes()) throw std::invalid_argument("part_iou: prediction and reference differ in size");
  const auto p = pred.flatten().to(at::kLong).cpu(), r = ref.flatten().to(at::kLong).cpu();
  // Confusion over (part + 1) x label: row 0 is background.
  const auto joint = ((p + 1).clamp(0, parts) * (labels + 1) + r.clamp(0, labels));
  const auto counts = at::bincount(joint, {}, (parts + 1) * (labels + 1)).view({parts + 1, labels + 1});
  const auto c = counts.accessor<int64_t, 2>();
  PartIou out;
  out.assignment.assign(parts, -1);
  for (int64_t k = 0; k < parts; ++k) {
    int64_t best = 0;
    for (int64_t g = 1; g <= labels; ++g)
      if (c[k + 1][g] > best) {
        best = c[k + 1][g];
        out.assignment[k] = g;
      }
  }
  out.overlap.assign(parts, std::vector<int64_t>(labels + 1, 0));
  for (int64_t k = 0; k < parts; ++k)
    for (int64_t g = 0; g <= labels; ++g) out.overlap[k][g] = c[k + 1][g];
  out.per_label.assign(labels, std::numeric_limits<double>::quiet_NaN());
  double sum = 0;
  int64_t present = 0;
  for (int64_t g = 1; g <= labels; ++g) {
    int64_t ref_g = 0, pred_g = 0, inter = 0;
    for (int64_t k = 0; k <= parts; ++k) ref_g += c[k][g];
    if (ref_g == 0) continue;
    for (int64_t k = 0; k < parts; ++k) {
      if (out.assignment[k] != g) continue;
      for (int64_t h = 0; h <= labels; ++h) pred_g += c[k + 1][h];
      inter += c[k + 1][g];
    }
    const double iou = static_cast<double>(inter) / static_cast<double>(ref_g + pred_g - inter);
    out.per_label[g - 1] = iou;
    sum += iou;
    ++present;
  }
  out.mean = present ? sum / static_cast<double>(present) : 0.0;
  return out;
}

}  // namespace lepard::eval
