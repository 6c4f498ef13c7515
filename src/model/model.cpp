#include <lepard/model/model.h>

#include <lepard/io/checkpoint.h>
#include <lepard/core/camera.h>
#include <lepard/core/rotation.h>
#include <lepard/model/reconstruct.h>
#include <lepard/render/hard_rasterize.h>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/functional/upsampling.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>

namespace lepard::model {

namespace F = torch::nn::functional;

NormImpl::NormImpl(int64_t channels, Normalization kind) {
  frozen_batch_ = kind == Normalization::FrozenBatch;
  groups_ = 1;
  for (int64_t g : {8, 4, 2})
    if (channels % g == 0 && channels / g >= 4) {
      groups_ = g;
      break;
    }
  weight_ = register_parameter("weight", at::ones({channels}));
  bias_ = register_parameter("bias", at::zeros({channels}));
  if (frozen_batch_) {
    running_mean_ = register_buffer("running_mean", at::zeros({channels}));
    running_var_ = register_buffer("running_var", at::ones({channels}));
  }
}

at::Tensor NormImpl::forward(const at::Tensor& x) {
  if (!frozen_batch_) return at::group_norm(x, groups_, weight_, bias_, 1e-5);
  const auto scale = weight_ * at::rsqrt(running_var_ + 1e-5);
  const auto shift = bias_ - running_mean_ * scale;
  return x * scale.view({1, -1, 1, 1}) + shift.view({1, -1, 1, 1});
}

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t out, int64_t stride, Normalization norm) {
  conv1_ = register_module("conv1", conv(in, out, 3, stride));
  bn1_ = register_module("bn1", Norm(out, norm));
  conv2_ = register_module("conv2", conv(out, out, 3, 1));
  bn2_ = register_module("bn2", Norm(out, norm));
  if (stride != 1 || in != out) {
    downsample_ = torch::nn::Sequential(conv(in, out, 1, stride), Norm(out, norm));
    register_module("downsample", downsample_);
  }
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  auto y = at::relu(bn1_->forward(conv1_->forward(x)));
  y = bn2_->forward(conv2_->forward(y));
  return at::relu(y + (downsample_ ? downsample_->forward(x) : x));
}

EncoderImpl::EncoderImpl(const ModelOptions& o, int64_t extra_channels) {
  if (o.encoder_depth < 1 || o.encoder_width < 1 || o.encoder_blocks < 1)
    throw std::invalid_argument("encoder depth, width and blocks must be at least 1");
  const int64_t channels = 3 + (o.label_input ? o.clusters + 1 : 0) + extra_channels;
  conv1_ = register_module("conv1", conv(channels, o.encoder_width, 7, 2));
  bn1_ = register_module("bn1", Norm(o.encoder_width, o.norm));
  int64_t in = o.encoder_width;
  for (int64_t i = 0; i < o.encoder_depth; ++i) {
    const int64_t out = o.encoder_width << i;
    torch::nn::Sequential layer;
    for (int64_t j = 0; j < o.encoder_blocks; ++j) {
      layer->push_back(BasicBlock(j == 0 ? in : out, out, (i > 0 && j == 0) ? 2 : 1, o.norm));
    }
    layers_.push_back(register_module("layer" + std::to_string(i + 1), layer));
    in = out;
  }
  flatten_ = o.pool == Pooling::Flatten;
  // Spatial side of the last map: conv1 and the max-pool halve it, every later stage too.
  int64_t side = o.image_size;
  for (int64_t i = 0; i < 2 + o.encoder_depth - 1; ++i) side = (side + 1) / 2;
  out_features_ = flatten_ ? in * side * side : in;
  if (o.keypoints < 0) throw std::invalid_argument("model.keypoints must be at least 0");
  if (o.keypoints > 0) {
    if (o.keypoint_stage < 1 || o.keypoint_stage > o.encoder_depth)
      throw std::invalid_argument("model.keypoint_stage must be in 1..model.encoder_depth");
    keypoint_stage_ = o.keypoint_stage;
    const int64_t channels = o.encoder_width << (o.keypoint_stage - 1);
    keypoints_ = register_module("keypoints", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, o.keypoints, 1)));
    out_features_ += 2 * o.keypoints;
  }
}

