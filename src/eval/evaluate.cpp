#include <lepard/eval/evaluate.h>

#include <lepard/render/hard_rasterize.h>
#include <lepard/eval/metrics.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace lepard::eval {
namespace {

// A point on a part's surface: part, face, and barycentric weights of the face's vertices.
struct SurfacePoint {
  int64_t part = -1, face = -1;
  double w[3] = {0, 0, 0};
};

// Pixel coordinates (pixel j spans [j, j + 1)) of every vertex: (N, K V, 2).
at::Tensor pixel_coordinates(const at::Tensor& verts, int64_t size) {
  const int64_t n = verts.size(0), kv = verts.size(1) * verts.size(2);
  return ((verts.narrow(3, 0, 2) + 1.0) * (static_cast<double>(size) / 2.0)).reshape({n, kv, 2}).contiguous();
}

// The front surface point under (x, y) (crop pixels) of image i: the fragment at that pixel,
// with the keypoint's own barycentric coordinates in the face's projection (clamped into
// the face); where the pixel is not covered, the fragment of the nearest covered pixel.
SurfacePoint surface_point_under(double x, double y, int64_t i, int64_t s, const render::Fragments& frags,
                                 const std::vector<std::vector<int64_t>>& covered, const float* pix, int64_t v,
                                 const int64_t* faces) {
  SurfacePoint p;
  const auto ids = frags.part_id.accessor<int64_t, 3>(), fids = frags.face_id.accessor<int64_t, 3>();
  int64_t row = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y)), 0, s - 1);
  int64_t col = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x)), 0, s - 1);
  if (ids[i][row][col] < 0) {
    if (covered[static_cast<size_t>(i)].empty()) return p;
    double best = std::numeric_limits<double>::infinity();
    for (const int64_t flat : covered[static_cast<size_t>(i)]) {
      const double dx = static_cast<double>(flat % s) + 0.5 - x, dy = static_cast<double>(flat / s) + 0.5 - y;
      const double d = dx * dx + dy * dy;
      if (d < best) {
        best = d;
        row = flat / s;
        col = flat % s;
      }
    }
  }
  p.part = ids[i][row][col];
  p.face = fids[i][row][col];
  const auto ba = frags.barycentric.accessor<float, 4>();
  for (int b = 0; b < 3; ++b) p.w[b] = ba[i][row][col][b];
  // The keypoint's own position within the face (screen-space barycentrics), when the face
  // is not degenerate; clamped into the face.
  const float* a = pix + 2 * (p.part * v + faces[3 * p.face]);
  const float* b = pix + 2 * (p.part * v + faces[3 * p.face + 1]);
  const float* c = pix + 2 * (p.part * v + faces[3 * p.face + 2]);
  const double det = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1]);
  if (std::abs(det) > 1e-9) {
    double w0 = ((b[1] - c[1]) * (x - c[0]) + (c[0] - b[0]) * (y - c[1])) / det;
    double w1 = ((c[1] - a[1]) * (x - c[0]) + (a[0] - c[0]) * (y - c[1])) / det;
    double w2 = 1 - w0 - w1;
    w0 = std::max(w0, 0.0);
    w1 = std::max(w1, 0.0);
    w2 = std::max(w2, 0.0);
    const double sum = w0 + w1 + w2;
    p.w[0] = w0 / sum;
    p.w[1] = w1 / sum;
    p.w[2] = w2 / sum;
  }
  return p;
}

