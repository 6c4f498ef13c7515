// The MATLAB level-5 file format, as far as a structural check needs it (MathWorks,
// "MAT-File Format", sections 1-2): a 128-byte header, then data elements, each an 8-byte
// tag (type, byte count) or a 4-byte "small" tag with up to 4 bytes of data, padded to 8
// bytes; miCOMPRESSED elements hold a zlib stream of further elements.
#include <lepard/data/mat_check.h>
#include <lepard/data/sample.h>

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace lepard::data {

namespace {

enum : uint32_t {
  miINT8 = 1,
  miINT32 = 5,
  miUINT32 = 6,
  miMATRIX = 14,
  miCOMPRESSED = 15,
};

enum : uint32_t {
  mxCELL = 1,
  mxSTRUCT = 2,
  mxOBJECT = 3,
  mxCHAR = 4,
  mxSPARSE = 5,
  mxUINT64 = 15,
};

// Bytes per value of a numeric data type; 0 for types that hold no plain values.
int64_t type_size(uint32_t type) {
  switch (type) {
    case 1:
    case 2:
    case 16:
      return 1;  // miINT8, miUINT8, miUTF8
    case 3:
    case 4:
    case 17:
      return 2;  // miINT16, miUINT16, miUTF16
    case 5:
    case 6:
    case 7:
    case 18:
      return 4;  // miINT32, miUINT32, miSINGLE, miUTF32
    case 9:
    case 12:
    case 13:
      return 8;  // miDOUBLE, miINT64, miUINT64
    default:
      return 0;
  }
}

int64_t pad8(int64_t n) { return (n + 7) & ~int64_t{7}; }

class Checker {
 public:
  Checker(std::string file, bool swap, const MatCheckLimits& limits)
      : file_(std::move(file)), swap_(swap), limits_(limits) {}

  [[noreturn]] void fail(int64_t offset, const std::string& what) const {
    throw DataError(file_ + ": " + where_ + "byte " + std::to_string(offset) + ": " + what +
                    " (not a readable MATLAB file)");
  }

  uint32_t u32(const uint8_t* p) const {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return swap_ ? __builtin_bswap32(v) : v;
  }
  int32_t i32(const uint8_t* p) const { return static_cast<int32_t>(u32(p)); }

  struct Element {
    uint32_t type = 0;
    int64_t bytes = 0;  // data bytes
    const uint8_t* data = nullptr;
    int64_t offset = 0;  // of the tag
    int64_t next = 0;    // offset of the element after it (padded)
  };

  // The element whose tag starts at `at` in [base, base + size).
  Element element(const uint8_t* base, int64_t size, int64_t at, int64_t offset0) const {
    if (size - at < 8) fail(offset0 + at, "an element tag runs past the end of its container");
    Element e;
    e.offset = offset0 + at;
    const uint32_t first = u32(base + at);
    if ((first >> 16) != 0) {  // small data element: bytes in the upper half, data in the next 4
      e.type = first & 0xffff;
      e.bytes = first >> 16;
      if (e.bytes > 4) fail(e.offset, "a small data element declares " + std::to_string(e.bytes) + " bytes");
      e.data = base + at + 4;
      e.next = at + 8;
      return e;
    }
    e.type = first;
    e.bytes = u32(base + at + 4);
    e.data = base + at + 8;
    const int64_t end = e.type == miCOMPRESSED ? at + 8 + e.bytes : at + 8 + pad8(e.bytes);
    if (at + 8 + e.bytes > size) {
      fail(e.offset, "an element of " + std::to_string(e.bytes) + " bytes runs past the end of its container (" +
                         std::to_string(size - at - 8) + " bytes left)");
    }
    e.next = std::min(end, size);
    return e;
  }

  // Checks the content of a miMATRIX element.
  void matrix(const Element& m, int depth) {
    if (depth > limits_.max_depth) fail(m.offset, "arrays nested deeper than " + std::to_string(limits_.max_depth));
    if (m.bytes == 0) return;  // an empty array
    const uint8_t* base = m.data;
    const int64_t size = m.bytes;
    const int64_t off0 = m.offset + 8;
    int64_t at = 0;
    const Element flags = element(base, size, at, off0);
    if (flags.type != miUINT32 || flags.bytes != 8) fail(flags.offset, "the array flags are not two uint32");
    const uint32_t cls = u32(flags.data) & 0xff;
    const bool complex = (u32(flags.data) & 0x800) != 0;
    const int64_t nzmax = u32(flags.data + 4);
    at = flags.next;
    const Element dims = element(base, size, at, off0);
    if (dims.type != miINT32 || dims.bytes % 4 != 0 || dims.bytes < 8 || dims.bytes > 4 * 32) {
      fail(dims.offset, "the dimensions are not 2 to 32 int32 values");
    }
    int64_t count = 1;
    for (int64_t i = 0; i < dims.bytes / 4; ++i) {
      const int64_t d = i32(dims.data + 4 * i);
      if (d < 0) fail(dims.offset, "a negative dimension (" + std::to_string(d) + ")");
      // Every element needs at least one byte of the file: more than it has is corrupt.
      count = d == 0 ? 0 : (count > (int64_t{1} << 40) / d ? (int64_t{1} << 40) : count * d);
    }
    at = dims.next;
    const Element name = element(base, size, at, off0);
    if (name.type != miINT8) fail(name.offset, "the array name is not an int8 element");
    at = name.next;
    auto enough = [&](int64_t at_, int64_t needed, int64_t per, const std::string& what) {
      if (needed > (size - at_) / per) {
        fail(off0 + at_, "the dimensions declare " + std::to_string(needed) + " " + what + " but only " +
                             std::to_string(size - at_) + " bytes follow");
      }
    };
    if (cls == mxCELL) {
      enough(at, count, 8, "cells");
      for (int64_t i = 0; i < count; ++i) at = child(base, size, at, off0, depth);
    } else if (cls == mxSTRUCT || cls == mxOBJECT) {
      if (cls == mxOBJECT) {
        const Element class_name = element(base, size, at, off0);
        if (class_name.type != miINT8) fail(class_name.offset, "the object's class name is not an int8 element");
        at = class_name.next;
      }
      const Element len = element(base, size, at, off0);
      if (len.type != miINT32 || len.bytes != 4) fail(len.offset, "the field-name length is not one int32");
      const int64_t field_len = i32(len.data);
      if (field_len <= 0 || field_len > 4096) fail(len.offset, "a field-name length of " + std::to_string(field_len));
      at = len.next;
      const Element names = element(base, size, at, off0);
      if (names.type != miINT8 || names.bytes % field_len != 0) {
        fail(names.offset, "the field names are not a multiple of the field-name length");
      }
      const int64_t fields = names.bytes / field_len;
      at = names.next;
      const int64_t n = fields == 0 ? 0 : (count > (int64_t{1} << 40) / fields ? (int64_t{1} << 40) : count * fields);
      enough(at, n, 8, "struct fields");
      for (int64_t i = 0; i < n; ++i) at = child(base, size, at, off0, depth);
    } else if (cls == mxSPARSE) {
      // ir (nzmax int32), jc (columns + 1), real and perhaps imaginary values: bound nzmax.
      enough(at, nzmax, 4, "non-zeros");
      while (at < size) at = element(base, size, at, off0).next;
    } else if (cls >= mxCHAR && cls <= mxUINT64) {  // char, double, single, integers
      for (int part = 0; part < (complex ? 2 : 1); ++part) {
        const Element values = element(base, size, at, off0);
        const int64_t per = type_size(values.type);
        if (per == 0) fail(values.offset, "array data of type " + std::to_string(values.type));
        if (values.bytes / per < count) {
          fail(values.offset, "the dimensions declare " + std::to_string(count) + " values but the data holds " +
                                  std::to_string(values.bytes / per));
        }
        at = values.next;
      }
    } else {
      fail(flags.offset, "array class " + std::to_string(cls) + " (function handles and opaque objects are not read)");
    }
  }

  int64_t child(const uint8_t* base, int64_t size, int64_t at, int64_t off0, int depth) {
    const Element c = element(base, size, at, off0);
    if (c.type != miMATRIX) fail(c.offset, "an element of a cell or struct is of type " + std::to_string(c.type));
    matrix(c, depth + 1);
    return c.next;
  }

  void top_level(const std::vector<uint8_t>& bytes) {
    const int64_t size = static_cast<int64_t>(bytes.size());
    int64_t at = 128;
    while (size - at >= 8) {
      where_.clear();
      const Element e = element(bytes.data(), size, at, 0);
      if (e.type == miMATRIX) {
        matrix(e, 0);
      } else if (e.type == miCOMPRESSED) {
        const auto inflated = inflate(e);
        where_ = "the compressed element at byte " + std::to_string(e.offset) + ", inflated ";
        const int64_t n = static_cast<int64_t>(inflated.size());
        int64_t in = 0;
        while (n - in >= 8) {
          const Element inner = element(inflated.data(), n, in, 0);
          if (inner.type != miMATRIX) fail(inner.offset, "an element of type " + std::to_string(inner.type));
          matrix(inner, 0);
          in = inner.next;
        }
      }
      at = e.next;
    }
  }

  std::vector<uint8_t> inflate(const Element& e) const {
    z_stream z{};
    if (inflateInit(&z) != Z_OK) fail(e.offset, "zlib could not start");
    std::vector<uint8_t> out;
    z.next_in = const_cast<Bytef*>(e.data);
    z.avail_in = static_cast<uInt>(e.bytes);
    int rc = Z_OK;
    while (rc == Z_OK) {
      if (static_cast<int64_t>(out.size()) >= limits_.max_inflated_bytes) {
        inflateEnd(&z);
        fail(e.offset,
             "a compressed element inflates to more than " + std::to_string(limits_.max_inflated_bytes) + " bytes");
      }
      const size_t old = out.size();
      out.resize(std::min<size_t>(std::max<size_t>(2 * old, 1 << 16), static_cast<size_t>(limits_.max_inflated_bytes)));
      z.next_out = out.data() + old;
      z.avail_out = static_cast<uInt>(out.size() - old);
      rc = ::inflate(&z, Z_NO_FLUSH);
      out.resize(out.size() - z.avail_out);
      if (rc == Z_BUF_ERROR && z.avail_in > 0) rc = Z_OK;  // only the output was full
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
      fail(e.offset, std::string("a corrupt or truncated compressed element (zlib: ") +
                         (z.msg ? z.msg : "incomplete stream") + ")");
    }
    return out;
  }

 private:
  std::string file_;
  bool swap_;
  MatCheckLimits limits_;
  std::string where_;
};

}  // namespace

void check_mat_v5(const std::filesystem::path& path, const MatCheckLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 128) {
    throw DataError(path.string() + ": " + std::to_string(bytes.size()) +
                    " bytes, shorter than a MATLAB file's 128-byte header (truncated or another format)");
  }
  const bool little = bytes[126] == 'I' && bytes[127] == 'M';
  const bool big = bytes[126] == 'M' && bytes[127] == 'I';
  if (!little && !big) throw DataError(path.string() + ": no MATLAB endian mark at byte 126 (not a MATLAB file)");
  const bool swap = big;  // this reader runs on little-endian machines (x86-64, aarch64)
  const unsigned version = little ? bytes[124] | (bytes[125] << 8) : (bytes[124] << 8) | bytes[125];
  if (version == 0x0200) {
    throw DataError(path.string() +
                    ": a MATLAB v7.3 (HDF5) file; save it as v7 or older "
                    "(save -v7, scipy.io.savemat), as Pascal-Part's annotations are");
  }
  if (version != 0x0100)
    throw DataError(path.string() + ": MATLAB file version " + std::to_string(version) + " is unknown");
  Checker(path.string(), swap, limits).top_level(bytes);
}

}  // namespace lepard::data
