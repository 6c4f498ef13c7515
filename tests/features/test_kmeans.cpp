// k-means: recovers separable clusters (adjusted Rand index above 0.99) and is
// deterministic for a seed; the index itself on known cases.
#include <lepard/features/kmeans.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randperm.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include "test_support.h"

namespace lepard::features {
namespace {

// 8 well separated Gaussian clusters of 200 points in 32 dimensions, shuffled.
std::pair<at::Tensor, at::Tensor> clusters(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto centres = 6 * at::randn({8, 32}, gen, at::TensorOptions().dtype(at::kDouble));
  const auto truth = at::arange(8, at::kLong).repeat_interleave(200);
  auto points = centres.index_select(0, truth) + at::randn({1600, 32}, gen, at::TensorOptions().dtype(at::kDouble));
  const auto order = at::randperm(1600, gen, at::TensorOptions().dtype(at::kLong));
  return {points.index_select(0, order).to(at::kFloat), truth.index_select(0, order)};
}

// On every device: the same clusters, the same seed.
class KMeans : public ::testing::TestWithParam<c10::Device> {};

TEST_P(KMeans, RecoversSeparableClusters) {
  const auto [cpu_points, truth] = clusters(3);
  const auto points = cpu_points.to(GetParam());
  KMeansOptions o;
  o.k = 8;
  o.restarts = 5;
  o.seed = 1;
  const auto r = kmeans(points, o);
  EXPECT_EQ(r.centroids.sizes(), (at::IntArrayRef{8, 32}));
  EXPECT_EQ(r.labels.device(), GetParam());
  EXPECT_GT(adjusted_rand_index(r.labels.cpu(), truth), 0.99);
}

TEST_P(KMeans, DeterministicForASeed) {
  const auto [cpu_points, truth] = clusters(4);
  const auto points = cpu_points.to(GetParam());
  KMeansOptions o;
  o.k = 5;  // not the true k: runs differ by their initialisation
  o.restarts = 2;
  o.seed = 7;
  const auto a = kmeans(points, o), b = kmeans(points, o);
  EXPECT_TRUE(a.labels.equal(b.labels));
  EXPECT_TRUE(a.centroids.equal(b.centroids));
  EXPECT_EQ(a.inertia, b.inertia);
}

INSTANTIATE_TEST_SUITE_P(Devices, KMeans, ::testing::ValuesIn(testing::test_devices()), testing::device_name);

TEST(AdjustedRandIndex, KnownCases) {
  const auto a = at::tensor({0L, 0L, 1L, 1L, 2L, 2L});
  EXPECT_DOUBLE_EQ(adjusted_rand_index(a, a), 1.0);
  EXPECT_DOUBLE_EQ(adjusted_rand_index(a, at::tensor({5L, 5L, 3L, 3L, 9L, 9L})), 1.0);  // renamed
  // One point moved: pair counts 2 (within both), 3 and 4 (per labeling) of 15 give
  // (2 - 3 * 4 / 15) / ((3 + 4) / 2 - 3 * 4 / 15) = 4 / 9.
  EXPECT_NEAR(adjusted_rand_index(a, at::tensor({0L, 0L, 1L, 2L, 2L, 2L})), 4.0 / 9.0, 1e-12);
}

}  // namespace
}  // namespace lepard::features