namespace {

// The centres of n cells spanning [-1, 1]: (2 j + 1 - n) / n, as the rasterisers' pixel centres;
// with pad > 0 the same spacing goes on for pad cells beyond each edge (j from -pad to n + pad - 1).
at::Tensor cell_centres(int64_t n, const at::TensorOptions& opts, int64_t pad = 0) {
  return (at::arange(-pad, n + pad, opts) * 2 + 1 - n) / static_cast<double>(n);
}

}  // namespace

at::Tensor spatial_soft_argmax(const at::Tensor& scores) {
  if (scores.dim() != 4) throw std::invalid_argument("spatial_soft_argmax: scores must be (B, N, H, W)");
  const int64_t h = scores.size(2), w = scores.size(3);
  const auto p = at::softmax(scores.flatten(2), 2).view(scores.sizes());
  const auto opts = scores.options();
  const auto xs = cell_centres(w, opts), ys = cell_centres(h, opts);
  const auto x = (p.sum(2) * xs).sum(2);  // marginal over rows, then the expectation
  const auto y = (p.sum(3) * ys).sum(2);
  return at::stack({x, y}, 2);
}

at::Tensor EncoderImpl::forward(const at::Tensor& images, int64_t tap_stage, at::Tensor* tap) {
  if (tap_stage != 0 && (tap == nullptr || tap_stage < 1 || tap_stage > static_cast<int64_t>(layers_.size())))
    throw std::invalid_argument("Encoder::forward: tap_stage must be in 1..depth, with somewhere to put the map");
  auto x = at::relu(bn1_->forward(conv1_->forward(images)));
  x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  at::Tensor points;
  for (size_t i = 0; i < layers_.size(); ++i) {
    x = layers_[i]->forward(x);
    if (static_cast<int64_t>(i) + 1 == keypoint_stage_) points = spatial_soft_argmax(keypoints_->forward(x)).flatten(1);
    if (static_cast<int64_t>(i) + 1 == tap_stage) *tap = x;
  }
  auto features = flatten_ ? x.flatten(1) : x.mean({2, 3});
  return points.defined() ? at::cat({features, points}, 1) : features;
}

namespace {

int64_t flow_values(const ModelOptions& o) { return 3 * o.flow_grid * o.flow_grid * o.flow_grid; }

constexpr int64_t kPartOutputs = 3 + 4 + core::kShapeDim;  // q_c, q_theta, q_s
constexpr double kCenterBound = 1.5;                       // |q_c| per axis, object units
// model.part_frame camera: |u|, |v| of a part centre's image position (normalised image
// units; the crop spans [-1, 1], so a part may sit a little outside it), and its depth
// offset from the object origin's, within kCenterBound.
constexpr double kImageBound = 1.2;
// Inverse of the bounded activations below, for the template's biases.
double logit(double p) { return std::log(p / (1.0 - p)); }

}  // namespace

HeadsImpl::HeadsImpl(const ModelOptions& o, int64_t in_features) {
  hidden = register_module("hidden", torch::nn::Linear(in_features, o.hidden));
  camera = register_module("camera", torch::nn::Linear(o.hidden, 7));
  part = register_module("part", torch::nn::Linear(o.hidden, o.parts * kPartOutputs));
  if (o.local_deformation) flow = register_module("flow", torch::nn::Linear(o.hidden, o.parts * flow_values(o)));
  // A corrector starts at zero: the first pass's prediction unchanged.
  at::NoGradGuard no_grad;
  for (auto* head : {&camera, &part, &flow}) {
    if (!*head) continue;
    (*head)->weight.zero_();
    (*head)->bias.zero_();
  }
}

RawPrediction HeadsImpl::forward(const at::Tensor& features) {
  const auto h = at::relu(hidden->forward(features));
  RawPrediction r;
  r.camera = camera->forward(h);
  r.parts = part->forward(h).view({features.size(0), -1, kPartOutputs});
  if (flow) r.flow = flow->forward(h);
  return r;
}

at::Tensor feedback_planes(const Prediction& p, const core::SurfaceGrid& grid, const core::LocalFlowOptions& flow,
                           int64_t size) {
  at::NoGradGuard no_grad;
  const int64_t parts = p.parts.center.size(1);
  const auto points = reconstruct(p, grid, flow).image;
  const auto id = render::rasterize_hard(points.detach().cpu(), grid.faces, size, size).part_id;
  return at::one_hot(id + 1, parts + 1).permute({0, 3, 1, 2}).to(points.options());
}

