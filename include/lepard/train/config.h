#pragma once
// Typed configuration for training (`lepard-train --config configs/<name>.yaml --set k=v`):
// every key is declared once with its type, default and help; a YAML file or a --set
// override with an unknown key, a value of the wrong type or an invalid value is an error
// naming the key and the file (and line) before any work starts.

#include <lepard/model/options.h>
#include <lepard/train/losses.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lepard::train {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A set of dotted keys ("train.lr") bound to variables.
class ConfigSchema {
 public:
  ConfigSchema& field(const std::string& key, std::string* out, const std::string& help);
  ConfigSchema& field(const std::string& key, int64_t* out, const std::string& help);
  ConfigSchema& field(const std::string& key, double* out, const std::string& help);
  ConfigSchema& field(const std::string& key, bool* out, const std::string& help);
  // A value from a fixed set of names, parsed once into its enum: "model.norm" with
  // {{"group", Norm::Group}, {"frozen_batch", Norm::FrozenBatch}}. Another name is an error
  // listing the choices.
  template <typename E>
  ConfigSchema& choice(const std::string& key, E* out, const std::vector<std::pair<std::string, E>>& names,
                       const std::string& help) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n.first;
    fields_.push_back({key, list, help,
                       [out, names, key, list](const std::string& v, const std::string& where) {
                         for (const auto& n : names) {
                           if (n.first == v) {
                             *out = n.second;
                             return;
                           }
                         }
                         throw ConfigError(where + ": key '" + key + "' must be one of " + list + ", got '" + v + "'");
                       },
                       [out, names] {
                         for (const auto& n : names)
                           if (n.second == *out) return n.first;
                         return std::string("?");
                       }});
    return *this;
  }

  // Reads a YAML mapping of mappings. Keys absent from the file keep their values.
  void load_file(const std::filesystem::path& path);
  void load_string(const std::string& text, const std::string& source);
  // "key=value" (a --set flag): the value is parsed as YAML (so "1e-3", "true", "text").
  void set(const std::string& assignment);

  // Every key with its current value, as YAML that load_string reads back.
  std::string to_yaml() const;
  // One line per key: key, type, default, help.
  std::string help() const;

 private:
  struct Field {
    std::string key, type, help;
    std::function<void(const std::string& value, const std::string& where)> parse;
    std::function<std::string()> print;
  };
  const Field* find(const std::string& key) const;
  std::vector<Field> fields_;
};

struct TrainConfig {
  struct Data {
    std::string root;             // dataset root (required)
    std::string format = "auto";  // auto, lassie, pascal
    std::string category = "horse";
    std::string cache;  // pseudo-label cache (lepard-prepare --out); "" = <root>/cache
    int64_t crop_size = 256;
    double test_fraction = 0.2;
  } data;
  // The model.* keys are the network's own options (model/options.h ModelOptions, bound to the
  // schema field by field; model_options() adds the clusters and the seed), plus the files
  // that start its weights.
  struct Model : model::ModelOptions {
    std::string encoder_weights;  // optional torchvision ResNet .pth
    std::string init;             // optional lepard checkpoint to start from (fine-tuning)
  } model;
  // The loss.* keys are the losses' own settings (train/losses.h LossSettings; weight_* are
  // its group weights), plus what the trainer schedules.
  struct Loss : LossSettings {
    bool ownership = false;  // explicit part-to-cluster ownership (train/ownership.h)
    // A K x C table in ownership.txt's format to use instead of the statistics (needs
    // loss.ownership); empty: from the statistics.
    std::string ownership_table;
    // Each part also owns the clusters whose assignment cost is within this of its own
    // cluster's (train/ownership.h assign_ownership); 0: one cluster per part.
    double ownership_slack = 0.0;
    // At most this many parts per cluster in the assignment (0: no limit).
    int64_t ownership_capacity = 0;
    // Staged generalized forces: q_d's group weight is 0 before this share of train.steps
    // (global deformation first, local deformation after), then weights.local.
    double deformation_from = 0.0;
    // The viewpoint search (train/viewpoint.h; model.viewpoints > 1): the momentum of the shared
    // layout's running mean, and the share of train.steps before the search starts (until then
    // the camera takes no turn).
    double viewpoint_momentum = 0.9;
    double viewpoint_from = 0.1;
    // The search's turn replaces the selection head's own choice only where its cost is below
    // this share of that choice's (1: always the search's).
    double viewpoint_keep = 1.0;
  } loss;
  struct Train {
    int64_t steps = 2000;
    int64_t batch_size = 16;
    double lr = 1e-3;
    enum class Schedule { Constant, Cosine, Step } schedule = Schedule::Cosine;  // of the learning rate
    int64_t warmup = 100;
    double grad_clip = 1.0;
    // Exponential moving average of the weights (Polyak averaging): after each step the average
    // moves toward the weights by 1 - min(ema, (1 + n) / (10 + n)), n the steps averaged so far.
    // The checkpoint's model (what validation, lepard-eval and lepard-infer use) is the average;
    // the trained weights ride along for resume and for load_model(..., Weights::Live). 0: off.
    double ema = 0.0;
    double sigma_start = 3e-4, sigma_end = 3e-5;  // soft rasteriser sharpness, annealed
    bool flip = true;                             // random horizontal flips (image and pseudo-labels)
    // What a flip does to the cluster ids: keep them, or swap each with its estimated mirror
    // (train/ownership.h estimate_cluster_mirror).
    enum class FlipClusters { Keep, Mirror };
    FlipClusters flip_clusters = FlipClusters::Keep;
    int64_t log_every = 10;  // steps between metrics.jsonl lines
    int64_t checkpoint_every = 500;
    int64_t validate_every = 250;
    int64_t validate_size = 128;  // side at which predicted silhouettes meet the ground truth
    int64_t validate_images = 0;  // validate on the first N held-out images (0: all of them)
    int64_t seed = 0;
    std::string out = "runs/train";
    std::string device = "cpu";
    int64_t threads = 0;  // 0 = every core
    // Refined targets (semi-amortised training, docs/training.md "Refined targets"): every
    // training image, and its mirror, keeps an offset from the network's raw camera and part
    // outputs (the local deformation stays the network's). Each visit starts at the network's
    // prediction plus target_decay times the kept offset, moves it by `targets` Adam
    // iterations (step target_lr, the image's own moments kept between visits) of the
    // training loss against the image's pseudo-labels, and keeps the new offset; the network
    // is pulled toward the result by target_weight times the squared distance of the decoded
    // parts and camera (train/refine.h prediction_distance). The targets start at
    // target_from of the steps. 0: off (one process only).
    int64_t targets = 0;
    double target_lr = 0.02;
    double target_weight = 0.1;
    double target_from = 0.0;
    double target_decay = 0.9;
  } train;

  // The schema over this object's fields (the pointers are into *this).
  ConfigSchema schema();
  // Range and choice checks, and that data.root (and data.cache when given) exist. Throws
  // ConfigError naming the key (and `source`, the file the config came from).
  void validate(const std::string& source) const;
};

// Defaults, then the file (if not empty), then each "key=value" override, then validate.
TrainConfig load_train_config(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});

}  // namespace lepard::train
