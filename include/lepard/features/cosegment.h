#pragma once
// Co-segmentation of an image collection into pseudo-labels (paper section 3.3; LASSIE's
// rule, docs/references.md section 2): it works the same on real DINO features and on the surrogate.
//
//  1. The collection's salient mean: the mean of every patch feature (L2-normalised) whose
//     saliency is at least `saliency_threshold`.
//  2. Per image, each patch's squared distance to that mean, divided by the image's
//     largest; below `distance_threshold` the patch is a foreground candidate.
//  3. k-means (k-means++, restarts, seeded) on the pooled candidates (`fg_clusters`) and on
//     the other patches (`bg_clusters`).
//  4. A patch is foreground when its nearest foreground centroid is nearer than its nearest
//     background centroid; its label is that centroid's index + 1, background 0.
// Optionally the number of foreground clusters is chosen by an elbow rule, and the
// foreground features are reduced by PCA.
//
// Foreground::vote replaces steps 1, 2 and the foreground test of 4 with the saliency vote
// of dino-vit-features (Amir et al.): k-means of every patch into fg_clusters + bg_clusters
// groups; a group is foreground when its patches' mean saliency exceeds vote_saliency in at
// least vote_share of the images (an image where the group has no patch gives no vote); a
// patch is foreground when its nearest group is. The foreground patches are then clustered
// into the part clusters as in 3. It does not depend on a salient mean, which a thin animal
// on a large background can place on the background (docs/features.md).

#include <lepard/features/kmeans.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lepard::features {

enum class Foreground { lassie, vote };

// "lassie" or "vote", and back: an unknown name is a std::invalid_argument naming `setting`
// (the flag or key it came from).
const char* foreground_name(Foreground rule);
Foreground parse_foreground(const std::string& name, const std::string& setting);

struct CosegOptions {
  // The default since 2026-12-03: the vote fixes the giraffe and kangaroo, which LASSIE's rule
  // swaps or misses, and trains a better horse (docs/BENCHMARKS.md, "The saliency vote").
  Foreground foreground = Foreground::vote;
  double vote_saliency = 0.065;     // dino-vit-features
  double vote_share = 0.75;         // dino-vit-features
  double saliency_threshold = 0.1;  // LASSIE
  double distance_threshold = 0.8;  // LASSIE
  int64_t fg_clusters = 8;          // LASSIE
  int64_t bg_clusters = 8;          // LASSIE
  // Elbow selection of the foreground k (dino-vit-features): k = 2, 3, ... up to max_k,
  // stopping at the first k whose inertia is more than elbow_ratio of the previous one.
  bool elbow = false;
  int64_t max_k = 12;
  double elbow_ratio = 0.975;
  // k-means fits on at most this many points per side, drawn with the seed (then every
  // patch is assigned); 0 = all. Real DINO features of 200 images at 64x64 are 800k points.
  int64_t max_fit_points = 200000;
  int64_t pca_dims = 0;  // > 0: also return foreground-PCA features
  KMeansOptions kmeans;  // iterations, restarts, seed (k is set from the counts above)
};

// What the co-segmentation of a collection learnt: enough to label the patches of any image,
// in or outside the collection, by the rule that labelled the collection (assign_labels).
// lepard-prepare stores it beside the pseudo-labels (prepare.h) so that new photos can be
// labelled with the clusters a model was trained on.
struct ClusterModel {
  Foreground foreground = Foreground::vote;
  at::Tensor parts;       // (C, D) the part clusters' centroids; label c + 1 is centroid c
  at::Tensor fg_groups;   // vote: (G1, D) the groups voted foreground; lassie: undefined
  at::Tensor background;  // vote: (G0, D) the groups voted background (G0 may be 0);
                          // lassie: (bg_clusters, D) the background clusters
  int64_t clusters() const { return parts.defined() ? parts.size(0) : 0; }
};

struct CosegResult {
  std::vector<at::Tensor> labels;  // per image (gh, gw) uint8: 0 background, 1..clusters
  std::vector<at::Tensor> pca;     // per image (gh, gw, pca_dims) float32, if asked
  int64_t clusters = 0;            // foreground clusters (C)
  ClusterModel model;              // what labels them (and other images)
  at::Tensor salient_mean;         // (D)
  double fg_fraction = 0;          // share of patches labelled foreground
};

// features: per image (gh, gw, D) (normalised here); saliency: per image (gh, gw) in
// [0, 1]. Images may have different grids. Throws std::invalid_argument naming the image
// index when shapes disagree or no patch reaches the saliency threshold.
CosegResult cosegment(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& saliency,
                      const CosegOptions& options = {});

// The vote's foreground test: (N) bool, true where a point's nearest group is one of
// fg_groups (G1, D) rather than bg_groups (G0, D; may be empty).
at::Tensor vote_assign(const at::Tensor& points, const at::Tensor& fg_groups, const at::Tensor& bg_groups);

// The labels of one image's patches under a collection's clusters: features (gh, gw, D)
// (normalised here, as cosegment does) -> (gh, gw) uint8, 0 background and 1..C. A patch is
// foreground by the model's rule (vote: its nearest group was voted foreground; lassie: its
// nearest part centroid is nearer than its nearest background centroid), and takes the
// label of its nearest part centroid. On the collection's own images it gives cosegment's
// labels. Throws std::invalid_argument when the feature dimension is not the model's.
at::Tensor assign_labels(const ClusterModel& model, const at::Tensor& features);

// Label map (gh, gw) -> (H, W), nearest by pixel centre: pixel y takes row
// floor((y + 0.5) gh / H).
at::Tensor upsample_labels(const at::Tensor& labels, int64_t height, int64_t width);

// Foreground IoU of label maps against masks: labels (gh, gw) are upsampled (nearest, by
// pixel centre) to each mask's (H, W). Returns the mean over images of the per-image IoU
// (an image where both are empty counts 1).
double foreground_iou(const std::vector<at::Tensor>& labels, const std::vector<at::Tensor>& masks);

}  // namespace lepard::features
