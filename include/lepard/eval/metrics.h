#pragma once
// Silhouette and part IoU of predicted part maps against a reference (ground truth, or the
// pseudo-labels where a dataset has none).
//
// Part IoU needs a rule that matches the K discovered parts to the reference's part labels
// (the network never sees those labels). The rule, used by validation and lepard-eval:
//   1. Over every pixel of every image of the set, count c[k][g], the pixels where the
//      prediction shows part k and the reference shows label g >= 1.
//   2. Assign each part k to the label g with the largest c[k][g] (many parts may share a
//      label, as four legs share "leg"); a part that covers no labelled pixel is unassigned.
//   3. For each label g present in the reference, IoU_g = |pred in parts of g AND ref = g| /
//      |pred in parts of g OR ref = g|, pooled over the set; part IoU is the mean over g.
// Silhouette IoU is the mean over images of |pred AND ref| / |pred OR ref| (an image where
// both are empty counts as 1).
//
// Per image (lepard-eval's per_image.csv, for finding the failures behind a mean): the
// silhouette's IoU, precision |pred AND ref| / |pred| (1 where nothing is predicted) and
// recall |pred AND ref| / |ref| (1 where the reference is empty); the image's part IoU is
// step 3 within that image, with the set's assignment of step 2, averaged over the labels
// present in that image's reference (NaN where it has none).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace lepard::eval {

// pred, ref: (N, H, W) bool or integer (non-zero = object). Returns the mean over images.
double silhouette_iou(const at::Tensor& pred, const at::Tensor& ref);

// The same per image: (N) float64 tensors.
struct SilhouetteScores {
  at::Tensor iou, precision, recall;
};
SilhouetteScores silhouette_scores(const at::Tensor& pred, const at::Tensor& ref);

struct PartIou {
  double mean = 0;                            // mean over the labels present in the reference
  std::vector<int64_t> assignment;            // label assigned to each part, -1 for none
  std::vector<double> per_label;              // IoU per label 1..L (NaN where the label is absent)
  std::vector<std::vector<int64_t>> overlap;  // overlap[k][g]: pixels of part k on label g (g = 0: background)
  std::vector<double> per_image;              // each image's part IoU (NaN: no label in its reference)
  std::vector<double> missed;  // share of each label's pixels 1..L that no part covers (NaN: absent), pooled
};

// pred: (N, H, W) int64 part index in [0, parts), -1 for background.
// ref:  (N, H, W) integer labels in [0, labels], 0 for background.
PartIou part_iou(const at::Tensor& pred, const at::Tensor& ref, int64_t parts, int64_t labels);

}  // namespace lepard::eval
