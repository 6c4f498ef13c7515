// Projection of K deformable parts, forward + backward: the generalized-force Function
// (analytic L_proj^T, fused CPU kernel) against plain autograd through the same
// geometry, side by side. B = 8 images, K = 16 parts, 642 points per part, float32.
//
//   build/bench/bench_core --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
//
// Each projection benchmark runs with 1 thread and with every core ("threads" argument).
#include <lepard/core/local_flow.h>
#include <lepard/core/project_parts.h>
#include <lepard/core/surface_grid.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>

#include <thread>
#include <vector>

namespace {

using namespace lepard::core;

struct Scene {
  PartParams params;
  at::Tensor local;
  Camera camera;
  SurfaceGrid grid = make_surface_grid();
  at::Tensor grad;  // a loss gradient per output point
};

Scene make_scene(int64_t B, int64_t K) {
  Scene s;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto opt = at::TensorOptions().dtype(at::kFloat);
  auto leaf = [](at::Tensor t) { return t.requires_grad_(); };
  s.params.center = leaf(0.3 * at::randn({B, K, 3}, gen, opt));
  s.params.rotation = leaf(at::randn({B, K, 4}, gen, opt));
  const auto lo = at::tensor({0.1f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f, -0.8f, -0.8f, -0.1f, -0.3f, 0.0f});
  const auto hi = at::tensor({0.3f, 1.0f, 1.0f, 1.0f, 1.5f, 1.5f, 0.8f, 0.8f, 0.1f, 0.3f, 1.0f});
  s.params.shape = leaf(lo + at::rand({B, K, 11}, gen, opt) * (hi - lo));
  s.local = leaf(0.01 * at::randn({B, K, s.grid.num_vertices(), 3}, gen, opt));
  s.camera.rotation = leaf(at::randn({B, 4}, gen, opt));
  s.camera.translation = leaf(at::tensor({0.0f, 0.0f, 4.0f}).repeat({B, 1}));
  s.grad = at::randn({B, K, s.grid.num_vertices(), 3}, gen, opt);
  return s;
}

std::vector<at::Tensor> leaves(const Scene& s) {
  return {s.params.center, s.params.rotation, s.params.shape, s.local, s.camera.rotation, s.camera.translation};
}

// state.range(0): intra-op threads.
void run(benchmark::State& state, bool analytic, Backend backend) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  const auto s = make_scene(8, 16);
  for (auto _ : state) {
    const auto out = analytic ? project_parts(s.params, s.local, s.camera, s.grid, {}, PointSpace::Image, backend)
                              : project_parts_reference(s.params, s.local, s.camera, s.grid);
    auto g = torch::autograd::grad({out}, leaves(s), {s.grad});
    benchmark::DoNotOptimize(g);
  }
  state.SetItemsProcessed(state.iterations() * 8 * 16 * s.grid.num_vertices());
}

void BM_ProjectParts_Analytic(benchmark::State& state) { run(state, true, Backend::Kernel); }
void BM_ProjectParts_AnalyticTensorOps(benchmark::State& state) { run(state, true, Backend::TensorOps); }
void BM_ProjectParts_Autograd(benchmark::State& state) { run(state, false, Backend::Auto); }

// The local flow of the same 128 parts: B-spline velocity, scaling and squaring, sampling, backward.
void BM_LocalFlow_ForwardBackward(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const auto s = make_scene(8, 16);
  LocalFlowOptions opt;
  opt.integration_size = state.range(0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto velocity = (0.03 * at::randn({8, 16, 3, 8, 8, 8}, gen, at::TensorOptions())).requires_grad_();
  const auto surface = at::randn({8, 16, s.grid.num_vertices(), 3}, gen, at::TensorOptions()) * 0.1;
  for (auto _ : state) {
    const auto d = local_displacement(s.params.shape.detach(), surface, velocity, opt);
    auto g = torch::autograd::grad({d}, {velocity}, {s.grad});
    benchmark::DoNotOptimize(g);
  }
}

const int kCores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

BENCHMARK(BM_ProjectParts_Analytic)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(kCores)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ProjectParts_Autograd)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(kCores)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ProjectParts_AnalyticTensorOps)
    ->ArgName("threads")
    ->Arg(kCores)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_LocalFlow_ForwardBackward)
    ->ArgName("integration_size")
    ->Arg(8)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
