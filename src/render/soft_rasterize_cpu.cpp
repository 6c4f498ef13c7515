// CPU kernel of the soft rasteriser: per part, faces are binned into square tiles by
// their bounding box grown by the cutoff radius, and each pixel visits only its tile's
// faces. With binning off, every pixel visits every face (the dense kernel).
#include "soft_rasterize_kernel.h"

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace lepard::render::detail {

namespace {

template <typename T>
struct Face {
  T ax, ay, bx, by, cx, cy;
  T xmin, xmax, ymin, ymax;  // bounding box grown by the cutoff radius
  int64_t v[3];
  bool has_area;
};

// One face's contribution at one pixel, with what the backward needs.
template <typename T>
struct Hit {
  int64_t face;
  T D;
  T rx, ry;  // pixel minus its closest point on the closest edge
  T t;       // position of that point along the edge
  int edge;  // 0: a->b, 1: b->c, 2: c->a
  bool inside;
};

template <typename T>
inline T segment_distance2(T px, T py, T ax, T ay, T bx, T by, T& t, T& rx, T& ry) {
  const T abx = bx - ax, aby = by - ay, apx = px - ax, apy = py - ay;
  const T len2 = abx * abx + aby * aby;
  t = len2 > 0 ? (apx * abx + apy * aby) / len2 : T(0);
  t = std::min(std::max(t, T(0)), T(1));
  rx = apx - t * abx;
  ry = apy - t * aby;
  return rx * rx + ry * ry;
}

template <typename T>
inline T edge_function(T px, T py, T ax, T ay, T bx, T by) {
  return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

// Evaluates face f at pixel (px, py); false when it is truncated (outside, beyond the cutoff).
template <typename T>
inline bool evaluate(const Face<T>& f, int64_t index, T px, T py, T cutoff, T inv_sigma, Hit<T>& hit) {
  const T e0 = edge_function(px, py, f.ax, f.ay, f.bx, f.by);
  const T e1 = edge_function(px, py, f.bx, f.by, f.cx, f.cy);
  const T e2 = edge_function(px, py, f.cx, f.cy, f.ax, f.ay);
  const bool inside = f.has_area && ((e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0));
  T t, rx, ry, t1, rx1, ry1, t2, rx2, ry2;
  T d2 = segment_distance2(px, py, f.ax, f.ay, f.bx, f.by, t, rx, ry);
  int edge = 0;
  const T d2b = segment_distance2(px, py, f.bx, f.by, f.cx, f.cy, t1, rx1, ry1);
  const T d2c = segment_distance2(px, py, f.cx, f.cy, f.ax, f.ay, t2, rx2, ry2);
  if (d2b < d2) { d2 = d2b; t = t1; rx = rx1; ry = ry1; edge = 1; }
  if (d2c < d2) { d2 = d2c; t = t2; rx = rx2; ry = ry2; edge = 2; }
  if (!inside && d2 >= cutoff) return false;
  hit = {index, T(1) / (T(1) + std::exp(-(inside ? d2 : -d2) * inv_sigma)), rx, ry, t, edge, inside};
  return true;
}

// One part's faces and their tiles.
template <typename T>
struct Bins {
  std::vector<Face<T>> faces;
  std::vector<int64_t> start;   // CSR: faces of tile i are list[start[i] .. start[i + 1])
  std::vector<int64_t> list;
  int64_t tiles_x = 1, tiles_y = 1, tile = 1;
};

template <typename T>
void build_bins(const T* xy, int64_t stride, const int64_t* faces, int64_t F, const SoftRasterSettings& s, T radius,
                Bins<T>& bins) {
  const int64_t H = s.height, W = s.width;
  bins.faces.resize(F);
  for (int64_t j = 0; j < F; ++j) {
    Face<T>& f = bins.faces[j];
    for (int c = 0; c < 3; ++c) f.v[c] = faces[3 * j + c];
    f.ax = xy[stride * f.v[0]]; f.ay = xy[stride * f.v[0] + 1];
    f.bx = xy[stride * f.v[1]]; f.by = xy[stride * f.v[1] + 1];
    f.cx = xy[stride * f.v[2]]; f.cy = xy[stride * f.v[2] + 1];
    f.has_area = edge_function(f.cx, f.cy, f.ax, f.ay, f.bx, f.by) != 0;
    f.xmin = std::min({f.ax, f.bx, f.cx}) - radius; f.xmax = std::max({f.ax, f.bx, f.cx}) + radius;
    f.ymin = std::min({f.ay, f.by, f.cy}) - radius; f.ymax = std::max({f.ay, f.by, f.cy}) + radius;
  }
  if (!s.binning) {  // one tile, every face
    bins.tile = std::max(H, W);
    bins.tiles_x = bins.tiles_y = 1;
    bins.start = {0, F};
    bins.list.resize(F);
    for (int64_t j = 0; j < F; ++j) bins.list[j] = j;
    return;
  }
  bins.tile = s.tile_size;
  bins.tiles_x = (W + s.tile_size - 1) / s.tile_size;
  bins.tiles_y = (H + s.tile_size - 1) / s.tile_size;
  const int64_t n_tiles = bins.tiles_x * bins.tiles_y;
  // Pixel ranges of each face's grown box: column j has centre x = (2j + 1 - W) / W.
  auto col = [&](T x) { return (x * W + W - 1) / 2; };
  auto row = [&](T y) { return (y * H + H - 1) / 2; };
  std::vector<int64_t> range(4 * F);
  bins.start.assign(n_tiles + 1, 0);
  for (int64_t j = 0; j < F; ++j) {
    const Face<T>& f = bins.faces[j];
    int64_t c0 = static_cast<int64_t>(std::ceil(col(f.xmin))), c1 = static_cast<int64_t>(std::floor(col(f.xmax)));
    int64_t r0 = static_cast<int64_t>(std::ceil(row(f.ymin))), r1 = static_cast<int64_t>(std::floor(row(f.ymax)));
    c0 = std::max<int64_t>(c0, 0); c1 = std::min<int64_t>(c1, W - 1);
    r0 = std::max<int64_t>(r0, 0); r1 = std::min<int64_t>(r1, H - 1);
    int64_t* r = &range[4 * j];
    if (c0 > c1 || r0 > r1 || !std::isfinite(f.xmin + f.xmax + f.ymin + f.ymax)) {
      r[0] = 1; r[1] = 0; r[2] = 1; r[3] = 0;  // empty
      continue;
    }
    r[0] = c0 / s.tile_size; r[1] = c1 / s.tile_size; r[2] = r0 / s.tile_size; r[3] = r1 / s.tile_size;
    for (int64_t ty = r[2]; ty <= r[3]; ++ty)
      for (int64_t tx = r[0]; tx <= r[1]; ++tx) ++bins.start[ty * bins.tiles_x + tx + 1];
  }
  for (int64_t i = 0; i < n_tiles; ++i) bins.start[i + 1] += bins.start[i];
  bins.list.resize(bins.start[n_tiles]);
  std::vector<int64_t> fill(bins.start.begin(), bins.start.end() - 1);
  for (int64_t j = 0; j < F; ++j) {
    const int64_t* r = &range[4 * j];
    for (int64_t ty = r[2]; ty <= r[3]; ++ty)
      for (int64_t tx = r[0]; tx <= r[1]; ++tx) bins.list[fill[ty * bins.tiles_x + tx]++] = j;
  }
}

// Calls fn(pixel index, px, py, faces of the pixel's tile) for every pixel of the image.
template <typename T, typename Fn>
void for_each_pixel(const Bins<T>& bins, const SoftRasterSettings& s, Fn&& fn) {
  const int64_t H = s.height, W = s.width;
  for (int64_t ty = 0; ty < bins.tiles_y; ++ty) {
    for (int64_t tx = 0; tx < bins.tiles_x; ++tx) {
      const int64_t tile = ty * bins.tiles_x + tx;
      const int64_t* first = bins.list.data() + bins.start[tile];
      const int64_t count = bins.start[tile + 1] - bins.start[tile];
      const int64_t i1 = std::min(H, (ty + 1) * bins.tile), j1 = std::min(W, (tx + 1) * bins.tile);
      for (int64_t i = ty * bins.tile; i < i1; ++i) {
        const T py = T(2 * i + 1 - H) / T(H);
        for (int64_t j = tx * bins.tile; j < j1; ++j) {
          const T px = T(2 * j + 1 - W) / T(W);
          fn(i * W + j, px, py, first, count);
        }
      }
    }
  }
}

// Whether face f can reach pixel (px, py): its grown box holds the pixel (binned mode only;
// the dense kernel evaluates every face).
template <typename T>
inline bool may_reach(const Face<T>& f, T px, T py, bool binning) {
  return !binning || (px >= f.xmin && px <= f.xmax && py >= f.ymin && py <= f.ymax);
}

}  // namespace

at::Tensor soft_silhouettes_forward_cpu(const at::Tensor& verts_in, const at::Tensor& faces_in,
                                        const SoftRasterSettings& s) {
  const auto verts = verts_in.contiguous();
  const auto faces = faces_in.contiguous();
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces.size(0);
  auto out = at::empty({B, K, s.height, s.width}, verts.options());
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "soft_silhouettes_forward_cpu", [&] {
    using T = scalar_t;
    const T cutoff = static_cast<T>(s.sigma * std::log(1.0 / s.eps - 1.0));
    const T radius = std::sqrt(cutoff), inv_sigma = static_cast<T>(1.0 / s.sigma);
    const T* vp = verts.data_ptr<T>();
    const int64_t* fp = faces.data_ptr<int64_t>();
    T* op = out.data_ptr<T>();
    at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
      Bins<T> bins;
      Hit<T> hit;
      for (int64_t part = begin; part < end; ++part) {
        build_bins(vp + part * V * 3, 3, fp, F, s, radius, bins);
        T* image = op + part * s.height * s.width;
        for_each_pixel(bins, s, [&](int64_t pixel, T px, T py, const int64_t* list, int64_t count) {
          T prod = 1;
          for (int64_t n = 0; n < count; ++n) {
            const Face<T>& f = bins.faces[list[n]];
            if (may_reach(f, px, py, s.binning) && evaluate(f, list[n], px, py, cutoff, inv_sigma, hit)) {
              prod *= 1 - hit.D;
            }
          }
          image[pixel] = 1 - prod;
        });
      }
    });
  });
  return out;
}

