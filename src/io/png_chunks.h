// The chunk structure of a PNG file held in memory (PNG specification, section 5): the
// signature, then chunks of (length, type, data, CRC-32 of type and data) up to IEND.
// for_each_png_chunk checks that every chunk fits in the file, its CRC, and that IEND comes,
// and calls visit(type, data, length) for each chunk before IEND. Errors are
// std::runtime_error messages that start with `where`. Used by the indexed-PNG reader and,
// before OpenCV decodes, by read_image (libpng's own errors go to stderr as raw
// "libpng error" lines and come back from OpenCV only as an empty image).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace lepard::io::detail {

inline const char kPngSignature[] = "\x89PNG\r\n\x1a\n";

inline bool is_png(const std::string& bytes) {
  return bytes.size() >= 8 && bytes.compare(0, 8, std::string(kPngSignature, 8)) == 0;
}

inline uint32_t png_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

template <typename Visit>
void for_each_png_chunk(const std::string& bytes, const std::string& where, Visit&& visit) {
  if (!is_png(bytes)) throw std::runtime_error(where + "not a PNG file");
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t pos = 8;
  while (true) {
    if (pos + 12 > bytes.size()) throw std::runtime_error(where + "truncated at byte " + std::to_string(pos));
    const uint32_t len = png_u32(b + pos);
    const std::string type(bytes, pos + 4, 4);
    if (len > bytes.size() - pos - 12)
      throw std::runtime_error(where + "truncated: chunk " + type + " at byte " + std::to_string(pos) + " needs " +
                               std::to_string(len) + " bytes");
    const auto crc = static_cast<uint32_t>(crc32(0, b + pos + 4, len + 4));
    if (crc != png_u32(b + pos + 8 + len))
      throw std::runtime_error(where + "bad CRC in chunk " + type + " at byte " + std::to_string(pos));
    if (type == "IEND") return;
    visit(type, b + pos + 8, len);
    pos += 12 + size_t{len};
  }
}

}  // namespace lepard::io::detail
