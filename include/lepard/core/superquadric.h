#pragma once
// Deformable superquadric: the global deformation s(q_s) of a part (paper eq. 2,
// docs/references.md section 3): superquadric e with Metaxas tapering (t1, t2) and bending
// (b1 magnitude, b2 location along z, b3 region of influence):
//
//   e   = a0 (a1 fexp(cos u, e1) fexp(cos v, e2), a2 fexp(cos u, e1) fexp(sin v, e2), a3 fexp(sin u, e1))
//   w   = e_z / (a0 a3),   phi = pi b3 (e_z + b2) / (a0 a3)
//   s_x = (t1 w + 1) e_x + b1 cos(phi),   s_y = (t2 w + 1) e_y,   s_z = e_z
//
// Every function broadcasts over leading dimensions, runs on any device, and accepts
// float32 and float64. Unless stated, results are differentiable by autograd.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::core {

// Layout of q_s, the 11 global deformation parameters of a part.
enum ShapeParam : int64_t {
  kA0 = 0,
  kA1,
  kA2,
  kA3,  // scale and aspect ratios (positive)
  kE1,
  kE2,  // squareness, in (0, 2); lepard's bounded range is [0.2, 1.7]
  kT1,
  kT2,  // tapering along x and y, |t| < 1
  kB1,
  kB2,
  kB3,       // bending magnitude, location along z, region of influence
  kShapeDim  // = 11
};

// Surface points s of the deformed superquadric.
//   shape: (..., 11) q_s;  trig: (..., 4) cos u, sin u, cos v, sin v (SurfaceGrid::trig)
//   returns (..., 3), broadcasting shape against trig.
// Per-part use: superquadric_points(q_s.unsqueeze(-2), grid.trig_like(q_s)) -> (B, K, V, 3).
at::Tensor superquadric_points(const at::Tensor& shape, const at::Tensor& trig);

// The Jacobian J = ds / dq_s in closed form (not autograd), with the same broadcasting.
//   returns (..., 3, 11).
at::Tensor superquadric_jacobian(const at::Tensor& shape, const at::Tensor& trig);

// Undo bending and tapering exactly: maps a point of the part frame (..., 3) to the
// frame of the plain superquadric e (s_z = e_z makes the inverse closed-form).
// The taper factor t w + 1 is clamped to at least 1e-3 for points far outside |w| <= 1.
at::Tensor undo_global_deformation(const at::Tensor& shape, const at::Tensor& points);

// Inside/outside function of the deformed part, returned as F^e1 with
//   F = ((x/a0a1)^(2/e2) + (y/a0a2)^(2/e2))^(e2/e1) + (z/a0a3)^(2/e1)
// evaluated on undo_global_deformation(points), in log space so that small e do not
// overflow. 1 on the surface, < 1 inside, > 1 outside; for a point of the plain
// superquadric scaled by alpha from its centre and then deformed, the value is alpha^2.
//   shape: (..., 11);  points: (..., 3) in the part frame;  returns (...).
at::Tensor inside_outside(const at::Tensor& shape, const at::Tensor& points);

// Half-extent of the part's axis-aligned box in its own frame, times `margin`:
//   (a0 a1 (1 + |t1|) + |b1|, a0 a2 (1 + |t2|), a0 a3) * margin.   (..., 11) -> (..., 3)
// Every surface point satisfies |s_i| <= extent_i / margin.
at::Tensor part_extent(const at::Tensor& shape, double margin = 1.0);

}  // namespace lepard::core
