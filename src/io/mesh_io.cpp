#include <lepard/io/atomic_file.h>
#include <lepard/io/mesh_io.h>

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace lepard::io {

namespace {

struct Parts {
  at::Tensor verts;   // (K, V, 3) double, CPU
  at::Tensor faces;   // (F, 3) int64, CPU
  at::Tensor colors;  // (K, 3) uint8 or undefined
  int64_t K = 0, V = 0, F = 0;
};

// Checks and normalises the arguments every writer takes.
Parts check_parts(const char* writer, const std::filesystem::path& path, const at::Tensor& vertices,
                  const at::Tensor& faces, const at::Tensor& colors) {
  TORCH_CHECK(vertices.dim() == 2 || vertices.dim() == 3, writer, "(", path.string(),
              "): vertices must be (V, 3) or (K, V, 3), got sizes ", vertices.sizes());
  TORCH_CHECK(vertices.size(-1) == 3, writer, "(", path.string(), "): vertices must end in 3, got sizes ",
              vertices.sizes());
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3, writer, "(", path.string(), "): faces must be (F, 3), got sizes ",
              faces.sizes());
  Parts p;
  p.verts = (vertices.dim() == 2 ? vertices.unsqueeze(0) : vertices).to(at::kDouble).cpu().contiguous();
  p.faces = faces.to(at::kLong).cpu().contiguous();
  p.K = p.verts.size(0);
  p.V = p.verts.size(1);
  p.F = p.faces.size(0);
  const int64_t* f = p.faces.data_ptr<int64_t>();
  for (int64_t i = 0; i < 3 * p.F; ++i) {
    TORCH_CHECK(f[i] >= 0 && f[i] < p.V, writer, "(", path.string(), "): face index ", f[i], " out of range [0, ", p.V,
                ")");
  }
  if (colors.defined()) {
    TORCH_CHECK(colors.dim() == 2 && colors.size(0) == p.K && colors.size(1) == 3, writer, "(", path.string(),
                "): colors must be (K, 3) with K = ", p.K, ", got sizes ", colors.sizes());
    p.colors = colors.to(at::kByte).cpu().contiguous();
  }
  return p;
}

template <typename T>
void append(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

}  // namespace

void write_obj(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const std::vector<std::string>& comments, const at::Tensor& colors) {
  const auto parts = check_parts("write_obj", path, vertices, faces, colors);
  const int64_t K = parts.K, V = parts.V, F = parts.F;
  const double* v = parts.verts.data_ptr<double>();
  const int64_t* f = parts.faces.data_ptr<int64_t>();
  std::string out;
  out.reserve(static_cast<size_t>(K * (V * 40 + F * 24) + 256));
  for (const auto& line : comments) out += "# " + line + "\n";
  char buf[128];
  std::string mtl;
  if (parts.colors.defined()) {
    const auto mtl_path = std::filesystem::path(path).replace_extension(".mtl");
    out += "mtllib " + mtl_path.filename().string() + "\n";
    const uint8_t* c = parts.colors.data_ptr<uint8_t>();
    for (int64_t k = 0; k < K; ++k) {
      std::snprintf(buf, sizeof(buf), "newmtl part_%lld\nKd %.4f %.4f %.4f\n\n", static_cast<long long>(k),
                    c[3 * k] / 255.0, c[3 * k + 1] / 255.0, c[3 * k + 2] / 255.0);
      mtl += buf;
    }
    write_file_atomic(mtl_path, mtl);
  }
  for (int64_t k = 0; k < K; ++k) {
    out += "o part_" + std::to_string(k) + "\n";
    if (parts.colors.defined()) out += "usemtl part_" + std::to_string(k) + "\n";
    for (int64_t i = 0; i < V; ++i) {
      const double* p = v + (k * V + i) * 3;
      std::snprintf(buf, sizeof(buf), "v %.6f %.6f %.6f\n", p[0], p[1], p[2]);
      out += buf;
    }
    const int64_t base = k * V + 1;  // OBJ indices are 1-based and global
    for (int64_t i = 0; i < F; ++i) {
      std::snprintf(buf, sizeof(buf), "f %lld %lld %lld\n", static_cast<long long>(f[3 * i] + base),
                    static_cast<long long>(f[3 * i + 1] + base), static_cast<long long>(f[3 * i + 2] + base));
      out += buf;
    }
  }
  write_file_atomic(path, out);
}

void write_ply(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const at::Tensor& colors) {
  const auto parts = check_parts("write_ply", path, vertices, faces, colors);
  const bool colored = parts.colors.defined();
  const int64_t n = parts.K * parts.V, m = parts.K * parts.F;
  std::string out = "ply\nformat binary_little_endian 1.0\ncomment lepard parts: " + std::to_string(parts.K) +
                    " parts of " + std::to_string(parts.V) + " vertices\nelement vertex " + std::to_string(n) +
                    "\nproperty float x\nproperty float y\nproperty float z\n";
  if (colored) out += "property uchar red\nproperty uchar green\nproperty uchar blue\n";
  out += "element face " + std::to_string(m) + "\nproperty list uchar int vertex_indices\nend_header\n";
  const double* v = parts.verts.data_ptr<double>();
  const int64_t* f = parts.faces.data_ptr<int64_t>();
  const uint8_t* rgb = colored ? parts.colors.data_ptr<uint8_t>() : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) append(out, static_cast<float>(v[3 * i + c]));
    if (colored)
      for (int c = 0; c < 3; ++c) append(out, rgb[3 * (i / parts.V) + c]);
  }
  for (int64_t k = 0; k < parts.K; ++k)
    for (int64_t i = 0; i < parts.F; ++i) {
      append(out, static_cast<uint8_t>(3));
      for (int c = 0; c < 3; ++c) append(out, static_cast<int32_t>(f[3 * i + c] + k * parts.V));
    }
  write_file_atomic(path, out);
}

