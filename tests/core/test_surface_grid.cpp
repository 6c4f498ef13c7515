// The (u, v) grid, its faces, and the safe signed power.
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cross.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <map>
#include <utility>

namespace lepard::core {
namespace {

TEST(SurfaceGrid, DefaultHas642VerticesAnd1280Faces) {
  const auto grid = make_surface_grid();
  EXPECT_EQ(grid.num_vertices(), 642);
  EXPECT_EQ(grid.trig.size(0), 642);
  EXPECT_EQ(grid.faces.size(0), 1280);
}

TEST(SurfaceGrid, PolesAndMeridiansAreExact) {
  const auto grid = make_surface_grid(20, 32);
  const auto t = grid.trig.accessor<double, 2>();
  const int64_t last = grid.num_vertices() - 1;
  EXPECT_EQ(t[0][kCosU], 0.0);
  EXPECT_EQ(t[0][kSinU], -1.0);
  EXPECT_EQ(t[last][kCosU], 0.0);
  EXPECT_EQ(t[last][kSinU], 1.0);
  // Segment 8 of 32 is v = -pi/2: cos v must be an exact zero, and segment 0 (v = -pi) has sin v = 0.
  EXPECT_EQ(t[1 + 8][kCosV], 0.0);
  EXPECT_EQ(t[1 + 0][kSinV], 0.0);
  EXPECT_EQ(t[1 + 24][kCosV], 0.0);
}

TEST(SurfaceGrid, FacesFormAClosedSurfaceWithOutwardNormals) {
  const auto grid = make_surface_grid(7, 9);
  // A unit sphere: e1 = e2 = 1, a = 1, no deformation.
  const auto shape = at::tensor({1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}, at::kDouble);
  const auto pts = superquadric_points(shape, grid.trig);
  const auto f = grid.faces.accessor<int64_t, 2>();
  const auto p = pts.accessor<double, 2>();
  std::map<std::pair<int64_t, int64_t>, int> directed;
  for (int64_t i = 0; i < grid.num_faces(); ++i) {
    const int64_t a = f[i][0], b = f[i][1], c = f[i][2];
    double e1[3], e2[3], n[3], centroid[3];
    for (int j = 0; j < 3; ++j) {
      e1[j] = p[b][j] - p[a][j];
      e2[j] = p[c][j] - p[a][j];
      centroid[j] = (p[a][j] + p[b][j] + p[c][j]) / 3;
    }
    n[0] = e1[1] * e2[2] - e1[2] * e2[1];
    n[1] = e1[2] * e2[0] - e1[0] * e2[2];
    n[2] = e1[0] * e2[1] - e1[1] * e2[0];
    EXPECT_GT(n[0] * centroid[0] + n[1] * centroid[1] + n[2] * centroid[2], 0.0) << "face " << i;
    directed[{a, b}]++;
    directed[{b, c}]++;
    directed[{c, a}]++;
  }
  // Closed and consistently oriented: every directed edge once, and its reverse once.
  for (const auto& [edge, count] : directed) {
    EXPECT_EQ(count, 1);
    EXPECT_EQ(directed.count({edge.second, edge.first}), 1u);
  }
  EXPECT_EQ(static_cast<int64_t>(directed.size()), 3 * grid.num_faces());
}

TEST(SurfaceGrid, HalfTurnPermutationTurnsAnUndeformedPartAboutX) {
  for (const auto& [rings, segments] : {std::pair<int64_t, int64_t>{7, 9}, {6, 8}, {1, 3}}) {
    const auto grid = make_surface_grid(rings, segments);
    const auto perm = half_turn_permutation(grid);
    ASSERT_EQ(perm.size(0), grid.num_vertices());
    // An involution that swaps the poles.
    EXPECT_TRUE(perm.index_select(0, perm).equal(at::arange(grid.num_vertices(), at::kLong)));
    EXPECT_EQ(perm[0].item<int64_t>(), grid.num_vertices() - 1);
    // No tapering or bending, unequal axes and squareness: the relabelled points are the
    // points turned by half a turn about x.
    const auto shape = at::tensor({0.7, 1.0, 0.6, 0.4, 0.5, 1.3, 0.0, 0.0, 0.0, 0.0, 0.0}, at::kDouble);
    const auto pts = superquadric_points(shape, grid.trig);
    const auto turned = pts * at::tensor({1.0, -1.0, -1.0}, at::kDouble);
    EXPECT_LT((pts.index_select(0, perm) - turned).abs().max().item<double>(), 1e-12) << rings << "x" << segments;
    // With tapering the surface is no longer symmetric: the relabelling is not the turn (the
    // one-ring grid has its vertices at u = 0 and the poles, where tapering does not act).
    if (rings > 1) {
      auto tapered = shape.clone();
      tapered.narrow(0, kT1, 1).fill_(0.4);
      const auto tp = superquadric_points(tapered, grid.trig);
      EXPECT_GT((tp.index_select(0, perm) - tp * at::tensor({1.0, -1.0, -1.0}, at::kDouble)).abs().max().item<double>(),
                1e-3);
    }
    // Read through the permutation, the unit sphere's faces still face outwards.
    const auto sphere =
        superquadric_points(at::tensor({1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}, at::kDouble), grid.trig)
            .index_select(0, perm);
    const auto f = grid.faces;
    const auto a = sphere.index_select(0, f.select(1, 0)), b = sphere.index_select(0, f.select(1, 1)),
               c = sphere.index_select(0, f.select(1, 2));
    const auto normal = at::cross(b - a, c - a, 1);
    EXPECT_GT(((normal * (a + b + c)).sum(1)).min().item<double>(), 0.0);
  }
}

TEST(SignedPower, MatchesDefinitionAndHasFiniteGradientsAtZero) {
  auto x = at::tensor({-0.7, -1e-9, 0.0, 1e-9, 0.3, 1.0}, at::kDouble).requires_grad_();
  auto p = at::tensor({0.2, 0.2, 0.2, 1.7, 1.7, 0.5}, at::kDouble).requires_grad_();
  const auto y = signed_power(x, p);
  const auto expected = at::tensor({-std::pow(0.7, 0.2), 0.0, 0.0, 0.0, std::pow(0.3, 1.7), 1.0}, at::kDouble);
  EXPECT_LT(testing::max_abs_diff(y, expected), 1e-14);
  const auto grads = torch::autograd::grad({y.sum()}, {x, p});
  EXPECT_TRUE(grads[0].isfinite().all().item<bool>());
  EXPECT_TRUE(grads[1].isfinite().all().item<bool>());
  // d/dp at zero is the analytic limit 0; elsewhere fexp ln|x|.
  EXPECT_EQ(grads[1][2].item<double>(), 0.0);
  EXPECT_NEAR(grads[1][0].item<double>(), -std::pow(0.7, 0.2) * std::log(0.7), 1e-14);
  EXPECT_LT(testing::max_abs_diff(signed_power_log(x, p), grads[1]), 1e-14);
}

}  // namespace
}  // namespace lepard::core
