#include <lepard/train/viewpoint.h>

#include <lepard/core/rotation.h>
#include <lepard/render/soft_rasterize.h>
#include <lepard/train/losses.h>

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>

namespace lepard::train {

YawSearch search_yaw(const core::Camera& camera, const at::Tensor& layout, const at::Tensor& anchor,
                     const at::Tensor& ownership, const at::Tensor& labels, int64_t hypotheses, int64_t pixels) {
  if (hypotheses < 1) throw std::invalid_argument("search_yaw: hypotheses must be at least 1");
  if (layout.dim() != 2 || layout.size(1) != 3) throw std::invalid_argument("search_yaw: layout must be (K, 3)");
  const int64_t b = labels.size(0), k = layout.size(0), c = ownership.size(1);
  if (ownership.dim() != 2 || ownership.size(0) != k)
    throw std::invalid_argument("search_yaw: ownership must be (K, C) for the layout's K parts");
  if (anchor.dim() != 2 || anchor.size(0) != b || anchor.size(1) != 2)
    throw std::invalid_argument("search_yaw: anchor must be (B, 2) for the labels' B images");
  at::NoGradGuard no_grad;
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto theta = at::arange(hypotheses, opts) * (2.0 * M_PI / static_cast<double>(hypotheses));  // (J)
  // The layout flat (depth 0): the network places parts in depth freely, and a mirror image
  // of its parts (the same animal facing the other way) keeps their depths.
  auto flat = layout.detach().cpu().to(at::kDouble).clone();
  flat.select(1, 2).zero_();
  const auto turned =
      core::rotate_points(core::yaw_quaternion(theta).view({hypotheses, 1, 4}), flat.unsqueeze(0));  // (J, K, 3)
  const auto q = camera.rotation.detach().cpu().to(at::kDouble).view({b, 1, 1, 4});
  const auto t = camera.translation.detach().cpu().to(at::kDouble).view({b, 1, 1, 3});
  auto xy = core::perspective_project(core::rotate_points(q, turned.unsqueeze(0)) + t, camera.focal);  // (B, J, K, 2)
  // Where the animal is in the picture is the prediction's business: the layout's projected
  // centres are moved to the mean of the image's own projected centres.
  xy = xy - xy.mean(2, true) + anchor.detach().cpu().to(at::kDouble).view({b, 1, 1, 2});
  // Each part's centre against the nearest pixel of its owned clusters present in the image.
  const auto [pix, present] = cluster_pixels(labels.cpu(), c, pixels, xy);  // (B, C, n, 2), (B, C)
  const int64_t n = pix.size(2);
  const auto d2 = (xy.view({b, hypotheses, k, 1, 1, 2}) - pix.view({b, 1, 1, c, n, 2})).pow(2).sum(5);
  const auto to_cluster = std::get<0>(d2.min(4));  // (B, J, K, C)
  const auto allowed =
      (ownership.detach().cpu().to(at::kDouble).view({1, 1, k, c}) * present.view({b, 1, 1, c})) > 0.5;  // (B, 1, K, C)
  const auto per_part = std::get<0>(at::where(allowed, to_cluster, at::full({}, 1e6, opts)).min(3));     // (B, J, K)
  const auto has = allowed.any(3).to(at::kDouble);                                                       // (B, 1, K)
  const auto cost = (per_part * has).sum(2) / has.sum(2).clamp_min(1.0);                                 // (B, J)
  YawSearch out;
  out.cost = cost;
  out.best = cost.argmin(1);
  return out;
}

at::Tensor choose_view(const YawSearch& search, const at::Tensor& own, double keep) {
  const auto mine = own.to(search.best.device()).to(at::kLong);
  const auto own_cost = search.cost.gather(1, mine.unsqueeze(1)).squeeze(1);
  const auto best_cost = search.cost.gather(1, search.best.unsqueeze(1)).squeeze(1);
  return at::where(best_cost < keep * own_cost, search.best, mine);
}

at::Tensor widest_layout(const at::Tensor& centres) {
  if (centres.dim() != 3 || centres.size(2) != 3)
    throw std::invalid_argument("widest_layout: centres must be (B, K, 3)");
  const auto xz = at::stack({centres.select(2, 0), centres.select(2, 2)}, 2);  // (B, K, 2)
  const auto spread = (xz - xz.mean(1, true)).pow(2).sum({1, 2});              // (B)
  return centres[spread.argmax().item<int64_t>()].clone();
}

}  // namespace lepard::train
