// The diffeomorphic local deformation: scaling and squaring of a stationary velocity
// grid. Acceptance: integrating v then -v returns points within 1e-3 of where they
// started for velocities in the documented range, and the map's Jacobian determinant
// stays positive.
#include <lepard/core/local_flow.h>
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdio>

namespace lepard::core {
namespace {

using testing::max_abs_diff;

class LocalFlow : public ::testing::TestWithParam<c10::Device> {};

at::Tensor uniform(at::IntArrayRef sizes, double lo, double hi, uint64_t seed, const c10::Device& device) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return (lo + (hi - lo) * at::rand(sizes, gen, at::TensorOptions().dtype(at::kDouble))).to(device);
}

// n -> n + phi(n) at points (N, P, 3).
at::Tensor flow_map(const at::Tensor& phi, const at::Tensor& points) { return points + sample_field(phi, points); }

TEST_P(LocalFlow, ZeroVelocityIsTheIdentity) {
  const auto v = at::zeros({2, 3, 8, 8, 8}, at::TensorOptions().dtype(at::kDouble).device(GetParam()));
  const auto phi = integrate_velocity(v);
  EXPECT_EQ(phi.sizes(), (at::IntArrayRef{2, 3, 16, 16, 16}));
  EXPECT_EQ(phi.abs().max().item<double>(), 0.0);
}

TEST_P(LocalFlow, ConstantVelocityIsATranslation) {
  const auto c = at::tensor({0.1, -0.05, 0.08}, at::kDouble).to(GetParam());
  const auto v = c.view({1, 3, 1, 1, 1}).expand({1, 3, 8, 8, 8}).contiguous();
  const auto phi = integrate_velocity(v);
  // Away from the grid's border (where the field falls to zero) the flow moves every point by c.
  const auto pts = uniform({1, 200, 3}, -0.6, 0.6, 3, GetParam());
  EXPECT_LT(max_abs_diff(sample_field(phi, pts), c.view({1, 1, 3}).expand({1, 200, 3})), 1e-9);
}

TEST_P(LocalFlow, ForwardThenBackwardReturnsToStart) {
  const LocalFlowOptions opt;  // the documented defaults, max_velocity included
  double worst = 0.0;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    const auto v = uniform({4, 3, opt.grid_size, opt.grid_size, opt.grid_size}, -opt.max_velocity, opt.max_velocity,
                           seed, GetParam());
    const auto forward = integrate_velocity(v, opt);
    const auto backward = integrate_velocity(-v, opt);
    // Surface points live in [-1/margin, 1/margin]^3.
    const double r = 1.0 / opt.margin;
    const auto n = uniform({4, 2000, 3}, -r, r, 100 + seed, GetParam());
    const auto there = flow_map(forward, n);
    EXPECT_GT(max_abs_diff(there, n), 0.01) << "the test needs a flow that moves points";
    const auto back = flow_map(backward, there);
    worst = std::max(worst, max_abs_diff(back, n));
  }
  EXPECT_LT(worst, 1e-3);
  std::printf("max round-trip error for |v| <= %.3f: %.2e\n", opt.max_velocity, worst);
}

// Positive over the wider range the networks may use (max_positive_velocity).
TEST_P(LocalFlow, JacobianDeterminantStaysPositive) {
  const LocalFlowOptions opt;
  const double m = opt.max_positive_velocity;
  const auto v = uniform({4, 3, opt.grid_size, opt.grid_size, opt.grid_size}, -m, m, 7, GetParam());
  const auto phi = integrate_velocity(v, opt);
  const auto n = uniform({4, 3000, 3}, -1.0 / opt.margin, 1.0 / opt.margin, 8, GetParam());
  // Central differences of the map (the map is piecewise trilinear, so use a step below a cell).
  const double h = 1e-4;
  std::vector<at::Tensor> cols;
  for (int64_t i = 0; i < 3; ++i) {
    auto e = at::zeros({3}, n.options());
    e[i] = h;
    cols.push_back((flow_map(phi, n + e) - flow_map(phi, n - e)) / (2 * h));  // column i: d map / d n_i
  }
  auto J = [&](int r, int c) { return cols[c].select(-1, r); };
  const auto det = J(0, 0) * (J(1, 1) * J(2, 2) - J(1, 2) * J(2, 1)) -
                   J(0, 1) * (J(1, 0) * J(2, 2) - J(1, 2) * J(2, 0)) +
                   J(0, 2) * (J(1, 0) * J(2, 1) - J(1, 1) * J(2, 0));
  EXPECT_GT(det.min().item<double>(), 0.0);
  // The flow is not trivially close to the identity: determinants vary.
  EXPECT_GT((det.max() - det.min()).item<double>(), 0.1);
}

TEST_P(LocalFlow, DisplacementIsRelativeToThePartSize) {
  const auto device = GetParam();
  const auto grid = make_surface_grid(8, 10);
  const auto trig = grid.trig.to(device);
  auto shape = testing::random_shape({1, 2}, at::kDouble, 4).to(device);
  shape.select(-1, kB1).zero_();  // without bending offset the extent is proportional to a0
  const auto v = uniform({1, 2, 3, 8, 8, 8}, -0.3, 0.3, 9, device);
  const auto s = superquadric_points(shape.unsqueeze(-2), trig);
  const auto d = local_displacement(shape, s, v);
  ASSERT_EQ(d.sizes(), (at::IntArrayRef{1, 2, grid.num_vertices(), 3}));
  auto doubled = shape.clone();
  doubled.select(-1, kA0).mul_(2);
  const auto d2 = local_displacement(doubled, superquadric_points(doubled.unsqueeze(-2), trig), v);
  EXPECT_LT(max_abs_diff(d2, 2 * d), 1e-10);
  EXPECT_GT(d.abs().max().item<double>(), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Devices, LocalFlow, ::testing::ValuesIn(testing::test_devices()), [](const auto& info) {
  return info.param.is_cpu() ? std::string("CPU") : std::string("CUDA");
});

}  // namespace
}  // namespace lepard::core
