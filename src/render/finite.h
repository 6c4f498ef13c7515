#pragma once
// The rasterisers' policy for non-finite input (render/soft_rasterize.h, hard_rasterize.h):
// a NaN or Inf coordinate is an error naming the function, the tensor and the first bad
// index, not a triangle skipped in silence (a diverged network would otherwise train or be
// scored on a picture with parts missing).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <sstream>

namespace lepard::render::detail {

inline void check_finite(const at::Tensor& t, const char* function, const char* name) {
  if (t.isfinite().all().item<bool>()) return;
  const auto bad = (~t.isfinite()).nonzero()[0].cpu();
  std::ostringstream where;
  for (int64_t i = 0; i < bad.size(0); ++i) where << (i ? ", " : "") << bad[i].item<int64_t>();
  std::vector<int64_t> idx(bad.data_ptr<int64_t>(), bad.data_ptr<int64_t>() + bad.numel());
  at::Tensor v = t;
  for (auto i : idx) v = v.select(0, i);
  TORCH_CHECK(false, function, ": ", name, " holds NaN or Inf (first at [", where.str(), "] = ", v.item<double>(),
              ", of sizes ", t.sizes(), ")");
}

}  // namespace lepard::render::detail