LepardNetImpl::LepardNetImpl(const ModelOptions& o) : options_(o) {
  if (o.parts < 1 || o.clusters < 1) throw std::invalid_argument("model needs at least one part and one cluster");
  if (!(o.max_exponent > 0.3 && o.max_exponent < 2.0))
    throw std::invalid_argument("model.max_exponent must be in (0.3, 2)");
  if (!(o.max_size > 0.35 && o.max_size <= 1.5)) throw std::invalid_argument("model.max_size must be in (0.35, 1.5]");
  // The smallest aspect ratio (model.min_aspect): with 0.25 the thinnest part was twice as wide
  // as a horse's leg and no part ever moved onto the legs; 0.1 (a half-width of 0.05 object
  // units at a0 0.5, about a cell of the 64 x 64 pseudo-label grid) is the default.
  if (!(o.min_aspect >= 0.01 && o.min_aspect <= 0.2))
    throw std::invalid_argument("model.min_aspect must be in [0.01, 0.2]");
  if (o.label_moments && !o.label_input)
    throw std::invalid_argument("model.label_moments needs model.label_input (the moments are the labels')");
  if (o.part_frame == PartFrame::Camera && o.viewpoints != 1)
    throw std::invalid_argument("model.part_frame camera needs model.viewpoints 1");
  if (o.anchor && (!o.label_input || o.viewpoints != 1))
    throw std::invalid_argument("model.anchor needs model.label_input and model.viewpoints 1");
  if (!(o.anchor_reach > 0 && o.anchor_reach <= 1)) throw std::invalid_argument("model.anchor_reach must be in (0, 1]");
  if (o.part_heatmaps) {
    if (o.part_frame != PartFrame::Object || o.anchor)
      throw std::invalid_argument("model.part_heatmaps needs model.part_frame object and no model.anchor");
    if (o.heatmap_stage < 1 || o.heatmap_stage > o.encoder_depth)
      throw std::invalid_argument("model.heatmap_stage must be in 1..model.encoder_depth");
    if (!(o.heatmap_sigma > 0 && o.heatmap_sigma <= 1))
      throw std::invalid_argument("model.heatmap_sigma must be in (0, 1]");
  }
  encoder_ = register_module("encoder", Encoder(o));
  const int64_t features = encoder_->out_features() + (o.label_moments ? 6 * o.clusters : 0);
  hidden_ = register_module("hidden", torch::nn::Linear(features, o.hidden));
  camera_head_ = register_module("camera_head", torch::nn::Linear(o.hidden, 7));
  part_head_ = register_module("part_head", torch::nn::Linear(o.hidden, o.parts * kPartOutputs));
  if (o.local_deformation)
    flow_head_ = register_module("flow_head", torch::nn::Linear(o.hidden, o.parts * flow_values(o)));
  if (o.viewpoints < 1) throw std::invalid_argument("model.viewpoints must be at least 1");
  if (o.viewpoints > 1) view_head_ = register_module("view_head", torch::nn::Linear(o.hidden, o.viewpoints));
  cluster_logits_ = register_parameter("cluster_logits", at::zeros({o.parts, o.clusters}));
  if (o.anchor) {
    part_owner_ = register_buffer("part_owner", at::zeros({o.parts, o.clusters}));
    centre_shift_ = register_buffer("centre_shift", at::zeros({o.parts, 2}));
  }

  // The last layers start small, so that the outputs begin at their biases: the template.
  at::NoGradGuard no_grad;
  std::mt19937_64 rng(static_cast<uint64_t>(o.seed) * 0x9E3779B97F4A7C15ull + 17);
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  for (auto* head : {&camera_head_, &part_head_, &flow_head_, &view_head_}) {
    if (!*head) continue;
    (*head)->weight.mul_(0.05);
    (*head)->bias.zero_();
  }
  // The selection head starts choosing no turn (train/viewpoint.h teaches it the others).
  if (view_head_) view_head_->bias[0] = 2.0;
  auto cb = camera_head_->bias;
  cb[0] = 1.0;  // identity quaternion (w, x, y, z), scalar first as in core/rotation.h
  auto pb = part_head_->bias.view({o.parts, kPartOutputs});
  for (int64_t k = 0; k < o.parts; ++k) {
    // Centres spread over the region an animal covers in a LASSIE crop seen from the
    // default camera: x along the body, y (down) from the back to the belly for the odd
    // parts, compact blobs; the even parts start as thin upright cylinders below them,
    // where the legs of a standing animal are. A generic prior: nothing is category-specific,
    // and every part is free to go anywhere.
    const bool limb = k % 2 == 0;
    pb[k][0] = std::atanh(0.9 * uni(rng) / kCenterBound);
    pb[k][1] = std::atanh((limb ? 0.65 + 0.3 * uni(rng) : -0.1 + 0.35 * uni(rng)) / kCenterBound);
    pb[k][2] = std::atanh(0.3 * uni(rng) / kCenterBound);
    if (limb) {  // a quarter turn about x: the part's long z axis points down the image
      pb[k][3] = std::sqrt(0.5);
      pb[k][4] = std::sqrt(0.5);
    } else {
      pb[k][3] = 1.0;  // identity quaternion (w first)
    }
    pb[k][7 + core::kA0] = logit((0.3 - 0.05) / (o.max_size - 0.05));
    const double aspect[3] = {limb ? 0.25 : 0.6, limb ? 0.25 : 0.6, limb ? 1.0 - 1e-3 : 0.6};
    for (int64_t a = 0; a < 3; ++a) pb[k][7 + core::kA1 + a] = logit((aspect[a] - o.min_aspect) / (1.0 - o.min_aspect));
    // The template's exponents: 1 (an ellipsoid), or just under the bound when it is below 1.
    const double e0 = std::min(1.0, 0.2 + 0.9 * (o.max_exponent - 0.2));
    for (int64_t e : {core::kE1, core::kE2}) pb[k][7 + e] = logit((e0 - 0.2) / (o.max_exponent - 0.2));
    pb[k][7 + core::kB3] = logit((0.5 - 0.2) / 0.8);
    if (o.part_frame == PartFrame::Camera || o.anchor) {
      // The same template seen from the camera's start (identity rotation, the object origin
      // at camera_distance): each centre's image position, its depth offset unchanged. With
      // model.anchor the position goes into the fixed shift and the bias starts at zero (an
      // anchored part at its anchor).
      const double x = kCenterBound * std::tanh(pb[k][0].item<double>());
      const double y = kCenterBound * std::tanh(pb[k][1].item<double>());
      const double z = o.camera_distance + kCenterBound * std::tanh(pb[k][2].item<double>());
      auto at_xy = o.anchor ? centre_shift_[k] : pb[k];
      at_xy[0] = std::atanh(o.focal * x / z / kImageBound);
      at_xy[1] = std::atanh(o.focal * y / z / kImageBound);
      if (o.anchor) {
        pb[k][0] = 0.0;
        pb[k][1] = 0.0;
      }
    }
  }
  // Each part starts leaning towards one cluster (part k to cluster k mod C, probability
  // about 0.7 for C = 8), so that the part-label forces pull parts to different regions
  // from the first step (legs included) instead of every part wanting the whole animal.
  cluster_logits_.normal_(0.0, 0.1);
  for (int64_t k = 0; k < o.parts; ++k) cluster_logits_[k][k % o.clusters] += o.cluster_prior;
  // model.feedback's corrector, made last so that the first pass starts as without it.
  if (o.feedback < 0) throw std::invalid_argument("model.feedback must be at least 0");
  if (o.feedback > 0) {
    if (o.viewpoints > 1) throw std::invalid_argument("model.feedback needs model.viewpoints 1");
    feedback_encoder_ = register_module("feedback_encoder", Encoder(o, o.parts + 1));
    feedback_heads_ = register_module("feedback_heads", Heads(o, feedback_encoder_->out_features()));
    grid_ = surface_grid(o);
  }
  // model.part_heatmaps' scores, made last (its default initialisation draws from the generator
  // after everything above) and zeroed: the model starts where it would without them.
  if (o.part_heatmaps) {
    const int64_t channels = o.encoder_width << (o.heatmap_stage - 1);
    heatmaps_ = register_module("heatmaps", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, o.parts, 1)));
    heatmaps_->weight.zero_();
    heatmaps_->bias.zero_();
  }
}

