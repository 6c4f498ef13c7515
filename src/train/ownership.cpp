#include <lepard/train/ownership.h>

#include <ATen/ATen.h>

#include <algorithm>
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

at::Tensor assign_ownership(const std::vector<RegionStats>& parts, const std::vector<RegionStats>& clusters,
                            double slack, int64_t capacity) {
  if (!(slack >= 0)) throw std::invalid_argument("assign_ownership: slack must be non-negative");
  if (capacity < 0) throw std::invalid_argument("assign_ownership: capacity must be non-negative");
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
  std::vector<int64_t> assigned(static_cast<size_t>(k), -1), count(static_cast<size_t>(c), 0);
  int64_t mask = states - 1;
  for (int64_t part = k - 1; part >= 0; --part) {
    const int64_t j = choice[static_cast<size_t>(part)][static_cast<size_t>(mask)];
    assigned[static_cast<size_t>(part)] = present[static_cast<size_t>(j)];
    ++count[static_cast<size_t>(present[static_cast<size_t>(j)])];
    mask = from[static_cast<size_t>(part)][static_cast<size_t>(mask)];
  }
  if (capacity > 0) {
    if (capacity * p < k)
      throw std::invalid_argument("assign_ownership: " + std::to_string(p) + " clusters of capacity " +
                                  std::to_string(capacity) + " cannot take " + std::to_string(k) +
                                  " parts (loss.ownership_capacity too small)");
    for (;;) {
      // The cheapest move of a part from a cluster over capacity to one with room.
      double best = std::numeric_limits<double>::infinity();
      int64_t best_part = -1, best_to = -1;
      for (int64_t part = 0; part < k; ++part) {
        const int64_t from_c = assigned[static_cast<size_t>(part)];
        if (count[static_cast<size_t>(from_c)] <= capacity) continue;
        for (const int64_t to : present) {
          if (count[static_cast<size_t>(to)] >= capacity) continue;
          const double extra = cost(part, to) - cost(part, from_c);
          if (extra < best) best = extra, best_part = part, best_to = to;
        }
      }
      if (best_part < 0) break;
      --count[static_cast<size_t>(assigned[static_cast<size_t>(best_part)])];
      ++count[static_cast<size_t>(best_to)];
      assigned[static_cast<size_t>(best_part)] = best_to;
    }
  }
  for (int64_t part = 0; part < k; ++part) {
    const int64_t a = assigned[static_cast<size_t>(part)];
    owned[part][a] = 1.0f;
    if (slack > 0)
      for (const int64_t other : present)
        if (cost(part, other) <= cost(part, a) + slack) owned[part][other] = 1.0f;
  }
  return owned;
}

at::Tensor initial_ownership(const at::Tensor& part_maps, const at::Tensor& labels, int64_t parts, int64_t clusters,
                             double slack, int64_t capacity, const std::vector<bool>& exclude) {
  if (part_maps.sizes() != labels.sizes())
    throw std::invalid_argument("initial_ownership: part maps and pseudo-labels differ in size");
  if (!exclude.empty() && static_cast<int64_t>(exclude.size()) != clusters)
    throw std::invalid_argument("initial_ownership: exclude must have one entry per cluster");
  const auto part_stats = region_stats(part_maps.cpu().to(at::kLong) + 1, parts);
  auto cluster_stats = region_stats(labels, clusters);
  for (size_t j = 0; j < exclude.size(); ++j)
    if (exclude[j]) cluster_stats[j].images = 0;
  return assign_ownership(part_stats, cluster_stats, slack, capacity);
}

std::vector<double> rim_shares(const at::Tensor& labels_in, int64_t clusters) {
  if (labels_in.dim() != 3) throw std::invalid_argument("rim_shares: labels must be (N, H, W)");
  const auto labels = labels_in.cpu().to(at::kLong);
  // Background pixels dilated by one (3 x 3); max-pooling pads with -inf, so the map's edge
  // does not count as background.
  const auto bg = labels.eq(0).to(at::kFloat).unsqueeze(1);
  const auto touch = at::max_pool2d(bg, {3, 3}, {1, 1}, {1, 1}).squeeze(1) > 0.5;
  const auto flat = labels.reshape(-1).clamp(0, clusters);
  const auto all = at::bincount(flat, {}, clusters + 1);
  const auto near = at::bincount(flat.masked_select(touch.reshape(-1)), {}, clusters + 1);
  std::vector<double> out(static_cast<size_t>(clusters), 0.0);
  for (int64_t c = 1; c <= clusters; ++c) {
    const auto n = all[c].item<int64_t>();
    if (n > 0) out[static_cast<size_t>(c - 1)] = static_cast<double>(near[c].item<int64_t>()) / static_cast<double>(n);
  }
  return out;
}

