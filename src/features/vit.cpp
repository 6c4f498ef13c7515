#include <lepard/features/vit.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/upsample_bicubic2d.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <vector>

namespace lepard::features {
namespace {

constexpr double kLayerNormEps = 1e-6;
constexpr int64_t kHeadDim = 64;

std::string shape_string(at::IntArrayRef s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// DINO name -> Hugging Face transformers name (qkv is handled apart: it is split there).
std::string hugging_face_name(const std::string& dino) {
  static const std::vector<std::pair<std::string, std::string>> top = {
      {"cls_token", "embeddings.cls_token"},
      {"pos_embed", "embeddings.position_embeddings"},
      {"patch_embed.proj.", "embeddings.patch_embeddings.projection."},
      {"norm.", "layernorm."}};
  for (const auto& [from, to] : top)
    if (dino.rfind(from, 0) == 0) return to + dino.substr(from.size());
  // blocks.<i>.<rest>
  const auto dot = dino.find('.', 7);
  const std::string index = dino.substr(7, dot - 7), rest = dino.substr(dot + 1);
  static const std::vector<std::pair<std::string, std::string>> block = {{"norm1.", "layernorm_before."},
                                                                         {"norm2.", "layernorm_after."},
                                                                         {"attn.proj.", "attention.output.dense."},
                                                                         {"mlp.fc1.", "intermediate.dense."},
                                                                         {"mlp.fc2.", "output.dense."}};
  for (const auto& [from, to] : block)
    if (rest.rfind(from, 0) == 0) return "encoder.layer." + index + "." + to + rest.substr(from.size());
  return dino;
}

// The weights of one network found in a state dict, looked up by DINO name.
class Weights {
 public:
  Weights(const StateDict& sd, std::string source) : source_(std::move(source)) {
    for (const auto& [k, v] : sd) by_name_.emplace(k, v);
    // Every key ending in cls_token marks a network; prefer the teacher of a full checkpoint.
    std::vector<std::pair<std::string, bool>> found;  // prefix, Hugging Face layout
    for (const auto& [k, v] : sd) {
      if (ends_with(k, "embeddings.cls_token"))
        found.emplace_back(k.substr(0, k.size() - std::string("embeddings.cls_token").size()), true);
      else if (ends_with(k, "cls_token"))
        found.emplace_back(k.substr(0, k.size() - std::string("cls_token").size()), false);
    }
    if (found.empty()) {
      std::ostringstream o;
      o << source_ << ": no ViT in this file: no key ends in 'cls_token' (expected a DINO ViT such as "
        << "dino_deitsmall8_pretrain.pth, in DINO/timm or Hugging Face key names); its keys begin:";
      for (size_t i = 0; i < sd.size() && i < 5; ++i) o << " '" << sd[i].first << "'";
      throw CheckpointError(o.str());
    }
    size_t pick = 0;
    if (found.size() > 1) {
      pick = found.size();
      for (size_t i = 0; i < found.size(); ++i)
        if (found[i].first.find("teacher") != std::string::npos) pick = i;
      if (pick == found.size()) {
        std::ostringstream o;
        o << source_ << ": several ViTs in this file and none is a teacher; their prefixes:";
        for (const auto& f : found) o << " '" << f.first << "'";
        throw CheckpointError(o.str());
      }
    }
    prefix_ = found[pick].first;
    hugging_face_ = found[pick].second;
  }

  std::string layout() const {
    return std::string(hugging_face_ ? "Hugging Face" : "DINO") + (prefix_.empty() ? "" : ", prefix '" + prefix_ + "'");
  }
  bool has(const std::string& dino) const { return by_name_.count(name_of(dino)) > 0; }

  // The tensor of a DINO name, with its shape checked.
  at::Tensor get(const std::string& dino, at::IntArrayRef shape, const std::string& arch) const {
    at::Tensor t;
    std::string name;
    if (hugging_face_ && dino.find("attn.qkv.") != std::string::npos) {
      // blocks.<i>.attn.qkv.<kind> = cat(query, key, value)
      const auto i = dino.substr(7, dino.find('.', 7) - 7), kind = dino.substr(dino.rfind('.') + 1);
      std::vector<at::Tensor> parts;
      for (const char* p : {"query", "key", "value"}) {
        name = prefix_ + "encoder.layer." + i + ".attention.attention." + p + "." + kind;
        parts.push_back(find(name));
        const auto want = shape[0] / 3;
        if (parts.back().dim() != static_cast<int64_t>(shape.size()) || parts.back().size(0) != want) {
          std::vector<int64_t> s(shape.begin(), shape.end());
          s[0] = want;
          misshapen(name, parts.back(), s, arch);
        }
      }
      t = at::cat(parts, 0);
      name = prefix_ + "encoder.layer." + i + ".attention.attention.{query,key,value}." + kind;
    } else {
      name = prefix_ + (hugging_face_ ? hugging_face_name(dino) : dino);
      t = find(name);
    }
    if (t.sizes() != shape) misshapen(name, t, shape, arch);
    if (!t.is_floating_point())
      throw CheckpointError(source_ + ": key '" + name + "' holds " + std::string(c10::toString(t.scalar_type())) +
                            ", expected floating point weights");
    return t.to(at::kFloat).contiguous();
  }
  const at::Tensor& find(const std::string& name) const {
    const auto it = by_name_.find(name);
    if (it == by_name_.end())
      throw CheckpointError(source_ + ": missing key '" + name + "' (a DINO ViT in " + layout() +
                            " needs it; is this a complete backbone state dict?)");
    return it->second;
  }
  std::string name_of(const std::string& dino) const {
    return prefix_ + (hugging_face_ ? hugging_face_name(dino) : dino);
  }
  [[noreturn]] void misshapen(const std::string& name, const at::Tensor& t, at::IntArrayRef shape,
                              const std::string& arch) const {
    throw CheckpointError(source_ + ": key '" + name + "' has shape " + shape_string(t.sizes()) + ", expected " +
                          shape_string(shape) + " for " + arch);
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_, prefix_;
  bool hugging_face_ = false;
  std::map<std::string, at::Tensor> by_name_;
};

}  // namespace

Facet parse_facet(const std::string& name) {
  if (name == "key") return Facet::Key;
  if (name == "query") return Facet::Query;
  if (name == "value") return Facet::Value;
  if (name == "token") return Facet::Token;
  throw std::invalid_argument("unknown facet '" + name + "' (expected key, query, value or token)");
}

std::string to_string(Facet facet) {
  switch (facet) {
    case Facet::Key:
      return "key";
    case Facet::Query:
      return "query";
    case Facet::Value:
      return "value";
    case Facet::Token:
      return "token";
  }
  return "?";
}

std::string VitArch::name() const {
  const std::string size = dim == 384 && heads == 6    ? "S"
                           : dim == 768 && heads == 12 ? "B"
                                                       : "(dim " + std::to_string(dim) + ")";
  return "ViT-" + size + "/" + std::to_string(patch);
}

DinoVit::DinoVit(const StateDict& sd, const std::string& source) {
  const Weights w(sd, source);
  layout_ = w.layout();
  // Architecture from the shapes.
  const auto& cls = w.find(w.name_of("cls_token"));
  if (cls.dim() != 3 || cls.size(0) != 1 || cls.size(1) != 1)
    w.misshapen(w.name_of("cls_token"), cls, {1, 1, cls.size(-1)}, "a ViT");
  arch_.dim = cls.size(2);
  if (arch_.dim % kHeadDim != 0)
    throw CheckpointError(source + ": embedding dimension " + std::to_string(arch_.dim) + " (from '" +
                          w.name_of("cls_token") + "') is not a multiple of DINO's head dimension 64");
  arch_.heads = arch_.dim / kHeadDim;
  const auto& patch = w.find(w.name_of("patch_embed.proj.weight"));
  if (patch.dim() != 4 || patch.size(2) != patch.size(3))
    w.misshapen(w.name_of("patch_embed.proj.weight"), patch, {arch_.dim, 3, patch.size(-1), patch.size(-1)}, "a ViT");
  arch_.patch = patch.size(3);
  const auto& pos = w.find(w.name_of("pos_embed"));
  const int64_t n = pos.dim() == 3 ? pos.size(1) - 1 : 0;
  arch_.pos_grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  if (n <= 0 || arch_.pos_grid * arch_.pos_grid != n)
    throw CheckpointError(source + ": key '" + w.name_of("pos_embed") + "' has shape " + shape_string(pos.sizes()) +
                          ", expected [1, 1 + g*g, " + std::to_string(arch_.dim) + "] for a square grid g");
  while (w.has("blocks." + std::to_string(arch_.depth) + ".norm1.weight")) ++arch_.depth;
  if (arch_.depth == 0) w.find(w.name_of("blocks.0.norm1.weight"));  // throws, naming the key

  const auto a = arch_.name();
  const int64_t d = arch_.dim;
  cls_token_ = w.get("cls_token", {1, 1, d}, a);
  pos_embed_ = w.get("pos_embed", {1, n + 1, d}, a);
  patch_w_ = w.get("patch_embed.proj.weight", {d, 3, arch_.patch, arch_.patch}, a);
  patch_b_ = w.get("patch_embed.proj.bias", {d}, a);
  for (int64_t i = 0; i < arch_.depth; ++i) {
    const auto b = "blocks." + std::to_string(i) + ".";
    Block blk;
    blk.norm1_w = w.get(b + "norm1.weight", {d}, a);
    blk.norm1_b = w.get(b + "norm1.bias", {d}, a);
    blk.qkv_w = w.get(b + "attn.qkv.weight", {3 * d, d}, a);
    blk.qkv_b = w.get(b + "attn.qkv.bias", {3 * d}, a);
    blk.proj_w = w.get(b + "attn.proj.weight", {d, d}, a);
    blk.proj_b = w.get(b + "attn.proj.bias", {d}, a);
    blk.norm2_w = w.get(b + "norm2.weight", {d}, a);
    blk.norm2_b = w.get(b + "norm2.bias", {d}, a);
    blk.fc1_w = w.get(b + "mlp.fc1.weight", {4 * d, d}, a);
    blk.fc1_b = w.get(b + "mlp.fc1.bias", {4 * d}, a);
    blk.fc2_w = w.get(b + "mlp.fc2.weight", {d, 4 * d}, a);
    blk.fc2_b = w.get(b + "mlp.fc2.bias", {d}, a);
    blocks_.push_back(std::move(blk));
  }
  norm_w_ = w.get("norm.weight", {d}, a);
  norm_b_ = w.get("norm.bias", {d}, a);
}

DinoVit DinoVit::load(const std::filesystem::path& path) { return DinoVit(load_state_dict(path), path.string()); }

void DinoVit::to(c10::Device device, c10::ScalarType dtype) {
  for (auto* t : {&cls_token_, &pos_embed_, &patch_w_, &patch_b_, &norm_w_, &norm_b_}) *t = t->to(device, dtype);
  for (auto& b : blocks_)
    for (auto* t : {&b.norm1_w, &b.norm1_b, &b.qkv_w, &b.qkv_b, &b.proj_w, &b.proj_b, &b.norm2_w, &b.norm2_b, &b.fc1_w,
                    &b.fc1_b, &b.fc2_w, &b.fc2_b})
      *t = t->to(device, dtype);
}

c10::Device DinoVit::device() const { return cls_token_.device(); }
c10::ScalarType DinoVit::dtype() const { return cls_token_.scalar_type(); }

StateDict DinoVit::state_dict() const {
  StateDict sd = {{"cls_token", cls_token_},
                  {"pos_embed", pos_embed_},
                  {"patch_embed.proj.weight", patch_w_},
                  {"patch_embed.proj.bias", patch_b_}};
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const auto b = "blocks." + std::to_string(i) + ".";
    const auto& k = blocks_[i];
    for (const auto& [name, t] : std::vector<std::pair<std::string, at::Tensor>>{{"norm1.weight", k.norm1_w},
                                                                                 {"norm1.bias", k.norm1_b},
                                                                                 {"attn.qkv.weight", k.qkv_w},
                                                                                 {"attn.qkv.bias", k.qkv_b},
                                                                                 {"attn.proj.weight", k.proj_w},
                                                                                 {"attn.proj.bias", k.proj_b},
                                                                                 {"norm2.weight", k.norm2_w},
                                                                                 {"norm2.bias", k.norm2_b},
                                                                                 {"mlp.fc1.weight", k.fc1_w},
                                                                                 {"mlp.fc1.bias", k.fc1_b},
                                                                                 {"mlp.fc2.weight", k.fc2_w},
                                                                                 {"mlp.fc2.bias", k.fc2_b}})
      sd.emplace_back(b + name, t);
  }
  sd.emplace_back("norm.weight", norm_w_);
  sd.emplace_back("norm.bias", norm_b_);
  return sd;
}

at::Tensor DinoVit::positions(int64_t gh, int64_t gw) const {
  const int64_t g = arch_.pos_grid, d = arch_.dim;
  if (gh == g && gw == g) return pos_embed_;
  const auto grid = pos_embed_.narrow(1, 1, g * g).reshape({1, g, g, d}).permute({0, 3, 1, 2});
  // Scale factors, not sizes, as DINO passes them: they set the sampling positions.
  const auto resized = at::upsample_bicubic2d(grid, {gh, gw}, /*align_corners=*/false,
                                              (static_cast<double>(gh) + 0.1) / static_cast<double>(g),
                                              (static_cast<double>(gw) + 0.1) / static_cast<double>(g));
  return at::cat({pos_embed_.narrow(1, 0, 1), resized.permute({0, 2, 3, 1}).reshape({1, gh * gw, d})}, 1);
}

namespace {
at::Tensor linear(const at::Tensor& x2d, const at::Tensor& w, const at::Tensor& b) { return at::addmm(b, x2d, w.t()); }
}  // namespace

VitFeatures DinoVit::extract(const at::Tensor& images, const ExtractOptions& options) const {
  c10::InferenceMode guard;
  const int64_t p = arch_.patch, d = arch_.dim, heads = arch_.heads, depth = arch_.depth;
  if (images.dim() != 4 || images.size(1) != 3)
    throw std::invalid_argument("DinoVit::extract: images must be (B, 3, H, W), got " + shape_string(images.sizes()));
  if (images.size(2) < p || images.size(3) < p)
    throw std::invalid_argument("DinoVit::extract: images of " + std::to_string(images.size(2)) + "x" +
                                std::to_string(images.size(3)) + " are smaller than the patch (" + std::to_string(p) +
                                ")");
  const int64_t stride = options.stride > 0 ? options.stride : p;
  if (p % stride != 0)
    throw std::invalid_argument("DinoVit::extract: stride " + std::to_string(stride) +
                                " does not divide the patch size " + std::to_string(p));
  const int64_t layer = options.layer < 0 ? depth + options.layer : options.layer;
  if (layer < 0 || layer >= depth)
    throw std::invalid_argument("DinoVit::extract: layer " + std::to_string(options.layer) + " outside a network of " +
                                std::to_string(depth) + " blocks");
  const auto x_in = images.to(cls_token_.device(), cls_token_.scalar_type());

  auto x = at::conv2d(x_in, patch_w_, patch_b_, {stride, stride});
  const int64_t batch = x.size(0), gh = x.size(2), gw = x.size(3), tokens = gh * gw, t1 = tokens + 1;
  x = at::cat({cls_token_.expand({batch, 1, d}), x.flatten(2).transpose(1, 2)}, 1) + positions(gh, gw);
  x = x.contiguous();

  VitFeatures out;
  const bool qkv_facet = options.facet != Facet::Token;
  const int64_t last = options.attention ? depth - 1 : layer;
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadDim));
  // One head's scores and probabilities at a time, in buffers reused across heads and
  // blocks (a fresh (T x T) allocation per head costs page faults at large T).
  at::Tensor scores, probs, cls_attention;
  if (options.attention) cls_attention = at::empty({batch, heads, tokens}, x.options());