at::Tensor label_planes(const at::Tensor& labels, int64_t clusters, int64_t size) {
  if (labels.dim() != 3) throw std::invalid_argument("label_planes: labels must be (B, R, R)");
  const auto l = labels.to(at::kLong);
  if (l.numel() > 0) {
    // One copy to the host for both ends (one synchronisation on a GPU, not two).
    const auto range = at::stack({l.min(), l.max()}).to(at::kCPU);
    const int64_t lo = range[0].item<int64_t>(), hi = range[1].item<int64_t>();
    if (lo < 0 || hi > clusters)
      throw std::invalid_argument("pseudo-label " + std::to_string(lo < 0 ? lo : hi) + " outside 0.." +
                                  std::to_string(clusters) + " (the model was trained on " + std::to_string(clusters) +
                                  " clusters)");
  }
  auto planes = at::one_hot(l, clusters + 1).permute({0, 3, 1, 2}).to(at::kFloat);
  if (planes.size(2) == size && planes.size(3) == size) return planes;
  namespace F = torch::nn::functional;
  return F::interpolate(planes,
                        F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size}).mode(torch::kNearest));
}

namespace {

// Each foreground cluster's cells in (B, R, R) pseudo-labels: planes (B, C, R, R), their
// counts n (B, C) and centroids (B, C) at the cells' centres (0 for an empty cluster), and the
// centres' x and y along the map. What label_moments and part_anchors read.
struct ClusterCells {
  at::Tensor planes, n, mx, my, xs, ys;
};

ClusterCells cluster_cells(const at::Tensor& labels, int64_t clusters, const char* caller) {
  if (labels.dim() != 3 || labels.size(1) != labels.size(2))
    throw std::invalid_argument(std::string(caller) + ": labels must be (B, R, R)");
  const int64_t r = labels.size(1);
  ClusterCells c;
  c.planes = label_planes(labels, clusters, r).narrow(1, 1, clusters);  // checks the range
  const auto centres = cell_centres(r, c.planes.options());
  c.xs = centres.view({1, 1, 1, r});
  c.ys = centres.view({1, 1, r, 1});
  c.n = c.planes.sum({2, 3});
  const auto safe = c.n.clamp_min(1.0);
  c.mx = (c.planes * c.xs).sum({2, 3}) / safe;
  c.my = (c.planes * c.ys).sum({2, 3}) / safe;
  return c;
}

}  // namespace

