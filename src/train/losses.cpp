#include <lepard/train/losses.h>

#include <lepard/train/nearest.h>
#include <lepard/train/ownership.h>

#include <lepard/core/rotation.h>
#include <lepard/model/reconstruct.h>
#include <lepard/core/superquadric.h>
#include <lepard/render/soft_rasterize.h>

#include <ATen/ATen.h>

#include <algorithm>

namespace lepard::train {

namespace {

// n indices spread evenly over [0, count).
at::Tensor spread_indices(int64_t count, int64_t n) {
  n = std::min(n, count);
  return at::linspace(0, static_cast<double>(count - 1), n, at::TensorOptions().dtype(at::kDouble))
      .round()
      .to(at::kLong);
}

// Mean over the batch of a per-image quantity.
at::Tensor batch_mean(const at::Tensor& per_image) { return per_image.mean(); }

// Up to n pixel centres of the pseudo mask of each image, evenly spread over the mask in
// raster order: (B, n, 2), and (B) 1 where the image has any mask pixel.
std::pair<at::Tensor, at::Tensor> mask_pixels(const at::Tensor& labels, int64_t n, const at::Tensor& like) {
  const int64_t b = labels.size(0), h = labels.size(1), w = labels.size(2);
  const auto centers = render::pixel_centers(h, w, like);  // (H W, 2)
  const auto fg = (labels > 0).reshape({b, h * w}).cpu();
  auto out = at::zeros({b, n, 2}, like.options());
  auto valid = at::zeros({b}, like.options());
  for (int64_t i = 0; i < b; ++i) {
    const auto idx = fg[i].nonzero().squeeze(1);
    if (idx.numel() == 0) continue;
    const auto pick = idx.index_select(0, spread_indices(idx.numel(), n));
    const auto chosen = centers.index_select(0, pick.to(centers.device()));
    // Fewer mask pixels than n: repeat them (the minimum over pixels is unchanged, the mean
    // over pixels weights them evenly).
    out[i] = chosen.repeat({(n + chosen.size(0) - 1) / chosen.size(0), 1}).narrow(0, 0, n);
    valid[i] = 1.0;
  }
  return {out, valid};
}

// Per image, a weight for each cluster's pixels from their areas (B, C): area^-balance for the
// clusters present, scaled so that the weights times the areas sum to the pixels counted (a
// uniform error costs what it did). At 1 every cluster present weighs the same in total, at 0
// every pixel.
at::Tensor cluster_balance(const at::Tensor& area, double balance) {
  const auto present = (area > 0.5).to(area.scalar_type());
  const auto raw = area.clamp_min(1.0).pow(-balance) * present;
  return raw * area.sum(1, true) / (raw * area).sum(1, true).clamp_min(1e-12);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> cluster_pixels(const at::Tensor& labels, int64_t clusters, int64_t n,
                                                 const at::Tensor& like) {
  const int64_t b = labels.size(0), h = labels.size(1), w = labels.size(2);
  const auto centers = render::pixel_centers(h, w, like).cpu();  // (H W, 2)
  const auto flat = labels.reshape({b, h * w}).cpu();
  auto out = at::zeros({b, clusters, n, 2}, centers.options());
  auto valid = at::zeros({b, clusters}, centers.options());
  for (int64_t i = 0; i < b; ++i)
    for (int64_t c = 0; c < clusters; ++c) {
      const auto idx = flat[i].eq(c + 1).nonzero().squeeze(1);
      if (idx.numel() == 0) continue;
      const auto chosen = centers.index_select(0, idx.index_select(0, spread_indices(idx.numel(), n)));
      out[i][c] = chosen.repeat({(n + chosen.size(0) - 1) / chosen.size(0), 1}).narrow(0, 0, n);
      valid[i][c] = 1.0;
    }
  return {out.to(like.device()), valid.to(like.device())};
}

NearestDistances owned_nearest_distances(const at::Tensor& points, const at::Tensor& pixels, const at::Tensor& own,
                                         const at::Tensor& valid, double big) {
  const int64_t b = points.size(0), k = points.size(1), p = points.size(2), c = pixels.size(1), n = pixels.size(2);
  const auto far = at::full({}, big, points.options());
  NearestDistances out;
  if (own.dim() == 3) {  // per image: every (part, cluster) pair
    const auto d2 =
        (points.reshape({b, k * p, 1, 2}) - pixels.reshape({b, 1, c * n, 2})).pow(2).sum(3).view({b, k, p, c, n});
    const auto allowed = (own.view({b, k, 1, c}) * valid.view({b, 1, 1, c})) > 0.5;  // (B, K, 1, C)
    out.to_pixels = std::get<0>(at::where(allowed, std::get<0>(d2.min(4)), far).min(3));
    out.to_points = std::get<0>(at::where(own.view({b, k, c, 1}) > 0.5, std::get<0>(d2.min(2)), far).min(1));
    return out;
  }
  // The shared table: the owned pairs, and per part (per cluster) its pairs, padded with an
  // index past the last pair that points at a row of `big`.
  const auto table = (own.detach().cpu() > 0.5).contiguous();
  const auto t = table.accessor<bool, 2>();
  std::vector<int64_t> pair_part, pair_cluster;
  std::vector<std::vector<int64_t>> of_part(static_cast<size_t>(k)), of_cluster(static_cast<size_t>(c));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < c; ++j)
      if (t[i][j]) {
        of_part[i].push_back(static_cast<int64_t>(pair_part.size()));
        of_cluster[j].push_back(static_cast<int64_t>(pair_part.size()));
        pair_part.push_back(i);
        pair_cluster.push_back(j);
      }
  const auto pairs = static_cast<int64_t>(pair_part.size());
  if (pairs == 0) {
    out.to_pixels = at::full({b, k, p}, big, points.options());
    out.to_points = at::full({b, c, n}, big, points.options());
    return out;
  }
  auto padded = [&](const std::vector<std::vector<int64_t>>& lists) {
    size_t width = 1;
    for (const auto& l : lists) width = std::max(width, l.size());
    std::vector<int64_t> flat(lists.size() * width, pairs);
    for (size_t i = 0; i < lists.size(); ++i) std::copy(lists[i].begin(), lists[i].end(), flat.begin() + i * width);
    return std::make_pair(at::tensor(flat, at::kLong).to(points.device()), static_cast<int64_t>(width));
  };
  const auto ik = at::tensor(pair_part, at::kLong).to(points.device());
  const auto ic = at::tensor(pair_cluster, at::kLong).to(points.device());
  const auto [pair_to_pixels, pair_to_points] = nearest_squared_distances(
      points.index_select(1, ik).reshape({b * pairs, p, 2}), pixels.index_select(1, ic).reshape({b * pairs, n, 2}));
  const auto present = (valid.index_select(1, ic) > 0.5).unsqueeze(2);  // (B, pairs, 1)
  const auto to_cluster = at::where(present, pair_to_pixels.view({b, pairs, p}), far);
  const auto [by_part, m] = padded(of_part);
  out.to_pixels = std::get<0>(at::cat({to_cluster, at::full({b, 1, p}, big, points.options())}, 1)
                                  .index_select(1, by_part)
                                  .view({b, k, m, p})
                                  .min(2));
  const auto [by_cluster, m2] = padded(of_cluster);
  out.to_points =
      std::get<0>(at::cat({pair_to_points.view({b, pairs, n}), at::full({b, 1, n}, big, points.options())}, 1)
                      .index_select(1, by_cluster)
                      .view({b, c, m2, n})
                      .min(2));
  return out;
}

at::Tensor local_displacements(const LossInputs& in, const core::SurfaceGrid& grid,
                               const core::LocalFlowOptions& flow) {
  return model::local_displacement(in.parts.shape, in.velocity, grid, flow);
}

at::Tensor project(const LossInputs& in, const at::Tensor& local, const core::SurfaceGrid& grid,
                   const LossSettings& settings, core::PointSpace space) {
  return settings.generalized_forces ? core::project_parts(in.parts, local, in.camera, grid, settings.weights, space)
                                     : core::project_parts_reference(in.parts, local, in.camera, grid, space);
}

at::Tensor relative_log_axes(const at::Tensor& shape) {
  const auto axes = at::log(shape.narrow(-1, core::kA1, 3).clamp_min(1e-9)) +
                    at::log(shape.narrow(-1, core::kA0, 1).clamp_min(1e-9));  // (B, K, 3)
  return axes - axes.mean({1, 2}, true);
}

at::Tensor relative_distances(const at::Tensor& centres) {
  // The square root away from 0: the diagonal's distance is 0 and its derivative unbounded.
  const auto d = (centres.unsqueeze(2) - centres.unsqueeze(1)).pow(2).sum(-1).clamp_min(1e-12).sqrt();
  const auto off = 1.0 - at::eye(centres.size(1), d.options());
  const auto distances = d * off;
  return distances / distances.mean({1, 2}, true).clamp_min(1e-9);
}

LossTerms compute_losses(const LossInputs& in, const LossTargets& targets, const core::SurfaceGrid& grid,
                         const LossSettings& s) {
  LossTerms out;
  const auto& shape = in.parts.shape;
  const int64_t b = shape.size(0), k = shape.size(1), v = grid.num_vertices();
  const auto labels = targets.labels.to(shape.device());
  const int64_t h = labels.size(1), w = labels.size(2);
  const auto faces = grid.faces.to(shape.device());

  const auto local = local_displacements(in, grid, s.flow);
  const auto points = project(in, local, grid, s, core::PointSpace::Image);
  out.points = points;

  render::SoftRasterSettings raster;
  raster.height = h;
  raster.width = w;
  raster.sigma = s.sigma;
  // The rim (loss.rim_share): the clusters no part owns, whose pixels straddle the outline.
  // Their pixels count rim_target as foreground; every other term reads the core labels
  // (the rim as background), the part image and the containment with weight 1 - rim_target.
  at::Tensor core_labels = labels, rim;  // rim: (B, H, W) 1 on the rim's pixels, or undefined
  if (s.rim_share > 0.0 && in.ownership.defined()) {
    const auto unowned = in.ownership.to(labels.device()).sum(0) < 0.5;  // (C)
    const auto lut = at::cat({at::zeros({1}, unowned.options()), unowned});
    rim = lut.index_select(0, labels.clamp(0, unowned.size(0)).reshape(-1)).view_as(labels);
    core_labels = labels.masked_fill(rim, 0);
    rim = rim.to(shape.scalar_type());
  }
  const auto target_mask = rim.defined() ? (core_labels > 0).to(shape.scalar_type()) + s.rim_target * rim
                                         : (labels > 0).to(shape.scalar_type());
  const auto rim_keep = rim.defined() ? 1.0 - s.rim_target * rim : at::Tensor();  // (B, H, W)

  auto add = [&](const std::string& name, double weight, const at::Tensor& value) {
    if (weight == 0.0) return;
    out.terms.emplace_back(name, weight * value);
  };

  // Each part's soft silhouette (B, K, H, W) and their union (B, H, W), rendered once, when a
  // term first needs them.
  auto part_silhouettes = [&]() -> const at::Tensor& {
    if (!out.silhouette_parts.defined()) out.silhouette_parts = render::soft_silhouettes(points, faces, raster);
    return out.silhouette_parts;
  };
  auto union_of_parts = [&]() -> const at::Tensor& {
    if (!out.silhouette.defined()) out.silhouette = render::union_silhouette(part_silhouettes());
    return out.silhouette;
  };

  if (s.silhouette != 0.0)
    add("silhouette", s.silhouette, batch_mean((union_of_parts() - target_mask).pow(2).mean({1, 2})));
  // With explicit ownership, each part shows the clusters it owns (evenly).
  const auto distribution = in.ownership.defined()
                                ? in.ownership.to(shape.scalar_type()) / in.ownership.sum(1, true).clamp_min(1.0)
                                : in.distribution;
  if (s.parts != 0.0) {
    const int64_t c = distribution.size(1);
    render::SoftAttributeSettings attr;
    attr.raster = raster;
    attr.gamma = s.gamma;
    const auto attributes =
        at::cat({at::zeros({k, 1}, distribution.options()), distribution}, 1).unsqueeze(0).expand({b, k, c + 1});
    auto background = at::zeros({c + 1}, distribution.options());
    background[0] = 1.0;
    auto image = render::soft_attributes(points, faces, attributes, background, attr);  // (B, C+1, H, W)
    if (s.parts_composite) {
      // A I + (1 - A) bg with A the soft union silhouette: the outline's pixels show the
      // background by how little the parts cover them.
      const auto cover = union_of_parts().unsqueeze(1);  // (B, 1, H, W)
      image = cover * image + (1.0 - cover) * background.view({1, c + 1, 1, 1});
    }
    const auto onehot = at::one_hot(core_labels.clamp(0, c), c + 1).permute({0, 3, 1, 2}).to(image.scalar_type());
    auto err = (image - onehot).pow(2).sum(1);  // (B, H, W)
    if (s.parts_balance > 0.0) {
      // Each foreground cluster's pixels weighted by its area to the power -balance (the
      // background's pixels keep weight 1): the thin clusters (legs, tail) gain, the torso's
      // loses, and the foreground's total is what it was.
      const auto fg = onehot.narrow(1, 1, c);                                      // (B, C, H, W)
      const auto weight = cluster_balance(fg.sum({2, 3}), s.parts_balance) - 1.0;  // (B, C)
      err = err * (1.0 + (fg * weight.view({b, c, 1, 1})).sum(1));
    }
    if (rim_keep.defined()) err = err * rim_keep;
    add("parts", s.parts, batch_mean(err.mean({1, 2})));
  }
  if (s.attraction != 0.0) {
    const auto idx = spread_indices(v, s.attraction_points).to(points.device());
    const auto pts = points.index_select(2, idx).narrow(3, 0, 2).reshape({b, -1, 2});
    const auto [pix, valid] = mask_pixels(core_labels, s.attraction_pixels, pts);
    const auto [to_pixels, to_points] = nearest_squared_distances(pts, pix);  // (B, P), (B, M)
    const auto per_image = to_pixels.mean(1) + to_points.mean(1);
    add("attraction", s.attraction, batch_mean(per_image * valid));
  }
  if (in.ownership.defined() && (s.part_silhouette != 0.0 || s.part_attraction != 0.0)) {
    const auto shared_own = in.ownership.to(shape.device()).to(shape.scalar_type());  // (K, C)
    if (shared_own.size(0) != k) throw std::invalid_argument("compute_losses: ownership must be (K, C) with K parts");
    // Per image (B, K, C'): the shared table, or with split_shared the pieces of the shared
    // clusters as clusters of their own, each owned by the part nearest it
    // (train/ownership.h split_shared_clusters).
    at::Tensor own, part_labels = labels;
    if (s.split_shared) {
      const auto centres = points.narrow(3, 0, 2).mean(2).detach();  // (B, K, 2)
      const auto split = split_shared_clusters(labels, shared_own, centres, s.split_min_fraction);
      own = split.ownership.to(shape.device()).to(shape.scalar_type());
      part_labels = split.labels.to(shape.device());
    } else {
      own = shared_own.unsqueeze(0).expand({b, k, shared_own.size(1)});
    }
    const int64_t c = own.size(2);
    const auto owned = (own.sum(1) > 0.5).to(shape.scalar_type());  // (B, C): clusters some part owns
    if (s.part_silhouette != 0.0) {
      // Eq. 12 with parts sharing clusters. Coverage: per cluster c, the soft union of the
      // parts that own it, U_c = 1 - prod_k (1 - O[k, c] M_k), must cover c's pixels.
      // Containment: each part k must stay off the pixels that are not of its own clusters
      // (the background and the clusters it does not own). The force on part k pushes it out
      // where its cluster is and no owner is, and in from pixels that are not its own. A part
      // that owns several clusters (loss.ownership_slack) stands for their union.
      const auto& sil = part_silhouettes();                            // (B, K, H, W)
      const auto log_miss = at::log1p(-(sil.clamp(0.0, 1.0 - 1e-6)));  // (B, K, H, W)
      // Without the split, the shared (K, C) table: no per-image batch in the contractions.
      const auto owners_union = 1.0 - at::exp(s.split_shared ? at::einsum("bkhw,bkc->bchw", {log_miss, own})
                                                             : at::einsum("bkhw,kc->bchw", {log_miss, shared_own}));
      const auto onehot = at::one_hot(part_labels.clamp(0, c), c + 1)
                              .narrow(3, 1, c)
                              .permute({0, 3, 1, 2})
                              .to(shape.scalar_type());                             // (B, C, H, W)
      auto miss = (1.0 - owners_union).pow(2) * onehot * owned.view({b, c, 1, 1});  // (B, C, H, W)
      if (s.part_coverage_balance > 0.0) {
        // Each owned cluster's misses weighted by its area to the power -balance.
        const auto area = (onehot * owned.view({b, c, 1, 1})).sum({2, 3});  // (B, C)
        miss = miss * cluster_balance(area, s.part_coverage_balance).view({b, c, 1, 1});
      }
      const auto mine = (s.split_shared ? at::einsum("bchw,bkc->bkhw", {onehot, own})
                                        : at::einsum("bchw,kc->bkhw", {onehot, shared_own}))
                            .clamp_max(1.0);                        // (B, K, H, W)
      auto stray = s.part_containment * sil.pow(2) * (1.0 - mine);  // (B, K, H, W)
      if (rim_keep.defined()) stray = stray * rim_keep.unsqueeze(1);
      if (s.part_normalize) {
        // Each cluster's misses relative to its area, each part's strays relative to the area
        // of its own clusters; means over the owned clusters and the parts the image has.
        const auto area = onehot.sum({2, 3});  // (B, C)
        const auto present = (area > 0.5).to(area.scalar_type()) * owned;
        const auto per_cluster = miss.sum({2, 3}) / area.clamp_min(1.0);  // (B, C)
        const auto own_area = mine.sum({2, 3});                           // (B, K)
        const auto has = (own_area > 0.5).to(own_area.scalar_type());
        const auto per_part = stray.sum({2, 3}) / own_area.clamp_min(1.0);  // (B, K)
        add("part_silhouette", s.part_silhouette,
            batch_mean((per_cluster * present).sum(1) / present.sum(1).clamp_min(1.0) +
                       (per_part * has).sum(1) / has.sum(1).clamp_min(1.0)));
      } else {
        add("part_silhouette", s.part_silhouette, batch_mean((miss.sum(1) + stray.sum(1)).mean({1, 2})));
      }
    }
    if (s.part_attraction != 0.0) {
      const auto idx = spread_indices(v, s.part_points).to(points.device());
      const auto pts = points.index_select(2, idx).narrow(3, 0, 2);                  // (B, K, P, 2)
      const auto [pix, valid] = cluster_pixels(part_labels, c, s.part_pixels, pts);  // (B, C, n, 2), (B, C)
      // Points to the nearest pixel of their own clusters present in the image, and each
      // cluster's pixels to the nearest point of the parts that own it.
      const auto near = owned_nearest_distances(pts, pix, s.split_shared ? own : shared_own, valid, 1e6);
      const auto& pt_cost = near.to_pixels;                          // (B, K, P)
      const auto& px_cost = near.to_points;                          // (B, C, n)
      const auto allowed = (own * valid.view({b, 1, c})) > 0.5;      // (B, K, C)
      const auto part_has = allowed.any(2).to(shape.scalar_type());  // (B, K)
      const auto pull = (pt_cost.mean(2) * part_has).sum(1) / part_has.sum(1).clamp_min(1.0);
      const auto cover_valid = valid * owned;
      const auto cover = (px_cost.mean(2) * cover_valid).sum(1) / cover_valid.sum(1).clamp_min(1.0);
      add("part_attraction", s.part_attraction, batch_mean(s.part_pull * pull + cover));
    }
  }
  if (s.collisions && s.collision != 0.0 && k > 1) {
    const auto world = project(in, local, grid, s, core::PointSpace::World);
    const auto idx = spread_indices(v, s.collision_points).to(world.device());
    const int64_t p = idx.numel();
    const auto xs = world.index_select(2, idx).reshape({b, 1, k * p, 3});
    // Every point in the frame of every part j: R_j^T (x - c_j).  (B, K, K P, 3)
    const auto rel = core::rotate_points(core::quaternion_conjugate(in.parts.rotation).unsqueeze(2),
                                         xs - in.parts.center.unsqueeze(2));
    const auto q = shape.unsqueeze(2);
    const auto extent = core::part_extent(q);  // (B, K, 1, 3)
    const auto in_box = (rel.abs() < extent).all(3);
    // Points outside the box cannot be inside; evaluate them at the box corner, where the
    // inside/outside function is finite, and drop them.
    const auto safe = at::where(in_box.unsqueeze(3), rel, extent.expand_as(rel));
    const auto f = core::inside_outside(q, safe);  // (B, K, K P), alpha^2
    const auto own = at::arange(k, labels.options().dtype(at::kLong)).repeat_interleave(p);
    const auto other = (at::arange(k, own.options()).unsqueeze(1) != own.unsqueeze(0)).unsqueeze(0);  // (1, K, K P)
    // Depth as a length: (1 - alpha) times the part's smallest half-extent (sqrt is taken
    // away from 0, where its derivative is unbounded; the centre itself is depth t).
    const auto thickness = std::get<0>(core::part_extent(shape).min(2)).unsqueeze(2);  // (B, K, 1)
    const auto alpha = at::sqrt(f.clamp_min(1e-6));
    const auto depth = at::relu(1.0 - alpha) * thickness * (in_box & other).to(f.scalar_type());
    add("collision", s.collision, batch_mean(0.5 * depth.pow(2).sum(1).mean(1)));
  }
  if (s.viewpoint != 0.0 && in.view_logits.defined() && in.view.defined())
    add("viewpoint", s.viewpoint,
        at::nll_loss(at::log_softmax(in.view_logits, 1), in.view.to(in.view_logits.device()).to(at::kLong)));
  if (s.layout != 0.0 && in.layout.defined()) {
    const auto& c = in.parts.center;  // (B, K, 3)
    const auto target = in.layout.detach().to(c.device(), c.scalar_type());
    const auto offset = (c - c.mean(1, true)) - (target - target.mean(0, true)).unsqueeze(0);
    add("layout", s.layout, batch_mean(offset.pow(2).sum(2).mean(1)));
  }
  // The consistency terms: each image's value against the category's (given, or the batch's
  // own mean), a target without gradient.
  auto consistency = [&](const std::string& name, double weight, const at::Tensor& rel, const at::Tensor& given) {
    const auto target = given.defined() ? given.detach().to(rel.device(), rel.scalar_type()) : rel.detach().mean(0);
    add(name, weight, batch_mean((rel - target).pow(2).mean({1, 2})));
  };
  if (s.shape_consistency != 0.0)
    consistency("shape_consistency", s.shape_consistency, relative_log_axes(shape), in.shape_mean);
  if (s.distance_consistency != 0.0)
    consistency("distance_consistency", s.distance_consistency, relative_distances(in.parts.center), in.distance_mean);
  if (in.velocity.defined()) {
    const auto& vel = in.velocity;
    if (s.deformation_size != 0.0)
      add("deformation_size", s.deformation_size, batch_mean(vel.pow(2).flatten(1).mean(1)));
    if (s.deformation_smoothness != 0.0) {
      const int64_t g = vel.size(3);
      at::Tensor smooth = at::zeros({b}, vel.options());
      if (g > 1)
        for (int64_t dim : {3, 4, 5})
          smooth = smooth + (vel.narrow(dim, 1, g - 1) - vel.narrow(dim, 0, g - 1)).pow(2).flatten(1).mean(1);
      add("deformation_smoothness", s.deformation_smoothness, batch_mean(smooth));
    }
  }
  at::Tensor total = at::zeros({}, shape.options());
  for (const auto& [name, value] : out.terms) total = total + value;
  out.total = total;
  return out;
}

}  // namespace lepard::train
