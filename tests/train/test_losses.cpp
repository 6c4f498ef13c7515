// The training signal: generalized forces equal autograd with unit group weights (through
// the whole network, float64); group weights scale their group; collision forces push
// inter-penetrating parts apart; the IoU metrics on constructed cases.
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>
#include <lepard/model/model.h>
#include <lepard/train/losses.h>
#include <lepard/eval/metrics.h>

#include "test_support.h"
#include "training_fixture.h"

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

namespace lepard::train {
namespace {

model::ModelOptions small_model() {
  model::ModelOptions o;
  o.parts = 3;
  o.clusters = 2;
  o.image_size = 32;
  o.encoder_depth = 2;
  o.encoder_width = 8;
  o.hidden = 16;
  o.flow_grid = 3;
  o.seed = 3;
  return o;
}

LossSettings small_settings() {
  LossSettings s;
  s.render_size = 16;
  s.sigma = 1e-3;
  s.gamma = 1e-2;
  s.collision = 1.0;
  s.flow.grid_size = 3;
  s.flow.integration_size = 6;
  s.flow.steps = 4;
  return s;
}

// Parameter gradients of the total loss, in registration order.
std::vector<at::Tensor> gradients(model::LepardNet& net, const at::Tensor& images, const at::Tensor& labels,
                                  const core::SurfaceGrid& grid, const LossSettings& s,
                                  LossTerms* terms_out = nullptr) {
  net->zero_grad();
  const auto p = net->forward(images);
  LossInputs in;
  in.camera = p.camera;
  in.parts = p.parts;
  in.velocity = p.velocity;
  in.distribution = net->part_distribution();
  auto terms = compute_losses(in, LossTargets{labels}, grid, s);
  terms.total.backward();
  std::vector<at::Tensor> g;
  for (const auto& param : net->parameters())
    g.push_back(param.grad().defined() ? param.grad().clone() : at::zeros_like(param));
  if (terms_out) *terms_out = terms;
  return g;
}

model::LepardNet overlapping_net() {
  model::LepardNet net(small_model());
  net->to(at::kDouble);
  // Pull the template's parts together so that they inter-penetrate and collide.
  at::NoGradGuard no_grad;
  for (auto& item : net->named_parameters())
    if (item.key() == "part_head.bias") {
      auto b = item.value().view({3, -1});
      b.narrow(1, 0, 3).mul_(0.2);
      b.select(1, 7).fill_(0.5);  // a0 larger
    }
  return net;
}

TEST(Losses, GeneralizedForcesEqualAutogradWithUnitWeights) {
  auto net = overlapping_net();
  const auto data = testing::blob_dataset(2, 32, 16, 1);
  const auto images = data.images.to(at::kDouble), labels = data.labels.to(at::kLong);
  const auto grid = core::make_surface_grid(6, 8);
  auto s = small_settings();
  LossTerms terms;
  s.generalized_forces = true;
  const auto forces = gradients(net, images, labels, grid, s, &terms);
  s.generalized_forces = false;
  const auto autograd = gradients(net, images, labels, grid, s);
  // Every term is present and does something.
  std::vector<std::string> names;
  for (const auto& [name, value] : terms.terms) {
    names.push_back(name);
    EXPECT_GT(value.item<double>(), 0.0) << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"silhouette", "parts", "attraction", "collision", "deformation_size",
                                             "deformation_smoothness"}));
  double largest = 0, worst = 0;
  ASSERT_EQ(forces.size(), autograd.size());
  for (size_t i = 0; i < forces.size(); ++i) {
    largest = std::max(largest, autograd[i].abs().max().item<double>());
    worst = std::max(worst, testing::max_abs_diff(forces[i], autograd[i]));
  }
  EXPECT_GT(largest, 1e-4);  // the comparison is not between zeros
  std::printf("generalized forces against autograd: largest difference %.3g, largest gradient %.3g\n", worst, largest);
  EXPECT_LT(worst, 1e-6) << "largest gradient " << largest;
}

TEST(Losses, GroupWeightsScaleTheirGroup) {
  // With only the silhouette term (which reaches the network through the projected points
  // alone), doubling every group weight doubles every geometry gradient, and a zero weight on
  // every group leaves only the gradient-free parameters.
  auto net = overlapping_net();
  const auto data = testing::blob_dataset(2, 32, 16, 2);
  const auto images = data.images.to(at::kDouble), labels = data.labels.to(at::kLong);
  const auto grid = core::make_surface_grid(6, 8);
  auto s = small_settings();
  s.parts = s.attraction = s.collision = s.deformation_size = s.deformation_smoothness = 0.0;
  const auto one = gradients(net, images, labels, grid, s);
  s.weights = {2.0, 2.0, 2.0, 2.0, 2.0};
  const auto two = gradients(net, images, labels, grid, s);
  s.weights = {0.0, 0.0, 0.0, 0.0, 0.0};
  const auto zero = gradients(net, images, labels, grid, s);
  double largest = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    largest = std::max(largest, one[i].abs().max().item<double>());
    EXPECT_LT(testing::max_abs_diff(two[i], 2.0 * one[i]), 1e-9);
    EXPECT_EQ(zero[i].abs().max().item<double>(), 0.0);
  }
  EXPECT_GT(largest, 1e-4);
  // Weighting only the centres changes the gradient (the groups are separate).
  s.weights = {3.0, 1.0, 1.0, 1.0, 1.0};
  const auto centre = gradients(net, images, labels, grid, s);
  double change = 0;
  for (size_t i = 0; i < one.size(); ++i) change = std::max(change, testing::max_abs_diff(centre[i], one[i]));
  EXPECT_GT(change, 1e-6);
}

// Two unit spheres (superquadrics with e = 1), one at the origin and one at (d, 0, 0).
LossInputs two_spheres(double d, c10::Device device = c10::kCPU) {
  LossInputs in;
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  in.parts.center = at::tensor({0.0, 0.0, 0.0, d, 0.0, 0.0}, opts).view({1, 2, 3}).requires_grad_();
  in.parts.rotation = at::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0}, opts).view({1, 2, 4}).requires_grad_();
  auto shape = at::zeros({1, 2, 11}, opts);
  shape.narrow(2, 0, 4).fill_(1.0);
  shape.narrow(2, 4, 2).fill_(1.0);
  shape.narrow(2, 10, 1).fill_(0.5);
  shape.select(2, 0).fill_(0.5);  // radius 0.5
  in.parts.shape = shape.requires_grad_();
  in.camera.rotation = at::tensor({1.0, 0.0, 0.0, 0.0}, opts).view({1, 4});
  in.camera.translation = at::tensor({0.0, 0.0, 4.0}, opts).view({1, 3});
  in.distribution = at::full({2, 1}, 1.0, opts);
  return in;
}

// The constructed scenes, on every device.
class LossesDevices : public ::testing::TestWithParam<c10::Device> {};