void check_inputs(const EvalInputs& in) {
  const auto& verts = in.verts;
  if (verts.dim() != 4 || verts.size(3) != 3) throw std::invalid_argument("evaluate: verts must be (N, K, V, 3)");
  if (in.masks.dim() != 3 || in.masks.size(0) != verts.size(0) || in.masks.size(1) != in.masks.size(2))
    throw std::invalid_argument("evaluate: masks must be (N, S, S) with one per reconstruction");
  if (in.part_labels.defined() && in.part_labels.sizes() != in.masks.sizes())
    throw std::invalid_argument("evaluate: part_labels must be (N, S, S) like the masks");
  if (in.keypoints.defined() && (in.keypoints.dim() != 3 || in.keypoints.size(0) != verts.size(0)))
    throw std::invalid_argument("evaluate: keypoints must be (N, P, 3) with one set per reconstruction");
  if (!in.meshes.empty() && static_cast<int64_t>(in.meshes.size()) != verts.size(0))
    throw std::invalid_argument("evaluate: " + std::to_string(in.meshes.size()) + " ground-truth meshes for " +
                                std::to_string(verts.size(0)) + " reconstructions");
}

}  // namespace

at::Tensor lift_to_camera(const at::Tensor& projected, double focal) {
  const auto z = projected.narrow(-1, 2, 1);
  return at::cat({projected.narrow(-1, 0, 2) * z / focal, z}, -1);
}

double edge_pixels(const at::Tensor& verts, const at::Tensor& faces, int64_t size, double q) {
  if (!(q > 0 && q <= 1)) throw std::invalid_argument("edge_pixels: q must be in (0, 1]");
  const auto pix = pixel_coordinates(verts.detach().cpu().to(at::kDouble), size);  // (N, K V, 2)
  const int64_t k = verts.size(1), v = verts.size(2);
  const auto f = faces.cpu().to(at::kLong);
  const auto offsets = (at::arange(k, at::kLong) * v).view({k, 1, 1});
  const auto idx = (f.unsqueeze(0) + offsets).reshape({-1, 3});  // (K F, 3)
  std::vector<at::Tensor> lengths;
  for (int e = 0; e < 3; ++e) {
    const auto a = pix.index_select(1, idx.select(1, e)), b = pix.index_select(1, idx.select(1, (e + 1) % 3));
    lengths.push_back((a - b).pow(2).sum(-1).sqrt().reshape({-1}));
  }
  const auto sorted = std::get<0>(at::cat(lengths).sort());
  const int64_t n = sorted.numel();
  const auto at_q = std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(q * static_cast<double>(n))) - 1);
  return sorted[std::max<int64_t>(at_q, 0)].item<double>();
}

std::pair<at::Tensor, at::Tensor> sample_surface(const at::Tensor& camera_verts, const at::Tensor& faces, int64_t n) {
  const int64_t k = camera_verts.size(0), v = camera_verts.size(1);
  const auto verts = camera_verts.cpu().to(at::kDouble).reshape({k * v, 3});
  const auto f = faces.cpu().to(at::kLong);
  const int64_t nf = f.size(0);
  const auto idx = (f.unsqueeze(0) + (at::arange(k, at::kLong) * v).view({k, 1, 1})).reshape({k * nf, 3});
  const auto a = verts.index_select(0, idx.select(1, 0)), b = verts.index_select(0, idx.select(1, 1)),
             c = verts.index_select(0, idx.select(1, 2));
  const auto area = at::linalg_cross(b - a, c - a, -1).pow(2).sum(-1).sqrt();
  const auto cdf = area.cumsum(0);
  const double total = cdf[-1].item<double>();
  if (!(total > 0) || !std::isfinite(total)) throw std::invalid_argument("sample_surface: the surface has no area");
  // Stratified positions along the cumulative area pick the faces; a low-discrepancy
  // sequence (golden-ratio steps) places the points within them.
  const auto t = (at::arange(n, at::kDouble) + 0.5) * (total / static_cast<double>(n));
  const auto face = at::searchsorted(cdf, t).clamp_max(k * nf - 1);
  const auto step = at::arange(n, at::kDouble);
  auto r1 = at::frac(step * 0.7548776662466927 + 0.5), r2 = at::frac(step * 0.5698402909980532 + 0.5);
  const auto s1 = r1.sqrt();
  const auto wa = (1 - s1).unsqueeze(1), wb = (s1 * (1 - r2)).unsqueeze(1), wc = (s1 * r2).unsqueeze(1);
  const auto points = wa * a.index_select(0, face) + wb * b.index_select(0, face) + wc * c.index_select(0, face);
  return {points, at::div(face, nf, "floor")};
}

