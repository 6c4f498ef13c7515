#include "scenes.h"

#include <lepard/core/project_parts.h>

#include "test_support.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>

namespace lepard::testing {

at::Tensor projected_parts(int64_t B, int64_t K, const core::SurfaceGrid& grid, uint64_t seed, double size) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  core::PartParams p;
  p.center = 0.3 * at::randn({B, K, 3}, gen, opt);
  p.rotation = random_quaternion({B, K}, at::kDouble, seed + 1);
  p.shape = random_shape({B, K}, at::kDouble, seed + 2) *
            at::tensor({size, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, at::kDouble);
  core::Camera cam{random_quaternion({B}, at::kDouble, seed + 3), at::tensor({0.0, 0.0, 3.0}).repeat({B, 1}), 2.0};
  return core::project_parts_reference(p, at::Tensor(), cam, grid);
}

}  // namespace lepard::testing