TEST_P(LossesDevices, CollisionsPushInterpenetratingPartsApart) {
  const auto device = GetParam();
  auto s = small_settings();
  s.silhouette = s.parts = s.attraction = 0.0;
  s.collision = 1.0;
  const auto grid = core::make_surface_grid(8, 12);
  const auto labels = at::zeros({1, 16, 16}, at::TensorOptions().dtype(at::kLong).device(device));
  // Apart (distance 1.2 > two radii): no energy.
  const auto apart = compute_losses(two_spheres(1.2, device), LossTargets{labels}, grid, s);
  ASSERT_EQ(apart.terms.size(), 1u);
  EXPECT_EQ(apart.terms[0].second.item<double>(), 0.0);
  // Overlapping (distance 0.6): energy, larger the deeper, and forces that separate them.
  auto in = two_spheres(0.6, device);
  const auto overlap = compute_losses(in, LossTargets{labels}, grid, s);
  const double e06 = overlap.total.item<double>();
  EXPECT_GT(e06, 0.0);
  EXPECT_GT(compute_losses(two_spheres(0.3, device), LossTargets{labels}, grid, s).total.item<double>(), e06);
  overlap.total.backward();
  const auto g = in.parts.center.grad().cpu();
  // Gradient descent moves part 0 to -x and part 1 to +x, with equal and opposite forces.
  EXPECT_GT(g[0][0][0].item<double>(), 0.0);
  EXPECT_LT(g[0][1][0].item<double>(), 0.0);
  EXPECT_NEAR(g[0][0][0].item<double>(), -g[0][1][0].item<double>(), 1e-9);
  EXPECT_LT(std::abs(g[0][0][1].item<double>()), 0.2 * std::abs(g[0][0][0].item<double>()));  // mostly along x
  // Switched off: no term.
  s.collisions = false;
  EXPECT_TRUE(compute_losses(two_spheres(0.6, device), LossTargets{labels}, grid, s).terms.empty());
}

// Two clusters on a 32 x 32 grid, squares the size of the spheres left and right of the centre
// (the spheres project to discs of radius 0.25): cluster 1 x in [-0.56, 0], cluster 2 x in
// [0, 0.56], |y| < 0.25 (normalised coordinates).
constexpr int64_t kClusterGrid = 32;
at::Tensor two_cluster_labels(c10::Device device) {
  auto labels = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
  labels.narrow(1, 12, 8).narrow(2, 7, 9).fill_(1);
  labels.narrow(1, 12, 8).narrow(2, 16, 9).fill_(2);
  return labels.to(device);
}

// The settings of the per-part scenes: the cluster grid, only the given per-part term on.
LossSettings only_per_part(double LossSettings::*term) {
  auto s = small_settings();
  s.render_size = kClusterGrid;
  s.silhouette = s.parts = s.attraction = s.collision = 0.0;
  s.*term = 1.0;
  return s;
}

// The two spheres with part 1 1.2 to the left of part 0, both moved by `shift` along x, and
// the given (2, 2) ownership.
LossInputs spheres_over_clusters(double shift, const at::Tensor& ownership, c10::Device device) {
  auto in = two_spheres(-1.2, device);
  at::NoGradGuard no_grad;
  in.parts.center.select(2, 0).add_(shift);
  in.distribution = at::full({2, 2}, 0.5, ownership.options());
  in.ownership = ownership;
  return in;
}

// Per-part forces follow ownership: two clusters (squares the size of the spheres, left and
// right of the centre), two spheres each placed on the cluster the other owns. Each part's force moves it toward its
// own cluster; swapping the ownership reverses both forces; the union silhouette alone (which does not know which part
// is which) gives no such push.
TEST_P(LossesDevices, PerPartForcesMoveEachPartTowardItsOwnCluster) {
  const auto device = GetParam();
  const int64_t r = kClusterGrid;
  const auto labels = two_cluster_labels(device);
  const auto grid = core::make_surface_grid(8, 12);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  const auto part0_owns_1 = at::tensor({1.0, 0.0, 0.0, 1.0}, opts).view({2, 2});
  const auto part0_owns_2 = at::tensor({0.0, 1.0, 1.0, 0.0}, opts).view({2, 2});
  // Part 0 at +0.6 (on cluster 2), part 1 at -0.6 (on cluster 1).
  auto scene = [&](const at::Tensor& ownership) { return spheres_over_clusters(0.6, ownership, device); };
  for (const char* term : {"part_attraction", "part_silhouette"}) {
    auto s = only_per_part(std::string(term) == "part_attraction" ? &LossSettings::part_attraction
                                                                  : &LossSettings::part_silhouette);
    auto in = scene(part0_owns_1);
    const auto wrong = compute_losses(in, LossTargets{labels}, grid, s);
    ASSERT_EQ(wrong.terms.size(), 1u) << term;
    EXPECT_EQ(wrong.terms[0].first, term);
    wrong.total.backward();
    const auto g = in.parts.center.grad().cpu();
    // Gradient descent moves part 0 to -x (toward cluster 1) and part 1 to +x.
    EXPECT_GT(g[0][0][0].item<double>(), 0.0) << term;
    EXPECT_LT(g[0][1][0].item<double>(), 0.0) << term;
    // The same scene with the ownership swapped: each part is on its own cluster and the energy
    // is far lower. The attraction's forces are then far weaker (near equilibrium); the
    // silhouette's are not compared (at the soft rasteriser's narrow band the outline forces of
    // a part on its own cluster are stronger than those of one on a distant cluster: its reach
    // is the attraction's job).
    auto in2 = scene(part0_owns_2);
    const auto right = compute_losses(in2, LossTargets{labels}, grid, s);
    EXPECT_LT(right.total.item<double>(), 0.5 * wrong.total.item<double>()) << term;
    right.total.backward();
    const auto g2 = in2.parts.center.grad().cpu();
    if (std::string(term) == "part_attraction") {
      EXPECT_LT(std::abs(g2[0][0][0].item<double>()), 0.5 * std::abs(g[0][0][0].item<double>())) << term;
      EXPECT_LT(std::abs(g2[0][1][0].item<double>()), 0.5 * std::abs(g[0][1][0].item<double>())) << term;
    }
  }
  // The union silhouette does not tell the parts apart: the mirror-symmetric scene gets mirror
  // forces whatever the ownership.
  auto s = small_settings();
  s.render_size = r;
  s.parts = s.attraction = s.collision = 0.0;
  auto in = scene(part0_owns_1);
  compute_losses(in, LossTargets{labels}, grid, s).total.backward();
  const auto g = in.parts.center.grad().cpu();
  EXPECT_NEAR(g[0][0][0].item<double>(), -g[0][1][0].item<double>(), 1e-9);
}

