// CPU kernel of the soft rasteriser: per part, faces are binned into square tiles by
// their bounding box grown by the cutoff radius; within a tile each face visits the pixels its
// box holds, and each pixel gathers its faces' contributions in the tile list's order. With
// binning off, every pixel visits every face (the dense kernel).
#include "soft_rasterize_kernel.h"

#include <Eigen/Core>

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
  T az, bz, cz;              // depths
  T area;                    // twice the signed screen area
  T inv_area;                // 1 / area (0 without area)
  T inv_len2[3];             // 1 / squared length of edges a->b, b->c, c->a (0 for a point)
  T inv_z[3];                // 1 / depth of a, b, c (with depths)
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
using Vec2 = Eigen::Matrix<T, 2, 1>;

// inv_len2: 1 / |b - a|^2, or 0 when a = b (then the closest point is a).
template <typename T>
inline T segment_distance2(T px, T py, T ax, T ay, T bx, T by, T inv_len2, T& t, T& rx, T& ry) {
  const Vec2<T> ab(bx - ax, by - ay), ap(px - ax, py - ay);
  t = ap.dot(ab) * inv_len2;
  t = std::min(std::max(t, T(0)), T(1));
  const Vec2<T> r = ap - t * ab;
  rx = r.x();
  ry = r.y();
  return r.squaredNorm();
}

template <typename T>
inline T edge_function(T px, T py, T ax, T ay, T bx, T by) {
  const Vec2<T> ab(bx - ax, by - ay), ap(px - ax, py - ay);
  return ab.x() * ap.y() - ab.y() * ap.x();
}

// Evaluates face f at pixel (px, py); false when it is truncated (outside, beyond the cutoff).
// e receives the edge functions e(p; a, b), e(p; b, c), e(p; c, a).
template <typename T>
inline bool evaluate(const Face<T>& f, int64_t index, T px, T py, T cutoff, T inv_sigma, Hit<T>& hit, T* e) {
  const T e0 = e[0] = edge_function(px, py, f.ax, f.ay, f.bx, f.by);
  const T e1 = e[1] = edge_function(px, py, f.bx, f.by, f.cx, f.cy);
  const T e2 = e[2] = edge_function(px, py, f.cx, f.cy, f.ax, f.ay);
  const bool inside = f.has_area && ((e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0));
  // Outside an edge's line by more than the cutoff is farther than that from the triangle:
  // e(p; a, b)^2 / |b - a|^2 is the squared distance to the line. The margin leaves the
  // pixels within rounding of the cutoff to the exact test below.
  if (!inside && f.has_area) {
    const T far = cutoff * T(1.0001);
    if ((e0 * f.area < 0 && e0 * e0 * f.inv_len2[0] > far) || (e1 * f.area < 0 && e1 * e1 * f.inv_len2[1] > far) ||
        (e2 * f.area < 0 && e2 * e2 * f.inv_len2[2] > far))
      return false;
  }
  T t, rx, ry, t1, rx1, ry1, t2, rx2, ry2;
  T d2 = segment_distance2(px, py, f.ax, f.ay, f.bx, f.by, f.inv_len2[0], t, rx, ry);
  int edge = 0;
  const T d2b = segment_distance2(px, py, f.bx, f.by, f.cx, f.cy, f.inv_len2[1], t1, rx1, ry1);
  const T d2c = segment_distance2(px, py, f.cx, f.cy, f.ax, f.ay, f.inv_len2[2], t2, rx2, ry2);
  if (d2b < d2) {
    d2 = d2b;
    t = t1;
    rx = rx1;
    ry = ry1;
    edge = 1;
  }
  if (d2c < d2) {
    d2 = d2c;
    t = t2;
    rx = rx2;
    ry = ry2;
    edge = 2;
  }
  if (!inside && d2 >= cutoff) return false;
  hit = {index, T(1) / (T(1) + std::exp(-(inside ? d2 : -d2) * inv_sigma)), rx, ry, t, edge, inside};
  return true;
}

template <typename T>
inline bool evaluate(const Face<T>& f, int64_t index, T px, T py, T cutoff, T inv_sigma, Hit<T>& hit) {
  T e[3];
  return evaluate(f, index, px, py, cutoff, inv_sigma, hit, e);
}

