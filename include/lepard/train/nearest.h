#pragma once
// Nearest neighbours between two 2D point sets, both ways: the two halves of a Chamfer
// distance (the attraction terms of train/losses.h).

#include <lepard/core/backend.h>

#include <ATen/core/Tensor.h>

#include <utility>

namespace lepard::train {

// a: (B, N, 2), b: (B, M, 2), same dtype and device, N and M > 0. Returns (to_b (B, N), to_a
// (B, M)): each point of a's squared distance to the nearest point of b in its batch entry, and
// each point of b's to the nearest point of a. Differentiable in a and b (through the nearest
// point, as min() is; the first of equal distances wins).
//
// On the CPU (Backend::Auto or Kernel) a loop kernel with an analytic backward that makes no
// (B, N, M) intermediate; elsewhere (or Backend::TensorOps) the same with tensor ops, by
// autograd. The two give the same values.
std::pair<at::Tensor, at::Tensor> nearest_squared_distances(const at::Tensor& a, const at::Tensor& b,
                                                            core::Backend backend = core::Backend::Auto);

}  // namespace lepard::train