at::Tensor soft_silhouettes_backward_cpu(const at::Tensor& verts_in, const at::Tensor& faces_in,
                                         const at::Tensor& grad_in, const SoftRasterSettings& s) {
  const auto verts = verts_in.contiguous();
  const auto faces = faces_in.contiguous();
  const auto grad = grad_in.contiguous();
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces.size(0);
  auto out = at::zeros({B, K, V, 3}, verts.options());
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "soft_silhouettes_backward_cpu", [&] {
    using T = scalar_t;
    using Acc = at::acc_type<T, /*is_cuda=*/false>;
    const T cutoff = static_cast<T>(s.sigma * std::log(1.0 / s.eps - 1.0));
    const T radius = std::sqrt(cutoff), inv_sigma = static_cast<T>(1.0 / s.sigma);
    const T* vp = verts.data_ptr<T>();
    const int64_t* fp = faces.data_ptr<int64_t>();
    const T* gp = grad.data_ptr<T>();
    T* op = out.data_ptr<T>();
    at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
      Bins<T> bins;
      std::vector<Hit<T>> hits;
      std::vector<T> prefix, suffix;
      std::vector<Acc> acc(static_cast<size_t>(V * 2));
      for (int64_t part = begin; part < end; ++part) {
        const T* g_image = gp + part * s.height * s.width;
        build_bins(vp + part * V * 3, 3, fp, F, s, radius, bins);
        std::fill(acc.begin(), acc.end(), Acc(0));
        for_each_pixel(bins, s, [&](int64_t pixel, T px, T py, const int64_t* list, int64_t count) {
          const T g = g_image[pixel];
          if (g == 0) return;
          hits.clear();
          Hit<T> hit;
          for (int64_t n = 0; n < count; ++n) {
            const Face<T>& f = bins.faces[list[n]];
            if (may_reach(f, px, py, s.binning) && evaluate(f, list[n], px, py, cutoff, inv_sigma, hit)) {
              hits.push_back(hit);
            }
          }
          const size_t n = hits.size();
          // dA/dD_j = prod_{i != j} (1 - D_i), from prefix and suffix products (exact, no division).
          prefix.assign(n + 1, T(1));
          suffix.assign(n + 1, T(1));
          for (size_t j = 0; j < n; ++j) prefix[j + 1] = prefix[j] * (1 - hits[j].D);
          for (size_t j = n; j-- > 0;) suffix[j] = suffix[j + 1] * (1 - hits[j].D);
          for (size_t j = 0; j < n; ++j) {
            const Hit<T>& h = hits[j];
            // dD/d(d^2) = delta D (1 - D) / sigma; d(d^2)/dp0 = -2 r (1 - t), d(d^2)/dp1 = -2 r t.
            const T dd2 = g * prefix[j] * suffix[j + 1] * (h.inside ? 1 : -1) * h.D * (1 - h.D) * inv_sigma;
            const Face<T>& f = bins.faces[h.face];
            const int64_t v0 = f.v[h.edge], v1 = f.v[(h.edge + 1) % 3];
            const T w0 = -2 * dd2 * (1 - h.t), w1 = -2 * dd2 * h.t;
            acc[2 * v0] += w0 * h.rx; acc[2 * v0 + 1] += w0 * h.ry;
            acc[2 * v1] += w1 * h.rx; acc[2 * v1 + 1] += w1 * h.ry;
          }
        });
        T* dst = op + part * V * 3;
        for (int64_t v = 0; v < V; ++v) {
          dst[3 * v] = static_cast<T>(acc[2 * v]);
          dst[3 * v + 1] = static_cast<T>(acc[2 * v + 1]);
        }
      }
    });
  });
  return out;
}

}  // namespace lepard::render::detail
