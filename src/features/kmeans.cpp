#include <lepard/features/kmeans.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/argmin.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/minimum.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <limits>
#include <map>
#include <utility>

namespace lepard::features {

namespace {

// Squared distances (N, k) through ||x||^2 - 2 x.c + ||c||^2, clamped at 0.
at::Tensor squared_distances(const at::Tensor& x, const at::Tensor& x2, const at::Tensor& c) {
  return (x2 - 2 * x.matmul(c.t()) + (c * c).sum(1).unsqueeze(0)).clamp_min(0);
}

}  // namespace

at::Tensor squared_distances(const at::Tensor& points, const at::Tensor& centroids) {
  return squared_distances(points, (points * points).sum(1, true), centroids);
}

KMeansResult kmeans(const at::Tensor& points, const KMeansOptions& o) {
  TORCH_CHECK(points.dim() == 2 && points.is_floating_point(), "kmeans: points must be (N, D) floating, got ",
              points.sizes());
  const int64_t N = points.size(0);
  TORCH_CHECK(o.k >= 1 && o.k <= N, "kmeans: k must be in [1, N] = [1, ", N, "], got ", o.k);
  TORCH_CHECK(o.restarts >= 1 && o.iterations >= 1, "kmeans: restarts and iterations must be positive");
  const auto x = points.contiguous();
  const auto x2 = (x * x).sum(1, true);  // (N, 1)
  KMeansResult best;
  best.inertia = std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < o.restarts; ++r) {
    // Sampling happens on the CPU generator, so a seed means the same run on every device.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 1000003 + static_cast<uint64_t>(r));
    // k-means++: each next centre drawn with probability proportional to D^2.
    std::vector<int64_t> chosen{at::randint(N, {1}, gen, at::kLong).item<int64_t>()};
    auto d2 = squared_distances(x, x2, x.index_select(0, at::tensor(chosen).to(x.device()))).squeeze(1);
    for (int64_t j = 1; j < o.k; ++j) {
      const auto w = d2.to(at::kDouble).cpu();
      const int64_t next = w.sum().item<double>() > 0 ? at::multinomial(w, 1, false, gen).item<int64_t>()
                                                      : at::randint(N, {1}, gen, at::kLong).item<int64_t>();
      chosen.push_back(next);
      d2 = at::minimum(d2, squared_distances(x, x2, x.index_select(0, at::tensor({next}).to(x.device()))).squeeze(1));
    }
    auto centroids = x.index_select(0, at::tensor(chosen).to(x.device()));
    at::Tensor labels;
    for (int64_t it = 0; it < o.iterations; ++it) {
      labels = squared_distances(x, x2, centroids).argmin(1);
      // New centroids: per-cluster means (an empty cluster keeps its centroid).
      auto sums = at::zeros_like(centroids).index_add_(0, labels, x);
      const auto counts = at::bincount(labels, {}, o.k).to(x.scalar_type()).unsqueeze(1);
      const auto updated = at::where(counts > 0, sums / counts.clamp_min(1), centroids);
      const double moved = (updated - centroids).pow(2).sum(1).max().item<double>();
      centroids = updated;
      if (moved <= o.tolerance) break;
    }
    labels = squared_distances(x, x2, centroids).argmin(1);
    const double inertia = squared_distances(x, x2, centroids).gather(1, labels.unsqueeze(1)).sum().item<double>();
    if (inertia < best.inertia) best = {centroids, labels, inertia};
  }
  return best;
}

double adjusted_rand_index(const at::Tensor& a_in, const at::Tensor& b_in) {
  TORCH_CHECK(a_in.dim() == 1 && a_in.sizes() == b_in.sizes(), "adjusted_rand_index: two (N) labelings expected");
  const auto a = a_in.to(at::kLong).cpu().contiguous(), b = b_in.to(at::kLong).cpu().contiguous();
  const int64_t N = a.size(0);
  std::map<std::pair<int64_t, int64_t>, double> table;
  std::map<int64_t, double> rows, cols;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t u = a.data_ptr<int64_t>()[i], v = b.data_ptr<int64_t>()[i];
    table[{u, v}] += 1;
    rows[u] += 1;
    cols[v] += 1;
  }
  auto pairs = [](double n) { return n * (n - 1) / 2; };
  double index = 0, sum_rows = 0, sum_cols = 0;
  for (const auto& [key, n] : table) index += pairs(n);
  for (const auto& [key, n] : rows) sum_rows += pairs(n);
  for (const auto& [key, n] : cols) sum_cols += pairs(n);
  const double expected = sum_rows * sum_cols / pairs(static_cast<double>(N));
  const double maximum = (sum_rows + sum_cols) / 2;
  return maximum == expected ? 1.0 : (index - expected) / (maximum - expected);
}

}  // namespace lepard::features
