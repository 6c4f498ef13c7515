// lepard-prepare: DINO features, saliency, co-segmentation and pseudo-labels for a dataset
// (the pseudo-label cache the trainer reads), or raw ViT features of a folder of images.
#include <lepard/data/layout.h>
#include <lepard/eval/evaluate.h>
#include <lepard/features/prepare.h>
#include <lepard/features/vit.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>
#include <lepard/io/npy.h>

#include "cli/cli.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

namespace fs = std::filesystem;
using namespace lepard;

namespace {

int raw_mode(const fs::path& images, const fs::path& weights, const fs::path& out, const features::ExtractOptions& eo,
             const std::vector<int64_t>& heads, const std::string& device) {
  if (weights.empty()) throw std::invalid_argument("--raw needs --weights");
  if (!fs::is_directory(images)) throw std::invalid_argument("--images " + images.string() + " is not a folder");
  auto vit = features::DinoVit::load(weights);
  vit.to(c10::Device(device));
  spdlog::info("{} from {} ({} layout); facet {} of block {}", vit.arch().name(), weights.string(), vit.layout(),
               features::to_string(eo.facet), eo.layer);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(images)) {
    auto ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty())
    throw std::invalid_argument("--images " + images.string() + " holds no .png/.jpg/.jpeg/.bmp images");
  cli::Progress progress;
  int failed = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    try {
      const auto rgb = io::read_image(files[i]);
      const int64_t p = vit.arch().patch;
      if (rgb.size(0) % p != 0 || rgb.size(1) % p != 0)
        spdlog::warn("{}: {}x{} is not a multiple of the patch ({}): the last partial patch is not used",
                     files[i].string(), rgb.size(0), rgb.size(1), p);
      const auto f = features::extract_image(vit, rgb, eo, heads);
      const auto stem = files[i].stem().string();
      io::write_npy(out / (stem + ".npy"), f.facet);
      io::write_npy(out / (stem + "_saliency.npy"), f.saliency);
    } catch (const std::exception& e) {
      spdlog::error("{}: skipped: {}", files[i].string(), e.what());
      ++failed;
    }
    progress.update("features", static_cast<int64_t>(i) + 1, static_cast<int64_t>(files.size()));
  }
  std::printf("wrote the %s facet and saliency of %zu images to %s%s\n", features::to_string(eo.facet).c_str(),
              files.size() - static_cast<size_t>(failed), out.string().c_str(),
              failed ? (" (" + std::to_string(failed) + " failed)").c_str() : "");
  return failed ? 1 : 0;
}

}  // namespace

namespace {

struct PseudoLabelScores {
  double iou = 0;
  std::optional<double> part_iou;  // when every sample has ground-truth part labels
};

PseudoLabelScores score_pseudo_labels(const std::vector<data::Sample>& samples, const fs::path& cache,
                                      int64_t clusters) {
  std::vector<at::Tensor> masks, parts;
  bool all_parts = true;
  for (const auto& s : samples) {
    masks.push_back(s.mask);
    all_parts = all_parts && s.part_labels.defined();
    if (s.part_labels.defined()) parts.push_back(s.part_labels);
  }
  const auto maps = features::read_label_maps(samples, cache, samples.at(0).mask.size(0));
  const auto r = eval::evaluate_label_maps(maps, std::max<int64_t>(clusters, 1), at::stack(masks),
                                           all_parts ? at::stack(parts) : at::Tensor());
  PseudoLabelScores q;
  q.iou = r.iou;
  if (all_parts) q.part_iou = r.part_iou;
  return q;
}

// Adds the scores to prepare_<category>.json (written by prepare_pseudo_labels).
void record_scores(const fs::path& report, const PseudoLabelScores& q) {
  std::ifstream in(report);
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;
  j["overall_iou"] = q.iou;
  if (q.part_iou) j["part_iou"] = *q.part_iou;
  io::write_file_atomic(report, j.dump(2));
}
}  // namespace