at::Tensor label_moments(const at::Tensor& labels, int64_t clusters) {
  at::NoGradGuard no_grad;
  const auto c = cluster_cells(labels, clusters, "label_moments");
  const int64_t b = labels.size(0), r = labels.size(1);
  const auto safe = c.n.clamp_min(1.0);
  const auto mean = [&](const at::Tensor& v) { return (c.planes * v).sum({2, 3}) / safe; };
  const auto dx = c.xs - c.mx.view({b, clusters, 1, 1}), dy = c.ys - c.my.view({b, clusters, 1, 1});
  const auto sx = mean(dx * dx).sqrt(), sy = mean(dy * dy).sqrt();
  const auto spread = sx * sy;
  const auto rho = at::where(spread > 1e-12, mean(dx * dy) / spread.clamp_min(1e-12), at::zeros_like(spread));
  const auto share = (c.n / static_cast<double>(r * r)).sqrt();
  return at::stack({share, c.mx, c.my, sx, sy, rho}, 2).flatten(1);
}

at::Tensor part_anchors(const at::Tensor& labels, const at::Tensor& ownership) {
  if (ownership.dim() != 2) throw std::invalid_argument("part_anchors: ownership must be (K, C)");
  at::NoGradGuard no_grad;
  const auto c = cluster_cells(labels, ownership.size(1), "part_anchors");
  const auto own = ownership.to(c.planes.options());
  // Per part, the owned clusters' cells pooled: counts (B, K) and coordinate sums (B, K, 2).
  const auto part_n = c.n.matmul(own.t());
  const auto part_sums = own.unsqueeze(0).matmul(at::stack({c.n * c.mx, c.n * c.my}, 2));
  const auto present = part_n >= static_cast<double>(kAnchorCells);
  const auto xy = part_sums / part_n.clamp_min(1.0).unsqueeze(2);
  return at::cat({xy * present.unsqueeze(2), present.to(xy.dtype()).unsqueeze(2)}, 2);
}

int64_t heatmap_padding(int64_t cells, double sigma) {
  return static_cast<int64_t>(std::ceil(3.0 * sigma * static_cast<double>(cells) / 2.0));
}