// One part's faces and their tiles.
template <typename T>
struct Bins {
  std::vector<Face<T>> faces;
  std::vector<int64_t> start;  // CSR: faces of tile i are list[start[i] .. start[i + 1])
  std::vector<int64_t> list;
  int64_t tiles_x = 1, tiles_y = 1, tile = 1;
};

// The centre of pixel j of an n-pixel axis, in normalised units: column j of a W-wide image
// has its centre at x = (2j + 1 - W) / W.
template <typename T>
inline T pixel_centre(int64_t j, int64_t n) {
  return T(2 * j + 1 - n) / T(n);
}

// The inverse: floor or ceil of coordinate x's fractional pixel index (x n + n - 1) / 2,
// clamped to [-2, n + 1] first, so that a huge or infinite coordinate (finite vertices far
// off screen) never overflows the cast.
template <typename T>
inline int64_t pixel_index(T x, int64_t n, bool up) {
  const T c = std::min(std::max((x * n + n - 1) / 2, T(-2)), T(n + 1));
  return static_cast<int64_t>(up ? std::ceil(c) : std::floor(c));
}

template <typename T>
void build_bins(const T* xy, int64_t stride, const int64_t* faces, int64_t F, const SoftRasterSettings& s, T radius,
                Bins<T>& bins) {
  const int64_t H = s.height, W = s.width;
  bins.faces.resize(F);
  for (int64_t j = 0; j < F; ++j) {
    Face<T>& f = bins.faces[j];
    for (int c = 0; c < 3; ++c) f.v[c] = faces[3 * j + c];
    f.ax = xy[stride * f.v[0]];
    f.ay = xy[stride * f.v[0] + 1];
    f.bx = xy[stride * f.v[1]];
    f.by = xy[stride * f.v[1] + 1];
    f.cx = xy[stride * f.v[2]];
    f.cy = xy[stride * f.v[2] + 1];
    if (stride >= 3) {
      f.az = xy[stride * f.v[0] + 2];
      f.bz = xy[stride * f.v[1] + 2];
      f.cz = xy[stride * f.v[2] + 2];
    }
    f.area = edge_function(f.cx, f.cy, f.ax, f.ay, f.bx, f.by);
    f.has_area = f.area != 0;
    f.inv_area = f.has_area ? T(1) / f.area : T(0);
    const T ex[3] = {f.bx - f.ax, f.cx - f.bx, f.ax - f.cx}, ey[3] = {f.by - f.ay, f.cy - f.by, f.ay - f.cy};
    for (int e = 0; e < 3; ++e) {
      const T len2 = ex[e] * ex[e] + ey[e] * ey[e];
      f.inv_len2[e] = len2 > 0 ? T(1) / len2 : T(0);
    }
    f.inv_z[0] = stride >= 3 ? T(1) / f.az : T(0);
    f.inv_z[1] = stride >= 3 ? T(1) / f.bz : T(0);
    f.inv_z[2] = stride >= 3 ? T(1) / f.cz : T(0);
    f.xmin = std::min({f.ax, f.bx, f.cx}) - radius;
    f.xmax = std::max({f.ax, f.bx, f.cx}) + radius;
    f.ymin = std::min({f.ay, f.by, f.cy}) - radius;
    f.ymax = std::max({f.ay, f.by, f.cy}) + radius;
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
  // Pixel ranges of each face's grown box.
  std::vector<int64_t> range(4 * F);
  bins.start.assign(n_tiles + 1, 0);
  for (int64_t j = 0; j < F; ++j) {
    const Face<T>& f = bins.faces[j];
    int64_t c0 = pixel_index(f.xmin, W, true), c1 = pixel_index(f.xmax, W, false);
    int64_t r0 = pixel_index(f.ymin, H, true), r1 = pixel_index(f.ymax, H, false);
    c0 = std::max<int64_t>(c0, 0);
    c1 = std::min<int64_t>(c1, W - 1);
    r0 = std::max<int64_t>(r0, 0);
    r1 = std::min<int64_t>(r1, H - 1);
    int64_t* r = &range[4 * j];
    if (c0 > c1 || r0 > r1 || !std::isfinite(f.xmin + f.xmax + f.ymin + f.ymax)) {
      r[0] = 1;
      r[1] = 0;
      r[2] = 1;
      r[3] = 0;  // empty
      continue;
    }
    r[0] = c0 / s.tile_size;
    r[1] = c1 / s.tile_size;
    r[2] = r0 / s.tile_size;
    r[3] = r1 / s.tile_size;
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

// fn(pixel, l, px, py) for each pixel of tile (ty, tx), row by row, l its index within the
// tile (row-major, the tile's width).
template <typename T, typename Fn>
void for_each_pixel_of_tile(const Bins<T>& bins, const SoftRasterSettings& s, int64_t ty, int64_t tx, Fn&& fn) {
  const int64_t H = s.height, W = s.width;
  const int64_t i0 = ty * bins.tile, j0 = tx * bins.tile;
  const int64_t i1 = std::min(H, i0 + bins.tile), j1 = std::min(W, j0 + bins.tile);
  for (int64_t i = i0; i < i1; ++i) {
    const T py = pixel_centre<T>(i, H);
    for (int64_t j = j0; j < j1; ++j) fn(i * W + j, (i - i0) * (j1 - j0) + (j - j0), pixel_centre<T>(j, W), py);
  }
}

// Tile by tile, face-major: calls visit(pixel, l, px, py, face) for every face of the tile
// and every pixel of the tile the face's grown box holds (every pixel in the dense mode), with
// pixel the index in the image and l the index within the tile (row-major, the tile's width);
// then done(pixel, l, px, py) for each pixel of the tile. Each pixel sees its faces in the
// tile list's order, the order a pixel-major loop over the list would give, so sums and
// products come out the same; the face-major loop only spares the pixels outside a face's
// box their test.
template <typename T, typename Visit, typename Done>
void for_each_tile(const Bins<T>& bins, const SoftRasterSettings& s, Visit&& visit, Done&& done) {
  const int64_t H = s.height, W = s.width;
  for (int64_t ty = 0; ty < bins.tiles_y; ++ty) {
    for (int64_t tx = 0; tx < bins.tiles_x; ++tx) {
      const int64_t tile = ty * bins.tiles_x + tx;
      const int64_t i0 = ty * bins.tile, j0 = tx * bins.tile;
      const int64_t i1 = std::min(H, i0 + bins.tile), j1 = std::min(W, j0 + bins.tile);
      const int64_t cols = j1 - j0;
      for (int64_t n = bins.start[tile]; n < bins.start[tile + 1]; ++n) {
        const int64_t face = bins.list[n];
        const Face<T>& f = bins.faces[face];
        int64_t r0 = i0, r1 = i1 - 1, c0 = j0, c1 = j1 - 1;
        if (s.binning) {
          if (!std::isfinite(f.xmin + f.xmax + f.ymin + f.ymax)) continue;  // binned into no tile anyway
          // A box's pixel range, one pixel wider each side than rounding could leave out; the
          // exact test below decides.
          r0 = std::max(r0, pixel_index(f.ymin, H, false) - 1);
          r1 = std::min(r1, pixel_index(f.ymax, H, true) + 1);
          c0 = std::max(c0, pixel_index(f.xmin, W, false) - 1);
          c1 = std::min(c1, pixel_index(f.xmax, W, true) + 1);
        }
        for (int64_t i = r0; i <= r1; ++i) {
          const T py = pixel_centre<T>(i, H);
          if (s.binning && (py < f.ymin || py > f.ymax)) continue;
          for (int64_t j = c0; j <= c1; ++j) {
            const T px = pixel_centre<T>(j, W);
            if (s.binning && (px < f.xmin || px > f.xmax)) continue;
            visit(i * W + j, (i - i0) * cols + (j - j0), px, py, face);
          }
        }
      }
      for_each_pixel_of_tile(bins, s, ty, tx, done);
    }
  }
}

// Every pixel in the order for_each_tile calls `done` for them: fn(pixel, px, py). A backward
// that reads kept hits visits the pixels in this order, so its sums are formed in the order of
// one that evaluates the faces again.
template <typename T, typename Fn>
void for_each_pixel(const Bins<T>& bins, const SoftRasterSettings& s, Fn&& fn) {
  for (int64_t ty = 0; ty < bins.tiles_y; ++ty)
    for (int64_t tx = 0; tx < bins.tiles_x; ++tx)
      for_each_pixel_of_tile(bins, s, ty, tx, [&](int64_t pixel, int64_t, T px, T py) { fn(pixel, px, py); });
}

// The number of pixels of the largest tile (the per-pixel buffers of for_each_tile).
template <typename T>
int64_t tile_pixels(const Bins<T>& bins) {
  return bins.tile * bins.tile;
}

// Hits kept per pixel (see SavedHits): each item's hits in the order the forward met them,
// with each pixel's first hit and number of hits.
template <typename H>
struct HitList {
  std::vector<H> hits;
  std::vector<int64_t> start, count;  // (P) each

  void reset(int64_t pixels) {
    hits.clear();
    start.assign(static_cast<size_t>(pixels), 0);
    count.assign(static_cast<size_t>(pixels), 0);
  }
  template <typename Keep>
  void add(int64_t pixel, const std::vector<H>& from, Keep&& keep) {
    start[pixel] = static_cast<int64_t>(hits.size());
    for (const auto& h : from)
      if (keep(h)) hits.push_back(h);
    count[pixel] = static_cast<int64_t>(hits.size()) - start[pixel];
  }
};

// The same read back from the packed records.
template <typename H>
struct HitListView {
  const H* hits;
  const int64_t* start;  // (P) each
  const int64_t* count;
};

// Packs items' kept hits into kept->records and kept->index (N, 2, P).
template <typename H>
void pack_hits(const std::vector<HitList<H>>& items, int64_t P, const at::TensorOptions& opt, SavedHits* kept) {
  int64_t total = 0;
  for (const auto& k : items) total += static_cast<int64_t>(k.hits.size());
  const auto N = static_cast<int64_t>(items.size());
  kept->records = at::empty({total * static_cast<int64_t>(sizeof(H))}, opt.dtype(at::kByte));
  kept->index = at::empty({N, 2, P}, opt.dtype(at::kLong));
  auto* out = reinterpret_cast<H*>(kept->records.data_ptr<uint8_t>());
  int64_t* index = kept->index.data_ptr<int64_t>();
  int64_t base = 0;
  for (int64_t n = 0; n < N; ++n) {
    const auto& k = items[n];
    std::copy(k.hits.begin(), k.hits.end(), out + base);
    for (int64_t p = 0; p < P; ++p) {
      index[n * P * 2 + p] = base + k.start[p];
      index[n * P * 2 + P + p] = k.count[p];
    }
    base += static_cast<int64_t>(k.hits.size());
  }
}

// Item n's view of packed records, or an empty view when none were kept.
template <typename H>
HitListView<H> view_hits(const SavedHits* kept, int64_t n, int64_t P) {
  if (!kept || !kept->records.defined()) return {nullptr, nullptr, nullptr};
  const int64_t* index = kept->index.data_ptr<int64_t>() + n * P * 2;
  return {reinterpret_cast<const H*>(kept->records.data_ptr<uint8_t>()), index, index + P};
}

void check_kept(const SavedHits* kept, int64_t N, int64_t P) {
  if (!kept || !kept->records.defined()) return;
  TORCH_CHECK(
      kept->index.dim() == 3 && kept->index.size(0) == N && kept->index.size(1) == 2 && kept->index.size(2) == P,
      "soft rasteriser: kept hits of another shape");
}

}  // namespace

at::Tensor soft_silhouettes_forward_cpu(const at::Tensor& verts_in, const at::Tensor& faces_in,
                                        const SoftRasterSettings& s, SavedHits* kept) {
  const auto verts = verts_in.contiguous();
  const auto faces = faces_in.contiguous();
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces.size(0);
  const int64_t P = s.height * s.width;
  auto out = at::empty({B, K, s.height, s.width}, verts.options());
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "soft_silhouettes_forward_cpu", [&] {
    using T = scalar_t;
    const T cutoff = static_cast<T>(s.sigma * std::log(1.0 / s.eps - 1.0));
    const T radius = std::sqrt(cutoff), inv_sigma = static_cast<T>(1.0 / s.sigma);
    const T* vp = verts.data_ptr<T>();
    const int64_t* fp = faces.data_ptr<int64_t>();
    T* op = out.data_ptr<T>();
    std::vector<HitList<Hit<T>>> items(kept ? static_cast<size_t>(B * K) : 0);
    at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
      Bins<T> bins;
      Hit<T> hit;
      std::vector<T> prod;
      std::vector<std::vector<Hit<T>>> buckets;  // per pixel of the tile, when kept
      for (int64_t part = begin; part < end; ++part) {
        build_bins(vp + part * V * 3, 3, fp, F, s, radius, bins);
        prod.assign(static_cast<size_t>(tile_pixels(bins)), T(1));
        T* image = op + part * P;
        HitList<Hit<T>>* item = kept ? &items[part] : nullptr;
        if (item) {
          item->reset(P);
          buckets.resize(static_cast<size_t>(tile_pixels(bins)));
        }
        for_each_tile(
            bins, s,
            [&](int64_t, int64_t l, T px, T py, int64_t face) {
              if (!evaluate(bins.faces[face], face, px, py, cutoff, inv_sigma, hit)) return;
              prod[l] *= 1 - hit.D;
              if (item) buckets[l].push_back(hit);
            },
            [&](int64_t pixel, int64_t l, T, T) {
              image[pixel] = 1 - prod[l];
              prod[l] = 1;
              if (!item) return;
              item->add(pixel, buckets[l], [](const Hit<T>&) { return true; });
              buckets[l].clear();
            });
      }
    });
    if (kept) pack_hits(items, P, verts.options(), kept);
  });
  return out;
}

