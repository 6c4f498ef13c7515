#pragma once
// Test-time refinement (`lepard-infer --refine N`, `lepard-eval --refine N`): the training
// forces applied to one image's own reconstruction instead of to the network's weights.
//
// Starting from the network's prediction, the heads' raw outputs (model::RawPrediction,
// before the bounded activations, so every iterate is a valid set of parts) of every image
// of the batch are optimised with Adam for N iterations against that image's pseudo-labels,
// with the training configuration's losses: the same image, per-part, collision and
// regularising forces, turned into generalized forces with the same group weights, at the
// sharpness the training ended with (train.sigma_end). Images are independent: each loss is
// a mean over images, so an image's raw outputs get 1/B of the gradient they would get alone,
// and Adam normalises each coordinate: a batch refines like one image at a time (up to
// float rounding), only faster.
//
// The anchor (RefineOptions::anchor, `--refine-anchor`) adds a proximal term: anchor times the
// squared distance of each image's raw outputs from the network's own, summed over the
// coordinates. The forces of one image's pseudo-labels then fit its outline without moving
// the parts far from where the network, trained on every image, put them (docs/BENCHMARKS.md,
// "Test-time refinement").
#include <lepard/core/surface_grid.h>
#include <lepard/model/model.h>
#include <lepard/train/config.h>
#include <lepard/train/losses.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>

namespace lepard::train {

struct RefineOptions {
  int64_t iterations = 50;
  double lr = 0.005;    // Adam step on the raw head outputs (0.02 moved parts so that PCK fell)
  double anchor = 0.0;  // weight of the proximal term toward the network's raw outputs
  // With model.viewpoints > 1: each image's turn is the one whose reconstruction has the least
  // training loss against its pseudo-labels, instead of the selection head's (before the
  // iterations; with 0 iterations only this choice is made).
  bool choose_view = false;
};

struct RefineResult {
  model::Prediction prediction;
  // The refined raw outputs that prediction decodes (detached): camera, parts, flow and, with
  // model.part_heatmaps, the scores, each moved by the iterations.
  model::RawPrediction raw;
  double first_loss = 0, last_loss = 0;  // the batch's total loss before and after (without the anchor)
};

// images: (B, 3, S, S) normalised (model::normalize_images); labels: (B, R, R) int64
// pseudo-labels at config.loss.render_size (0 background, 1..C); ownership: the checkpoint's
// (K, C) or undefined (the network's cluster distribution is used). With 0 iterations (and no
// choose_view) the result is the network's prediction.
RefineResult refine(model::LepardNet& net, const TrainConfig& config, const at::Tensor& images,
                    const at::Tensor& labels, const at::Tensor& ownership, const RefineOptions& options = {});

// Per image (B): the squared distance between two decoded predictions of the same images,
// summed over the part centres, shape parameters and rotation matrices and the camera's
// rotation matrix and translation. Unlike the raw outputs', every coordinate is bounded: a
// raw output deep in its activation's flat tail moves freely and counts for nothing here.
at::Tensor prediction_distance(const model::Prediction& a, const model::Prediction& b);

// The loss settings a configuration asks for (the trainer's and refinement's).
LossSettings loss_settings(const TrainConfig& config);

}  // namespace lepard::train
