#include <lepard/core/local_flow.h>
#include <lepard/core/superquadric.h>

#include "trilinear_kernel.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/grid_sampler.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/einsum.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace lepard::core {

namespace {
constexpr int64_t kBilinear = 0;       // trilinear for 5-D inputs
constexpr int64_t kBorderPadding = 1;  // outside the grid the field keeps its border values

// Identity positions (S, S, S, 3) as (x, y, z) for a field with spatial axes (z, y, x).
at::Tensor identity_grid(int64_t size, const at::TensorOptions& options) {
  const auto r = at::linspace(-1.0, 1.0, size, options);
  const auto z = r.view({size, 1, 1}).expand({size, size, size});
  const auto y = r.view({1, size, 1}).expand({size, size, size});
  const auto x = r.view({1, 1, size}).expand({size, size, size});
  return at::stack({x, y, z}, -1);
}

// (N, C, P): the field's channels at the points (N, P, 3).
at::Tensor sample_channels(const at::Tensor& field, const at::Tensor& points, Backend backend) {
  const bool on_cpu = field.device().is_cpu() && points.device().is_cpu();
  TORCH_CHECK(backend != Backend::Kernel || on_cpu, "sample_field: Backend::Kernel needs CPU tensors");
  if (backend == Backend::Kernel || (backend == Backend::Auto && on_cpu))
    return detail::trilinear_sample_cpu(field, points);
  const int64_t N = points.size(0), P = points.size(1);
  const auto grid = points.reshape({N, 1, 1, P, 3});
  return at::grid_sampler(field, grid, kBilinear, kBorderPadding, /*align_corners=*/true)
      .reshape({N, field.size(1), P});
}
}  // namespace

at::Tensor sample_field(const at::Tensor& field, const at::Tensor& points, Backend backend) {
  TORCH_CHECK(field.dim() == 5, "sample_field: field must be (N, C, D, H, W), got sizes ", field.sizes());
  TORCH_CHECK(points.dim() == 3 && points.size(0) == field.size(0) && points.size(2) == 3,
              "sample_field: points must be (N, P, 3) with N = ", field.size(0), ", got sizes ", points.sizes());
  TORCH_CHECK(field.scalar_type() == points.scalar_type() && field.device() == points.device(),
              "sample_field: field and points must share dtype and device");
  return sample_channels(field, points, backend).transpose(1, 2);
}

at::Tensor bspline_basis(int64_t samples, int64_t controls, const at::TensorOptions& options) {
  TORCH_CHECK(controls >= 2 && samples >= 2, "bspline_basis: need at least 2 control points and 2 samples");
  auto m = at::zeros({samples, controls}, at::kDouble);
  auto a = m.accessor<double, 2>();
  const double spacing = 2.0 / static_cast<double>(controls - 1);
  for (int64_t i = 0; i < samples; ++i) {
    const double x = -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(samples - 1);
    const double t = (x + 1.0) / spacing;  // position in control-point units
    const auto base = static_cast<int64_t>(std::floor(t));
    for (int64_t j = base - 2; j <= base + 2; ++j) {
      const double u = std::abs(t - static_cast<double>(j));
      const double w = u < 1 ? 2.0 / 3.0 - u * u + 0.5 * u * u * u : (u < 2 ? (2 - u) * (2 - u) * (2 - u) / 6 : 0.0);
      // Control points beyond the ends repeat the end ones, so a constant grid stays constant.
      a[i][std::clamp<int64_t>(j, 0, controls - 1)] += w;
    }
  }
  return m.to(options);
}

at::Tensor integrate_velocity(const at::Tensor& velocity, const LocalFlowOptions& options) {
  TORCH_CHECK(velocity.dim() == 5 && velocity.size(1) == 3 && velocity.size(2) == velocity.size(3) &&
                  velocity.size(3) == velocity.size(4),
              "integrate_velocity: velocity must be (N, 3, G, G, G), got sizes ", velocity.sizes());
  TORCH_CHECK(options.steps >= 0 && options.steps <= 20, "integrate_velocity: steps must be in [0, 20], got ",
              options.steps);
  TORCH_CHECK(options.integration_size >= 2, "integrate_velocity: integration_size must be >= 2");
  const int64_t S = options.integration_size;
  // The velocity is the cubic B-spline whose control points are the grid (C2-smooth, so
  // that squaring on the integration grid converges as h^2), evaluated at the integration
  // grid's nodes axis by axis.
  const auto M = bspline_basis(S, velocity.size(2), velocity.options());  // (S, G)
  const auto v = at::einsum("zi,yj,xk,ncijk->nczyx", {M, M, M, velocity});
  auto phi = v / std::ldexp(1.0, static_cast<int>(options.steps));
  const auto id = identity_grid(S, velocity.options()).unsqueeze(0);  // (1, S, S, S, 3)
  const int64_t N = velocity.size(0);
  for (int64_t t = 0; t < options.steps; ++t) {
    // phi <- phi + phi o (id + phi)
    const auto pos = (id + phi.permute({0, 2, 3, 4, 1})).reshape({N, S * S * S, 3});
    phi = phi + sample_channels(phi, pos, options.backend).view({N, 3, S, S, S});
  }
  return phi;
}

at::Tensor local_displacement(const at::Tensor& shape, const at::Tensor& surface, const at::Tensor& velocity,
                              const LocalFlowOptions& options) {
  TORCH_CHECK(shape.dim() == 3 && shape.size(2) == kShapeDim,
              "local_displacement: shape must be (B, K, 11), got sizes ", shape.sizes());
  const int64_t B = shape.size(0), K = shape.size(1);
  TORCH_CHECK(surface.dim() == 4 && surface.size(0) == B && surface.size(1) == K && surface.size(3) == 3,
              "local_displacement: surface must be (B, K, V, 3) with B = ", B, ", K = ", K, ", got sizes ",
              surface.sizes());
  TORCH_CHECK(velocity.dim() == 6 && velocity.size(0) == B && velocity.size(1) == K && velocity.size(2) == 3,
              "local_displacement: velocity must be (B, K, 3, G, G, G), got sizes ", velocity.sizes());
  const int64_t V = surface.size(2);
  const auto extent = part_extent(shape, options.margin).unsqueeze(2);  // (B, K, 1, 3)
  const auto normalised = (surface / extent).reshape({B * K, V, 3});
  const auto phi = integrate_velocity(velocity.flatten(0, 1), options);
  return sample_field(phi, normalised, options.backend).reshape({B, K, V, 3}) * extent;
}

}  // namespace lepard::core
