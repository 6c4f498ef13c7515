#include <lepard/train/ownership.h>
#include <lepard/train/refine.h>
#include <lepard/train/trainer.h>
#include <lepard/train/viewpoint.h>
#include <lepard/model/canonical.h>
#include <lepard/model/reconstruct.h>

#include <lepard/core/hash.h>
#include <lepard/core/camera.h>
#include <lepard/core/surface_grid.h>
#include <lepard/data/layout.h>
#include <lepard/io/checkpoint.h>
#include <lepard/features/prepare.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/indexed_png.h>
#include <lepard/render/hard_rasterize.h>
#include <lepard/train/losses.h>
#include <lepard/eval/metrics.h>

#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <tuple>

namespace fs = std::filesystem;

namespace lepard::train {

namespace {

// (N, H, W) uint8 maps -> (N, size, size), nearest.
at::Tensor resize_nearest(const at::Tensor& maps, int64_t size) {
  if (maps.size(1) == size && maps.size(2) == size) return maps.contiguous();
  return at::upsample_nearest2d(maps.unsqueeze(1).to(at::kFloat), {size, size}).squeeze(1).to(at::kByte);
}

using core::splitmix64;

fs::path cache_folder(const TrainConfig& c) {
  return c.data.cache.empty() ? fs::path(c.data.root) / "cache" : fs::path(c.data.cache);
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

std::pair<at::Tensor, at::Tensor> flip_batch(const at::Tensor& images, const at::Tensor& labels,
                                             const at::Tensor& flags, const at::Tensor& lookup) {
  auto flipped = labels.flip({2});
  if (lookup.defined()) flipped = lookup.to(labels.device()).index({flipped.to(at::kLong)}).to(labels.scalar_type());
  return {at::where(flags.view({-1, 1, 1, 1}), images.flip({3}), images),
          at::where(flags.view({-1, 1, 1}), flipped, labels)};
}

Dataset load_dataset(const TrainConfig& c, bool held_out) {
  data::ReaderOptions ro;
  ro.crop_size = c.data.crop_size;
  ro.split = held_out ? data::Split::Test : data::Split::Train;
  ro.test_fraction = c.data.test_fraction;
  data::Layout layout{};
  try {
    layout = data::resolve_layout(c.data.root, c.data.format, "data.format");
  } catch (const std::invalid_argument& e) {
    throw ConfigError(std::string("data.root: ") + e.what());
  }
  auto read = data::read_category(c.data.root, layout, c.data.category, ro);
  const auto cache = cache_folder(c);
  Dataset d;
  std::vector<at::Tensor> images, labels, masks, parts;
  bool all_labels = true, all_masks = true, all_parts = true;
  const int64_t chunk = 64;
  std::vector<at::Tensor> crops;
  auto flush = [&] {
    if (crops.empty()) return;
    images.push_back(model::normalize_images(at::stack(crops), c.model.image_size));
    crops.clear();
  };
  const auto stamps = features::read_input_stamps(cache);
  if (stamps.empty() && fs::is_directory(cache / "labels"))
    spdlog::warn(
        "{}: no input stamps (a cache from an older lepard-prepare): cannot check that its pseudo-labels are "
        "of these images; rerun lepard-prepare to add them",
        cache.string());
  for (auto& s : read.samples) {
    d.ids.push_back(s.id);
    if (!stamps.empty()) {
      const auto it = stamps.find(s.id);
      if (it != stamps.end() && it->second != features::input_stamp(s))
        throw data::DataError(cache.string() + ": the pseudo-labels of " + s.id +
                              " were made from another image than " + s.image_path.string() +
                              " (the dataset changed, or the cache is another dataset's); run "
                              "lepard-prepare --data " +
                              c.data.root + " --out " + cache.string() + " again");
    }
    crops.push_back(s.image);
    if (static_cast<int64_t>(crops.size()) == chunk) flush();
    const auto label_path = features::cache_path(cache, "labels", s.id, ".png");
    if (fs::exists(label_path)) {
      labels.push_back(resize_nearest(io::read_indexed_png(label_path).unsqueeze(0), c.loss.render_size));
    } else if (!held_out) {
      throw data::DataError(label_path.string() + ": no pseudo-labels for training sample " + s.id +
                            " (run lepard-prepare --data " + c.data.root + " --out " + cache.string() + ")");
    } else {
      all_labels = false;
    }
    if (s.mask.defined())
      masks.push_back(resize_nearest(s.mask.unsqueeze(0), c.train.validate_size));
    else
      all_masks = false;
    if (s.part_labels.defined())
      parts.push_back(resize_nearest(s.part_labels.unsqueeze(0), c.train.validate_size));
    else
      all_parts = false;
    s = data::Sample{};  // release the crop and its ground truth
  }
  flush();
  if (d.ids.empty()) return d;
  d.images = at::cat(images);
  if (all_labels) {
    d.labels = at::cat(labels);
    d.clusters = d.labels.max().item<int64_t>();
  }
  if (all_masks) d.masks = at::cat(masks);
  if (all_parts) d.part_labels = at::cat(parts);
  return d;
}

model::ModelOptions model_options(const TrainConfig& c, int64_t clusters) {
  model::ModelOptions o = c.model;  // the model.* keys are its fields
  o.clusters = std::max<int64_t>(clusters, 1);
  o.seed = c.train.seed;
  return o;
}

namespace {

torch::serialize::InputArchive open_checkpoint(const fs::path& path) {
  if (!fs::exists(path)) throw std::runtime_error(path.string() + ": no such checkpoint");
  try {
    io::verify_zip(path);  // LibTorch does not check the CRCs: a damaged file would load
  } catch (const io::CheckpointError& e) {
    throw std::runtime_error(std::string(e.what()) + "; not a readable lepard checkpoint");
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
  } catch (const c10::Error& e) {
    throw std::runtime_error(path.string() + ": not a readable lepard checkpoint (" + e.what_without_backtrace() + ")");
  }
  return archive;
}

// A network's parameters, then its buffers: what train.ema averages and what a checkpoint
// keeps of the trained weights beside the average, in this order.
std::vector<at::Tensor> network_weights(const model::LepardNet& net) {
  auto w = net->parameters();
  for (const auto& b : net->buffers()) w.push_back(b);
  return w;
}

// Reads the trained weights a checkpoint of a run with train.ema holds beside its model (the
// network's parameters then buffers, in order) into `weights`.
void read_live_weights(torch::serialize::InputArchive& live, const std::vector<at::Tensor>& weights,
                       const fs::path& path) {
  at::Tensor count;
  live.read("count", count);
  if (count.item<int64_t>() != static_cast<int64_t>(weights.size()))
    throw std::runtime_error(path.string() + ": holds " + std::to_string(count.item<int64_t>()) +
                             " trained weight tensors for a model of " + std::to_string(weights.size()));
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < weights.size(); ++i) {
    at::Tensor t;
    live.read(std::to_string(i), t);
    if (!t.sizes().equals(weights[i].sizes()))
      throw std::runtime_error(path.string() + ": trained weight tensor " + std::to_string(i) + " has the wrong shape");
    weights[i].detach().copy_(t);
  }
}

}  // namespace

struct Trainer::Impl {
  at::Tensor ownership;  // (K, C) explicit part-to-cluster ownership, or undefined (loss.ownership false)
  // (K, 3) float64 on the CPU: the viewpoint search's shared layout (loss.viewpoint), a running
  // mean of the centres of the images that need no turn; undefined until the search starts.
  at::Tensor layout;
  TrainConfig config;
  Dataset train, val;
  Distributed* distributed = nullptr;
  model::LepardNet net{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer;
  core::SurfaceGrid grid;
  LossSettings loss;
  int64_t step = 0;
  c10::Device device{c10::kCPU};
  // Refined targets (train.targets), per slot (training image i at slot 2 i, its mirror at
  // 2 i + 1): the offset from the network's raw camera and part outputs at the slot's last
  // visit and its Adam moments, (2 N, ...) each, and the Adam step count (2 N) int64 (0: no
  // visit yet).
  std::vector<at::Tensor> target, target_m1, target_m2;
  at::Tensor target_steps;
  // train.flip_clusters mirror: (C + 1) int64, each label's id after a flip (0 stays 0);
  // undefined: flips keep the ids. mirror_text is its readable form, for mirror.txt.
  at::Tensor flip_lookup;
  std::string mirror_text;
  // The sampler: the permutation of the current epoch.
  int64_t perm_epoch = -1;
  std::vector<int64_t> perm;
  // The moving average of the weights (train.ema): one tensor per entry of weights(), empty
  // until the first step; ema_steps counts the steps averaged.
  std::vector<at::Tensor> ema;
  int64_t ema_steps = 0;

  std::vector<at::Tensor> weights() const { return network_weights(net); }
  void update_ema() {
    at::NoGradGuard no_grad;
    const auto w = weights();
    if (ema.empty()) {
      for (const auto& t : w) ema.push_back(t.detach().clone());
    } else {
      const double n = static_cast<double>(ema_steps);
      const double d = std::min(config.train.ema, (1.0 + n) / (10.0 + n));
      for (size_t i = 0; i < w.size(); ++i) {
        if (at::isFloatingType(w[i].scalar_type()))
          ema[i].mul_(d).add_(w[i].detach(), 1.0 - d);
        else
          ema[i].copy_(w[i]);
      }
    }
    ++ema_steps;
  }
  // Exchanges the network's weights with their moving average (a no-op before it exists).
  void swap_ema() {
    at::NoGradGuard no_grad;
    const auto w = weights();
    for (size_t i = 0; i < ema.size(); ++i) {
      auto live = w[i].detach().clone();
      w[i].detach().copy_(ema[i]);
      ema[i].copy_(live);
    }
  }
  // Holds the moving average in the network for a scope (validation, the checkpoint's model).
  struct EmaInNet {
    Impl& m;
    explicit EmaInNet(Impl& impl) : m(impl) { m.swap_ema(); }
    ~EmaInNet() { m.swap_ema(); }
    EmaInNet(const EmaInNet&) = delete;
    EmaInNet& operator=(const EmaInNet&) = delete;
  };

  int64_t rank() const { return distributed ? distributed->rank() : 0; }
  int64_t world() const { return distributed ? distributed->world_size() : 1; }

  int64_t sample_at(int64_t pos) {
    const int64_t n = train.size();
    const int64_t epoch = pos / n;
    if (epoch != perm_epoch) {
      perm.resize(n);
      std::iota(perm.begin(), perm.end(), 0);
      uint64_t state = splitmix64(static_cast<uint64_t>(config.train.seed) * 1000003ull + static_cast<uint64_t>(epoch));
      for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates with a counter-based generator
        state = splitmix64(state);
        std::swap(perm[i], perm[state % static_cast<uint64_t>(i + 1)]);
      }
      perm_epoch = epoch;
    }
    return perm[pos % n];
  }
  bool flip_at(int64_t pos) const {
    return config.train.flip &&
           (splitmix64(static_cast<uint64_t>(pos) ^ (static_cast<uint64_t>(config.train.seed) << 32) ^ 0xF11Full) & 1);
  }