at::Tensor part_heatmap_positions(const at::Tensor& scores, const at::Tensor& prior, double sigma) {
  if (scores.dim() != 4 || prior.dim() != 3 || prior.size(2) != 2 || scores.size(0) != prior.size(0) ||
      scores.size(1) != prior.size(1))
    throw std::invalid_argument("part_heatmap_positions: scores must be (B, K, H, W) and prior (B, K, 2)");
  if (!(sigma > 0)) throw std::invalid_argument("part_heatmap_positions: sigma must be positive");
  // Cells of score 0 beyond the map's edges, out to 3 sigma: without them the Gaussian alone
  // would pull a part near an edge inwards.
  const int64_t h = scores.size(2), w = scores.size(3);
  const int64_t pad_x = heatmap_padding(w, sigma), pad_y = heatmap_padding(h, sigma);
  const auto padded = at::constant_pad_nd(scores, {pad_x, pad_x, pad_y, pad_y}, 0.0);
  const auto xs = cell_centres(w, scores.options(), pad_x).view({1, 1, 1, -1});
  const auto ys = cell_centres(h, scores.options(), pad_y).view({1, 1, -1, 1});
  const auto dx = xs - prior.select(2, 0).unsqueeze(2).unsqueeze(3);
  const auto dy = ys - prior.select(2, 1).unsqueeze(2).unsqueeze(3);
  const auto logits = padded - (dx * dx + dy * dy) * (0.5 / (sigma * sigma));
  const auto p = at::softmax(logits.flatten(2), 2).view(logits.sizes());
  return at::stack({(p * xs).sum({2, 3}), (p * ys).sum({2, 3})}, 2);
}

void LepardNetImpl::set_part_owner(const at::Tensor& ownership) {
  if (!options_.anchor) throw std::invalid_argument("set_part_owner: the model has no model.anchor");
  if (ownership.sizes() != part_owner_.sizes())
    throw std::invalid_argument("set_part_owner: the ownership must be (model.parts, clusters) = (" +
                                std::to_string(part_owner_.size(0)) + ", " + std::to_string(part_owner_.size(1)) + ")");
  at::NoGradGuard no_grad;
  part_owner_.copy_(ownership.gt(0).to(part_owner_.options()));
}

Prediction LepardNetImpl::forward(const at::Tensor& images, const at::Tensor& labels) {
  return decode(forward_raw(images, labels));
}

RawPrediction LepardNetImpl::forward_raw(const at::Tensor& images, const at::Tensor& labels) {
  const auto& o = options_;
  const int64_t b = images.size(0);
  at::Tensor input = images;
  if (o.label_input) {
    if (!labels.defined())
      throw std::invalid_argument(
          "this model sees the pseudo-labels (model.label_input): every image needs its labels (lepard-prepare's "
          "cache, --pseudo-labels)");
    if (labels.size(0) != b) throw std::invalid_argument("forward: labels and images differ in batch size");
    input = at::cat({images, label_planes(labels, o.clusters, images.size(2)).to(images.options())}, 1);
  }
  at::Tensor tap;
  auto features = encoder_->forward(input, o.part_heatmaps ? o.heatmap_stage : 0, &tap);
  at::Tensor anchor;
  if (o.anchor) anchor = part_anchors(labels, part_owner_).to(images.options());
  if (o.label_moments) features = at::cat({features, label_moments(labels, o.clusters).to(features.options())}, 1);
  const auto h = at::relu(hidden_->forward(features));
  RawPrediction r;
  r.camera = camera_head_->forward(h);
  r.parts = part_head_->forward(h).view({b, o.parts, kPartOutputs});
  if (flow_head_) r.flow = flow_head_->forward(h);
  if (view_head_) r.view_logits = view_head_->forward(h);
  r.anchor = anchor;
  if (heatmaps_) r.heat = heatmaps_->forward(tap);
  // model.feedback: each pass renders the prediction so far and adds the corrector's output.
  for (int64_t pass = 0; pass < o.feedback; ++pass) {
    const auto planes = feedback_planes(decode(r), grid_, flow_options(o), images.size(2));
    const auto d = feedback_heads_->forward(feedback_encoder_->forward(at::cat({input, planes}, 1)));
    r.camera = r.camera + d.camera;
    r.parts = r.parts + d.parts;
    if (r.flow.defined()) r.flow = r.flow + d.flow;
  }
  return r;
}

