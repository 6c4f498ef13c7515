#pragma once
// Camera transform and perspective projection (paper eqs. 5-6).
//
// Conventions: the camera frame is x right, y down, z forward (OpenCV). A point
// x_cam = c_cam + R_cam x projects to x_proj = f (x_c / z_c, y_c / z_c), in normalised
// image coordinates where the image spans [-1, 1] along both axes, x to the right and
// y downwards; pixel (row i, column j) of an H x W image has its centre at
// ((2 j + 1 - W) / W, (2 i + 1 - H) / H). f is the focal length in those units
// (f = 1 / tan(half the field of view)).

#include <ATen/core/Tensor.h>

namespace lepard::core {

// Per-image camera, batched over B images.
struct Camera {
  at::Tensor rotation;     // (B, 4) quaternion of R_cam (object frame -> camera frame)
  at::Tensor translation;  // (B, 3) c_cam, the object origin in the camera frame
  double focal = 2.0;      // f in normalised image units (about 53 degrees field of view)
};

// x_cam = c_cam + R_cam x.  points: (B, ..., 3) -> (B, ..., 3).
at::Tensor camera_transform(const Camera& camera, const at::Tensor& points);

// Perspective projection of camera-frame points: (..., 3) -> (..., 2).
at::Tensor perspective_project(const at::Tensor& camera_points, double focal);

// P = d x_proj / d x_cam = (f / z_c) [[1, 0, -x_c / z_c], [0, 1, -y_c / z_c]] (paper eq. 6).
//   camera_points: (..., 3) -> (..., 2, 3).
at::Tensor projection_jacobian(const at::Tensor& camera_points, double focal);

}  // namespace lepard::core