  for (int64_t i = 0; i <= last; ++i) {
    const auto& blk = blocks_[static_cast<size_t>(i)];
    const auto h = at::layer_norm(x, {d}, blk.norm1_w, blk.norm1_b, kLayerNormEps);
    const auto qkv = linear(h.view({batch * t1, d}), blk.qkv_w, blk.qkv_b).view({batch, t1, 3 * d});
    if (i == layer && qkv_facet) {
      const int64_t offset = options.facet == Facet::Query ? 0 : options.facet == Facet::Key ? d : 2 * d;
      out.facet = qkv.narrow(2, offset, d).narrow(1, 1, tokens).reshape({batch, gh, gw, d}).contiguous();
    }
    const bool need_output = i < last || (i == layer && !qkv_facet);
    if (!need_output) {
      // The last block is needed only for its keys (above) and its CLS attention row.
      if (options.attention && i == depth - 1)
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t hd = 0; hd < heads; ++hd) {
            const auto q = qkv[b].narrow(0, 0, 1).narrow(1, hd * kHeadDim, kHeadDim);
            const auto k = qkv[b].narrow(1, d + hd * kHeadDim, kHeadDim);
            auto row = at::mm(q, k.t());
            row.mul_(scale);
            cls_attention[b][hd].copy_(at::softmax(row, -1)[0].narrow(0, 1, tokens));
          }
      break;
    }
    if (!scores.defined()) {
      scores = at::empty({t1, t1}, x.options());
      probs = at::empty({t1, t1}, x.options());
    }
    auto context = at::empty({batch, t1, d}, x.options());
    for (int64_t b = 0; b < batch; ++b) {
      const auto qkv_b = qkv[b];
      for (int64_t hd = 0; hd < heads; ++hd) {
        const auto q = qkv_b.narrow(1, hd * kHeadDim, kHeadDim);
        const auto k = qkv_b.narrow(1, d + hd * kHeadDim, kHeadDim);
        const auto v = qkv_b.narrow(1, 2 * d + hd * kHeadDim, kHeadDim);
        at::mm_out(scores, q, k.t());
        scores.mul_(scale);
        at::softmax_out(probs, scores, -1);
        if (options.attention && i == depth - 1) cls_attention[b][hd].copy_(probs[0].narrow(0, 1, tokens));
        context[b].narrow(1, hd * kHeadDim, kHeadDim).copy_(at::mm(probs, v));
      }
    }
    x.add_(linear(context.view({batch * t1, d}), blk.proj_w, blk.proj_b).view({batch, t1, d}));
    const auto h2 = at::layer_norm(x, {d}, blk.norm2_w, blk.norm2_b, kLayerNormEps);
    const auto hidden = at::gelu(linear(h2.view({batch * t1, d}), blk.fc1_w, blk.fc1_b));
    x.add_(linear(hidden, blk.fc2_w, blk.fc2_b).view({batch, t1, d}));
    if (i == layer && !qkv_facet) out.facet = x.narrow(1, 1, tokens).reshape({batch, gh, gw, d}).clone();
  }
  if (options.attention) out.cls_attention = cls_attention.view({batch, heads, gh, gw});
  return out;
}

