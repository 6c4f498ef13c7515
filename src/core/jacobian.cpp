#include <lepard/core/camera.h>
#include <lepard/core/jacobian.h>
#include <lepard/core/rotation.h>
#include <lepard/core/superquadric.h>

#include <ATen/ExpandUtils.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/eye.h>
#include <c10/util/Exception.h>

#include <vector>

namespace lepard::core {

at::Tensor model_jacobian(const at::Tensor& rotation, const at::Tensor& shape, const at::Tensor& trig,
                          const at::Tensor& points) {
  const auto R = quaternion_to_matrix(rotation);                 // (..., 3, 3)
  const auto B = rotation_jacobian(rotation, points);            // (..., 3, 4)
  const auto RJ = R.matmul(superquadric_jacobian(shape, trig));  // (..., 3, 11)
  auto batch = at::infer_size(B.sizes().slice(0, B.dim() - 2), RJ.sizes().slice(0, RJ.dim() - 2));
  auto with = [&](const at::Tensor& t, int64_t cols) {
    std::vector<int64_t> s(batch.begin(), batch.end());
    s.push_back(3);
    s.push_back(cols);
    return t.expand(s);
  };
  const auto I = at::eye(3, rotation.options());
  return at::cat({with(I, 3), with(B, 4), with(RJ, 11), with(R, 3)}, -1);
}

at::Tensor projected_jacobian(const at::Tensor& model_jac, const at::Tensor& camera_rotation,
                              const at::Tensor& camera_points, double focal) {
  TORCH_CHECK(model_jac.dim() >= 2 && model_jac.size(-2) == 3,
              "projected_jacobian: model_jac must be (..., 3, n), got sizes ", model_jac.sizes());
  const auto P = projection_jacobian(camera_points, focal);  // (..., 2, 3)
  const auto Rc = quaternion_to_matrix(camera_rotation);     // (..., 3, 3)
  return P.matmul(Rc).matmul(model_jac);
}

}  // namespace lepard::core
