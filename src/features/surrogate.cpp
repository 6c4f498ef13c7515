#include <lepard/features/surrogate.h>
#include <lepard/data/menagerie.h>
#include <lepard/io/npy.h>

#include <ATen/ops/empty.h>

#include <cmath>
#include <stdexcept>
#include <cstdint>
#include <vector>

namespace lepard::features {

namespace fs = std::filesystem;

namespace {

fs::path sibling(const fs::path& image_path, const char* folder) {
  // root/images/<c>/input_<id>.png -> root/<folder>/<c>/input_<id>.npy
  const auto category = image_path.parent_path().filename();
  const auto root = image_path.parent_path().parent_path().parent_path();
  return root / folder / category / (image_path.stem().string() + ".npy");
}

}  // namespace

fs::path surrogate_features_path(const fs::path& image_path) { return sibling(image_path, "features"); }
fs::path surrogate_saliency_path(const fs::path& image_path) { return sibling(image_path, "saliency"); }

SurrogateMaps load_surrogate(const data::Sample& s, int64_t G, int64_t stride) {
  if (G < 1) throw std::invalid_argument("load_surrogate: grid must be positive");
  const auto fpath = surrogate_features_path(s.image_path), spath = surrogate_saliency_path(s.image_path);
  at::Tensor f, sal;
  for (const auto& [path, out] : {std::pair{fpath, &f}, std::pair{spath, &sal}}) {
    if (!fs::exists(path))
      throw data::DataError(path.string() + ": no DINO surrogate for " + s.image_path.string() +
                            " (lepard-synth writes it; use --weights for real images)");
    try {
      *out = io::read_npy(path).to(at::kFloat).contiguous();
    } catch (const std::exception& e) {
      throw data::DataError(e.what());
    }
  }
  const int64_t gh = s.original_height / stride, gw = s.original_width / stride;
  if (f.dim() != 3 || f.size(0) != gh || f.size(1) != gw)
    throw data::DataError(fpath.string() + ": features of shape " + c10::str(f.sizes()) + " for a " +
                          std::to_string(s.original_height) + "x" + std::to_string(s.original_width) +
                          " image (expected (" + std::to_string(gh) + ", " + std::to_string(gw) + ", D))");
  if (sal.dim() != 2 || sal.size(0) != gh || sal.size(1) != gw)
    throw data::DataError(spath.string() + ": saliency of shape " + c10::str(sal.sizes()) + ", expected (" +
                          std::to_string(gh) + ", " + std::to_string(gw) + ")");
  const int64_t D = f.size(2);
  const auto pad_tensor = data::surrogate_padding_feature(D);
  const float* pad = pad_tensor.data_ptr<float>();
  SurrogateMaps out{at::empty({G, G, D}, at::kFloat), at::empty({G, G}, at::kFloat)};
  const float* fin = f.data_ptr<float>();
  const float* sin = sal.data_ptr<float>();
  float* fo = out.features.data_ptr<float>();
  float* so = out.saliency.data_ptr<float>();
  const double cell = static_cast<double>(s.crop.size) / static_cast<double>(G);  // original pixels per cell
  std::vector<double> acc(static_cast<size_t>(D));
  for (int64_t py = 0; py < G; ++py)
    for (int64_t px = 0; px < G; ++px) {
      // The cell's centre in original pixels, then in stored grid units.
      const double u = (s.crop.left + (px + 0.5) * cell) / stride - 0.5;
      const double v = (s.crop.top + (py + 0.5) * cell) / stride - 0.5;
      const auto x0 = static_cast<int64_t>(std::floor(u)), y0 = static_cast<int64_t>(std::floor(v));
      const double ax = u - x0, ay = v - y0;
      std::fill(acc.begin(), acc.end(), 0.0);
      double sv = 0;
      if (!(u > -0.5 && v > -0.5 && u < gw - 0.5 && v < gh - 0.5)) {
        // Outside the image: the padding feature, no saliency.
        for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] = pad[d];
      } else {
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            const double w = (dx ? ax : 1 - ax) * (dy ? ay : 1 - ay);
            // Inside the image but beyond the last patch centre: clamp to the border patch.
            const int64_t cx = std::min(std::max<int64_t>(x0 + dx, 0), gw - 1);
            const int64_t cy = std::min(std::max<int64_t>(y0 + dy, 0), gh - 1);
            const float* src = fin + (cy * gw + cx) * D;
            for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += w * src[d];
            sv += w * sin[cy * gw + cx];
          }
      }
      double n2 = 0;
      for (const double a : acc) n2 += a * a;
      const double inv = 1 / std::max(std::sqrt(n2), 1e-12);
      for (int64_t d = 0; d < D; ++d) fo[(py * G + px) * D + d] = static_cast<float>(acc[static_cast<size_t>(d)] * inv);
      so[py * G + px] = static_cast<float>(sv);
    }
  return out;
}

}  // namespace lepard::features
