// The soft rasteriser. Acceptance: the binned kernel matches a brute-force dense reference
// within 1e-5 and binning changes nothing; gradients match central finite differences
// (relative error below 1e-4, float64) and the reference's autograd gradients.
#include <lepard/core/project_parts.h>
#include <lepard/core/surface_grid.h>
#include <lepard/render/hard_rasterize.h>
#include <lepard/render/soft_rasterize.h>

#include "scenes.h"
#include "test_support.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <torch/csrc/autograd/autograd.h>

namespace lepard::render {
namespace {

using testing::max_abs_diff;

at::Tensor projected_parts(int64_t B, int64_t K, const core::SurfaceGrid& grid, at::ScalarType dtype, uint64_t seed,
                           double size = 0.25) {
  return testing::projected_parts(B, K, grid, seed, size).to(dtype);
}

TEST(SoftRasterize, BinnedKernelMatchesDenseReference) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const auto grid = core::make_surface_grid(8, 12);
    const auto verts = projected_parts(2, 3, grid, dtype, 3, /*size=*/0.6);
    SoftRasterSettings s;
    s.height = 40;  // not a multiple of the tile: partial tiles at the border
    s.width = 36;
    s.sigma = 3e-4;
    const auto binned = soft_silhouettes(verts, grid.faces, s, core::Backend::Kernel);
    const auto reference = soft_silhouettes_reference(verts, grid.faces, s);
    ASSERT_EQ(binned.sizes(), (at::IntArrayRef{2, 3, 40, 36}));
    EXPECT_LT(max_abs_diff(binned, reference), 1e-5) << dtype;
    s.binning = false;
    const auto dense = soft_silhouettes(verts, grid.faces, s, core::Backend::Kernel);
    EXPECT_EQ(max_abs_diff(binned, dense), 0.0) << "binning must change nothing";
    // The scene is not trivial: parts cover part of the image, with soft edges.
    EXPECT_GT(binned.max().item<double>(), 0.99);
    EXPECT_GT((binned > 0.01).to(at::kDouble).mean().item<double>(), 0.05);
    EXPECT_GT(((binned > 0.05) & (binned < 0.95)).sum().item<int64_t>(), 20);
  }
}

TEST(SoftRasterize, DefaultGridAt64PixelsMatchesReference) {
  const auto grid = core::make_surface_grid();
  const auto verts = projected_parts(1, 2, grid, at::kFloat, 5);
  SoftRasterSettings s;  // 64 x 64, sigma 1e-4
  EXPECT_LT(max_abs_diff(soft_silhouettes(verts, grid.faces, s), soft_silhouettes_reference(verts, grid.faces, s)),
            1e-5);
}

TEST(SoftRasterize, PartsCombineExactlyIntoTheUnion) {
  // Rendering two parts as one mesh (all faces in one product) equals the union of the parts.
  const auto grid = core::make_surface_grid(6, 8);
  const auto verts = projected_parts(1, 2, grid, at::kDouble, 9);
  SoftRasterSettings s;
  s.height = s.width = 32;
  s.sigma = 5e-4;
  const auto merged_verts = verts.reshape({1, 1, -1, 3});
  const auto merged_faces = at::cat({grid.faces, grid.faces + grid.num_vertices()}, 0);
  const auto merged = soft_silhouettes(merged_verts, merged_faces, s).squeeze(1);
  EXPECT_LT(max_abs_diff(union_silhouette(soft_silhouettes(verts, grid.faces, s)), merged), 1e-12);
}

