// The inside/outside function of a deformed part (acceptance: 1 on the surface within
// 1e-4; below 1 for points scaled toward the centre, above 1 away, taper and bend active).
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <cmath>

namespace lepard::core {
namespace {

using testing::max_abs_diff;

at::Tensor all_shapes() {
  return at::cat({testing::random_shape({8}, at::kDouble, 3), testing::edge_case_shapes(at::kDouble)}, 0);
}

// Taper and bend applied to plain superquadric points e (..., 3), written out here
// independently of the library (docs/references.md section 3).
at::Tensor deform(const at::Tensor& shape, const at::Tensor& e) {
  const auto q = [&](int64_t i) { return shape.select(-1, i).unsqueeze(-1); };
  const auto A = q(kA0) * q(kA3);
  const auto ez = e.select(-1, 2);
  const auto w = ez / A.squeeze(-1);
  const auto phi = M_PI * q(kB3).squeeze(-1) * (ez + q(kB2).squeeze(-1)) / A.squeeze(-1);
  const auto sx = (q(kT1).squeeze(-1) * w + 1) * e.select(-1, 0) + q(kB1).squeeze(-1) * phi.cos();
  const auto sy = (q(kT2).squeeze(-1) * w + 1) * e.select(-1, 1);
  return at::stack({sx, sy, ez}, -1);
}

at::Tensor plain(const at::Tensor& shape) {
  auto p = shape.clone();
  p.narrow(-1, kT1, 4).zero_();  // t1, t2, b1, b2
  return p;
}

class InsideOutside : public ::testing::TestWithParam<c10::Device> {};

TEST_P(InsideOutside, SurfacePointsGiveOne) {
  const auto grid = make_surface_grid();
  const auto shapes = all_shapes().to(GetParam()).unsqueeze(1);  // (N, 1, 11)
  const auto s = superquadric_points(shapes, grid.trig.to(GetParam()));
  const auto F = inside_outside(shapes, s);
  EXPECT_LT((F - 1).abs().max().item<double>(), 1e-4);
  EXPECT_LT((F - 1).abs().max().item<double>(), 1e-10) << "float64 should be exact";
}

TEST_P(InsideOutside, UndoGlobalDeformationIsExact) {
  const auto grid = make_surface_grid();
  const auto shapes = all_shapes().to(GetParam()).unsqueeze(1);
  const auto trig = grid.trig.to(GetParam());
  const auto e = superquadric_points(plain(shapes), trig);
  EXPECT_LT(max_abs_diff(deform(shapes, e), superquadric_points(shapes, trig)), 1e-12);
  EXPECT_LT(max_abs_diff(undo_global_deformation(shapes, superquadric_points(shapes, trig)), e), 1e-12);
}

TEST_P(InsideOutside, ScaledTowardTheCentreIsInsideAndAwayIsOutside) {
  const auto grid = make_surface_grid();
  const auto shapes = all_shapes().to(GetParam()).unsqueeze(1);
  const auto e = superquadric_points(plain(shapes), grid.trig.to(GetParam()));
  for (double alpha : {0.3, 0.7, 0.95, 1.05, 1.1, 1.5, 3.0}) {
    // Scale about the centre of the plain superquadric, then taper and bend.
    const auto F = inside_outside(shapes, deform(shapes, alpha * e));
    // Tapering is invertible while |t w| < 1: up to alpha = 1.1 for |t| <= 0.9 the value is
    // exactly alpha^2; beyond, the taper would fold space and only "outside" is meaningful.
    if (alpha <= 1.1) {
      EXPECT_LT((F - alpha * alpha).abs().max().item<double>(), 1e-8) << "alpha " << alpha;
    }
    if (alpha < 1) {
      EXPECT_LT(F.max().item<double>(), 1.0);
    } else {
      EXPECT_GT(F.min().item<double>(), 1.0);
    }
  }
  // The part's centre is inside, a far point outside.
  const auto centre = deform(shapes, 0 * e).narrow(1, 0, 1);
  EXPECT_LT(inside_outside(shapes, centre).max().item<double>(), 1e-6);
}

TEST_P(InsideOutside, FarPointsStayFiniteInFloat32) {
  const auto shapes = testing::edge_case_shapes(at::kFloat).to(GetParam());
  const auto far = at::tensor({50.0f, -40.0f, 30.0f}).to(GetParam()).expand({shapes.size(0), 3});
  const auto F = inside_outside(shapes, far);
  EXPECT_TRUE(F.isfinite().all().item<bool>());
  EXPECT_GT(F.min().item<float>(), 1.0f);
}

INSTANTIATE_TEST_SUITE_P(Devices, InsideOutside, ::testing::ValuesIn(testing::test_devices()), [](const auto& info) {
  return info.param.is_cpu() ? std::string("CPU") : std::string("CUDA");
});

}  // namespace
}  // namespace lepard::core
