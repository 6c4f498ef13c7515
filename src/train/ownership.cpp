#include <lepard/train/ownership.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace lepard::train {

std::vector<RegionStats> region_stats(const at::Tensor& maps_in, int64_t regions) {
  if (maps_in.dim() != 3) throw std::invalid_argument("region_stats: maps must be (N, H, W)");
  const auto maps = maps_in.cpu().to(at::kLong).contiguous();
  const int64_t n = maps.size(0), h = maps.size(1), w = maps.size(2);
  const auto a = maps.accessor<int64_t, 3>();
  std::vector<RegionStats> out(static_cast<size_t>(regions));
  std::vector<double> sum_y(regions, 0), sum_e(regions, 0), sum_a(regions, 0);
  for (int64_t i = 0; i < n; ++i) {
    // Per region: count, sums of x, y, xx, yy, xy; and the object's box.
    std::vector<double> cnt(regions, 0), sx(regions, 0), sy(regions, 0), sxx(regions, 0), syy(regions, 0),
        sxy(regions, 0);
    int64_t top = h, bottom = -1, total = 0;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t r = a[i][y][x];
        if (r <= 0) continue;
        ++total;
        top = std::min(top, y);
        bottom = std::max(bottom, y);
        if (r > regions) continue;
        const auto k = static_cast<size_t>(r - 1);
        const double fx = static_cast<double>(x), fy = static_cast<double>(y);
        cnt[k] += 1;
        sx[k] += fx;
        sy[k] += fy;
        sxx[k] += fx * fx;
        syy[k] += fy * fy;
        sxy[k] += fx * fy;
      }
    if (total == 0) continue;
    const double height = std::max<double>(1.0, static_cast<double>(bottom - top + 1));
    for (size_t k = 0; k < static_cast<size_t>(regions); ++k) {
      if (cnt[k] < 1) continue;
      const double mx = sx[k] / cnt[k], my = sy[k] / cnt[k];
      const double vxx = sxx[k] / cnt[k] - mx * mx + 1.0 / 12, vyy = syy[k] / cnt[k] - my * my + 1.0 / 12,
                   vxy = sxy[k] / cnt[k] - mx * my;
      const double tr = vxx + vyy, det = vxx * vyy - vxy * vxy;
      const double disc = std::sqrt(std::max(0.0, tr * tr / 4 - det));
      const double l1 = tr / 2 + disc, l2 = std::max(tr / 2 - disc, 1e-6);
      sum_y[k] += (my + 0.5 - static_cast<double>(top)) / height;
      sum_e[k] += std::sqrt(l1 / l2);
      sum_a[k] += cnt[k] / static_cast<double>(total);
      ++out[k].images;
    }
  }
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k].images == 0) continue;
    const double m = static_cast<double>(out[k].images);
    out[k].y = sum_y[k] / m;
    out[k].elongation = sum_e[k] / m;
    out[k].area = sum_a[k] / m;
  }
  return out;
}

at::Tensor assign_ownership(const std::vector<RegionStats>& parts, const std::vector<RegionStats>& clusters) {
  const auto k = static_cast<int64_t>(parts.size()), c = static_cast<int64_t>(clusters.size());
  if (c > 16) throw std::invalid_argument("assign_ownership: at most 16 clusters, got " + std::to_string(c));
  std::vector<int64_t> present;
  for (int64_t j = 0; j < c; ++j)
    if (clusters[static_cast<size_t>(j)].images > 0) present.push_back(j);
  const auto p = static_cast<int64_t>(present.size());
  if (k < p)
    throw std::invalid_argument("assign_ownership: " + std::to_string(k) + " parts cannot own " + std::to_string(p) +
                                " clusters (model.parts must be at least the number of clusters)");
  auto cost = [&](int64_t part, int64_t cl) {
    const auto& a = parts[static_cast<size_t>(part)];
    const auto& b = clusters[static_cast<size_t>(cl)];
    if (a.images == 0) return 0.0;  // a part the template never shows: anywhere is as good
    const double dy = (a.y - b.y) / 0.15;
    const double de = std::log(std::max(a.elongation, 1.0) / std::max(b.elongation, 1.0)) / 0.7;
    const double da = std::log(std::max(a.area, 1e-4) / std::max(b.area, 1e-4)) / 2.0;
    return dy * dy + de * de + da * da;
  };
  // dp[mask]: the least cost of the parts so far with `mask` the set of covered clusters.
  const int64_t states = int64_t{1} << p;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> dp(static_cast<size_t>(states), inf);
  std::vector<std::vector<int8_t>> choice(static_cast<size_t>(k), std::vector<int8_t>(static_cast<size_t>(states), -1));
  std::vector<std::vector<int64_t>> from(static_cast<size_t>(k), std::vector<int64_t>(static_cast<size_t>(states), -1));
  dp[0] = 0;
  for (int64_t part = 0; part < k; ++part) {
    std::vector<double> next(static_cast<size_t>(states), inf);
    for (int64_t mask = 0; mask < states; ++mask) {
      if (dp[static_cast<size_t>(mask)] == inf) continue;
      for (int64_t j = 0; j < p; ++j) {
        const int64_t to = mask | (int64_t{1} << j);
        const double v = dp[static_cast<size_t>(mask)] + cost(part, present[static_cast<size_t>(j)]);
        if (v < next[static_cast<size_t>(to)]) {
          next[static_cast<size_t>(to)] = v;
          choice[static_cast<size_t>(part)][static_cast<size_t>(to)] = static_cast<int8_t>(j);
          from[static_cast<size_t>(part)][static_cast<size_t>(to)] = mask;
        }
      }
    }
    dp = std::move(next);
  }
  auto owned = at::zeros({k, c}, at::kFloat);
  if (p == 0) return owned;
  int64_t mask = states - 1;
  for (int64_t part = k - 1; part >= 0; --part) {
    const int64_t j = choice[static_cast<size_t>(part)][static_cast<size_t>(mask)];
    owned[part][present[static_cast<size_t>(j)]] = 1.0f;
    mask = from[static_cast<size_t>(part)][static_cast<size_t>(mask)];
  }
  return owned;
}

at::Tensor initial_ownership(const at::Tensor& part_maps, const at::Tensor& labels, int64_t parts, int64_t clusters) {
  if (part_maps.sizes() != labels.sizes())
    throw std::invalid_argument("initial_ownership: part maps and pseudo-labels differ in size");
  const auto part_stats = region_stats(part_maps.cpu().to(at::kLong) + 1, parts);
  const auto cluster_stats = region_stats(labels, clusters);
  return assign_ownership(part_stats, cluster_stats);
}

std::string ownership_table(const at::Tensor& ownership) {
  const auto o = ownership.cpu().to(at::kFloat).contiguous();
  const int64_t k = o.size(0), c = o.size(1);
  const auto a = o.accessor<float, 2>();
  std::ostringstream s;
  s << "part  ";
  for (int64_t j = 0; j < c; ++j) s << " c" << (j + 1) << (j + 1 < 10 ? " " : "");
  s << "\n";
  for (int64_t i = 0; i < k; ++i) {
    s << (i < 10 ? "  " : " ") << i << "  ";
    for (int64_t j = 0; j < c; ++j) s << (a[i][j] > 0.5f ? "  x " : "  . ");
    s << "\n";
  }
  return s.str();
}

}  // namespace lepard::train