Prediction LepardNetImpl::decode(const RawPrediction& r) const {
  const auto& o = options_;
  const int64_t b = r.camera.size(0);
  if (r.camera.dim() != 2 || r.camera.size(1) != 7 || r.parts.sizes() != at::IntArrayRef({b, o.parts, kPartOutputs}))
    throw std::invalid_argument("LepardNet::decode: raw outputs of the wrong shape");
  Prediction p;
  const auto& cam = r.camera;
  p.camera.rotation = cam.narrow(1, 0, 4);
  if (o.viewpoints > 1) {
    // The chosen turn about the object's vertical axis: R_cam R_y(2 pi j / J).
    if (!r.view.defined() && !r.view_logits.defined())
      throw std::invalid_argument("LepardNet::decode: model.viewpoints > 1 needs the view scores or a chosen view");
    const auto view = r.view.defined() ? r.view : r.view_logits.argmax(1);
    if (view.dim() != 1 || view.size(0) != b) throw std::invalid_argument("LepardNet::decode: view must be (B)");
    const auto yaw = view.to(cam.options()) * (2.0 * M_PI / static_cast<double>(o.viewpoints));
    p.camera.rotation = core::quaternion_multiply(p.camera.rotation, core::yaw_quaternion(yaw));
  }
  const auto t = at::tanh(cam.narrow(1, 4, 3));
  p.camera.translation =
      at::stack({0.3 * t.select(1, 0), 0.3 * t.select(1, 1), o.camera_distance * at::exp(0.3 * t.select(1, 2))}, 1);
  p.camera.focal = o.focal;

  const auto& raw = r.parts;
  if (o.part_frame == PartFrame::Camera || o.anchor) {
    // The centre at image position (u, v) and depth z in the camera frame, x_cam = (u z / f,
    // v z / f, z), taken to the object frame, x = R_cam^T (x_cam - c_cam). model.anchor: (u, v)
    // is the part's anchor plus anchor_reach tanh, or where it has none the free position.
    const auto t3 = at::tanh(raw.narrow(2, 0, 3));
    const auto z = p.camera.translation.select(1, 2).unsqueeze(1) + kCenterBound * t3.select(2, 2);  // (B, K)
    at::Tensor uv;
    if (o.anchor) {
      if (!r.anchor.defined() || r.anchor.sizes() != at::IntArrayRef({b, o.parts, 3}))
        throw std::invalid_argument("LepardNet::decode: model.anchor needs the anchors (B, K, 3) of forward_raw");
      const auto held = r.anchor.narrow(2, 0, 2) + o.anchor_reach * t3.narrow(2, 0, 2);
      const auto free = kImageBound * at::tanh(raw.narrow(2, 0, 2) + centre_shift_);
      uv = at::where(r.anchor.narrow(2, 2, 1) > 0.5, held, free);
    } else {
      uv = kImageBound * t3.narrow(2, 0, 2);
    }
    const auto xy = uv * (1.0 / o.focal) * z.unsqueeze(2);
    const auto x_cam = at::cat({xy, z.unsqueeze(2)}, 2);
    const auto rot = core::quaternion_to_matrix(p.camera.rotation);  // (B, 3, 3)
    p.parts.center = (x_cam - p.camera.translation.unsqueeze(1)).matmul(rot);
  } else {
    p.parts.center = kCenterBound * at::tanh(raw.narrow(2, 0, 3));
  }
  if (o.part_heatmaps) {
    // The centre seen from the camera, moved in the image to the soft-argmax of its scores
    // about where it projects, at the same depth, and taken back to the object frame.
    if (!r.heat.defined() || r.heat.dim() != 4 || r.heat.size(0) != b || r.heat.size(1) != o.parts)
      throw std::invalid_argument(
          "LepardNet::decode: model.part_heatmaps needs the scores (B, K, H, W) of forward_raw");
    const auto x_cam = core::camera_transform(p.camera, p.parts.center);  // (B, K, 3)
    const auto z = x_cam.narrow(2, 2, 1);
    const auto uv = part_heatmap_positions(r.heat, core::perspective_project(x_cam, o.focal), o.heatmap_sigma);
    const auto moved = at::cat({uv * z * (1.0 / o.focal), z}, 2);
    const auto rot = core::quaternion_to_matrix(p.camera.rotation);  // (B, 3, 3)
    p.parts.center = (moved - p.camera.translation.unsqueeze(1)).matmul(rot);
  }
  if (o.part_frame == PartFrame::Camera) {
    // The orientation R_cam^T R(q_raw) (the conjugate of a quaternion is its inverse up to
    // scale, and every consumer normalises).
    const auto conj = core::quaternion_conjugate(p.camera.rotation);
    p.parts.rotation = core::quaternion_multiply(conj.unsqueeze(1), raw.narrow(2, 3, 4));
  } else {
    p.parts.rotation = raw.narrow(2, 3, 4);
  }
  const auto s = raw.narrow(2, 7, core::kShapeDim);
  const auto sig = at::sigmoid(s), th = at::tanh(s);
  const double deformable = o.rigid ? 0.0 : 1.0;  // rigid superquadrics: no taper, no bend
  p.parts.shape = at::cat({0.05 + (o.max_size - 0.05) * sig.narrow(2, core::kA0, 1),
                           o.min_aspect + (1.0 - o.min_aspect) * sig.narrow(2, core::kA1, 3),
                           0.2 + (o.max_exponent - 0.2) * sig.narrow(2, core::kE1, 2),
                           0.5 * deformable * th.narrow(2, core::kT1, 2), 0.1 * deformable * th.narrow(2, core::kB1, 1),
                           th.narrow(2, core::kB2, 1), 0.2 + 0.8 * sig.narrow(2, core::kB3, 1)},
                          2);
  if (r.flow.defined()) {
    const int64_t g = o.flow_grid;
    p.velocity = o.max_velocity * at::tanh(r.flow).view({b, o.parts, 3, g, g, g});
  }
  return p;
}

