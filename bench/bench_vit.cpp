// The C++ side of the ViT benchmark (bench/vit_comparison.sh runs both sides): DINO ViT
// feature extraction (last block's key facet and CLS-attention saliency) on one image,
// timed over several repeats after a warm-up. Prints one line like the Python side's.
#include <lepard/features/vit.h>

#include "cli/cli.h"

#include <ATen/ops/randn.h>
#include <c10/core/InferenceMode.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  lepard::cli::tune_runtime(argv);
  std::string weights;
  int64_t size = 224, stride = 8, repeats = 3, threads = lepard::cli::default_threads();
  lepard::cli::Parser parser("bench_vit", "Times C++ DINO ViT feature extraction (key facet + saliency) on one image.");
  parser
      .flag("weights", &weights,
            "checkpoint (torch.save or safetensors), e.g. from bench/python/bench_vit.py --write-weights")
      .flag("size", &size, "image side in pixels")
      .flag("stride", &stride, "token stride (the patch size or a divisor of it)")
      .flag("repeats", &repeats, "timed runs after one warm-up")
      .flag("threads", &threads, "intra-op threads");
  parser.parse(argc, argv);
  lepard::cli::init_logging();
  lepard::cli::set_threads(threads);
  try {
    const auto vit = lepard::features::DinoVit::load(weights);
    const auto image = at::randn({1, 3, size, size});
    lepard::features::ExtractOptions options;
    options.stride = stride;
    std::vector<double> ms;
    for (int64_t i = 0; i <= repeats; ++i) {
      const auto start = std::chrono::steady_clock::now();
      const auto f = vit.extract(image, options);
      const auto saliency = lepard::features::cls_saliency(f.cls_attention);
      (void)saliency;
      const double elapsed =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (i > 0) ms.push_back(elapsed);
    }
    std::sort(ms.begin(), ms.end());
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("c++ size=%lld stride=%lld median_ms=%.1f min_ms=%.1f peak_rss_mb=%.0f\n", static_cast<long long>(size),
                static_cast<long long>(stride), ms[ms.size() / 2], ms.front(), usage.ru_maxrss / 1024.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_vit: %s\n", e.what());
    return 1;
  }
  return 0;
}