int main(int argc, char** argv) {
  cli::tune_runtime(argv);
  const features::CosegOptions coseg_defaults;  // the co-segmentation flags' defaults are the library's
  std::string data, out, weights, format = "auto", category, images, facet = "key", device = "cpu", heads = "0,2,4,5",
                                  assign, foreground = features::foreground_name(coseg_defaults.foreground);
  double vote_saliency = coseg_defaults.vote_saliency, vote_share = coseg_defaults.vote_share;
  bool surrogate = false, raw = false, elbow = coseg_defaults.elbow, force = false, skip_bad = false;
  int64_t crop_size = 256, image_size = 0, stride = 0, layer = -1, clusters = coseg_defaults.fg_clusters,
          bg_clusters = coseg_defaults.bg_clusters, pca = coseg_defaults.pca_dims,
          seed = static_cast<int64_t>(coseg_defaults.kmeans.seed), restarts = coseg_defaults.kmeans.restarts,
          iterations = coseg_defaults.kmeans.iterations, sheet = 24, grid = 64, threads = cli::default_threads();
  cli::Parser parser(
      "lepard-prepare",
      "Computes the self-supervision the trainer uses: for every image of a dataset, DINO ViT features and\n"
      "CLS-attention saliency of its crop (from --weights, a DINO checkpoint, or --surrogate, the simulation\n"
      "lepard-synth stores beside synthetic images); co-segments each category's collection (foreground by\n"
      "dino-vit-features' saliency vote, or with --foreground lassie by LASSIE's rule, the distance to the\n"
      "salient mean; then k-means of the foreground into part clusters) into pseudo-labels\n"
      "(indexed PNG: 0 background, 1..C clusters) and writes a contact sheet. Re-running skips what is cached\n"
      "and valid. With ground-truth masks (the menagerie), reports the pseudo-labels' foreground IoU.\n"
      "Raw mode (--raw) writes a ViT facet and the saliency of each image of a folder, at its own size.");
  parser.flag("data", &data, "dataset root (LASSIE layout: images/ + annotations/; Pascal-Part: Annotations_Part/)")
      .flag("format", &format, "auto, lassie or pascal")
      .flag("category", &category, "one category (default: every category of the dataset)")
      .flag("out", &out, "cache folder (raw mode: output folder)")
      .flag("weights", &weights, "DINO checkpoint: torch.save (.pth) or safetensors, DINO/timm or Hugging Face keys")
      .flag("surrogate", &surrogate, "use the DINO surrogate of synthetic data instead of a ViT")
      .flag("surrogate-grid", &grid, "surrogate: feature grid on the crop (LASSIE's pseudo-labels are 64x64)")
      .flag("crop-size", &crop_size, "crop side in pixels (LASSIE's square crop around the object)")
      .flag("image-size", &image_size, "ViT input side; the crop is resized to it (0: the crop side)")
      .flag("stride", &stride, "ViT token stride: the patch size (0) or a divisor of it, e.g. 4")
      .flag("facet", &facet, "key, query, value or token")
      .flag("layer", &layer, "block whose facet is taken; negative counts from the end")
      .flag("saliency-heads", &heads, "last-block heads averaged into the saliency (comma-separated)")
      .flag("clusters", &clusters, "foreground clusters C")
      .flag("bg-clusters", &bg_clusters, "background clusters")
      .flag("elbow", &elbow, "choose C by the elbow rule (at most --clusters + 4)")
      .flag("foreground", &foreground,
            "vote (dino-vit-features' saliency vote) or lassie (distance to the salient mean); docs/features.md")
      .flag("vote-saliency", &vote_saliency, "--foreground vote: a group's mean saliency that counts as a vote")
      .flag("vote-share", &vote_share, "--foreground vote: share of the images whose vote makes a group foreground")
      .flag("pca", &pca, "also write foreground-PCA features of this many dimensions (pca/)")
      .flag("assign", &assign,
            "label this dataset with the clusters stored in another prepared cache (its root, or its "
            "clusters/<category>/ folder) instead of co-segmenting it: new images labelled as the collection a "
            "model was trained on; the feature source and settings must be that cache's")
      .flag("seed", &seed, "k-means seed")
      .flag("restarts", &restarts, "k-means restarts")
      .flag("iterations", &iterations, "k-means iterations")
      .flag("contact-sheet", &sheet, "crops on each category's contact sheet (0: none)")
      .flag("force", &force, "recompute everything, ignoring the cache")
      .flag("skip-bad", &skip_bad, "skip unreadable images and annotations (reported) instead of stopping")
      .flag("raw", &raw, "raw mode: --images DIR --weights FILE --out DIR")
      .flag("images", &images, "raw mode: folder of images")
      .flag("device", &device, "cpu or cuda (where LibTorch has it)")
      .flag("threads", &threads, "intra-op threads")
      .epilog(
          "examples:\n"
          "  lepard-synth --count 200 --out runs/synth\n"
          "  lepard-prepare --data runs/synth --surrogate --out runs/synth/cache\n"
          "  lepard-prepare --data data/lassie --weights dino_deitsmall8_pretrain.pth --out cache/lassie\n"
          "  lepard-prepare --data runs/new_horses --surrogate --assign runs/synth/cache --out runs/new_horses/cache\n"
          "  lepard-prepare --raw --images photos/ --weights dino_vitbase16_pretrain.pth --stride 8 --out feats/");
  parser.parse(argc, argv);
  cli::init_logging();
  try {
    cli::set_threads(threads);
    if (out.empty()) throw std::invalid_argument("--out is required");
    std::vector<int64_t> head_list;
    {
      std::stringstream ss(heads);
      std::string item;
      while (std::getline(ss, item, ',')) try {
          head_list.push_back(std::stoll(item));
        } catch (const std::exception&) {
          throw std::invalid_argument("--saliency-heads expects comma-separated integers, got '" + heads + "'");
        }
    }
    features::ExtractOptions eo;
    eo.facet = features::parse_facet(facet);
    eo.layer = layer;
    eo.stride = stride;
    if (device != "cpu" && device != "cuda")
      throw std::invalid_argument("--device must be cpu or cuda, got '" + device + "'");
    if (raw) return raw_mode(images, weights, out, eo, head_list, device);

    if (data.empty()) throw std::invalid_argument("--data is required (or --raw --images)");
    if (!fs::is_directory(data)) throw std::invalid_argument("--data " + data + " is not a folder");
    if (surrogate == !weights.empty())
      throw std::invalid_argument("give one feature source: --weights FILE or --surrogate");
    if (!assign.empty() && !fs::exists(assign)) throw std::invalid_argument("--assign " + assign + " does not exist");
    if (!weights.empty() && !fs::exists(weights))
      throw std::invalid_argument("--weights " + weights + " does not exist");
    const auto layout = data::resolve_layout(data, format, "--format");
    const auto categories = category.empty() ? data::list_categories(data, layout) : std::vector<std::string>{category};
    if (categories.empty()) throw std::invalid_argument("--data " + data + " holds no categories");

    features::PrepareOptions po;
    po.weights = weights;
    po.surrogate = surrogate;
    po.surrogate_grid = grid;
    po.image_size = image_size;
    po.stride = stride;
    po.facet = eo.facet;
    po.layer = layer;
    po.saliency_heads = head_list;
    po.device = c10::Device(device);
    po.coseg.fg_clusters = clusters;
    po.coseg.bg_clusters = bg_clusters;
    po.coseg.elbow = elbow;
    po.coseg.foreground = features::parse_foreground(foreground, "--foreground");
    if (!(vote_share > 0 && vote_share <= 1)) throw std::invalid_argument("--vote-share must be in (0, 1]");
    po.coseg.vote_saliency = vote_saliency;
    po.coseg.vote_share = vote_share;
    po.coseg.max_k = clusters + 4;
    po.coseg.pca_dims = pca;
    po.coseg.kmeans.seed = static_cast<uint64_t>(seed);
    po.coseg.kmeans.restarts = restarts;
    po.coseg.kmeans.iterations = iterations;
    po.contact_sheet = sheet;
    po.force = force;
    cli::Progress progress;
    int skipped = 0;
    for (const auto& c : categories) {
      data::ReaderOptions ro;
      ro.crop_size = crop_size;
      ro.skip_bad = skip_bad;
      const auto read = data::read_category(data, layout, c, ro);
      skipped += static_cast<int>(read.skipped.size());
      if (read.mask_box_crops > 0)
        spdlog::info(
            "{}: {} images have fewer than two distinct visible keypoints and were cropped by their "
            "ground-truth mask's box",
            c, read.mask_box_crops);
      po.name = c;
      if (!assign.empty()) {
        // A cache root holding this category's clusters, or the folder of one collection's.
        const auto per_category = features::clusters_dir(assign, c);
        po.assign = fs::exists(per_category / "clusters.json") ? per_category : fs::path(assign);
      }
      po.progress = [&progress, c](const std::string& stage, int64_t done, int64_t total) {
        progress.update(c + " " + stage, done, total);
      };
      const auto r = features::prepare_pseudo_labels(read.samples, out, po);
      std::printf("%s: %lld images (%lld computed, %lld cached), %lld clusters, %.1f%% of patches foreground%s",
                  c.c_str(), static_cast<long long>(r.images), static_cast<long long>(r.computed),
                  static_cast<long long>(r.cached), static_cast<long long>(r.clusters), 100 * r.fg_fraction,
                  !po.assign.empty() ? (" (labelled with the stored clusters of " + po.assign.string() + ")").c_str()
                  : r.coseg_cached   ? " (co-segmentation cached)"
                                     : "");
      if (r.voted_groups > 0)
        std::printf(" (%lld of %lld groups voted foreground)", static_cast<long long>(r.voted_groups),
                    static_cast<long long>(clusters + bg_clusters));
      std::printf("; features %.1f s, %s %.1f s\n", r.feature_seconds, po.assign.empty() ? "co-segmentation" : "labels",
                  r.coseg_seconds);
      // The pseudo-labels scored as a prediction, as lepard-eval --pseudo-labels scores them
      // (the paper's "DINO clustering" row): overall IoU, and part IoU with clusters matched to
      // the ground-truth labels by majority overlap. Needs ground truth on every sample.
      if (r.foreground_iou) {
        const auto q = score_pseudo_labels(read.samples, out, r.clusters);
        std::printf("%s: pseudo-labels against ground truth: overall IoU %.4f", c.c_str(), q.iou);
        if (q.part_iou) std::printf(", part IoU %.4f", *q.part_iou);
        std::printf(" (%lld images)\n", static_cast<long long>(r.images));
        record_scores(fs::path(out) / ("prepare_" + c + ".json"), q);
      }
    }
    std::printf("cache: %s%s\n", out.c_str(),
                skipped ? (" (" + std::to_string(skipped) + " inputs skipped)").c_str() : "");
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
