#include "soft_rasterize_kernel.h"

#include <lepard/render/soft_rasterize.h>

#include "finite.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/repeat_interleave.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <vector>

namespace lepard::render {

namespace {

void check_inputs(const at::Tensor& verts, const at::Tensor& faces, const SoftRasterSettings& s) {
  TORCH_CHECK(verts.defined() && verts.dim() == 4 && verts.size(3) == 3,
              "soft_silhouettes: verts must be (B, K, V, 3), got sizes ",
              verts.defined() ? verts.sizes() : at::IntArrayRef{});
  TORCH_CHECK(verts.is_floating_point(), "soft_silhouettes: verts must be floating point");
  TORCH_CHECK(faces.defined() && faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == at::kLong,
              "soft_silhouettes: faces must be (F, 3) int64");
  TORCH_CHECK(s.height > 0 && s.width > 0, "soft_silhouettes: image size must be positive, got ", s.height, " x ",
              s.width);
  TORCH_CHECK(s.sigma > 0, "soft_silhouettes: sigma must be positive, got ", s.sigma);
  TORCH_CHECK(s.eps > 0 && s.eps < 0.5, "soft_silhouettes: eps must be in (0, 0.5), got ", s.eps);
  TORCH_CHECK(s.tile_size > 0, "soft_silhouettes: tile_size must be positive, got ", s.tile_size);
  detail::check_finite(verts.detach(), "soft rasteriser", "verts");
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The hits a kernel's forward kept travel to its backward in the autograd context.
void save_hits(AutogradContext* ctx, const detail::SavedHits& hits) {
  if (!hits.records.defined()) return;
  ctx->saved_data["hit_records"] = hits.records;
  ctx->saved_data["hit_index"] = hits.index;
}

detail::SavedHits saved_hits(AutogradContext* ctx) {
  detail::SavedHits hits;
  if (ctx->saved_data.count("hit_records")) {
    hits.records = ctx->saved_data["hit_records"].toTensor();
    hits.index = ctx->saved_data["hit_index"].toTensor();
  }
  return hits;
}

// Whether a forward keeps its hits: only when a gradient can follow.
bool keep_hits(const SoftRasterSettings& s, const at::Tensor& a, const at::Tensor& b = at::Tensor()) {
  return s.keep_hits && at::GradMode::is_enabled() && (a.requires_grad() || (b.defined() && b.requires_grad()));
}

class SoftSilhouetteFunction : public torch::autograd::Function<SoftSilhouetteFunction> {
 public:
  // keep_hits: the forward keeps what it found at each pixel for the backward.
  static at::Tensor forward(AutogradContext* ctx, at::Tensor verts, at::Tensor faces, int64_t height, int64_t width,
                            double sigma, double eps, int64_t tile_size, bool binning, bool keep_hits) {
    const SoftRasterSettings s{height, width, sigma, eps, tile_size, binning};
    ctx->save_for_backward({verts, faces});
    ctx->saved_data["settings"] =
        std::vector<double>{double(height), double(width), sigma, eps, double(tile_size), binning ? 1.0 : 0.0};
    detail::SavedHits hits;
    auto out = detail::soft_silhouettes_forward_cpu(verts, faces, s, keep_hits ? &hits : nullptr);
    save_hits(ctx, hits);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto v = ctx->saved_data["settings"].toDoubleVector();
    const SoftRasterSettings s{int64_t(v[0]), int64_t(v[1]), v[2], v[3], int64_t(v[4]), v[5] != 0.0};
    variable_list out(9);
    const auto hits = saved_hits(ctx);
    if (grads[0].defined()) out[0] = detail::soft_silhouettes_backward_cpu(saved[0], saved[1], grads[0], s, &hits);
    return out;
  }
};

// Squared distance from points p (1, P, 2) to segments a -> b (F, 1, 2), (F, P).
at::Tensor segment_distance2(const at::Tensor& p, const at::Tensor& a, const at::Tensor& b) {
  const auto ab = b - a;
  const auto ap = p - a;
  const auto len2 = (ab * ab).sum(-1);
  const auto safe = at::where(len2 > 0, len2, at::ones_like(len2));
  const auto t = ((ap * ab).sum(-1) / safe).clamp(0.0, 1.0);
  const auto diff = ap - t.unsqueeze(-1) * ab;
  return (diff * diff).sum(-1);
}

// Edge function cross(b - a, p - a): (F, P).
at::Tensor edge_function(const at::Tensor& p, const at::Tensor& a, const at::Tensor& b) {
  const auto ab = b - a;
  const auto ap = p - a;
  return ab.select(-1, 0) * ap.select(-1, 1) - ab.select(-1, 1) * ap.select(-1, 0);
}

}  // namespace

at::Tensor pixel_centers(int64_t height, int64_t width, const at::Tensor& like) {
  const auto opt = like.options();
  const auto xs = (2 * at::arange(width, opt) + 1 - width) / static_cast<double>(width);
  const auto ys = (2 * at::arange(height, opt) + 1 - height) / static_cast<double>(height);
  return at::stack({xs.view({1, width}).expand({height, width}), ys.view({height, 1}).expand({height, width})}, -1)
      .reshape({height * width, 2});
}

at::Tensor soft_silhouettes_reference(const at::Tensor& verts, const at::Tensor& faces,
                                      const SoftRasterSettings& settings) {
  check_inputs(verts, faces, settings);
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces.size(0);
  const int64_t H = settings.height, W = settings.width;
  const auto p = pixel_centers(H, W, verts).unsqueeze(0);  // (1, P, 2)
  const double cutoff = settings.sigma * std::log(1.0 / settings.eps - 1.0);
  const auto xy = verts.narrow(-1, 0, 2).reshape({B * K, V, 2});
  const auto idx = faces.to(verts.device()).reshape({-1});
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < B * K; ++i) {  // part by part: (F, P) intermediates, not (B K F P)
    const auto tri = xy[i].index_select(0, idx).view({F, 3, 2}).unsqueeze(2);  // (F, 3, 1, 2)
    const auto a = tri.select(1, 0), b = tri.select(1, 1), c = tri.select(1, 2);
    const auto d2 = std::get<0>(
        at::stack({segment_distance2(p, a, b), segment_distance2(p, b, c), segment_distance2(p, c, a)}, 0).min(0));
    const auto e0 = edge_function(p, a, b), e1 = edge_function(p, b, c), e2 = edge_function(p, c, a);
    const auto area = edge_function(c, a, b);  // (F, 1): twice the signed area
    const auto inside = (((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))) & (area != 0);
    auto D = (at::where(inside, d2, -d2) / settings.sigma).sigmoid();
    D = at::where(inside.logical_not() & (d2 >= cutoff), at::zeros_like(D), D);
    parts.push_back(1 - (1 - D).prod(0));
  }
  return at::stack(parts, 0).view({B, K, H, W});
}

namespace {

void check_attribute_inputs(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& attributes,
                            const at::Tensor& background, const SoftAttributeSettings& s) {
  check_inputs(verts, faces, s.raster);
  TORCH_CHECK(attributes.defined() && attributes.dim() == 3 && attributes.size(0) == verts.size(0) &&
                  attributes.size(1) == verts.size(1),
              "soft_attributes: attributes must be (B, K, C) with B = ", verts.size(0), ", K = ", verts.size(1),
              ", got sizes ", attributes.defined() ? attributes.sizes() : at::IntArrayRef{});
  TORCH_CHECK(attributes.scalar_type() == verts.scalar_type(), "soft_attributes: attributes must have verts' dtype");
  detail::check_finite(attributes.detach(), "soft_attributes", "attributes");
  TORCH_CHECK(!background.defined() || (background.dim() == 1 && background.size(0) == attributes.size(2)),
              "soft_attributes: background must be (C) with C = ", attributes.size(2));
  TORCH_CHECK(s.gamma > 0, "soft_attributes: gamma must be positive, got ", s.gamma);
  TORCH_CHECK(s.zfar > s.znear, "soft_attributes: zfar must exceed znear");
}

std::vector<double> pack(const SoftAttributeSettings& s) {
  const auto& r = s.raster;
  return {double(r.height),      double(r.width), r.sigma, r.eps,  double(r.tile_size),
          r.binning ? 1.0 : 0.0, s.gamma,         s.znear, s.zfar, s.background_depth};
}

SoftAttributeSettings unpack(const std::vector<double>& v) {
  SoftAttributeSettings s;
  s.raster = {int64_t(v[0]), int64_t(v[1]), v[2], v[3], int64_t(v[4]), v[5] != 0.0};
  s.gamma = v[6];
  s.znear = v[7];
  s.zfar = v[8];
  s.background_depth = v[9];
  return s;
}

class SoftAttributeFunction : public torch::autograd::Function<SoftAttributeFunction> {
 public:
  // keep_hits: the forward keeps what it found at each pixel for the backward (when a
  // gradient will be asked for), which then skips evaluating every face again.
  static at::Tensor forward(AutogradContext* ctx, at::Tensor verts, at::Tensor faces, at::Tensor attributes,
                            at::Tensor background, std::vector<double> settings, bool keep_hits) {
    ctx->save_for_backward({verts, faces, attributes, background});
    ctx->saved_data["settings"] = settings;
    const auto bg = background.numel() == 0 ? at::Tensor() : background;
    detail::SavedHits hits;
    auto image = detail::soft_attributes_cpu(verts, faces, attributes, bg, unpack(settings), at::Tensor(), true,
                                             keep_hits ? &hits : nullptr)
                     .first;
    save_hits(ctx, hits);
    return image;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    variable_list out(6);
    if (!grads[0].defined()) return out;
    const auto bg = saved[3].numel() == 0 ? at::Tensor() : saved[3];
    auto hits = saved_hits(ctx);
    auto g = detail::soft_attributes_cpu(saved[0], saved[1], saved[2], bg,
                                         unpack(ctx->saved_data["settings"].toDoubleVector()), grads[0],
                                         ctx->needs_input_grad(2), &hits);
    out[0] = g.first;
    out[2] = g.second;
    return out;
  }
};

}  // namespace

at::Tensor soft_attributes(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& attributes,
                           const at::Tensor& background, const SoftAttributeSettings& settings, core::Backend backend) {
  check_attribute_inputs(verts, faces, attributes, background, settings);
  const bool on_cpu = verts.device().is_cpu();
  TORCH_CHECK(backend != core::Backend::Kernel || on_cpu, "soft_attributes: Backend::Kernel needs CPU tensors");
  if (backend == core::Backend::TensorOps || (backend == core::Backend::Auto && !on_cpu)) {
    return soft_attributes_reference(verts, faces, attributes, background, settings);
  }
  // The background is not differentiated; an absent one travels as an empty (0-element) tensor.
  const auto bg =
      background.defined() ? background.detach().to(verts.options()).contiguous() : at::zeros({0}, verts.options());
  return SoftAttributeFunction::apply(verts.contiguous(), faces.contiguous(), attributes.contiguous(), bg,
                                      pack(settings), keep_hits(settings.raster, verts, attributes));
}

at::Tensor soft_attributes_reference(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& attributes,
                                     const at::Tensor& background, const SoftAttributeSettings& settings) {
  check_attribute_inputs(verts, faces, attributes, background, settings);
  const auto& rs = settings.raster;
  const int64_t B = verts.size(0), K = verts.size(1), V = verts.size(2), F = faces.size(0), C = attributes.size(2);
  const int64_t H = rs.height, W = rs.width;
  const auto p = pixel_centers(H, W, verts).unsqueeze(0);  // (1, P, 2)
  const double cutoff = rs.sigma * std::log(1.0 / rs.eps - 1.0);
  // Every part's faces indexing the image's K * V vertices.
  const auto offsets = (at::arange(K, faces.options().device(verts.device())) * V).view({K, 1, 1});
  const auto idx = (faces.to(verts.device()).unsqueeze(0) + offsets).reshape({-1});
  const auto bg = background.defined() ? background.to(verts.options()) : at::zeros({C}, verts.options());
  std::vector<at::Tensor> images;
  for (int64_t b = 0; b < B; ++b) {
    const auto tri = verts[b].reshape({K * V, 3}).index_select(0, idx).view({K * F, 3, 3});
    const auto xy = tri.narrow(-1, 0, 2).unsqueeze(2);  // (KF, 3, 1, 2)
    const auto a = xy.select(1, 0), bb = xy.select(1, 1), c = xy.select(1, 2);
    const auto z = tri.select(-1, 2);  // (KF, 3)
    const auto d2 = std::get<0>(
        at::stack({segment_distance2(p, a, bb), segment_distance2(p, bb, c), segment_distance2(p, c, a)}, 0).min(0));
    const auto ea = edge_function(p, bb, c), eb = edge_function(p, c, a), ec = edge_function(p, a, bb);
    const auto area = edge_function(c, a, bb);  // (KF, 1)
    const auto has_area = area != 0;
    const auto inside = (((ea >= 0) & (eb >= 0) & (ec >= 0)) | ((ea <= 0) & (eb <= 0) & (ec <= 0))) & has_area;
    const auto D = (at::where(inside, d2, -d2) / rs.sigma).sigmoid();
    const auto valid = has_area & (inside | (d2 < cutoff));
    // Clamped, renormalised screen barycentrics, then perspective-correct depth.
    const auto safe_area = at::where(has_area, area, at::ones_like(area));
    const auto l = at::stack({ea, eb, ec}, 0) / safe_area;  // (3, KF, P)
    const auto m = l.clamp_min(0);
    const auto m_sum = m.sum(0, true);
    const auto n = m / at::where(m_sum > 0, m_sum, at::ones_like(m_sum));  // m_sum >= 1/3 unless degenerate
    const auto inv = (n / z.t().unsqueeze(-1)).sum(0);                     // (KF, P)
    const auto zn = (settings.zfar - 1 / inv) / (settings.zfar - settings.znear);
    const auto zn_valid = at::where(valid, zn, at::full_like(zn, settings.background_depth));
    const auto zmax = std::get<0>(zn_valid.max(0)).clamp_min(settings.background_depth).detach();  // (P)
    const auto num = at::where(valid, D * ((zn - zmax) / settings.gamma).exp(), at::zeros_like(D));
    const auto delta = ((settings.background_depth - zmax) / settings.gamma).exp();  // (P)
    const auto face_attr = attributes[b].repeat_interleave(F, 0);                    // (KF, C)
    const auto image = (num.t().matmul(face_attr) + delta.unsqueeze(1) * bg) / (num.sum(0) + delta).unsqueeze(1);
    images.push_back(image.t().reshape({C, H, W}));
  }
  return at::stack(images, 0);
}

at::Tensor soft_silhouettes(const at::Tensor& verts, const at::Tensor& faces, const SoftRasterSettings& settings,
                            core::Backend backend) {
  check_inputs(verts, faces, settings);
  const bool on_cpu = verts.device().is_cpu();
  TORCH_CHECK(backend != core::Backend::Kernel || on_cpu, "soft_silhouettes: Backend::Kernel needs CPU tensors");
  if (backend == core::Backend::TensorOps || (backend == core::Backend::Auto && !on_cpu)) {
    return soft_silhouettes_reference(verts, faces, settings);
  }
  return SoftSilhouetteFunction::apply(verts.contiguous(), faces.contiguous(), settings.height, settings.width,
                                       settings.sigma, settings.eps, settings.tile_size, settings.binning,
                                       keep_hits(settings, verts));
}

at::Tensor union_silhouette(const at::Tensor& part_silhouettes) {
  TORCH_CHECK(part_silhouettes.dim() == 4, "union_silhouette: expected (B, K, H, W), got sizes ",
              part_silhouettes.sizes());
  return 1 - (1 - part_silhouettes).prod(1);
}

}  // namespace lepard::render