ImageOwnership split_shared_clusters(const at::Tensor& labels_in, const at::Tensor& ownership,
                                     const at::Tensor& part_centers, double min_fraction) {
  if (labels_in.dim() != 3) throw std::invalid_argument("split_shared_clusters: labels must be (B, H, W)");
  if (ownership.dim() != 2) throw std::invalid_argument("split_shared_clusters: ownership must be (K, C)");
  const int64_t b = labels_in.size(0), h = labels_in.size(1), w = labels_in.size(2);
  const int64_t k = ownership.size(0), c = ownership.size(1);
  if (part_centers.sizes() != at::IntArrayRef({b, k, 2}))
    throw std::invalid_argument("split_shared_clusters: part centres must be (B, K, 2)");
  auto labels = labels_in.cpu().to(at::kLong).contiguous().clone();
  const auto own = ownership.cpu().to(at::kFloat).contiguous();
  const auto centers = part_centers.detach().cpu().to(at::kDouble).contiguous();
  auto la = labels.accessor<int64_t, 3>();
  const auto oa = own.accessor<float, 2>();
  const auto ca = centers.accessor<double, 3>();
  std::vector<std::vector<int64_t>> owners(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j)
    for (int64_t part = 0; part < k; ++part)
      if (oa[part][j] > 0.5f) owners[static_cast<size_t>(j)].push_back(part);
  // Per image: the (part, id) pairs owned, and how many extra ids it used.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> pairs(static_cast<size_t>(b));
  int64_t extra_max = 0;
  std::vector<int64_t> comp(static_cast<size_t>(h * w)), stack;
  for (int64_t i = 0; i < b; ++i) {
    int64_t extra = 0;
    for (int64_t j = 0; j < c; ++j) {
      const auto& ow = owners[static_cast<size_t>(j)];
      auto keep_static = [&] {
        for (const int64_t part : ow) pairs[static_cast<size_t>(i)].emplace_back(part, j + 1);
      };
      if (ow.size() < 2) {
        keep_static();
        continue;
      }
      // 8-connected components of cluster j + 1.
      std::fill(comp.begin(), comp.end(), -1);
      std::vector<int64_t> size;
      std::vector<double> sx, sy;
      for (int64_t y0 = 0; y0 < h; ++y0)
        for (int64_t x0 = 0; x0 < w; ++x0) {
          if (la[i][y0][x0] != j + 1 || comp[static_cast<size_t>(y0 * w + x0)] >= 0) continue;
          const auto id = static_cast<int64_t>(size.size());
          size.push_back(0);
          sx.push_back(0);
          sy.push_back(0);
          comp[static_cast<size_t>(y0 * w + x0)] = id;
          stack.assign(1, y0 * w + x0);
          while (!stack.empty()) {
            const int64_t at = stack.back();
            stack.pop_back();
            const int64_t y = at / w, x = at % w;
            ++size.back();
            sx.back() += (2.0 * static_cast<double>(x) + 1.0 - static_cast<double>(w)) / static_cast<double>(w);
            sy.back() += (2.0 * static_cast<double>(y) + 1.0 - static_cast<double>(h)) / static_cast<double>(h);
            for (int64_t dy = -1; dy <= 1; ++dy)
              for (int64_t dx = -1; dx <= 1; ++dx) {
                const int64_t yy = y + dy, xx = x + dx;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w || la[i][yy][xx] != j + 1) continue;
                auto& cc = comp[static_cast<size_t>(yy * w + xx)];
                if (cc >= 0) continue;
                cc = id;
                stack.push_back(yy * w + xx);
              }
          }
        }
      int64_t total = 0;
      for (const int64_t s : size) total += s;
      std::vector<int64_t> order(size.size());
      for (size_t q = 0; q < order.size(); ++q) order[q] = static_cast<int64_t>(q);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t bb) {
        return size[static_cast<size_t>(a)] > size[static_cast<size_t>(bb)];
      });
      std::vector<int64_t> kept;
      for (const int64_t q : order)
        if (kept.size() < ow.size() &&
            static_cast<double>(size[static_cast<size_t>(q)]) >= min_fraction * static_cast<double>(total))
          kept.push_back(q);
      if (kept.size() < 2) {
        keep_static();
        continue;
      }
      auto centroid = [&](int64_t q) {
        const auto n = static_cast<double>(size[static_cast<size_t>(q)]);
        return std::pair<double, double>{sx[static_cast<size_t>(q)] / n, sy[static_cast<size_t>(q)] / n};
      };
      // Each component's piece (index into kept), its new id.
      std::vector<int64_t> piece(size.size(), -1), id(kept.size());
      for (size_t q = 0; q < kept.size(); ++q) {
        piece[static_cast<size_t>(kept[q])] = static_cast<int64_t>(q);
        id[q] = q == 0 ? j + 1 : c + (++extra);
      }
      for (size_t q = 0; q < size.size(); ++q) {
        if (piece[q] >= 0) continue;
        const auto [x, y] = centroid(static_cast<int64_t>(q));
        double best = std::numeric_limits<double>::infinity();
        for (size_t r = 0; r < kept.size(); ++r) {
          const auto [kx, ky] = centroid(kept[r]);
          const double d = (x - kx) * (x - kx) + (y - ky) * (y - ky);
          if (d < best) best = d, piece[q] = static_cast<int64_t>(r);
        }
      }
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t q = comp[static_cast<size_t>(y * w + x)];
          if (q >= 0) la[i][y][x] = id[static_cast<size_t>(piece[static_cast<size_t>(q)])];
        }
      // Owners to pieces, one owner each: the least summed squared distance (exactly, over
      // subsets of owners, for up to 8 owners; closest pair first beyond); then the owners
      // left over to their nearest piece.
      auto dist = [&](int64_t part, size_t r) {
        const auto [kx, ky] = centroid(kept[r]);
        const double dx = ca[i][part][0] - kx, dy = ca[i][part][1] - ky;
        return dx * dx + dy * dy;
      };
      const size_t n = ow.size(), m = kept.size();
      std::vector<int64_t> given(n, -1);
      if (n <= 8) {
        // best[r][mask]: pieces 0..r-1 given to the owners in mask.
        const size_t states = size_t{1} << n;
        const double inf = std::numeric_limits<double>::infinity();
        std::vector<std::vector<double>> best(m + 1, std::vector<double>(states, inf));
        std::vector<std::vector<int8_t>> pick(m + 1, std::vector<int8_t>(states, -1));
        best[0][0] = 0;
        for (size_t r = 0; r < m; ++r)
          for (size_t mask = 0; mask < states; ++mask) {
            if (best[r][mask] == inf) continue;
            for (size_t o = 0; o < n; ++o) {
              if (mask & (size_t{1} << o)) continue;
              const size_t to = mask | (size_t{1} << o);
              const double v = best[r][mask] + dist(ow[o], r);
              if (v < best[r + 1][to]) best[r + 1][to] = v, pick[r + 1][to] = static_cast<int8_t>(o);
            }
          }
        size_t mask = static_cast<size_t>(std::min_element(best[m].begin(), best[m].end()) - best[m].begin());
        for (size_t r = m; r > 0; --r) {
          const auto o = static_cast<size_t>(pick[r][mask]);
          given[o] = static_cast<int64_t>(r - 1);
          mask &= ~(size_t{1} << o);
        }
      } else {
        std::vector<int64_t> taken(m, -1);
        for (size_t round = 0; round < m; ++round) {
          double best = std::numeric_limits<double>::infinity();
          size_t bo = 0, br = 0;
          for (size_t o = 0; o < n; ++o) {
            if (given[o] >= 0) continue;
            for (size_t r = 0; r < m; ++r)
              if (taken[r] < 0 && dist(ow[o], r) < best) best = dist(ow[o], r), bo = o, br = r;
          }
          taken[br] = static_cast<int64_t>(bo);
          given[bo] = static_cast<int64_t>(br);
        }
      }
      for (size_t o = 0; o < ow.size(); ++o) {
        if (given[o] < 0) {
          double best = std::numeric_limits<double>::infinity();
          for (size_t r = 0; r < kept.size(); ++r)
            if (dist(ow[o], r) < best) best = dist(ow[o], r), given[o] = static_cast<int64_t>(r);
        }
        pairs[static_cast<size_t>(i)].emplace_back(ow[o], id[static_cast<size_t>(given[o])]);
      }
    }
    extra_max = std::max(extra_max, extra);
  }
  auto out = at::zeros({b, k, c + extra_max}, at::kFloat);
  auto wa = out.accessor<float, 3>();
  for (int64_t i = 0; i < b; ++i)
    for (const auto& [part, id] : pairs[static_cast<size_t>(i)]) wa[i][part][id - 1] = 1.0f;
  return {labels.to(labels_in.device()), out.to(ownership.device())};
}

