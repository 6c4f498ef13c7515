#pragma once
// The LEPARD network (paper section 3.2, Fig. 2): a ResNet-style image encoder and
// decoder heads that map an image to a camera and K deformable parts.
//
//   image (B, 3, S, S) --encoder--> feature (B, F) --MLP--> camera, q_c, q_theta, q_s, q_d
//
// Every output goes through a bounded activation, so that any network output is a valid
// part (docs/training.md, "The network", lists the ranges):
//   camera rotation  quaternion: raw output plus the identity (normalised downstream)
//   camera position  c_cam = (0.3 tanh, 0.3 tanh, distance * exp(0.3 tanh))
//   q_c              1.5 * tanh (object units; the object is about 2 units across)
//   q_theta          raw output plus the identity quaternion
//   (model.part_frame camera: q_c from an image position 1.2 tanh per axis and a depth
//   offset 1.5 tanh, q_theta from an orientation relative to the camera, both taken to the
//   object frame through the predicted camera; LepardNetImpl::decode; model.anchor: the
//   image position is the part's owned clusters' centroid in the pseudo-labels plus
//   anchor_reach tanh, part_anchors; model.part_heatmaps: the projected centre moved in
//   the image to the soft-argmax of learned per-part scores about it, its depth kept,
//   part_heatmap_positions)
//   q_s              a0 in [0.05, max_size (0.5)], a1..a3 in [min_aspect (0.1), 1],
//                    e1, e2 in [0.2, max_exponent (1.7)], t1, t2 in 0.5 tanh, b1 in 0.1 tanh,
//                    b2 in tanh, b3 in [0.2, 1]
//   q_d              max_velocity * tanh, a (3, G, G, G) B-spline velocity grid per part
// The last layer of each head starts with small weights and biases that place the K parts
// in a spread-out template (drawn from the seed), so that training starts from a sensible
// arrangement instead of K identical parts at the origin.
//
// Each part also owns a learnable distribution over the C pseudo-label clusters
// (part_distribution()), shared by every image (docs/design.md, "Training signal").
//
// Encoder layout: torchvision's ResNet naming (conv1, bn1, layer<i>.<j>.conv1/bn1/conv2/bn2/
// downsample.0/1, BasicBlocks), so that with width 64, 4 stages and 2 blocks per stage it
// is ResNet-18 and loads torchvision's weights (load_encoder_weights). Normalisation is
// GroupNorm by default (per image: data-parallel training then equals one process with the
// whole batch) or frozen BatchNorm (torchvision's running statistics, fixed; its affine
// parameters train), which is what pretrained torchvision weights need.
#include <lepard/core/local_flow.h>
#include <lepard/model/options.h>
#include <lepard/core/project_parts.h>
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace lepard::model {

// What the network predicts for a batch.
struct Prediction {
  core::Camera camera;     // (B, 4), (B, 3); with model.viewpoints > 1 the chosen turn included
  core::PartParams parts;  // (B, K, 3), (B, K, 4), (B, K, 11)
  at::Tensor velocity;     // (B, K, 3, G, G, G) B-spline control values of q_d; undefined without local deformation
};

// Which end of each part is which across images (model/canonical.h): layout (K, 2) and axes
// (K, 2), float64 on the CPU. Undefined in a network that has none (before training ends, or
// a checkpoint written before 2026-12-07).
struct PartTemplate {
  at::Tensor layout;
  at::Tensor axes;
  bool defined() const { return layout.defined() && axes.defined(); }
};

// The heads' outputs before their bounded activations: any values decode to valid parts,
// which is what test-time refinement optimises (train/refine.h).
struct RawPrediction {
  at::Tensor camera;  // (B, 7)
  at::Tensor parts;   // (B, K, 18): q_c, q_theta, q_s before activation
  at::Tensor flow;    // (B, K * 3 G^3) or undefined (no local deformation)
  // (B, J) the selection head's scores of the camera's J = model.viewpoints turns, or
  // undefined (model.viewpoints 1).
  at::Tensor view_logits;
  // (B) int64: the turn to decode with; undefined: the best-scored one. Training sets it
  // (the viewpoint search's choice, train/viewpoint.h).
  at::Tensor view;
  // model.anchor: (B, K, 3) each part's anchor in the image (x, y) and 1 where its owned
  // clusters have cells in the image's pseudo-labels (0: none, the free position is used);
  // part_anchors() of the labels forward_raw saw. Not an output: refinement keeps it fixed.
  at::Tensor anchor;
  // model.part_heatmaps: (B, K, H, W) each part's scores over the cells of the encoder stage's
  // map (LepardNetImpl::decode). An output: refinement moves it with the others.
  at::Tensor heat;
};

// A normalisation layer over channels: GroupNorm or frozen BatchNorm (see above).
class NormImpl : public torch::nn::Module {
 public:
  NormImpl(int64_t channels, Normalization kind);
  at::Tensor forward(const at::Tensor& x);

 private:
  bool frozen_batch_ = false;
  int64_t groups_ = 1;
  at::Tensor weight_, bias_, running_mean_, running_var_;
};
TORCH_MODULE(Norm);

class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride, Normalization norm);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  Norm bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(BasicBlock);

