#include <lepard/eval/metrics.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace lepard::eval {

namespace {

// IoU of each label 1..L (NaN where the reference has none) from the confusion counts
// c[k + 1][g] of part k (row 0: background) on label g, with parts assigned to labels.
template <typename Counts>
std::vector<double> label_ious(const Counts& c, int64_t parts, int64_t labels, const std::vector<int64_t>& assignment) {
  std::vector<double> iou(static_cast<size_t>(labels), std::numeric_limits<double>::quiet_NaN());
  for (int64_t g = 1; g <= labels; ++g) {
    int64_t ref_g = 0, pred_g = 0, inter = 0;
    for (int64_t k = 0; k <= parts; ++k) ref_g += c[k][g];
    if (ref_g == 0) continue;
    for (int64_t k = 0; k < parts; ++k) {
      if (assignment[static_cast<size_t>(k)] != g) continue;
      for (int64_t h = 0; h <= labels; ++h) pred_g += c[k + 1][h];
      inter += c[k + 1][g];
    }
    iou[static_cast<size_t>(g - 1)] = static_cast<double>(inter) / static_cast<double>(ref_g + pred_g - inter);
  }
  return iou;
}

// Mean over the labels present (not NaN); NaN when none is.
double present_mean(const std::vector<double>& per_label) {
  double sum = 0;
  int64_t present = 0;
  for (const double v : per_label)
    if (!std::isnan(v)) {
      sum += v;
      ++present;
    }
  return present ? sum / static_cast<double>(present) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

SilhouetteScores silhouette_scores(const at::Tensor& pred, const at::Tensor& ref) {
  if (pred.sizes() != ref.sizes() || pred.dim() != 3)
    throw std::invalid_argument("silhouette_scores: expected two (N, H, W) maps of the same size");
  const auto p = pred.ne(0).flatten(1), r = ref.ne(0).flatten(1);
  const auto inter = (p & r).sum(1).to(at::kDouble), uni = (p | r).sum(1).to(at::kDouble);
  const auto np = p.sum(1).to(at::kDouble), nr = r.sum(1).to(at::kDouble);
  SilhouetteScores s;
  s.iou = at::where(uni > 0, inter / uni.clamp_min(1), at::ones_like(uni));
  s.precision = at::where(np > 0, inter / np.clamp_min(1), at::ones_like(np));
  s.recall = at::where(nr > 0, inter / nr.clamp_min(1), at::ones_like(nr));
  return s;
}

double silhouette_iou(const at::Tensor& pred, const at::Tensor& ref) {
  return silhouette_scores(pred, ref).iou.mean().item<double>();
}

PartIou part_iou(const at::Tensor& pred, const at::Tensor& ref, int64_t parts, int64_t labels) {
  if (pred.sizes() != ref.sizes() || pred.dim() != 3)
    throw std::invalid_argument("part_iou: prediction and reference must both be (N, H, W) of the same size");
  const int64_t n = pred.size(0), cells = (parts + 1) * (labels + 1);
  const auto p = pred.flatten(1).to(at::kLong).cpu(), r = ref.flatten(1).to(at::kLong).cpu();
  // Confusion over (part + 1) x label per image: row 0 is background.
  const auto joint =
      (p + 1).clamp(0, parts) * (labels + 1) + r.clamp(0, labels) + at::arange(n, p.options()).unsqueeze(1) * cells;
  const auto per_image = at::bincount(joint.flatten(), {}, n * cells).view({n, parts + 1, labels + 1});
  const auto counts = per_image.sum(0);
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
  out.per_label = label_ious(c, parts, labels, out.assignment);
  out.missed.assign(static_cast<size_t>(labels), std::numeric_limits<double>::quiet_NaN());
  for (int64_t g = 1; g <= labels; ++g) {
    int64_t ref_g = 0;
    for (int64_t k = 0; k <= parts; ++k) ref_g += c[k][g];
    if (ref_g > 0) out.missed[static_cast<size_t>(g - 1)] = static_cast<double>(c[0][g]) / static_cast<double>(ref_g);
  }
  out.mean = present_mean(out.per_label);
  if (std::isnan(out.mean)) out.mean = 0.0;
  const auto a = per_image.accessor<int64_t, 3>();
  for (int64_t i = 0; i < n; ++i)
    out.per_image.push_back(present_mean(label_ious(a[i], parts, labels, out.assignment)));
  return out;
}

}  // namespace lepard::eval
