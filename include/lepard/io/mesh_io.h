#pragma once
// Mesh export.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>
#include <vector>

namespace lepard::io {

// Writes parts as a Wavefront OBJ, one object ("o part_<k>") per part, atomically.
//   vertices: (K, V, 3) or (V, 3), any floating dtype and device;
//   faces: (F, 3) int64 indices into one part's V vertices (shared by all parts);
//   comments: lines written first, each prefixed with "# ".
void write_obj(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const std::vector<std::string>& comments = {});

}  // namespace lepard::io
