#pragma once
// Pictures of renders as uint8 RGB tensors (H, W, 3), for reports and the demo. Writing
// them to files is io's job (lepard/io/image_io.h).

#include <lepard/render/hard_rasterize.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::render {

// A fixed palette of distinct colours, (n, 3) uint8; colour k is the same in every picture.
at::Tensor part_palette(int64_t n);

// (B, H, W) int64 part ids (-1 background) -> (B, H, W, 3) uint8; background black.
at::Tensor colorize_part_ids(const at::Tensor& part_id);

// (B, H, W) depth (0 background) -> (B, H, W, 3) uint8; near is bright, far dark, per image.
at::Tensor colorize_depth(const at::Tensor& depth);

// (B, H, W) values in [0, 1] -> (B, H, W, 3) uint8 grey.
at::Tensor colorize_probability(const at::Tensor& prob);

// One sheet for a batch: a row per picture kind (union silhouette, soft part silhouettes
// tinted with the part colours, hard part ids, depth), a column per image, 2-pixel gaps.
//   silhouettes: (B, K, H, W) soft part silhouettes;  fragments: the hard rasteriser's output.
at::Tensor render_sheet(const at::Tensor& silhouettes, const Fragments& fragments);

}  // namespace lepard::render
