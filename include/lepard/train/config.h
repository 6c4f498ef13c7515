#pragma once
// Typed configuration for training (`lepard-train --config configs/<name>.yaml --set k=v`):
// every key is declared once with its type, default and help; a YAML file or a --set
// override with an unknown key, a value of the wrong type or an invalid value is an error
// naming the key and the file (and line) before any work starts.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
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
    std::string root;            // dataset root (required)
    std::string format = "auto";  // auto, lassie, pascal
    std::string category = "horse";
    std::string cache;           // pseudo-label cache (lepard-prepare --out); "" = <root>/cache
    int64_t crop_size = 256;
    double test_fraction = 0.2;
  } data;
  struct Model {
    int64_t parts = 16;
    int64_t image_size = 128;     // network input and render side
    int64_t encoder_depth = 4;    // residual stages
    int64_t encoder_width = 32;   // channels of the first stage
    int64_t encoder_blocks = 1;   // BasicBlocks per stage (ResNet-18: width 64, depth 4, blocks 2)
    std::string norm = "group";   // group, or frozen_batch (needed by torchvision weights)
    std::string pool = "flatten"; // flatten (keeps the layout) or mean (global average)
    std::string encoder_weights;  // optional torchvision ResNet .pth
    std::string init;             // optional lepard checkpoint to start from (fine-tuning)
    int64_t hidden = 256;         // decoder MLP width
    bool local_deformation = true;
    bool rigid = false;
    int64_t flow_grid = 4;        // control grid of q_d per axis
    int64_t flow_integration = 8; // integration grid of the velocity
    double max_velocity = 0.15;   // bound of q_d (normalised units)
    int64_t rings = 8, segments = 12;  // surface grid of each part (98 vertices, 192 triangles)
  } model;
  struct Loss {
    double silhouette = 1.0, parts = 1.0, attraction = 1.0, collision = 0.1;
    double deformation_size = 0.01, deformation_smoothness = 0.01;
    bool ownership = false;          // explicit part-to-cluster ownership (train/ownership.h)
    double part_silhouette = 0.0, part_attraction = 0.0;  // per-part forces (need ownership)
    bool part_normalize = true;      // part_silhouette per cluster relative to the cluster's area
    bool generalized_forces = true;  // false: plain autograd image loss (ablation)
    bool collisions = true;
    // Per-group weights of the generalized forces (eq. 11).
    double weight_center = 1.0, weight_rotation = 1.0, weight_shape = 1.0, weight_deformation = 1.0,
           weight_camera = 1.0;
    // Staged generalized forces: q_d's group weight is 0 before this share of train.steps
    // (global deformation first, local deformation after), then weight_deformation.
    double deformation_from = 0.0;
    int64_t render_size = 64;     // silhouettes and part images are compared at this side
  } loss;
  struct Train {
    int64_t steps = 2000;
    int64_t batch_size = 16;
    double lr = 1e-3;
    std::string schedule = "cosine";  // constant, cosine, step
    int64_t warmup = 100;
    double grad_clip = 1.0;
    double sigma_start = 3e-4, sigma_end = 3e-5;  // soft rasteriser sharpness, annealed
    bool flip = true;             // random horizontal flips (image and pseudo-labels)
    int64_t log_every = 10;       // steps between metrics.jsonl lines
    int64_t checkpoint_every = 500;
    int64_t validate_every = 250;
    int64_t validate_size = 128;  // side at which predicted silhouettes meet the ground truth
    int64_t seed = 0;
    std::string out = "runs/train";
    std::string device = "cpu";
    int64_t threads = 0;  // 0 = every core
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