Accuracy3D accuracy_3d(const at::Tensor& verts, const at::Tensor& faces, const Mesh& truth,
                       const std::vector<int64_t>& assignment, const EvalOptions& o) {
  Accuracy3D r;
  const auto pred_cam = lift_to_camera(verts.detach().cpu().to(at::kDouble), o.focal);
  const auto true_cam = lift_to_camera(truth.verts.detach().cpu().to(at::kDouble), o.focal);
  auto [p, p_part] = sample_surface(pred_cam, faces, o.surface_samples);
  auto [g, g_part] = sample_surface(true_cam, truth.faces, o.surface_samples);
  const double diagonal =
      (std::get<0>(true_cam.reshape({-1, 3}).max(0)) - std::get<0>(true_cam.reshape({-1, 3}).min(0)))
          .norm()
          .item<double>();
  if (!(diagonal > 0)) throw std::invalid_argument("accuracy_3d: the ground-truth mesh has no extent");
  // Best scale about the camera centre and depth shift: s p + t e_z ~ g. Start from the
  // ratio of mean depths, then alternate closest points and the 2 x 2 least squares, on every
  // fourth point (the distances are the cost: 2048 x 2048 in float64 is 70 ms on one core).
  double s = g.select(1, 2).mean().item<double>() / std::max(p.select(1, 2).mean().item<double>(), 1e-12), t = 0;
  const auto ez = at::tensor({0.0, 0.0, 1.0}, at::kDouble);
  const int64_t stride = p.size(0) >= 1024 ? 4 : 1;
  const auto ps = p.slice(0, 0, p.size(0), stride), gs = g.slice(0, 0, g.size(0), stride);
  for (int64_t it = 0; it < o.align_iterations; ++it) {
    const auto ds = at::cdist(ps * s + ez * t, gs);
    const auto to_g = std::get<1>(ds.min(1)), to_p = std::get<1>(ds.min(0));
    const auto src = at::cat({ps, ps.index_select(0, to_p)}), dst = at::cat({gs.index_select(0, to_g), gs});
    const double spp = src.pow(2).sum().item<double>(), sz = src.select(1, 2).sum().item<double>();
    const double m = static_cast<double>(src.size(0));
    const double spg = (src * dst).sum().item<double>(), gz = dst.select(1, 2).sum().item<double>();
    const double det = spp * m - sz * sz;
    if (std::abs(det) < 1e-12) break;
    const double s_new = (spg * m - sz * gz) / det, t_new = (spp * gz - sz * spg) / det;
    if (!(s_new > 0) || !std::isfinite(t_new)) break;
    const bool settled = std::abs(s_new - s) <= 1e-9 * std::abs(s) && std::abs(t_new - t) <= 1e-9 * diagonal;
    s = s_new;
    t = t_new;
    if (settled) break;
  }
  const auto d = at::cdist(p * s + ez * t, g);
  r.scale = s;
  r.depth_shift = t;
  const auto [to_g_dist, to_g] = d.min(1);
  const auto [to_p_dist, to_p] = d.min(0);
  const auto dp = to_g_dist / diagonal, dg = to_p_dist / diagonal;
  r.chamfer = 0.5 * (dp.mean().item<double>() + dg.mean().item<double>());
  auto fscore = [&](double tau) {
    const double precision = dp.le(tau).to(at::kDouble).mean().item<double>();
    const double recall = dg.le(tau).to(at::kDouble).mean().item<double>();
    return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
  };
  r.fscore_tight = fscore(o.fscore_tight);
  r.fscore_loose = fscore(o.fscore_loose);
  if (!assignment.empty()) {
    const auto nearest_part = p_part.index_select(0, to_p);  // the predicted part nearest to each true point
    const auto np = nearest_part.accessor<int64_t, 1>(), gp = g_part.accessor<int64_t, 1>();
    int64_t agree = 0;
    for (int64_t i = 0; i < np.size(0); ++i) {
      const int64_t part = np[i], piece = gp[i];
      const int64_t label = part < static_cast<int64_t>(assignment.size()) ? assignment[static_cast<size_t>(part)] : -1;
      agree += label >= 0 && label == truth.labels.at(static_cast<size_t>(piece));
    }
    r.part_agreement = static_cast<double>(agree) / static_cast<double>(np.size(0));
  }
  return r;
}