ClusterMirror estimate_cluster_mirror(const at::Tensor& labels_in, int64_t clusters) {
  if (labels_in.dim() != 3) throw std::invalid_argument("estimate_cluster_mirror: labels must be (N, H, W)");
  if (clusters < 1 || clusters > 20)
    throw std::invalid_argument("estimate_cluster_mirror: 1 to 20 clusters, got " + std::to_string(clusters));
  const auto labels = labels_in.cpu().to(at::kLong).contiguous();
  const int64_t n = labels.size(0), h = labels.size(1), w = labels.size(2), c = clusters;
  const auto a = labels.accessor<int64_t, 3>();
  // Per image and cluster: the pixel count, the centroid's horizontal offset from the
  // object's centroid over the box width, and its height in the box.
  std::vector<double> count(static_cast<size_t>(n * c), 0), dx(static_cast<size_t>(n * c), 0),
      dy(static_cast<size_t>(n * c), 0), total(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> sx(static_cast<size_t>(c), 0), sy(static_cast<size_t>(c), 0);
    double ox = 0;
    int64_t left = w, right = -1, top = h, bottom = -1;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t r = a[i][y][x];
        if (r <= 0 || r > c) continue;
        const auto k = static_cast<size_t>(i * c + r - 1);
        count[k] += 1;
        sx[static_cast<size_t>(r - 1)] += static_cast<double>(x);
        sy[static_cast<size_t>(r - 1)] += static_cast<double>(y);
        ox += static_cast<double>(x);
        total[static_cast<size_t>(i)] += 1;
        left = std::min(left, x);
        right = std::max(right, x);
        top = std::min(top, y);
        bottom = std::max(bottom, y);
      }
    const double t = total[static_cast<size_t>(i)];
    if (t < 1) continue;
    ox /= t;
    const double width = static_cast<double>(right - left + 1), height = static_cast<double>(bottom - top + 1);
    for (int64_t r = 0; r < c; ++r) {
      const auto k = static_cast<size_t>(i * c + r);
      if (count[k] < 1) continue;
      dx[k] = (sx[static_cast<size_t>(r)] / count[k] - ox) / width;
      dy[k] = (sy[static_cast<size_t>(r)] / count[k] + 0.5 - static_cast<double>(top)) / height;
    }
  }
  // The facing: the first principal direction of the offsets (0 where a cluster is absent).
  const auto offsets = at::from_blob(dx.data(), {n, c}, at::kDouble).clone();
  const auto eig = at::linalg_eigh(offsets.t().mm(offsets));
  const auto axis = std::get<1>(eig).select(1, c - 1).contiguous();
  const auto score = offsets.mv(axis).contiguous();
  const auto sa = score.accessor<double, 1>();
  std::vector<double> magnitude(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) magnitude[static_cast<size_t>(i)] = std::abs(sa[i]);
  auto sorted = magnitude;
  std::sort(sorted.begin(), sorted.end());
  const double threshold = sorted.empty() ? 0.0 : sorted[sorted.size() / 2];

  // Per cluster and facing (0: positive score, 1: negative): mean and squared standard error
  // of four statistics. The floors keep a statistic that happens to agree exactly (a cluster
  // seen in every image) from weighing without bound.
  constexpr int kStats = 4;
  const double floor[kStats] = {0.01, 0.002, 0.01, 0.01};  // presence, area, height, offset
  struct Moments {
    double mean[kStats] = {0, 0, 0, 0}, se2[kStats] = {0, 0, 0, 0};
    bool has_position = false;
  };
  std::vector<Moments> stats(static_cast<size_t>(2 * c));
  ClusterMirror out;
  for (int facing = 0; facing < 2; ++facing) {
    std::vector<int64_t> images;
    for (int64_t i = 0; i < n; ++i)
      if (total[static_cast<size_t>(i)] >= 1 && magnitude[static_cast<size_t>(i)] >= threshold &&
          magnitude[static_cast<size_t>(i)] > 0 && (sa[i] > 0) == (facing == 0))
        images.push_back(i);
    out.side_images += static_cast<int64_t>(images.size());
    const double sign = facing == 0 ? 1.0 : -1.0;
    for (int64_t r = 0; r < c; ++r) {
      // Presence and area over every image of the facing; height and offset where present.
      std::vector<double> values[kStats];
      for (const int64_t i : images) {
        const auto k = static_cast<size_t>(i * c + r);
        const bool present = count[k] >= 1;
        values[0].push_back(present ? 1.0 : 0.0);
        values[1].push_back(count[k] / total[static_cast<size_t>(i)]);
        if (!present) continue;
        values[2].push_back(dy[k]);
        values[3].push_back(sign * dx[k]);
      }
      auto& m = stats[static_cast<size_t>(facing * c + r)];
      m.has_position = values[2].size() >= 2;
      for (int s = 0; s < kStats; ++s) {
        const auto count_s = static_cast<double>(values[s].size());
        if (count_s < 1) continue;
        double sum = 0, sum2 = 0;
        for (const double v : values[s]) {
          sum += v;
          sum2 += v * v;
        }
        m.mean[s] = sum / count_s;
        const double var = std::max(0.0, sum2 / count_s - m.mean[s] * m.mean[s]);
        m.se2[s] = var / count_s + floor[s] * floor[s];
      }
    }
  }
  // One direction of the comparison: cluster p seen facing one way against q the other way.
  auto distance = [&](int64_t p, int facing, int64_t q) {
    const auto& x = stats[static_cast<size_t>(facing * c + p)];
    const auto& y = stats[static_cast<size_t>((1 - facing) * c + q)];
    double d = 0;
    for (int s = 0; s < kStats; ++s) {
      if (s >= 2 && !(x.has_position && y.has_position)) continue;
      const double diff = x.mean[s] - y.mean[s];
      d += diff * diff / (x.se2[s] + y.se2[s]);
    }
    return d;
  };
  auto pair_cost = [&](int64_t p, int64_t q) { return distance(p, 0, q) + distance(p, 1, q); };

  std::vector<int64_t> present;
  for (int64_t r = 0; r < c; ++r) {
    bool seen = false;
    for (int64_t i = 0; i < n && !seen; ++i) seen = count[static_cast<size_t>(i * c + r)] >= 1;
    if (seen) present.push_back(r);
  }
  out.partner.resize(static_cast<size_t>(c));
  out.self_cost.assign(static_cast<size_t>(c), 0.0);
  for (int64_t r = 0; r < c; ++r) {
    out.partner[static_cast<size_t>(r)] = r;
    out.self_cost[static_cast<size_t>(r)] = pair_cost(r, r);
  }
  // The least-cost involution over the present clusters: dp[mask] covers the clusters in
  // mask; the lowest uncovered one is its own mirror or pairs with a higher one (a pair
  // counts for both its clusters, plus kPairMargin: two clusters alike in both facings, such
  // as two torso clusters, stay their own mirrors rather than swap on noise).
  constexpr double kPairMargin = 8.0;
  const auto p = static_cast<int64_t>(present.size());
  const int64_t states = int64_t{1} << p;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> dp(static_cast<size_t>(states), inf);
  std::vector<int8_t> with(static_cast<size_t>(states), -1);
  dp[static_cast<size_t>(states - 1)] = 0;
  for (int64_t mask = states - 2; mask >= 0; --mask) {
    int64_t i = 0;
    while (mask & (int64_t{1} << i)) ++i;
    const int64_t ci = present[static_cast<size_t>(i)];
    double best = out.self_cost[static_cast<size_t>(ci)] + dp[static_cast<size_t>(mask | (int64_t{1} << i))];
    int8_t choice = static_cast<int8_t>(i);
    for (int64_t j = i + 1; j < p; ++j) {
      if (mask & (int64_t{1} << j)) continue;
      const double v = 2.0 * pair_cost(ci, present[static_cast<size_t>(j)]) + kPairMargin +
                       dp[static_cast<size_t>(mask | (int64_t{1} << i) | (int64_t{1} << j))];
      if (v < best) {
        best = v;
        choice = static_cast<int8_t>(j);
      }
    }
    dp[static_cast<size_t>(mask)] = best;
    with[static_cast<size_t>(mask)] = choice;
  }
  out.cost = dp[0];
  for (int64_t mask = 0; mask != states - 1;) {
    int64_t i = 0;
    while (mask & (int64_t{1} << i)) ++i;
    const int64_t j = with[static_cast<size_t>(mask)];
    out.partner[static_cast<size_t>(present[static_cast<size_t>(i)])] = present[static_cast<size_t>(j)];
    out.partner[static_cast<size_t>(present[static_cast<size_t>(j)])] = present[static_cast<size_t>(i)];
    mask |= (int64_t{1} << i) | (int64_t{1} << j);
  }
  return out;
}

