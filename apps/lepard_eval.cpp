// lepard-eval: the paper's metrics (keypoint transfer PCK, part transfer PCP, overall and
// part IoU) and, on the synthetic menagerie, 3D accuracy against the generator's meshes, for
// one or several trained models and the pseudo-labels they were trained on: one table row
// each (docs/evaluation.md).
#include <lepard/core/surface_grid.h>
#include <lepard/data/contact_sheet.h>
#include <lepard/data/keypoints.h>
#include <lepard/data/menagerie.h>
#include <lepard/data/layout.h>
#include <lepard/eval/evaluate.h>
#include <lepard/features/prepare.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>
#include <lepard/model/model.h>
#include <lepard/model/canonical.h>
#include <lepard/model/reconstruct.h>
#include <lepard/render/hard_rasterize.h>
#include <lepard/render/pictures.h>
#include <lepard/train/refine.h>
#include <lepard/train/trainer.h>

#include "cli/cli.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

namespace fs = std::filesystem;
using namespace lepard;

namespace {

struct Model {
  std::string name;
  fs::path checkpoint;
  train::TrainConfig config;
  model::LepardNet net{nullptr};
  at::Tensor ownership;                    // the checkpoint's, or undefined
  std::vector<model::Prediction> refined;  // per batch of samples, when --refine is on
  at::Tensor labels;  // the samples' pseudo-labels at loss.render_size: model.label_input's input, or undefined
};

// Predictions [begin, end) of a list of per-batch predictions of `batch` images each.
model::Prediction slice(const std::vector<model::Prediction>& batches, int64_t batch, int64_t begin, int64_t end) {
  std::vector<at::Tensor> rot, trans, center, qrot, shape, vel;
  for (int64_t b = begin / batch; b * batch < end; ++b) {
    const auto& p = batches[static_cast<size_t>(b)];
    const int64_t lo = std::max(begin, b * batch) - b * batch, hi = std::min(end, (b + 1) * batch) - b * batch;
    if (hi <= lo) continue;
    rot.push_back(p.camera.rotation.narrow(0, lo, hi - lo));
    trans.push_back(p.camera.translation.narrow(0, lo, hi - lo));
    center.push_back(p.parts.center.narrow(0, lo, hi - lo));
    qrot.push_back(p.parts.rotation.narrow(0, lo, hi - lo));
    shape.push_back(p.parts.shape.narrow(0, lo, hi - lo));
    if (p.velocity.defined()) vel.push_back(p.velocity.narrow(0, lo, hi - lo));
  }
  model::Prediction out;
  out.camera.rotation = at::cat(rot);
  out.camera.translation = at::cat(trans);
  out.camera.focal = batches.front().camera.focal;
  out.parts.center = at::cat(center);
  out.parts.rotation = at::cat(qrot);
  out.parts.shape = at::cat(shape);
  if (!vel.empty()) out.velocity = at::cat(vel);
  return out;
}

// The part template of a checkpoint written without one: fitted on its first training images,
// as train::Trainer does when it writes the last checkpoint.
model::PartTemplate fit_part_template(Model& m) {
  train::Dataset d;
  try {
    d = train::load_dataset(m.config, false);
  } catch (const std::exception& e) {
    throw std::runtime_error(m.checkpoint.string() +
                             ": holds no part template and its training images cannot be read to fit one (" + e.what() +
                             "); pass --part-template none to score the network's own naming");
  }
  if (d.images.size(0) == 0)
    throw std::runtime_error(m.checkpoint.string() + ": holds no part template and its data.root " +
                             m.config.data.root + " has no training images to fit one (--part-template none)");
  const auto t = model::fit_part_template(m.net, d.images, d.labels, model::surface_grid(m.net->options()));
  spdlog::info("{}: no part template in the checkpoint; fitted one on {} training images", m.checkpoint.string(),
               std::min(model::kPartTemplateImages, d.images.size(0)));
  return t;
}

// "auto" or "RINGSxSEGMENTS".
std::pair<int64_t, int64_t> parse_grid(const std::string& text) {
  if (text == "auto") return {0, 0};
  const auto x = text.find('x');
  try {
    if (x != std::string::npos) {
      size_t used = 0;
      const int64_t r = std::stoll(text.substr(0, x), &used);
      size_t used2 = 0;
      const int64_t s = std::stoll(text.substr(x + 1), &used2);
      if (used == x && used2 == text.size() - x - 1 && r >= 1 && s >= 3 && r <= 512 && s <= 1024) return {r, s};
    }
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("--eval-grid must be 'auto' or RINGSxSEGMENTS (e.g. 40x80), got '" + text + "'");
}

// The reconstructions of `samples` on `grid`.
at::Tensor reconstruct_all(Model& m, const std::vector<data::Sample>& samples, size_t begin, size_t end, int64_t batch,
                           const core::SurfaceGrid& grid) {
  std::vector<at::Tensor> verts;
  if (!m.refined.empty()) {
    at::NoGradGuard no_grad;
    auto r = model::reconstruct(slice(m.refined, batch, static_cast<int64_t>(begin), static_cast<int64_t>(end)), grid,
                                model::flow_options(m.net->options()));
    model::canonicalize(r, m.net->part_template(), grid);
    return r.image;
  }
  for (size_t b = begin; b < end; b += static_cast<size_t>(batch)) {
    const size_t e = std::min(end, b + static_cast<size_t>(batch));
    std::vector<at::Tensor> crops;
    for (size_t i = b; i < e; ++i) crops.push_back(samples[i].image);
    const auto labels =
        m.labels.defined() ? m.labels.narrow(0, static_cast<int64_t>(b), static_cast<int64_t>(e - b)) : at::Tensor();
    verts.push_back(model::project_images(m.net, model::normalize_images(at::stack(crops), m.config.model.image_size),
                                          grid, labels));
  }
  return at::cat(verts);
}

// A grid fine enough that 95% of the edges between neighbouring vertices of the first images'
// parts are under 2 px at the crop size: the training grid, scaled by the spacing it has.
constexpr double kSpacingQuantile = 0.95;
core::SurfaceGrid fine_grid(Model& m, const std::vector<data::Sample>& samples, int64_t batch, int64_t crop_size,
                            double* spacing) {
  const size_t probe = std::min<size_t>(samples.size(), 8);
  int64_t rings = m.config.model.rings, segments = m.config.model.segments;
  auto grid = core::make_surface_grid(rings, segments);
  for (int round = 0;; ++round) {
    const auto verts = reconstruct_all(m, samples, 0, probe, batch, grid);
    *spacing = eval::edge_pixels(verts, grid.faces, crop_size, kSpacingQuantile);
    if (*spacing < 2.0 || rings >= 96 || round == 3) break;
    const double factor = *spacing / 1.8;
    rings = std::min<int64_t>(96, static_cast<int64_t>(std::ceil(static_cast<double>(rings + 1) * factor)) - 1);
    segments = std::min<int64_t>(192, static_cast<int64_t>(std::ceil(static_cast<double>(segments) * factor)));
    grid = core::make_surface_grid(rings, segments);
  }
  return grid;
}

nlohmann::json row_json(const std::string& name, const std::string& category, const eval::EvalResult& r, bool transfers,
                        bool three_d) {
  nlohmann::json j = {{"model", name},      {"category", category},      {"images", r.images},
                      {"iou", r.iou},       {"part_iou", r.part_iou},    {"precision", r.precision},
                      {"recall", r.recall}, {"assignment", r.assignment}};
  if (transfers) {
    j["pck_0.05"] = r.pck_paper;
    j["pck_0.1"] = r.pck_lassie;
    j["keypoint_trials"] = r.keypoint_pairs;
    const auto per_keypoint = [](const std::vector<double>& v) {
      nlohmann::json out = nlohmann::json::object();
      for (size_t q = 0; q < v.size() && q < data::keypoint_names().size(); ++q)
        if (!std::isnan(v[q])) out[std::string(data::keypoint_names()[q])] = v[q];
      return out;
    };
    j["pck_0.05_per_keypoint"] = per_keypoint(r.pck_per_keypoint);
    j["pck_0.1_per_keypoint"] = per_keypoint(r.pck_lassie_per_keypoint);
    // Counts by ground-truth label name (0: background), the labels with none left out.
    const auto by_label = [](const std::vector<int64_t>& counts) {
      nlohmann::json row = nlohmann::json::object();
      for (size_t t = 0; t < counts.size(); ++t)
        if (counts[t] > 0) row[std::string(data::part_label_name(static_cast<int64_t>(t)))] = counts[t];
      return row;
    };
    // Misses at 0.1 on the target keypoint's own ground-truth label, and where each keypoint's
    // misses land (absent: no part labels).
    if (!std::isnan(r.pck_lassie_miss_same_label)) j["pck_0.1_miss_same_label"] = r.pck_lassie_miss_same_label;
    if (!r.pck_lassie_miss_landing.empty()) {
      nlohmann::json landing = nlohmann::json::object();
      for (size_t q = 0; q < r.pck_lassie_miss_landing.size() && q < data::keypoint_names().size(); ++q)
        landing[std::string(data::keypoint_names()[q])] = by_label(r.pck_lassie_miss_landing[q]);
      j["pck_0.1_miss_landing"] = landing;
    }
    j["pck_0.05_mirror"] = r.pck_mirror;  // trials that land on the left/right counterpart instead
    j["pcp"] = r.pcp;
    j["pcp_occluded"] = r.pcp_occluded;
    j["pcp_trials"] = r.pcp_trials;
    // PCP by the source pixel's label, and where each label's visible transfers land (the
    // target's ground-truth label; docs/evaluation.md): which labels the parts do not keep.
    nlohmann::json pcp_per_label = nlohmann::json::object(), confusion = nlohmann::json::object();
    for (size_t g = 1; g < r.pcp_per_label.size(); ++g) {
      if (std::isnan(r.pcp_per_label[g])) continue;
      const std::string name(data::part_label_name(static_cast<int64_t>(g)));
      pcp_per_label[name] = r.pcp_per_label[g];
      confusion[name] = by_label(r.pcp_confusion[g]);
    }
    j["pcp_per_label"] = pcp_per_label;
    j["pcp_confusion"] = confusion;
    j["pcp_mirror"] = r.pcp_mirror;        // visible transfers that land on the left/right counterpart label
    j["pcp_uncovered"] = r.pcp_uncovered;  // visible trials whose source pixel no part covers (all wrong)
  }
  if (three_d && r.mesh_images > 0) {
    j["chamfer"] = r.chamfer;
    j["fscore_5"] = r.fscore_tight;
    j["fscore_10"] = r.fscore_loose;
    j["part_agreement_3d"] = r.part_agreement_3d;
    j["mesh_images"] = r.mesh_images;
  }
  nlohmann::json per = nlohmann::json::object();
  for (size_t g = 0; g < r.per_label_iou.size(); ++g)
    if (!std::isnan(r.per_label_iou[g])) per[std::to_string(g + 1)] = r.per_label_iou[g];
  j["per_label_iou"] = per;
  nlohmann::json missed = nlohmann::json::object();
  for (size_t g = 0; g < r.missed_per_label.size(); ++g)
    if (!std::isnan(r.missed_per_label[g])) missed[std::to_string(g + 1)] = r.missed_per_label[g];
  j["missed_per_label"] = missed;  // share of each label's pixels that no part (or cluster) covers
  j["overlap"] = r.overlap;        // pixels of part (or cluster) k on ground-truth label g, g = 0 background
  return j;
}

// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string q = "\"";
  for (const char ch : text) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string csv_number(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

constexpr const char* kPerImageHeader =
    "model,category,id,iou,precision,recall,part_iou,chamfer,fscore_5,fscore_10,part_agreement_3d\n";

// One per_image.csv line per image of a row, and the row's worst images by IoU in the log.
std::string per_image_lines(const std::string& name, const std::string& category,
                            const std::vector<data::Sample>& samples, const eval::EvalResult& r) {
  std::string lines;
  for (size_t i = 0; i < r.per_image.size(); ++i) {
    const auto& m = r.per_image[i];
    lines += csv_field(name) + "," + csv_field(category) + "," + csv_field(samples[i].id);
    for (const double v :
         {m.iou, m.precision, m.recall, m.part_iou, m.chamfer, m.fscore_tight, m.fscore_loose, m.part_agreement_3d})
      lines += "," + csv_number(v);
    lines += "\n";
  }
  std::vector<size_t> order(r.per_image.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const size_t shown = std::min<size_t>(3, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(shown), order.end(),
                    [&](size_t a, size_t b) { return r.per_image[a].iou < r.per_image[b].iou; });
  std::string worst;
  for (size_t i = 0; i < shown; ++i)
    worst += (i ? ", " : "") + samples[order[i]].id + " " + csv_number(r.per_image[order[i]].iou);
  if (shown > 0) spdlog::info("{} on {}: lowest IoU {}", name, category, worst);
  return lines;
}

std::string fmt(const nlohmann::json& row, const char* key, const char* format = "%.3f") {
  if (!row.contains(key)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, format, row[key].get<double>());
  return buf;
}

std::string markdown_row(const nlohmann::json& r) {
  return "| " + r["model"].get<std::string>() + " | " + r["category"].get<std::string>() + " | " +
         std::to_string(r["images"].get<int64_t>()) + " | " + fmt(r, "pck_0.05") + " | " + fmt(r, "pck_0.1") + " | " +
         fmt(r, "iou") + " | " + fmt(r, "part_iou") + " | " + fmt(r, "pcp") + " | " + fmt(r, "pcp_occluded") + " | " +
         fmt(r, "chamfer", "%.4f") + " | " + fmt(r, "fscore_5") + " | " + fmt(r, "fscore_10") + " | " +
         fmt(r, "part_agreement_3d") + " |\n";
}

}  // namespace

int main(int argc, char** argv) {
  cli::tune_runtime(argv);
  cli::init_logging();
  std::vector<std::string> checkpoints, names;
  std::string data, format = "auto", category, split = "test", out, pseudo_labels, transfer = "surface",
                    eval_grid = "auto", part_template = "auto";
  int64_t threads = 0, crop_size = 256, batch = 32, overlays = 24, samples_3d = 2048, refine = 0;
  double test_fraction = -1, refine_lr = 0.005, refine_anchor = 0.0;
  bool choose_view = false, live_weights = false;
  cli::Parser parser("lepard-eval",
                     "Evaluates trained models as the paper does (Tables 1 and 2): keypoint transfer PCK at 0.05\n"
                     "and 0.1 of the crop side over all ordered image pairs, overall IoU, part IoU (parts matched\n"
                     "to ground-truth labels by majority overlap) and part transfer PCP among the transfers\n"
                     "visible in the target (the occluded share beside it). On the synthetic menagerie also 3D\n"
                     "accuracy against the generator's meshes: Chamfer distance and F-score at 5% and 10% of the\n"
                     "mesh's diagonal, 3D part agreement. --pseudo-labels adds the pseudo-labels' own row (the\n"
                     "paper's \"DINO clustering\"). One row per model and category. docs/evaluation.md.");
  parser
      .flag("checkpoint", &checkpoints,
            "checkpoint.pt of lepard-train (or its run folder); repeat for a table of models")
      .flag("name", &names, "row name of each --checkpoint, in order (default: the run folder's name)")
      .flag("live-weights", &live_weights,
            "score the trained weights of every --checkpoint rather than their moving average (checkpoints "
            "of runs with train.ema only; the model of the others is their trained weights already)")
      .flag("part-template", &part_template,
            "which end of each part is which across images (model/canonical.h): auto (the checkpoint's "
            "part template; one written before it existed gets one fitted, as training does, on its "
            "training images) or none (the network's own naming)")
      .flag("pseudo-labels", &pseudo_labels,
            "pseudo-label cache of lepard-prepare: adds its row (overall and part IoU)")
      .flag("data", &data, "dataset root with ground truth: LASSIE layout, Pascal-Part or the synthetic menagerie")
      .flag("format", &format, "auto, lassie or pascal")
      .flag("category", &category, "category, or 'all' (default: the first checkpoint's data.category)")
      .flag("split", &split, "test (held out by id hash, as in training), train or all")
      .flag("test-fraction", &test_fraction,
            "share of the split (default: the checkpoint's data.test_fraction, or 0.2)")
      .flag("crop-size", &crop_size, "LASSIE crop side in pixels (metrics are computed at this size)")
      .flag("transfer", &transfer,
            "keypoint transfer: surface (the surface point under the keypoint) or vertex "
            "(LASSIE's nearest visible vertex)")
      .flag("eval-grid", &eval_grid,
            "surface grid the parts are meshed on for evaluation: auto (95% of the "
            "vertex spacings under 2 px at the crop size) or RINGSxSEGMENTS")
      .flag("samples-3d", &samples_3d, "surface points per mesh for the 3D metrics")
      .flag("refine", &refine,
            "also score each model after N iterations of test-time refinement (the training "
            "forces on each image's own parts, from its pseudo-labels; a second row per model)")
      .flag("refine-lr", &refine_lr, "Adam step of the refinement on the heads' raw outputs")
      .flag("refine-anchor", &refine_anchor,
            "weight of the refinement's pull back toward the network's own raw outputs "
            "(squared distance; 0: none)")
      .flag("choose-view", &choose_view,
            "models with model.viewpoints > 1: also score each with every image's turn chosen by the least "
            "training loss against its pseudo-labels instead of by the selection head (before --refine's "
            "iterations; a second row per model)")
      .flag("batch", &batch, "images per forward pass")
      .flag("out", &out,
            "folder for metrics.json, metrics.md, per_image.csv (every image's scores) and "
            "overlays_<category>.png (default: print only)")
      .flag("overlays", &overlays,
            "crops on overlays_<category>.png: predicted parts over the image, ground-truth outline (0: none)")
      .flag("threads", &threads, "intra-op threads (0: every core)")
      .epilog(
          "Examples:\n"
          "  lepard-eval --checkpoint runs/h1200_train --data runs/h1200 --split test --out runs/h1200_eval\n"
          "  lepard-eval --pseudo-labels runs/h1200/cache --checkpoint runs/h1200_train --name full \\\n"
          "      --checkpoint runs/abl_nolocal --name 'no local deformation' --data runs/h1200\n"
          "  lepard-eval --pseudo-labels runs/h1200/cache --data runs/h1200 --category horse   # pseudo-labels only\n"
          "  lepard-eval --checkpoint runs/h1200_train --data runs/h1200 --refine 50   # feed-forward and refined "
          "rows\n"
          "--refine and --choose-view read each image's pseudo-labels from --pseudo-labels, else from the\n"
          "checkpoint's data.cache.\n"
          "Exit codes: 0 done, 1 an error (named), 2 a bad command line.");
  parser.parse(argc, argv);
  cli::set_threads(threads > 0 ? threads : cli::default_threads());
  try {
    if ((checkpoints.empty() && pseudo_labels.empty()) || data.empty())
      throw std::invalid_argument("--data and at least one --checkpoint or --pseudo-labels are required");
    if (!names.empty() && names.size() != checkpoints.size())
      throw std::invalid_argument("--name: " + std::to_string(names.size()) + " names for " +
                                  std::to_string(checkpoints.size()) +
                                  " checkpoints (give one per --checkpoint, or none)");
    if (batch < 1) throw std::invalid_argument("--batch must be at least 1, got " + std::to_string(batch));
    if (crop_size < 16)
      throw std::invalid_argument("--crop-size must be at least 16, got " + std::to_string(crop_size));
    if (overlays < 0) throw std::invalid_argument("--overlays must be >= 0, got " + std::to_string(overlays));
    if (refine < 0 || refine > 100000)
      throw std::invalid_argument("--refine must be in [0, 100000], got " + std::to_string(refine));
    if (!(refine_lr > 0 && refine_lr <= 10))
      throw std::invalid_argument("--refine-lr must be in (0, 10], got " + std::to_string(refine_lr));
    if (!(refine_anchor >= 0 && refine_anchor <= 1e6))
      throw std::invalid_argument("--refine-anchor must be in [0, 1e6], got " + std::to_string(refine_anchor));
    if (refine > 0 && checkpoints.empty()) throw std::invalid_argument("--refine needs a --checkpoint");
    if (choose_view && checkpoints.empty()) throw std::invalid_argument("--choose-view needs a --checkpoint");
    const bool second_pass = refine > 0 || choose_view;
    if (samples_3d < 16)
      throw std::invalid_argument("--samples-3d must be at least 16, got " + std::to_string(samples_3d));
    if (test_fraction != -1 && !(test_fraction > 0 && test_fraction <= 1))
      throw std::invalid_argument("--test-fraction must be in (0, 1], got " + std::to_string(test_fraction));
    if (split != "test" && split != "train" && split != "all")
      throw std::invalid_argument("--split must be test, train or all, got '" + split + "'");
    if (transfer != "surface" && transfer != "vertex")
      throw std::invalid_argument("--transfer must be surface or vertex, got '" + transfer + "'");
    const auto [grid_rings, grid_segments] = parse_grid(eval_grid);
    if (part_template != "auto" && part_template != "none")
      throw std::invalid_argument("--part-template must be auto or none, got '" + part_template + "'");
    if (!pseudo_labels.empty() && !fs::is_directory(fs::path(pseudo_labels) / "labels"))
      throw std::invalid_argument("--pseudo-labels " + pseudo_labels +
                                  ": no labels/ folder (run lepard-prepare --out " + pseudo_labels + ")");

    std::vector<Model> models;
    for (size_t i = 0; i < checkpoints.size(); ++i) {
      Model m;
      m.checkpoint = checkpoints[i];
      if (fs::is_directory(m.checkpoint)) m.checkpoint /= "checkpoint.pt";
      m.net = train::load_model(m.checkpoint, &m.config, live_weights ? train::Weights::Live : train::Weights::Model);
      m.net->eval();
      if (part_template == "none") {
        m.net->set_part_template({});
      } else if (!m.net->part_template().defined()) {
        // A checkpoint from before the template: fit it as the trainer does at the end of a run.
        const auto fitted = fit_part_template(m);
        m.net->set_part_template(fitted);
      }
      m.ownership = train::checkpoint_ownership(m.checkpoint);  // refinement's forces, the overlays' colours
      if (choose_view && m.net->options().viewpoints < 2)
        throw std::invalid_argument("--choose-view: " + m.checkpoint.string() +
                                    " was trained with model.viewpoints 1 (no turns to choose among)");
      m.name = names.empty() ? m.checkpoint.parent_path().filename().string() : names[i];
      if (m.name.empty()) m.name = m.checkpoint.string();
      models.push_back(std::move(m));
    }
    const auto layout = data::resolve_layout(data, format, "--format");
    if (category.empty()) {
      if (models.empty()) throw std::invalid_argument("--category is required without a --checkpoint");
      category = models[0].config.data.category;
    }
    std::vector<std::string> categories = {category};
    if (category == "all") categories = data::list_categories(data, layout);
    if (test_fraction < 0) test_fraction = models.empty() ? 0.2 : models[0].config.data.test_fraction;

    eval::EvalOptions eo;
    eo.transfer = transfer == "surface" ? eval::KeypointTransfer::Surface : eval::KeypointTransfer::NearestVertex;
    eo.surface_samples = samples_3d;
    for (int64_t q = 0; q < data::kNumKeypoints; ++q) eo.keypoint_mirror.push_back(data::keypoint_mirror(q));
    for (int64_t g = 0; g <= data::kNumPartLabels; ++g) eo.label_mirror.push_back(data::part_label_mirror(g));

    nlohmann::json report;
    report["rows"] = nlohmann::json::array();
    std::string per_image = kPerImageHeader;
    std::string table =
        "| model | category | images | PCK@0.05 | PCK@0.1 | IoU | part IoU | PCP | occluded | Chamfer | F@5% | F@10% | "
        "3D parts |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& c : categories) {
      data::ReaderOptions ro;
      ro.crop_size = crop_size;
      ro.split = split == "test" ? data::Split::Test : split == "train" ? data::Split::Train : data::Split::All;
      ro.test_fraction = test_fraction;
      const auto read = data::read_category(data, layout, c, ro);
      const auto& samples = read.samples;
      if (samples.empty())
        throw std::invalid_argument("--data " + data + ": no '" + c + "' images in the " + split + " split");
      std::vector<at::Tensor> masks, parts, kps;
      size_t with_parts = 0, with_kps = 0;
      std::vector<eval::Mesh> meshes;
      for (const auto& s : samples) {
        if (!s.mask.defined())
          throw std::invalid_argument(s.image_path.string() + ": no ground-truth mask (evaluation needs one)");
        masks.push_back(s.mask);
        with_parts += s.part_labels.defined();
        with_kps += s.keypoints.defined();
        if (s.part_labels.defined()) parts.push_back(s.part_labels);
        if (s.keypoints.defined()) kps.push_back(s.keypoints);
        if (layout == data::Layout::Lassie) {
          if (auto m = data::read_ground_truth_mesh(data, s)) meshes.push_back({m->verts, m->faces, m->labels});
        }
      }
      // Ground truth is all or nothing: one missing file must not silently zero a metric.
      for (const auto& s : samples) {
        if (with_parts > 0 && !s.part_labels.defined())
          throw std::runtime_error(s.image_path.string() + ": no ground-truth part labels, though " +
                                   std::to_string(with_parts) + " other images have them (a missing gt/ file?)");
        if (with_kps > 0 && !s.keypoints.defined())
          throw std::runtime_error(s.image_path.string() + ": no keypoints, though other images have them");
      }
      if (!meshes.empty() && meshes.size() != samples.size())
        throw std::runtime_error("--data " + data + ": ground-truth meshes for " + std::to_string(meshes.size()) +
                                 " of " + std::to_string(samples.size()) + " '" + c + "' images (a missing gt/" + c +
                                 "/mesh_<id>.npy?)");
      const auto mask_t = at::stack(masks);
      const auto parts_t = with_parts ? at::stack(parts) : at::Tensor();

      if (!pseudo_labels.empty()) {
        const auto all = features::read_label_maps(samples, pseudo_labels, crop_size);
        const int64_t clusters = std::max<int64_t>(1, all.max().item<int64_t>());
        const auto r = eval::evaluate_label_maps(all, clusters, mask_t, parts_t, eo);
        const auto j = row_json("pseudo-labels", c, r, false, false);
        report["rows"].push_back(j);
        per_image += per_image_lines("pseudo-labels", c, samples, r);
        table += markdown_row(j);
      }

      for (size_t pass = 0; pass < models.size() * (second_pass ? 2 : 1); ++pass) {
        const size_t mi = pass % models.size();
        const bool refined = pass >= models.size();
        auto& m = models[mi];
        double refine_s = 0;
        m.refined.clear();
        m.labels = at::Tensor();
        // The pseudo-labels at the model's grid: what refinement fits, and a model.label_input
        // network's input.
        const auto cache = !pseudo_labels.empty()         ? fs::path(pseudo_labels)
                           : !m.config.data.cache.empty() ? fs::path(m.config.data.cache)
                                                          : fs::path(m.config.data.root) / "cache";
        if (refined || m.config.model.label_input) {
          if (!refined || !m.config.model.label_input)  // once per model
            features::check_label_clusters(
                features::cache_path(cache, "labels", samples.front().id, ".png").parent_path(),
                m.net->options().clusters, !pseudo_labels.empty() ? "--pseudo-labels" : "the checkpoint's data.cache",
                m.checkpoint.string());
          m.labels = features::read_label_maps(samples, cache, m.config.loss.render_size);
        }
        if (refined) {
          // Each image's prediction refined against its pseudo-labels, once, at the labels' grid.
          const auto& labels = m.labels;
          const auto r0 = std::chrono::steady_clock::now();
          double first = 0, last = 0;
          cli::Progress progress;
          for (size_t b = 0; b < samples.size(); b += static_cast<size_t>(batch)) {
            const size_t e = std::min(samples.size(), b + static_cast<size_t>(batch));
            std::vector<at::Tensor> crops;
            for (size_t i = b; i < e; ++i) crops.push_back(samples[i].image);
            train::RefineOptions ro2;
            ro2.iterations = refine;
            ro2.lr = refine_lr;
            ro2.anchor = refine_anchor;
            ro2.choose_view = choose_view;
            const auto res =
                train::refine(m.net, m.config, model::normalize_images(at::stack(crops), m.config.model.image_size),
                              labels.narrow(0, static_cast<int64_t>(b), static_cast<int64_t>(e - b)), m.ownership, ro2);
            first += res.first_loss * static_cast<double>(e - b);
            last += res.last_loss * static_cast<double>(e - b);
            m.refined.push_back(res.prediction);
            progress.update(m.name + " refine", static_cast<int64_t>(e), static_cast<int64_t>(samples.size()));
          }
          refine_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
          if (refine > 0)
            spdlog::info("{}: refined {} images with {} iterations, loss {:.4f} -> {:.4f}, {:.2f} s per image", m.name,
                         samples.size(), refine, first / static_cast<double>(samples.size()),
                         last / static_cast<double>(samples.size()), refine_s / static_cast<double>(samples.size()));
          else
            spdlog::info("{}: chose the turns of {} images from their pseudo-labels, {:.3f} s per image", m.name,
                         samples.size(), refine_s / static_cast<double>(samples.size()));
        }
        const auto t0 = std::chrono::steady_clock::now();
        double spacing = 0;
        const auto grid = grid_rings > 0 ? core::make_surface_grid(grid_rings, grid_segments)
                                         : fine_grid(m, samples, batch, crop_size, &spacing);
        const auto verts = reconstruct_all(m, samples, 0, samples.size(), batch, grid);
        if (grid_rings > 0)
          spacing = eval::edge_pixels(verts.narrow(0, 0, std::min<int64_t>(8, verts.size(0))), grid.faces, crop_size,
                                      kSpacingQuantile);
        const double forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        eval::EvalInputs in;
        in.verts = verts;
        in.faces = grid.faces;
        in.masks = mask_t;
        in.part_labels = parts_t;
        in.keypoints = with_kps ? at::stack(kps) : at::Tensor();
        in.meshes = meshes;
        eo.focal = m.net->options().focal;
        const auto r = eval::evaluate(in, eo);
        const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        auto row_name = m.name;
        if (refined && choose_view) row_name += ", view from labels";
        if (refined && refine > 0) row_name += ", refined " + std::to_string(refine);
        auto j = row_json(row_name, c, r, true, true);
        if (refined) {
          j["refine_iterations"] = refine;
          j["refine_lr"] = refine_lr;
          j["refine_anchor"] = refine_anchor;
          j["choose_view"] = choose_view;
          j["refine_seconds_per_image"] = refine_s / static_cast<double>(samples.size());
        }
        j["checkpoint"] = m.checkpoint.string();
        j["eval_grid"] = std::to_string(grid.rings) + "x" + std::to_string(grid.segments);
        j["vertex_spacing_px"] = spacing;
        j["transfer"] = transfer;
        j["reconstruct_seconds"] = forward_s;
        j["seconds"] = total_s;
        report["rows"].push_back(j);
        table += markdown_row(j);
        per_image += per_image_lines(row_name, c, samples, r);
        spdlog::info("{} on {}: {} images, grid {}x{} (vertex spacing {:.2f} px), {:.1f} s", row_name, c, r.images,
                     grid.rings, grid.segments, spacing, total_s);

        if (!out.empty() && overlays > 0) {
          // The first crops with their predicted parts blended in and the mask outline drawn.
          const int64_t n = std::min<int64_t>(overlays, static_cast<int64_t>(samples.size()));
          std::vector<at::Tensor> crops;
          for (int64_t i = 0; i < n; ++i) crops.push_back(samples[static_cast<size_t>(i)].image);
          // With explicit ownership, each part in its owned cluster's pseudo-label colour.
          const auto blended = render::overlay_part_ids(
              at::stack(crops), render::rasterize_hard(verts.narrow(0, 0, n), grid.faces, crop_size, crop_size).part_id,
              0.55, m.ownership.defined() ? render::owned_cluster_palette(m.ownership) : at::Tensor());
          std::vector<data::Sample> shown;
          for (int64_t i = 0; i < n; ++i) {
            data::Sample o;
            const auto& s = samples[static_cast<size_t>(i)];
            o.image = blended[i];
            o.mask = s.mask;  // drawn as an outline (no label fill: part_labels all 0)
            o.part_labels = at::zeros_like(s.mask);
            shown.push_back(std::move(o));
          }
          fs::create_directories(out);
          const std::string file =
              pass == 0 ? "overlays_" + c + ".png" : "overlays_" + c + "_" + std::to_string(pass) + ".png";
          io::write_png(fs::path(out) / file, data::contact_sheet(shown, 8));
        }
      }
    }
    if (categories.size() > 1) {
      // One mean row per model over the categories (of the figures every category has).
      std::vector<std::string> order;
      for (const auto& r : report["rows"])
        if (std::find(order.begin(), order.end(), r["model"].get<std::string>()) == order.end())
          order.push_back(r["model"].get<std::string>());
      for (const auto& name : order) {
        nlohmann::json mean = {{"model", name}, {"category", "mean"}, {"images", 0}};
        std::map<std::string, std::pair<double, int>> sums;
        int rows = 0;
        for (const auto& r : report["rows"]) {
          if (r["model"] != name) continue;
          ++rows;
          mean["images"] = mean["images"].get<int64_t>() + r["images"].get<int64_t>();
          for (const char* key : {"pck_0.05", "pck_0.1", "iou", "part_iou", "pcp", "pcp_occluded", "chamfer",
                                  "fscore_5", "fscore_10", "part_agreement_3d"})
            if (r.contains(key)) {
              sums[key].first += r[key].get<double>();
              ++sums[key].second;
            }
        }
        for (const auto& [key, sum] : sums)
          if (sum.second == rows) mean[key] = sum.first / rows;
        report["rows"].push_back(mean);
        table += markdown_row(mean);
      }
    }
    report["split"] = split;
    report["data"] = data;
    std::cout << table;
    if (!out.empty()) {
      fs::create_directories(out);
      io::write_file_atomic(fs::path(out) / "metrics.json", report.dump(2) + "\n");
      io::write_file_atomic(fs::path(out) / "metrics.md", table);
      io::write_file_atomic(fs::path(out) / "per_image.csv", per_image);
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
