#include <lepard/io/atomic_file.h>
#include <lepard/io/indexed_png.h>

#include "png_chunks.h"

#include <ATen/ops/empty.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace lepard::io {
namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}

void chunk(std::string& out, const char type[5], const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out,
          static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

}  // namespace

void write_indexed_png(const std::filesystem::path& path, const at::Tensor& labels, const Palette& palette) {
  const auto where = path.string() + ": ";
  if (labels.dim() != 2 || labels.scalar_type() != at::kByte)
    throw std::runtime_error(where + "labels must be (H, W) uint8");
  if (palette.empty() || palette.size() > 256) throw std::runtime_error(where + "a palette needs 1 to 256 colours");
  const auto l = labels.cpu().contiguous();
  const int64_t h = l.size(0), w = l.size(1);
  const uint8_t* px = l.data_ptr<uint8_t>();
  for (int64_t i = 0; i < h * w; ++i)
    if (px[i] >= palette.size())
      throw std::runtime_error(where + "label " + std::to_string(px[i]) + " has no palette colour (" +
                               std::to_string(palette.size()) + " given)");
  std::string raw;
  raw.reserve(static_cast<size_t>(h * (w + 1)));
  for (int64_t y = 0; y < h; ++y) {
    raw.push_back('\0');  // filter: none
    raw.append(reinterpret_cast<const char*>(px + y * w), static_cast<size_t>(w));
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), 6) != Z_OK)
    throw std::runtime_error(where + "zlib compression failed");
  packed.resize(packed_size);

  std::string ihdr;
  put_u32(ihdr, static_cast<uint32_t>(w));
  put_u32(ihdr, static_cast<uint32_t>(h));
  ihdr += std::string("\x08\x03\x00\x00\x00", 5);  // depth 8, palette, deflate, filter 0, no interlace
  std::string plte;
  for (const auto& c : palette) plte.append(reinterpret_cast<const char*>(c.data()), 3);
  std::string out(detail::kPngSignature, 8);
  chunk(out, "IHDR", ihdr);
  chunk(out, "PLTE", plte);
  chunk(out, "IDAT", packed);
  chunk(out, "IEND", "");
  write_file_atomic(path, out);
}

at::Tensor read_indexed_png(const std::filesystem::path& path, Palette* palette) {
  const auto where = path.string() + ": ";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(where + "cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int64_t w = 0, h = 0;
  int color = -1, depth = 8;
  std::string idat;
  Palette plte;
  detail::for_each_png_chunk(bytes, where, [&](const std::string& type, const unsigned char* data, uint32_t len) {
    if (type == "IHDR") {
      if (len < 13) throw std::runtime_error(where + "an IHDR chunk of " + std::to_string(len) + " bytes");
      w = detail::png_u32(data);
      h = detail::png_u32(data + 4);
      depth = data[8];
      color = data[9];
      if ((depth != 1 && depth != 2 && depth != 4 && depth != 8) || (color != 3 && color != 0))
        throw std::runtime_error(where + "not a palette or greyscale PNG of at most 8 bits (bit depth " +
                                 std::to_string(depth) + ", colour type " + std::to_string(color) + ")");
      if (data[12] != 0) throw std::runtime_error(where + "interlaced PNGs are not supported");
    } else if (type == "PLTE") {
      for (uint32_t i = 0; i + 2 < len; i += 3) plte.push_back({data[i], data[i + 1], data[i + 2]});
    } else if (type == "IDAT") {
      idat.append(reinterpret_cast<const char*>(data), len);
    }
  });
  if (color < 0) throw std::runtime_error(where + "no IHDR chunk");
  const int64_t stride = (w * depth + 7) / 8;  // bytes per row; filters work on bytes
  std::string raw(static_cast<size_t>(h * (stride + 1)), '\0');
  uLongf raw_size = static_cast<uLongf>(raw.size());
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_size, reinterpret_cast<const Bytef*>(idat.data()),
                 static_cast<uLong>(idat.size())) != Z_OK ||
      raw_size != raw.size())
    throw std::runtime_error(where + "corrupt or truncated image data");
  std::vector<uint8_t> rows(static_cast<size_t>(h * stride));
  for (int64_t y = 0; y < h; ++y) {
    const auto* row = reinterpret_cast<const unsigned char*>(raw.data()) + y * (stride + 1);
    const int filter = row[0];
    uint8_t* cur = rows.data() + y * stride;
    const uint8_t* up = y > 0 ? cur - stride : nullptr;
    for (int64_t x = 0; x < stride; ++x) {
      const int a = x > 0 ? cur[x - 1] : 0, u = up ? up[x] : 0, c = (x > 0 && up) ? up[x - 1] : 0;
      int pred = 0;
      switch (filter) {
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = u;
          break;
        case 3:
          pred = (a + u) / 2;
          break;
        case 4:
          pred = paeth(a, u, c);
          break;
        default:
          throw std::runtime_error(where + "unknown filter " + std::to_string(filter) + " in row " + std::to_string(y));
      }
      cur[x] = static_cast<uint8_t>((row[1 + x] + pred) & 0xff);
    }
  }
  auto out = at::empty({h, w}, at::kByte);
  uint8_t* px = out.data_ptr<uint8_t>();
  const int per_byte = 8 / depth, mask = (1 << depth) - 1;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const uint8_t byte = rows[static_cast<size_t>(y * stride + x / per_byte)];
      const int shift = 8 - depth * (1 + static_cast<int>(x % per_byte));  // most significant bits first
      px[y * w + x] = static_cast<uint8_t>((byte >> shift) & mask);
    }
  if (palette) *palette = plte;
  return out;
}

}  // namespace lepard::io