at::Tensor imagenet_normalize(const at::Tensor& rgb) {
  if (rgb.dim() != 4 || rgb.size(1) != 3)
    throw std::invalid_argument("imagenet_normalize: expected (B, 3, H, W), got " + shape_string(rgb.sizes()));
  const auto opts = rgb.options();
  const auto mean = at::tensor({0.485, 0.456, 0.406}, opts).view({1, 3, 1, 1});
  const auto std = at::tensor({0.229, 0.224, 0.225}, opts).view({1, 3, 1, 1});
  return (rgb - mean) / std;
}

ImageFeatures extract_image(const DinoVit& vit, const at::Tensor& rgb, const ExtractOptions& options,
                            const std::vector<int64_t>& heads, int64_t resize) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != at::kByte)
    throw std::invalid_argument("extract_image: expected an (H, W, 3) uint8 RGB image, got " +
                                shape_string(rgb.sizes()));
  c10::InferenceMode guard;
  auto image = rgb.permute({2, 0, 1}).unsqueeze(0).to(vit.device()).to(vit.dtype()) / 255.0;
  if (resize > 0 && (resize != rgb.size(0) || resize != rgb.size(1)))
    image = at::upsample_bilinear2d(image, {resize, resize}, false);
  ExtractOptions o = options;
  o.attention = true;
  const auto out = vit.extract(imagenet_normalize(image), o);
  return {out.facet[0].cpu().contiguous(), cls_saliency(out.cls_attention, heads)[0].cpu().contiguous()};
}