class EncoderImpl : public torch::nn::Module {
 public:
  // extra_channels: input planes beyond the image's and the labels' (the feedback encoder's
  // K + 1 part planes).
  explicit EncoderImpl(const ModelOptions& options, int64_t extra_channels = 0);
  // (B, 3 (+ C + 1 with model.label_input) (+ extra_channels), S, S) -> (B, out_features()):
  // the last map's features, then with model.keypoints N the 2N keypoint coordinates. With
  // tap_stage s in 1..depth, *tap is set to stage s's output map (model.part_heatmaps).
  at::Tensor forward(const at::Tensor& images, int64_t tap_stage = 0, at::Tensor* tap = nullptr);
  int64_t out_features() const { return out_features_; }

 private:
  bool flatten_ = true;
  int64_t keypoint_stage_ = 0;  // 1-based stage whose map feeds the keypoints; 0: none
  torch::nn::Conv2d keypoints_{nullptr};
  torch::nn::Conv2d conv1_{nullptr};
  Norm bn1_{nullptr};
  std::vector<torch::nn::Sequential> layers_;
  int64_t out_features_ = 0;
};
TORCH_MODULE(Encoder);

// The heads that map a feature vector to the raw outputs: an MLP layer, then the camera, the
// parts and (with local deformation) the flow. model.feedback's corrector has its own.
class HeadsImpl : public torch::nn::Module {
 public:
  HeadsImpl(const ModelOptions& options, int64_t in_features);
  // (B, in_features) -> camera (B, 7), parts (B, K, 18), flow (B, K * 3 G^3) or undefined.
  RawPrediction forward(const at::Tensor& features);
  torch::nn::Linear hidden{nullptr}, camera{nullptr}, part{nullptr}, flow{nullptr};
};
TORCH_MODULE(Heads);

// Spatial soft-argmax: scores (B, N, H, W) -> (B, N, 2), each map's expected position (x, y)
// under the softmax of its scores over the H W positions, in normalised image coordinates
// (a cell's centre at (2 j + 1 - W) / W, as the rasterisers' pixel centres; x right, y down).
at::Tensor spatial_soft_argmax(const at::Tensor& scores);

// The K + 1 feedback planes of a prediction (model.feedback): its parts on `grid`,
// hard-rasterised at size x size, one-hot over the background (plane 0) and the K parts
// (plane k + 1 where part k is in front). (B, K + 1, size, size) float, no gradient, on the
// device of the prediction (the rasteriser runs on the CPU).
at::Tensor feedback_planes(const Prediction& prediction, const core::SurfaceGrid& grid,
                           const core::LocalFlowOptions& flow, int64_t size);

// The C + 1 label channels of a model.label_input network: (B, R, R) integer pseudo-labels
// (0 background, 1..C) -> float (B, C + 1, size, size) one-hot planes, nearest-resized, on
// the labels' device. A label outside 0..C is an std::invalid_argument naming the value.
at::Tensor label_planes(const at::Tensor& labels, int64_t clusters, int64_t size);

// The moments of each foreground cluster of (B, R, R) integer pseudo-labels (0 background,
// 1..C): float (B, 6 C), per cluster c = 1..C in order sqrt(n_c / R^2), the centroid (x, y),
// the standard deviations of x and y and the correlation of x and y over its n_c cells,
// positions at the cells' centres in normalised image coordinates ((2 j + 1 - R) / R, x right,
// y down, as spatial_soft_argmax). A cluster with no cell, or whose spread is zero in x or y
// has zeros where the value is undefined. On the labels' device, no gradient. A label outside
// 0..C is an std::invalid_argument naming the value (label_planes' check).
at::Tensor label_moments(const at::Tensor& labels, int64_t clusters);