// The part image laid over the background by the union silhouette (loss.parts_composite)
// pushes at the outline: one sphere (the other off the image) over a square of its cluster
// smaller than its disc is shrunk by the part term, and over a larger square grown. Without
// the composite, a lone part shows its cluster across its whole soft band and the background's
// weight underflows there, so the same term gives it no force at all.
TEST_P(LossesDevices, TheCompositePartImagePushesAtTheOutline) {
  const auto device = GetParam();
  const auto grid = core::make_surface_grid(8, 12);
  auto s = small_settings();
  s.render_size = kClusterGrid;
  s.silhouette = s.attraction = s.collision = 0.0;
  s.parts = 1.0;
  // A centred square of cluster 1, half-width n pixels (the disc's radius is 0.25, 4 pixels).
  auto square = [&](int64_t n) {
    auto labels = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
    labels.narrow(1, kClusterGrid / 2 - n, 2 * n).narrow(2, kClusterGrid / 2 - n, 2 * n).fill_(1);
    return labels.to(device);
  };
  // d(energy)/d(size of part 0).
  auto size_force = [&](const at::Tensor& labels, bool composite) {
    auto settings = s;
    settings.parts_composite = composite;
    auto in = two_spheres(-3.0, device);  // part 1 projects to x = -1.5, off the image
    const auto out = compute_losses(in, LossTargets{labels}, grid, settings);
    EXPECT_EQ(out.terms.size(), 1u);
    out.total.backward();
    return in.parts.shape.grad().cpu()[0][0][0].item<double>();
  };
  const auto small = square(2), large = square(7);
  const double g_small = size_force(small, true), g_large = size_force(large, true);
  EXPECT_GT(g_small, 0.0);  // descent shrinks the part onto the small square
  EXPECT_LT(g_large, 0.0);  // and grows it over the large one
  const double g_small_blend = size_force(small, false), g_large_blend = size_force(large, false);
  EXPECT_LT(std::abs(g_small_blend), 1e-9 * std::abs(g_small));
  EXPECT_LT(std::abs(g_large_blend), 1e-9 * std::abs(g_large));
}

// loss.parts_balance weighs the part image's error at each cluster's pixels by the cluster's
// area: two overlapping spheres, part 0 owning cluster 1 and part 1 cluster 2, inside a
// 460-pixel square of cluster 2 that holds both discs; cluster 1 is a 9-pixel square in a
// corner no part reaches. Every force of the part image then comes from cluster 2's pixels
// (where the two parts meet), so with the balance each force is the unbalanced one times
// cluster 2's weight, 460^-b scaled so that the 469 foreground pixels keep their total:
// 469 / (460^(1-b) + 9^(1-b)) 460^-b, about 0.51 at b = 1; the energy is cluster 1's misses
// times its weight (26 at b = 1) plus the rest times cluster 2's. With both parts off the image
// every foreground pixel shows the background (error 2), and the energy is the same at any b.
TEST_P(LossesDevices, PartsBalanceWeighsEachClustersPixelsByItsArea) {
  const auto device = GetParam();
  auto labels = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
  labels.narrow(1, 6, 20).narrow(2, 5, 23).fill_(2);  // 460 pixels around both discs
  labels.narrow(1, 0, 3).narrow(2, 0, 3).fill_(1);    // 9 pixels in a corner
  labels = labels.to(device);
  const auto grid = core::make_surface_grid(8, 12);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  auto s = small_settings();
  s.render_size = kClusterGrid;
  s.silhouette = s.attraction = s.collision = 0.0;
  s.parts = 1.0;
  auto run = [&](double balance, double shift) {
    s.parts_balance = balance;
    auto in = two_spheres(0.3, device);
    {
      at::NoGradGuard no_grad;
      in.parts.center.select(2, 0).add_(shift);
    }
    in.distribution = at::full({2, 2}, 0.5, opts);
    in.ownership = at::eye(2, opts);
    const auto out = compute_losses(in, LossTargets{labels}, grid, s);
    EXPECT_EQ(out.terms.size(), 1u);
    out.total.backward();
    return std::pair{out.total.item<double>(),
                     at::cat({in.parts.center.grad().flatten(), in.parts.shape.grad().flatten()}).cpu()};
  };
  const auto [e_flat, g_flat] = run(0.0, 0.0);
  ASSERT_GT(g_flat.abs().max().item<double>(), 1e-6);  // the parts meet: the term has forces
  for (const double b : {0.5, 1.0}) {
    const double scale = 469.0 / (std::pow(460.0, 1.0 - b) + std::pow(9.0, 1.0 - b));
    const double w1 = scale * std::pow(9.0, -b), w2 = scale * std::pow(460.0, -b);
    const auto [e_b, g_b] = run(b, 0.0);
    EXPECT_LT((g_b - w2 * g_flat).abs().max().item<double>(), 1e-9 * g_flat.abs().max().item<double>()) << b;
    // The energy: cluster 1's 9 uncovered pixels (error 2 each) weighted by w1, the rest (all on
    // cluster 2: the background pixels show the background) by w2.
    const double e1 = 2.0 * 9.0 / (kClusterGrid * kClusterGrid);
    EXPECT_NEAR(e_b, w1 * e1 + w2 * (e_flat - e1), 1e-9) << b;
  }
  const double off = 2.0 * 469.0 / (kClusterGrid * kClusterGrid);
  EXPECT_NEAR(run(0.0, -4.0).first, off, 1e-9);
  EXPECT_NEAR(run(1.0, -4.0).first, off, 1e-9);
}

// A part that owns two clusters stands for their union: one sphere over the seam of two
// clusters is pushed off the cluster it does not own, and not pushed when it owns both.
TEST_P(LossesDevices, APartOwningTwoClustersIsNotPushedOffEither) {
  const auto device = GetParam();
  const auto labels = two_cluster_labels(device);
  const auto grid = core::make_surface_grid(8, 12);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  auto s = only_per_part(&LossSettings::part_silhouette);
  // Part 0 at x = +0.1 (mostly on cluster 2, reaching into cluster 1), part 1 far off at -1.1,
  // owning nothing.
  auto energy_and_force = [&](const at::Tensor& ownership) {
    auto in = spheres_over_clusters(0.1, ownership, device);
    const auto out = compute_losses(in, LossTargets{labels}, grid, s);
    out.total.backward();
    return std::pair{out.total.item<double>(), in.parts.center.grad().cpu()[0][0][0].item<double>()};
  };
  const auto [e_one, g_one] = energy_and_force(at::tensor({0.0, 1.0, 0.0, 0.0}, opts).view({2, 2}));
  const auto [e_both, g_both] = energy_and_force(at::tensor({1.0, 1.0, 0.0, 0.0}, opts).view({2, 2}));
  // Owning cluster 2 only: descent moves it to +x, off cluster 1.
  EXPECT_LT(g_one, 0.0);
  // Owning both: its pixels on cluster 1 are its own; the energy is lower and the push to +x
  // is gone (what is left pulls it toward the middle of the two clusters, -x).
  EXPECT_LT(e_both, e_one);
  EXPECT_GT(g_both, 0.0);
}

