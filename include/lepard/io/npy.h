#pragma once
// NumPy .npy files (format versions 1.0 to 3.0), the on-disk format of feature maps
// ([H/8, W/8, D] float32, as real DINO features and the DINO surrogate are stored) and of
// other arrays numpy users want to open.

#include <ATen/core/Tensor.h>

#include <filesystem>

namespace lepard::io {

// Writes a CPU or device tensor (float32, float64, uint8, int32, int64 or bool) as a
// C-order .npy (version 1.0, little-endian), atomically.
void write_npy(const std::filesystem::path& path, const at::Tensor& tensor);

// Reads a .npy: dtypes <f4, <f8, |u1, <i4, <i8, |b1 (and their '=' forms), C or Fortran
// order. Throws std::runtime_error naming the file and what is wrong (bad magic, an
// unsupported or big-endian dtype, a malformed header, data shorter than the shape).
at::Tensor read_npy(const std::filesystem::path& path);

}  // namespace lepard::io