EvalResult evaluate_label_maps(const at::Tensor& maps, int64_t parts, const at::Tensor& masks,
                               const at::Tensor& part_labels, const EvalOptions& o) {
  if (maps.dim() != 3 || maps.sizes() != masks.sizes())
    throw std::invalid_argument("evaluate_label_maps: maps and masks must both be (N, S, S)");
  EvalResult r;
  r.images = maps.size(0);
  const auto ids = maps.cpu().to(at::kLong) - 1;  // -1 background, 0..parts-1
  const auto sil = silhouette_scores(ids >= 0, masks.cpu());
  r.iou = sil.iou.mean().item<double>();
  r.precision = sil.precision.mean().item<double>();
  r.recall = sil.recall.mean().item<double>();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.per_image.resize(static_cast<size_t>(r.images));
  const auto iou = sil.iou.accessor<double, 1>(), pr = sil.precision.accessor<double, 1>(),
             re = sil.recall.accessor<double, 1>();
  for (int64_t i = 0; i < r.images; ++i) {
    auto& im = r.per_image[static_cast<size_t>(i)];
    im.iou = iou[i];
    im.precision = pr[i];
    im.recall = re[i];
    im.part_iou = im.chamfer = im.fscore_tight = im.fscore_loose = im.part_agreement_3d = nan;
  }
  if (part_labels.defined()) {
    const auto p = part_iou(ids, part_labels.cpu(), parts, o.labels);
    r.part_iou = p.mean;
    r.assignment = p.assignment;
    r.per_label_iou = p.per_label;
    r.missed_per_label = p.missed;
    r.overlap = p.overlap;
    for (int64_t i = 0; i < r.images; ++i)
      r.per_image[static_cast<size_t>(i)].part_iou = p.per_image[static_cast<size_t>(i)];
  }
  return r;
}

