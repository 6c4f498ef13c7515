#pragma once
// The DINO ViT (facebookresearch/dino) for feature extraction: ViT-S and ViT-B, patch 8
// and 16, loaded directly from the released checkpoints. Written with ATen operations
// (no torch::nn) and for inference only: attention runs one head at a time through
// plain matrix products, so it never holds more than one (T x T) score matrix and uses
// the BLAS at full speed.
//
// Architecture (exactly DINO's): patch_embed.proj Conv2d(3, D, p, stride p) with bias;
// a CLS token is prepended and pos_embed added; pre-norm blocks x += proj(attention(
// norm1(x))), x += fc2(GELU_erf(fc1(norm2(x)))); qkv rows [q | k | v], each head-major,
// head_dim 64, scale 1/8; every LayerNorm has eps 1e-6. A stride s below the patch (dino-
// vit-features) runs the patch convolution with stride s: the token grid is
// 1 + (H - p) / s by 1 + (W - p) / s, and the position embedding is resized bicubically
// with scale factors (grid + 0.1) / sqrt(N) unless the grid is the native one.

#include <lepard/io/checkpoint.h>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lepard::features {

// The weight-file readers live in io (lepard/io/checkpoint.h); the ViT's API names them.
using io::CheckpointError;
using io::load_state_dict;
using io::StateDict;

// What a block can give: its attention's key, query or value (heads concatenated,
// head-major), or its output token.
enum class Facet { Key, Query, Value, Token };
Facet parse_facet(const std::string& name);  // "key", "query", "value", "token"
std::string to_string(Facet facet);

// Inferred from the tensor shapes: dim from cls_token, patch from the patch
// convolution, depth from the blocks, heads = dim / 64 (DINO's ViT-S 6, ViT-B 12),
// pos_grid = sqrt(N) of the position embedding (224 / patch for the released files).
struct VitArch {
  int64_t dim = 0;
  int64_t depth = 0;
  int64_t heads = 0;
  int64_t patch = 0;
  int64_t pos_grid = 0;
  std::string name() const;  // "ViT-S/8", "ViT-B/16", or "ViT(dim 192)/16"
};

struct ExtractOptions {
  Facet facet = Facet::Key;
  int64_t layer = -1;     // block index; negative counts from the end (-1 = last)
  int64_t stride = 0;     // 0 = the patch size; must divide the patch size
  bool attention = true;  // also return the last block's CLS attention
};

struct VitFeatures {
  at::Tensor facet;          // (B, gh, gw, C): C = dim, CLS dropped
  at::Tensor cls_attention;  // (B, heads, gh, gw): last block, CLS -> patches (if asked)
};

class DinoVit {
 public:
  // Builds the network from a state dict in DINO's (= timm's) key layout or the Hugging
  // Face transformers layout (embeddings.*, encoder.layer.{i}.*, q/k/v split), after any
  // prefix: "teacher.backbone." and "module." nestings of full checkpoints, "vit.".
  // Where a file holds several networks (student and teacher) the teacher is used, as
  // DINO evaluates it. Throws CheckpointError naming `source` and the key that is
  // missing or misshapen (with the shape expected).
  DinoVit(const StateDict& weights, const std::string& source);

  // Reads a torch.save or safetensors file (format from its first bytes).
  static DinoVit load(const std::filesystem::path& path);

  const VitArch& arch() const { return arch_; }
  // Which key prefix and layout the weights were found under ("DINO", "Hugging Face").
  const std::string& layout() const { return layout_; }

  // Moves the weights (float32 by default; float64 for tests).
  void to(c10::Device device, c10::ScalarType dtype = c10::ScalarType::Float);
  c10::Device device() const;
  c10::ScalarType dtype() const;

  // images: (B, 3, H, W) already normalised (imagenet_normalize), on the weights' device,
  // H and W at least the patch size. Runs the blocks needed and no more.
  VitFeatures extract(const at::Tensor& images, const ExtractOptions& options = {}) const;

  // The weights under DINO's names, in the order of the released files.
  StateDict state_dict() const;

 private:
  struct Block {
    at::Tensor norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b;
    at::Tensor norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  at::Tensor positions(int64_t gh, int64_t gw) const;
  VitArch arch_;
  std::string layout_;
  at::Tensor cls_token_, pos_embed_, patch_w_, patch_b_, norm_w_, norm_b_;
  std::vector<Block> blocks_;
};

// (B, 3, H, W) RGB in [0, 1] -> ImageNet normalisation (mean 0.485 0.456 0.406, std 0.229
// 0.224 0.225), what DINO was trained on.
at::Tensor imagenet_normalize(const at::Tensor& rgb);

// One RGB image (H, W, 3) uint8 through the ViT: normalised, optionally resized to
// resize x resize (bilinear; 0 = its own size), the facet (gh, gw, C) and the saliency
// (gh, gw) of the given heads, both on the CPU.
struct ImageFeatures {
  at::Tensor facet;
  at::Tensor saliency;
};
ImageFeatures extract_image(const DinoVit& vit, const at::Tensor& rgb, const ExtractOptions& options,
                            const std::vector<int64_t>& heads = {0, 2, 4, 5}, int64_t resize = 0);

// Saliency from CLS attention (B, heads, gh, gw): the mean over `heads` (LASSIE and
// dino-vit-features use heads 0, 2, 4, 5 of the last block), min-max normalised per
// image to [0, 1]. Heads beyond the tensor's count are an error.
at::Tensor cls_saliency(const at::Tensor& cls_attention, const std::vector<int64_t>& heads = {0, 2, 4, 5});

// The object's box from a saliency map (gh, gw): around the largest 4-connected group of
// patches whose saliency is >= threshold (ties: the group with the highest saliency sum),
// in the pixels of the image_h x image_w original that was resized to input_h x input_w
// for a ViT with this patch size and token stride (token (i, j) covers input rows
// [i stride, i stride + patch) and columns [j stride, j stride + patch)). std::nullopt when
// no patch reaches the threshold. lepard-infer --crop saliency crops LASSIE's square around it.
struct SaliencyBox {
  double left = 0, top = 0, width = 0, height = 0;
  int64_t patches = 0;  // tokens in the chosen group
};
std::optional<SaliencyBox> saliency_box(const at::Tensor& saliency, double threshold, int64_t patch, int64_t stride,
                                        int64_t input_h, int64_t input_w, int64_t image_h, int64_t image_w);

}  // namespace lepard::features
