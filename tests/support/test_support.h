#pragma once
// Shared helpers for lepard's GoogleTest suites.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lepard::testing {

// Every device the suites run on: the CPU, and CUDA when LibTorch has it. A build
// configured with LEPARD_WITH_CUDA=ON fails here instead of silently skipping CUDA.
std::vector<c10::Device> test_devices();

// The name of a device-parameterised instance: "CPU" or "CUDA" (INSTANTIATE_TEST_SUITE_P's
// last argument).
inline std::string device_name(const ::testing::TestParamInfo<c10::Device>& info) {
  return info.param.is_cpu() ? std::string("CPU") : std::string("CUDA");
}

// max |a - b| as a double (0 for empty tensors).
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

// Random q_s (..., 11) inside lepard's bounded ranges: a0 in [0.5, 1.5], a1..a3 in
// [0.3, 1], e1, e2 in [0.2, 1.7], t1, t2 in [-0.9, 0.9], b1 in [-0.3, 0.3],
// b2 in [-0.5, 0.5], b3 in [0, 1].
at::Tensor random_shape(at::IntArrayRef batch, at::ScalarType dtype, uint64_t seed);

// Edge cases of q_s (N, 11): squareness at both bounds, tapers near +-0.9, no bending,
// no region of influence.
at::Tensor edge_case_shapes(at::ScalarType dtype);

// Random quaternions (..., 4), not normalised (norms in about [0.5, 2]).
at::Tensor random_quaternion(at::IntArrayRef batch, at::ScalarType dtype, uint64_t seed);

}  // namespace lepard::testing

namespace lepard::testing {

// A new empty folder under the system's temporary folder, unique to this process.
std::filesystem::path temp_dir(const std::string& name);

// Autograd Jacobian of a point-wise map: `out` (N, R) where row n depends only on row n
// of each input (N, C_i). Returns (N, R, sum_i C_i), columns in input order. Inputs
// that `out` does not depend on give zero columns.
at::Tensor pointwise_jacobian(const at::Tensor& out, const std::vector<at::Tensor>& inputs);

// Runs `f` and expects it to throw an E whose message contains `needle`.
template <typename E, typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    return;
  }
  ADD_FAILURE() << "no exception containing '" << needle << "'";
}

}  // namespace lepard::testing
