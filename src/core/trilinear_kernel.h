#pragma once
// Private to lepard_core: the CPU kernel behind sample_field() (core/local_flow.h).

#include <ATen/core/Tensor.h>

namespace lepard::core::detail {

// field (N, C, D, H, W), points (N, P, 3) as (x, y, z) in [-1, 1], both CPU, one floating
// dtype. Returns (N, C, P): trilinear, border padding, align_corners, as at::grid_sampler;
// differentiable in both (analytic backward; a NaN coordinate gives NaN and no gradient).
at::Tensor trilinear_sample_cpu(const at::Tensor& field, const at::Tensor& points);

}  // namespace lepard::core::detail