// The per-part attraction's nearest distances over the owned pairs of the shared table equal
// those over every pair with the table per image, and a brute-force loop; their gradients too.
// Part 0 owns clusters 0 and 1, part 1 owns 1, part 2 nothing, part 3 owns 0; no part owns
// cluster 2; image 1 lacks cluster 1.
TEST_P(LossesDevices, OwnedPairsGiveTheDistancesOfEveryPair) {
  const auto device = GetParam();
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  at::manual_seed(5);
  const int64_t B = 2, K = 4, P = 5, C = 3, n = 6;
  const auto pts0 = at::rand({B, K, P, 2}, opts);
  const auto pix0 = at::rand({B, C, n, 2}, opts);
  const auto own = at::tensor({1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0}, opts).view({K, C});
  const auto valid = at::tensor({1.0, 1.0, 1.0, 1.0, 0.0, 1.0}, opts).view({B, C});
  const double big = 1e6;
  auto run = [&](const at::Tensor& table) {
    auto pts = pts0.clone().requires_grad_();
    auto pix = pix0.clone().requires_grad_();
    const auto d = owned_nearest_distances(pts, pix, table, valid, big);
    const auto w1 = at::linspace(0.5, 1.5, P, opts), w2 = at::linspace(1.0, 2.0, n, opts);
    const auto grads =
        torch::autograd::grad({(at::where(d.to_pixels < big, d.to_pixels, at::zeros({}, opts)) * w1).sum() +
                               (at::where(d.to_points < big, d.to_points, at::zeros({}, opts)) * w2).sum()},
                              {pts, pix});
    return std::tuple{d.to_pixels.detach().cpu(), d.to_points.detach().cpu(), grads[0].cpu(), grads[1].cpu()};
  };
  const auto [pairs_pt, pairs_px, pairs_gpt, pairs_gpix] = run(own);
  const auto [every_pt, every_px, every_gpt, every_gpix] = run(own.unsqueeze(0).expand({B, K, C}));
  EXPECT_EQ(testing::max_abs_diff(pairs_pt, every_pt), 0.0);
  EXPECT_EQ(testing::max_abs_diff(pairs_px, every_px), 0.0);
  EXPECT_LT(testing::max_abs_diff(pairs_gpt, every_gpt), 1e-12);
  EXPECT_LT(testing::max_abs_diff(pairs_gpix, every_gpix), 1e-12);
  EXPECT_GT(pairs_gpt.abs().max().item<double>(), 0.1);
  // Brute force.
  const auto pt = pts0.cpu(), px = pix0.cpu(), o = own.cpu(), ok = valid.cpu();
  auto d2 = [&](int64_t b, int64_t k, int64_t p, int64_t c, int64_t j) {
    return (pt[b][k][p] - px[b][c][j]).pow(2).sum().item<double>();
  };
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p) {
        double best = big;
        for (int64_t c = 0; c < C; ++c)
          if (o[k][c].item<double>() > 0.5 && ok[b][c].item<double>() > 0.5)
            for (int64_t j = 0; j < n; ++j) best = std::min(best, d2(b, k, p, c, j));
        EXPECT_DOUBLE_EQ(pairs_pt[b][k][p].item<double>(), best) << b << " " << k << " " << p;
      }
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < n; ++j) {
        double best = big;
        for (int64_t k = 0; k < K; ++k)
          if (o[k][c].item<double>() > 0.5)
            for (int64_t p = 0; p < P; ++p) best = std::min(best, d2(b, k, p, c, j));
        EXPECT_DOUBLE_EQ(pairs_px[b][c][j].item<double>(), best) << b << " " << c << " " << j;
      }
  }
  EXPECT_EQ(pairs_pt[0][2][0].item<double>(), big);  // part 2 owns nothing
  EXPECT_EQ(pairs_px[1][2][0].item<double>(), big);  // cluster 2 has no owner
  // No owned pair at all: every distance is big.
  const auto none = owned_nearest_distances(pts0, pix0, at::zeros({K, C}, opts), valid, big);
  EXPECT_EQ(none.to_pixels.min().item<double>(), big);
  EXPECT_EQ(none.to_points.min().item<double>(), big);
}

// loss.part_pull weighs the per-part attraction's points-to-pixels half: a sphere over a thin
// strip of its own cluster (the noisy leg clusters) has its outline's points drawn onto the
// strip, a force that shrinks it; the cover half (the strip's pixels to the nearest point)
// hardly cares about the sphere's size. The energy is linear in the weight.
TEST_P(LossesDevices, ThePullWeightScalesTheForceThatThinsAPartOverAThinCluster) {
  const auto device = GetParam();
  auto strip = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
  strip.narrow(1, 12, 8).narrow(2, 15, 2).fill_(1);  // x in [-0.06, 0.06], |y| < 0.25
  const auto grid = core::make_surface_grid(8, 12);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  auto s = only_per_part(&LossSettings::part_attraction);
  // Part 0 over the strip (its disc has radius 0.25), owning it; part 1 far off, owning nothing.
  auto energy_and_size_force = [&](double pull) {
    s.part_pull = pull;
    auto in = spheres_over_clusters(0.0, at::tensor({1.0, 0.0}, opts).view({2, 1}), device);
    const auto out = compute_losses(in, LossTargets{strip.to(device)}, grid, s);
    out.total.backward();
    return std::pair{out.total.item<double>(), in.parts.shape.grad().cpu()[0][0][0].item<double>()};
  };
  const auto [e1, g1] = energy_and_size_force(1.0);
  const auto [e0, g0] = energy_and_size_force(0.0);
  const auto [eh, gh] = energy_and_size_force(0.5);
  // With the pull, descent shrinks the sphere; without it, the push on its size is far weaker.
  EXPECT_GT(g1, 0.0);
  EXPECT_LT(std::abs(g0), 0.25 * g1);
  EXPECT_GT(e1, e0);
  EXPECT_NEAR(eh, 0.5 * (e1 + e0), 1e-12);
  EXPECT_NEAR(gh, 0.5 * (g1 + g0), 1e-12);
}

