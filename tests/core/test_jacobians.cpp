// Every column of J, B, P, L and L_proj against autograd in float64 (acceptance: max abs
// error below 1e-8), over random parameters and the edges: the poles (the grid has exact
// pole vertices), e1 and e2 at their bounds, |t| near 0.9, b1 = 0.
#include <lepard/core/camera.h>
#include <lepard/core/jacobian.h>
#include <lepard/core/rotation.h>
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace lepard::core {
namespace {

using testing::max_abs_diff;
using testing::pointwise_jacobian;

constexpr double kTol = 1e-8;

// q_s for every test: random ones plus the edge cases.
at::Tensor all_shapes() {
  return at::cat({testing::random_shape({6}, at::kDouble, 7), testing::edge_case_shapes(at::kDouble)}, 0);
}

// Per-point copy of `row` (C) for V points, as an autograd leaf.
at::Tensor per_point(const at::Tensor& row, int64_t V, const c10::Device& device) {
  return row.to(device).unsqueeze(0).expand({V, row.size(0)}).clone().requires_grad_();
}

at::Tensor random_points(int64_t V, uint64_t seed, const c10::Device& device) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({V, 3}, gen, at::TensorOptions().dtype(at::kDouble)).to(device);
}

class Jacobians : public ::testing::TestWithParam<c10::Device> {};

TEST_P(Jacobians, SuperquadricJacobianMatchesAutograd) {
  const auto device = GetParam();
  const auto grid = make_surface_grid();
  const auto trig = grid.trig.to(device);
  const auto shapes = all_shapes();
  const int64_t V = grid.num_vertices();
  for (int64_t i = 0; i < shapes.size(0); ++i) {
    const auto q = per_point(shapes[i], V, device);
    const auto s = superquadric_points(q, trig);
    ASSERT_TRUE(s.isfinite().all().item<bool>());
    const auto expected = pointwise_jacobian(s, {q});  // (V, 3, 11)
    const auto J = superquadric_jacobian(q.detach(), trig);
    ASSERT_EQ(J.sizes(), expected.sizes());
    EXPECT_LT(max_abs_diff(J, expected), kTol) << "shape " << shapes[i];
    // Column by column, so a failure names the parameter.
    for (int64_t c = 0; c < kShapeDim; ++c) {
      EXPECT_LT(max_abs_diff(J.select(-1, c), expected.select(-1, c)), kTol) << "q_s column " << c;
    }
  }
}

TEST_P(Jacobians, RotationJacobianMatchesAutograd) {
  const auto device = GetParam();
  const int64_t V = 50;
  const auto quats = testing::random_quaternion({8}, at::kDouble, 11);
  const auto p = random_points(V, 12, device);
  for (int64_t i = 0; i < quats.size(0); ++i) {
    const auto q = per_point(quats[i], V, device);
    const auto expected = pointwise_jacobian(rotate_points(q, p), {q});  // (V, 3, 4)
    EXPECT_LT(max_abs_diff(rotation_jacobian(q.detach(), p), expected), kTol);
  }
  // The identity and a half turn (w = 0) are fine too.
  const auto special = at::tensor({1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0}, at::kDouble).view({2, 4});
  for (int64_t i = 0; i < 2; ++i) {
    const auto q = per_point(special[i], V, device);
    const auto expected = pointwise_jacobian(rotate_points(q, p), {q});
    EXPECT_LT(max_abs_diff(rotation_jacobian(q.detach(), p), expected), kTol);
  }
}

TEST_P(Jacobians, ProjectionJacobianMatchesAutograd) {
  const auto device = GetParam();
  auto xc = random_points(100, 13, device);
  xc = (xc * 0.5 + at::tensor({0.0, 0.0, 3.0}, at::kDouble).to(device)).detach().requires_grad_();
  const double f = 1.7;
  const auto expected = pointwise_jacobian(perspective_project(xc, f), {xc});  // (V, 2, 3)
  EXPECT_LT(max_abs_diff(projection_jacobian(xc.detach(), f), expected), kTol);
}

// The model Jacobian L = [I, B, R J, R] against autograd through x = c + R (s + d).
TEST_P(Jacobians, ModelJacobianMatchesAutograd) {
  const auto device = GetParam();
  const auto grid = make_surface_grid();
  const auto trig = grid.trig.to(device);
  const int64_t V = grid.num_vertices();
  const auto shapes = all_shapes();
  const auto quats = testing::random_quaternion({shapes.size(0)}, at::kDouble, 21);
  for (int64_t i = 0; i < shapes.size(0); ++i) {
    const auto c = per_point(at::tensor({0.1, -0.2, 0.3}, at::kDouble), V, device);
    const auto q = per_point(quats[i], V, device);
    const auto qs = per_point(shapes[i], V, device);
    const auto d = (0.05 * random_points(V, 100 + i, device)).requires_grad_();
    const auto p = superquadric_points(qs, trig) + d;
    const auto x = c + rotate_points(q, p);
    const auto expected = pointwise_jacobian(x, {c, q, qs, d});  // (V, 3, 21)
    const auto L = model_jacobian(q.detach(), qs.detach(), trig, p.detach());
    ASSERT_EQ(L.sizes(), (at::IntArrayRef{V, 3, kModelDofs}));
    for (int64_t col = 0; col < kModelDofs; ++col) {
      EXPECT_LT(max_abs_diff(L.select(-1, col), expected.select(-1, col)), kTol) << "L column " << col;
    }
  }
}

// L_proj = P R_cam L against autograd through x_proj = f (x_c, y_c) / z_c.
TEST_P(Jacobians, ProjectedJacobianMatchesAutograd) {
  const auto device = GetParam();
  const auto grid = make_surface_grid();
  const auto trig = grid.trig.to(device);
  const int64_t V = grid.num_vertices();
  const auto shapes = all_shapes();
  const auto quats = testing::random_quaternion({shapes.size(0)}, at::kDouble, 31);
  const auto cam_quats = testing::random_quaternion({shapes.size(0)}, at::kDouble, 32);
  const double f = 2.0;
  for (int64_t i = 0; i < shapes.size(0); ++i) {
    const auto c = per_point(at::tensor({0.2, 0.1, -0.1}, at::kDouble), V, device);
    const auto q = per_point(quats[i], V, device);
    const auto qs = per_point(shapes[i], V, device);
    const auto d = (0.05 * random_points(V, 200 + i, device)).requires_grad_();
    const Camera cam{cam_quats[i].view({1, 4}).to(device),
                     at::tensor({0.1, -0.1, 6.0}, at::kDouble).view({1, 3}).to(device), f};
    const auto p = superquadric_points(qs, trig) + d;
    const auto x = c + rotate_points(q, p);
    const auto xc = camera_transform(cam, x.unsqueeze(0)).squeeze(0);
    const auto expected = pointwise_jacobian(perspective_project(xc, f), {c, q, qs, d});  // (V, 2, 21)
    const auto L = model_jacobian(q.detach(), qs.detach(), trig, p.detach());
    const auto Lp = projected_jacobian(L, cam.rotation, xc.detach(), f);
    ASSERT_EQ(Lp.sizes(), (at::IntArrayRef{V, 2, kModelDofs}));
    for (int64_t col = 0; col < kModelDofs; ++col) {
      EXPECT_LT(max_abs_diff(Lp.select(-1, col), expected.select(-1, col)), kTol) << "L_proj column " << col;
    }
  }
}

// float32 runs through the same code (looser tolerance: single precision).
TEST_P(Jacobians, Float32AgreesWithFloat64) {
  const auto device = GetParam();
  const auto grid = make_surface_grid();
  const auto shapes = all_shapes();
  const auto J64 = superquadric_jacobian(shapes.unsqueeze(1).to(device), grid.trig.to(device));
  const auto J32 = superquadric_jacobian(shapes.unsqueeze(1).to(device, at::kFloat), grid.trig.to(device, at::kFloat));
  EXPECT_EQ(J32.scalar_type(), at::kFloat);
  EXPECT_LT(max_abs_diff(J32, J64), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Devices, Jacobians, ::testing::ValuesIn(testing::test_devices()), [](const auto& info) {
  return info.param.is_cpu() ? std::string("CPU") : std::string("CUDA");
});

}  // namespace
}  // namespace lepard::core
