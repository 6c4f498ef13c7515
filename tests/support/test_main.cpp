// GoogleTest entry point: runs the suites with every core (LibTorch starts with one intra-op thread).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <thread>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return RUN_ALL_TESTS();
}
