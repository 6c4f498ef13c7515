#include <lepard/io/atomic_file.h>
#include <lepard/io/mesh_io.h>

#include <c10/util/Exception.h>

#include <cstdio>
#include <string>

namespace lepard::io {

void write_obj(const std::filesystem::path& path, const at::Tensor& vertices, const at::Tensor& faces,
               const std::vector<std::string>& comments) {
  TORCH_CHECK(vertices.dim() == 2 || vertices.dim() == 3, "write_obj(", path.string(),
              "): vertices must be (V, 3) or (K, V, 3), got sizes ", vertices.sizes());
  TORCH_CHECK(vertices.size(-1) == 3, "write_obj(", path.string(), "): vertices must end in 3, got sizes ",
              vertices.sizes());
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3, "write_obj(", path.string(),
              "): faces must be (F, 3), got sizes ", faces.sizes());
  const auto verts = (vertices.dim() == 2 ? vertices.unsqueeze(0) : vertices).to(at::kDouble).cpu().contiguous();
  const auto tri = faces.to(at::kLong).cpu().contiguous();
  const int64_t K = verts.size(0), V = verts.size(1), F = tri.size(0);
  const double* v = verts.data_ptr<double>();
  const int64_t* f = tri.data_ptr<int64_t>();
  for (int64_t i = 0; i < 3 * F; ++i) {
    TORCH_CHECK(f[i] >= 0 && f[i] < V, "write_obj(", path.string(), "): face index ", f[i], " out of range [0, ",
                V, ")");
  }
  std::string out;
  out.reserve(static_cast<size_t>(K * (V * 40 + F * 24) + 256));
  for (const auto& line : comments) out += "# " + line + "\n";
  char buf[128];
  for (int64_t k = 0; k < K; ++k) {
    out += "o part_" + std::to_string(k) + "\n";
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

}  // namespace lepard::io