at::Tensor cls_saliency(const at::Tensor& cls_attention, const std::vector<int64_t>& heads) {
  if (cls_attention.dim() != 4)
    throw std::invalid_argument("cls_saliency: expected (B, heads, gh, gw), got " +
                                shape_string(cls_attention.sizes()));
  std::vector<at::Tensor> picked;
  for (const auto h : heads) {
    if (h < 0 || h >= cls_attention.size(1))
      throw std::invalid_argument("cls_saliency: head " + std::to_string(h) + " of a network with " +
                                  std::to_string(cls_attention.size(1)) + " heads");
    picked.push_back(cls_attention.select(1, h));
  }
  if (picked.empty()) throw std::invalid_argument("cls_saliency: no heads given");
  const auto mean = at::stack(picked, 1).mean(1);  // (B, gh, gw)
  const auto flat = mean.flatten(1);
  const auto lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(mean);
}

std::optional<SaliencyBox> saliency_box(const at::Tensor& saliency, double threshold, int64_t patch, int64_t stride,
                                        int64_t input_h, int64_t input_w, int64_t image_h, int64_t image_w) {
  if (saliency.dim() != 2)
    throw std::invalid_argument("saliency_box: expected (gh, gw), got " + shape_string(saliency.sizes()));
  if (patch < 1 || stride < 1 || input_h < 1 || input_w < 1 || image_h < 1 || image_w < 1)
    throw std::invalid_argument("saliency_box: patch, stride and sizes must be positive");
  const auto sal = saliency.to(at::kDouble).cpu().contiguous();
  const int64_t gh = sal.size(0), gw = sal.size(1);
  const double* v = sal.data_ptr<double>();
  std::vector<int64_t> group(static_cast<size_t>(gh * gw), -1);
  struct Group {
    int64_t count = 0, r0 = 0, r1 = 0, c0 = 0, c1 = 0;
    double sum = 0;
  };
  std::optional<Group> best;
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < gh * gw; ++start) {
    if (group[static_cast<size_t>(start)] >= 0 || !(v[start] >= threshold)) continue;
    Group g{0, start / gw, start / gw, start % gw, start % gw, 0};
    group[static_cast<size_t>(start)] = start;
    stack.assign(1, start);
    while (!stack.empty()) {
      const int64_t at = stack.back();
      stack.pop_back();
      const int64_t r = at / gw, c = at % gw;
      ++g.count;
      g.sum += v[at];
      g.r0 = std::min(g.r0, r), g.r1 = std::max(g.r1, r), g.c0 = std::min(g.c0, c), g.c1 = std::max(g.c1, c);
      const int64_t next[4][2] = {{r - 1, c}, {r + 1, c}, {r, c - 1}, {r, c + 1}};
      for (const auto& n : next) {
        if (n[0] < 0 || n[0] >= gh || n[1] < 0 || n[1] >= gw) continue;
        const int64_t i = n[0] * gw + n[1];
        if (group[static_cast<size_t>(i)] >= 0 || !(v[i] >= threshold)) continue;
        group[static_cast<size_t>(i)] = start;
        stack.push_back(i);
      }
    }
    if (!best || g.count > best->count || (g.count == best->count && g.sum > best->sum)) best = g;
  }
  if (!best) return std::nullopt;
  const double sx = static_cast<double>(image_w) / static_cast<double>(input_w);
  const double sy = static_cast<double>(image_h) / static_cast<double>(input_h);
  SaliencyBox box;
  box.left = static_cast<double>(best->c0 * stride) * sx;
  box.top = static_cast<double>(best->r0 * stride) * sy;
  box.width = static_cast<double>(best->c1 * stride + patch) * sx - box.left;
  box.height = static_cast<double>(best->r1 * stride + patch) * sy - box.top;
  box.patches = best->count;
  return box;
}

}  // namespace lepard::features