// loss.part_coverage_balance reweighs the coverage half by cluster: a 72-pixel cluster under
// part 0 and a 16-pixel cluster half under part 1, each part owning one, containment off.
// Each part's force comes from its own cluster's misses alone, so with the balance it is
// exactly the unbalanced force times its cluster's weight, area^-balance scaled so that the
// weights average 1 over the 88 owned pixels: at balance 1, 88 / (2 x 72) and 88 / (2 x 16),
// the small cluster's part pushed 4.5 times harder than before against the large one's.
TEST_P(LossesDevices, CoverageBalanceWeighsEachClustersMissesByItsArea) {
  const auto device = GetParam();
  auto labels = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
  labels.narrow(1, 12, 8).narrow(2, 18, 9).fill_(1);  // 72 pixels, x in [0.125, 0.6875]
  labels.narrow(1, 14, 4).narrow(2, 8, 4).fill_(2);   // 16 pixels, x in [-0.5, -0.25]
  const auto grid = core::make_surface_grid(8, 12);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  auto s = only_per_part(&LossSettings::part_silhouette);
  s.part_normalize = false;
  s.part_containment = 0.0;
  // Part 0 at image x = 0.4 over cluster 1, part 1 at -0.2 reaching half over cluster 2.
  auto energy_and_forces = [&](double balance) {
    s.part_coverage_balance = balance;
    auto in = spheres_over_clusters(0.8, at::eye(2, opts), device);
    const auto out = compute_losses(in, LossTargets{labels.to(device)}, grid, s);
    out.total.backward();
    const auto g = in.parts.center.grad().cpu();
    return std::array<double, 3>{out.total.item<double>(), g[0][0][0].item<double>(), g[0][1][0].item<double>()};
  };
  const auto flat = energy_and_forces(0.0);
  ASSERT_GT(std::abs(flat[1]), 1e-8);
  ASSERT_GT(std::abs(flat[2]), 1e-8);
  EXPECT_GT(flat[2], 0.0);  // descent moves part 1 to -x, over the rest of its cluster
  for (const double balance : {0.5, 1.0}) {
    const double raw_large = std::pow(72.0, -balance), raw_small = std::pow(16.0, -balance);
    const double scale = 88.0 / (72.0 * raw_large + 16.0 * raw_small);
    const auto balanced = energy_and_forces(balance);
    EXPECT_NEAR(balanced[1], scale * raw_large * flat[1], 1e-9 * std::abs(flat[1])) << balance;
    EXPECT_NEAR(balanced[2], scale * raw_small * flat[2], 1e-9 * std::abs(flat[2])) << balance;
  }
  const auto full = energy_and_forces(1.0);
  EXPECT_NEAR((full[2] / flat[2]) / (full[1] / flat[1]), 4.5, 1e-9);
  // Misses everywhere (no part near either cluster) cost the same with any balance.
  auto far = [&](double balance) {
    s.part_coverage_balance = balance;
    auto in = spheres_over_clusters(-3.0, at::eye(2, opts), device);
    return compute_losses(in, LossTargets{labels.to(device)}, grid, s).total.item<double>();
  };
  EXPECT_NEAR(far(1.0), far(0.0), 1e-12);
  EXPECT_NEAR(far(0.0), 88.0 / (kClusterGrid * kClusterGrid), 1e-6);
}

// The rim (loss.rim_share): two clusters under their own parts, and a third, a one-pixel ring
// around both (the outline's mixed cells), that no part owns. At rim_target 0 every term is
// exactly that of the same labels with the ring as background; at 0.5 the silhouette's target
// is 0.5 on the ring; the part image and the containment weigh the ring by 1 - rim_target,
// linearly. With rim_share 0 the ring is a cluster like any other.
TEST_P(LossesDevices, TheRimIsForegroundByRimTargetAndBackgroundOtherwise) {
  const auto device = GetParam();
  auto labels = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
  labels.narrow(1, 11, 10).narrow(2, 6, 20).fill_(3);  // the ring: rows 11 and 20, columns 6 and 25
  labels.narrow(1, 12, 8).narrow(2, 7, 9).fill_(1);
  labels.narrow(1, 12, 8).narrow(2, 16, 9).fill_(2);
  labels = labels.to(device);
  const auto ring = labels.eq(3);
  ASSERT_EQ(ring.sum().item<int64_t>(), 2 * 20 + 2 * 8);
  const auto no_ring = labels.masked_fill(ring, 0);
  const auto grid = core::make_surface_grid(8, 12);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  // Part 0 owns cluster 2 (it sits on it), part 1 cluster 1; nobody owns the ring.
  const auto ownership = at::tensor({0.0, 1.0, 0.0, 1.0, 0.0, 0.0}, opts).view({2, 3});
  auto s = small_settings();
  s.render_size = kClusterGrid;
  s.collision = 0.0;
  s.part_silhouette = s.part_attraction = 1.0;
  s.part_normalize = false;
  s.part_containment = 0.3;
  struct Result {
    std::map<std::string, double> terms;
    at::Tensor force, silhouette;
  };
  auto run = [&](const at::Tensor& l, double share, double target) {
    s.rim_share = share;
    s.rim_target = target;
    auto in = spheres_over_clusters(0.5, ownership, device);
    in.distribution = at::full({2, 3}, 1.0 / 3.0, opts);
    const auto out = compute_losses(in, LossTargets{l}, grid, s);
    out.total.backward();
    Result r;
    for (const auto& [name, value] : out.terms) r.terms[name] = value.item<double>();
    r.force = in.parts.center.grad().cpu();
    r.silhouette = out.silhouette.detach();
    return r;
  };
  const auto rim0 = run(labels, 0.5, 0.0), background = run(no_ring, 0.0, 0.5), plain = run(labels, 0.0, 0.5);
  ASSERT_EQ(rim0.terms.size(), 5u);
  for (const auto& [name, value] : background.terms) {
    EXPECT_NEAR(rim0.terms.at(name), value, 1e-12 * std::max(1.0, std::abs(value))) << name;
    // Without the rim the ring changes the union's terms; the per-part terms already read an
    // unowned cluster's pixels as not their own (stray, nothing to cover or pull toward).
    if (name == "silhouette" || name == "parts" || name == "attraction") {
      EXPECT_GT(std::abs(plain.terms.at(name) - value), 1e-6) << name;
    }
  }
  EXPECT_TRUE(at::allclose(rim0.force, background.force, 1e-9, 1e-12));
  // At 0.5 the silhouette's target is 1 on the clusters, 0.5 on the ring, 0 elsewhere.
  const auto half = run(labels, 0.5, 0.5), full = run(labels, 0.5, 1.0);
  const auto target = no_ring.gt(0).to(at::kDouble) + 0.5 * ring.to(at::kDouble);
  EXPECT_NEAR(half.terms.at("silhouette"), (half.silhouette - target).pow(2).mean().item<double>(), 1e-12);
  // At 1 the ring is foreground to the silhouette, as without the rim.
  EXPECT_NEAR(full.terms.at("silhouette"), plain.terms.at("silhouette"), 1e-12);
  // The part image and the containment weigh the ring by 1 - rim_target: linear in it.
  for (const char* name : {"parts", "part_silhouette"})
    EXPECT_NEAR(half.terms.at(name), 0.5 * (rim0.terms.at(name) + full.terms.at(name)), 1e-12) << name;
  for (const char* name : {"parts", "part_silhouette"})
    EXPECT_LT(full.terms.at(name), rim0.terms.at(name) - 1e-6) << name;
}