  double lr_at(int64_t s) const {
    const auto& t = config.train;
    double f = 1.0;
    if (t.warmup > 0 && s < t.warmup) f = static_cast<double>(s + 1) / static_cast<double>(t.warmup);
    const double progress = static_cast<double>(s) / static_cast<double>(std::max<int64_t>(t.steps, 1));
    if (t.schedule == TrainConfig::Train::Schedule::Cosine)
      f *= 0.05 + 0.95 * 0.5 * (1.0 + std::cos(M_PI * progress));
    else if (t.schedule == TrainConfig::Train::Schedule::Step)
      f *= progress < 2.0 / 3.0 ? 1.0 : 0.1;
    return t.lr * f;
  }
  double sigma_at(int64_t s) const {
    const auto& t = config.train;
    const double progress = t.steps > 1 ? static_cast<double>(s) / static_cast<double>(t.steps - 1) : 1.0;
    return t.sigma_start * std::pow(t.sigma_end / t.sigma_start, std::min(progress, 1.0));
  }

  LossInputs inputs(const model::Prediction& p) const {
    LossInputs in;
    in.camera = p.camera;
    in.parts = p.parts;
    in.velocity = p.velocity;
    in.distribution = net->part_distribution();
    in.ownership = ownership;
    return in;
  }

