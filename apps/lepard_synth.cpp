// lepard-synth: generate a synthetic dataset of articulated animals in the LASSIE
// web-image layout, with ground truth and the DINO surrogate, and its contact sheet.
#include "cli/cli.h"

#include <lepard/data/contact_sheet.h>
#include <lepard/data/menagerie.h>
#include <lepard/data/readers.h>
#include <lepard/io/image_io.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <string>

int main(int argc, char** argv) {
  lepard::cli::tune_runtime(argv);
  using namespace lepard;
  std::string out = "runs/synth", category = "horse";
  int64_t count = 100, size = 256, seed = 1, dim = 64, sheet = 24, threads = cli::default_threads();
  double noise = data::SurrogateOptions{}.noise, saliency_noise = data::SurrogateOptions{}.saliency_noise;
  std::string known;
  for (const auto& c : data::menagerie_categories()) known += (known.empty() ? "" : ", ") + c;
  cli::Parser parser("lepard-synth",
                     "Generates procedural articulated animals (the synthetic menagerie) in the LASSIE web-image\n"
                     "layout: images/<category>/input_<id>.png and annotations/<category>.csv, plus ground truth\n"
                     "(gt/<category>/: masks, 16-label part maps, depth, generating parameters) and the DINO\n"
                     "surrogate (features/<category>/input_<id>.npy and saliency/<category>/input_<id>.npy: a\n"
                     "SIMULATION of DINO features and CLS-attention saliency, for lepard-prepare --surrogate).\n"
                     "Categories: " +
                         known + ".");
  parser.flag("out", &out, "dataset root")
      .flag("category", &category, "animal category")
      .flag("count", &count, "number of images")
      .flag("size", &size, "image side, pixels (a multiple of 8)")
      .flag("seed", &seed, "seed: the same seed gives the same files")
      .flag("feature-dim", &dim, "dimension of the surrogate features")
      .flag("feature-noise", &noise,
            "noise level of the surrogate features (the default is calibrated: see docs/features.md)")
      .flag("saliency-noise", &saliency_noise, "noise level of the surrogate saliency")
      .flag("contact-sheet", &sheet, "images on the contact sheet (0: none)")
      .flag("threads", &threads, "worker threads")
      .epilog("example:\n  lepard-synth --category giraffe --count 1000 --size 256 --seed 1 --out runs/synth");
  parser.parse(argc, argv);
  cli::init_logging();
  try {
    cli::set_threads(threads);
    if (count < 1) throw std::invalid_argument("--count must be at least 1");
    if (size < 16 || size % 8 != 0) throw std::invalid_argument("--size must be a multiple of 8, at least 16");
    if (dim < 1) throw std::invalid_argument("--feature-dim must be at least 1");
    if (seed < 0) throw std::invalid_argument("--seed must be non-negative");
    data::MenagerieOptions o;
    o.category = category;
    o.count = count;
    o.size = size;
    o.seed = static_cast<uint64_t>(seed);
    o.surrogate.dim = dim;
    o.surrogate.noise = noise;
    o.surrogate.saliency_noise = saliency_noise;
    cli::Progress progress;
    o.progress = [&](int64_t done, int64_t total) { progress.update(category + " images", done, total); };
    const auto start = std::chrono::steady_clock::now();
    data::write_menagerie(out, o);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("wrote {} {} images of {}x{} to {} in {:.1f} s ({:.1f} images/s)", count, category, size, size, out,
                 seconds, count / seconds);
    if (sheet > 0) {
      // Read back through the real LASSIE reader, ground truth included.
      data::ReaderOptions ro;
      ro.crop_size = 128;
      auto samples = data::read_lassie_web_images(out, category, ro).samples;
      if (static_cast<int64_t>(samples.size()) > sheet) samples.resize(static_cast<size_t>(sheet));
      const auto path = std::filesystem::path(out) / ("contact_sheet_" + category + ".png");
      io::write_png(path, data::contact_sheet(samples, 8));
      spdlog::info("contact sheet: {}", path.string());
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
