#pragma once
// Private to lepard_render: the CPU kernel behind soft_silhouettes().

#include <lepard/render/soft_rasterize.h>

#include <ATen/core/Tensor.h>

#include <utility>

namespace lepard::render::detail {

// What a forward found at each pixel (for silhouettes each face's coverage and closest edge
// point; for attributes also its barycentrics, depth and depth weight), kept for its
// backward: records holds the hits as bytes, index (N, 2, P) int64 each pixel's first hit in
// records (counted in hits) and its number of hits, for N = B K parts (silhouettes) or B
// images (attributes). A backward given the hits of the forward on the same inputs reads
// them instead of evaluating every face at every pixel again: the result is the same to the
// last bit.
struct SavedHits {
  at::Tensor records;
  at::Tensor index;
};

// verts (B, K, V, 3) contiguous, faces (F, 3) int64 contiguous. Returns (B, K, H, W); keeps
// its hits in `kept` when it is not null.
at::Tensor soft_silhouettes_forward_cpu(const at::Tensor& verts, const at::Tensor& faces,
                                        const SoftRasterSettings& settings, SavedHits* kept = nullptr);

// grad: (B, K, H, W) dE/dA. Returns dE/dverts (B, K, V, 3) (the depth channel is zero).
// Reads the forward's hits from `kept` when it holds them.
at::Tensor soft_silhouettes_backward_cpu(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& grad,
                                         const SoftRasterSettings& settings, const SavedHits* kept = nullptr);

// soft_attributes on the CPU. Without grad: (image (B, C, H, W), undefined), and with `hits`
// the hits kept in it. With grad (B, C, H, W) = dE/dimage: (dE/dverts (B, K, V, 3),
// dE/dattributes (B, K, C)); the second is undefined when want_attr_grad is false
// (attributes that do not need a gradient); with `hits` holding the forward's, they are read.
std::pair<at::Tensor, at::Tensor> soft_attributes_cpu(const at::Tensor& verts, const at::Tensor& faces,
                                                      const at::Tensor& attributes, const at::Tensor& background,
                                                      const SoftAttributeSettings& settings, const at::Tensor& grad,
                                                      bool want_attr_grad = true, SavedHits* hits = nullptr);

}  // namespace lepard::render::detail