  // Moves the batch's targets (slots (B) int64) by train.targets Adam iterations of the loss
  // against `labels`, starting at the network's prediction `raw` (detached) plus
  // train.target_decay times the slot's kept offset (none on a first visit), keeps the new
  // offsets from `raw` and the moments, and returns the targets (B, ...) per head (camera, parts).
  std::vector<at::Tensor> refine_targets(const model::RawPrediction& raw, const at::Tensor& slots,
                                         const LossTargets& labels) {
    const auto& t = config.train;
    const std::vector<at::Tensor> network{raw.camera.detach(), raw.parts.detach()};
    if (!target_steps.defined()) {  // first use: zeros of the heads' shapes for every slot
      const int64_t n = 2 * train.size();
      for (const auto& h : network) {
        auto sizes = h.sizes().vec();
        sizes[0] = n;
        target.push_back(at::zeros(sizes, h.options()));
        target_m1.push_back(at::zeros(sizes, h.options()));
        target_m2.push_back(at::zeros(sizes, h.options()));
      }
      target_steps = at::zeros({n}, at::TensorOptions().dtype(at::kLong).device(device));
    }
    const auto steps = target_steps.index_select(0, slots);
    std::vector<at::Tensor> x, m1, m2;
    for (size_t h = 0; h < network.size(); ++h) {
      x.push_back(network[h] + t.target_decay * target[h].index_select(0, slots));  // offsets are 0 until a visit
      m1.push_back(target_m1[h].index_select(0, slots));
      m2.push_back(target_m2[h].index_select(0, slots));
    }
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    auto count = steps.to(x.front().dtype());
    const auto distribution = net->part_distribution().detach();
    for (int64_t it = 0; it < t.targets; ++it) {
      at::AutoGradMode grad_mode(true);
      std::vector<at::Tensor> vars;
      model::RawPrediction r = raw;  // its view and flow (detached); camera and parts are the iterates
      if (r.view_logits.defined()) r.view_logits = r.view_logits.detach();
      if (r.flow.defined()) r.flow = r.flow.detach();
      const std::vector<at::Tensor*> rh{&r.camera, &r.parts};
      for (size_t h = 0; h < network.size(); ++h) {
        vars.push_back(x[h].clone().requires_grad_(true));
        *rh[h] = vars.back();
      }
      auto in = inputs(net->decode(r));
      in.distribution = distribution;
      const auto terms = compute_losses(in, labels, grid, loss);
      if (!terms.total.isfinite().item<bool>()) break;  // keep the last finite iterate
      // Adam as refine()'s (train/refine.h): on the batch mean, each image's gradient is 1/B
      // of its own, which Adam's normalisation undoes.
      const auto grads = torch::autograd::grad({terms.total}, vars);
      at::NoGradGuard no_grad;
      count = count + 1.0;
      std::vector<int64_t> shape;
      for (size_t h = 0; h < network.size(); ++h) {
        shape.assign(static_cast<size_t>(x[h].dim()), 1);
        shape[0] = -1;
        const auto& g = grads[h];
        m1[h] = beta1 * m1[h] + (1.0 - beta1) * g;
        m2[h] = beta2 * m2[h] + (1.0 - beta2) * g * g;
        const auto c1 = (1.0 - at::pow(beta1, count)).view(shape), c2 = (1.0 - at::pow(beta2, count)).view(shape);
        x[h] = x[h] - t.target_lr * (m1[h] / c1) / ((m2[h] / c2).sqrt() + eps);
      }
    }
    target_steps.index_copy_(0, slots, count.round().to(at::kLong));
    for (size_t h = 0; h < network.size(); ++h) {
      target[h].index_copy_(0, slots, x[h] - network[h]);
      target_m1[h].index_copy_(0, slots, m1[h]);
      target_m2[h].index_copy_(0, slots, m2[h]);
    }
    return x;
  }