// Split shared clusters (loss.split_shared): one cluster in two pieces (the legs of one leg
// cluster), both parts own it and both sit on its left piece; the right piece is uncovered.
// Shared, the parts stand for the union, and the one nearer the right piece (part 1) is only
// drawn there by the right piece's pixels looking for the nearest point of any owner. Split,
// part 1 is given the right piece (the least summed distance) and all of its points are drawn
// there: a push to +x several times stronger. The split scene's forces are exactly those of
// the same pixels labelled as two clusters, part 0 owning the left one and part 1 the right.
TEST_P(LossesDevices, SplitSharedClustersGiveEachPieceItsNearestOwner) {
  const auto device = GetParam();
  auto pieces = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
  pieces.narrow(1, 12, 8).narrow(2, 6, 6).fill_(1);   // x in [-0.59, -0.28]
  pieces.narrow(1, 12, 8).narrow(2, 20, 6).fill_(2);  // x in [0.28, 0.59]
  const auto grid = core::make_surface_grid(8, 12);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  auto s = only_per_part(&LossSettings::part_silhouette);
  s.part_attraction = 1.0;
  // Part 0 at image x = -0.44 (the left piece's middle), part 1 at -0.35 (world x halves).
  auto force = [&](const at::Tensor& labels, const at::Tensor& ownership, bool split) {
    auto in = two_spheres(0.18, device);
    {
      at::NoGradGuard no_grad;
      in.parts.center.select(2, 0).add_(-0.88);
    }
    in.distribution = at::full({2, ownership.size(1)}, 1.0, opts);
    in.ownership = ownership.to(opts);
    s.split_shared = split;
    compute_losses(in, LossTargets{labels.to(device)}, grid, s).total.backward();
    return in.parts.center.grad().cpu();
  };
  const auto one_cluster = (pieces > 0).to(at::kLong);
  const auto both_own = at::ones({2, 1}, at::kDouble);
  const auto shared = force(one_cluster, both_own, false), split = force(one_cluster, both_own, true);
  const double shared1 = shared[0][1][0].item<double>(), split1 = split[0][1][0].item<double>();
  // Descent moves part 1 to +x, toward the right piece, in both; split, several times harder.
  EXPECT_LT(shared1, 0.0);
  EXPECT_LT(split1, 3.0 * shared1);
  // Split equals two clusters with one owner each.
  const auto separate = force(pieces, at::eye(2, at::kDouble), false);
  EXPECT_LT(testing::max_abs_diff(split, separate), 1e-12);
  // A cluster in one piece is not split: the same forces as shared.
  auto one_piece = at::zeros({1, kClusterGrid, kClusterGrid}, at::kLong);
  one_piece.narrow(1, 12, 8).narrow(2, 6, 20).fill_(1);
  EXPECT_LT(testing::max_abs_diff(force(one_piece, both_own, true), force(one_piece, both_own, false)), 1e-12);
}

// The pull toward the shared layout: nothing for the layout moved as a whole; for one part
// moved away, the analytic gradient of the mean squared offset, which moves that part back
// and the others (through the mean over parts) the other way.
TEST_P(LossesDevices, TheLayoutTermPullsPartsBackToTheSharedLayout) {
  const auto device = GetParam();
  const auto grid = core::make_surface_grid(8, 12);
  auto s = small_settings();
  s.silhouette = s.parts = s.attraction = s.collision = 0.0;
  s.layout = 2.0;
  const auto layout = at::tensor({0.0, 0.0, 0.0, 0.18, 0.0, 0.0}, at::kDouble).view({2, 3});
  auto layout_force = [&](double dx, double dy, double dz) {
    auto in = two_spheres(0.18, device);
    {
      at::NoGradGuard no_grad;
      in.parts.center.add_(at::tensor({dx, dy, dz}, in.parts.center.options()));  // both parts
      in.parts.center[0][1][1].add_(0.1);                                         // part 1 off by 0.1 in y
    }
    in.layout = layout;
    const auto terms = compute_losses(in, LossTargets{at::zeros({1, 16, 16}, at::kLong).to(device)}, grid, s);
    terms.total.backward();
    return std::make_pair(terms.total.item<double>(), in.parts.center.grad().cpu());
  };
  // Offsets after removing the means: part 0 (0, -0.05, 0), part 1 (0, 0.05, 0); the energy
  // is w mean_k |offset_k|^2 = 2 * 0.0025 and its gradient w offset_k (the mean's share
  // cancels, the offsets summing to zero).
  for (const auto& shift : {std::array<double, 3>{0, 0, 0}, std::array<double, 3>{0.3, -0.2, 1.0}}) {
    const auto [energy, grad] = layout_force(shift[0], shift[1], shift[2]);
    EXPECT_NEAR(energy, 2.0 * 0.0025, 1e-12);
    const auto expected = at::tensor({0.0, -0.1, 0.0, 0.0, 0.1, 0.0}, at::kDouble).view({1, 2, 3});
    EXPECT_LT(testing::max_abs_diff(grad, expected), 1e-12);
  }
  // Without a layout (a run with no search yet) the term is absent.
  auto in = two_spheres(0.18, device);
  const auto terms = compute_losses(in, LossTargets{at::zeros({1, 16, 16}, at::kLong).to(device)}, grid, s);
  for (const auto& [name, value] : terms.terms) EXPECT_NE(name, "layout");
}

