#include <lepard/eval/evaluate.h>

#include <lepard/render/hard_rasterize.h>
#include <lepard/train/metrics.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace lepard::eval {

EvalResult evaluate(const at::Tensor& verts_in, const at::Tensor& faces_in, const at::Tensor& masks,
                    const at::Tensor& part_labels, const at::Tensor& keypoints, const EvalOptions& o) {
  if (verts_in.dim() != 4 || verts_in.size(3) != 3) throw std::invalid_argument("evaluate: verts must be (N, K, V, 3)");
  if (masks.dim() != 3 || masks.size(0) != verts_in.size(0) || masks.size(1) != masks.size(2))
    throw std::invalid_argument("evaluate: masks must be (N, S, S) with one per reconstruction");
  const int64_t n = verts_in.size(0), k = verts_in.size(1), v = verts_in.size(2), s = masks.size(1);
  const auto verts = verts_in.detach().cpu().to(at::kFloat).contiguous();
  const auto faces = faces_in.cpu().to(at::kLong).contiguous();
  const auto frags = render::rasterize_hard(verts, faces, s, s);

  EvalResult r;
  r.images = n;
  r.iou = train::silhouette_iou(frags.part_id >= 0, masks.cpu());
  if (part_labels.defined()) r.part_iou = train::part_iou(frags.part_id, part_labels.cpu(), k, o.labels).mean;

  // Pixel coordinates (continuous, pixel j spans [j, j + 1)) of every vertex: (N, K V, 2).
  const auto pix = ((verts.narrow(3, 0, 2) + 1.0) * (static_cast<double>(s) / 2.0)).reshape({n, k * v, 2}).contiguous();
  const auto pa = pix.accessor<float, 3>();

  if (keypoints.defined() && n > 1) {
    const auto kp = keypoints.cpu().to(at::kFloat).contiguous();
    const int64_t p = kp.size(1);
    const auto visible = render::visible_vertices(frags, verts).reshape({n, k * v});
    // The nearest visible vertex to each visible keypoint of each image (-1: none).
    std::vector<int64_t> nearest(static_cast<size_t>(n * p), -1);
    for (int64_t i = 0; i < n; ++i) {
      const auto d2 = (pix[i].unsqueeze(0) - kp[i].narrow(1, 0, 2).unsqueeze(1)).pow(2).sum(2);  // (P, K V)
      const auto masked = at::where(visible[i].unsqueeze(0), d2, at::full({}, std::numeric_limits<float>::infinity()));
      const auto best = std::get<1>(masked.min(1));
      const bool any = visible[i].any().item<bool>();
      for (int64_t q = 0; q < p; ++q)
        if (any && kp[i][q][2].item<float>() > 0) nearest[static_cast<size_t>(i * p + q)] = best[q].item<int64_t>();
    }
    const auto ka = kp.accessor<float, 3>();
    const double t_paper = o.pck_paper * static_cast<double>(s), t_lassie = o.pck_lassie * static_cast<double>(s);
    int64_t ok_paper = 0, ok_lassie = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        if (i == j) continue;
        for (int64_t q = 0; q < p; ++q) {
          if (ka[i][q][2] <= 0 || ka[j][q][2] <= 0) continue;
          ++r.keypoint_pairs;
          const int64_t src = nearest[static_cast<size_t>(i * p + q)];
          if (src < 0) continue;
          const double dx = pa[j][src][0] - ka[j][q][0], dy = pa[j][src][1] - ka[j][q][1];
          const double d = std::sqrt(dx * dx + dy * dy);
          ok_paper += d <= t_paper;
          ok_lassie += d <= t_lassie;
        }
      }
    if (r.keypoint_pairs > 0) {
      r.pck_paper = static_cast<double>(ok_paper) / static_cast<double>(r.keypoint_pairs);
      r.pck_lassie = static_cast<double>(ok_lassie) / static_cast<double>(r.keypoint_pairs);
    }
  }

  if (part_labels.defined() && n > 1) {
    const auto labels = part_labels.cpu().to(at::kLong).contiguous();
    const auto la = labels.accessor<int64_t, 3>();
    const auto ids = frags.part_id.accessor<int64_t, 3>(), fids = frags.face_id.accessor<int64_t, 3>();
    const auto bary = frags.barycentric.contiguous();
    const auto ba = bary.accessor<float, 4>();
    const auto fa = faces.accessor<int64_t, 2>();
    int64_t ok = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto labelled = labels[i].reshape({-1}).gt(0).nonzero().squeeze(1);
      const int64_t count = labelled.numel();
      if (count == 0) continue;
      const int64_t take = std::min(count, o.pcp_pixels);
      for (int64_t t = 0; t < take; ++t) {
        const int64_t flat = labelled[take == count ? t : (t * (count - 1)) / std::max<int64_t>(take - 1, 1)].item<int64_t>();
        const int64_t row = flat / s, col = flat % s;
        const int64_t src_label = la[i][row][col];
        r.pcp_trials += n - 1;
        const int64_t part = ids[i][row][col];
        if (part < 0) continue;  // not covered: wrong for every target
        const int64_t face = fids[i][row][col];
        for (int64_t j = 0; j < n; ++j) {
          if (j == i) continue;
          double x = 0, y = 0;
          for (int64_t b = 0; b < 3; ++b) {
            const int64_t vert = part * v + fa[face][b];
            x += ba[i][row][col][b] * pa[j][vert][0];
            y += ba[i][row][col][b] * pa[j][vert][1];
          }
          const auto cx = static_cast<int64_t>(std::floor(x)), cy = static_cast<int64_t>(std::floor(y));
          const int64_t target = (cx >= 0 && cy >= 0 && cx < s && cy < s) ? la[j][cy][cx] : 0;
          ok += target == src_label;
        }
      }
    }
    if (r.pcp_trials > 0) r.pcp = static_cast<double>(ok) / static_cast<double>(r.pcp_trials);
  }
  return r;
}

}  // namespace lepard::eval
