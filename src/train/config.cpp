#include <lepard/train/config.h>

#include <lepard/core/text.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lepard::train {

namespace fs = std::filesystem;

namespace {

std::string location(const std::string& source, const YAML::Node& node) {
  const auto mark = node.Mark();
  return mark.line >= 0 ? source + ":" + std::to_string(mark.line + 1) : source;
}

using core::format_double;

}  // namespace

ConfigSchema& ConfigSchema::field(const std::string& key, std::string* out, const std::string& help) {
  fields_.push_back({key, "text", help, [out](const std::string& v, const std::string&) { *out = v; },
                     [out] { return YAML::Dump(YAML::Node(*out)); }});
  return *this;
}

namespace {
// Parses all of `v` as a T, or throws naming the key and where.
template <typename T>
void parse_number(T* out, const std::string& key, const std::string& v, const std::string& where, const char* what) {
  std::optional<T> parsed;
  if constexpr (std::is_integral_v<T>)
    parsed = core::parse_integer(v);
  else
    parsed = core::parse_real(v);
  if (!parsed) throw ConfigError(where + ": key '" + key + "' expects " + what + ", got '" + v + "'");
  *out = *parsed;
}
}  // namespace

ConfigSchema& ConfigSchema::field(const std::string& key, int64_t* out, const std::string& help) {
  fields_.push_back(
      {key, "integer", help,
       [out, key](const std::string& v, const std::string& where) { parse_number(out, key, v, where, "an integer"); },
       [out] { return std::to_string(*out); }});
  return *this;
}

ConfigSchema& ConfigSchema::field(const std::string& key, double* out, const std::string& help) {
  fields_.push_back(
      {key, "number", help,
       [out, key](const std::string& v, const std::string& where) { parse_number(out, key, v, where, "a number"); },
       [out] { return format_double(*out); }});
  return *this;
}

ConfigSchema& ConfigSchema::field(const std::string& key, bool* out, const std::string& help) {
  fields_.push_back({key, "true/false", help,
                     [out, key](const std::string& v, const std::string& where) {
                       if (v == "true")
                         *out = true;
                       else if (v == "false")
                         *out = false;
                       else
                         throw ConfigError(where + ": key '" + key + "' expects true or false, got '" + v + "'");
                     },
                     [out] { return std::string(*out ? "true" : "false"); }});
  return *this;
}

const ConfigSchema::Field* ConfigSchema::find(const std::string& key) const {
  for (const auto& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

void ConfigSchema::load_file(const fs::path& path) {
  std::ifstream probe(path);
  if (!probe) throw ConfigError(path.string() + ": cannot open the config file");
  std::stringstream text;
  text << probe.rdbuf();
  load_string(text.str(), path.string());
}

void ConfigSchema::load_string(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (root.IsNull()) return;
  std::function<void(const YAML::Node&, const std::string&)> walk = [&](const YAML::Node& node,
                                                                        const std::string& prefix) {
    if (!node.IsMap())
      throw ConfigError(location(source, node) + ": '" + (prefix.empty() ? "the file" : prefix) +
                        "' should be a mapping of keys");
    for (const auto& kv : node) {
      const auto name = kv.first.as<std::string>();
      const auto key = prefix.empty() ? name : prefix + "." + name;
      const auto where = location(source, kv.first);
      if (const auto* f = find(key)) {
        if (!kv.second.IsScalar())
          throw ConfigError(where + ": key '" + key + "' expects a " + f->type + " value, not a list or mapping");
        f->parse(kv.second.Scalar(), where);
        continue;
      }
      bool is_section = false;
      std::string known;
      for (const auto& f : fields_)
        if (f.key.rfind(key + ".", 0) == 0) is_section = true;
      if (is_section) {
        walk(kv.second, key);
        continue;
      }
      for (const auto& f : fields_)
        if (prefix.empty() ? f.key.find('.') != std::string::npos : f.key.rfind(prefix + ".", 0) == 0) {
          const auto rest = prefix.empty() ? f.key.substr(0, f.key.find('.')) : f.key.substr(prefix.size() + 1);
          if (known.find("'" + rest + "'") == std::string::npos)
            known += (known.empty() ? "" : ", ") + ("'" + rest + "'");
        }
      throw ConfigError(where + ": unknown key '" + key + "'" +
                        (known.empty()
                             ? ""
                             : " (known " + (prefix.empty() ? std::string("sections") : "keys in '" + prefix + "'") +
                                   ": " + known + ")"));
    }
  };
  walk(root, "");
}

void ConfigSchema::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment + ": expected key=value, e.g. --set train.lr=3e-4");
  const auto key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  const auto* f = find(key);
  if (!f) throw ConfigError("--set " + assignment + ": unknown key '" + key + "' (lepard-train --help lists them)");
  std::string scalar = value;
  try {
    const auto node = YAML::Load(value);
    if (node.IsScalar()) scalar = node.Scalar();
  } catch (const YAML::Exception&) {
  }
  f->parse(scalar, "--set");
}