at::Tensor LepardNetImpl::part_distribution() const { return at::softmax(cluster_logits_, 1); }

at::Tensor normalize_images(const at::Tensor& crops, int64_t size) {
  if (crops.dim() != 4 || crops.size(3) != 3)
    throw std::invalid_argument("normalize_images: expected (B, H, W, 3) uint8 crops");
  auto x = crops.permute({0, 3, 1, 2}).to(at::kFloat).div(255.0);
  if (x.size(2) != size || x.size(3) != size) {
    // Area averaging when shrinking by an integer factor, bilinear otherwise.
    if (x.size(2) % size == 0 && x.size(3) % size == 0)
      x = at::avg_pool2d(x, {x.size(2) / size, x.size(3) / size});
    else
      x = at::upsample_bilinear2d(x, {size, size}, false);
  }
  const auto mean = at::tensor({0.485, 0.456, 0.406}, x.options()).view({1, 3, 1, 1});
  const auto stdv = at::tensor({0.229, 0.224, 0.225}, x.options()).view({1, 3, 1, 1});
  return ((x - mean) / stdv).contiguous();
}

int64_t load_encoder_weights(LepardNet& net, const std::filesystem::path& path) {
  if (net->options().norm != Normalization::FrozenBatch)
    throw std::invalid_argument(path.string() + ": torchvision ResNet weights need model.norm frozen_batch");
  const auto dict = io::load_state_dict(path);
  auto find = [&](const std::string& key) -> const at::Tensor* {
    for (const auto& [k, v] : dict)
      if (k == key) return &v;
    return nullptr;
  };
  at::NoGradGuard no_grad;
  int64_t loaded = 0;
  auto copy_into = [&](const std::string& key, at::Tensor& dst) {
    const auto* src = find(key);
    if (!src)
      throw std::runtime_error(path.string() + ": missing key '" + key + "' (a torchvision ResNet state dict?)");
    // model.label_input: the RGB filters come from the ResNet, the label channels' start at 0.
    if (key == "conv1.weight" && net->options().label_input && src->dim() == 4 && dst.dim() == 4 && src->size(1) == 3 &&
        dst.size(1) > 3 && src->size(0) == dst.size(0)) {
      dst.zero_();
      dst.narrow(1, 0, 3).copy_(*src);
      ++loaded;
      return;
    }
    if (src->sizes() != dst.sizes()) {
      std::ostringstream msg;
      msg << path.string() << ": key '" << key << "' has shape " << src->sizes() << ", expected " << dst.sizes()
          << " (model.encoder_width / encoder_blocks / encoder_depth must match the ResNet)";
      throw std::runtime_error(msg.str());
    }
    dst.copy_(*src);
    ++loaded;
  };
  // model.keypoints' convolution is lepard's own, not the ResNet's: it keeps its start.
  for (auto& item : net->encoder()->named_parameters(true))
    if (item.key().rfind("keypoints.", 0) != 0) copy_into(item.key(), item.value());
  for (auto& item : net->encoder()->named_buffers(true)) copy_into(item.key(), item.value());
  return loaded;
}

}  // namespace lepard::model
