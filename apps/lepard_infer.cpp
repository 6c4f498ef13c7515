// lepard-infer: batch inference on a folder of images with a trained model: meshes (OBJ with
// part colours, PLY, binary glTF), an overlay of the projected parts, the predicted camera
// and part parameters as JSON, and a contact sheet of all overlays.
#include <lepard/core/project_parts.h>
#include <lepard/core/rotation.h>
#include <lepard/core/surface_grid.h>
#include <lepard/data/boxes.h>
#include <lepard/data/contact_sheet.h>
#include <lepard/data/readers.h>
#include <lepard/features/prepare.h>
#include <lepard/features/vit.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>
#include <lepard/io/mesh_io.h>
#include <lepard/model/model.h>
#include <lepard/model/canonical.h>
#include <lepard/model/reconstruct.h>
#include <lepard/render/hard_rasterize.h>
#include <lepard/render/pictures.h>
#include <lepard/io/indexed_png.h>
#include <lepard/train/refine.h>
#include <lepard/train/trainer.h>

#include "cli/cli.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace fs = std::filesystem;
using namespace lepard;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

nlohmann::json parameters_json(const model::Prediction& p, int64_t b, const at::Tensor& velocity_rms) {
  auto vec = [](const at::Tensor& t) {
    const auto c = t.to(at::kDouble).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  nlohmann::json j;
  j["camera"] = {
      {"rotation_wxyz", vec(p.camera.rotation[b] / p.camera.rotation[b].norm())},
      {"translation", vec(p.camera.translation[b])},
      {"focal", p.camera.focal},
      {"convention", "x_cam = translation + R(rotation) x; x_proj = focal (x/z, y/z), image in [-1, 1], y down"}};
  static const char* names[] = {"a0", "a1", "a2", "a3", "e1", "e2", "t1", "t2", "b1", "b2", "b3"};
  for (int64_t k = 0; k < p.parts.center.size(1); ++k) {
    nlohmann::json part = {{"center", vec(p.parts.center[b][k])},
                           {"rotation_wxyz", vec(p.parts.rotation[b][k] / p.parts.rotation[b][k].norm())}};
    const auto s = vec(p.parts.shape[b][k]);
    for (size_t i = 0; i < s.size(); ++i) part["shape"][names[i]] = s[i];
    if (velocity_rms.defined()) part["local_velocity_rms"] = velocity_rms[b][k].item<double>();
    j["parts"].push_back(part);
  }
  return j;
}

// Views of one reconstruction turning about the image's vertical axis: a (size, n size, 3)
// strip, parts in their palette colours shaded by depth. verts: (K, V, 3) in the camera's
// orientation (y down), centred on the object.
at::Tensor turntable(const at::Tensor& verts, const at::Tensor& faces, int64_t views, int64_t size,
                     const at::Tensor& palette) {
  auto v = verts.to(at::kDouble);
  v = v - v.reshape({-1, 3}).mean(0);
  const double radius = v.norm(2, 2).max().item<double>() + 1e-6;
  std::vector<at::Tensor> frames;
  for (int64_t i = 0; i < views; ++i) {
    const double a = 2.0 * M_PI * static_cast<double>(i) / static_cast<double>(views);
    const auto x = v.select(2, 0) * std::cos(a) + v.select(2, 2) * std::sin(a);
    const auto z = -v.select(2, 0) * std::sin(a) + v.select(2, 2) * std::cos(a) + 3.0 * radius;
    const double f = 2.4;  // the object's bounding sphere fills most of the view
    const auto projected = at::stack({f * x / z, f * v.select(2, 1) / z, z}, 2).unsqueeze(0);
    const auto frags = render::rasterize_hard(projected, faces, size, size);
    auto rgb = render::colorize_part_ids(frags.part_id, palette)[0].to(at::kFloat);
    const auto depth = frags.depth[0];
    const auto covered = frags.part_id[0] >= 0;
    const double lo = 2.0 * radius, hi = 4.0 * radius;
    const auto shade = (1.0 - 0.6 * ((depth - lo) / (hi - lo)).clamp(0, 1)).unsqueeze(2);
    rgb = at::where(covered.unsqueeze(2), rgb * shade, at::full_like(rgb, 255.0));
    frames.push_back(rgb.to(at::kByte));
  }
  return at::cat(frames, 1);
}

}  // namespace

