#pragma once
// Hard (z-buffer) rasterisation of parts: for each pixel the front-most part and face,
// its barycentric coordinates and depth. Used for visibility, evaluation, overlays and the
// synthetic renderer. Not differentiable; runs on the CPU (other devices are copied).

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::render {

struct Fragments {
  at::Tensor part_id;      // (B, H, W) int64, -1 where no part covers the pixel centre
  at::Tensor face_id;      // (B, H, W) int64, -1 likewise
  at::Tensor barycentric;  // (B, H, W, 3) perspective-correct weights of the face's 3 vertices; 0 on background
  at::Tensor depth;        // (B, H, W) camera depth z of the surface; 0 on background
};

// verts: (B, K, V, 3) projected points (x, y, depth) as from core::project_parts;
// faces: (F, 3) int64. A pixel is covered when its centre lies inside the projected
// triangle (either orientation; edges and vertices count as inside); the smallest depth
// wins, ties go to the lower part and face index. Faces with a vertex at depth <= 0
// (behind the camera) are skipped. NaN or Inf in verts is an error (c10::Error) naming the
// first bad index.
Fragments rasterize_hard(const at::Tensor& verts, const at::Tensor& faces, int64_t height, int64_t width);

// Whether each projected vertex is the front surface at its pixel: it lies in the
// image, the pixel is covered, and the vertex's depth is within `tolerance` (relative to
// its depth) of the pixel's depth. (B, K, V) bool.
at::Tensor visible_vertices(const Fragments& fragments, const at::Tensor& verts, double tolerance = 0.02);

}  // namespace lepard::render
