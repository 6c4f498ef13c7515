#pragma once
// Rotations from quaternions and their Jacobians (docs/references.md section 3).
// Quaternions are (w, x, y, z), scalar first, and need not be unit: every function
// normalises them first, and the Jacobians account for that normalisation.

#include <ATen/core/Tensor.h>

namespace lepard::core {

// (..., 4) -> (..., 3, 3) rotation matrix of q / |q|.
at::Tensor quaternion_to_matrix(const at::Tensor& quaternion);

// Rotate points: (..., 4), (..., 3) -> (..., 3), broadcasting.
at::Tensor rotate_points(const at::Tensor& quaternion, const at::Tensor& points);

// The rotation block B = d(R(q/|q|) p) / dq of the model Jacobian (paper eq. 3),
//   B = -R [p]_x G(q^) / |q|,  G(q^) = 2 [-v | s I - [v]_x] for q^ = (s, v),
// in closed form. quaternion: (..., 4); points p: (..., 3); returns (..., 3, 4).
at::Tensor rotation_jacobian(const at::Tensor& quaternion, const at::Tensor& points);

// The matrix G(q^) / |q| (..., 3, 4) mapping dq to the body-frame angular velocity.
at::Tensor quaternion_rate_matrix(const at::Tensor& quaternion);

// Hamilton product of quaternions (w, x, y, z): R(a b) = R(a) R(b). Broadcasting (..., 4).
at::Tensor quaternion_multiply(const at::Tensor& a, const at::Tensor& b);

// The conjugate (w, -x, -y, -z) of quaternions (..., 4): for a unit quaternion the inverse
// rotation, R(conj q) = R(q)^T.
at::Tensor quaternion_conjugate(const at::Tensor& q);

// Unit quaternions (..., 4) of a turn by `yaw` (...) radians about the y axis (the object's
// vertical, pointing down): x goes to -z for a quarter turn.
at::Tensor yaw_quaternion(const at::Tensor& yaw);

// [p]_x, the cross-product matrix: (..., 3) -> (..., 3, 3).
at::Tensor skew(const at::Tensor& v);

}  // namespace lepard::core