int main(int argc, char** argv) {
  cli::tune_runtime(argv);
  cli::init_logging();
  std::string checkpoint, images, out, boxes_path, formats = "obj,ply,glb,json,overlay,parts", pseudo_labels,
                                                   crop = "centre", weights, label_clusters;
  int64_t threads = 0, batch = 32, crop_size = 256, sheet = 48, turntables = 0, refine = 0, saliency_size = 224;
  double refine_lr = 0.005, refine_anchor = 0.0, saliency_threshold = 0.2;
  bool choose_view = false, live_weights = false;
  bool skip_writing = false;
  cli::Parser parser("lepard-infer",
                     "Reconstructs every image of a folder with one forward pass of a trained model (with --refine,\n"
                     "then N iterations of the training forces on each image's own parts) and writes, per image: "
                     "<name>.obj (+ .mtl part colours), <name>.ply, <name>.glb,\n"
                     "<name>_overlay.png (projected parts over the crop), <name>_parts.png (the part map: 8-bit\n"
                     "palette PNG, 0 background, k + 1 part k) and <name>.json (camera and part parameters); and\n"
                     "contact_sheet.png. Meshes are in the camera's orientation, centred on the\n"
                     "object, y up (glTF's convention), so viewers show them as the image does.");
  parser.flag("checkpoint", &checkpoint, "checkpoint.pt of lepard-train (or its run folder)")
      .flag("live-weights", &live_weights,
            "reconstruct with the checkpoint's trained weights rather than their moving average (runs with "
            "train.ema only; the model of the others is their trained weights already)")
      .flag("images", &images, "folder of .png/.jpg/.jpeg/.bmp images")
      .flag("out", &out, "output folder")
      .flag("boxes", &boxes_path,
            "CSV file,left,top,width,height: crop each image around its box as LASSIE does "
            "(1.5 x the box's longer side); default: --crop")
      .flag("crop", &crop,
            "without --boxes: centre (the centred square of the whole image) or saliency (LASSIE's "
            "square around the box of the DINO CLS saliency's largest salient region; needs --weights)")
      .flag("weights", &weights,
            "a DINO checkpoint (torch.save .pth or safetensors) for --crop saliency, and for --label-clusters "
            "made from DINO features (default there: the checkpoint the clusters were made with)")
      .flag("saliency-threshold", &saliency_threshold,
            "--crop saliency: min-max normalised saliency a patch needs "
            "to count as object, in (0, 1]")
      .flag("saliency-size", &saliency_size,
            "--crop saliency: side the image is resized to for the ViT (0: its own size)")
      .flag("formats", &formats, "comma-separated outputs: obj, ply, glb, json, overlay, parts")
      .flag("crop-size", &crop_size, "crop side in pixels (overlays are drawn at this size)")
      .flag("batch", &batch, "images per forward pass")
      .flag("contact-sheet", &sheet, "overlays on contact_sheet.png (0: none)")
      .flag("turntable", &turntables,
            "also write <name>_turntable.png (8 views around the vertical axis) for this many images")
      .flag("refine", &refine,
            "test-time refinement: N iterations of the training forces on each image's parts, "
            "from its pseudo-labels (--pseudo-labels); 0: the feed-forward prediction")
      .flag("refine-lr", &refine_lr, "Adam step of the refinement on the heads' raw outputs")
      .flag("refine-anchor", &refine_anchor,
            "weight of the refinement's pull back toward the network's own raw outputs "
            "(squared distance; 0: none)")
      .flag("choose-view", &choose_view,
            "models with model.viewpoints > 1: each image's turn is the one whose reconstruction has the least "
            "training loss against its pseudo-labels (--pseudo-labels), not the selection head's; before --refine")
      .flag("pseudo-labels", &pseudo_labels,
            "folder of <name>.png label maps of the crops (lepard-prepare's "
            "cache/labels/<category>/ for a dataset's crops), needed by --refine and --choose-view, and always by a "
            "model trained with model.label_input (its network sees them)")
      .flag("label-clusters", &label_clusters,
            "instead of --pseudo-labels: label each crop here with the part clusters lepard-prepare stored for "
            "the training collection (its cache root, or <cache>/clusters/<category>/), from the features they "
            "were made with (the DINO surrogate of synthetic images, or --weights); writes labels/<name>.png")
      .flag("forward-only", &skip_writing, "time the forward pass only: write nothing but the summary")
      .flag("threads", &threads, "intra-op threads (0: every core)")
      .epilog(
          "Example:\n  lepard-infer --checkpoint runs/h1200_train --images runs/h1200/images/horse --out runs/infer\n"
          "Unreadable images are reported and skipped. Exit codes: 0 all done, 1 an error, 2 a bad command line,\n"
          "4 some images could not be read (the others were written).");
  parser.parse(argc, argv);
  cli::set_threads(threads > 0 ? threads : cli::default_threads());
  int failed = 0;
  try {
    if (checkpoint.empty() || images.empty() || out.empty())
      throw std::invalid_argument("--checkpoint, --images and --out are required");
    if (batch < 1) throw std::invalid_argument("--batch must be at least 1, got " + std::to_string(batch));
    if (crop_size < 16)
      throw std::invalid_argument("--crop-size must be at least 16, got " + std::to_string(crop_size));
    if (refine < 0 || refine > 100000)
      throw std::invalid_argument("--refine must be in [0, 100000], got " + std::to_string(refine));
    if (!(refine_lr > 0 && refine_lr <= 10))
      throw std::invalid_argument("--refine-lr must be in (0, 10], got " + std::to_string(refine_lr));
    if (!(refine_anchor >= 0 && refine_anchor <= 1e6))
      throw std::invalid_argument("--refine-anchor must be in [0, 1e6], got " + std::to_string(refine_anchor));
    const bool refining = refine > 0 || choose_view;
    bool with_labels = refining;
    std::string needs = refine > 0 ? "--refine" : "--choose-view";
    if (!pseudo_labels.empty() && !label_clusters.empty())
      throw std::invalid_argument("--pseudo-labels and --label-clusters both give the labels: give one");
    auto check_labels = [&] {
      if (with_labels && pseudo_labels.empty() && label_clusters.empty())
        throw std::invalid_argument(needs +
                                    " needs --pseudo-labels (the label maps of the crops: lepard-prepare writes them "
                                    "for a dataset under <cache>/labels/<category>/) or --label-clusters (the "
                                    "training collection's stored clusters, which label new photos)");
      if (with_labels && !pseudo_labels.empty() && !fs::is_directory(pseudo_labels))
        throw std::invalid_argument("--pseudo-labels " + pseudo_labels + ": not a folder");
    };
    check_labels();
    if (sheet < 0 || turntables < 0) throw std::invalid_argument("--contact-sheet and --turntable must be >= 0");
    if (crop != "centre" && crop != "saliency")
      throw std::invalid_argument("--crop must be centre or saliency, got '" + crop + "'");
    if (crop == "saliency" && !boxes_path.empty())
      throw std::invalid_argument("--crop saliency and --boxes both choose the crop: give one");
    if (crop == "saliency" && weights.empty())
      throw std::invalid_argument("--crop saliency needs --weights: a DINO checkpoint for the CLS saliency");
    if (!(saliency_threshold > 0 && saliency_threshold <= 1))
      throw std::invalid_argument("--saliency-threshold must be in (0, 1], got " + std::to_string(saliency_threshold));
    if (saliency_size < 0 || saliency_size > 4096)
      throw std::invalid_argument("--saliency-size must be in [0, 4096], got " + std::to_string(saliency_size));
    std::set<std::string> wanted;
    {
      std::stringstream list(formats);
      for (std::string f; std::getline(list, f, ',');) {
        if (f != "obj" && f != "ply" && f != "glb" && f != "json" && f != "overlay" && f != "parts")
          throw std::invalid_argument("--formats: unknown output '" + f +
                                      "' (expected obj, ply, glb, json, overlay, parts)");
        wanted.insert(f);
      }
    }
    auto has = [&](const std::string& f) { return wanted.count(f) > 0; };
    fs::path ckpt(checkpoint);
    if (fs::is_directory(ckpt)) ckpt /= "checkpoint.pt";
    train::TrainConfig config;
    auto net = train::load_model(ckpt, &config, live_weights ? train::Weights::Live : train::Weights::Model);
    if (!net->part_template().defined())
      spdlog::info(
          "{}: no part template (written before 2026-12-07): the meshes keep the network's own naming of "
          "each part's ends, and the JSON has no ends_turned",
          ckpt.string());
    if (has("parts") && config.model.parts > 255)
      throw std::invalid_argument("--formats parts: " + ckpt.string() + " has " + std::to_string(config.model.parts) +
                                  " parts, more than an 8-bit part map holds (255); leave parts out of --formats");
    if (net->options().label_input && !with_labels) {
      with_labels = true;
      needs = ckpt.string() + " (trained with model.label_input: the network sees the pseudo-labels)";
      check_labels();
    }
    // Labels the model consumes or refines against must number its clusters.
    if (with_labels && !pseudo_labels.empty())
      features::check_label_clusters(pseudo_labels, net->options().clusters, "--pseudo-labels", ckpt.string());
    if (choose_view && net->options().viewpoints < 2)
      throw std::invalid_argument("--choose-view: " + ckpt.string() +
                                  " was trained with model.viewpoints 1 (no turns to choose among)");
    data::ReaderOptions ro;
    ro.crop_size = crop_size;
    ro.skip_bad = true;
    auto read = data::read_image_folder(images, ro);
    // The reader has warned about each skipped image once; the summary counts them.
    failed = static_cast<int>(read.skipped.size());
    auto& samples = read.samples;
    // How each crop was chosen (written to <name>.json): centre, boxes or saliency.
    std::map<std::string, std::string> crop_source;
    if (!boxes_path.empty()) {
      const auto boxes = data::read_boxes_csv(boxes_path);
      for (auto& s : samples) {
        const auto it = boxes.find(s.image_path.filename().string());
        if (it == boxes.end())
          throw std::invalid_argument("--boxes " + boxes_path + ": no box for " + s.image_path.filename().string());
        const auto& [l, t, w, h] = it->second.ltwh;
        if (l >= static_cast<double>(s.original_width) || t >= static_cast<double>(s.original_height) || l + w <= 0 ||
            t + h <= 0)
          throw std::invalid_argument(it->second.where + ": the box of " + s.image_path.filename().string() +
                                      " lies outside the " + std::to_string(s.original_width) + " x " +
                                      std::to_string(s.original_height) + " image");
        s.crop = data::square_crop_box(l, t, w, h);
        s.image = data::crop_image(io::read_image(s.image_path), s.crop, crop_size);
        crop_source[s.id] = "boxes";
      }
    }
    // --crop saliency's ViT, kept for --label-clusters when its clusters were made from the same file.
    std::optional<features::DinoVit> crop_vit;
    if (crop == "saliency") {
      // The object's box from the ViT's CLS saliency, then LASSIE's square around it; an image
      // with no salient patch keeps the centred square (warned).
      const auto& vit = crop_vit.emplace(features::DinoVit::load(weights));
      spdlog::info("--crop saliency: {} from {}, saliency >= {} at {}", vit.arch().name(), weights, saliency_threshold,
                   saliency_size > 0 ? std::to_string(saliency_size) + " px" : std::string("each image's own size"));
      const int64_t patch = vit.arch().patch;
      cli::Progress saliency_progress;
      int64_t done = 0;
      for (auto& s : samples) {
        const auto rgb = io::read_image(s.image_path);
        const auto f = features::extract_image(vit, rgb, {}, {0, 2, 4, 5}, saliency_size);
        const int64_t in_h = saliency_size > 0 ? saliency_size : rgb.size(0);
        const int64_t in_w = saliency_size > 0 ? saliency_size : rgb.size(1);
        const auto box =
            features::saliency_box(f.saliency, saliency_threshold, patch, patch, in_h, in_w, rgb.size(0), rgb.size(1));
        if (!box) {
          spdlog::warn("{}: no patch reaches saliency {}; the centred square is used", s.image_path.string(),
                       saliency_threshold);
        } else {
          s.crop = data::square_crop_box(box->left, box->top, box->width, box->height);
          s.image = data::crop_image(rgb, s.crop, crop_size);
          crop_source[s.id] = "saliency";
        }
        saliency_progress.update("saliency crops", ++done, static_cast<int64_t>(samples.size()));
      }
    }
    if (samples.empty()) throw std::runtime_error("--images " + images + ": no readable images");
    // Output names: the file's stem, or stem_extension where two inputs share a stem (x.png and
    // x.jpg), so that no input's files overwrite another's.
    std::map<std::string, int> stem_count;
    for (const auto& s : samples) ++stem_count[fs::path(s.id).stem().string()];
    auto output_name = [&](const data::Sample& s) {
      const fs::path id(s.id);
      const auto stem = id.stem().string();
      if (stem_count[stem] < 2) return stem;
      auto ext = id.extension().string();
      if (!ext.empty()) ext = ext.substr(1);
      return stem + "_" + ext;
    };
    fs::create_directories(out);
    // --label-clusters: each crop labelled here with the training collection's stored clusters,
    // from the features they were made with (docs/usage.md, "Pseudo-labels for new photos").
    std::optional<features::StoredClusters> clusters;
    std::optional<features::DinoVit> label_vit;
    features::PrepareOptions label_features;
    io::Palette label_colors;
    if (!label_clusters.empty()) {
      clusters = features::read_clusters(label_clusters);
      // Labels the model consumes must number its clusters as its training collection did.
      if (with_labels && clusters->model.clusters() != net->options().clusters)
        throw std::invalid_argument("--label-clusters " + label_clusters + ": " +
                                    std::to_string(clusters->model.clusters()) + " clusters, but " + ckpt.string() +
                                    " was trained on " + std::to_string(net->options().clusters) +
                                    ": give the clusters of the collection it was trained on");
      label_features = clusters->features;
      if (!label_features.surrogate) {
        const fs::path w = weights.empty() ? label_features.weights : fs::path(weights);
        if (!fs::exists(w))
          throw std::invalid_argument("--label-clusters " + label_clusters + ": the clusters were made from DINO " +
                                      "features of " + label_features.weights.string() +
                                      ", which is not there: give --weights");
        if (crop_vit && fs::equivalent(w, weights)) {
          label_vit = std::move(crop_vit);
          spdlog::info("--label-clusters: the ViT of --crop saliency ({})", w.string());
        } else {
          label_vit.emplace(features::DinoVit::load(w));
        }
        if (label_vit->arch().name() != clusters->weights_arch)
          throw std::invalid_argument("--weights " + w.string() + " is a " + label_vit->arch().name() +
                                      ", but the clusters of " + label_clusters + " were made with a " +
                                      clusters->weights_arch);
        // As lepard-prepare: the crop resized to the collection's ViT input side.
        if (label_features.image_size <= 0) label_features.image_size = clusters->crop_size;
      }
      label_colors = features::pseudo_label_palette(clusters->model.clusters());
      if (!skip_writing)
        features::write_label_clusters(fs::path(out) / "labels", clusters->model.clusters(), clusters->dir);
      spdlog::info("--label-clusters: {} clusters from {} ({})", clusters->model.clusters(), clusters->dir.string(),
                   label_features.surrogate ? "the DINO surrogate" : clusters->weights_arch);
    }
    const auto grid = model::surface_grid(net->options());
    // With explicit ownership, parts take their owned cluster's pseudo-label colour (meshes,
    // overlays, turntables); without, a colour per part.
    const auto ownership = train::checkpoint_ownership(ckpt);
    // The crops that --pseudo-labels' maps were made for, where recorded (--label-clusters'
    // labels.json), and those of the maps --label-clusters writes here.
    const auto recorded_crops = with_labels && !pseudo_labels.empty() ? features::recorded_label_crops(pseudo_labels)
                                                                      : std::map<std::string, data::CropBox>{};
    std::map<std::string, data::CropBox> written_crops;
    double refine_s = 0, label_s = 0;
    const auto colors =
        ownership.defined() ? render::owned_cluster_palette(ownership) : render::part_palette(config.model.parts);
    // <name>_parts.png: index 0 background, k + 1 part k, in the parts' colours.
    io::Palette palette = {{0, 0, 0}};
    {
      const auto c = colors.to(at::kByte).contiguous();
      const auto ca = c.accessor<uint8_t, 2>();
      for (int64_t k = 0; k < c.size(0); ++k) palette.push_back({ca[k][0], ca[k][1], ca[k][2]});
    }
    std::vector<data::Sample> overlays;
    cli::Progress progress;
    double forward_s = 0;
    const double start = now_s();
    for (size_t begin = 0; begin < samples.size(); begin += static_cast<size_t>(batch)) {
      const size_t end = std::min(samples.size(), begin + static_cast<size_t>(batch));
      std::vector<at::Tensor> crops;
      for (size_t i = begin; i < end; ++i) crops.push_back(samples[i].image);
      const double t0 = now_s(), refined_before = refine_s, labelled_before = label_s;
      const auto normalized = model::normalize_images(at::stack(crops), config.model.image_size);
      model::Prediction pred;
      // Each image's label map at the loss grid: read (named after the output's stem) or, with
      // --label-clusters, made here and written to labels/<name>.png.
      std::vector<at::Tensor> maps;
      if (with_labels || clusters) {
        for (size_t i = begin; i < end; ++i) {
          at::Tensor labels;
          if (clusters) {
            const double l0 = now_s();
            features::SampleFeatures f;
            try {
              f = features::sample_features(samples[i], label_features, label_vit ? &*label_vit : nullptr);
            } catch (const data::DataError& e) {
              if (!label_features.surrogate) throw;
              throw data::DataError(std::string(e.what()) + "; the clusters of " + clusters->dir.string() +
                                    " were made from the DINO surrogate, which only lepard-synth's images have: "
                                    "prepare the training collection with --weights to label other photos");
            }
            labels = features::assign_labels(clusters->model, f.features);
            label_s += now_s() - l0;
            if (!skip_writing) {
              io::write_indexed_png(fs::path(out) / "labels" / (output_name(samples[i]) + ".png"), labels,
                                    label_colors);
              written_crops[output_name(samples[i])] = samples[i].crop;
            }
          } else {
            const auto path = fs::path(pseudo_labels) / (output_name(samples[i]) + ".png");
            if (!fs::exists(path))
              throw std::runtime_error(path.string() + ": no pseudo-labels for " + samples[i].image_path.string() +
                                       " (" + needs + " needs a label map of each crop)");
            const auto made_for = recorded_crops.find(output_name(samples[i]));
            const auto& c = samples[i].crop;
            if (made_for != recorded_crops.end() &&
                (made_for->second.left != c.left || made_for->second.top != c.top || made_for->second.size != c.size))
              throw std::runtime_error(
                  path.string() + ": made for the crop at (" + std::to_string(made_for->second.left) + ", " +
                  std::to_string(made_for->second.top) + ") of side " + std::to_string(made_for->second.size) + " of " +
                  samples[i].image_path.string() + ", but this run crops it at (" + std::to_string(c.left) + ", " +
                  std::to_string(c.top) + ") of side " + std::to_string(c.size) +
                  " (labels.json beside it): label it again with this run's crop (--label-clusters), or crop it as "
                  "those labels were (--crop, --boxes)");
            labels = io::read_indexed_png(path);
          }
          if (!with_labels) continue;  // labels only written, not consumed
          const auto m = labels.to(at::kFloat).unsqueeze(0).unsqueeze(0);
          const int64_t r = config.loss.render_size;
          maps.push_back(at::upsample_nearest2d(m, {r, r}).squeeze(0).squeeze(0).to(at::kLong));
        }
        // labels.json again with this batch's crops: what a later --pseudo-labels checks.
        if (clusters && !skip_writing)
          features::write_label_clusters(fs::path(out) / "labels", clusters->model.clusters(), clusters->dir,
                                         written_crops);
      }
      if (with_labels) {
        if (refining) {
          const double r0 = now_s();
          train::RefineOptions ro{refine, refine_lr, refine_anchor};
          ro.choose_view = choose_view;
          pred = train::refine(net, config, normalized, at::stack(maps), ownership, ro).prediction;
          refine_s += now_s() - r0;
        } else {
          at::NoGradGuard no_grad;
          pred = net->forward(normalized, at::stack(maps));
        }
      } else {
        at::NoGradGuard no_grad;
        pred = net->forward(normalized);
      }
      at::NoGradGuard no_grad;
      auto rec = model::reconstruct(pred, grid, model::flow_options(net->options()));
      const auto turns = model::canonicalize(rec, net->part_template(), grid);
      const auto& projected = rec.image;
      const auto& world = rec.world;
      forward_s += now_s() - t0 - (refine_s - refined_before) - (label_s - labelled_before);  // the forward pass alone
      if (skip_writing) {
        progress.update("infer (forward only)", static_cast<int64_t>(end), static_cast<int64_t>(samples.size()));
        continue;
      }
      // Camera orientation, centred on the object, y up: (x, -y, -z) of R_cam x.
      const auto cam = core::rotate_points(pred.camera.rotation.unsqueeze(1).unsqueeze(1), world) *
                       at::tensor({1.0, -1.0, -1.0}, world.options());
      const auto frags = render::rasterize_hard(projected, grid.faces, crop_size, crop_size);
      const auto blended = render::overlay_part_ids(at::stack(crops), frags.part_id, 0.55, colors);
      const auto vel_rms = pred.velocity.defined() ? pred.velocity.pow(2).flatten(2).mean(2).sqrt() : at::Tensor();
      for (size_t i = begin; i < end; ++i) {
        const int64_t b = static_cast<int64_t>(i - begin);
        const auto& s = samples[i];
        const auto stem = output_name(s);
        const auto base = fs::path(out) / stem;
        const auto verts = cam[b];
        if (has("obj"))
          io::write_obj(base.string() + ".obj", verts, grid.faces, {"lepard reconstruction of " + s.id}, colors);
        if (has("ply")) io::write_ply(base.string() + ".ply", verts, grid.faces, colors);
        if (has("glb")) io::write_glb(base.string() + ".glb", verts, grid.faces, colors);
        if (has("json")) {
          auto j = parameters_json(pred, b, vel_rms);
          // Parts whose meshes are read through the half-turn about their x axis (model/canonical.h).
          if (turns.defined())
            for (int64_t k = 0; k < turns.size(1); ++k) j["parts"][k]["ends_turned"] = turns[b][k].item<bool>();
          j["image"] = s.image_path.string();
          j["crop"] = {{"left", s.crop.left},
                       {"top", s.crop.top},
                       {"size", s.crop.size},
                       {"source", crop_source.count(s.id) ? crop_source[s.id] : "centre"}};
          io::write_file_atomic(base.string() + ".json", j.dump(2) + "\n");
        }
        const auto overlay = blended[b];
        if (has("overlay")) io::write_png(base.string() + "_overlay.png", overlay);
        if (has("parts"))
          io::write_indexed_png(base.string() + "_parts.png", (frags.part_id[b] + 1).to(at::kByte), palette);
        if (static_cast<int64_t>(i) < turntables) {
          const auto centred = core::rotate_points(pred.camera.rotation[b].view({1, 1, 4}), world[b]);
          io::write_png(base.string() + "_turntable.png", turntable(centred, grid.faces, 8, 160, colors));
        }
        if (static_cast<int64_t>(overlays.size()) < sheet) {
          data::Sample o;
          o.image = overlay;
          overlays.push_back(std::move(o));
        }
      }
      progress.update("infer", static_cast<int64_t>(end), static_cast<int64_t>(samples.size()));
    }
    const double total_s = now_s() - start;
    if (!overlays.empty()) io::write_png(fs::path(out) / "contact_sheet.png", data::contact_sheet(overlays, 8));
    const double n = static_cast<double>(samples.size());
    nlohmann::json summary = {{"images", samples.size()},
                              {"failed", failed},
                              {"forward_images_per_s", n / forward_s},
                              {"end_to_end_images_per_s", n / total_s},
                              {"seconds", total_s},
                              {"out", out}};
    if (refine > 0) {
      summary["refine_iterations"] = refine;
      summary["refine_seconds_per_image"] = refine_s / n;
    }
    if (choose_view) summary["choose_view"] = true;
    if (clusters) {
      summary["label_clusters"] = clusters->dir.string();
      summary["label_seconds_per_image"] = label_s / n;
    }
    io::write_file_atomic(fs::path(out) / "summary.json", summary.dump(2) + "\n");
    std::cout << summary.dump(2) << std::endl;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "lepard-infer: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lepard-infer: %s\n", e.what());
    return 1;
  }
  return failed > 0 ? 4 : 0;
}
