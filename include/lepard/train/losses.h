#pragma once
// The training signal (paper section 3.3; docs/design.md "Training signal"): image forces from
// the pseudo-labels, turned into generalized forces on each part's parameters.
//
// The network's parts are assembled and projected by core::project_parts, whose backward
// applies L_proj^T per group with the group weights of eq. 11. Everything downstream of
// the projected points is an image energy whose gradient with respect to a point is minus
// the image force on it:
//   silhouette   mean over pixels of (M - G)^2, M the soft union silhouette, G the pseudo mask
//   parts        mean over pixels of |I - onehot(pseudo label)|^2, I the soft-rendered image of
//                each part's cluster distribution (background = cluster 0)
//   attraction   Chamfer-style: mean squared distance from (a subsample of) projected points to
//                the nearest pseudo-mask pixel, plus from (a subsample of) mask pixels to the
//                nearest projected point, so that parts far from the object still feel a force
//   collision    for every point of part i inside part j (inside/outside value F < 1, after
//                undoing taper and bend; F = alpha^2 for a point at alpha of the way from the
//                centre to the surface): 0.5 d^2 with the penetration depth as a length,
//                d = (1 - sqrt F) t, t the part's smallest half-extent: the energy of a force
//                proportional to the depth that stays bounded for thin parts (a 1 - F depth
//                grows like 1 / width^2 and pushed the legs hardest); its gradient pushes part i out of part j and part
//                j away from the point (equal and opposite), reaching part i through L^T (core::PointSpace::World)
//   part_silhouette  eq. 12 per part, with explicit ownership (train/ownership.h): for each
//                cluster c the soft union U_c of the parts that own it against the cluster's
//                mask, mean over pixels of sum_c (U_c - [label = c])^2; the force on part k
//                pushes it out over its cluster's uncovered pixels and in from pixels that are
//                not its cluster's (several parts share a cluster's job, as leg segments do).
//                With split_shared, a shared cluster's separate pieces in an image (the legs of
//                one leg cluster) are clusters of their own, each with the owner nearest it.
//                With part_normalize each cluster's sum over pixels is divided by its area in
//                the image (at least one pixel), and the clusters present are averaged: a thin
//                leg cluster then weighs as much as the torso instead of its few pixels' share
//                (both halves). part_coverage_balance in (0, 1] instead reweighs only the
//                coverage half: cluster c's misses by area_c^-balance, scaled so that the
//                weights average 1 over the owned pixels
//   part_attraction  the reach beyond the soft rasteriser's band, per part: a Chamfer between
//                each part's projected points and the pixels of its own clusters (points to
//                the nearest owned pixel; each cluster's pixels to the nearest point of the
//                parts owning it), so a part is pulled toward its clusters wherever it is.
//                part_pull weighs the first half (points to pixels) against the second: the
//                pull draws every point of a part, outline included, onto the nearest pixel of
//                a noisy cluster and so thins a part; 0 keeps only the cover
//   viewpoint    cross-entropy of the camera's selection head against the turn the viewpoint
//                search chose (train/viewpoint.h), mean over images
//   layout       the pull of each image's part centres toward the viewpoint search's shared
//                layout, both with their mean over parts removed: mean over parts of the
//                squared distance, mean over images. Parts that keep one arrangement leave
//                the change of viewpoint to the camera
//   shape_consistency  the pull of every part's size and proportions toward the category's:
//                mean over parts and axes of the squared difference between the part's
//                relative log semi-axes (relative_log_axes) and their category mean, mean over
//                images. A part then keeps one shape in every view, so a body seen end-on must
//                turn its long axis toward the camera instead of shrinking to its outline
//   distance_consistency  the same for the arrangement: the distance between every two part
//                centres divided by the image's mean distance (relative_distances) against the
//                category's, mean over pairs and images. It does not change with the viewpoint,
//                so a body seen end-on keeps its parts spread in depth
//   deformation_size        mean q_d^2 (keeps local deformations small)
//   deformation_smoothness  mean squared difference of neighbouring q_d control values
// Each term is a mean over images of a per-image quantity, so that data-parallel training on
// equal shares of a batch averages to the same gradient as one process with the batch.
//
// The ablation "plain autograd" (generalized_forces = false) uses
// core::project_parts_reference instead: autograd through the geometry, no group weights.
// With every weight 1 the two give the same gradients (tests/train/test_losses.cpp).
#include <lepard/core/local_flow.h>
#include <lepard/core/project_parts.h>
#include <lepard/core/surface_grid.h>

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace lepard::train {

struct LossSettings {
  double silhouette = 1.0, parts = 1.0, attraction = 1.0, collision = 0.1;
  // The part image over the background by the parts' soft union silhouette A:
  // A I + (1 - A) bg, with I the depth-blended part image. Without it, at a small gamma the
  // background's weight underflows wherever any face's band reaches, so the part image shows
  // a part's cluster across its whole band and its force has no push at the outline.
  bool parts_composite = false;
  // The part image's error at each foreground cluster's pixels weighted per image by the
  // cluster's area to the power -parts_balance, scaled so that the foreground's total weight is
  // its pixel count (background pixels: 1). 0: every pixel alike; 1: every cluster present
  // alike, so a thin leg cluster weighs as much as the torso.
  double parts_balance = 0.0;
  double deformation_size = 0.01, deformation_smoothness = 0.01;
  double part_silhouette = 0.0, part_attraction = 0.0;  // per-part forces (need LossInputs::ownership)
  bool part_normalize = true;     // part_silhouette per cluster divided by the cluster's area in the image
  double part_containment = 1.0;  // part_silhouette: weight of a part's strays against its cluster's misses
  // part_silhouette without part_normalize: each cluster's misses weighted by its area in the
  // image to the power -part_coverage_balance, the weights scaled so that they average 1 over
  // the owned pixels (0: every pixel alike; 1: every cluster alike, a thin leg as the torso).
  // The containment half stays a mean over pixels.
  double part_coverage_balance = 0.0;
  double part_pull = 1.0;  // part_attraction: weight of the points-to-pixels half against the cover
  // The rim (needs LossInputs::ownership): with rim_share > 0 the clusters that no part owns
  // are the rim, the clusters whose pixels straddle the outline (the trainer leaves a cluster
  // unowned when at least rim_share of its pixels touch the background; train/ownership.h
  // rim_shares). Their pixels are foreground by rim_target in the silhouette (0: background,
  // 0.5: the outline halfway through them, 1: foreground); the part image and every part's
  // containment treat them as background with weight 1 - rim_target; the attraction pulls
  // toward the other clusters' pixels only.
  double rim_share = 0.0;
  double rim_target = 0.5;
  // Per image, the pieces of a cluster several parts share become clusters of their own, each
  // owned by its nearest owner (train/ownership.h split_shared_clusters); pieces smaller than
  // split_min_fraction of the cluster's pixels in the image join the nearest larger one.
  bool split_shared = false;
  double split_min_fraction = 0.1;
  // Weight of the selection head's cross-entropy against the viewpoint search's choice
  // (train/viewpoint.h; needs LossInputs::view_logits and view).
  double viewpoint = 0.0;
  // Weight of the pull toward the shared layout (needs LossInputs::layout).
  double layout = 0.0;
  // Weight of the pull of each part's semi-axes toward the category's: the log semi-axes
  // log(a0 a_i) of every part, less their mean over the image's parts and axes (the image's
  // own scale is free), against LossInputs::shape_mean (or the batch's own mean).
  double shape_consistency = 0.0;
  // Weight of the pull of the distances between every two part centres, divided by their
  // image mean, toward the category's (relative_distances; LossInputs::distance_mean or the
  // batch's own mean): one arrangement of the parts in every view, up to rotation and scale.
  double distance_consistency = 0.0;
  bool generalized_forces = true;
  bool collisions = true;
  core::GroupWeights weights;
  int64_t render_size = 64;         // the pseudo-labels' grid
  double sigma = 1e-4;              // soft rasteriser sharpness (annealed by the trainer)
  double gamma = 1e-4;              // depth softmax temperature of the part image
  int64_t attraction_points = 64;   // projected points per part in the attraction term
  int64_t attraction_pixels = 256;  // mask pixels per image in the attraction term
  int64_t collision_points = 48;    // points per part tested against the other parts
  int64_t part_points = 48;         // projected points per part in the per-part attraction
  int64_t part_pixels = 48;         // pixels per cluster and image in the per-part attraction
  core::LocalFlowOptions flow;      // integration of q_d
};

// One batch's targets.
struct LossTargets {
  at::Tensor labels;  // (B, H, W) int64 pseudo-labels, 0 = background, 1..C clusters; H = W = render_size
};

// The network's output for a batch, as the losses need it.
struct LossInputs {
  core::Camera camera;
  core::PartParams parts;
  at::Tensor velocity;      // (B, K, 3, G, G, G) or undefined (no local deformation)
  at::Tensor distribution;  // (K, C) each part's distribution over the clusters
  // (K, C) 0/1 explicit ownership, or undefined. When defined it replaces `distribution` in
  // the part image (each part shows its owned clusters, evenly) and drives the per-part terms.
  at::Tensor ownership;
  // (B, J) the selection head's scores of the camera's turns and (B) int64 the viewpoint
  // search's choice (train/viewpoint.h), or undefined.
  at::Tensor view_logits, view;
  // (K, 3) the viewpoint search's shared layout in the object's frame (a target: no gradient),
  // or undefined.
  at::Tensor layout;
  // (K, 3) the category's relative log semi-axes (shape_consistency's target: no gradient), or
  // undefined: the mean of this batch's own (relative_log_axes).
  at::Tensor shape_mean;
  // (K, K) the category's relative distances between part centres (distance_consistency's
  // target: no gradient), or undefined: the mean of this batch's own.
  at::Tensor distance_mean;
};

struct LossTerms {
  std::vector<std::pair<std::string, at::Tensor>> terms;  // weighted terms, in a fixed order
  at::Tensor total;
  at::Tensor points;            // (B, K, V, 3) the projected points (for logging and validation)
  at::Tensor silhouette;        // (B, H, W) the soft union silhouette
  at::Tensor silhouette_parts;  // (B, K, H, W) each part's soft silhouette (when computed)
};

// The per-part attraction's nearest squared distances between the parts' points (B, K, P, 2)
// and the clusters' pixels (B, C, n, 2) (cluster_pixels; valid (B, C) 1 where the image has the
// cluster), each side to the other side's owners:
//   to_pixels (B, K, P): each point to the nearest pixel of the clusters its part owns and
//                        the image has; `big` where there are none;
//   to_points (B, C, n): each pixel to the nearest point of the parts that own its cluster;
//                        `big` where none does.
// own is the shared (K, C) table, measured over the owned (part, cluster) pairs only (a part
// owns a few clusters, so about a tenth of all the distances), or (B, K, C) per image,
// measured over every pair. Both give the same values.
struct NearestDistances {
  at::Tensor to_pixels, to_points;
};
NearestDistances owned_nearest_distances(const at::Tensor& points, const at::Tensor& pixels, const at::Tensor& own,
                                         const at::Tensor& valid, double big);

// Up to n pixel centres of every cluster 1..C of each image (labels (B, H, W)), spread evenly
// over the cluster in raster order: (B, C, n, 2) in `like`'s dtype and device, and (B, C) 1
// where the image has the cluster.
std::pair<at::Tensor, at::Tensor> cluster_pixels(const at::Tensor& labels, int64_t clusters, int64_t n,
                                                 const at::Tensor& like);

// log(a0 a_i), i = 1..3, of every part (shape (B, K, 11)) less their mean over the image's
// parts and axes: (B, K, 3), the parts' sizes and proportions with the image's scale removed.
at::Tensor relative_log_axes(const at::Tensor& shape);

// The distance between every two part centres (centres (B, K, 3)) divided by the image's mean
// over the K x K pairs: (B, K, K), 0 on the diagonal; unchanged by a rotation, a mirror or a
// scaling of an image's arrangement.
at::Tensor relative_distances(const at::Tensor& centres);

// Local displacements d of every surface point: (B, K, V, 3), or undefined without q_d.
at::Tensor local_displacements(const LossInputs& in, const core::SurfaceGrid& grid, const core::LocalFlowOptions& flow);

// Projected points (B, K, V, 3) through the generalized-force Function or plain autograd.
at::Tensor project(const LossInputs& in, const at::Tensor& local, const core::SurfaceGrid& grid,
                   const LossSettings& settings, core::PointSpace space = core::PointSpace::Image);

LossTerms compute_losses(const LossInputs& in, const LossTargets& targets, const core::SurfaceGrid& grid,
                         const LossSettings& settings);

}  // namespace lepard::train
