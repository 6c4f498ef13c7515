#pragma once
// Image files (OpenCV's codecs).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>

namespace lepard::io {

// Writes a uint8 image, (H, W, 3) RGB or (H, W) grey, as PNG, atomically.
// Throws std::runtime_error naming the path on failure.
void write_png(const std::filesystem::path& path, const at::Tensor& image);

// Images above this many pixels are refused from their header (PNG, JPEG) before decoding.
constexpr uint64_t kMaxImagePixels = 100'000'000;

// Reads an image file (PNG, JPEG, ...) as uint8 (H, W, 3) RGB: grey, grey + alpha, palette,
// RGBA (alpha dropped), 16-bit (scaled to 8) and CMYK JPEG files all come out as RGB.
// Throws std::runtime_error naming the path when it is missing, a folder, over
// kMaxImagePixels, or not a readable image.
at::Tensor read_image(const std::filesystem::path& path);

}  // namespace lepard::io