at::Tensor soft_silhouettes_backward_cpu(const at::Tensor& verts_in, const at::Tensor& faces_in,
                                         const at::Tensor& grad_in, const SoftRasterSettings& s,
                                         const SavedHits* kept) {
  const auto verts = verts_in.contiguous();
  const auto faces = faces_in.contiguous();
  const auto grad = grad_in.contiguous();
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces.size(0);
  const int64_t P = s.height * s.width;
  check_kept(kept, B * K, P);
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
      std::vector<std::vector<Hit<T>>> buckets;  // per pixel of the tile
      std::vector<T> prefix, suffix;
      std::vector<Acc> acc(static_cast<size_t>(V * 2));
      // A pixel's share of dE/dverts from its hits.
      auto shade = [&](T g, const Hit<T>* hits, size_t n) {
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
          acc[2 * v0] += w0 * h.rx;
          acc[2 * v0 + 1] += w0 * h.ry;
          acc[2 * v1] += w1 * h.rx;
          acc[2 * v1 + 1] += w1 * h.ry;
        }
      };
      for (int64_t part = begin; part < end; ++part) {
        const T* g_image = gp + part * P;
        build_bins(vp + part * V * 3, 3, fp, F, s, radius, bins);
        std::fill(acc.begin(), acc.end(), Acc(0));
        const auto view = view_hits<Hit<T>>(kept, part, P);
        if (view.hits) {
          for_each_pixel(bins, s, [&](int64_t pixel, T, T) {
            const T g = g_image[pixel];
            if (g == 0 || view.count[pixel] == 0) return;
            shade(g, view.hits + view.start[pixel], static_cast<size_t>(view.count[pixel]));
          });
        } else {
          buckets.resize(static_cast<size_t>(tile_pixels(bins)));
          Hit<T> hit;
          for_each_tile(
              bins, s,
              [&](int64_t pixel, int64_t l, T px, T py, int64_t face) {
                if (g_image[pixel] == 0) return;
                if (evaluate(bins.faces[face], face, px, py, cutoff, inv_sigma, hit)) buckets[l].push_back(hit);
              },
              [&](int64_t pixel, int64_t l, T, T) {
                auto& hits = buckets[l];
                const T g = g_image[pixel];
                if (g != 0 && !hits.empty()) shade(g, hits.data(), hits.size());
                hits.clear();
              });
        }
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

namespace {

// Per face and pixel: the depth quantities of the attribute aggregation and their inputs.
template <typename T>
struct DepthHit {
  Hit<T> hit;
  T l[3];    // screen barycentrics of A, B, C
  T n[3];    // clamped and renormalised
  T sum_m;   // sum of the clamped ones
  T zp;      // perspective-correct depth
  T zn;      // normalised inverse depth
  T weight;  // exp((zn - zmax) / gamma)
};

// Each part's non-zero attribute channels (CSR): part k's are list[start[k] .. start[k + 1]).
// Attributes from an ownership table are one-hot or nearly, so the channel loops visit few.
struct Channels {
  std::vector<int64_t> start, list;
};

template <typename T>
void nonzero_channels(const T* attr, int64_t K, int64_t C, Channels& out) {
  out.start.assign(static_cast<size_t>(K + 1), 0);
  out.list.clear();
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t c = 0; c < C; ++c)
      if (attr[k * C + c] != T(0)) out.list.push_back(c);
    out.start[k + 1] = static_cast<int64_t>(out.list.size());
  }
}

