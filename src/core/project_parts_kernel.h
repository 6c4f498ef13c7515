#pragma once
// Private to lepard_core: the implementations behind project_parts().

#include <ATen/core/Tensor.h>

namespace lepard::core::detail {

// All tensors contiguous and of one floating dtype (checked by project_parts()).
struct ProjectPartsInputs {
  at::Tensor center;              // (B, K, 3)
  at::Tensor rotation;            // (B, K, 4)
  at::Tensor shape;               // (B, K, 11)
  at::Tensor local;               // (B, K, V, 3) or undefined
  at::Tensor camera_rotation;     // (B, 4), undefined when world
  at::Tensor camera_translation;  // (B, 3), undefined when world
  at::Tensor trig;                // (V, 4)
  double focal = 1.0;
  bool world = false;  // return object-frame points and apply L^T (no camera)
};

// Unweighted gradients of sum(grad * output) with respect to each input.
struct ProjectPartsGrads {
  at::Tensor center, rotation, shape, local, camera_rotation, camera_translation;
};

at::Tensor project_parts_forward_cpu(const ProjectPartsInputs& in);
ProjectPartsGrads project_parts_backward_cpu(const ProjectPartsInputs& in, const at::Tensor& grad);

// Device-agnostic: differentiable tensor ops forward, closed-form Jacobians backward.
at::Tensor project_parts_forward_tensor_ops(const ProjectPartsInputs& in);
ProjectPartsGrads project_parts_backward_tensor_ops(const ProjectPartsInputs& in, const at::Tensor& grad);

}  // namespace lepard::core::detail
