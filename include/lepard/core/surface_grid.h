#pragma once
// The fixed (u, v) sampling of a primitive's surface, shared by every part and
// every instance: vertex index = correspondence (docs/design.md, "Part representation").

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::core {

// Columns of SurfaceGrid::trig.
enum TrigColumn : int64_t { kCosU = 0, kSinU = 1, kCosV = 2, kSinV = 3 };

// A latitude-longitude grid on the superquadric's (u, v) domain,
// u in [-pi/2, pi/2] (latitude), v in [-pi, pi) (longitude):
//   vertex 0                      the south pole, u = -pi/2
//   vertices 1 + i*segments + j   ring i (0 <= i < rings), u_i = -pi/2 + pi (i+1)/(rings+1),
//                                 v_j = -pi + 2 pi j / segments
//   vertex num_vertices - 1       the north pole, u = +pi/2
// cos and sin values whose magnitude is below 1e-12 are stored as exact zeros,
// so that the poles and the v = +-pi/2, 0, -pi meridians are exact.
// The default 20 x 32 grid has 642 vertices and 1280 faces (like a level-3 icosphere).
struct SurfaceGrid {
  int64_t rings = 0;
  int64_t segments = 0;
  at::Tensor trig;   // (V, 4) float64 on the CPU: cos u, sin u, cos v, sin v
  at::Tensor faces;  // (F, 3) int64: counter-clockwise seen from outside (outward normals)

  int64_t num_vertices() const { return rings * segments + 2; }
  int64_t num_faces() const { return 2 * rings * segments; }
  // trig converted to the dtype and device of `like`.
  at::Tensor trig_like(const at::Tensor& like) const;
};

SurfaceGrid make_surface_grid(int64_t rings = 20, int64_t segments = 32);

// The relabelling of the grid's vertices by the half-turn about the part's x axis,
// (u, v) -> (-u, -v): the poles swap, ring i becomes ring rings-1-i and segment j becomes
// segment (segments - j) mod segments. (V) int64 on the CPU, an involution: points[perm] of a
// superquadric without tapering and bending are its points turned by diag(1, -1, -1). A part
// whose surface is read through it is the same surface with its ends named the other way
// round (model/canonical.h); being a rotation, it keeps the faces counter-clockwise seen from
// outside.
at::Tensor half_turn_permutation(const SurfaceGrid& grid);

// Magnitudes below this count as zero in the signed power (value and gradients).
constexpr double kSignedPowerEps = 1e-7;

// Safe signed power fexp(x, p) = sign(x) |x|^p, broadcasting x and p.
// Differentiable in x and p with finite gradients everywhere: for |x| < 1e-7 the
// value and both gradients are 0 (the analytic limits of fexp and of
// d fexp / dp = fexp ln|x| for p > 0; d fexp / dx, infinite at 0 for p < 1, is clamped to 0).
at::Tensor signed_power(const at::Tensor& x, const at::Tensor& p);

// fexp(x, p) ln|x|, the derivative of the signed power with respect to p, with the same
// convention (0 for |x| < 1e-7).
at::Tensor signed_power_log(const at::Tensor& x, const at::Tensor& p);

}  // namespace lepard::core
