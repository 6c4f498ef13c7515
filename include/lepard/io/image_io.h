#pragma once
// Image files (OpenCV's codecs).

#include <ATen/core/Tensor.h>

#include <filesystem>

namespace lepard::io {

// Writes a uint8 image, (H, W, 3) RGB or (H, W) grey, as PNG, atomically.
// Throws std::runtime_error naming the path on failure.
void write_png(const std::filesystem::path& path, const at::Tensor& image);

// Reads an image file (PNG, JPEG, ...) as uint8 (H, W, 3) RGB. Throws
// std::runtime_error naming the path when it is missing or not a readable image.
at::Tensor read_image(const std::filesystem::path& path);

}  // namespace lepard::io
