// Depth-aware rendering of per-part attributes (SoftRas's softmax over depth): the kernel
// against the dense reference (forward, and gradients for vertex x, y, depth and the
// attributes), finite differences, and the property it exists for: the front part wins.
#include <lepard/core/project_parts.h>
#include <lepard/core/surface_grid.h>
#include <lepard/render/soft_rasterize.h>

#include "scenes.h"
#include "test_support.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros_like.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

namespace lepard::render {
namespace {

using testing::max_abs_diff;

at::Tensor projected_parts(int64_t B, int64_t K, const core::SurfaceGrid& grid, uint64_t seed, double size = 0.5) {
  return testing::projected_parts(B, K, grid, seed, size);
}

SoftAttributeSettings settings(int64_t size, double sigma, double gamma) {
  SoftAttributeSettings s;
  s.raster.height = s.raster.width = size;
  s.raster.sigma = sigma;
  s.gamma = gamma;
  return s;
}

TEST(SoftAttributes, KernelMatchesDenseReference) {
  const auto grid = core::make_surface_grid(6, 10);
  const auto verts = projected_parts(2, 3, grid, 7);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto attr = at::rand({2, 3, 4}, gen, at::TensorOptions().dtype(at::kDouble));
  const auto bg = at::tensor({0.1, 0.2, 0.3, 0.4}, at::kDouble);
  for (double gamma : {1e-4, 1e-2}) {
    auto s = settings(28, 3e-4, gamma);
    const auto ours = soft_attributes(verts, grid.faces, attr, bg, s);
    const auto ref = soft_attributes_reference(verts, grid.faces, attr, bg, s);
    ASSERT_EQ(ours.sizes(), (at::IntArrayRef{2, 4, 28, 28}));
    EXPECT_LT(max_abs_diff(ours, ref), 1e-10) << "gamma " << gamma;
    s.raster.binning = false;
    EXPECT_EQ(max_abs_diff(soft_attributes(verts, grid.faces, attr, bg, s), ours), 0.0);
    const auto f32 = soft_attributes(verts.to(at::kFloat), grid.faces, attr.to(at::kFloat), bg.to(at::kFloat),
                                     settings(28, 3e-4, gamma));
    // float32: the depth softmax multiplies rounding in the normalised depth (about 1e-7) by
    // 1 / gamma, so small gammas lose about three digits (as SoftRas does in float32).
    EXPECT_LT(max_abs_diff(f32, ref), gamma < 1e-3 ? 1e-3 : 1e-5);
  }
}

TEST(SoftAttributes, GradientsMatchReferenceAndFiniteDifferences) {
  const auto grid = core::make_surface_grid(3, 5);
  const auto verts0 = projected_parts(1, 2, grid, 11, 0.8);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  const auto attr0 = at::rand({1, 2, 3}, gen, opt);
  const auto w = at::randn({1, 3, 12, 12}, gen, opt);
  auto s = settings(12, 4e-3, 2e-2);  // smooth enough for finite differences
  s.raster.eps = 1e-13;
  auto verts = verts0.clone().requires_grad_();
  auto attr = attr0.clone().requires_grad_();
  const auto ours = torch::autograd::grad({(soft_attributes(verts, grid.faces, attr, {}, s) * w).sum()}, {verts, attr});
  const auto ref =
      torch::autograd::grad({(soft_attributes_reference(verts, grid.faces, attr, {}, s) * w).sum()}, {verts, attr});
  for (int i = 0; i < 2; ++i) {
    const double scale = ref[i].abs().max().item<double>();
    ASSERT_GT(scale, 1e-3);
    EXPECT_LT(max_abs_diff(ours[i], ref[i]) / scale, 1e-8) << (i == 0 ? "verts" : "attributes");
  }
  EXPECT_GT(ref[0].select(-1, 2).abs().max().item<double>(), 1e-4) << "depth must matter";
  // One-hot attributes that need no gradient (an ownership table's rows): the kernel visits
  // each part's non-zero channels only and leaves the attributes' gradient out.
  {
    auto onehot = at::zeros({1, 2, 3}, opt);
    onehot[0][0][2] = 1.0;
    onehot[0][1][0] = 1.0;
    auto v_ours = verts0.clone().requires_grad_();
    auto v_ref = verts0.clone().requires_grad_();
    const auto g_ours =
        torch::autograd::grad({(soft_attributes(v_ours, grid.faces, onehot, {}, s) * w).sum()}, {v_ours});
    const auto g_ref =
        torch::autograd::grad({(soft_attributes_reference(v_ref, grid.faces, onehot, {}, s) * w).sum()}, {v_ref});
    const double scale = g_ref[0].abs().max().item<double>();
    ASSERT_GT(scale, 1e-3);
    EXPECT_LT(max_abs_diff(g_ours[0], g_ref[0]) / scale, 1e-8);
    EXPECT_LT(max_abs_diff(soft_attributes(verts0, grid.faces, onehot, {}, s),
                           soft_attributes_reference(verts0, grid.faces, onehot, {}, s)),
              1e-12);
  }
  // Central differences over every vertex coordinate (x, y and depth).
  const double h = 1e-6;
  auto loss = [&](const at::Tensor& v) {
    return (soft_attributes(v, grid.faces, attr0, {}, s) * w).sum().item<double>();
  };
  auto numeric = at::zeros_like(verts0);
  auto flat = numeric.view({-1});
  for (int64_t i = 0; i < verts0.numel(); ++i) {
    auto plus = verts0.clone(), minus = verts0.clone();
    plus.view({-1})[i] += h;
    minus.view({-1})[i] -= h;
    flat[i] = (loss(plus) - loss(minus)) / (2 * h);
  }
  EXPECT_LT(max_abs_diff(ours[0], numeric) / ref[0].abs().max().item<double>(), 1e-4);
}

// As for silhouettes: the backward that reads the forward's kept hits (the default) gives the
// gradients of one that evaluates every face again, to the bit, for the vertices and the
// attributes, at a small and a large gamma (the small one leaves faces of zero depth weight,
// which are not kept), and again on a second backward through the same graph.
TEST(SoftAttributes, KeptHitsGiveTheGradientsOfAFreshEvaluation) {
  const auto grid = core::make_surface_grid(6, 10);
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const auto verts0 = projected_parts(2, 3, grid, 7).to(dtype);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const auto opt = verts0.options();
    const auto attr0 = at::rand({2, 3, 4}, gen, opt);
    const auto bg = at::tensor({0.1, 0.2, 0.3, 0.4}, opt);
    auto w = at::randn({2, 4, 28, 28}, gen, opt);
    w.narrow(3, 0, 10).zero_();
    for (double gamma : {1e-4, 1e-2}) {
      auto s = settings(28, 3e-4, gamma);
      auto v = verts0.clone().requires_grad_();
      auto a = attr0.clone().requires_grad_();
      const auto image = soft_attributes(v, grid.faces, a, bg, s);
      const auto loss = (image * w).sum();
      const auto kept = torch::autograd::grad({loss}, {v, a}, {}, /*retain_graph=*/true);
      const auto again = torch::autograd::grad({loss}, {v, a});
      s.raster.keep_hits = false;
      auto v2 = verts0.clone().requires_grad_();
      auto a2 = attr0.clone().requires_grad_();
      const auto image_fresh = soft_attributes(v2, grid.faces, a2, bg, s);
      const auto fresh = torch::autograd::grad({(image_fresh * w).sum()}, {v2, a2});
      EXPECT_EQ(max_abs_diff(image, image_fresh), 0.0) << dtype << " gamma " << gamma;
      for (int i = 0; i < 2; ++i) {
        ASSERT_GT(fresh[i].abs().max().item<double>(), 1e-3);
        EXPECT_EQ(max_abs_diff(kept[i], fresh[i]), 0.0) << dtype << " gamma " << gamma << " input " << i;
        EXPECT_EQ(max_abs_diff(again[i], fresh[i]), 0.0) << dtype << " gamma " << gamma << " input " << i;
      }
    }
  }
}

// On every device (the CPU kernel, or the tensor-op path elsewhere).
class SoftAttributesDevices : public ::testing::TestWithParam<c10::Device> {};

TEST_P(SoftAttributesDevices, FrontPartWins) {
  // Two spheres on the optical axis, one-hot attributes: where both cover the image the
  // rendered attribute is the nearer part's, whichever part index it has.
  const auto device = GetParam();
  const auto grid = core::make_surface_grid(12, 16);
  for (double far_z : {2.0, -2.0}) {  // part 1 behind, then in front of part 0
    core::PartParams p;
    p.center = at::tensor({0.0, 0.0, 0.0, 0.05, 0.0, far_z}, at::kDouble).view({1, 2, 3});
    p.rotation = at::tensor({1.0, 0.0, 0.0, 0.0}, at::kDouble).repeat({1, 2, 1});
    p.shape = at::tensor({1.0, 0.5, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}, at::kDouble).repeat({1, 2, 1});
    core::Camera cam{at::tensor({1.0, 0.0, 0.0, 0.0}, at::kDouble).view({1, 4}),
                     at::tensor({0.0, 0.0, 6.0}, at::kDouble).view({1, 3}), 2.0};
    const auto verts = core::project_parts_reference(p, at::Tensor(), cam, grid).to(device);
    const auto attr = at::eye(2, at::kDouble).unsqueeze(0).to(device);  // part k -> e_k
    const auto rendered = soft_attributes(verts, grid.faces.to(device), attr, {}, settings(32, 1e-4, 1e-4));
    ASSERT_EQ(rendered.device(), device);
    const auto img = rendered.cpu();
    const int64_t front = far_z > 0 ? 0 : 1;
    // The image centre is covered by both.
    EXPECT_GT(img[0][front][16][16].item<double>(), 0.99) << "far_z " << far_z;
    EXPECT_LT(img[0][1 - front][16][16].item<double>(), 0.01);
    // A corner is background: both channels 0.
    EXPECT_LT(img[0].select(1, 0).select(1, 0).abs().max().item<double>(), 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, SoftAttributesDevices, ::testing::ValuesIn(testing::test_devices()),
                         testing::device_name);

}  // namespace
}  // namespace lepard::render