TEST_P(LossesDevices, ShapeConsistencyPullsEachPartTowardTheCategoryShape) {
  const auto device = GetParam();
  const auto grid = core::make_surface_grid(8, 12);
  auto s = small_settings();
  s.silhouette = s.parts = s.attraction = s.collision = 0.0;
  s.shape_consistency = 3.0;
  const auto labels = at::zeros({2, 16, 16}, at::kLong).to(device);
  // Two images of two spheres: the second is the first at twice the size, and its part 1 is
  // e^0.2 longer along x. Log semi-axes less their image mean: image 0 all 0; image 1 -1/30 on
  // five entries and 1/6 on part 1's x. The target (the batch mean) is half of image 1's, so
  // each image is off by half of it: energy w mean (rel_1 / 2)^2 = w / 720; the gradient on
  // image 1's part-1 a1 is w / 72 / a1 (the image mean's share cancels), image 0's -w / 72.
  auto scene = [&](double stretch) {
    auto a = two_spheres(0.18, device), b = two_spheres(0.18, device);
    LossInputs in = a;
    auto shape = at::cat({a.parts.shape.detach(), b.parts.shape.detach()}, 0);
    shape.select(2, core::kA0).select(0, 1).mul_(2.0);
    shape[1][1][core::kA1].mul_(stretch);
    in.parts.shape = shape.requires_grad_();
    in.parts.center = at::cat({a.parts.center.detach(), b.parts.center.detach()}, 0);
    in.parts.rotation = at::cat({a.parts.rotation.detach(), b.parts.rotation.detach()}, 0);
    in.camera.rotation = at::cat({a.camera.rotation, b.camera.rotation}, 0);
    in.camera.translation = at::cat({a.camera.translation, b.camera.translation}, 0);
    return in;
  };
  const double w = s.shape_consistency, stretch = std::exp(0.2);
  auto in = scene(stretch);
  const auto terms = compute_losses(in, LossTargets{labels}, grid, s);
  ASSERT_EQ(terms.terms.size(), 1u);
  EXPECT_EQ(terms.terms[0].first, "shape_consistency");
  EXPECT_NEAR(terms.total.item<double>(), w / 720.0, 1e-12);
  terms.total.backward();
  const auto g = in.parts.shape.grad().cpu();
  EXPECT_NEAR(g[1][1][core::kA1].item<double>(), w / 72.0 / stretch, 1e-12);
  EXPECT_NEAR(g[0][1][core::kA1].item<double>(), -w / 72.0, 1e-12);
  // The same shapes at another size feel nothing: only sizes and proportions are pulled.
  auto same = scene(1.0);
  const auto none = compute_losses(same, LossTargets{labels}, grid, s);
  none.total.backward();
  EXPECT_LT(none.total.item<double>(), 1e-24);
  EXPECT_LT(same.parts.shape.grad().abs().max().item<double>(), 1e-12);
  // A given category shape (image 0's) leaves image 0 alone and pulls image 1 the whole way:
  // energy w mean_i mean (rel_i - 0)^2 / 2 images = w / 360, gradient on image 1 w / 36 / a1.
  auto given = scene(stretch);
  given.shape_mean = at::zeros({2, 3}, at::kDouble);
  const auto pulled = compute_losses(given, LossTargets{labels}, grid, s);
  EXPECT_NEAR(pulled.total.item<double>(), w / 360.0, 1e-12);
  pulled.total.backward();
  const auto h = given.parts.shape.grad().cpu();
  EXPECT_NEAR(h[1][1][core::kA1].item<double>(), w / 36.0 / stretch, 1e-12);
  EXPECT_LT(h[0].abs().max().item<double>(), 1e-12);
}

// The distance-consistency energy written out with loops, for the test below: images of K
// centres, each image's distances over its mean over the K x K pairs (diagonal included as
// 0), against the batch mean of those, w mean over images, pairs of the squared difference.
double distance_energy(const std::vector<std::vector<std::array<double, 3>>>& c, double w) {
  const size_t b = c.size(), k = c[0].size();
  std::vector<std::vector<double>> rel(b, std::vector<double>(k * k, 0.0));
  for (size_t i = 0; i < b; ++i) {
    double mean = 0;
    for (size_t p = 0; p < k; ++p)
      for (size_t q = 0; q < k; ++q) {
        double d2 = 0;
        for (int a = 0; a < 3; ++a) d2 += (c[i][p][a] - c[i][q][a]) * (c[i][p][a] - c[i][q][a]);
        rel[i][p * k + q] = p == q ? 0.0 : std::sqrt(d2);
        mean += rel[i][p * k + q] / static_cast<double>(k * k);
      }
    for (auto& v : rel[i]) v /= mean;
  }
  double e = 0;
  for (size_t j = 0; j < k * k; ++j) {
    double m = 0;
    for (size_t i = 0; i < b; ++i) m += rel[i][j] / static_cast<double>(b);
    for (size_t i = 0; i < b; ++i) e += (rel[i][j] - m) * (rel[i][j] - m) / static_cast<double>(b * k * k);
  }
  return w * e;
}

TEST_P(LossesDevices, DistanceConsistencyPullsTheArrangementTowardTheCategorys) {
  const auto device = GetParam();
  const auto grid = core::make_surface_grid(8, 12);
  auto s = small_settings();
  s.silhouette = s.parts = s.attraction = s.collision = 0.0;
  s.distance_consistency = 2.0;
  const auto labels = at::zeros({2, 16, 16}, at::kLong).to(device);
  // Three parts; image 1 is image 0 turned a quarter about y, mirrored in x and at 1.5 times
  // the size: the same arrangement, so no energy and no force.
  std::vector<std::vector<std::array<double, 3>>> c = {{{0.0, 0.0, 0.0}, {0.4, 0.1, 0.0}, {-0.2, 0.3, 0.1}}, {}};
  for (const auto& p : c[0]) c[1].push_back({1.5 * p[2], 1.5 * p[1], 1.5 * p[0]});
  auto inputs = [&](const std::vector<std::vector<std::array<double, 3>>>& centres) {
    LossInputs in = two_spheres(0.18, device);
    std::vector<double> flat;
    for (const auto& image : centres)
      for (const auto& p : image) flat.insert(flat.end(), p.begin(), p.end());
    const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
    in.parts.center = at::tensor(flat, at::kDouble).view({2, 3, 3}).to(device).requires_grad_();
    in.parts.rotation = at::zeros({2, 3, 4}, opts);
    in.parts.rotation.select(2, 0).fill_(1.0);
    in.parts.shape = in.parts.shape.detach().narrow(1, 0, 1).expand({2, 3, 11}).contiguous();
    in.camera.rotation = in.camera.rotation.expand({2, 4}).contiguous();
    in.camera.translation = in.camera.translation.expand({2, 3}).contiguous();
    return in;
  };
  auto same = inputs(c);
  const auto none = compute_losses(same, LossTargets{labels}, grid, s);
  ASSERT_EQ(none.terms.size(), 1u);
  EXPECT_EQ(none.terms[0].first, "distance_consistency");
  none.total.backward();
  EXPECT_LT(none.total.item<double>(), 1e-20);
  EXPECT_LT(same.parts.center.grad().abs().max().item<double>(), 1e-9);
  // Squash image 1 in depth (its z, image 0's x, to a third): the energy equals the loops',
  // and its gradient their central differences.
  for (auto& p : c[1]) p[2] /= 3.0;
  auto in = inputs(c);
  const auto terms = compute_losses(in, LossTargets{labels}, grid, s);
  const double e = terms.total.item<double>();
  EXPECT_GT(e, 1e-3);
  EXPECT_NEAR(e, distance_energy(c, s.distance_consistency), 1e-12);
  terms.total.backward();
  const auto g = in.parts.center.grad().cpu();
  const double h = 1e-6;
  for (int i = 0; i < 2; ++i)
    for (int p = 0; p < 3; ++p)
      for (int a = 0; a < 3; ++a) {
        auto plus = c, minus = c;
        plus[i][p][a] += h;
        minus[i][p][a] -= h;
        const double fd =
            (distance_energy(plus, s.distance_consistency) - distance_energy(minus, s.distance_consistency)) / (2 * h);
        EXPECT_NEAR(g[i][p][a].item<double>(), fd, 1e-7) << "image " << i << " part " << p << " axis " << a;
      }
  // A step down the gradient spreads image 1's parts along the squashed axis again.
  auto spread = [&](double step) {
    double mean = 0, var = 0;
    for (int p = 0; p < 3; ++p) mean += (c[1][p][2] - step * g[1][p][2].item<double>()) / 3.0;
    for (int p = 0; p < 3; ++p) var += std::pow(c[1][p][2] - step * g[1][p][2].item<double>() - mean, 2);
    return var;
  };
  EXPECT_GT(spread(0.01), spread(0.0));
}

