#include <lepard/io/checkpoint.h>

#include <ATen/ops/empty.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

namespace lepard::io {

namespace fs = std::filesystem;

namespace {
[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw CheckpointError(path.string() + ": " + what);
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

StateDict load_safetensors(const fs::path& path) {
  const std::string b = read_all(path);
  if (b.size() < 8) fail(path, "truncated: shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(b[i])) << (8 * i);
  if (n > b.size() - 8) {
    fail(path, "truncated or not safetensors: the header claims " + std::to_string(n) + " bytes, the file has " +
                   std::to_string(b.size() - 8) + " after the length");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(b.substr(8, n));
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, std::string("the safetensors header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "the safetensors header is not a JSON object");
  static const std::map<std::string, at::ScalarType> types = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool}};
  const size_t data = 8 + n, data_size = b.size() - data;
  // Tensors in the order of their data, which is the order they were written in.
  std::vector<std::pair<uint64_t, std::pair<std::string, at::Tensor>>> ordered;
  for (const auto& [key, info] : header.items()) {
    if (key == "__metadata__") continue;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
      fail(path, "tensor '" + key + "' lacks dtype, shape or data_offsets");
    }
    const auto t = types.find(info["dtype"].get<std::string>());
    if (t == types.end()) fail(path, "tensor '" + key + "' has an unsupported dtype " + info["dtype"].dump());
    const auto shape = info["shape"].get<std::vector<int64_t>>();
    const auto offsets = info["data_offsets"].get<std::vector<uint64_t>>();
    if (offsets.size() != 2 || offsets[1] < offsets[0]) fail(path, "tensor '" + key + "' has malformed data_offsets");
    auto tensor = at::empty(shape, at::TensorOptions().dtype(t->second));
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
    if (offsets[1] - offsets[0] != bytes) {
      fail(path, "tensor '" + key + "': data_offsets span " + std::to_string(offsets[1] - offsets[0]) +
                     " bytes, its shape and dtype need " + std::to_string(bytes));
    }
    if (offsets[1] > data_size) {
      fail(path, "truncated: tensor '" + key + "' needs data bytes " + std::to_string(offsets[0]) + ".." +
                     std::to_string(offsets[1]) + " (file offset " + std::to_string(data + offsets[0]) +
                     "), the data has " + std::to_string(data_size));
    }
    std::memcpy(tensor.data_ptr(), b.data() + data + offsets[0], bytes);
    ordered.push_back({offsets[0], {key, tensor}});
  }
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
  StateDict out;
  for (auto& [offset, entry] : ordered) out.push_back(std::move(entry));
  if (out.empty()) fail(path, "holds no tensors");
  return out;
}

StateDict load_state_dict(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  char head[4] = {0, 0, 0, 0};
  in.read(head, 4);
  if (std::memcmp(head, "PK\x03\x04", 4) == 0 ||
      (static_cast<uint8_t>(head[0]) == 0x80 && static_cast<uint8_t>(head[1]) == 0x02)) {
    return load_torch_checkpoint(path);
  }
  return load_safetensors(path);
}

}  // namespace lepard::io