std::string cluster_mirror_text(const std::vector<int64_t>& partner) {
  std::string text;
  for (size_t r = 0; r < partner.size(); ++r) {
    const auto q = static_cast<size_t>(partner[r]);
    if (q < r) continue;
    if (!text.empty()) text += ' ';
    text += "c" + std::to_string(r + 1);
    if (q != r) text += "<->c" + std::to_string(q + 1);
  }
  return text;
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

at::Tensor parse_ownership_table(const std::string& text, int64_t parts, int64_t clusters, const std::string& source) {
  std::istringstream in(text);
  std::string line;
  int64_t number = 0, columns = -1, next_row = 0;
  auto owned = at::zeros({parts, clusters}, at::kFloat);
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument(source + ":" + std::to_string(number) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++number;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string t; words >> t;) w.push_back(t);
    if (w.empty() || w[0][0] == '#') continue;
    if (columns < 0) {
      if (w[0] != "part") fail("expected the header \"part c1 c2 ...\", got \"" + line + "\"");
      columns = static_cast<int64_t>(w.size()) - 1;
      for (int64_t j = 0; j < columns; ++j)
        if (w[static_cast<size_t>(j + 1)] != "c" + std::to_string(j + 1))
          fail("header column " + std::to_string(j + 1) + " is \"" + w[static_cast<size_t>(j + 1)] + "\", expected c" +
               std::to_string(j + 1));
      if (columns != clusters)
        fail("the table has " + std::to_string(columns) + " clusters, the pseudo-labels " + std::to_string(clusters));
      continue;
    }
    if (next_row >= parts) fail("more rows than the model's " + std::to_string(parts) + " parts");
    if (w[0] != std::to_string(next_row)) fail("expected the row of part " + std::to_string(next_row));
    if (static_cast<int64_t>(w.size()) != columns + 1)
      fail("part " + w[0] + " has " + std::to_string(w.size() - 1) + " entries, expected " + std::to_string(columns));
    for (int64_t j = 0; j < columns; ++j) {
      const auto& e = w[static_cast<size_t>(j + 1)];
      if (e == "x")
        owned[next_row][j] = 1.0f;
      else if (e != ".")
        fail("entry \"" + e + "\" of part " + w[0] + " is neither '.' nor 'x'");
    }
    ++next_row;
  }
  if (columns < 0) fail("no table (expected a header \"part c1 c2 ...\")");
  if (next_row != parts)
    fail("the table has " + std::to_string(next_row) + " parts, the model " + std::to_string(parts));
  return owned;
}

}  // namespace lepard::train