INSTANTIATE_TEST_SUITE_P(Devices, LossesDevices, ::testing::ValuesIn(testing::test_devices()), testing::device_name);

TEST(Metrics, SilhouetteIouOnConstructedMasks) {
  auto pred = at::zeros({2, 4, 4}, at::kByte), ref = at::zeros({2, 4, 4}, at::kByte);
  pred[0].narrow(0, 0, 2).fill_(1);  // 8 pixels
  ref[0].narrow(0, 1, 2).fill_(1);   // 8 pixels, 4 shared: IoU 4 / 12
  // Image 1: both empty counts as 1.
  EXPECT_NEAR(eval::silhouette_iou(pred, ref), (4.0 / 12.0 + 1.0) / 2.0, 1e-12);
  // Per image: image 0 shares 4 of its 8 predicted and 4 of the 8 reference pixels.
  pred[1][0][0] = 1;  // image 1: one false positive, nothing to find
  const auto s = eval::silhouette_scores(pred, ref);
  EXPECT_NEAR(s.iou[0].item<double>(), 4.0 / 12.0, 1e-12);
  EXPECT_NEAR(s.precision[0].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(s.recall[0].item<double>(), 0.5, 1e-12);
  EXPECT_EQ(s.iou[1].item<double>(), 0.0);
  EXPECT_EQ(s.precision[1].item<double>(), 0.0);
  EXPECT_EQ(s.recall[1].item<double>(), 1.0);  // an empty reference is fully recalled
  pred[1][0][0] = 0;
  ref[1][3][3] = 1;  // image 1: one pixel missed, nothing predicted
  const auto t = eval::silhouette_scores(pred, ref);
  EXPECT_EQ(t.precision[1].item<double>(), 1.0);  // nothing predicted, nothing wrong
  EXPECT_EQ(t.recall[1].item<double>(), 0.0);
}

TEST(Metrics, PartIouAssignsPartsToLabelsByOverlap) {
  // Reference labels 1 (left half) and 2 (right half); the prediction uses parts 2 and 0
  // for them (a permutation), plus part 1 also on label 2 (two parts, one label).
  auto ref = at::zeros({1, 4, 4}, at::kLong);
  ref[0].narrow(1, 0, 2).fill_(1);
  ref[0].narrow(1, 2, 2).fill_(2);
  auto pred = at::full({1, 4, 4}, -1, at::kLong);
  pred[0].narrow(1, 0, 2).fill_(2);
  pred[0].narrow(1, 2, 1).fill_(0);
  pred[0].narrow(1, 3, 1).fill_(1);
  auto r = eval::part_iou(pred, ref, 3, 2);
  EXPECT_EQ(r.assignment, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_NEAR(r.mean, 1.0, 1e-12);
  // Shift the prediction by one column: label 1 keeps 4 of 8 (union 12), label 2 ...
  auto shifted = at::full({1, 4, 4}, -1, at::kLong);
  shifted[0].narrow(1, 1, 2).fill_(2);
  shifted[0].narrow(1, 3, 1).fill_(0);
  r = eval::part_iou(shifted, ref, 3, 2);
  // Part 2 covers columns 1-2: 4 pixels of label 1, 4 of label 2 -> tie goes to label 1.
  // Label 1: pred {col 1, 2} vs ref {col 0, 1}: 4 / 12. Label 2: part 0, col 3 vs cols 2-3: 4 / 8.
  EXPECT_NEAR(r.per_label[0], 4.0 / 12.0, 1e-12);
  EXPECT_NEAR(r.per_label[1], 4.0 / 8.0, 1e-12);
  EXPECT_EQ(r.assignment[1], -1);  // part 1 covers nothing
  EXPECT_NEAR(r.mean, (4.0 / 12.0 + 0.5) / 2.0, 1e-12);
  // Column 0 (label 1) is left uncovered: half of label 1; label 2 is fully covered.
  EXPECT_NEAR(r.missed[0], 0.5, 1e-12);
  EXPECT_NEAR(r.missed[1], 0.0, 1e-12);
  ASSERT_EQ(r.per_image.size(), 1u);
  EXPECT_NEAR(r.per_image[0], r.mean, 1e-12);  // one image: its own part IoU is the set's
}

TEST(Metrics, PartIouPerImageUsesTheSetsAssignment) {
  // Image 0: part 0 on label 1 exactly. Image 1: part 0 on label 2 (4 pixels), and label 1
  // uncovered. Pooled, part 0 covers 8 pixels of label 1 and 4 of label 2: it goes to label 1.
  auto ref = at::zeros({3, 4, 4}, at::kLong);
  ref[0].narrow(0, 0, 2).fill_(1);
  ref[1].narrow(0, 0, 1).fill_(1);
  ref[1].narrow(0, 2, 1).fill_(2);
  ref[2].narrow(0, 0, 2).fill_(1);
  auto pred = at::full({3, 4, 4}, -1, at::kLong);
  pred[0].narrow(0, 0, 2).fill_(0);
  pred[1].narrow(0, 2, 1).fill_(0);
  const auto r = eval::part_iou(pred, ref, 2, 2);
  EXPECT_EQ(r.assignment, (std::vector<int64_t>{1, -1}));
  ASSERT_EQ(r.per_image.size(), 3u);
  EXPECT_NEAR(r.per_image[0], 1.0, 1e-12);
  // Image 1: label 1 (4 px) has part 0's 4 px on label 2 as its prediction: IoU 0; label 2
  // has no part: IoU 0.
  EXPECT_NEAR(r.per_image[1], 0.0, 1e-12);
  EXPECT_NEAR(r.per_image[2], 0.0, 1e-12);  // label 1 present, nothing predicted
  // Pooled: label 1 is 8 + 4 + 8 = 20 px, predicted 8 + 4 = 12 with 8 shared: 8 / 24.
  EXPECT_NEAR(r.per_label[0], 8.0 / 24.0, 1e-12);
  // An image with no labelled pixel has no part IoU.
  ref[2].zero_();
  EXPECT_TRUE(std::isnan(eval::part_iou(pred, ref, 2, 2).per_image[2]));
}

}  // namespace
}  // namespace lepard::train
