#pragma once
// The model Jacobian L and the projected Jacobian L_proj (paper eqs. 3 and 8), in
// closed form, batched, any device. Columns are grouped as in q = [q_c, q_theta, q_s, q_d]:
//   columns  0..2   q_c      (3)   I
//   columns  3..6   q_theta  (4)   B = d(R p) / d q_theta
//   columns  7..17  q_s      (11)  R J,  J = ds / dq_s
//   columns 18..20  d        (3)   R   (the point's own local displacement)

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::core {

constexpr int64_t kCenterDim = 3;
constexpr int64_t kRotationDim = 4;
constexpr int64_t kLocalDim = 3;
constexpr int64_t kCenterCol = 0;
constexpr int64_t kRotationCol = kCenterCol + kCenterDim;   // 3
constexpr int64_t kShapeCol = kRotationCol + kRotationDim;  // 7
constexpr int64_t kLocalCol = kShapeCol + 11;               // 18
constexpr int64_t kModelDofs = kLocalCol + kLocalDim;       // 21

// L = [I, B, R J, R] at the points p = s + d.
//   rotation: (..., 4) q_theta;  shape: (..., 11) q_s;  trig: (..., 4) the point's grid
//   entry;  points: (..., 3) p in the part frame.  Returns (..., 3, 21), broadcasting.
at::Tensor model_jacobian(const at::Tensor& rotation, const at::Tensor& shape, const at::Tensor& trig,
                          const at::Tensor& points);

// L_proj = P R_cam L.
//   model_jac: (..., 3, 21);  camera_rotation: (..., 4) quaternion of R_cam;
//   camera_points: (..., 3) x_cam of the same points;  returns (..., 2, 21).
at::Tensor projected_jacobian(const at::Tensor& model_jac, const at::Tensor& camera_rotation,
                              const at::Tensor& camera_points, double focal);

}  // namespace lepard::core