EvalResult evaluate(const EvalInputs& in, const EvalOptions& o) {
  check_inputs(in);
  const int64_t n = in.verts.size(0), k = in.verts.size(1), v = in.verts.size(2), s = in.masks.size(1);
  const auto verts = in.verts.detach().cpu().to(at::kFloat).contiguous();
  const auto faces = in.faces.cpu().to(at::kLong).contiguous();
  const auto frags = render::rasterize_hard(verts, faces, s, s);

  EvalResult r = evaluate_label_maps(frags.part_id + 1, k, in.masks, in.part_labels, o);
  const auto pix = pixel_coordinates(verts, s);
  const auto pa = pix.accessor<float, 3>();
  const auto va = verts.accessor<float, 4>();
  const auto fa = faces.accessor<int64_t, 2>();
  const int64_t* face_ptr = faces.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> covered(static_cast<size_t>(n));
  {
    const auto ids = frags.part_id.accessor<int64_t, 3>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t y = 0; y < s; ++y)
        for (int64_t x = 0; x < s; ++x)
          if (ids[i][y][x] >= 0) covered[static_cast<size_t>(i)].push_back(y * s + x);
  }
  // Where surface point p of reconstruction i lands in image j, in crop pixels, and its depth.
  auto land = [&](const SurfacePoint& p, int64_t j, double* x, double* y, double* z) {
    *x = *y = *z = 0;
    for (int b = 0; b < 3; ++b) {
      const int64_t vert = fa[p.face][b];
      *x += p.w[b] * pa[j][p.part * v + vert][0];
      *y += p.w[b] * pa[j][p.part * v + vert][1];
      *z += p.w[b] * va[j][p.part][vert][2];
    }
  };

  if (in.keypoints.defined() && n > 1) {
    const auto kp = in.keypoints.cpu().to(at::kFloat).contiguous();
    const int64_t p = kp.size(1);
    const auto ka = kp.accessor<float, 3>();
    // Each visible keypoint of each image as a surface point (or a vertex, LASSIE's rule).
    std::vector<SurfacePoint> source(static_cast<size_t>(n * p));
    if (o.transfer == KeypointTransfer::NearestVertex) {
      const auto visible = render::visible_vertices(frags, verts).reshape({n, k * v});
      for (int64_t i = 0; i < n; ++i) {
        if (!visible[i].any().item<bool>()) continue;
        const auto d2 = (pix[i].unsqueeze(0) - kp[i].narrow(1, 0, 2).unsqueeze(1)).pow(2).sum(2);  // (P, K V)
        const auto masked =
            at::where(visible[i].unsqueeze(0), d2, at::full({}, std::numeric_limits<float>::infinity()));
        const auto best = std::get<1>(masked.min(1));
        const auto bb = best.accessor<int64_t, 1>();
        for (int64_t q = 0; q < p; ++q) {
          if (ka[i][q][2] <= 0) continue;
          // A vertex as a surface point: any face holding it, with weight 1 on it.
          auto& sp = source[static_cast<size_t>(i * p + q)];
          sp.part = bb[q] / v;
          const int64_t local = bb[q] % v;
          for (int64_t f = 0; f < faces.size(0) && sp.face < 0; ++f)
            for (int b = 0; b < 3; ++b)
              if (fa[f][b] == local) {
                sp.face = f;
                sp.w[b] = 1;
                break;
              }
          if (sp.face < 0) sp.part = -1;
        }
      }
    } else {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t q = 0; q < p; ++q)
          if (ka[i][q][2] > 0)
            source[static_cast<size_t>(i * p + q)] = surface_point_under(
                ka[i][q][0], ka[i][q][1], i, s, frags, covered, pix.data_ptr<float>() + i * k * v * 2, v, face_ptr);
    }
    const double t_paper = o.pck_paper * static_cast<double>(s), t_lassie = o.pck_lassie * static_cast<double>(s);
    int64_t ok_paper = 0, ok_lassie = 0, mirrored = 0, missed_inside = 0, missed_same_label = 0;
    std::vector<int64_t> trials(static_cast<size_t>(p), 0), ok(static_cast<size_t>(p), 0),
        ok_loose(static_cast<size_t>(p), 0);
    // The ground-truth label under a crop position (x, y in pixels), -1 outside the crop.
    at::Tensor gt_labels;
    if (in.part_labels.defined()) {
      gt_labels = in.part_labels.cpu().to(at::kLong).contiguous();
      r.pck_lassie_miss_landing.assign(static_cast<size_t>(p),
                                       std::vector<int64_t>(static_cast<size_t>(o.labels + 1), 0));
    }
    const auto label_at = [&](int64_t img, double x, double y) -> int64_t {
      const int64_t c = static_cast<int64_t>(std::floor(x)), row = static_cast<int64_t>(std::floor(y));
      if (c < 0 || row < 0 || c >= gt_labels.size(2) || row >= gt_labels.size(1)) return -1;
      return gt_labels.data_ptr<int64_t>()[(img * gt_labels.size(1) + row) * gt_labels.size(2) + c];
    };
    const auto mirror_of = [&](int64_t q) {
      return q < static_cast<int64_t>(o.keypoint_mirror.size()) ? o.keypoint_mirror[static_cast<size_t>(q)] : -1;
    };
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        if (i == j) continue;
        for (int64_t q = 0; q < p; ++q) {
          if (ka[i][q][2] <= 0 || ka[j][q][2] <= 0) continue;
          ++r.keypoint_pairs;
          ++trials[static_cast<size_t>(q)];
          const auto& sp = source[static_cast<size_t>(i * p + q)];
          if (sp.part < 0) continue;
          double x, y, z;
          land(sp, j, &x, &y, &z);
          const double d = std::hypot(x - ka[j][q][0], y - ka[j][q][1]);
          ok_paper += d <= t_paper;
          ok_lassie += d <= t_lassie;
          ok[static_cast<size_t>(q)] += d <= t_paper;
          ok_loose[static_cast<size_t>(q)] += d <= t_lassie;
          if (d > t_lassie && gt_labels.defined()) {
            const int64_t landed = label_at(j, x, y);
            if (landed >= 0) {
              ++missed_inside;
              ++r.pck_lassie_miss_landing[static_cast<size_t>(q)][static_cast<size_t>(landed <= o.labels ? landed : 0)];
              missed_same_label += landed == label_at(j, ka[j][q][0], ka[j][q][1]);
            }
          }
          const int64_t m = mirror_of(q);
          if (d > t_paper && m >= 0 && m < p && ka[j][m][2] > 0)
            mirrored += std::hypot(x - ka[j][m][0], y - ka[j][m][1]) <= t_paper;
        }
      }
    if (r.keypoint_pairs > 0) {
      r.pck_paper = static_cast<double>(ok_paper) / static_cast<double>(r.keypoint_pairs);
      r.pck_lassie = static_cast<double>(ok_lassie) / static_cast<double>(r.keypoint_pairs);
      r.pck_mirror = static_cast<double>(mirrored) / static_cast<double>(r.keypoint_pairs);
    }
    if (missed_inside > 0)
      r.pck_lassie_miss_same_label = static_cast<double>(missed_same_label) / static_cast<double>(missed_inside);
    const auto per_slot = [&](const std::vector<int64_t>& hits) {
      std::vector<double> out(static_cast<size_t>(p), std::numeric_limits<double>::quiet_NaN());
      for (size_t q = 0; q < out.size(); ++q)
        if (trials[q] > 0) out[q] = static_cast<double>(hits[q]) / static_cast<double>(trials[q]);
      return out;
    };
    r.pck_per_keypoint = per_slot(ok);
    r.pck_lassie_per_keypoint = per_slot(ok_loose);
  }

  if (in.part_labels.defined() && n > 1) {
    const auto labels = in.part_labels.cpu().to(at::kLong).contiguous();
    const auto la = labels.accessor<int64_t, 3>();
    const auto ids = frags.part_id.accessor<int64_t, 3>(), fids = frags.face_id.accessor<int64_t, 3>();
    const auto ba = frags.barycentric.accessor<float, 4>();
    const auto depth = frags.depth.accessor<float, 3>();
    int64_t ok = 0, occluded = 0, mirrored = 0, uncovered = 0;
    const int64_t nl = o.labels + 1;
    std::vector<int64_t> label_trials(static_cast<size_t>(nl), 0), label_occluded(static_cast<size_t>(nl), 0);
    r.pcp_confusion.assign(static_cast<size_t>(nl), std::vector<int64_t>(static_cast<size_t>(nl), 0));
    const auto label_of = [&](int64_t g) { return g >= 0 && g < nl ? g : 0; };  // out-of-range labels: column 0
    const auto mirror_label = [&](int64_t g) {
      return g < static_cast<int64_t>(o.label_mirror.size()) ? o.label_mirror[static_cast<size_t>(g)] : -1;
    };
    for (int64_t i = 0; i < n; ++i) {
      const auto labelled = labels[i].reshape({-1}).gt(0).nonzero().squeeze(1).contiguous();
      const int64_t count = labelled.numel();
      if (count == 0) continue;
      const auto lab = labelled.accessor<int64_t, 1>();
      const int64_t take = std::min(count, o.pcp_pixels);
      for (int64_t t = 0; t < take; ++t) {
        const int64_t flat = lab[take == count ? t : (t * (count - 1)) / std::max<int64_t>(take - 1, 1)];
        const int64_t row = flat / s, col = flat % s;
        const int64_t src_label = la[i][row][col];
        const auto src = static_cast<size_t>(label_of(src_label));
        r.pcp_trials += n - 1;
        label_trials[src] += n - 1;
        SurfacePoint sp;
        sp.part = ids[i][row][col];
        if (sp.part < 0) {  // not covered: wrong for every target
          uncovered += n - 1;
          continue;
        }
        sp.face = fids[i][row][col];
        for (int b = 0; b < 3; ++b) sp.w[b] = ba[i][row][col][b];
        for (int64_t j = 0; j < n; ++j) {
          if (j == i) continue;
          double x, y, z;
          land(sp, j, &x, &y, &z);
          const auto cx = static_cast<int64_t>(std::floor(x)), cy = static_cast<int64_t>(std::floor(y));
          if (cx < 0 || cy < 0 || cx >= s || cy >= s) continue;  // outside the target: wrong
          if (ids[j][cy][cx] != sp.part || z > depth[j][cy][cx] * (1.0 + o.visibility_tolerance)) {
            ++occluded;  // hidden in the target by another part or a nearer fold of its own: apart
            ++label_occluded[src];
            continue;
          }
          const int64_t target_label = la[j][cy][cx];
          ok += target_label == src_label;
          ++r.pcp_confusion[src][static_cast<size_t>(label_of(target_label))];
          const int64_t m = mirror_label(src_label);
          mirrored += m >= 0 && target_label == m;
        }
      }
    }
    if (r.pcp_trials > 0) {
      r.pcp_occluded = static_cast<double>(occluded) / static_cast<double>(r.pcp_trials);
      if (r.pcp_trials > occluded) {
        r.pcp = static_cast<double>(ok) / static_cast<double>(r.pcp_trials - occluded);
        r.pcp_mirror = static_cast<double>(mirrored) / static_cast<double>(r.pcp_trials - occluded);
        r.pcp_uncovered = static_cast<double>(uncovered) / static_cast<double>(r.pcp_trials - occluded);
      }
    }
    r.pcp_per_label.assign(static_cast<size_t>(nl), std::numeric_limits<double>::quiet_NaN());
    for (size_t g = 1; g < static_cast<size_t>(nl); ++g)
      if (label_trials[g] > label_occluded[g])
        r.pcp_per_label[g] =
            static_cast<double>(r.pcp_confusion[g][g]) / static_cast<double>(label_trials[g] - label_occluded[g]);
  }

  if (!in.meshes.empty()) {
    double sums[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i) {
      const auto& m = in.meshes[static_cast<size_t>(i)];
      if (!m.verts.defined()) continue;
      const auto a = accuracy_3d(verts[i], faces, m, r.assignment, o);
      auto& im = r.per_image[static_cast<size_t>(i)];
      im.chamfer = a.chamfer;
      im.fscore_tight = a.fscore_tight;
      im.fscore_loose = a.fscore_loose;
      if (!r.assignment.empty()) im.part_agreement_3d = a.part_agreement;
      sums[0] += a.chamfer;
      sums[1] += a.fscore_tight;
      sums[2] += a.fscore_loose;
      sums[3] += a.part_agreement;
      ++r.mesh_images;
    }
    if (r.mesh_images > 0) {
      const double c = static_cast<double>(r.mesh_images);
      r.chamfer = sums[0] / c;
      r.fscore_tight = sums[1] / c;
      r.fscore_loose = sums[2] / c;
      r.part_agreement_3d = sums[3] / c;
    }
  }
  return r;
}

}  // namespace lepard::eval
