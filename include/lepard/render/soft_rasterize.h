#pragma once
// Soft rasterisation of part silhouettes (SoftRas, Liu et al. 2019; docs/references.md section 4).
//
// For pixel p and face j of a part: D_j(p) = sigmoid(delta d^2 / sigma), with d the exact
// 2D distance from p to the triangle and delta = +1 inside, -1 outside. Faces whose
// D_j < eps, that is outside with d^2 >= sigma ln(1/eps - 1), count as D_j = 0 (SoftRas
// truncates the same way; the dense reference applies the same rule, so binning changes
// nothing). A part's silhouette is A_k = 1 - prod_j (1 - D_j) ("prod" aggregation); depth
// does not enter, so the union of parts is exactly 1 - prod_k (1 - A_k).
//
// Pixel (row i, column j) of an H x W image has its centre at ((2j + 1 - W)/W,
// (2i + 1 - H)/H) in the normalised image coordinates of core/camera.h.
//
// Non-finite input: verts (and attributes) holding NaN or Inf are an error (c10::Error)
// naming the tensor and the first bad index, never triangles skipped in silence.

#include <lepard/core/backend.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::render {

struct SoftRasterSettings {
  int64_t height = 64;
  int64_t width = 64;
  double sigma = 1e-4;    // squared distance scale (normalised units^2); 1e-4 is about a pixel at 64 px
  double eps = 1e-4;      // truncation: D below eps counts as 0
  int64_t tile_size = 8;  // binning tile, pixels
  bool binning = true;    // false: every pixel against every face (the dense kernel the benchmark compares)
  // CPU kernel, when a gradient can follow: the forward keeps what it found at each pixel
  // (tens of bytes per face and pixel it reaches) and the backward reads it instead of
  // evaluating every face again; the gradients are the same to the last bit. false trades
  // that time back for the memory.
  bool keep_hits = true;
};

// Per-part silhouettes.
//   verts: (B, K, V, 3) projected points (x, y, depth), as returned by core::project_parts;
//          only x and y are used. Any floating dtype.
//   faces: (F, 3) int64, shared by every part.
//   returns (B, K, H, W) in [0, 1]. Differentiable in verts (analytic backward on the CPU).
at::Tensor soft_silhouettes(const at::Tensor& verts, const at::Tensor& faces, const SoftRasterSettings& settings,
                            core::Backend backend = core::Backend::Auto);

// The same silhouettes written with dense tensor ops (every pixel against every face,
// processed part by part), differentiable by autograd, any device. The reference of the
// tests and the path non-CPU devices use.
at::Tensor soft_silhouettes_reference(const at::Tensor& verts, const at::Tensor& faces,
                                      const SoftRasterSettings& settings);

// Depth-aware rendering of per-part attributes (SoftRas's aggregation): at each pixel,
// over the faces j of every part that reach it,
//   I = (sum_j w_j a_k(j) + w_b bg) / (sum_j w_j + w_b),
//   w_j = D_j exp(z_j / gamma),   w_b = exp(background_depth / gamma),
// with D_j as for silhouettes and z_j = (zfar - depth_j) / (zfar - znear) the normalised
// inverse depth of face j at the pixel: its screen-space barycentrics clamped to the
// triangle and renormalised, then perspective-correct (1/depth interpolated). Small gamma
// lets the front part win: the rendered part-label image of the training signal when the
// attributes are each part's distribution over pseudo-label clusters.
struct SoftAttributeSettings {
  SoftRasterSettings raster;  // size, sigma, eps (truncation), tiles
  double gamma = 1e-4;        // depth softmax temperature
  double znear = 1.0, zfar = 100.0;
  double background_depth = 1e-10;  // the background's normalised inverse depth
};

// verts: (B, K, V, 3) projected points (x, y, depth > 0); faces: (F, 3) int64;
// attributes: (B, K, C) one vector per part; background: (C) or undefined for zeros
// (not differentiated). Returns (B, C, H, W). Differentiable in verts (x, y and depth)
// and attributes; analytic backward on the CPU.
at::Tensor soft_attributes(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& attributes,
                           const at::Tensor& background, const SoftAttributeSettings& settings,
                           core::Backend backend = core::Backend::Auto);

// Dense tensor-op version (image by image, every pixel against every face), autograd.
at::Tensor soft_attributes_reference(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& attributes,
                                     const at::Tensor& background, const SoftAttributeSettings& settings);

// The union silhouette 1 - prod_k (1 - A_k): (B, K, H, W) -> (B, H, W).
at::Tensor union_silhouette(const at::Tensor& part_silhouettes);

// Pixel-centre coordinates (H * W, 2) as (x, y), row-major, in `like`'s dtype and device.
at::Tensor pixel_centers(int64_t height, int64_t width, const at::Tensor& like);

}  // namespace lepard::render
