#pragma once
// k-means for co-segmentation: k-means++ initialisation, Lloyd iterations as batched
// tensor ops (distances through one matrix product), several restarts, seeded.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::features {

struct KMeansOptions {
  int64_t k = 8;
  int64_t iterations = 300;  // LASSIE's setting
  int64_t restarts = 10;     // LASSIE's setting; the run with the lowest inertia wins
  uint64_t seed = 0;
  double tolerance = 1e-6;  // stop a run when no centroid moves more than this (squared)
};

struct KMeansResult {
  at::Tensor centroids;  // (k, D)
  at::Tensor labels;     // (N) int64
  double inertia = 0;    // sum of squared distances to the assigned centroids
};

// points: (N, D) floating, any device. Deterministic for a seed on a given device.
KMeansResult kmeans(const at::Tensor& points, const KMeansOptions& options = {});

// Squared distances (N, k) of points (N, D) to centroids (k, D), through one matrix product.
at::Tensor squared_distances(const at::Tensor& points, const at::Tensor& centroids);

// The adjusted Rand index of two labelings (N) int64: 1 for identical partitions (up to
// renaming), about 0 for independent ones.
double adjusted_rand_index(const at::Tensor& a, const at::Tensor& b);

}  // namespace lepard::features