// Loss sum(A * w): gradients of the kernel against autograd through the reference and
// against central finite differences of the kernel's forward.
TEST(SoftRasterize, GradientsMatchFiniteDifferencesAndReference) {
  const auto grid = core::make_surface_grid(4, 6);
  const auto verts0 = projected_parts(1, 2, grid, at::kDouble, 21);
  SoftRasterSettings s;
  s.height = s.width = 16;
  s.sigma = 2e-3;
  s.eps = 1e-13;  // truncation far out, so that finite differences see a smooth function
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const auto w = at::randn({1, 2, 16, 16}, gen, at::TensorOptions().dtype(at::kDouble));

  auto verts = verts0.clone().requires_grad_();
  const auto ours = torch::autograd::grad({(soft_silhouettes(verts, grid.faces, s) * w).sum()}, {verts})[0];
  const auto ref = torch::autograd::grad({(soft_silhouettes_reference(verts, grid.faces, s) * w).sum()}, {verts})[0];
  const double scale = ref.abs().max().item<double>();
  ASSERT_GT(scale, 1e-3);
  EXPECT_LT(max_abs_diff(ours, ref) / scale, 1e-8);
  EXPECT_EQ(ours.select(-1, 2).abs().max().item<double>(), 0.0) << "depth does not enter silhouettes";

  // Central differences over every x and y coordinate.
  const double h = 1e-6;
  auto numeric = at::zeros_like(verts0);
  auto loss = [&](const at::Tensor& v) { return (soft_silhouettes(v, grid.faces, s) * w).sum().item<double>(); };
  for (int64_t k = 0; k < 2; ++k) {
    for (int64_t v = 0; v < grid.num_vertices(); ++v) {
      for (int64_t c = 0; c < 2; ++c) {
        auto plus = verts0.clone(), minus = verts0.clone();
        plus[0][k][v][c] += h;
        minus[0][k][v][c] -= h;
        numeric[0][k][v][c] = (loss(plus) - loss(minus)) / (2 * h);
      }
    }
  }
  EXPECT_LT(max_abs_diff(ours, numeric) / scale, 1e-4);
}

// The forward keeps each pixel's hits for the backward (keep_hits, the default): the
// gradients equal those of a backward that evaluates every face again, to the bit, with a
// loss gradient that is zero on some pixels (which the kernel skips), and a second backward
// through the same graph reads the same hits.
TEST(SoftRasterize, KeptHitsGiveTheGradientsOfAFreshEvaluation) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const auto grid = core::make_surface_grid(8, 12);
    const auto verts0 = projected_parts(2, 3, grid, dtype, 3, /*size=*/0.6);
    SoftRasterSettings s;
    s.height = 40;
    s.width = 36;
    s.sigma = 3e-4;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(6);
    auto w = at::randn({2, 3, 40, 36}, gen, verts0.options());
    w.narrow(2, 0, 20).zero_();
    auto kept = verts0.clone().requires_grad_();
    const auto image = soft_silhouettes(kept, grid.faces, s);
    const auto loss = (image * w).sum();
    const auto g_kept = torch::autograd::grad({loss}, {kept}, {}, /*retain_graph=*/true)[0];
    const auto g_again = torch::autograd::grad({loss}, {kept})[0];
    s.keep_hits = false;
    auto fresh = verts0.clone().requires_grad_();
    const auto image_fresh = soft_silhouettes(fresh, grid.faces, s);
    const auto g_fresh = torch::autograd::grad({(image_fresh * w).sum()}, {fresh})[0];
    ASSERT_GT(g_fresh.abs().max().item<double>(), 1e-3) << dtype;
    EXPECT_EQ(max_abs_diff(image, image_fresh), 0.0) << dtype;
    EXPECT_EQ(max_abs_diff(g_kept, g_fresh), 0.0) << dtype;
    EXPECT_EQ(max_abs_diff(g_again, g_fresh), 0.0) << dtype;
  }
}

TEST(SoftRasterize, Float32GradientsMatchFloat64) {
  const auto grid = core::make_surface_grid(8, 12);
  const auto v64 = projected_parts(2, 2, grid, at::kDouble, 31).requires_grad_();
  const auto v32 = v64.detach().to(at::kFloat).requires_grad_();
  SoftRasterSettings s;
  s.height = s.width = 32;
  s.sigma = 3e-4;
  const auto g64 = torch::autograd::grad({soft_silhouettes(v64, grid.faces, s).sum()}, {v64})[0];
  const auto g32 = torch::autograd::grad({soft_silhouettes(v32, grid.faces, s).sum()}, {v32})[0];
  EXPECT_LT(max_abs_diff(g32, g64) / g64.abs().max().item<double>(), 1e-3);
}

TEST(SoftRasterize, BadSettingsAreErrors) {
  const auto grid = core::make_surface_grid(4, 6);
  const auto verts = projected_parts(1, 1, grid, at::kFloat, 1);
  SoftRasterSettings s;
  s.sigma = 0;
  EXPECT_THROW(soft_silhouettes(verts, grid.faces, s), c10::Error);
  s = {};
  EXPECT_THROW(soft_silhouettes(verts.squeeze(0), grid.faces, s), c10::Error);
  EXPECT_THROW(soft_silhouettes(verts, grid.faces.to(at::kInt), s), c10::Error);
}