// One image of soft_attributes: forward writes `image` (C, P); backward (grad != nullptr)
// accumulates into grad_verts (K V, 3) and, unless it is null, grad_attr (K, C).
// Faces whose depth weight underflows to zero (far behind the front at a small gamma) add
// nothing to the image nor to any gradient, so the loops skip them: the result is the same.
// The forward keeps its hits in `record` when it is not null; a backward given them in
// `replay` takes them from there instead of evaluating every face at every pixel again.
template <typename T, typename Acc>
void attribute_image(const Bins<T>& bins, const SoftAttributeSettings& s, int64_t F, int64_t C, const T* attr,
                     const Channels& nz, const T* bg, T* image, const T* grad, Acc* grad_verts, Acc* grad_attr,
                     HitList<DepthHit<T>>* record, const HitListView<DepthHit<T>>* replay) {
  const auto& rs = s.raster;
  const int64_t P = rs.height * rs.width;
  const T cutoff = static_cast<T>(rs.sigma * std::log(1.0 / rs.eps - 1.0));
  const T inv_sigma = static_cast<T>(1.0 / rs.sigma), inv_gamma = static_cast<T>(1.0 / s.gamma);
  const T zfar = static_cast<T>(s.zfar), zrange = static_cast<T>(s.zfar - s.znear), inv_zrange = 1 / zrange;
  const T zback = static_cast<T>(s.background_depth);
  std::vector<Acc> value(static_cast<size_t>(C));
  // The image (forward) or the gradients (backward) at one pixel from its hits, whose depth
  // weights are set relative to zmax.
  auto shade = [&](int64_t pixel, T px, T py, const DepthHit<T>* hits, size_t n, T zmax) {
    // zmax only shifts the exponents for stability: the weights do not depend on it.
    const T delta = std::exp((zback - zmax) * inv_gamma);
    Acc den = delta;
    for (size_t j = 0; j < n; ++j) den += hits[j].hit.D * hits[j].weight;
    for (int64_t c = 0; c < C; ++c) value[c] = delta * (bg ? bg[c] : T(0));
    for (size_t j = 0; j < n; ++j) {
      const auto& x = hits[j];
      if (x.weight == 0) continue;
      const int64_t part = x.hit.face / F;
      const T* a = attr + part * C;
      const Acc num = x.hit.D * x.weight;
      for (int64_t k = nz.start[part]; k < nz.start[part + 1]; ++k) value[nz.list[k]] += num * a[nz.list[k]];
    }
    for (int64_t c = 0; c < C; ++c) value[c] /= den;
    if (!grad) {
      for (int64_t c = 0; c < C; ++c) image[c * P + pixel] = static_cast<T>(value[c]);
      return;
    }
    const T* g = grad + pixel;  // channel c at g[c * P]
    Acc g_value = 0;            // <dE/dI, I>
    for (int64_t c = 0; c < C; ++c) g_value += g[c * P] * value[c];
    for (size_t j = 0; j < n; ++j) {
      const auto& x = hits[j];
      if (x.weight == 0) continue;
      const int64_t part = x.hit.face / F;
      const T* a = attr + part * C;
      const Acc num = x.hit.D * x.weight;
      Acc gj = -g_value;  // dE/dnum_j = <dE/dI, a_j - I> / den
      for (int64_t k = nz.start[part]; k < nz.start[part + 1]; ++k) gj += g[nz.list[k] * P] * a[nz.list[k]];
      if (grad_attr) {
        for (int64_t c = 0; c < C; ++c) grad_attr[part * C + c] += num / den * g[c * P];
      }
      gj /= den;
      const Face<T>& f = bins.faces[x.hit.face];
      Acc* gv[3] = {grad_verts + 3 * f.v[0], grad_verts + 3 * f.v[1], grad_verts + 3 * f.v[2]};
      // Through D_j: as for silhouettes.
      const Acc dd2 = gj * x.weight * (x.hit.inside ? 1 : -1) * x.hit.D * (1 - x.hit.D) * inv_sigma;
      const int e0 = x.hit.edge, e1 = (x.hit.edge + 1) % 3;
      gv[e0][0] += -2 * dd2 * (1 - x.hit.t) * x.hit.rx;
      gv[e0][1] += -2 * dd2 * (1 - x.hit.t) * x.hit.ry;
      gv[e1][0] += -2 * dd2 * x.hit.t * x.hit.rx;
      gv[e1][1] += -2 * dd2 * x.hit.t * x.hit.ry;
      // Through zn_j: zn = (zfar - zp) / zrange, zp = 1 / sum_i n_i / z_i.
      const Acc gzn = gj * num * inv_gamma;
      const Acc ginv = gzn * x.zp * x.zp * inv_zrange;  // dE/d(1/zp)
      Acc gn[3], dot = 0;
      for (int i = 0; i < 3; ++i) {
        gv[i][2] += -ginv * x.n[i] * (f.inv_z[i] * f.inv_z[i]);
        gn[i] = ginv * f.inv_z[i];
        dot += x.n[i] * gn[i];
      }
      Acc gl[3], garea = 0;
      for (int i = 0; i < 3; ++i) {
        gl[i] = x.l[i] > 0 ? (gn[i] - dot) / x.sum_m : Acc(0);
        garea -= gl[i] * x.l[i] * f.inv_area;
      }
      // l_A = e(p; B, C) / area, l_B = e(p; C, A) / area, l_C = e(p; A, B) / area, with
      // e(p; U, W) = (W - U) x (p - U): de/dU = (W_y - p_y, p_x - W_x), de/dW = (p_y - U_y, U_x - p_x).
      const T P0[2] = {f.ax, f.ay}, P1[2] = {f.bx, f.by}, P2[2] = {f.cx, f.cy};
      const T* vx[3] = {P0, P1, P2};
      for (int i = 0; i < 3; ++i) {
        const Acc ge = gl[i] * f.inv_area;
        const int u = (i + 1) % 3, w = (i + 2) % 3;  // the edge opposite vertex i: U -> W
        gv[u][0] += ge * (vx[w][1] - py);
        gv[u][1] += ge * (px - vx[w][0]);
        gv[w][0] += ge * (py - vx[u][1]);
        gv[w][1] += ge * (vx[u][0] - px);
      }
      // area = e(C; A, B).
      gv[0][0] += garea * (P1[1] - P2[1]);
      gv[0][1] += garea * (P2[0] - P1[0]);
      gv[1][0] += garea * (P2[1] - P0[1]);
      gv[1][1] += garea * (P0[0] - P2[0]);
      gv[2][0] += garea * (P0[1] - P1[1]);
      gv[2][1] += garea * (P1[0] - P0[0]);
    }
  };
  if (replay) {
    for_each_pixel(bins, rs, [&](int64_t pixel, T px, T py) {
      const DepthHit<T>* hits = replay->hits + replay->start[pixel];
      const auto n = static_cast<size_t>(replay->count[pixel]);
      T zmax = zback;
      for (size_t k = 0; k < n; ++k) zmax = std::max(zmax, hits[k].zn);
      shade(pixel, px, py, hits, n, zmax);
    });
    return;
  }
  std::vector<std::vector<DepthHit<T>>> buckets(static_cast<size_t>(tile_pixels(bins)));  // per pixel of the tile
  DepthHit<T> h;
  auto visit = [&](int64_t, int64_t l, T px, T py, int64_t face) {
    const Face<T>& f = bins.faces[face];
    if (!f.has_area) return;
    T e[3];
    if (!evaluate(f, face, px, py, cutoff, inv_sigma, h.hit, e)) return;
    // Screen barycentrics: l_A = e(p; B, C) / area, l_B = e(p; C, A) / area, l_C = e(p; A, B) / area.
    h.l[0] = e[1] * f.inv_area;
    h.l[1] = e[2] * f.inv_area;
    h.l[2] = e[0] * f.inv_area;
    const T m0 = std::max(h.l[0], T(0)), m1 = std::max(h.l[1], T(0)), m2 = std::max(h.l[2], T(0));
    h.sum_m = m0 + m1 + m2;
    const T inv_sum = 1 / h.sum_m;
    h.n[0] = m0 * inv_sum;
    h.n[1] = m1 * inv_sum;
    h.n[2] = m2 * inv_sum;
    h.zp = 1 / (h.n[0] * f.inv_z[0] + h.n[1] * f.inv_z[1] + h.n[2] * f.inv_z[2]);
    h.zn = (zfar - h.zp) * inv_zrange;
    buckets[l].push_back(h);
  };
  if (record) record->reset(P);
  for_each_tile(bins, rs, visit, [&](int64_t pixel, int64_t l, T px, T py) {
    auto& hits = buckets[l];
    T zmax = zback;
    for (const auto& x : hits) zmax = std::max(zmax, x.zn);
    for (auto& x : hits) x.weight = std::exp((x.zn - zmax) * inv_gamma);
    shade(pixel, px, py, hits.data(), hits.size(), zmax);
    // Faces of zero weight add nothing, nor do they set zmax: they are not kept.
    if (record) record->add(pixel, hits, [](const DepthHit<T>& x) { return x.weight != 0; });
    hits.clear();
  });
}

