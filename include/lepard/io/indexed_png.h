#pragma once
// Indexed (palette) PNG for label maps: pseudo-labels and part maps are stored as 8-bit
// indices (0 = background, 1..C = clusters) with a palette, so that any viewer shows them
// in colour and PIL/numpy read back the indices (PIL mode "P"). OpenCV cannot write
// palette PNGs and expands them to RGB when reading, hence this small codec over zlib.

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace lepard::io {

using Palette = std::vector<std::array<uint8_t, 3>>;

// Writes labels (H, W) uint8 as an 8-bit palette PNG, atomically. The palette needs at
// least max(labels) + 1 entries and at most 256. Throws std::runtime_error naming the path.
void write_indexed_png(const std::filesystem::path& path, const at::Tensor& labels, const Palette& palette);

// Reads the indices of a palette or greyscale PNG of 1, 2, 4 or 8 bits (PIL writes small
// palettes with 4 bits; any filter, no interlacing) as
// (H, W) uint8; `palette`, when given, receives the palette (empty for greyscale). Throws
// std::runtime_error naming the path and the problem (not a PNG, another colour type or
// bit depth, a bad CRC, truncated data).
at::Tensor read_indexed_png(const std::filesystem::path& path, Palette* palette = nullptr);

}  // namespace lepard::io
