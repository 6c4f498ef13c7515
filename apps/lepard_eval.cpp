// lepard-eval: the paper's metrics (keypoint transfer PCK, part transfer PCP, overall and
// part IoU) of a trained model on a dataset with ground truth.
#include <lepard/core/surface_grid.h>
#include <lepard/data/contact_sheet.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>
#include <lepard/render/hard_rasterize.h>
#include <lepard/render/pictures.h>
#include <lepard/data/readers.h>
#include <lepard/eval/evaluate.h>
#include <lepard/model/model.h>
#include <lepard/train/trainer.h>

#include "cli/cli.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

namespace fs = std::filesystem;
using namespace lepard;

namespace {

std::vector<std::string> categories_in(const fs::path& root, const std::string& format) {
  std::vector<std::string> out;
  const auto folder = format == "lassie" ? root / "annotations" : root / "image_sets";
  const auto ext = format == "lassie" ? ".csv" : ".txt";
  for (const auto& e : fs::directory_iterator(folder))
    if (e.path().extension() == ext) out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  cli::tune_runtime(argv);
  cli::init_logging();
  std::string checkpoint, data, format = "auto", category, split = "test", out;
  int64_t threads = 0, crop_size = 256, batch = 32, overlays = 24;
  double test_fraction = -1;
  cli::Parser parser("lepard-eval",
                     "Evaluates a trained model as the paper does (Tables 1 and 2): keypoint transfer PCK at\n"
                     "0.05 and 0.1 of the crop side over all ordered image pairs, part transfer PCP, overall IoU\n"
                     "and part IoU (parts matched to ground-truth labels by majority overlap). docs/evaluation.md.");
  parser.flag("checkpoint", &checkpoint, "checkpoint.pt of lepard-train (or its run folder)")
      .flag("data", &data, "dataset root with ground truth: LASSIE layout, Pascal-Part or the synthetic menagerie")
      .flag("format", &format, "auto, lassie or pascal")
      .flag("category", &category, "category, or 'all' (default: the checkpoint's data.category)")
      .flag("split", &split, "test (held out by id hash, as in training), train or all")
      .flag("test-fraction", &test_fraction, "share of the split (default: the checkpoint's data.test_fraction)")
      .flag("crop-size", &crop_size, "LASSIE crop side in pixels (metrics are computed at this size)")
      .flag("batch", &batch, "images per forward pass")
      .flag("out", &out, "folder for metrics.json, metrics.md and overlays_<category>.png (default: print only)")
      .flag("overlays", &overlays, "crops on overlays_<category>.png: predicted parts over the image, ground-truth outline (0: none)")
      .flag("threads", &threads, "intra-op threads (0: every core)")
      .epilog("Example:\n  lepard-eval --checkpoint runs/h1200_train --data runs/h1200 --split test --out runs/h1200_eval\n"
              "Exit codes: 0 done, 1 an error (named), 2 a bad command line.");
  parser.parse(argc, argv);
  cli::set_threads(threads > 0 ? threads : cli::default_threads());
  try {
    if (checkpoint.empty() || data.empty()) throw std::invalid_argument("--checkpoint and --data are required");
    if (split != "test" && split != "train" && split != "all")
      throw std::invalid_argument("--split must be test, train or all, got '" + split + "'");
    fs::path ckpt(checkpoint);
    if (fs::is_directory(ckpt)) ckpt /= "checkpoint.pt";
    train::TrainConfig config;
    auto net = train::load_model(ckpt, &config);
    if (format == "auto")
      format = fs::exists(fs::path(data) / "annotations") ? "lassie"
               : fs::exists(fs::path(data) / "Annotations_Part") ? "pascal" : "";
    if (format.empty())
      throw std::invalid_argument("--data " + data + " has neither annotations/ (LASSIE) nor Annotations_Part/ (Pascal-Part)");
    std::vector<std::string> categories = {category.empty() ? config.data.category : category};
    if (category == "all") categories = categories_in(data, format);
    const auto grid = core::make_surface_grid(config.model.rings, config.model.segments);

    nlohmann::json report;
    std::string table = "| category | images | PCK@0.05 | PCK@0.1 | PCP | IoU | part IoU |\n|---|---|---|---|---|---|---|\n";
    double sums[5] = {0, 0, 0, 0, 0};
    for (const auto& c : categories) {
      data::ReaderOptions ro;
      ro.crop_size = crop_size;
      ro.split = split == "test" ? data::Split::Test : split == "train" ? data::Split::Train : data::Split::All;
      ro.test_fraction = test_fraction >= 0 ? test_fraction : config.data.test_fraction;
      const auto read = format == "lassie" ? data::read_lassie_web_images(data, c, ro) : data::read_pascal_part(data, c, ro);
      const auto& samples = read.samples;
      if (samples.empty()) throw std::invalid_argument("--data " + data + ": no '" + c + "' images in the " + split + " split");
      for (const auto& s : samples)
        if (!s.mask.defined())
          throw std::invalid_argument(s.image_path.string() + ": no ground-truth mask (evaluation needs one)");
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<at::Tensor> verts, masks, parts, kps;
      bool have_parts = true, have_kps = true;
      for (size_t begin = 0; begin < samples.size(); begin += static_cast<size_t>(batch)) {
        const size_t end = std::min(samples.size(), begin + static_cast<size_t>(batch));
        std::vector<at::Tensor> crops;
        for (size_t i = begin; i < end; ++i) crops.push_back(samples[i].image);
        verts.push_back(train::reconstruct(net, config, model::normalize_images(at::stack(crops), config.model.image_size)));
      }
      const double forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& s : samples) {
        masks.push_back(s.mask);
        have_parts = have_parts && s.part_labels.defined();
        have_kps = have_kps && s.keypoints.defined();
        if (s.part_labels.defined()) parts.push_back(s.part_labels);
        if (s.keypoints.defined()) kps.push_back(s.keypoints);
      }
      if (!out.empty() && overlays > 0) {
        // The first crops with their predicted parts blended in and the mask outline drawn.
        const int64_t m = std::min<int64_t>(overlays, static_cast<int64_t>(samples.size()));
        const auto first = at::cat(verts).narrow(0, 0, m);
        std::vector<at::Tensor> crops;
        for (int64_t i = 0; i < m; ++i) crops.push_back(samples[static_cast<size_t>(i)].image);
        const auto blended = render::overlay_part_ids(
            at::stack(crops), render::rasterize_hard(first, grid.faces, crop_size, crop_size).part_id);
        std::vector<data::Sample> shown;
        for (int64_t i = 0; i < m; ++i) {
          data::Sample o;
          const auto& s = samples[static_cast<size_t>(i)];
          o.image = blended[i];
          o.mask = s.mask;  // drawn as an outline (no label fill: part_labels all 0)
          o.part_labels = at::zeros_like(s.mask);
          shown.push_back(std::move(o));
        }
        fs::create_directories(out);
        io::write_png(fs::path(out) / ("overlays_" + c + ".png"), data::contact_sheet(shown, 8));
      }
      const auto r = eval::evaluate(at::cat(verts), grid.faces, at::stack(masks), have_parts ? at::stack(parts) : at::Tensor(),
                                    have_kps ? at::stack(kps) : at::Tensor());
      report[c] = {{"images", r.images}, {"pck_0.05", r.pck_paper}, {"pck_0.1", r.pck_lassie},
                   {"keypoint_trials", r.keypoint_pairs}, {"pcp", r.pcp}, {"pcp_trials", r.pcp_trials},
                   {"iou", r.iou}, {"part_iou", r.part_iou}, {"forward_images_per_s", r.images / forward_s}};
      char row[256];
      std::snprintf(row, sizeof row, "| %s | %lld | %.3f | %.3f | %.3f | %.3f | %.3f |\n", c.c_str(),
                    static_cast<long long>(r.images), r.pck_paper, r.pck_lassie, r.pcp, r.iou, r.part_iou);
      table += row;
      const double v[5] = {r.pck_paper, r.pck_lassie, r.pcp, r.iou, r.part_iou};
      for (int i = 0; i < 5; ++i) sums[i] += v[i];
    }
    if (categories.size() > 1) {
      const double n = static_cast<double>(categories.size());
      report["mean"] = {{"pck_0.05", sums[0] / n}, {"pck_0.1", sums[1] / n}, {"pcp", sums[2] / n},
                        {"iou", sums[3] / n}, {"part_iou", sums[4] / n}};
      char row[256];
      std::snprintf(row, sizeof row, "| mean | | %.3f | %.3f | %.3f | %.3f | %.3f |\n", sums[0] / n, sums[1] / n,
                    sums[2] / n, sums[3] / n, sums[4] / n);
      table += row;
    }
    report["checkpoint"] = ckpt.string();
    report["split"] = split;
    std::cout << table;
    if (!out.empty()) {
      fs::create_directories(out);
      io::write_file_atomic(fs::path(out) / "metrics.json", report.dump(2) + "\n");
      io::write_file_atomic(fs::path(out) / "metrics.md", table);
    }
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "lepard-eval: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lepard-eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
