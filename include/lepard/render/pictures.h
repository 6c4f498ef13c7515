#pragma once
// Pictures of renders as uint8 RGB tensors (H, W, 3), for reports and the demo. Writing
// them to files is io's job (lepard/io/image_io.h).

#include <lepard/render/hard_rasterize.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::render {

// A fixed palette of distinct colours, (n, 3) uint8; colour k is the same in every picture.
at::Tensor part_palette(int64_t n);

// The colour of each part's owned cluster, (K, 3) uint8, from a part-to-cluster ownership
// (K, C) (train/ownership.h): part k gets the colour lepard-prepare gives its cluster in the
// pseudo-label pictures (part_palette(C + 1) row c + 1), so parts standing for one cluster (the
// leg segments) share a colour, the same in every image and beside the pseudo-labels. A part
// that owns several clusters gets the mean of their colours; one that owns none is grey.
at::Tensor owned_cluster_palette(const at::Tensor& ownership);

// (B, H, W) int64 part ids (-1 background) -> (B, H, W, 3) uint8; background black. Part k
// takes row k of `palette` (K, 3) uint8 when given, else of part_palette.
at::Tensor colorize_part_ids(const at::Tensor& part_id, const at::Tensor& palette = {});

// The part ids blended over the images: where a part covers a pixel, alpha x its colour
// (as colorize_part_ids) + (1 - alpha) x the image; elsewhere the image unchanged.
//   images: (B, H, W, 3) uint8;  part_id: (B, H, W) int64, -1 background. Returns (B, H, W, 3) uint8.
at::Tensor overlay_part_ids(const at::Tensor& images, const at::Tensor& part_id, double alpha = 0.55,
                            const at::Tensor& palette = {});

// (B, H, W) depth (0 background) -> (B, H, W, 3) uint8; near is bright, far dark, per image.
at::Tensor colorize_depth(const at::Tensor& depth);

// (B, H, W) values in [0, 1] -> (B, H, W, 3) uint8 grey.
at::Tensor colorize_probability(const at::Tensor& prob);

// Soft part colours: the depth-aware soft render (soft_attributes) of each part's palette
// colour, as (B, H, W, 3) uint8. verts: (B, K, V, 3) projected; faces (F, 3).
at::Tensor soft_part_colours(const at::Tensor& verts, const at::Tensor& faces, int64_t height, int64_t width,
                             double sigma);

// One sheet for a batch: a row per picture kind, a column per image, 2-pixel gaps:
// the union of the soft silhouettes, the soft part colours (front part winning), the hard
// part ids, and the hard depth.
//   silhouettes: (B, K, H, W);  part_colours: (B, H, W, 3) uint8;  fragments: hard rasteriser output.
at::Tensor render_sheet(const at::Tensor& silhouettes, const at::Tensor& part_colours, const Fragments& fragments);

}  // namespace lepard::render