// model.anchor's anchors: (B, R, R) integer pseudo-labels (0 background, 1..C) and a (K, C)
// 0/1 ownership -> float (B, K, 3): per part the centroid (x, y, normalised image coordinates
// at the cells' centres, as label_moments) of the cells of the clusters it owns, and 1 where
// those are at least kAnchorCells cells, else (0, 0, 0). No gradient; on the labels' device.
constexpr int64_t kAnchorCells = 2;
at::Tensor part_anchors(const at::Tensor& labels, const at::Tensor& ownership);

// model.part_heatmaps' image positions: scores (B, K, H, W) over the cells of a map that spans
// the image, and prior (B, K, 2) each part's image position without them -> (B, K, 2) the
// expected cell centre (x, y, normalised image coordinates as spatial_soft_argmax) under the
// softmax of scores - |cell - prior|^2 / (2 sigma^2). The cells run on past the map's edges,
// heatmap_padding(n, sigma) more on each side of n, with score 0, so that the Gaussian alone
// has its mean at the prior wherever it is in the image. Differentiable in both.
int64_t heatmap_padding(int64_t cells, double sigma);
at::Tensor part_heatmap_positions(const at::Tensor& scores, const at::Tensor& prior, double sigma);

class LepardNetImpl : public torch::nn::Module {
 public:
  explicit LepardNetImpl(const ModelOptions& options);
  // images: (B, 3, S, S), ImageNet-normalised (normalize_images). labels: (B, R, R) integer
  // pseudo-labels of the same (flipped, if flipped) images; needed with model.label_input
  // (std::invalid_argument without them), ignored otherwise.
  Prediction forward(const at::Tensor& images, const at::Tensor& labels = {});
  // forward() in two halves: forward(x, l) == decode(forward_raw(x, l)).
  RawPrediction forward_raw(const at::Tensor& images, const at::Tensor& labels = {});
  Prediction decode(const RawPrediction& raw) const;
  // Each part's distribution over the C clusters: (K, C), rows sum to 1.
  at::Tensor part_distribution() const;
  const ModelOptions& options() const { return options_; }
  Encoder& encoder() { return encoder_; }
  // The part template (model/canonical.h): not a weight, stored beside the weights in
  // checkpoints (train::load_model reads it); project_images names the parts' surfaces with it.
  const PartTemplate& part_template() const { return part_template_; }
  void set_part_template(PartTemplate t) { part_template_ = std::move(t); }
  // model.anchor: the (K, C) 0/1 part-to-cluster ownership the anchors follow (a buffer, so
  // checkpoints keep it). All zeros until set: every part then takes its free position, which
  // starts at the template (what the trainer's initial ownership is computed from).
  void set_part_owner(const at::Tensor& ownership);
  const at::Tensor& part_owner() const { return part_owner_; }

 private:
  ModelOptions options_;
  Encoder encoder_{nullptr};
  torch::nn::Linear hidden_{nullptr}, camera_head_{nullptr}, part_head_{nullptr}, flow_head_{nullptr},
      view_head_{nullptr};
  torch::nn::Conv2d heatmaps_{nullptr};  // model.part_heatmaps: stage map -> K score maps
  // model.feedback: the corrector's encoder and heads, and the grid its renderings use.
  Encoder feedback_encoder_{nullptr};
  Heads feedback_heads_{nullptr};
  core::SurfaceGrid grid_;
  at::Tensor cluster_logits_;
  // model.anchor: the ownership (K, C), and (K, 2) the template's image positions as raw
  // offsets inside the free position's tanh (the centre heads' biases start at zero, so that
  // an anchored part starts at its anchor).
  at::Tensor part_owner_, centre_shift_;
  PartTemplate part_template_;
};
TORCH_MODULE(LepardNet);

// uint8 (B, S0, S0, 3) RGB crops -> float (B, 3, size, size), resized (bilinear, area-like
// for downsampling) and ImageNet-normalised, on `device`.
at::Tensor normalize_images(const at::Tensor& crops, int64_t size);

// Loads torchvision ResNet weights (a torch.save state dict, e.g. resnet18-f37072fd.pth)
// into the encoder: conv1, bn1, layer<i>.<j>.*; the classifier (fc.*) is ignored. The
// encoder must use norm "frozen_batch". With model.label_input the RGB filters of conv1 are
// loaded and its label channels' filters set to zero. A missing key or a shape mismatch is an error
// naming the key and the file. Returns the number of tensors loaded.
int64_t load_encoder_weights(LepardNet& net, const std::filesystem::path& path);

}  // namespace lepard::model