void write_glb(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const at::Tensor& colors) {
  const auto parts = check_parts("write_glb", path, vertices, faces, colors);
  const int64_t K = parts.K, V = parts.V, F = parts.F;
  // Binary buffer: the face indices once (shared by every part), then each part's positions.
  std::string bin;
  const int64_t* f = parts.faces.data_ptr<int64_t>();
  for (int64_t i = 0; i < 3 * F; ++i) append(bin, static_cast<uint32_t>(f[i]));
  const size_t index_bytes = bin.size();
  const double* v = parts.verts.data_ptr<double>();
  std::string accessors, views, primitives, materials;
  char buf[512];
  std::snprintf(buf, sizeof(buf), "{\"buffer\":0,\"byteOffset\":0,\"byteLength\":%zu,\"target\":34963}", index_bytes);
  views += buf;
  std::snprintf(buf, sizeof(buf), "{\"bufferView\":0,\"componentType\":5125,\"count\":%lld,\"type\":\"SCALAR\"}",
                static_cast<long long>(3 * F));
  accessors += buf;
  for (int64_t k = 0; k < K; ++k) {
    const size_t offset = bin.size();
    // The accessor's min and max are those of the float32 values stored, written exactly
    // (%.17g of the float's double value): glTF validators compare them bit for bit.
    float lo[3] = {1e30f, 1e30f, 1e30f}, hi[3] = {-1e30f, -1e30f, -1e30f};
    for (int64_t i = 0; i < V; ++i)
      for (int c = 0; c < 3; ++c) {
        const auto x = static_cast<float>(v[(k * V + i) * 3 + c]);
        lo[c] = std::min(lo[c], x);
        hi[c] = std::max(hi[c], x);
        append(bin, x);
      }
    std::snprintf(buf, sizeof(buf), ",{\"buffer\":0,\"byteOffset\":%zu,\"byteLength\":%zu,\"target\":34962}", offset,
                  static_cast<size_t>(V * 12));
    views += buf;
    std::snprintf(buf, sizeof(buf),
                  ",{\"bufferView\":%lld,\"componentType\":5126,\"count\":%lld,\"type\":\"VEC3\","
                  "\"min\":[%.17g,%.17g,%.17g],\"max\":[%.17g,%.17g,%.17g]}",
                  static_cast<long long>(k + 1), static_cast<long long>(V), static_cast<double>(lo[0]),
                  static_cast<double>(lo[1]), static_cast<double>(lo[2]), static_cast<double>(hi[0]),
                  static_cast<double>(hi[1]), static_cast<double>(hi[2]));
    accessors += buf;
    std::snprintf(buf, sizeof(buf), "%s{\"attributes\":{\"POSITION\":%lld},\"indices\":0,\"material\":%lld}",
                  k ? "," : "", static_cast<long long>(k + 1), static_cast<long long>(k));
    primitives += buf;
    double rgb[3] = {0.8, 0.8, 0.8};
    if (parts.colors.defined())
      for (int c = 0; c < 3; ++c) rgb[c] = parts.colors.data_ptr<uint8_t>()[3 * k + c] / 255.0;
    std::snprintf(buf, sizeof(buf),
                  "%s{\"name\":\"part_%lld\",\"doubleSided\":true,\"pbrMetallicRoughness\":{\"baseColorFactor\":"
                  "[%.4f,%.4f,%.4f,1],\"metallicFactor\":0,\"roughnessFactor\":0.8}}",
                  k ? "," : "", static_cast<long long>(k), rgb[0], rgb[1], rgb[2]);
    materials += buf;
  }
  std::string json =
      "{\"asset\":{\"version\":\"2.0\",\"generator\":\"lepard\"},\"scene\":0,\"scenes\":[{\"nodes\":[0]}],"
      "\"nodes\":[{\"mesh\":0,\"name\":\"parts\"}],\"meshes\":[{\"primitives\":[" +
      primitives + "]}],\"materials\":[" + materials + "],\"accessors\":[" + accessors + "],\"bufferViews\":[" + views +
      "],\"buffers\":[{\"byteLength\":" + std::to_string(bin.size()) + "}]}";
  while (json.size() % 4) json += ' ';
  while (bin.size() % 4) bin += '\0';
  std::string out;
  append(out, static_cast<uint32_t>(0x46546C67));  // "glTF"
  append(out, static_cast<uint32_t>(2));
  append(out, static_cast<uint32_t>(12 + 8 + json.size() + 8 + bin.size()));
  append(out, static_cast<uint32_t>(json.size()));
  append(out, static_cast<uint32_t>(0x4E4F534A));  // "JSON"
  out += json;
  append(out, static_cast<uint32_t>(bin.size()));
  append(out, static_cast<uint32_t>(0x004E4942));  // "BIN"
  out += bin;
  write_file_atomic(path, out);
}

}  // namespace lepard::io
