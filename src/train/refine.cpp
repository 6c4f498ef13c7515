#include <lepard/train/refine.h>

#include <lepard/core/rotation.h>
#include <lepard/model/reconstruct.h>
#include <lepard/train/trainer.h>

#include <torch/optim/adam.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace lepard::train {

LossSettings loss_settings(const TrainConfig& c) {
  LossSettings l = c.loss;  // the loss.* keys are its fields
  l.sigma = c.train.sigma_end;
  l.flow = model::flow_options(model_options(c, 1));
  return l;
}

at::Tensor prediction_distance(const model::Prediction& a, const model::Prediction& b) {
  auto sq = [](const at::Tensor& x, const at::Tensor& y) { return (x - y).pow(2).flatten(1).sum(1); };
  return sq(a.parts.center, b.parts.center) + sq(a.parts.shape, b.parts.shape) +
         sq(core::quaternion_to_matrix(a.parts.rotation), core::quaternion_to_matrix(b.parts.rotation)) +
         sq(core::quaternion_to_matrix(a.camera.rotation), core::quaternion_to_matrix(b.camera.rotation)) +
         sq(a.camera.translation, b.camera.translation);
}

RefineResult refine(model::LepardNet& net, const TrainConfig& config, const at::Tensor& images,
                    const at::Tensor& labels, const at::Tensor& ownership, const RefineOptions& o) {
  if (o.iterations < 0) throw std::invalid_argument("refine: iterations must be >= 0");
  if (!(o.anchor >= 0)) throw std::invalid_argument("refine: the anchor must be >= 0");
  if (labels.dim() != 3 || labels.size(0) != images.size(0))
    throw std::invalid_argument("refine: labels must be (B, R, R) for the B images");
  RefineResult result;
  model::RawPrediction raw;
  {
    at::NoGradGuard no_grad;
    raw = net->forward_raw(images, labels.to(images.device()));
  }
  auto settings = loss_settings(config);
  // Each image is fitted alone: the consistency terms' target, the category's mean over a
  // training batch, is not kept, and the test images' own mean would pull them together.
  settings.shape_consistency = settings.distance_consistency = 0.0;
  const auto grid = model::surface_grid(net->options());
  LossInputs in;
  in.distribution = net->part_distribution().detach();
  if (ownership.defined()) in.ownership = ownership.to(images.device());
  const LossTargets targets{labels.to(images.device()).to(at::kLong)};
  const int64_t views = net->options().viewpoints;
  if (o.choose_view && views > 1) {
    // Each image alone (every loss is a mean over images), every turn: the least loss wins.
    at::NoGradGuard no_grad;
    const int64_t b = images.size(0);
    std::vector<int64_t> chosen(static_cast<size_t>(b), 0);
    for (int64_t i = 0; i < b; ++i) {
      model::RawPrediction one;
      one.camera = raw.camera.narrow(0, i, 1);
      one.parts = raw.parts.narrow(0, i, 1);
      if (raw.flow.defined()) one.flow = raw.flow.narrow(0, i, 1);
      if (raw.heat.defined()) one.heat = raw.heat.narrow(0, i, 1);
      const LossTargets target{targets.labels.narrow(0, i, 1)};
      double best = std::numeric_limits<double>::infinity();
      for (int64_t v = 0; v < views; ++v) {
        one.view = at::full({1}, v, at::TensorOptions().dtype(at::kLong).device(images.device()));
        const auto pred = net->decode(one);
        in.camera = pred.camera;
        in.parts = pred.parts;
        in.velocity = pred.velocity;
        const double loss = compute_losses(in, target, grid, settings).total.item<double>();
        if (loss < best) {
          best = loss;
          chosen[static_cast<size_t>(i)] = v;
        }
      }
    }
    raw.view = at::tensor(chosen, at::kLong).to(images.device());
  }
  if (o.iterations == 0) {
    at::NoGradGuard no_grad;
    result.prediction = net->decode(raw);
    result.raw = raw;
    return result;
  }
  at::AutoGradMode grad(true);
  std::vector<at::Tensor> vars, starts;
  // model.part_heatmaps' scores are outputs too: held fixed, a sharp peak would keep a part
  // where the network put it whatever its raw centre did.
  for (auto* t : {&raw.camera, &raw.parts, &raw.flow, &raw.heat}) {
    if (!t->defined()) continue;
    starts.push_back(t->detach().clone());
    *t = t->detach().clone().requires_grad_(true);
    vars.push_back(*t);
  }
  // Per image: the squared distance of its raw outputs from the network's, summed over the
  // heads' coordinates (each coordinate is held by a spring of stiffness 2 anchor); then the
  // mean over images, as every loss term is.
  auto proximal = [&]() {
    at::Tensor sum_sq = at::zeros({images.size(0)}, vars.front().options());
    for (size_t i = 0; i < vars.size(); ++i) sum_sq = sum_sq + (vars[i] - starts[i]).pow(2).flatten(1).sum(1);
    return sum_sq.mean();
  };
  torch::optim::Adam adam(vars, torch::optim::AdamOptions(o.lr));
  for (int64_t it = 0; it <= o.iterations; ++it) {
    const auto pred = net->decode(raw);
    in.camera = pred.camera;
    in.parts = pred.parts;
    in.velocity = pred.velocity;
    const auto terms = compute_losses(in, targets, grid, settings);
    const double loss = terms.total.item<double>();
    if (!std::isfinite(loss)) break;  // keep the last finite iterate
    if (it == 0) result.first_loss = loss;
    result.last_loss = loss;
    if (it == o.iterations) break;  // the loss of the final iterate, not a step past it
    adam.zero_grad();
    (o.anchor > 0 ? terms.total + o.anchor * proximal() : terms.total).backward();
    adam.step();
  }
  at::NoGradGuard no_grad;
  raw.camera = raw.camera.detach();
  raw.parts = raw.parts.detach();
  if (raw.flow.defined()) raw.flow = raw.flow.detach();
  if (raw.heat.defined()) raw.heat = raw.heat.detach();
  result.prediction = net->decode(raw);
  result.raw = raw;
  return result;
}

}  // namespace lepard::train
