#include "test_support.h"

#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

namespace lepard::testing {

std::vector<c10::Device> test_devices() {
  std::vector<c10::Device> devices{c10::Device(c10::kCPU)};
  if (at::hasCUDA()) devices.emplace_back(c10::kCUDA, 0);
#ifdef LEPARD_REQUIRE_CUDA
  TORCH_CHECK(at::hasCUDA(), "lepard was configured with LEPARD_WITH_CUDA=ON but no CUDA device is available");
#endif
  return devices;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a.to(at::kDouble).cpu() - b.to(at::kDouble).cpu()).abs().max().item<double>();
}

at::Tensor random_shape(at::IntArrayRef batch, at::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<int64_t> sizes(batch.begin(), batch.end());
  sizes.push_back(11);
  const auto u = at::rand(sizes, gen, at::TensorOptions().dtype(at::kDouble));
  const auto lo = at::tensor({0.5, 0.3, 0.3, 0.3, 0.2, 0.2, -0.9, -0.9, -0.3, -0.5, 0.0}, at::kDouble);
  const auto hi = at::tensor({1.5, 1.0, 1.0, 1.0, 1.7, 1.7, 0.9, 0.9, 0.3, 0.5, 1.0}, at::kDouble);
  return (lo + u * (hi - lo)).to(dtype);
}

at::Tensor edge_case_shapes(at::ScalarType dtype) {
  return at::tensor(
             {
                 1.0, 0.8, 0.6, 0.9, 0.2, 0.2, 0.0,   0.0,  0.0,  0.0,  0.0,  // e at the lower bound, no deformation
                 1.0, 0.8, 0.6, 0.9, 1.7, 1.7, 0.0,   0.0,  0.0,  0.0,  0.0,  // e at the upper bound
                 1.2, 0.5, 0.7, 0.8, 0.2, 1.7, 0.9,   -0.9, 0.0,  0.3,  0.5,  // |t| = 0.9, b1 = 0
                 0.7, 0.9, 0.4, 0.6, 1.7, 0.2, -0.89, 0.89, 0.25, -0.4, 0.8,  // |t| near 0.9 with bending
                 0.9, 0.6, 0.6, 1.0, 1.0, 1.0, 0.5,   0.3,  -0.2, 0.1,  0.0,  // b3 = 0: bending is a shift
             },
             at::kDouble)
      .view({5, 11})
      .to(dtype);
}

at::Tensor random_quaternion(at::IntArrayRef batch, at::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<int64_t> sizes(batch.begin(), batch.end());
  sizes.push_back(4);
  auto q = at::randn(sizes, gen, at::TensorOptions().dtype(at::kDouble));
  q = q / q.norm(2, {-1}, true) *
      (0.5 + 1.5 * at::rand(batch, gen, at::TensorOptions().dtype(at::kDouble))).unsqueeze(-1);
  return q.to(dtype);
}

}  // namespace lepard::testing

#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/autograd.h>

#include <unistd.h>

namespace lepard::testing {

std::filesystem::path temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lepard_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

at::Tensor pointwise_jacobian(const at::Tensor& out, const std::vector<at::Tensor>& inputs) {
  std::vector<at::Tensor> rows;
  for (int64_t r = 0; r < out.size(-1); ++r) {
    const auto grads = torch::autograd::grad({out.select(-1, r).sum()}, inputs, /*grad_outputs=*/{},
                                             /*retain_graph=*/true, /*create_graph=*/false, /*allow_unused=*/true);
    std::vector<at::Tensor> cols;
    for (size_t i = 0; i < inputs.size(); ++i) {
      cols.push_back(grads[i].defined() ? grads[i] : at::zeros_like(inputs[i]));
    }
    rows.push_back(at::cat(cols, -1));
  }
  return at::stack(rows, -2);
}

}  // namespace lepard::testing
