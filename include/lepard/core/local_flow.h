#pragma once
// Diffeomorphic local deformation d (paper section 3.1; docs/references.md section 3): a
// stationary velocity field per part in the part's normalised frame, given by a coarse
// 3D grid of control points (q_d) of a cubic B-spline, integrated by scaling and
// squaring on a finer grid, and sampled trilinearly at the part's surface points.
//
// Why a B-spline rather than trilinear interpolation of the grid: a trilinear velocity
// has kinks at every cell face, and squaring on a grid then converges only as O(h); the
// integrated map of a rough field is inverted by the map of -v only to about 10% of its
// displacement. The B-spline is C2, cheap (a separable (S x G) matrix per axis), and
// keeps constant fields constant.
//
// Accuracy (tests/core/test_local_flow.cpp, docs/geometry.md): with the defaults, control
// values in [-max_velocity, max_velocity] = [-0.03, 0.03] give maps whose round trip
// (integrate v, then -v) returns points within 1e-3; up to `max_positive_velocity` = 0.3
// the map is still one-to-one (positive Jacobian determinant) but less exactly inverted.
//
// Normalised frame: a part-frame point p maps to n = p / part_extent(q_s, margin)
// (componentwise), so the whole deformed part lies in [-1/margin, 1/margin]^3 inside
// the grid's [-1, 1]^3. Velocities and displacements are in these normalised units
// (1.0 = the part's half-extent times the margin), so a local deformation is
// relative to the part's size; d = extent * phi(n) in the part frame.

#include <lepard/core/backend.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::core {

struct LocalFlowOptions {
  int64_t grid_size = 8;          // control grid G (per axis): q_d has 3 G^3 values per part
  int64_t integration_size = 16;  // the B-spline velocity is integrated on this grid
  int64_t steps = 6;              // scaling and squaring steps T: phi_0 = v / 2^T, then T squarings
  double margin = 1.2;            // extent margin of the normalised frame
  // Control values for which the flow is documented (and tested) to be inverted by -v
  // within 1e-3. Networks bound their output to a range (tanh * bound) and may choose up
  // to max_positive_velocity when larger deformation matters more than exact inversion.
  double max_velocity = 0.03;
  double max_positive_velocity = 0.3;
  // Who samples the fields (sample_field below): the CPU kernel on the CPU, else grid_sampler.
  Backend backend = Backend::Auto;
};

// Scaling and squaring. velocity: (N, 3, G, G, G) B-spline control values, channels
// (v_x, v_y, v_z), spatial axes (z, y, x), control points spread evenly over [-1, 1]^3
// with the first and last on the faces.
// Returns the displacement field phi (N, 3, S, S, S), S = options.integration_size,
// such that n -> n + phi(n) is the time-1 flow of v. Differentiable in velocity.
at::Tensor integrate_velocity(const at::Tensor& velocity, const LocalFlowOptions& options = {});

// The (S, G) matrix that evaluates a uniform cubic B-spline with G control points on
// [-1, 1] at S evenly spaced samples (rows sum to 1; ends repeat the end control point).
at::Tensor bspline_basis(int64_t samples, int64_t controls, const at::TensorOptions& options);

// Trilinear sampling of a field (N, C, D, H, W) at points (N, P, 3) given as (x, y, z)
// in [-1, 1]; outside the grid the field keeps its border values. Returns (N, P, C).
// Differentiable in both. On the CPU (Backend::Auto or Kernel) a loop kernel with an analytic
// backward; elsewhere (or Backend::TensorOps) at::grid_sampler (trilinear, border padding,
// align_corners), whose values and gradients the kernel reproduces, the gradient's convention
// at the border included (zero in the coordinate that the border clamps, on the border too).
at::Tensor sample_field(const at::Tensor& field, const at::Tensor& points, Backend backend = Backend::Auto);

// The local displacement d of each surface point.
//   shape: (B, K, 11) q_s;  surface: (B, K, V, 3) the points s;  velocity: (B, K, 3, G, G, G) q_d.
//   returns (B, K, V, 3) in the part frame.
at::Tensor local_displacement(const at::Tensor& shape, const at::Tensor& surface, const at::Tensor& velocity,
                              const LocalFlowOptions& options = {});

}  // namespace lepard::core
