#include <lepard/render/hard_rasterize.h>

#include "finite.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace lepard::render {

namespace {
template <typename T>
inline T edge_function(T px, T py, T ax, T ay, T bx, T by) {
  return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}
}  // namespace

Fragments rasterize_hard(const at::Tensor& verts_in, const at::Tensor& faces_in, int64_t H, int64_t W) {
  TORCH_CHECK(verts_in.defined() && verts_in.dim() == 4 && verts_in.size(3) == 3,
              "rasterize_hard: verts must be (B, K, V, 3), got sizes ",
              verts_in.defined() ? verts_in.sizes() : at::IntArrayRef{});
  TORCH_CHECK(faces_in.dim() == 2 && faces_in.size(1) == 3 && faces_in.scalar_type() == at::kLong,
              "rasterize_hard: faces must be (F, 3) int64");
  TORCH_CHECK(H > 0 && W > 0, "rasterize_hard: image size must be positive, got ", H, " x ", W);
  detail::check_finite(verts_in.detach(), "rasterize_hard", "verts");
  const auto verts = verts_in.detach().cpu().contiguous();
  const auto faces = faces_in.cpu().contiguous();
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces.size(0);
  const int64_t* fp = faces.data_ptr<int64_t>();
  for (int64_t i = 0; i < 3 * F; ++i) {
    TORCH_CHECK(fp[i] >= 0 && fp[i] < V, "rasterize_hard: face index ", fp[i], " out of range [0, ", V, ")");
  }
  Fragments out;
  out.part_id = at::full({B, H, W}, -1, at::kLong);
  out.face_id = at::full({B, H, W}, -1, at::kLong);
  out.barycentric = at::zeros({B, H, W, 3}, verts.options());
  out.depth = at::zeros({B, H, W}, verts.options());
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "rasterize_hard", [&] {
    using T = scalar_t;
    const T* vp = verts.data_ptr<T>();
    int64_t* part_id = out.part_id.data_ptr<int64_t>();
    int64_t* face_id = out.face_id.data_ptr<int64_t>();
    T* bary = out.barycentric.data_ptr<T>();
    T* depth = out.depth.data_ptr<T>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> zbuf(static_cast<size_t>(H * W));
      for (int64_t b = begin; b < end; ++b) {
        std::fill(zbuf.begin(), zbuf.end(), std::numeric_limits<T>::infinity());
        for (int64_t k = 0; k < K; ++k) {
          const T* pv = vp + (b * K + k) * V * 3;
          for (int64_t f = 0; f < F; ++f) {
            const T* A = pv + 3 * fp[3 * f];
            const T* Bv = pv + 3 * fp[3 * f + 1];
            const T* C = pv + 3 * fp[3 * f + 2];
            if (!(A[2] > 0 && Bv[2] > 0 && C[2] > 0)) continue;  // behind the camera (or NaN)
            const T area = edge_function(C[0], C[1], A[0], A[1], Bv[0], Bv[1]);
            if (area == 0 || !std::isfinite(area)) continue;
            // Pixel range of the triangle's box; column j has centre x = (2j + 1 - W) / W.
            const T xmin = std::min({A[0], Bv[0], C[0]}), xmax = std::max({A[0], Bv[0], C[0]});
            const T ymin = std::min({A[1], Bv[1], C[1]}), ymax = std::max({A[1], Bv[1], C[1]});
            const int64_t j0 = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((xmin * W + W - 1) / 2)));
            const int64_t j1 = std::min<int64_t>(W - 1, static_cast<int64_t>(std::floor((xmax * W + W - 1) / 2)));
            const int64_t i0 = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((ymin * H + H - 1) / 2)));
            const int64_t i1 = std::min<int64_t>(H - 1, static_cast<int64_t>(std::floor((ymax * H + H - 1) / 2)));
            for (int64_t i = i0; i <= i1; ++i) {
              const T py = T(2 * i + 1 - H) / T(H);
              for (int64_t j = j0; j <= j1; ++j) {
                const T px = T(2 * j + 1 - W) / T(W);
                // Screen-space barycentrics: the weight of a vertex is the opposite edge's function.
                const T la = edge_function(px, py, Bv[0], Bv[1], C[0], C[1]) / area;
                const T lb = edge_function(px, py, C[0], C[1], A[0], A[1]) / area;
                const T lc = edge_function(px, py, A[0], A[1], Bv[0], Bv[1]) / area;
                if (la < 0 || lb < 0 || lc < 0) continue;
                // Perspective-correct: 1/z is affine in screen space.
                const T wa = la / A[2], wb = lb / Bv[2], wc = lc / C[2];
                const T z = 1 / (wa + wb + wc);
                const int64_t pixel = i * W + j;
                if (z >= zbuf[pixel]) continue;
                zbuf[pixel] = z;
                const int64_t o = b * H * W + pixel;
                part_id[o] = k;
                face_id[o] = f;
                depth[o] = z;
                bary[3 * o] = wa * z;
                bary[3 * o + 1] = wb * z;
                bary[3 * o + 2] = wc * z;
              }
            }
          }
        }
      }
    });
  });
  return out;
}

at::Tensor visible_vertices(const Fragments& fragments, const at::Tensor& verts_in, double tolerance) {
  TORCH_CHECK(verts_in.dim() == 4 && verts_in.size(3) == 3, "visible_vertices: verts must be (B, K, V, 3)");
  const auto verts = verts_in.detach().cpu().contiguous();
  const auto depth = fragments.depth.cpu().contiguous().to(verts.scalar_type());
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2);
  const int64_t H = depth.size(1), W = depth.size(2);
  TORCH_CHECK(depth.size(0) == B, "visible_vertices: fragments and verts have different batch sizes");
  auto out = at::zeros({B, K, V}, at::kBool);
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "visible_vertices", [&] {
    using T = scalar_t;
    const T* vp = verts.data_ptr<T>();
    const T* dp = depth.data_ptr<T>();
    bool* op = out.data_ptr<bool>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t n = 0; n < K * V; ++n) {
        const T* p = vp + (b * K * V + n) * 3;
        // The pixel whose square holds the point: column j spans x in [(2j - W)/W, (2j + 2 - W)/W).
        const T fj = std::floor((p[0] + 1) * W / 2), fi = std::floor((p[1] + 1) * H / 2);
        if (!(fj >= 0 && fj < W && fi >= 0 && fi < H)) continue;
        const T d = dp[b * H * W + static_cast<int64_t>(fi) * W + static_cast<int64_t>(fj)];
        op[b * K * V + n] = d > 0 && p[2] <= d + static_cast<T>(tolerance) * p[2];
      }
    }
  });
  return out;
}

}  // namespace lepard::render
