#pragma once
// The training loop of lepard-train: Adam with warm-up and a schedule, sigma annealing,
// gradient clipping, data-parallel gradient averaging, validation, JSONL metrics, atomic
// checkpoints, exact resume and a guard against NaN or Inf.
//
// Determinism: every random choice (the order of the training images, the flips) is a
// function of (train.seed, the position in the stream of samples), not of a generator's
// state, so a run resumed from a checkpoint at step n draws exactly what the uninterrupted
// run drew after step n. The checkpoint holds the model, the optimiser's state, the step,
// the configuration and the seed.
#include <lepard/core/surface_grid.h>
#include <lepard/model/model.h>
#include <lepard/train/config.h>
#include <lepard/train/distributed.h>

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lepard::train {

// A loss term or gradient that is NaN or Inf; the message names the step and the term.
class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Training or validation images in memory.
struct Dataset {
  std::vector<std::string> ids;
  at::Tensor images;       // (N, 3, S, S) float, model::normalize_images
  at::Tensor labels;       // (N, R, R) uint8 pseudo-labels at loss.render_size; undefined if none
  at::Tensor masks;        // (N, T, T) uint8 ground-truth masks at train.validate_size; undefined if none
  at::Tensor part_labels;  // (N, T, T) uint8 ground-truth part labels (1..16); undefined if none
  int64_t clusters = 0;    // C: the largest pseudo-label
  int64_t size() const { return static_cast<int64_t>(ids.size()); }
};

// Reads the training (or held-out) split of config.data with the pseudo-label cache.
// Throws data::DataError naming the file when a sample or its pseudo-labels are missing.
Dataset load_dataset(const TrainConfig& config, bool held_out);

// A training batch with the images (B, 3, S, S) and labels (B, R, R) flagged in `flags`
// (B, bool) mirrored left to right (train.flip); where `lookup` ((C + 1) int64, or undefined)
// is given, the mirrored labels' ids go through it (train.flip_clusters mirror).
std::pair<at::Tensor, at::Tensor> flip_batch(const at::Tensor& images, const at::Tensor& labels,
                                             const at::Tensor& flags, const at::Tensor& lookup);

// The model options a configuration asks for (clusters from the data).
model::ModelOptions model_options(const TrainConfig& config, int64_t clusters);

struct StepReport {
  int64_t step = 0, steps = 0;  // steps done, total
  double lr = 0, sigma = 0, loss = 0, grad_norm = 0, images_per_s = 0;
  std::vector<std::pair<std::string, double>> terms;
};

struct ValidationReport {
  int64_t step = 0, images = 0;
  double silhouette_iou = 0, part_iou = 0;
  std::string reference;  // "ground truth" or "pseudo-labels"
};

class Trainer {
 public:
  // `val` may be empty (no validation). `distributed` may be null (one process); it must
  // outlive the trainer.
  Trainer(TrainConfig config, Dataset train, Dataset val, Distributed* distributed = nullptr);
  ~Trainer();

  // Restores the model, optimiser and step from a checkpoint written by save_checkpoint.
  void resume(const std::filesystem::path& checkpoint);
  // Trains until `until` steps are done (default: train.steps). Writes metrics.jsonl,
  // checkpoint.pt every train.checkpoint_every steps and at train.steps (rank 0 only).
  void run(int64_t until = -1);
  ValidationReport validate();
  // Writes the checkpoint atomically (temporary file, then rename).
  void save_checkpoint(const std::filesystem::path& path) const;

  model::LepardNet& net();
  int64_t step() const;
  const TrainConfig& config() const;
  // The viewpoint search's shared layout (K, 3) (loss.viewpoint), undefined before its first step.
  at::Tensor viewpoint_layout() const;
  // The refined targets' offsets (train.targets) of every slot (training image i at slot 2 i,
  // its mirror at 2 i + 1) from the network's raw camera and part outputs at the slot's last
  // visit (2 N, ...; no flow: the targets' local deformation is the network's), and each
  // slot's count of Adam iterations (2 N) int64, 0 where the slot has had no visit; undefined
  // before their first step.
  model::RawPrediction refined_target_offsets() const;
  at::Tensor refined_target_steps() const;
  std::function<void(const StepReport&)> on_step;
  std::function<void(const ValidationReport&)> on_validate;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The configuration (as YAML) and the cluster count stored in a checkpoint.
std::pair<std::string, int64_t> checkpoint_config(const std::filesystem::path& checkpoint);

// The part-to-cluster ownership stored in a checkpoint (K, C), or undefined when the run had
// none (loss.ownership false).
at::Tensor checkpoint_ownership(const std::filesystem::path& checkpoint);

// Which weights of a checkpoint load_model reads: its model (the moving average of the
// weights where the run had train.ema, else the trained weights), or the trained weights
// themselves (only in checkpoints of runs with train.ema; an error otherwise).
enum class Weights { Model, Live };

// Reads a checkpoint's model into a new network (for inference and evaluation).
model::LepardNet load_model(const std::filesystem::path& checkpoint, TrainConfig* config = nullptr,
                            Weights weights = Weights::Model);

}  // namespace lepard::train
