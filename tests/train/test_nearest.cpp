// Nearest neighbours both ways (the attraction terms' Chamfer halves): the CPU kernel against
// the tensor ops (values and gradients), a scene whose answer is known, ties and bad input.
#include <lepard/train/nearest.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <stdexcept>

namespace lepard::train {
namespace {

using core::Backend;

TEST(Nearest, KernelMatchesTensorOpsInValuesAndGradients) {
  at::manual_seed(3);
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const auto opts = at::TensorOptions().dtype(dtype);
    const auto a0 = at::rand({3, 37, 2}, opts), b0 = at::rand({3, 23, 2}, opts);
    const auto w1 = at::rand({3, 37}, opts), w2 = at::rand({3, 23}, opts);
    auto run = [&](Backend backend) {
      auto a = a0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      const auto [to_b, to_a] = nearest_squared_distances(a, b, backend);
      const auto g = torch::autograd::grad({(to_b * w1).sum() + (to_a * w2).sum()}, {a, b});
      return std::tuple{to_b.detach(), to_a.detach(), g[0], g[1]};
    };
    const auto [kb, ka, kga, kgb] = run(Backend::Kernel);
    const auto [rb, ra, rga, rgb] = run(Backend::TensorOps);
    ASSERT_EQ(kb.sizes(), (at::IntArrayRef{3, 37}));
    ASSERT_EQ(ka.sizes(), (at::IntArrayRef{3, 23}));
    // The same squares and sums: the same values to the last bit.
    EXPECT_EQ(testing::max_abs_diff(kb, rb), 0.0);
    EXPECT_EQ(testing::max_abs_diff(ka, ra), 0.0);
    const double tol = dtype == at::kDouble ? 1e-12 : 1e-5;
    EXPECT_LT(testing::max_abs_diff(kga, rga), tol);
    EXPECT_LT(testing::max_abs_diff(kgb, rgb), tol);
    EXPECT_GT(kga.abs().max().item<double>(), 1e-3);
    EXPECT_GT(kgb.abs().max().item<double>(), 1e-3);
  }
}

// a = {(0, 0), (1, 0), (1, 1)}, b = {(0.9, 0), (0, 0.5)}: a's nearest are b1, b0, b0 at 0.25,
// 0.01, 1.01; b's nearest are a1 at 0.01 and a0 at 0.25. The gradient of the sum of a's
// distances in a0 is 2 (a0 - b1) = (0, -1).
TEST(Nearest, AKnownScene) {
  const auto a = at::tensor({0.0, 0.0, 1.0, 0.0, 1.0, 1.0}, at::kDouble).view({1, 3, 2}).requires_grad_();
  const auto b = at::tensor({0.9, 0.0, 0.0, 0.5}, at::kDouble).view({1, 2, 2}).requires_grad_();
  const auto [to_b, to_a] = nearest_squared_distances(a, b);
  EXPECT_NEAR(to_b[0][0].item<double>(), 0.25, 1e-15);
  EXPECT_NEAR(to_b[0][1].item<double>(), 0.01, 1e-15);
  EXPECT_NEAR(to_b[0][2].item<double>(), 1.01, 1e-15);
  EXPECT_NEAR(to_a[0][0].item<double>(), 0.01, 1e-15);
  EXPECT_NEAR(to_a[0][1].item<double>(), 0.25, 1e-15);
  const auto g = torch::autograd::grad({to_b.sum()}, {a, b});
  EXPECT_NEAR(g[0][0][0][0].item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(g[0][0][0][1].item<double>(), -1.0, 1e-15);
  // b0 is the nearest of a1 and a2: -2 (a1 - b0) - 2 (a2 - b0) = (-0.4, -2).
  EXPECT_NEAR(g[1][0][0][0].item<double>(), -0.4, 1e-12);
  EXPECT_NEAR(g[1][0][0][1].item<double>(), -2.0, 1e-12);
}

// Equal distances: the first nearest point takes the whole gradient, as min() gives it.
TEST(Nearest, TiesGoToTheFirstNearestPoint) {
  const auto a = at::tensor({0.0, 0.0}, at::kDouble).view({1, 1, 2}).requires_grad_();
  const auto b = at::tensor({1.0, 0.0, -1.0, 0.0}, at::kDouble).view({1, 2, 2}).requires_grad_();
  for (auto backend : {Backend::Kernel, Backend::TensorOps}) {
    const auto [to_b, to_a] = nearest_squared_distances(a, b, backend);
    const auto g = torch::autograd::grad({to_b.sum()}, {b});
    EXPECT_EQ(g[0][0][0][0].item<double>(), 2.0);
    EXPECT_EQ(g[0][0][1][0].item<double>(), 0.0);
  }
}

TEST(Nearest, BadInputIsAnError) {
  const auto ok = at::zeros({2, 4, 2});
  EXPECT_THROW(nearest_squared_distances(at::zeros({2, 4, 3}), ok), std::invalid_argument);
  EXPECT_THROW(nearest_squared_distances(ok, at::zeros({3, 4, 2})), std::invalid_argument);
  EXPECT_THROW(nearest_squared_distances(ok, at::zeros({2, 0, 2})), std::invalid_argument);
  EXPECT_THROW(nearest_squared_distances(ok, at::zeros({2, 4, 2}, at::kDouble)), std::invalid_argument);
  try {
    nearest_squared_distances(at::zeros({2, 4}), ok);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("(B, N, 2)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lepard::train