// The faces of all K parts of an image, indexing its K * V vertices.
std::vector<int64_t> image_faces(const int64_t* faces, int64_t F, int64_t K, int64_t V) {
  std::vector<int64_t> out(static_cast<size_t>(K * F * 3));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < 3 * F; ++i) out[k * 3 * F + i] = faces[i] + k * V;
  return out;
}

}  // namespace

std::pair<at::Tensor, at::Tensor> soft_attributes_cpu(const at::Tensor& verts_in, const at::Tensor& faces_in,
                                                      const at::Tensor& attr_in, const at::Tensor& bg_in,
                                                      const SoftAttributeSettings& s, const at::Tensor& grad_in,
                                                      bool want_attr_grad, SavedHits* hits) {
  const auto verts = verts_in.contiguous();
  const auto attr = attr_in.contiguous();
  const auto bg = bg_in.defined() ? bg_in.to(verts.options()).contiguous() : at::Tensor();
  const auto grad = grad_in.defined() ? grad_in.contiguous() : at::Tensor();
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces_in.size(0), C = attr.size(2);
  const auto faces = faces_in.contiguous();
  const auto all_faces = image_faces(faces.data_ptr<int64_t>(), F, K, V);
  const bool backward = grad.defined();
  const int64_t P = s.raster.height * s.raster.width;
  const bool record = !backward && hits != nullptr;
  if (backward) check_kept(hits, B, P);
  at::Tensor image, grad_verts, grad_attr;
  if (backward) {
    grad_verts = at::zeros({B, K, V, 3}, verts.options());
    if (want_attr_grad) grad_attr = at::zeros({B, K, C}, verts.options());
  } else {
    image = at::empty({B, C, s.raster.height, s.raster.width}, verts.options());
  }
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "soft_attributes_cpu", [&] {
    using T = scalar_t;
    using Acc = at::acc_type<T, /*is_cuda=*/false>;
    const T cutoff = static_cast<T>(s.raster.sigma * std::log(1.0 / s.raster.eps - 1.0));
    const T radius = std::sqrt(cutoff);
    std::vector<HitList<DepthHit<T>>> kept(record ? static_cast<size_t>(B) : 0);
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      Bins<T> bins;
      Channels nz;
      std::vector<Acc> gv, ga;
      for (int64_t b = begin; b < end; ++b) {
        build_bins(verts.data_ptr<T>() + b * K * V * 3, 3, all_faces.data(), K * F, s.raster, radius, bins);
        const T* a = attr.data_ptr<T>() + b * K * C;
        nonzero_channels(a, K, C, nz);
        const T* bgp = bg.defined() ? bg.data_ptr<T>() : nullptr;
        if (!backward) {
          attribute_image<T, Acc>(bins, s, F, C, a, nz, bgp, image.data_ptr<T>() + b * C * P, nullptr, nullptr, nullptr,
                                  record ? &kept[b] : nullptr, nullptr);
          continue;
        }
        gv.assign(static_cast<size_t>(K * V * 3), Acc(0));
        if (want_attr_grad) ga.assign(static_cast<size_t>(K * C), Acc(0));
        const auto view = view_hits<DepthHit<T>>(hits, b, P);
        attribute_image<T, Acc>(bins, s, F, C, a, nz, bgp, nullptr, grad.data_ptr<T>() + b * C * P, gv.data(),
                                want_attr_grad ? ga.data() : nullptr, nullptr, view.hits ? &view : nullptr);
        T* dv = grad_verts.data_ptr<T>() + b * K * V * 3;
        for (size_t i = 0; i < gv.size(); ++i) dv[i] = static_cast<T>(gv[i]);
        if (!want_attr_grad) continue;
        T* da = grad_attr.data_ptr<T>() + b * K * C;
        for (size_t i = 0; i < ga.size(); ++i) da[i] = static_cast<T>(ga[i]);
      }
    });
    if (record) pack_hits(kept, P, verts.options(), hits);
  });
  return backward ? std::make_pair(grad_verts, grad_attr) : std::make_pair(image, at::Tensor());
}

}  // namespace lepard::render::detail