// Non-finite vertices are an error naming the tensor and the first bad index, in the soft
// kernel, its dense reference, the attribute renderer and the hard rasteriser, not triangles
// skipped in silence.
// A part whose vertices are finite but far off screen (1e30 in float: its box's pixel range
// overflows any integer) covers nothing, in silhouettes and in the part image, and gets a zero
// gradient; the part on screen is rendered as it is alone.
TEST(SoftRasterize, FarOffScreenPartsRenderNothing) {
  const auto grid = core::make_surface_grid(4, 6);
  const auto base = projected_parts(1, 2, grid, at::kFloat, 7);
  auto verts = base.clone();
  verts.select(1, 1).narrow(2, 0, 2).add_(1e30);
  verts.requires_grad_();
  SoftRasterSettings s;
  s.height = s.width = 24;
  s.sigma = 3e-4;
  const auto sil = soft_silhouettes(verts, grid.faces, s);
  EXPECT_EQ(sil.select(1, 1).abs().max().item<double>(), 0.0);
  EXPECT_EQ(max_abs_diff(sil.select(1, 0), soft_silhouettes(base.narrow(1, 0, 1), grid.faces, s).select(1, 0)), 0.0);
  const auto g = torch::autograd::grad({sil.sum()}, {verts});
  EXPECT_TRUE(g[0].isfinite().all().item<bool>());
  EXPECT_EQ(g[0].select(1, 1).abs().max().item<double>(), 0.0);
  SoftAttributeSettings a;
  a.raster = s;
  const auto attr = at::eye(2, at::kFloat).unsqueeze(0);  // part k shows channel k
  const auto image = soft_attributes(verts, grid.faces, attr, {}, a);
  EXPECT_EQ(image.select(1, 1).abs().max().item<double>(), 0.0);
  EXPECT_GT(image.select(1, 0).max().item<double>(), 0.5);
}

TEST(SoftRasterize, NonFiniteVerticesAreNamedErrors) {
  const auto grid = core::make_surface_grid(4, 6);
  auto verts = projected_parts(2, 3, grid, at::kFloat, 1);
  verts[1][2][5][0] = std::numeric_limits<float>::quiet_NaN();
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  SoftRasterSettings s;
  const auto soft = message([&] { soft_silhouettes(verts, grid.faces, s); });
  EXPECT_NE(soft.find("verts holds NaN or Inf (first at [1, 2, 5, 0] = nan"), std::string::npos) << soft;
  EXPECT_NE(message([&] { soft_silhouettes_reference(verts, grid.faces, s); }).find("verts holds NaN or Inf"),
            std::string::npos);
  const auto hard = message([&] { rasterize_hard(verts, grid.faces, 16, 16); });
  EXPECT_NE(hard.find("rasterize_hard: verts holds NaN or Inf (first at [1, 2, 5, 0]"), std::string::npos) << hard;
  verts[1][2][5][0] = 0.1;
  verts[0][0][3][1] = std::numeric_limits<float>::infinity();
  EXPECT_NE(message([&] { soft_silhouettes(verts, grid.faces, s); }).find("first at [0, 0, 3, 1] = inf"),
            std::string::npos);
  verts[0][0][3][1] = 0.1;
  EXPECT_EQ(message([&] { soft_silhouettes(verts, grid.faces, s); }), "no error");
  auto attributes = at::ones({2, 3, 2}, verts.options());
  attributes[0][1][1] = std::numeric_limits<float>::quiet_NaN();
  SoftAttributeSettings a;
  const auto attr = message([&] { soft_attributes(verts, grid.faces, attributes, at::Tensor(), a); });
  EXPECT_NE(attr.find("attributes holds NaN or Inf (first at [0, 1, 1]"), std::string::npos) << attr;
}

// On every device (the CPU kernel, or the tensor-op path elsewhere): one triangle against
// SoftRas's formula written out here pixel by pixel, D = sigmoid(+-d^2 / sigma) with d the
// distance to the triangle's outline, + inside, - outside, 0 outside beyond the eps cutoff;
// and the gradient against central differences of that formula.
class SoftRasterizeDevices : public ::testing::TestWithParam<c10::Device> {};

