#include <lepard/render/pictures.h>
#include <lepard/render/soft_rasterize.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <vector>

namespace lepard::render {

at::Tensor part_palette(int64_t n) {
  // Golden-angle hues at two saturation levels: neighbouring ids get distant colours.
  std::vector<uint8_t> rgb;
  for (int64_t k = 0; k < n; ++k) {
    const double h = std::fmod(k * 137.508, 360.0) / 60.0;
    const double s = (k / 8) % 2 == 0 ? 0.75 : 0.5, v = 0.95;
    const double c = v * s, x = c * (1 - std::abs(std::fmod(h, 2.0) - 1)), m = v - c;
    double r = 0, g = 0, b = 0;
    switch (static_cast<int>(h)) {
      case 0:
        r = c;
        g = x;
        break;
      case 1:
        r = x;
        g = c;
        break;
      case 2:
        g = c;
        b = x;
        break;
      case 3:
        g = x;
        b = c;
        break;
      case 4:
        r = x;
        b = c;
        break;
      default:
        r = c;
        b = x;
        break;
    }
    for (double ch : {r, g, b}) rgb.push_back(static_cast<uint8_t>(std::lround(255 * (ch + m))));
  }
  return at::tensor(std::vector<int64_t>(rgb.begin(), rgb.end()), at::kLong).view({n, 3}).to(at::kByte);
}

at::Tensor owned_cluster_palette(const at::Tensor& ownership) {
  TORCH_CHECK(ownership.dim() == 2, "owned_cluster_palette: expected (K, C) ownership, got ", ownership.sizes());
  const auto own = ownership.detach().cpu().to(at::kFloat);
  const int64_t k = own.size(0), c = own.size(1);
  const auto clusters = part_palette(c + 1);
  auto out = at::full({k, 3}, 128, at::kByte);
  // A part that owns several clusters: the mean of their colours.
  const auto owned = (own > 0.5).to(at::kFloat);                                  // (K, C)
  const auto mean = at::matmul(owned, clusters.narrow(0, 1, c).to(at::kFloat)) /  // (K, 3)
                    owned.sum(1, true).clamp_min(1.0);
  const auto owns = owned.sum(1) > 0;
  for (int64_t i = 0; i < k; ++i)
    if (owns[i].item<bool>()) out[i].copy_(mean[i].round().to(at::kByte));
  return out;
}

at::Tensor colorize_part_ids(const at::Tensor& part_id, const at::Tensor& palette) {
  TORCH_CHECK(part_id.dim() == 3 && part_id.scalar_type() == at::kLong, "colorize_part_ids: expected (B, H, W) int64");
  const auto ids = part_id.cpu();
  const int64_t n = std::max<int64_t>(1, ids.max().item<int64_t>() + 1);
  at::Tensor colours;
  if (palette.defined()) {
    TORCH_CHECK(
        palette.dim() == 2 && palette.size(1) == 3 && palette.scalar_type() == at::kByte && palette.size(0) >= n,
        "colorize_part_ids: the palette must be (K, 3) uint8 with a row for each of the ", n, " part ids, got ",
        palette.sizes());
    colours = palette.cpu();
  } else {
    colours = part_palette(n);
  }
  const auto table = at::cat({at::zeros({1, 3}, at::kByte), colours}, 0);  // row 0: background
  return table.index_select(0, (ids + 1).reshape({-1})).view({ids.size(0), ids.size(1), ids.size(2), 3});
}

at::Tensor overlay_part_ids(const at::Tensor& images, const at::Tensor& part_id, double alpha,
                            const at::Tensor& palette) {
  TORCH_CHECK(images.dim() == 4 && images.size(3) == 3 && images.scalar_type() == at::kByte,
              "overlay_part_ids: images must be (B, H, W, 3) uint8, got ", images.sizes(), " ", images.scalar_type());
  TORCH_CHECK(part_id.dim() == 3 && part_id.size(0) == images.size(0) && part_id.size(1) == images.size(1) &&
                  part_id.size(2) == images.size(2),
              "overlay_part_ids: part_id must be (B, H, W) matching images ", images.sizes(), ", got ",
              part_id.sizes());
  TORCH_CHECK(alpha >= 0.0 && alpha <= 1.0, "overlay_part_ids: alpha must be in [0, 1], got ", alpha);
  const auto img = images.cpu();
  const auto blended =
      (img.to(at::kFloat) * (1.0 - alpha) + colorize_part_ids(part_id, palette).to(at::kFloat) * alpha).to(at::kByte);
  return at::where((part_id.cpu() >= 0).unsqueeze(3), blended, img);
}

at::Tensor colorize_depth(const at::Tensor& depth) {
  TORCH_CHECK(depth.dim() == 3, "colorize_depth: expected (B, H, W)");
  const auto d = depth.detach().cpu().to(at::kDouble);
  std::vector<at::Tensor> out;
  for (int64_t b = 0; b < d.size(0); ++b) {
    const auto img = d[b];
    const auto fg = img > 0;
    at::Tensor shade = at::zeros_like(img);
    if (fg.any().item<bool>()) {
      const double lo = img.masked_select(fg).min().item<double>();
      const double hi = img.masked_select(fg).max().item<double>();
      const auto t = (hi > lo) ? (img - lo) / (hi - lo) : at::zeros_like(img);
      shade = at::where(fg, 255.0 - 200.0 * t, at::zeros_like(img));  // near 255, far 55
    }
    out.push_back(shade);
  }
  const auto grey = at::stack(out, 0).round().to(at::kByte);
  return at::stack({grey, grey, grey}, -1);
}

at::Tensor colorize_probability(const at::Tensor& prob) {
  TORCH_CHECK(prob.dim() == 3, "colorize_probability: expected (B, H, W)");
  const auto g = (prob.detach().cpu().to(at::kDouble).clamp(0, 1) * 255).round().to(at::kByte);
  return at::stack({g, g, g}, -1);
}

at::Tensor soft_part_colours(const at::Tensor& verts, const at::Tensor& faces, int64_t height, int64_t width,
                             double sigma) {
  TORCH_CHECK(verts.dim() == 4, "soft_part_colours: verts must be (B, K, V, 3)");
  const int64_t B = verts.size(0), K = verts.size(1);
  const auto colours = (part_palette(K).to(verts.scalar_type()) / 255.0).unsqueeze(0).expand({B, K, 3});
  SoftAttributeSettings s;
  s.raster.height = height;
  s.raster.width = width;
  s.raster.sigma = sigma;
  const auto image = soft_attributes(verts.detach(), faces, colours.contiguous(), at::Tensor(), s);  // (B, 3, H, W)
  return (image.permute({0, 2, 3, 1}).cpu() * 255).round().clamp(0, 255).to(at::kByte);
}

at::Tensor render_sheet(const at::Tensor& silhouettes, const at::Tensor& part_colours, const Fragments& fragments) {
  TORCH_CHECK(silhouettes.dim() == 4, "render_sheet: silhouettes must be (B, K, H, W)");
  const auto sil = silhouettes.detach().cpu().to(at::kDouble);
  const int64_t B = sil.size(0), H = sil.size(2), W = sil.size(3);
  TORCH_CHECK(fragments.part_id.size(1) == H && fragments.part_id.size(2) == W,
              "render_sheet: silhouettes and fragments differ in size");
  TORCH_CHECK(part_colours.dim() == 4 && part_colours.size(0) == B && part_colours.size(1) == H &&
                  part_colours.size(2) == W && part_colours.scalar_type() == at::kByte,
              "render_sheet: part_colours must be (B, H, W, 3) uint8");
  const std::vector<at::Tensor> rows = {colorize_probability(union_silhouette(sil)), part_colours.cpu(),
                                        colorize_part_ids(fragments.part_id), colorize_depth(fragments.depth)};
  const int64_t gap = 2;
  auto sheet = at::full({int64_t(rows.size()) * (H + gap) - gap, B * (W + gap) - gap, 3}, 255, at::kByte);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (int64_t b = 0; b < B; ++b) {
      sheet.narrow(0, int64_t(r) * (H + gap), H).narrow(1, b * (W + gap), W).copy_(rows[r][b]);
    }
  }
  return sheet;
}

}  // namespace lepard::render
