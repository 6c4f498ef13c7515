#pragma once
// Private to lepard_render: the CPU kernel behind soft_silhouettes().

#include <lepard/render/soft_rasterize.h>

#include <ATen/core/Tensor.h>

#include <utility>

namespace lepard::render::detail {

// verts (B, K, V, 3) contiguous, faces (F, 3) int64 contiguous. Returns (B, K, H, W).
at::Tensor soft_silhouettes_forward_cpu(const at::Tensor& verts, const at::Tensor& faces,
                                        const SoftRasterSettings& settings);

// grad: (B, K, H, W) dE/dA. Returns dE/dverts (B, K, V, 3) (the depth channel is zero).
at::Tensor soft_silhouettes_backward_cpu(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& grad,
                                         const SoftRasterSettings& settings);

// soft_attributes on the CPU. Without grad: (image (B, C, H, W), undefined). With grad
// (B, C, H, W) = dE/dimage: (dE/dverts (B, K, V, 3), dE/dattributes (B, K, C)); the second
// is undefined when want_attr_grad is false (attributes that do not need a gradient).
std::pair<at::Tensor, at::Tensor> soft_attributes_cpu(const at::Tensor& verts, const at::Tensor& faces,
                                                      const at::Tensor& attributes, const at::Tensor& background,
                                                      const SoftAttributeSettings& settings, const at::Tensor& grad,
                                                      bool want_attr_grad = true);

}  // namespace lepard::render::detail
