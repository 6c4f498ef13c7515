// The hard rasteriser on exact cases: a quad covers the expected pixels, the nearer of two
// overlapping parts wins, and barycentrics reproduce vertex attributes.
#include <lepard/core/camera.h>
#include <lepard/core/project_parts.h>
#include <lepard/core/surface_grid.h>
#include <lepard/render/hard_rasterize.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

namespace lepard::render {
namespace {

// A square [x0, x1] x [y0, y1] at depth z as two triangles: verts (4, 3), faces (2, 3).
at::Tensor quad(double x0, double y0, double x1, double y1, double z) {
  return at::tensor({x0, y0, z, x1, y0, z, x1, y1, z, x0, y1, z}, at::kDouble).view({4, 3});
}
const at::Tensor& quad_faces() {
  static const auto f = at::tensor({0L, 1L, 2L, 0L, 2L, 3L}).view({2, 3});
  return f;
}

TEST(HardRasterize, QuadCoversTheExpectedPixels) {
  // 8 x 8 image: pixel centres at -0.875, -0.625, ..., 0.875; [-0.5, 0.5] holds columns and rows 2..5.
  const auto verts = quad(-0.5, -0.5, 0.5, 0.5, 2.0).view({1, 1, 4, 3});
  const auto frags = rasterize_hard(verts, quad_faces(), 8, 8);
  auto expected = at::full({8, 8}, -1L, at::kLong);
  expected.narrow(0, 2, 4).narrow(1, 2, 4).fill_(0);
  EXPECT_TRUE(frags.part_id[0].equal(expected)) << frags.part_id[0];
  EXPECT_TRUE((frags.depth[0] == 2.0).eq(expected == 0).all().item<bool>());
  EXPECT_EQ((frags.face_id[0] >= 0).sum().item<int64_t>(), 16);
  // Rectangular images index rows by y and columns by x.
  const auto tall = rasterize_hard(quad(-1.0, -0.25, 0.0, 0.25, 2.0).view({1, 1, 4, 3}), quad_faces(), 8, 4);
  EXPECT_EQ((tall.part_id[0] == 0).sum().item<int64_t>(), 2 * 2);  // columns 0..1, rows 3..4
  EXPECT_EQ(tall.part_id[0][3][0].item<int64_t>(), 0);
  EXPECT_EQ(tall.part_id[0][3][2].item<int64_t>(), -1);
}

TEST(HardRasterize, NearerPartWins) {
  for (double far : {3.0, 1.5}) {
    const auto a = quad(-0.75, -0.75, 0.25, 0.25, far);  // part 0
    const auto b = quad(-0.25, -0.25, 0.75, 0.75, 2.0);  // part 1, overlapping in [-0.25, 0.25]^2
    const auto frags = rasterize_hard(at::stack({a, b}, 0).unsqueeze(0), quad_faces(), 8, 8);
    const auto id = frags.part_id[0];
    // Pixel (3, 3) (centre -0.125, -0.125) is in both; (1, 1) only in part 0; (6, 6) only in part 1.
    EXPECT_EQ(id[3][3].item<int64_t>(), far > 2.0 ? 1 : 0);
    EXPECT_DOUBLE_EQ(frags.depth[0][3][3].item<double>(), std::min(far, 2.0));
    EXPECT_EQ(id[1][1].item<int64_t>(), 0);
    EXPECT_EQ(id[6][6].item<int64_t>(), 1);
  }
}

TEST(HardRasterize, BarycentricsReproduceVertexAttributes) {
  // A tilted triangle in front of a perspective camera: interpolating the vertices' camera-space
  // positions with the (perspective-correct) barycentrics gives the surface point seen through
  // each pixel centre, which projects back onto that centre at the reported depth.
  const auto cam_pts = at::tensor({-1.0, -0.8, 3.0, 1.2, -0.6, 5.0, 0.1, 1.1, 4.0}, at::kDouble).view({3, 3});
  const double f = 2.0;
  const auto proj = at::cat({core::perspective_project(cam_pts, f), cam_pts.narrow(1, 2, 1)}, 1);
  const int64_t H = 24, W = 20;
  const auto frags = rasterize_hard(proj.view({1, 1, 3, 3}), at::tensor({0L, 1L, 2L}).view({1, 3}), H, W);
  const auto covered = frags.face_id[0] == 0;
  ASSERT_GT(covered.sum().item<int64_t>(), 50);
  const auto bary = frags.barycentric[0];                 // (H, W, 3)
  const auto point = bary.matmul(cam_pts);                // (H, W, 3)
  const auto seen = core::perspective_project(point, f);  // (H, W, 2)
  for (int64_t i = 0; i < H; ++i) {
    for (int64_t j = 0; j < W; ++j) {
      if (!covered[i][j].item<bool>()) continue;
      EXPECT_NEAR(seen[i][j][0].item<double>(), (2.0 * j + 1 - W) / W, 1e-12);
      EXPECT_NEAR(seen[i][j][1].item<double>(), (2.0 * i + 1 - H) / H, 1e-12);
      EXPECT_NEAR(point[i][j][2].item<double>(), frags.depth[0][i][j].item<double>(), 1e-12);
      EXPECT_NEAR(bary[i][j].sum().item<double>(), 1.0, 1e-12);
    }
  }
  // Background pixels stay empty.
  EXPECT_EQ(frags.depth[0].masked_select(covered.logical_not()).abs().max().item<double>(), 0.0);
}

TEST(HardRasterize, VertexVisibility) {
  // Two spheres on the optical axis: the far one is hidden behind the near one's disk.
  const auto grid = core::make_surface_grid(12, 16);
  core::PartParams p;
  p.center = at::tensor({0.0, 0.0, 0.0, 0.0, 0.0, 2.0}, at::kDouble).view({1, 2, 3});
  p.rotation = at::tensor({1.0, 0.0, 0.0, 0.0}, at::kDouble).repeat({1, 2, 1});
  p.shape = at::tensor({1.0, 0.5, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}, at::kDouble).repeat({1, 2, 1});
  core::Camera cam{at::tensor({1.0, 0.0, 0.0, 0.0}, at::kDouble).view({1, 4}),
                   at::tensor({0.0, 0.0, 4.0}, at::kDouble).view({1, 3}), 2.0};
  const auto verts = core::project_parts_reference(p, at::Tensor(), cam, grid);
  const auto frags = rasterize_hard(verts, grid.faces, 96, 96);
  const auto vis = visible_vertices(frags, verts);
  const auto x = core::assemble_parts(p, at::Tensor(), grid);  // object frame; camera looks along +z
  const auto z = x.select(-1, 2);
  // Near sphere (part 0, centre z = 0): the half facing the camera (z < -0.2) is visible,
  // the far half (z > 0.2) is not.
  EXPECT_TRUE(vis[0][0].masked_select(z[0][0] < -0.2).all().item<bool>());
  EXPECT_FALSE(vis[0][0].masked_select(z[0][0] > 0.2).any().item<bool>());
  // Far sphere (part 1, centre z = 2) of the same size: everything is hidden behind part 0.
  EXPECT_FALSE(vis[0][1].any().item<bool>());
}

}  // namespace
}  // namespace lepard::render
