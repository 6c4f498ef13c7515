#pragma once
// Part assembly x = c + R (s + d) (paper eq. 1), projection to the image, and the
// generalized-force backward (paper eqs. 9-11).
//
// project_parts() is a custom autograd Function. Its forward returns, for every
// surface point of every part, (x_proj, y_proj, z_cam). Its backward receives the
// loss gradient per point, g = dE/d(x_proj, y_proj, z_cam) (minus the image force
// f_proj, plus a depth component that is zero for silhouette losses), and returns the
// generalized forces f_q = g^T L_proj for each group, each multiplied by its weight:
//   q_c:      sum_v g^T P R_cam             (B, K, 3)
//   q_theta:  sum_v g^T P R_cam B           (B, K, 4)
//   q_s:      sum_v g^T P R_cam R J         (B, K, 11)
//   q_d:      g^T P R_cam R, per point      (B, K, V, 3)  (flows on into the velocity grid by autograd)
//   camera:   d/d c_cam and d/d q_cam       (B, 3), (B, 4)
// (P extended with the depth row [0, 0, 1].) With every weight 1 these are exactly the
// gradients autograd computes through project_parts_reference().
//
// On the CPU the forward and backward run as one fused kernel (at::parallel_for over
// parts); on other devices the backward uses the tensor-op Jacobians of jacobian.h.

#include <lepard/core/backend.h>
#include <lepard/core/camera.h>
#include <lepard/core/surface_grid.h>

#include <ATen/core/Tensor.h>

namespace lepard::core {

// The rigid and global-deformation parameters of K parts in B images.
struct PartParams {
  at::Tensor center;    // q_c      (B, K, 3)
  at::Tensor rotation;  // q_theta  (B, K, 4) quaternion, normalised in the forward map
  at::Tensor shape;     // q_s      (B, K, 11), see superquadric.h
};

// Per-group weights of the generalized forces (paper eq. 11).
struct GroupWeights {
  double center = 1.0;
  double rotation = 1.0;
  double shape = 1.0;
  double local = 1.0;
  double camera = 1.0;
};

// Which space the points are returned in.
enum class PointSpace {
  Image,  // (x_proj, y_proj, z_cam): backward applies L_proj^T (and the depth row)
  World,  // x in the object frame (the camera is ignored): backward applies L^T (3D forces, e.g. collisions)
};

// Assemble and project the parts.
//   params: (B, K, ...) as above;  local: (B, K, V, 3) displacements d, or an undefined
//   tensor for none;  camera: B cameras (ignored for PointSpace::World);  grid: V points.
//   returns (B, K, V, 3).
at::Tensor project_parts(const PartParams& params, const at::Tensor& local, const Camera& camera,
                         const SurfaceGrid& grid, const GroupWeights& weights = {},
                         PointSpace space = PointSpace::Image, Backend backend = Backend::Auto);

// The same map written with differentiable tensor ops, for plain autograd (the
// reference of the tests and the benchmark, and the "plain autograd" ablation).
at::Tensor project_parts_reference(const PartParams& params, const at::Tensor& local, const Camera& camera,
                                   const SurfaceGrid& grid, PointSpace space = PointSpace::Image);

// x = c + R (s + d) in the object frame: (B, K, V, 3). Differentiable tensor ops.
at::Tensor assemble_parts(const PartParams& params, const at::Tensor& local, const SurfaceGrid& grid);

}  // namespace lepard::core
