// Trilinear sampling of the local flow's fields (core/local_flow.h, sample_field): the CPU
// kernel against at::grid_sampler (values and gradients, inside, outside, on nodes and on
// the border), against finite differences, a field whose samples are known (trilinear
// interpolation reproduces a linear field), the whole scaling and squaring on either
// backend, and bad input.
#include <lepard/core/local_flow.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <limits>
#include <tuple>

namespace lepard::core {
namespace {

using testing::max_abs_diff;

// Points (1, P, 3) that cover every case: random inside, beyond the border on each side,
// exactly on interior nodes, and exactly on the border.
at::Tensor awkward_points(at::ScalarType dtype, int64_t D, int64_t H, int64_t W) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto opts = at::TensorOptions().dtype(dtype);
  auto inside = at::rand({40, 3}, gen, opts) * 2 - 1;
  auto outside = at::rand({20, 3}, gen, opts) * 4 - 2;  // about half of the coordinates beyond +-1
  // Interior nodes: (2 i / (size - 1) - 1) per axis.
  const auto node = [&](int64_t i, int64_t size) { return 2.0 * static_cast<double>(i) / (size - 1) - 1.0; };
  auto nodes = at::tensor({node(1, W), node(2, H), node(3, D), node(2, W), node(1, H), node(1, D)}, opts).view({2, 3});
  auto border = at::tensor({-1.0, 0.3, 0.1, 1.0, -0.2, 0.5, 0.4, -1.0, 1.0, 1.0, 1.0, -1.0}, opts).view({4, 3});
  return at::cat({inside, outside, nodes, border}).unsqueeze(0);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sample_and_grad(const at::Tensor& field0, const at::Tensor& points0,
                                                               const at::Tensor& weight, Backend backend) {
  auto field = field0.clone().requires_grad_(), points = points0.clone().requires_grad_();
  const auto out = sample_field(field, points, backend);
  const auto g = torch::autograd::grad({(out * weight).sum()}, {field, points});
  return {out.detach(), g[0], g[1]};
}

TEST(SampleField, KernelMatchesGridSamplerInValuesAndGradients) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const int64_t D = 5, H = 6, W = 7, C = 3;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    const auto opts = at::TensorOptions().dtype(dtype);
    const auto p1 = awkward_points(dtype, D, H, W);
    const auto points = at::cat({p1, p1.flip(1)});  // two fields, N = 2
    const auto field = at::randn({2, C, D, H, W}, gen, opts);
    const auto weight = at::randn({2, points.size(1), C}, gen, opts);
    const auto [kv, kf, kp] = sample_and_grad(field, points, weight, Backend::Kernel);
    const auto [rv, rf, rp] = sample_and_grad(field, points, weight, Backend::TensorOps);
    ASSERT_EQ(kv.sizes(), (at::IntArrayRef{2, points.size(1), C}));
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    EXPECT_LT(max_abs_diff(kv, rv), tol);
    EXPECT_LT(max_abs_diff(kf, rf), tol);
    EXPECT_LT(max_abs_diff(kp, rp), tol);
    // Not vacuous: the gradients are there, and the border points' clamped coordinates have none.
    EXPECT_GT(kp.abs().max().item<double>(), 0.1);
    EXPECT_GT(kf.abs().max().item<double>(), 0.1);
    const int64_t first_border = p1.size(1) - 4;
    EXPECT_EQ(kp[0][first_border][0].item<double>(), 0.0);      // x = -1
    EXPECT_NE(kp[0][first_border][1].item<double>(), 0.0);      // y = 0.3, inside
    EXPECT_EQ(kp[0][first_border + 2][1].item<double>(), 0.0);  // y = -1
  }
}

