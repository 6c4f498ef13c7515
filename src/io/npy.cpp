#include <lepard/io/atomic_file.h>
#include <lepard/io/npy.h>

#include <ATen/ops/empty.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

namespace lepard::io {

namespace {

struct DType {
  const char* descr;
  at::ScalarType type;
};
constexpr DType kTypes[] = {{"f4", at::kFloat}, {"f8", at::kDouble}, {"u1", at::kByte},
                            {"i4", at::kInt},   {"i8", at::kLong},   {"b1", at::kBool}};

std::runtime_error error(const std::filesystem::path& path, const std::string& what) {
  return std::runtime_error("read_npy: " + path.string() + ": " + what);
}

}  // namespace

void write_npy(const std::filesystem::path& path, const at::Tensor& tensor) {
  const auto t = tensor.detach().cpu().contiguous();
  const char* descr = nullptr;
  for (const auto& d : kTypes) {
    if (d.type == t.scalar_type()) descr = d.descr;
  }
  if (!descr)
    throw std::runtime_error("write_npy(" + path.string() + "): unsupported dtype " +
                             std::string(c10::toString(t.scalar_type())));
  const char order = (t.element_size() == 1) ? '|' : '<';
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i)
    shape += std::to_string(t.size(i)) + (t.dim() == 1 || i + 1 < t.dim() ? "," : "");
  shape += ")";
  std::string header =
      "{'descr': '" + std::string(1, order) + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that the data starts at a multiple of 64 bytes, ending in a newline.
  const size_t prefix = 10;
  header.append(64 - (prefix + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  write_file_atomic(path, out);
}

at::Tensor read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(path, "cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw error(path, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len =
        static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw error(path, "truncated header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw error(path, "unsupported format version " + std::to_string(major));
  }
  if (bytes.size() < offset + header_len) throw error(path, "truncated header");
  const std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([<>|=])([a-z]\\d+)'"))) {
    throw error(path, "header has no readable 'descr': " + header);
  }
  const std::string endian = m[1], code = m[2];
  if (endian == ">")
    throw error(path, "big-endian data ('" + endian + code + "'); convert with arr.astype('<" + code + "')");
  at::ScalarType type = at::kFloat;
  bool known = false;
  for (const auto& d : kTypes) {
    if (code == d.descr) {
      type = d.type;
      known = true;
    }
  }
  if (!known) throw error(path, "unsupported dtype '" + code + "' (supported: f4, f8, u1, i4, i8, b1)");
  const bool fortran = std::regex_search(header, std::regex("'fortran_order'\\s*:\\s*True"));
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)"))) {
    throw error(path, "header has no readable 'shape': " + header);
  }
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  const std::regex number("\\d+");
  // The size the shape declares is checked against the file before anything is allocated
  // (fuzz finding: a header declaring terabytes made the allocation fail out of memory).
  const size_t data_start = offset + header_len;
  const size_t available = bytes.size() - data_start;
  size_t need = c10::elementSize(type);
  bool overflow = false;
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    const std::string digits = it->str();
    if (digits.size() > 15)
      throw error(path, "a dimension of " + std::to_string(digits.size()) + " digits in the shape (" + dims + ")");
    const size_t dim = std::stoull(digits);
    overflow = overflow || (dim != 0 && need > std::numeric_limits<size_t>::max() / dim);
    need *= dim;
    shape.push_back(static_cast<int64_t>(dim));
  }
  // Fortran order: the data is the C-order array of the reversed shape, transposed.
  std::vector<int64_t> stored(shape.rbegin(), shape.rend());
  if (overflow || available < need) {
    throw error(path, "data is " + std::to_string(available) + " bytes, the shape (" + dims + ") needs " +
                          (overflow ? std::string("more than 2^64") : std::to_string(need)) + " (truncated file?)");
  }
  auto out = at::empty(fortran ? stored : shape, at::TensorOptions().dtype(type));
  if (need > 0) std::memcpy(out.data_ptr(), bytes.data() + data_start, need);  // an empty array has no data pointer
  if (fortran) {
    std::vector<int64_t> perm;
    for (int64_t i = out.dim() - 1; i >= 0; --i) perm.push_back(i);
    out = out.permute(perm).contiguous();
  }
  return out;
}

}  // namespace lepard::io
