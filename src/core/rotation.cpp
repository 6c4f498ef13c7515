#include <lepard/core/rotation.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/sin.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

namespace lepard::core {

namespace {
void check_quaternion(const at::Tensor& q, const char* fn) {
  TORCH_CHECK(q.dim() >= 1 && q.size(-1) == 4, fn, ": quaternion must have last dimension 4 (w, x, y, z), got sizes ",
              q.sizes());
}
}  // namespace

at::Tensor quaternion_to_matrix(const at::Tensor& quaternion) {
  check_quaternion(quaternion, "quaternion_to_matrix");
  const auto q = quaternion / quaternion.norm(2, {-1}, /*keepdim=*/true);
  const auto w = q.select(-1, 0), x = q.select(-1, 1), y = q.select(-1, 2), z = q.select(-1, 3);
  const auto r0 = at::stack({1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)}, -1);
  const auto r1 = at::stack({2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)}, -1);
  const auto r2 = at::stack({2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}, -1);
  return at::stack({r0, r1, r2}, -2);
}

at::Tensor rotate_points(const at::Tensor& quaternion, const at::Tensor& points) {
  TORCH_CHECK(points.dim() >= 1 && points.size(-1) == 3, "rotate_points: points must have last dimension 3, got sizes ",
              points.sizes());
  return quaternion_to_matrix(quaternion).matmul(points.unsqueeze(-1)).squeeze(-1);
}

at::Tensor skew(const at::Tensor& v) {
  TORCH_CHECK(v.dim() >= 1 && v.size(-1) == 3, "skew: expected last dimension 3, got sizes ", v.sizes());
  const auto x = v.select(-1, 0), y = v.select(-1, 1), z = v.select(-1, 2);
  const auto o = x * 0;
  return at::stack({at::stack({o, -z, y}, -1), at::stack({z, o, -x}, -1), at::stack({-y, x, o}, -1)}, -2);
}

at::Tensor quaternion_rate_matrix(const at::Tensor& quaternion) {
  check_quaternion(quaternion, "quaternion_rate_matrix");
  const auto norm = quaternion.norm(2, {-1}, /*keepdim=*/true);
  const auto q = quaternion / norm;
  const auto s = q.select(-1, 0);
  const auto v = q.narrow(-1, 1, 3);
  // s I - [v]_x, built column by column to stay broadcast-friendly.
  const auto x = v.select(-1, 0), y = v.select(-1, 1), z = v.select(-1, 2);
  const auto sI_minus_vx =
      at::stack({at::stack({s, z, -y}, -1), at::stack({-z, s, x}, -1), at::stack({y, -x, s}, -1)}, -2);
  const auto G = 2 * at::cat({-v.unsqueeze(-1), sI_minus_vx}, -1);  // (..., 3, 4)
  return G / norm.unsqueeze(-1);
}

at::Tensor rotation_jacobian(const at::Tensor& quaternion, const at::Tensor& points) {
  check_quaternion(quaternion, "rotation_jacobian");
  const auto R = quaternion_to_matrix(quaternion);
  return -R.matmul(skew(points)).matmul(quaternion_rate_matrix(quaternion));
}

at::Tensor quaternion_conjugate(const at::Tensor& q) {
  TORCH_CHECK(q.size(-1) == 4, "quaternion_conjugate: expected (..., 4), got sizes ", q.sizes());
  return q * at::tensor({1.0, -1.0, -1.0, -1.0}, q.options());
}

at::Tensor quaternion_multiply(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.size(-1) == 4 && b.size(-1) == 4, "quaternion_multiply: expected (..., 4), got sizes ", a.sizes(),
              " and ", b.sizes());
  const auto aw = a.select(-1, 0), ax = a.select(-1, 1), ay = a.select(-1, 2), az = a.select(-1, 3);
  const auto bw = b.select(-1, 0), bx = b.select(-1, 1), by = b.select(-1, 2), bz = b.select(-1, 3);
  return at::stack({aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                    aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw},
                   -1);
}

at::Tensor yaw_quaternion(const at::Tensor& yaw) {
  const auto half = 0.5 * yaw, zero = at::zeros_like(yaw);
  return at::stack({at::cos(half), zero, at::sin(half), zero}, -1);
}

}  // namespace lepard::core