double segment_distance2(double px, double py, double ax, double ay, double bx, double by) {
  const double ux = bx - ax, uy = by - ay;
  const double t = std::clamp(((px - ax) * ux + (py - ay) * uy) / (ux * ux + uy * uy), 0.0, 1.0);
  const double dx = px - (ax + t * ux), dy = py - (ay + t * uy);
  return dx * dx + dy * dy;
}

// SoftRas's D of one triangle (x0 y0 x1 y1 x2 y2) at (px, py).
double one_triangle(const std::array<double, 6>& t, double px, double py, const SoftRasterSettings& s) {
  const double d2 =
      std::min({segment_distance2(px, py, t[0], t[1], t[2], t[3]), segment_distance2(px, py, t[2], t[3], t[4], t[5]),
                segment_distance2(px, py, t[4], t[5], t[0], t[1])});
  auto side = [&](int a, int b) {
    return (t[2 * b] - t[2 * a]) * (py - t[2 * a + 1]) - (t[2 * b + 1] - t[2 * a + 1]) * (px - t[2 * a]);
  };
  const double e0 = side(0, 1), e1 = side(1, 2), e2 = side(2, 0);
  const bool inside = (e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0);
  if (!inside && d2 >= s.sigma * std::log(1.0 / s.eps - 1.0)) return 0.0;
  return 1.0 / (1.0 + std::exp(-(inside ? d2 : -d2) / s.sigma));
}

TEST_P(SoftRasterizeDevices, OneTriangleFollowsSoftRasFormula) {
  const auto device = GetParam();
  const std::array<double, 6> tri = {-0.5, -0.45, 0.6, -0.3, 0.05, 0.7};
  SoftRasterSettings s;
  s.height = 12;
  s.width = 10;
  s.sigma = 2e-2;  // wide: most pixels are in the soft band
  s.eps = 1e-3;    // and some beyond the cutoff
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto verts = at::tensor({tri[0], tri[1], 1.0, tri[2], tri[3], 1.0, tri[4], tri[5], 1.0}, opts)
                         .view({1, 1, 3, 3})
                         .to(device)
                         .requires_grad_();
  const auto faces = at::tensor({0L, 1L, 2L}).view({1, 3}).to(device);
  const auto out = soft_silhouettes(verts, faces, s);
  ASSERT_EQ(out.device(), device);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{1, 1, 12, 10}));
  const auto centres = pixel_centers(s.height, s.width, at::zeros({1}, opts));  // (H W, 2) as (x, y)
  const auto rendered = out.detach().cpu().view({-1});
  int64_t soft = 0, cut = 0;
  for (int64_t i = 0; i < centres.size(0); ++i) {
    const double want = one_triangle(tri, centres[i][0].item<double>(), centres[i][1].item<double>(), s);
    EXPECT_NEAR(rendered[i].item<double>(), want, 1e-12) << "pixel " << i;
    soft += want > 0.01 && want < 0.99;
    cut += want == 0.0;
  }
  EXPECT_GT(soft, 20);
  EXPECT_GT(cut, 0);
  // Gradient of sum(A * w) in every x and y, against central differences of the formula.
  const auto w = at::linspace(-1.0, 2.0, centres.size(0), opts);
  const auto grad = torch::autograd::grad({(out.view({-1}) * w.to(device)).sum()}, {verts})[0].cpu();
  const double h = 1e-6;
  for (int v = 0; v < 3; ++v) {
    for (int c = 0; c < 2; ++c) {
      auto loss = [&](double delta) {
        auto moved = tri;
        moved[static_cast<size_t>(2 * v + c)] += delta;
        double sum = 0;
        for (int64_t i = 0; i < centres.size(0); ++i)
          sum +=
              w[i].item<double>() * one_triangle(moved, centres[i][0].item<double>(), centres[i][1].item<double>(), s);
        return sum;
      };
      const double numeric = (loss(h) - loss(-h)) / (2 * h);
      EXPECT_NEAR(grad[0][0][v][c].item<double>(), numeric, 1e-5 * std::max(1.0, std::abs(numeric)))
          << "vertex " << v << " coordinate " << c;
    }
  }
  EXPECT_EQ(grad.select(-1, 2).abs().max().item<double>(), 0.0) << "depth does not enter silhouettes";
}

INSTANTIATE_TEST_SUITE_P(Devices, SoftRasterizeDevices, ::testing::ValuesIn(testing::test_devices()),
                         testing::device_name);

}  // namespace
}  // namespace lepard::render
