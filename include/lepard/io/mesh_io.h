#pragma once
// Mesh export.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>
#include <vector>

namespace lepard::io {

// Every writer takes parts that share one face list, and writes atomically:
//   vertices: (K, V, 3) or (V, 3), any floating dtype and device;
//   faces: (F, 3) int64 indices into one part's V vertices (shared by all parts);
//   colors: (K, 3) uint8 RGB per part, or undefined (no colours).

// Wavefront OBJ, one object ("o part_<k>") per part. With colours, also <stem>.mtl beside
// it with one material per part ("part_<k>", diffuse colour), used by each object.
//   comments: lines written first, each prefixed with "# ".
void write_obj(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const std::vector<std::string>& comments = {}, const at::Tensor& colors = {});

// Binary little-endian PLY: vertex x y z (float) with red green blue (uchar) when coloured,
// faces as uchar-counted int lists.
void write_ply(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const at::Tensor& colors = {});

// Binary glTF 2.0 (.glb): one mesh with a primitive per part (float32 POSITION with its
// bounds, uint32 indices), each with a material whose base colour is the part's colour.
void write_glb(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const at::Tensor& colors = {});

}  // namespace lepard::io
