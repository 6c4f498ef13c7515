#include <lepard/features/cosegment.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorIndexing.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linalg_eigh.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/randperm.h>
#include <ATen/ops/where.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <stdexcept>
#include <string>

namespace lepard::features {
namespace {

at::Tensor subsample(const at::Tensor& points, int64_t max_points, uint64_t seed) {
  if (max_points <= 0 || points.size(0) <= max_points) return points;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto pick = at::randperm(points.size(0), gen, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, max_points);
  return points.index_select(0, pick.to(points.device()));
}

KMeansResult fit(const at::Tensor& points, int64_t k, const CosegOptions& o, uint64_t seed) {
  KMeansOptions ko = o.kmeans;
  ko.k = std::min(k, points.size(0));
  ko.seed = seed;
  return kmeans(subsample(points, o.max_fit_points, seed), ko);
}

// The saliency vote (dino-vit-features): k-means of every patch into fg_clusters +
// bg_clusters groups; a group is foreground when its patches' mean saliency exceeds
// vote_saliency in at least vote_share of the images (an image where the group has no patch
// gives it no vote).
struct Votes {
  at::Tensor fg_groups;     // (G1, D): the voted groups' centroids
  at::Tensor bg_centroids;  // (G0, D): the others
  at::Tensor is_fg;         // (N) bool over the pooled patches
};

Votes vote_foreground(const at::Tensor& all, const std::vector<at::Tensor>& flat, const std::vector<at::Tensor>& sal,
                      const CosegOptions& o) {
  if (!(o.vote_share > 0 && o.vote_share <= 1))
    throw std::invalid_argument("cosegment: vote_share must be in (0, 1], got " + std::to_string(o.vote_share));
  const int64_t groups = o.fg_clusters + o.bg_clusters;
  if (all.size(0) < groups)
    throw std::invalid_argument("cosegment: the saliency vote needs at least " + std::to_string(groups) +
                                " patches, got " + std::to_string(all.size(0)));
  const auto km = fit(all, groups, o, o.kmeans.seed + 2);
  const int64_t g = km.centroids.size(0);
  std::vector<int64_t> votes(static_cast<size_t>(g), 0);
  std::vector<at::Tensor> nearest;  // each image's patches' nearest group, reused for is_fg below
  for (size_t i = 0; i < flat.size(); ++i) {
    const auto assign = std::get<1>(squared_distances(flat[i], km.centroids).min(1));
    nearest.push_back(assign);
    const auto count = at::zeros({g}, sal[i].options()).index_add_(0, assign, at::ones_like(sal[i]));
    const auto total = at::zeros({g}, sal[i].options()).index_add_(0, assign, sal[i]);
    const auto yes = ((count > 0) & (total > o.vote_saliency * count)).cpu();
    const auto ya = yes.accessor<bool, 1>();
    for (int64_t q = 0; q < g; ++q) votes[static_cast<size_t>(q)] += ya[q] ? 1 : 0;
  }
  std::vector<int64_t> fg_ids, bg_ids;
  const double needed = o.vote_share * static_cast<double>(flat.size());
  for (int64_t q = 0; q < g; ++q)
    (static_cast<double>(votes[static_cast<size_t>(q)]) >= needed ? fg_ids : bg_ids).push_back(q);
  if (fg_ids.empty())
    throw std::invalid_argument("cosegment: the saliency vote found no foreground group (none of " + std::to_string(g) +
                                " has mean saliency > " + std::to_string(o.vote_saliency) + " in " +
                                std::to_string(o.vote_share * 100) + "% of the images)");
  auto pick = [&](const std::vector<int64_t>& ids) {
    return km.centroids.index_select(0, at::tensor(ids, at::kLong).to(km.centroids.device()));
  };
  Votes v;
  v.fg_groups = pick(fg_ids);
  v.bg_centroids = bg_ids.empty() ? km.centroids.narrow(0, 0, 0) : pick(bg_ids);
  // vote_assign's rule (nearest group voted foreground), read off the assignments above
  // instead of computing every patch's distances to the groups a second time.
  std::vector<int64_t> voted(static_cast<size_t>(g), 0);
  for (auto q : fg_ids) voted[static_cast<size_t>(q)] = 1;
  v.is_fg = at::tensor(voted, at::kLong).to(all.device()).index_select(0, at::cat(nearest)).to(at::kBool);
  return v;
}

// Labels (N) int64 of normalised points (N, D): 0 background, 1..C (assign_labels' rule).
at::Tensor assign_points(const ClusterModel& m, const at::Tensor& points) {
  const auto [part_dist, part_index] = squared_distances(points, m.parts).min(1);
  at::Tensor is_fg;
  if (m.foreground == Foreground::vote)
    is_fg = vote_assign(points, m.fg_groups, m.background);
  else
    is_fg = part_dist < std::get<0>(squared_distances(points, m.background).min(1));
  return at::where(is_fg, part_index + 1, at::zeros_like(part_index));
}

}  // namespace

const char* foreground_name(Foreground rule) { return rule == Foreground::vote ? "vote" : "lassie"; }

Foreground parse_foreground(const std::string& name, const std::string& setting) {
  for (auto rule : {Foreground::vote, Foreground::lassie})
    if (name == foreground_name(rule)) return rule;
  throw std::invalid_argument(setting + " must be lassie or vote, got '" + name + "'");
}

at::Tensor vote_assign(const at::Tensor& points, const at::Tensor& fg_groups, const at::Tensor& bg_groups) {
  if (bg_groups.size(0) == 0) return at::ones({points.size(0)}, points.options().dtype(at::kBool));
  return std::get<0>(squared_distances(points, fg_groups).min(1)) <
         std::get<0>(squared_distances(points, bg_groups).min(1));
}

CosegResult cosegment(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& saliency,
                      const CosegOptions& o) {
  if (features.empty()) throw std::invalid_argument("cosegment: no images");
  if (features.size() != saliency.size())
    throw std::invalid_argument("cosegment: " + std::to_string(features.size()) + " feature maps but " +
                                std::to_string(saliency.size()) + " saliency maps");
  const int64_t D = features[0].size(-1);
  std::vector<at::Tensor> flat, sal, candidate;
  for (size_t i = 0; i < features.size(); ++i) {
    const auto& f = features[i];
    if (f.dim() != 3 || f.size(2) != D || saliency[i].dim() != 2 || saliency[i].size(0) != f.size(0) ||
        saliency[i].size(1) != f.size(1))
      throw std::invalid_argument("cosegment: image " + std::to_string(i) + " has features " + c10::str(f.sizes()) +
                                  " and saliency " + c10::str(saliency[i].sizes()) + " (expected (gh, gw, " +
                                  std::to_string(D) + ") and (gh, gw))");
    auto x = f.reshape({-1, D}).to(at::kFloat);
    x = x / at::linalg_vector_norm(x, 2, {1}, true).clamp_min(1e-12);
    flat.push_back(x);
    sal.push_back(saliency[i].reshape({-1}).to(x.device(), at::kFloat));
  }
  const auto all = at::cat(flat);
  const auto salient = at::cat(sal) >= o.saliency_threshold;
  if (salient.sum().item<int64_t>() == 0)
    throw std::invalid_argument("cosegment: no patch has saliency >= " + std::to_string(o.saliency_threshold));
  CosegResult r;
  r.model.foreground = o.foreground;
  r.salient_mean = all.index({salient}).mean(0);
  at::Tensor fg_points, bg_points;
  if (o.foreground == Foreground::vote) {
    auto votes = vote_foreground(all, flat, sal, o);
    r.model.background = votes.bg_centroids;
    r.model.fg_groups = votes.fg_groups;
    fg_points = all.index({votes.is_fg});
    if (fg_points.size(0) == 0) throw std::invalid_argument("cosegment: the saliency vote left no foreground patch");
  } else {
    for (const auto& x : flat) {
      const auto d = ((x - r.salient_mean) * (x - r.salient_mean)).sum(1);
      candidate.push_back(d / d.max().clamp_min(1e-12) < o.distance_threshold);
    }
    const auto is_candidate = at::cat(candidate);
    fg_points = all.index({is_candidate});
    bg_points = all.index({~is_candidate});
    if (fg_points.size(0) == 0 || bg_points.size(0) == 0)
      throw std::invalid_argument("cosegment: every patch is on one side of the distance threshold (" +
                                  std::to_string(fg_points.size(0)) + " foreground candidates of " +
                                  std::to_string(all.size(0)) + ")");
  }

  KMeansResult fg;
  if (o.elbow) {
    double previous = 0;
    for (int64_t k = 2; k <= o.max_k; ++k) {
      auto run = fit(fg_points, k, o, o.kmeans.seed);
      if (k > 2 && run.inertia > o.elbow_ratio * previous) break;
      previous = run.inertia;
      fg = std::move(run);
    }
  } else {
    fg = fit(fg_points, o.fg_clusters, o, o.kmeans.seed);
  }
  r.model.parts = fg.centroids;
  r.clusters = fg.centroids.size(0);
  if (o.foreground == Foreground::lassie)
    r.model.background = fit(bg_points, o.bg_clusters, o, o.kmeans.seed + 1).centroids;
  // Every patch labelled by the rule that labels new images (assign_labels).
  const auto all_labels = assign_points(r.model, all);
  const auto is_fg = all_labels > 0;
  const auto labels = all_labels.to(at::kByte).cpu();
  r.fg_fraction = is_fg.to(at::kDouble).mean().item<double>();

  at::Tensor components, centre;
  if (o.pca_dims > 0) {
    const auto fg_all = all.index({is_fg});
    if (fg_all.size(0) < 2) throw std::invalid_argument("cosegment: too few foreground patches for PCA");
    centre = fg_all.mean(0);
    const auto x = (fg_all - centre).to(at::kDouble);
    const auto [values, vectors] = at::linalg_eigh(x.t().matmul(x) / static_cast<double>(x.size(0)));
    const int64_t dims = std::min(o.pca_dims, D);
    components = vectors.narrow(1, D - dims, dims).flip({1}).to(at::kFloat);  // largest first
  }
  int64_t offset = 0;
  for (size_t i = 0; i < flat.size(); ++i) {
    const int64_t n = flat[i].size(0), gh = features[i].size(0), gw = features[i].size(1);
    r.labels.push_back(labels.narrow(0, offset, n).view({gh, gw}).clone());
    if (components.defined())
      r.pca.push_back((flat[i] - centre).matmul(components).view({gh, gw, -1}).cpu().contiguous());
    offset += n;
  }
  return r;
}

at::Tensor assign_labels(const ClusterModel& m, const at::Tensor& features) {
  if (!m.parts.defined() || m.parts.dim() != 2 || m.parts.size(0) == 0 || !m.background.defined() ||
      (m.foreground == Foreground::vote && !m.fg_groups.defined()))
    throw std::invalid_argument("assign_labels: the cluster model is incomplete");
  const int64_t D = m.parts.size(1);
  if (features.dim() != 3 || features.size(2) != D)
    throw std::invalid_argument("assign_labels: features " + c10::str(features.sizes()) +
                                " for clusters of dimension " + std::to_string(D) + " (expected (gh, gw, " +
                                std::to_string(D) + "))");
  auto x = features.reshape({-1, D}).to(m.parts.device(), at::kFloat);
  x = x / at::linalg_vector_norm(x, 2, {1}, true).clamp_min(1e-12);
  return assign_points(m, x).to(at::kByte).cpu().view({features.size(0), features.size(1)});
}

at::Tensor upsample_labels(const at::Tensor& labels, int64_t H, int64_t W) {
  const int64_t gh = labels.size(0), gw = labels.size(1);
  const auto rows =
      ((at::arange(H, at::kDouble) + 0.5) * (static_cast<double>(gh) / H)).floor().to(at::kLong).clamp_max(gh - 1);
  const auto cols =
      ((at::arange(W, at::kDouble) + 0.5) * (static_cast<double>(gw) / W)).floor().to(at::kLong).clamp_max(gw - 1);
  return labels.cpu().index_select(0, rows).index_select(1, cols);
}

double foreground_iou(const std::vector<at::Tensor>& labels, const std::vector<at::Tensor>& masks) {
  if (labels.size() != masks.size() || labels.empty())
    throw std::invalid_argument("foreground_iou: " + std::to_string(labels.size()) + " label maps and " +
                                std::to_string(masks.size()) + " masks");
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto& l = labels[i];
    const auto& m = masks[i];
    const auto fg = upsample_labels(l, m.size(0), m.size(1)) > 0;
    const auto gt = m.cpu() > 0;
    const double inter = (fg & gt).sum().item<double>(), uni = (fg | gt).sum().item<double>();
    total += uni > 0 ? inter / uni : 1.0;
  }
  return total / static_cast<double>(labels.size());
}

}  // namespace lepard::features