std::string ConfigSchema::to_yaml() const {
  std::string out, section;
  for (const auto& f : fields_) {
    const auto dot = f.key.find('.');
    const auto s = f.key.substr(0, dot);
    if (s != section) {
      out += s + ":\n";
      section = s;
    }
    out += "  " + f.key.substr(dot + 1) + ": " + f.print() + "\n";
  }
  return out;
}

std::string ConfigSchema::help() const {
  std::ostringstream o;
  for (const auto& f : fields_) {
    o << "  " << f.key << " (" << f.type << ", " << f.print() << ")";
    o << std::string(
        f.key.size() + f.type.size() + f.print().size() < 44 ? 44 - f.key.size() - f.type.size() - f.print().size() : 1,
        ' ');
    o << f.help << "\n";
  }
  return o.str();
}

ConfigSchema TrainConfig::schema() {
  ConfigSchema s;
  s.field("data.root", &data.root, "dataset root (required)")
      .field("data.format", &data.format, "auto, lassie or pascal")
      .field("data.category", &data.category, "category to train on")
      .field("data.cache", &data.cache, "pseudo-label cache from lepard-prepare (default <root>/cache)")
      .field("data.crop_size", &data.crop_size, "LASSIE crop side in pixels")
      .field("data.test_fraction", &data.test_fraction, "share of samples held out (by id hash)")
      .field("model.parts", &model.parts, "number of parts K")
      .field("model.image_size", &model.image_size, "network input and render side")
      .field("model.encoder_depth", &model.encoder_depth, "residual stages of the encoder")
      .field("model.encoder_width", &model.encoder_width, "channels of the first stage")
      .field("model.encoder_blocks", &model.encoder_blocks, "residual blocks per stage")
      .choice<model::Normalization>(
          "model.norm", &model.norm,
          {{"group", model::Normalization::Group}, {"frozen_batch", model::Normalization::FrozenBatch}},
          "GroupNorm, or BatchNorm frozen at its statistics (torchvision weights)")
      .choice<model::Pooling>("model.pool", &model.pool,
                              {{"flatten", model::Pooling::Flatten}, {"mean", model::Pooling::Mean}},
                              "flatten (keeps where things are) or mean (global average pool)")
      .field("model.encoder_weights", &model.encoder_weights,
             "optional torchvision ResNet .pth (needs norm frozen_batch)")
      .field("model.init", &model.init,
             "lepard checkpoint whose weights start the run (fine-tuning; not the optimiser)")
      .field("model.hidden", &model.hidden, "decoder MLP width")
      .field("model.local_deformation", &model.local_deformation, "false: no local deformation (ablation)")
      .field("model.rigid", &model.rigid, "true: rigid superquadrics, no tapering or bending (ablation)")
      .field("model.flow_grid", &model.flow_grid, "control grid of the local velocity per axis")
      .field("model.flow_integration", &model.flow_integration, "grid on which the velocity is integrated")
      .field("model.max_velocity", &model.max_velocity, "bound of the local velocity (normalised units)")
      .field("model.max_exponent", &model.max_exponent,
             "upper bound of the squareness exponents e1, e2, in (0.3, 2) (above 1 a part may pinch to a spindle)")
      .field("model.max_size", &model.max_size,
             "upper bound of a part's size a0 (its largest half-extent, object units), in (0.35, 1.5]; the template "
             "starts at 0.3 whatever the bound")
      .field("model.min_aspect", &model.min_aspect,
             "lower bound of the aspect ratios a1..a3, in [0.01, 0.2]: a part's thinnest half-extent is min_aspect "
             "a0 (at 0.1 a long leg part may be a little thinner than a horse's lower leg)")
      .field("model.viewpoints", &model.viewpoints,
             "turns about the vertical axis the camera chooses among (a selection head trained by the viewpoint "
             "search, loss.viewpoint; 2: the animal faces one way or the other); 1: none")
      .field("model.label_input", &model.label_input,
             "true: the network also sees each image's pseudo-labels (C + 1 one-hot input channels); inference "
             "then needs them too (lepard-prepare's cache)")
      .field("model.feedback", &model.feedback,
             "feedback passes: the prediction is rendered and a second encoder, seeing the input and the rendered "
             "parts, corrects it (iterative error feedback; 0: none; needs model.viewpoints 1)")
      .field("model.keypoints", &model.keypoints,
             "spatial soft-argmax keypoints: N score maps on an encoder stage's map whose expected positions (2N "
             "coordinates) join the features the MLP reads (0: none)")
      .field("model.keypoint_stage", &model.keypoint_stage,
             "the encoder stage (1-based) whose map feeds model.keypoints (2: 16 x 16 at the 128-pixel input)")
      .field("model.label_moments", &model.label_moments,
             "true: each pseudo-label cluster's share, centroid and spread (6 C values) join the features the MLP "
             "reads (needs model.label_input)")
      .choice<model::PartFrame>("model.part_frame", &model.part_frame,
                                {{"object", model::PartFrame::Object}, {"camera", model::PartFrame::Camera}},
                                "object: part centres and orientations in the object frame; camera: each centre as "
                                "its image position and depth, each orientation relative to the camera, taken to the "
                                "object frame through the predicted camera (needs model.viewpoints 1)")
      .field("model.anchor", &model.anchor,
             "true: each part's centre sits in the image at the centroid of its owned clusters' cells in the "
             "pseudo-labels, plus an offset the network predicts (at most model.anchor_reach); needs "
             "model.label_input and loss.ownership")
      .field("model.anchor_reach", &model.anchor_reach,
             "model.anchor: the largest offset of a part's image position from its anchor, in normalised image "
             "units (the crop spans [-1, 1])")
      .field("model.part_heatmaps", &model.part_heatmaps,
             "true: each part's image position is moved from where its predicted centre projects to the "
             "soft-argmax of learned per-part scores on an encoder stage's map, under a Gaussian of "
             "model.heatmap_sigma about it, its depth kept (needs model.part_frame object, no model.anchor)")
      .field("model.heatmap_stage", &model.heatmap_stage,
             "the encoder stage (1-based) whose map model.part_heatmaps scores (1: 32 x 32 at the 128-pixel input)")
      .field("model.heatmap_sigma", &model.heatmap_sigma,
             "model.part_heatmaps: the Gaussian's standard deviation about each part's projected centre, in "
             "normalised image units (the crop spans [-1, 1])")
      .field("model.rings", &model.rings, "latitude rings of each part's surface grid")
      .field("model.segments", &model.segments, "longitude segments of each part's surface grid")
      .field("loss.silhouette", &loss.silhouette, "silhouette force weight")
      .field("loss.parts", &loss.parts, "part-label force weight")
      .field("loss.parts_composite", &loss.parts_composite,
             "true: the part image is laid over the background by the parts' soft union silhouette, so that its "
             "force pushes at the outline (false: the depth-blended image alone, which shows a part's cluster "
             "across its whole soft band)")
      .field("loss.parts_balance", &loss.parts_balance,
             "in [0, 1]: the part image's error at each foreground cluster's pixels weighted by the cluster's area "
             "in the image to this power's negative, scaled so that the foreground's total weight is unchanged (0: "
             "every pixel alike; 1: every cluster alike, so the thin legs gain and the torso loses)")
      .field("loss.attraction", &loss.attraction, "2D point-to-mask attraction weight")
      .field("loss.collision", &loss.collision, "collision force weight")
      .field("loss.deformation_size", &loss.deformation_size, "local deformation size regulariser")
      .field("loss.deformation_smoothness", &loss.deformation_smoothness, "local deformation smoothness regulariser")
      .field("loss.ownership", &loss.ownership,
             "true: explicit part-to-cluster ownership from the pseudo-labels' statistics (train/ownership.h)")
      .field("loss.ownership_table", &loss.ownership_table,
             "a part-to-cluster table in ownership.txt's format to use instead of the statistics (needs "
             "loss.ownership)")
      .field("loss.ownership_slack", &loss.ownership_slack,
             "each part also owns the clusters whose assignment cost is within this of its own cluster's (0: one "
             "cluster per part)")
      .field("loss.part_containment", &loss.part_containment,
             "weight of the per-part silhouette's containment (a part on pixels not of its clusters) against its "
             "coverage (1: symmetric)")
      .field("loss.split_shared", &loss.split_shared,
             "true: per image, the separate pieces of a cluster several parts own (the legs of one leg cluster) "
             "become clusters of their own, each owned by the part nearest it")
      .field("loss.split_min_fraction", &loss.split_min_fraction,
             "loss.split_shared: a piece smaller than this share of its cluster's pixels joins the nearest larger one")
      .field("loss.viewpoint", &loss.viewpoint,
             "weight of the camera's selection head against the viewpoint search's choice of turn (needs "
             "model.viewpoints > 1 and loss.ownership)")
      .field("loss.layout", &loss.layout,
             "loss.viewpoint: weight of the pull of each image's part centres toward the search's shared layout "
             "(mean over parts removed), so that the camera, not the parts, follows the viewpoint; 0: none")
      .field("loss.shape_consistency", &loss.shape_consistency,
             "weight of the pull of every part's size and proportions (log semi-axes, the image's scale removed) "
             "toward the category's mean over the batch, so that a part keeps one shape in every view; 0: none")
      .field("loss.distance_consistency", &loss.distance_consistency,
             "weight of the pull of the distances between every two part centres (divided by the image's mean) "
             "toward the category's mean over the batch, so that the parts keep one arrangement in every view; 0: "
             "none")
      .field("loss.viewpoint_momentum", &loss.viewpoint_momentum,
             "loss.viewpoint: momentum of the shared layout (a running mean of the part centres of the images that "
             "need no turn)")
      .field("loss.viewpoint_keep", &loss.viewpoint_keep,
             "loss.viewpoint: the search's turn replaces the selection head's own choice only where its cost is "
             "below this share of that choice's (1: always the search's)")
      .field("loss.viewpoint_from", &loss.viewpoint_from,
             "loss.viewpoint: share of train.steps before the search starts (the parts fit the images first)")
      .field("loss.ownership_capacity", &loss.ownership_capacity,
             "at most this many parts own one cluster in the assignment (0: no limit)")
      .field("loss.part_silhouette", &loss.part_silhouette,
             "per-part silhouette force weight (eq. 12; needs loss.ownership)")
      .field("loss.part_attraction", &loss.part_attraction,
             "per-part attraction weight: each part to its own clusters' pixels (needs loss.ownership)")
      .field("loss.part_pull", &loss.part_pull,
             "loss.part_attraction: weight of its points-to-own-pixels half against its cover half (each cluster's "
             "pixels to the nearest point of its owners); below 1 the pull thins parts less")
      .field("loss.part_normalize", &loss.part_normalize,
             "true: the per-part silhouette of each cluster relative to its area (thin clusters, the legs, count as "
             "much as the torso)")
      .field("loss.part_coverage_balance", &loss.part_coverage_balance,
             "in [0, 1], with loss.part_normalize: false: each cluster's misses in the per-part silhouette weighted "
             "by its area to this power's negative, scaled to average 1 over the owned pixels (0: every pixel alike; "
             "1: every cluster alike, so a thin leg cluster weighs as much as the torso); the containment half stays "
             "per pixel")
      .field("loss.rim_share", &loss.rim_share,
             "the rim: a cluster of which at least this share of pixels touch the background (the outline's mixed "
             "cells) is owned by no part, and its pixels count loss.rim_target as foreground (0: off; needs "
             "loss.ownership)")
      .field("loss.rim_target", &loss.rim_target,
             "in [0, 1]: the silhouette's foreground target on the rim's pixels (0.5: the outline halfway through "
             "them); the part image and the parts' containment weigh them as background by 1 minus this")
      .field("loss.generalized_forces", &loss.generalized_forces, "false: plain autograd image loss (ablation)")
      .field("loss.collisions", &loss.collisions, "false: no collision forces (ablation)")
      .field("loss.weight_center", &loss.weights.center, "generalized-force weight of q_c")
      .field("loss.weight_rotation", &loss.weights.rotation, "generalized-force weight of q_theta")
      .field("loss.weight_shape", &loss.weights.shape, "generalized-force weight of q_s")
      .field("loss.weight_deformation", &loss.weights.local, "generalized-force weight of q_d")
      .field("loss.weight_camera", &loss.weights.camera, "generalized-force weight of the camera")
      .field("loss.deformation_from", &loss.deformation_from,
             "staged forces: share of train.steps before which q_d's weight is 0 (global deformation first)")
      .field("loss.render_size", &loss.render_size, "side of the rendered silhouettes and part images")
      .field("train.steps", &train.steps, "optimiser steps")
      .field("train.batch_size", &train.batch_size, "images per step (over all processes)")
      .field("train.lr", &train.lr, "Adam learning rate")
      .choice<Train::Schedule>("train.schedule", &train.schedule,
                               {{"constant", Train::Schedule::Constant},
                                {"cosine", Train::Schedule::Cosine},
                                {"step", Train::Schedule::Step}},
                               "learning-rate schedule after the warm-up")
      .field("train.warmup", &train.warmup, "linear warm-up steps")
      .field("train.grad_clip", &train.grad_clip, "gradient norm clip (0: none)")
      .field("train.ema", &train.ema,
             "decay of the moving average of the weights that the checkpoint's model holds (0: off; e.g. 0.999)")
      .field("train.sigma_start", &train.sigma_start, "soft rasteriser sigma at the start")
      .field("train.sigma_end", &train.sigma_end, "soft rasteriser sigma at the end")
      .field("train.flip", &train.flip,
             "random horizontal flips of an image and its pseudo-labels (the cluster ids stay unless "
             "train.flip_clusters is mirror: when the clusters tell left from right, a kept id puts them on the "
             "wrong side; docs/training.md)")
      .choice<Train::FlipClusters>("train.flip_clusters", &train.flip_clusters,
                                   {{"keep", Train::FlipClusters::Keep}, {"mirror", Train::FlipClusters::Mirror}},
                                   "what a flip does to the pseudo-labels' cluster ids: keep them, or swap each "
                                   "cluster with its left/right mirror, estimated from the training labels at the "
                                   "start (written to mirror.txt in train.out); no effect without train.flip")
      .field("train.log_every", &train.log_every, "steps between metrics.jsonl lines")
      .field("train.checkpoint_every", &train.checkpoint_every, "steps between checkpoints")
      .field("train.validate_every", &train.validate_every, "steps between validation passes")
      .field("train.validate_size", &train.validate_size, "side at which silhouettes meet the ground truth")
      .field("train.validate_images", &train.validate_images,
             "validate on the first N held-out images, in the split's order (0: all)")
      .field("train.seed", &train.seed, "random seed")
      .field("train.out", &train.out, "run folder: checkpoints, metrics.jsonl")
      .field("train.device", &train.device, "cpu or cuda")
      .field("train.threads", &train.threads, "intra-op threads (0: every core)")
      .field("train.targets", &train.targets,
             "refined targets: Adam iterations per visit on each training image's target (0: off)")
      .field("train.target_lr", &train.target_lr, "Adam step of the refined targets (raw outputs)")
      .field("train.target_weight", &train.target_weight, "weight of the pull toward the refined targets")
      .field("train.target_from", &train.target_from, "share of the steps before the refined targets start")
      .field("train.target_decay", &train.target_decay,
             "share of a refined target's kept offset from the network carried to its next visit");
  return s;
}

void TrainConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& key, const std::string& what) {
    throw ConfigError(source + ": key '" + key + "' " + what);
  };
  auto positive = [&](const std::string& key, int64_t v) {
    if (v < 1) fail(key, "must be at least 1, got " + std::to_string(v));
  };
  auto choice = [&](const std::string& key, const std::string& v, const std::vector<std::string>& options) {
    if (std::find(options.begin(), options.end(), v) == options.end()) {
      std::string list;
      for (const auto& o : options) list += (list.empty() ? "" : ", ") + o;
      fail(key, "must be one of " + list + ", got '" + v + "'");
    }
  };
  if (data.root.empty()) fail("data.root", "is required (the dataset folder)");
  if (!fs::is_directory(data.root)) fail("data.root", "names " + data.root + ", which is not a folder");
  if (!data.cache.empty() && !fs::is_directory(data.cache))
    fail("data.cache", "names " + data.cache + ", which is not a folder (run lepard-prepare --out " + data.cache + ")");
  choice("data.format", data.format, {"auto", "lassie", "pascal"});
  positive("data.crop_size", data.crop_size);
  if (!(data.test_fraction >= 0 && data.test_fraction < 1)) fail("data.test_fraction", "must be in [0, 1)");
  positive("model.parts", model.parts);
  positive("model.image_size", model.image_size);
  positive("model.encoder_depth", model.encoder_depth);
  positive("model.encoder_width", model.encoder_width);
  positive("model.encoder_blocks", model.encoder_blocks);
  if (!model.encoder_weights.empty() && !fs::exists(model.encoder_weights))
    fail("model.encoder_weights", "names " + model.encoder_weights + ", which does not exist");
  if (!model.encoder_weights.empty() && model.norm != model::Normalization::FrozenBatch)
    fail("model.norm", "must be frozen_batch with model.encoder_weights (torchvision ResNets use BatchNorm)");
  if (!model.init.empty() && !fs::is_regular_file(model.init))
    fail("model.init", "names " + model.init + ", which is not a file (a checkpoint.pt of lepard-train)");
  positive("model.hidden", model.hidden);
  positive("model.flow_grid", model.flow_grid);
  positive("model.flow_integration", model.flow_integration);
  if (!(model.max_velocity > 0 && model.max_velocity <= 0.3))
    fail("model.max_velocity", "must be in (0, 0.3], where the flow stays one-to-one (core/local_flow.h)");
  if (model.rings < 2) fail("model.rings", "must be at least 2");
  if (model.segments < 3) fail("model.segments", "must be at least 3");
  if (loss.render_size < 8) fail("loss.render_size", "must be at least 8");
  if (!(model.max_exponent > 0.3 && model.max_exponent < 2.0)) fail("model.max_exponent", "must be in (0.3, 2)");
  if (!(model.max_size > 0.35 && model.max_size <= 1.5)) fail("model.max_size", "must be in (0.35, 1.5]");
  if (!(model.min_aspect >= 0.01 && model.min_aspect <= 0.2)) fail("model.min_aspect", "must be in [0.01, 0.2]");
  for (const auto& [key, v] :
       std::vector<std::pair<std::string, double>>{{"loss.silhouette", loss.silhouette},
                                                   {"loss.parts", loss.parts},
                                                   {"loss.attraction", loss.attraction},
                                                   {"loss.collision", loss.collision},
                                                   {"loss.deformation_size", loss.deformation_size},
                                                   {"loss.part_silhouette", loss.part_silhouette},
                                                   {"loss.ownership_slack", loss.ownership_slack},
                                                   {"loss.part_containment", loss.part_containment},
                                                   {"loss.part_attraction", loss.part_attraction},
                                                   {"loss.part_pull", loss.part_pull},
                                                   {"loss.deformation_smoothness", loss.deformation_smoothness},
                                                   {"loss.weight_center", loss.weights.center},
                                                   {"loss.weight_rotation", loss.weights.rotation},
                                                   {"loss.weight_shape", loss.weights.shape},
                                                   {"loss.weight_deformation", loss.weights.local},
                                                   {"loss.weight_camera", loss.weights.camera}})
    if (!(v >= 0)) fail(key, "must be non-negative");
  if (!(loss.deformation_from >= 0 && loss.deformation_from < 1)) fail("loss.deformation_from", "must be in [0, 1)");
  if ((loss.part_silhouette > 0 || loss.part_attraction > 0) && !loss.ownership)
    fail(loss.part_silhouette > 0 ? "loss.part_silhouette" : "loss.part_attraction",
         "needs loss.ownership: true (the per-part forces act on the clusters each part owns)");
  if (!(loss.split_min_fraction > 0 && loss.split_min_fraction <= 1))
    fail("loss.split_min_fraction", "must be in (0, 1]");
  if (!(loss.parts_balance >= 0 && loss.parts_balance <= 1)) fail("loss.parts_balance", "must be in [0, 1]");
  if (!(loss.part_coverage_balance >= 0 && loss.part_coverage_balance <= 1))
    fail("loss.part_coverage_balance", "must be in [0, 1]");
  if (loss.part_coverage_balance > 0 && loss.part_normalize)
    fail("loss.part_coverage_balance",
         "needs loss.part_normalize: false (part_normalize already divides each cluster's misses by its area)");
  if (loss.split_shared && !loss.ownership) fail("loss.split_shared", "needs loss.ownership: true");
  if (!(loss.rim_share >= 0 && loss.rim_share <= 1)) fail("loss.rim_share", "must be in [0, 1] (0: no rim)");
  if (loss.rim_share > 0 && !loss.ownership)
    fail("loss.rim_share", "needs loss.ownership: true (the rim is the clusters no part owns)");
  if (!(loss.rim_target >= 0 && loss.rim_target <= 1)) fail("loss.rim_target", "must be in [0, 1]");
  if (model.viewpoints < 1) fail("model.viewpoints", "must be at least 1 (1: no turns)");
  if (model.part_frame == model::PartFrame::Camera && model.viewpoints != 1)
    fail("model.part_frame", "camera needs model.viewpoints 1 (a turn of the camera would move nothing in the image)");
  if (model.anchor && !model.label_input)
    fail("model.anchor", "needs model.label_input true (the anchors are read from the pseudo-labels)");
  if (model.anchor && !loss.ownership)
    fail("model.anchor", "needs loss.ownership true (each part is anchored at the clusters it owns)");
  if (model.anchor && model.viewpoints != 1) fail("model.anchor", "needs model.viewpoints 1");
  if (!(model.anchor_reach > 0 && model.anchor_reach <= 1)) fail("model.anchor_reach", "must be in (0, 1]");
  if (model.part_heatmaps && model.part_frame != model::PartFrame::Object)
    fail("model.part_heatmaps", "needs model.part_frame object (the centre it moves is the object frame's)");
  if (model.part_heatmaps && model.anchor) fail("model.part_heatmaps", "cannot be used with model.anchor");
  if (model.part_heatmaps && (model.heatmap_stage < 1 || model.heatmap_stage > model.encoder_depth))
    fail("model.heatmap_stage", "must be in 1..model.encoder_depth (" + std::to_string(model.encoder_depth) + ")");
  if (!(model.heatmap_sigma > 0 && model.heatmap_sigma <= 1)) fail("model.heatmap_sigma", "must be in (0, 1]");
  if (model.feedback < 0) fail("model.feedback", "must be at least 0 (0: no feedback passes)");
  if (model.keypoints < 0) fail("model.keypoints", "must be at least 0 (0: no keypoints)");
  if (model.label_moments && !model.label_input)
    fail("model.label_moments", "needs model.label_input true (the moments are the pseudo-labels')");
  if (model.keypoints > 0 && (model.keypoint_stage < 1 || model.keypoint_stage > model.encoder_depth))
    fail("model.keypoint_stage", "must be in 1..model.encoder_depth (" + std::to_string(model.encoder_depth) + ")");
  if (model.feedback > 0 && model.viewpoints > 1)
    fail("model.feedback", "needs model.viewpoints 1 (a corrected camera would no longer match the chosen turn)");
  if (!(loss.viewpoint >= 0)) fail("loss.viewpoint", "must be non-negative");
  if (loss.viewpoint > 0 && model.viewpoints < 2)
    fail("loss.viewpoint", "needs model.viewpoints > 1 (the turns its selection head chooses among)");
  if (model.viewpoints > 1 && !(loss.viewpoint > 0))
    fail("model.viewpoints", "needs loss.viewpoint > 0 (the selection head learns from the viewpoint search)");
  if (model.viewpoints > 1 && !loss.ownership)
    fail("model.viewpoints", "needs loss.ownership: true (the search matches parts to the clusters they own)");
  if (!(loss.layout >= 0)) fail("loss.layout", "must be non-negative");
  if (loss.layout > 0 && model.viewpoints < 2)
    fail("loss.layout", "needs model.viewpoints > 1 and loss.viewpoint > 0 (the search keeps the layout)");
  if (!(loss.shape_consistency >= 0)) fail("loss.shape_consistency", "must be non-negative");
  if (!(loss.distance_consistency >= 0)) fail("loss.distance_consistency", "must be non-negative");
  if (!(loss.viewpoint_momentum >= 0 && loss.viewpoint_momentum < 1))
    fail("loss.viewpoint_momentum", "must be in [0, 1)");
  if (!(loss.viewpoint_from >= 0 && loss.viewpoint_from < 1)) fail("loss.viewpoint_from", "must be in [0, 1)");
  if (!(loss.viewpoint_keep > 0 && loss.viewpoint_keep <= 1)) fail("loss.viewpoint_keep", "must be in (0, 1]");
  if (loss.ownership_capacity < 0) fail("loss.ownership_capacity", "must be non-negative (0: no limit)");
  if (!loss.ownership_table.empty() && !loss.ownership) fail("loss.ownership_table", "needs loss.ownership: true");
  positive("train.steps", train.steps);
  positive("train.batch_size", train.batch_size);
  if (!(train.lr > 0)) fail("train.lr", "must be positive");
  if (train.warmup < 0) fail("train.warmup", "must be non-negative");
  if (train.grad_clip < 0) fail("train.grad_clip", "must be non-negative (0: no clipping)");
  if (!(train.ema >= 0 && train.ema < 1)) fail("train.ema", "must be in [0, 1) (0: no moving average)");
  if (train.targets < 0) fail("train.targets", "must be non-negative (0: off)");
  if (!(train.target_lr > 0)) fail("train.target_lr", "must be positive");
  if (!(train.target_weight >= 0)) fail("train.target_weight", "must be non-negative");
  if (!(train.target_from >= 0 && train.target_from < 1)) fail("train.target_from", "must be in [0, 1)");
  if (!(train.target_decay >= 0 && train.target_decay <= 1)) fail("train.target_decay", "must be in [0, 1]");
  if (!(train.sigma_start > 0 && train.sigma_end > 0))
    fail("train.sigma_start", "and train.sigma_end must be positive");
  positive("train.checkpoint_every", train.checkpoint_every);
  positive("train.validate_every", train.validate_every);
  positive("train.log_every", train.log_every);
  if (train.validate_size < 8) fail("train.validate_size", "must be at least 8");
  if (train.validate_images < 0) fail("train.validate_images", "must be non-negative (0: every held-out image)");
  choice("train.device", train.device, {"cpu", "cuda"});
  if (train.threads < 0) fail("train.threads", "must be non-negative (0: every core)");
}

TrainConfig load_train_config(const fs::path& path, const std::vector<std::string>& overrides) {
  TrainConfig c;
  auto schema = c.schema();
  if (!path.empty()) schema.load_file(path);
  for (const auto& o : overrides) schema.set(o);
  c.validate(path.empty() ? std::string("the configuration") : path.string());
  return c;
}

}  // namespace lepard::train
