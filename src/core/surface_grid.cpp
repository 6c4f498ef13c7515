#include <lepard/core/surface_grid.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace lepard::core {

namespace {
// Snap cos/sin values that are zero in exact arithmetic (cos(pi/2) is 6e-17 in floating point).
double snap(double v) { return std::abs(v) < 1e-12 ? 0.0 : v; }
}  // namespace

at::Tensor SurfaceGrid::trig_like(const at::Tensor& like) const { return trig.to(like.options()); }

SurfaceGrid make_surface_grid(int64_t rings, int64_t segments) {
  TORCH_CHECK(rings >= 1, "make_surface_grid: rings must be >= 1, got ", rings);
  TORCH_CHECK(segments >= 3, "make_surface_grid: segments must be >= 3, got ", segments);
  SurfaceGrid grid;
  grid.rings = rings;
  grid.segments = segments;
  const int64_t num_v = grid.num_vertices();
  grid.trig = at::empty({num_v, 4}, at::kDouble);
  auto t = grid.trig.accessor<double, 2>();
  auto set = [&](int64_t i, double u, double v, bool pole) {
    t[i][kCosU] = pole ? 0.0 : snap(std::cos(u));
    t[i][kSinU] = snap(std::sin(u));
    t[i][kCosV] = snap(std::cos(v));
    t[i][kSinV] = snap(std::sin(v));
  };
  set(0, -M_PI / 2, 0.0, true);
  for (int64_t i = 0; i < rings; ++i) {
    const double u = -M_PI / 2 + M_PI * static_cast<double>(i + 1) / static_cast<double>(rings + 1);
    for (int64_t j = 0; j < segments; ++j) {
      const double v = -M_PI + 2 * M_PI * static_cast<double>(j) / static_cast<double>(segments);
      set(1 + i * segments + j, u, v, false);
    }
  }
  set(num_v - 1, M_PI / 2, 0.0, true);
  t[0][kSinU] = -1.0;
  t[num_v - 1][kSinU] = 1.0;

  // Faces, counter-clockwise seen from outside. With x = cos u cos v, y = cos u sin v,
  // z = sin u, increasing v turns counter-clockwise about +z and increasing u goes north.
  grid.faces = at::empty({grid.num_faces(), 3}, at::kLong);
  auto f = grid.faces.accessor<int64_t, 2>();
  int64_t n = 0;
  auto ring_vertex = [&](int64_t i, int64_t j) { return 1 + i * segments + (j % segments); };
  const int64_t south = 0, north = num_v - 1;
  for (int64_t j = 0; j < segments; ++j) {  // southern fan
    f[n][0] = south;
    f[n][1] = ring_vertex(0, j + 1);
    f[n][2] = ring_vertex(0, j);
    ++n;
  }
  for (int64_t i = 0; i + 1 < rings; ++i) {
    for (int64_t j = 0; j < segments; ++j) {
      const int64_t a = ring_vertex(i, j), b = ring_vertex(i, j + 1);
      const int64_t c = ring_vertex(i + 1, j + 1), d = ring_vertex(i + 1, j);
      f[n][0] = a;
      f[n][1] = b;
      f[n][2] = c;
      ++n;
      f[n][0] = a;
      f[n][1] = c;
      f[n][2] = d;
      ++n;
    }
  }
  for (int64_t j = 0; j < segments; ++j) {  // northern fan
    f[n][0] = north;
    f[n][1] = ring_vertex(rings - 1, j);
    f[n][2] = ring_vertex(rings - 1, j + 1);
    ++n;
  }
  TORCH_CHECK(n == grid.num_faces(), "make_surface_grid: internal face count mismatch");
  return grid;
}

at::Tensor half_turn_permutation(const SurfaceGrid& grid) {
  const int64_t rings = grid.rings, segments = grid.segments, num_v = grid.num_vertices();
  auto perm = at::empty({num_v}, at::kLong);
  auto p = perm.accessor<int64_t, 1>();
  p[0] = num_v - 1;
  p[num_v - 1] = 0;
  for (int64_t i = 0; i < rings; ++i)
    for (int64_t j = 0; j < segments; ++j)
      p[1 + i * segments + j] = 1 + (rings - 1 - i) * segments + (segments - j) % segments;
  return perm;
}

at::Tensor signed_power(const at::Tensor& x, const at::Tensor& p) {
  const auto ax = x.abs();
  const auto is_zero = ax < kSignedPowerEps;
  // Take the log of 1 where x is (nearly) zero so that neither branch produces inf/NaN gradients.
  const auto safe = at::where(is_zero, at::ones_like(ax), ax);
  const auto value = x.sign() * (p * safe.log()).exp();
  return at::where(is_zero, at::zeros_like(value), value);
}

at::Tensor signed_power_log(const at::Tensor& x, const at::Tensor& p) {
  const auto ax = x.abs();
  const auto is_zero = ax < kSignedPowerEps;
  const auto safe = at::where(is_zero, at::ones_like(ax), ax);
  const auto log_abs = safe.log();
  const auto value = x.sign() * (p * log_abs).exp() * log_abs;
  return at::where(is_zero, at::zeros_like(value), value);
}

}  // namespace lepard::core