TEST(SampleField, GradientsMatchFiniteDifferences) {
  // Points strictly inside and off the nodes, where the map is smooth.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto field = at::randn({1, 2, 4, 5, 6}, gen, opts);
  const auto points = (at::rand({1, 9, 3}, gen, opts) * 1.8 - 0.9);
  const auto weight = at::randn({1, 9, 2}, gen, opts);
  const auto [v, gf, gp] = sample_and_grad(field, points, weight, Backend::Kernel);
  const double h = 1e-6;
  auto energy = [&](const at::Tensor& f, const at::Tensor& p) {
    return (sample_field(f, p, Backend::Kernel) * weight).sum().item<double>();
  };
  for (int64_t i = 0; i < points.numel(); ++i) {
    auto plus = points.clone(), minus = points.clone();
    plus.view(-1)[i] += h;
    minus.view(-1)[i] -= h;
    EXPECT_NEAR(gp.view(-1)[i].item<double>(), (energy(field, plus) - energy(field, minus)) / (2 * h), 1e-7) << i;
  }
  for (int64_t i = 0; i < field.numel(); i += 7) {
    auto plus = field.clone(), minus = field.clone();
    plus.view(-1)[i] += h;
    minus.view(-1)[i] -= h;
    EXPECT_NEAR(gf.view(-1)[i].item<double>(), (energy(plus, points) - energy(minus, points)) / (2 * h), 1e-7) << i;
  }
}

TEST(SampleField, ALinearFieldIsReproducedAndClampedOutside) {
  // f(x, y, z) = 1 + 2x - 3y + 0.5z on the grid's nodes: trilinear interpolation gives f
  // exactly inside, and f at the nearest border point outside.
  const int64_t D = 4, H = 5, W = 6;
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto z = at::linspace(-1, 1, D, opts).view({D, 1, 1}), y = at::linspace(-1, 1, H, opts).view({1, H, 1});
  const auto x = at::linspace(-1, 1, W, opts).view({1, 1, W});
  const auto f = (1 + 2 * x - 3 * y + 0.5 * z).expand({D, H, W}).contiguous().view({1, 1, D, H, W});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const auto pts = at::rand({1, 50, 3}, gen, opts) * 3 - 1.5;
  const auto c = pts.clamp(-1, 1);
  const auto expected = 1 + 2 * c.select(2, 0) - 3 * c.select(2, 1) + 0.5 * c.select(2, 2);
  EXPECT_LT(max_abs_diff(sample_field(f, pts, Backend::Kernel).squeeze(2), expected), 1e-12);
}

TEST(SampleField, NaNCoordinatesGiveNaN) {
  const auto field = at::ones({1, 2, 3, 3, 3}, at::kDouble);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto pts = at::tensor({0.1, nan, 0.2, 0.0, 0.0, 0.0}, at::kDouble).view({1, 2, 3});
  const auto out = sample_field(field, pts, Backend::Kernel);
  EXPECT_TRUE(at::isnan(out[0][0]).all().item<bool>());
  EXPECT_EQ(out[0][1][0].item<double>(), 1.0);
}

TEST(SampleField, ScalingAndSquaringIsTheSameOnEitherBackend) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto v0 = 0.2 * at::randn({3, 3, 4, 4, 4}, gen, opts);  // large enough that points cross cells
  const auto w = at::randn({3, 3, 8, 8, 8}, gen, opts);
  auto run = [&](Backend backend) {
    LocalFlowOptions o;
    o.grid_size = 4;
    o.integration_size = 8;
    o.backend = backend;
    auto v = v0.clone().requires_grad_();
    const auto phi = integrate_velocity(v, o);
    const auto g = torch::autograd::grad({(phi * w).sum()}, {v});
    return std::pair{phi.detach(), g[0]};
  };
  const auto [kphi, kg] = run(Backend::Kernel);
  const auto [rphi, rg] = run(Backend::TensorOps);
  EXPECT_LT(max_abs_diff(kphi, rphi), 1e-12);
  EXPECT_LT(max_abs_diff(kg, rg), 1e-10);
  EXPECT_GT(kphi.abs().max().item<double>(), 0.1);
}

TEST(SampleField, BadInputIsAnError) {
  const auto field = at::zeros({2, 3, 4, 4, 4}, at::kDouble);
  testing::expect_error<c10::Error>([&] { sample_field(field, at::zeros({2, 5, 2}, at::kDouble)); }, "(N, P, 3)");
  testing::expect_error<c10::Error>([&] { sample_field(field, at::zeros({1, 5, 3}, at::kDouble)); }, "(N, P, 3)");
  testing::expect_error<c10::Error>([&] { sample_field(field, at::zeros({2, 5, 3}, at::kFloat)); }, "dtype");
  testing::expect_error<c10::Error>(
      [&] {
        sample_field(field[0], at::zeros({2, 5, 3}, at::kDouble));
      },
      "(N, C, D, H, W)");
}

}  // namespace
}  // namespace lepard::core
