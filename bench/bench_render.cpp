// Soft rasterisation of part silhouettes, forward + backward: the binned CPU kernel
// against the dense kernel (every pixel against every face, the brute-force reference),
// B = 8 images of K = 16 parts with 642 vertices (1280 faces) each, float32, sigma 1e-4;
// and the part image of training (soft_attributes, BM_SoftAttributes_Training).
//
//   build/bench/bench_render --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// peak_rss_MB is the process's peak resident memory after the benchmark (getrusage);
// run one benchmark per process (--benchmark_filter) to read each one's own peak.
#include <lepard/core/project_parts.h>
#include <lepard/core/surface_grid.h>
#include <lepard/render/soft_rasterize.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>

#include <sys/resource.h>

#ifdef LEPARD_BENCH_TUNE_RUNTIME
#include "cli/cli.h"
#endif

#include <thread>

namespace {

using namespace lepard;

// Projected parts that fill a good share of the image, as in training.
at::Tensor scene(const core::SurfaceGrid& grid) {
  const int64_t B = 8, K = 16;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto opt = at::TensorOptions().dtype(at::kFloat);
  core::PartParams p;
  p.center = 0.4 * at::randn({B, K, 3}, gen, opt);
  p.rotation = at::randn({B, K, 4}, gen, opt);
  p.shape = at::tensor({0.25f, 0.8f, 0.5f, 0.9f, 0.8f, 0.9f, 0.2f, -0.1f, 0.05f, 0.0f, 0.5f}).repeat({B, K, 1});
  core::Camera cam{at::randn({B, 4}, gen, opt), at::tensor({0.0f, 0.0f, 3.0f}).repeat({B, 1}), 2.0};
  return core::project_parts_reference(p, at::Tensor(), cam, grid);
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

void run(benchmark::State& state, bool binning) {
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const auto grid = core::make_surface_grid();
  const auto verts = scene(grid).requires_grad_();
  render::SoftRasterSettings s;
  s.height = s.width = state.range(0);
  s.sigma = 1e-4;
  s.binning = binning;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto grad = at::randn({8, 16, s.height, s.width}, gen, at::TensorOptions().dtype(at::kFloat));
  for (auto _ : state) {
    const auto sil = render::soft_silhouettes(verts, grid.faces, s);
    auto g = torch::autograd::grad({sil}, {verts}, {grad});
    benchmark::DoNotOptimize(g);
  }
  state.counters["peak_rss_MB"] = peak_rss_mb();
}

// The part image of training (loss.parts): soft_attributes forward + backward on one
// process's share of the batch (8 images), the training grid (8 rings x 12 segments, 192
// faces per part), one thread as in two-process training, one-hot attributes over 17
// channels (each part owns one cluster, as ownership gives) and gamma 1e-4.
void BM_SoftAttributes_Training(benchmark::State& state) {
  at::set_num_threads(1);
  const auto grid = core::make_surface_grid(8, 12);
  const auto verts = scene(grid).requires_grad_();
  const int64_t B = verts.size(0), K = verts.size(1), C = 17;
  render::SoftAttributeSettings s;
  s.raster.height = s.raster.width = state.range(0);
  s.raster.sigma = 1e-4;
  auto attr = at::zeros({B, K, C}, verts.options().requires_grad(false));
  for (int64_t k = 0; k < K; ++k) attr.select(1, k).select(1, 1 + k % (C - 1)).fill_(1.0);
  auto bg = at::zeros({C}, attr.options());
  bg[0] = 1.0;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto grad = at::randn({B, C, s.raster.height, s.raster.width}, gen, attr.options());
  const bool backward = state.range(1) != 0;
  for (auto _ : state) {
    const auto image = render::soft_attributes(verts, grid.faces, attr, bg, s);
    if (!backward) {
      benchmark::DoNotOptimize(image);
      continue;
    }
    auto g = torch::autograd::grad({image}, {verts}, {grad});
    benchmark::DoNotOptimize(g);
  }
  state.counters["peak_rss_MB"] = peak_rss_mb();
}
BENCHMARK(BM_SoftAttributes_Training)
    ->ArgNames({"size", "backward"})
    ->Args({64, 1})
    ->Args({64, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_SoftSilhouettes_Binned(benchmark::State& state) { run(state, true); }
void BM_SoftSilhouettes_Dense(benchmark::State& state) { run(state, false); }

BENCHMARK(BM_SoftSilhouettes_Binned)->ArgName("size")->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SoftSilhouettes_Dense)
    ->ArgName("size")
    ->Arg(64)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
#ifdef LEPARD_BENCH_TUNE_RUNTIME
  lepard::cli::tune_runtime(argv);  // the tools' memory settings, as in training
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
