#include <lepard/core/camera.h>
#include <lepard/core/rotation.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

namespace lepard::core {

at::Tensor camera_transform(const Camera& camera, const at::Tensor& points) {
  TORCH_CHECK(camera.rotation.defined() && camera.translation.defined(),
              "camera_transform: the camera has no rotation or translation");
  TORCH_CHECK(points.dim() >= 2 && points.size(-1) == 3, "camera_transform: points must be (B, ..., 3), got sizes ",
              points.sizes());
  const int64_t B = points.size(0);
  TORCH_CHECK(camera.rotation.dim() == 2 && camera.rotation.size(0) == B && camera.rotation.size(1) == 4,
              "camera_transform: camera rotation must be (B, 4) with B = ", B, ", got sizes ", camera.rotation.sizes());
  TORCH_CHECK(camera.translation.dim() == 2 && camera.translation.size(0) == B && camera.translation.size(1) == 3,
              "camera_transform: camera translation must be (B, 3) with B = ", B, ", got sizes ",
              camera.translation.sizes());
  const auto R = quaternion_to_matrix(camera.rotation);  // (B, 3, 3)
  const auto flat = points.reshape({B, -1, 3});
  const auto out = flat.matmul(R.transpose(1, 2)) + camera.translation.unsqueeze(1);
  return out.reshape(points.sizes());
}

at::Tensor perspective_project(const at::Tensor& camera_points, double focal) {
  TORCH_CHECK(camera_points.dim() >= 1 && camera_points.size(-1) == 3,
              "perspective_project: expected last dimension 3, got sizes ", camera_points.sizes());
  const auto z = camera_points.select(-1, 2);
  return at::stack({camera_points.select(-1, 0) / z, camera_points.select(-1, 1) / z}, -1) * focal;
}

at::Tensor projection_jacobian(const at::Tensor& camera_points, double focal) {
  TORCH_CHECK(camera_points.dim() >= 1 && camera_points.size(-1) == 3,
              "projection_jacobian: expected last dimension 3, got sizes ", camera_points.sizes());
  const auto x = camera_points.select(-1, 0), y = camera_points.select(-1, 1);
  const auto z = camera_points.select(-1, 2);
  const auto fz = focal / z;
  const auto o = fz * 0;
  const auto r0 = at::stack({fz, o, -fz * x / z}, -1);
  const auto r1 = at::stack({o, fz, -fz * y / z}, -1);
  return at::stack({r0, r1}, -2);
}

}  // namespace lepard::core
