#pragma once
// Scenes shared by the render tests.

#include <lepard/core/surface_grid.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::testing {

// B images of K random parts (sizes scaled by `size`) projected by the geometry core,
// as (B, K, V, 3) float64: what the rasterisers receive in training.
at::Tensor projected_parts(int64_t B, int64_t K, const core::SurfaceGrid& grid, uint64_t seed, double size);

}  // namespace lepard::testing