  void write_metrics(const nlohmann::json& line) const {
    if (rank() != 0) return;
    std::ofstream out(fs::path(config.train.out) / "metrics.jsonl", std::ios::app);
    out << line.dump() << "\n";
  }
};

Trainer::Trainer(TrainConfig config, Dataset train, Dataset val, Distributed* distributed)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.config = std::move(config);
  m.train = std::move(train);
  m.val = std::move(val);
  m.distributed = distributed;
  const auto& c = m.config;
  if (m.train.size() == 0)
    throw ConfigError("data.root: " + c.data.root + " has no training images for category '" + c.data.category + "'");
  if (!m.train.labels.defined()) throw ConfigError("data.cache: the training images have no pseudo-labels");
  if (c.model.label_input && m.val.size() > 0 && !m.val.labels.defined())
    throw ConfigError("model.label_input: the held-out images have no pseudo-labels in " + c.data.cache +
                      " (the network needs them as input)");
  if (c.train.targets > 0 && m.world() > 1)
    throw ConfigError("train.targets: the refined targets are kept per process; use one process");
  if (c.train.batch_size % m.world() != 0)
    throw ConfigError("train.batch_size " + std::to_string(c.train.batch_size) +
                      " must be a multiple of the world size " + std::to_string(m.world()));
  m.device = c10::Device(c.train.device == "cuda" ? c10::kCUDA : c10::kCPU);
  if (c.train.flip && c.train.flip_clusters == TrainConfig::Train::FlipClusters::Mirror) {
    // From every training image's labels: the same on every rank (the data are), and again
    // on a resumed run.
    ClusterMirror mirror;
    try {
      mirror = estimate_cluster_mirror(m.train.labels, m.train.clusters);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(std::string("train.flip_clusters: mirror: ") + e.what() + " (the pseudo-labels of " +
                        c.data.cache + ")");
    }
    std::vector<int64_t> lookup{0};
    for (const auto partner : mirror.partner) lookup.push_back(partner + 1);
    m.flip_lookup = at::tensor(lookup, at::kLong);
    m.mirror_text = cluster_mirror_text(mirror.partner);
    spdlog::info("flipped labels swap each cluster with its mirror (train.flip_clusters mirror; {} side views): {}",
                 mirror.side_images, m.mirror_text);
  }
  // The initial weights come from LibTorch's default generator: seed it, so that every
  // process of a data-parallel run and every run of a configuration start alike.
  at::manual_seed(static_cast<uint64_t>(c.train.seed));
  m.net = model::LepardNet(model_options(c, m.train.clusters));
  if (!c.model.encoder_weights.empty()) {
    const auto n = model::load_encoder_weights(m.net, c.model.encoder_weights);
    spdlog::info("loaded {} encoder tensors from {}", n, c.model.encoder_weights);
  }
  if (!c.model.init.empty()) {
    // Fine-tuning: the weights of a trained model, not its optimiser state or step.
    auto archive = open_checkpoint(c.model.init);
    try {
      m.net->load(archive);
    } catch (const c10::Error& e) {
      throw ConfigError("model.init: " + c.model.init + " does not fit this model (" + e.what_without_backtrace() +
                        "); the model section (and the number of clusters) must match the run it came from");
    }
    spdlog::info("started from the weights of {}", c.model.init);
  }
  m.net->to(m.device);
  m.optimizer = std::make_unique<torch::optim::Adam>(m.net->parameters(), torch::optim::AdamOptions(c.train.lr));
  m.grid = model::surface_grid(m.net->options());
  m.loss = loss_settings(c);
  if (m.train.labels.size(1) != c.loss.render_size)
    throw ConfigError("loss.render_size " + std::to_string(c.loss.render_size) + " differs from the pseudo-labels' " +
                      std::to_string(m.train.labels.size(1)));
  if (c.loss.ownership && !c.loss.ownership_table.empty()) {
    std::ifstream file(c.loss.ownership_table);
    if (!file) throw ConfigError("loss.ownership_table: cannot read " + c.loss.ownership_table);
    std::stringstream text;
    text << file.rdbuf();
    try {
      m.ownership =
          parse_ownership_table(text.str(), c.model.parts, m.train.clusters, c.loss.ownership_table).to(m.device);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(std::string("loss.ownership_table: ") + e.what());
    }
    spdlog::info("part-to-cluster ownership (from {}):\n{}", c.loss.ownership_table, ownership_table(m.ownership));
  } else if (c.loss.ownership) {
    // From the statistics of the pseudo-labels and of the untrained network's parts (the
    // template) on up to 64 training images (the same on every rank: the data are).
    at::NoGradGuard no_grad;
    const int64_t n = std::min<int64_t>(64, m.train.size());
    const auto points = model::project_images(m.net, m.train.images.narrow(0, 0, n).to(m.device), m.grid,
                                              m.train.labels.narrow(0, 0, n).to(m.device));
    const auto maps =
        render::rasterize_hard(points.cpu(), m.grid.faces, c.loss.render_size, c.loss.render_size).part_id;
    // The rim (loss.rim_share): clusters of the outline's mixed cells, owned by no part.
    std::vector<bool> rim;
    if (c.loss.rim_share > 0) {
      const auto shares =
          rim_shares(m.train.labels.narrow(0, 0, std::min<int64_t>(256, m.train.size())), m.train.clusters);
      std::string list;
      for (size_t j = 0; j < shares.size(); ++j) {
        rim.push_back(shares[j] >= c.loss.rim_share);
        list += fmt::format(" c{} {:.2f}{}", j + 1, shares[j], rim.back() ? " (rim)" : "");
      }
      spdlog::info("share of each cluster's pixels on the outline (loss.rim_share {}):{}", c.loss.rim_share, list);
    }
    m.ownership = initial_ownership(maps, m.train.labels.narrow(0, 0, n), c.model.parts, m.train.clusters,
                                    c.loss.ownership_slack, c.loss.ownership_capacity, rim)
                      .to(m.device);
    spdlog::info("part-to-cluster ownership (from the pseudo-labels' statistics):\n{}", ownership_table(m.ownership));
  }
  if (c.model.anchor) m.net->set_part_owner(m.ownership);  // the centres' anchors follow it (config checked)
}

Trainer::~Trainer() = default;

model::LepardNet& Trainer::net() { return impl_->net; }
int64_t Trainer::step() const { return impl_->step; }
const TrainConfig& Trainer::config() const { return impl_->config; }
at::Tensor Trainer::viewpoint_layout() const { return impl_->layout; }
at::Tensor Trainer::refined_target_steps() const { return impl_->target_steps; }
model::RawPrediction Trainer::refined_target_offsets() const {
  model::RawPrediction r;
  if (!impl_->target_steps.defined()) return r;
  r.camera = impl_->target[0];
  r.parts = impl_->target[1];
  return r;
}

void Trainer::run(int64_t until) {
  auto& m = *impl_;
  const auto& c = m.config;
  if (until < 0 || until > c.train.steps) until = c.train.steps;
  if (m.rank() == 0) fs::create_directories(c.train.out);
  const int64_t global = c.train.batch_size, local = global / m.world();
  auto params = m.net->parameters();
  double window_start = now_s();
  int64_t window_images = 0;
  while (m.step < until) {
    const int64_t s = m.step;
    const double lr = m.lr_at(s);
    for (auto& group : m.optimizer->param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    m.loss.sigma = m.sigma_at(s);
    // Staged generalized forces (eq. 11): no force on q_d before loss.deformation_from.
    m.loss.weights.local = static_cast<double>(s) < c.loss.deformation_from * static_cast<double>(c.train.steps)
                               ? 0.0
                               : c.loss.weights.local;

    std::vector<int64_t> index(local);
    std::vector<uint8_t> flip(local);
    for (int64_t j = 0; j < local; ++j) {
      const int64_t pos = s * global + m.rank() * local + j;
      index[j] = m.sample_at(pos);
      flip[j] = m.flip_at(pos) ? 1 : 0;
    }
    const auto idx = at::tensor(index, at::kLong);
    auto images = m.train.images.index_select(0, idx);
    auto labels = m.train.labels.index_select(0, idx).to(at::kLong);
    std::tie(images, labels) =
        flip_batch(images, labels, at::tensor(std::vector<int64_t>(flip.begin(), flip.end()), at::kLong).to(at::kBool),
                   m.flip_lookup);

    // The labels go to the device here only for a network that sees them (model.label_input).
    auto raw = m.net->forward_raw(images.to(m.device), c.model.label_input ? labels.to(m.device) : at::Tensor());
    const int64_t views = c.model.viewpoints;
    const bool searching =
        views > 1 && static_cast<double>(s) >= c.loss.viewpoint_from * static_cast<double>(c.train.steps);
    double turned = 0.0;
    at::Tensor chosen;  // (B) the viewpoint search's choice of turn
    if (views > 1 && !searching) {
      raw.view = at::zeros({local}, at::TensorOptions().dtype(at::kLong).device(m.device));  // no turn yet
    } else if (searching) {
      at::NoGradGuard no_grad;
      const auto current = m.net->decode(raw);  // the selection head's own choice
      const auto centres = current.parts.center.detach().cpu().to(at::kDouble);
      const auto anchor = core::perspective_project(core::camera_transform(current.camera, current.parts.center),
                                                    current.camera.focal)
                              .mean(1);  // (B, 2)
      auto unturned = raw;
      unturned.view = at::zeros({local}, at::TensorOptions().dtype(at::kLong).device(m.device));
      const auto base = m.net->decode(unturned).camera;
      // The shared layout starts as one image's centres (train/viewpoint.h widest_layout),
      // rank 0's, sent to all as a mean of (world size times it) and zeros.
      if (!m.layout.defined()) {
        std::vector<at::Tensor> start{widest_layout(centres) * (m.rank() == 0 ? static_cast<double>(m.world()) : 0.0)};
        if (m.distributed) m.distributed->all_reduce_mean(start);
        m.layout = start[0];
      }
      const auto search = search_yaw(base, m.layout, anchor, m.ownership, labels, views);
      chosen = choose_view(search, raw.view_logits.detach().argmax(1).cpu(), c.loss.viewpoint_keep);
      turned = chosen.ne(0).to(at::kDouble).mean().item<double>();
      raw.view = chosen.to(m.device);
    }
    const auto pred = m.net->decode(raw);
    if (searching) {
      // The running mean of the centres of the images that need no turn (their parts are in
      // the layout's frame).
      const auto weight = chosen.eq(0).to(at::kDouble);
      const auto centres = pred.parts.center.detach().cpu().to(at::kDouble);
      std::vector<at::Tensor> sums{(centres * weight.view({-1, 1, 1})).sum(0), weight.sum().view({1})};
      if (m.distributed) m.distributed->all_reduce_mean(sums);
      const double n = sums[1].item<double>();
      if (n > 0) m.layout = c.loss.viewpoint_momentum * m.layout + (1.0 - c.loss.viewpoint_momentum) * sums[0] / n;
    }
    // A non-finite prediction stops the run here, naming the output (the rasterisers would
    // refuse it anyway, without the step).
    for (const auto& [name, value] :
         std::vector<std::pair<const char*, at::Tensor>>{{"camera rotation", pred.camera.rotation},
                                                         {"camera translation", pred.camera.translation},
                                                         {"part centres", pred.parts.center},
                                                         {"part rotations", pred.parts.rotation},
                                                         {"part shapes", pred.parts.shape},
                                                         {"local deformation", pred.velocity},
                                                         {"part-to-cluster distributions", m.net->part_distribution()}})
      if (value.defined() && !value.isfinite().all().item<bool>())
        throw TrainingError("step " + std::to_string(s + 1) + ": the network's " + name +
                            " hold NaN or Inf (diverged weights); the run stops here, the last checkpoint (" +
                            (fs::path(c.train.out) / "checkpoint.pt").string() + ") is from before it");
    LossTargets targets{labels.to(m.device)};
    auto inputs = m.inputs(pred);
    if (searching) {
      inputs.view_logits = raw.view_logits;
      inputs.view = chosen.to(m.device);
      inputs.layout = m.layout;
    }
    if (c.loss.shape_consistency != 0.0 || c.loss.distance_consistency != 0.0) {
      // The consistency terms' targets: the means over the whole batch, every process's share
      // (equal shares: the mean of the means), so that two processes step as one.
      at::NoGradGuard no_grad;
      std::vector<at::Tensor> means{relative_log_axes(pred.parts.shape).mean(0),
                                    relative_distances(pred.parts.center).mean(0)};
      if (m.distributed) m.distributed->all_reduce_mean(means);
      inputs.shape_mean = means[0];
      inputs.distance_mean = means[1];
    }
    const auto terms = compute_losses(inputs, targets, m.grid, m.loss);
    at::Tensor total = terms.total, pull;
    if (c.train.targets > 0 && static_cast<double>(s) >= c.train.target_from * static_cast<double>(c.train.steps)) {
      std::vector<int64_t> slot(local);
      for (int64_t j = 0; j < local; ++j) slot[j] = 2 * index[j] + flip[j];
      const auto kept = m.refine_targets(raw, at::tensor(slot, at::kLong).to(m.device), targets);
      auto target = raw;  // its view and flow, decoded without a graph
      target.camera = kept[0];
      target.parts = kept[1];
      model::Prediction goal;
      {
        at::NoGradGuard no_grad;
        goal = m.net->decode(target);
      }
      pull = prediction_distance(pred, goal).mean();
      total = total + c.train.target_weight * pull;
    }
    StepReport report;
    for (const auto& [name, value] : terms.terms) {
      const double v = value.item<double>();
      if (!std::isfinite(v))
        throw TrainingError("step " + std::to_string(s + 1) + ": loss term '" + name + "' is " + std::to_string(v) +
                            "; the run stops here, the last checkpoint (" +
                            (fs::path(c.train.out) / "checkpoint.pt").string() + ") is from before it");
      report.terms.emplace_back(name, v);
    }
    if (pull.defined()) report.terms.emplace_back("target", pull.item<double>());
    m.optimizer->zero_grad();
    total.backward();
    for (auto& p : params)
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    if (m.distributed) {
      std::vector<at::Tensor> grads;
      for (auto& p : params) grads.push_back(p.grad());
      m.distributed->all_reduce_mean(grads);
    }
    const double max_norm = c.train.grad_clip > 0 ? c.train.grad_clip : std::numeric_limits<double>::infinity();
    const double norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
    if (!std::isfinite(norm))
      throw TrainingError("step " + std::to_string(s + 1) + ": the gradient norm is " + std::to_string(norm) +
                          " (loss terms were finite); the last checkpoint is from before it");
    m.optimizer->step();
    if (c.train.ema > 0) m.update_ema();
    m.step = s + 1;
    window_images += global;

    report.step = m.step;
    report.steps = c.train.steps;
    report.lr = lr;
    report.sigma = m.loss.sigma;
    report.loss = total.item<double>();
    report.grad_norm = norm;
    const double elapsed = now_s() - window_start;
    report.images_per_s = elapsed > 0 ? static_cast<double>(window_images) / elapsed : 0.0;
    if (m.step % c.train.log_every == 0 || m.step == until) {
      nlohmann::json line = {{"step", m.step},      {"lr", lr},          {"sigma", report.sigma},
                             {"loss", report.loss}, {"grad_norm", norm}, {"images_per_s", report.images_per_s}};
      for (const auto& [name, v] : report.terms) line[name] = v;
      if (searching) line["viewpoint_turned"] = turned;  // share of this step's images the search turned
      m.write_metrics(line);
      window_start = now_s();
      window_images = 0;
    }
    if (on_step) on_step(report);
    if (m.rank() == 0 && m.val.size() > 0 && (m.step % c.train.validate_every == 0 || m.step == c.train.steps)) {
      const auto v = validate();
      if (m.ownership.defined() && m.rank() == 0)
        spdlog::info("step {}: part-to-cluster ownership\n{}", m.step, ownership_table(m.ownership));
      m.write_metrics({{"step", v.step},
                       {"val_silhouette_iou", v.silhouette_iou},
                       {"val_part_iou", v.part_iou},
                       {"val_images", v.images},
                       {"val_reference", v.reference}});
      if (on_validate) on_validate(v);
    }
    if (m.rank() == 0 && (m.step % c.train.checkpoint_every == 0 || m.step == c.train.steps))
      save_checkpoint(fs::path(c.train.out) / "checkpoint.pt");
  }
  if (m.rank() == 0 && m.step % c.train.checkpoint_every != 0 && m.step != c.train.steps)
    save_checkpoint(fs::path(c.train.out) / "checkpoint.pt");
  if (m.distributed) m.distributed->barrier();
}

ValidationReport Trainer::validate() {
  auto& m = *impl_;
  const auto& c = m.config;
  const Impl::EmaInNet average(m);  // validation scores the checkpoint's model
  ValidationReport r;
  r.step = m.step;
  r.images = c.train.validate_images > 0 ? std::min(m.val.size(), c.train.validate_images) : m.val.size();
  if (r.images == 0) return r;
  const int64_t t = c.train.validate_size;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> part_maps;
  for (int64_t begin = 0; begin < r.images; begin += 32) {
    const int64_t n = std::min<int64_t>(32, r.images - begin);
    const auto points =
        model::project_images(m.net, m.val.images.narrow(0, begin, n).to(m.device), m.grid,
                              m.val.labels.defined() ? m.val.labels.narrow(0, begin, n).to(m.device) : at::Tensor());
    part_maps.push_back(render::rasterize_hard(points.cpu(), m.grid.faces, t, t).part_id);
  }
  const auto parts = at::cat(part_maps);
  if (m.val.masks.defined()) {
    r.reference = "ground truth";
    r.silhouette_iou = eval::silhouette_iou(parts >= 0, m.val.masks.narrow(0, 0, r.images));
    if (m.val.part_labels.defined())
      r.part_iou = eval::part_iou(parts, m.val.part_labels.narrow(0, 0, r.images), c.model.parts, 16).mean;
  } else if (m.val.labels.defined()) {
    r.reference = "pseudo-labels";
    const auto labels = resize_nearest(m.val.labels.narrow(0, 0, r.images), t);
    r.silhouette_iou = eval::silhouette_iou(parts >= 0, labels);
    r.part_iou = eval::part_iou(parts, labels, c.model.parts, m.train.clusters).mean;
  }
  return r;
}

void Trainer::save_checkpoint(const fs::path& path) const {
  // Not const inside: the moving average is swapped into the network while it is written, and
  // back before this returns.
  auto& m = *impl_;
  // Never leave a diverged model as the last checkpoint: the previous one stays.
  for (const auto& item : m.net->named_parameters())
    if (!item.value().isfinite().all().item<bool>())
      throw TrainingError("step " + std::to_string(m.step) + ": parameter '" + item.key() +
                          "' holds NaN or Inf; no checkpoint written, " + path.string() + " is from before it");
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive optimizer;
  m.optimizer->save(optimizer);
  archive.write("lepard_optimizer", optimizer);
  archive.write("lepard_step", at::tensor(m.step, at::kLong));
  archive.write("lepard_clusters", at::tensor(m.train.clusters, at::kLong));
  archive.write("lepard_seed", at::tensor(m.config.train.seed, at::kLong));
  if (m.ownership.defined()) archive.write("lepard_ownership", m.ownership.cpu());
  if (m.layout.defined()) archive.write("lepard_layout", m.layout);
  if (m.target_steps.defined()) {
    archive.write("lepard_target_steps", m.target_steps.cpu());
    for (size_t h = 0; h < m.target.size(); ++h) {
      archive.write("lepard_target_" + std::to_string(h), m.target[h].cpu());
      archive.write("lepard_target_m1_" + std::to_string(h), m.target_m1[h].cpu());
      archive.write("lepard_target_m2_" + std::to_string(h), m.target_m2[h].cpu());
    }
  }
  auto cfg = m.config;
  archive.write("lepard_config", c10::IValue(cfg.schema().to_yaml()));
  std::ostringstream bytes;
  {
    // An archive holds its tensors by reference until save_to: with train.ema the model is
    // written while the network holds the moving average, and the trained weights (in m.ema
    // for that while) beside it, so that a resumed run goes on from them.
    std::optional<Impl::EmaInNet> average;
    if (!m.ema.empty()) {
      average.emplace(m);
      torch::serialize::OutputArchive live;
      live.write("count", at::tensor(static_cast<int64_t>(m.ema.size()), at::kLong));
      for (size_t i = 0; i < m.ema.size(); ++i) live.write(std::to_string(i), m.ema[i]);
      archive.write("lepard_live", live);
      archive.write("lepard_ema_steps", at::tensor(m.ema_steps, at::kLong));
    }
    // The last checkpoint names each part's ends as most of the training images do
    // (model/canonical.h), fitted to the model it holds.
    if (m.step >= m.config.train.steps && m.train.size() > 0) {
      const int64_t n = std::min(model::kPartTemplateImages, m.train.size());
      const double t0 = now_s();
      m.net->set_part_template(model::fit_part_template(m.net, m.train.images.narrow(0, 0, n).to(m.device),
                                                        m.train.labels.narrow(0, 0, n).to(m.device), m.grid));
      spdlog::info("part template (which end of each part is which) fitted on {} training images in {:.1f} s", n,
                   now_s() - t0);
    }
    if (m.net->part_template().defined()) {
      archive.write("lepard_part_layout", m.net->part_template().layout);
      archive.write("lepard_part_axes", m.net->part_template().axes);
    }
    m.net->save(archive);
    archive.save_to(bytes);
  }
  io::write_file_atomic(path, bytes.str());
  if (m.flip_lookup.defined())
    io::write_file_atomic(path.parent_path() / "mirror.txt",
                          "# the clusters' left/right mirror that train.flip_clusters applies to flipped labels "
                          "(train/ownership.h estimate_cluster_mirror)\n" +
                              m.mirror_text + "\n");
  if (m.ownership.defined())
    io::write_file_atomic(
        path.parent_path() / "ownership.txt",
        "# part-to-cluster ownership (train/ownership.h): x = part owns cluster\n" + ownership_table(m.ownership));
}

void Trainer::resume(const fs::path& path) {
  auto& m = *impl_;
  auto archive = open_checkpoint(path);
  try {
    m.net->load(archive);
    m.ema.clear();
    m.ema_steps = 0;
    torch::serialize::InputArchive live;
    if (archive.try_read("lepard_live", live)) {
      // Trained with train.ema: the model read above is the average, the training goes on from
      // the trained weights. (With train.ema now 0 the average is dropped.)
      if (m.config.train.ema > 0) {
        for (const auto& t : m.weights()) m.ema.push_back(t.detach().clone());
        at::Tensor steps;
        archive.read("lepard_ema_steps", steps);
        m.ema_steps = steps.item<int64_t>();
      }
      read_live_weights(live, m.weights(), path);
    }
    torch::serialize::InputArchive optimizer;
    archive.read("lepard_optimizer", optimizer);
    m.optimizer->load(optimizer);
    at::Tensor step;
    archive.read("lepard_step", step);
    m.step = step.item<int64_t>();
    if (m.ownership.defined()) {
      at::Tensor own;
      archive.read("lepard_ownership", own);
      m.ownership = own.to(m.device);
      if (m.config.model.anchor) m.net->set_part_owner(m.ownership);
    }
    at::Tensor layout;
    if (archive.try_read("lepard_layout", layout)) m.layout = layout;
    at::Tensor steps;
    if (archive.try_read("lepard_target_steps", steps)) {
      m.target_steps = steps.to(m.device);
      m.target.clear();
      m.target_m1.clear();
      m.target_m2.clear();
      for (size_t h = 0;; ++h) {
        at::Tensor v, m1, m2;
        if (!archive.try_read("lepard_target_" + std::to_string(h), v)) break;
        archive.read("lepard_target_m1_" + std::to_string(h), m1);
        archive.read("lepard_target_m2_" + std::to_string(h), m2);
        m.target.push_back(v.to(m.device));
        m.target_m1.push_back(m1.to(m.device));
        m.target_m2.push_back(m2.to(m.device));
      }
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(path.string() + ": does not fit this model (" + e.what_without_backtrace() +
                             "); resume with the configuration the checkpoint was trained with");
  }
  m.net->to(m.device);
  for (auto& t : m.ema) t = t.to(m.device);
}

std::pair<std::string, int64_t> checkpoint_config(const fs::path& path) {
  auto archive = open_checkpoint(path);
  c10::IValue config;
  at::Tensor clusters;
  try {
    archive.read("lepard_config", config);
    archive.read("lepard_clusters", clusters);
  } catch (const c10::Error&) {
    throw std::runtime_error(path.string() + ": has no lepard configuration (not written by lepard-train?)");
  }
  return {config.toStringRef(), clusters.item<int64_t>()};
}

at::Tensor checkpoint_ownership(const fs::path& path) {
  auto archive = open_checkpoint(path);
  at::Tensor own;
  if (!archive.try_read("lepard_ownership", own)) return {};
  return own;
}

model::LepardNet load_model(const fs::path& path, TrainConfig* config_out, Weights weights) {
  const auto [yaml, clusters] = checkpoint_config(path);
  TrainConfig config;
  config.schema().load_string(yaml, path.string());
  model::LepardNet net(model_options(config, clusters));
  auto archive = open_checkpoint(path);
  try {
    net->load(archive);
    model::PartTemplate part_template;
    if (archive.try_read("lepard_part_layout", part_template.layout) &&
        archive.try_read("lepard_part_axes", part_template.axes)) {
      if (part_template.layout.sizes() != at::IntArrayRef{net->options().parts, 2} ||
          part_template.axes.sizes() != part_template.layout.sizes())
        throw std::runtime_error(path.string() + ": lepard_part_layout / lepard_part_axes are not (" +
                                 std::to_string(net->options().parts) + ", 2)");
      net->set_part_template(part_template);
    }
    if (weights == Weights::Live) {
      torch::serialize::InputArchive live;
      if (!archive.try_read("lepard_live", live))
        throw std::runtime_error(path.string() +
                                 ": holds no trained weights apart from its model (it was trained without "
                                 "train.ema, so its model is the trained weights)");
      read_live_weights(live, network_weights(net), path);
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(path.string() + ": " + e.what_without_backtrace());
  }
  // A model with non-finite weights would reconstruct NaN meshes and score zeros: refuse it.
  for (const auto& item : net->named_parameters())
    if (!item.value().isfinite().all().item<bool>())
      throw std::runtime_error(path.string() + ": parameter '" + item.key() +
                               "' holds NaN or infinite values (a diverged run?); use an earlier checkpoint");
  if (config_out) *config_out = config;
  return net;
}

}  // namespace lepard::train
