#include <lepard/model/canonical.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/atan2.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace lepard::model {

namespace {
void check_image(const at::Tensor& image, const char* where) {
  TORCH_CHECK(image.dim() == 4 && image.size(-1) >= 2 && image.size(2) >= 2, where,
              ": reconstructions must be (B, K, V, 3), got ", image.sizes());
}

// (B, K, 2) directions with x multiplied by the facing (B).
at::Tensor mirror(const at::Tensor& v, const at::Tensor& facing) {
  return at::stack({v.select(-1, 0) * facing.unsqueeze(-1), v.select(-1, 1)}, -1);
}
}  // namespace

PartImageGeometry part_image_geometry(const at::Tensor& image) {
  check_image(image, "part_image_geometry");
  const auto xy = image.narrow(-1, 0, 2).to(at::kDouble);
  PartImageGeometry g;
  const auto centres = xy.mean(2);                          // (B, K, 2)
  g.centres = centres - centres.mean(1, /*keepdim=*/true);  // about the parts' mean
  g.axes = xy.select(2, xy.size(2) - 1) - xy.select(2, 0);
  return g;
}

at::Tensor facing(const at::Tensor& centres, const at::Tensor& layout) {
  const auto score = (centres.select(-1, 0) * layout.select(-1, 0).to(centres.options())).sum(-1);
  return at::where(score < 0, -at::ones_like(score), at::ones_like(score));
}

PartTemplate fit_part_template(const at::Tensor& image) {
  check_image(image, "fit_part_template");
  TORCH_CHECK(image.size(0) >= 1, "fit_part_template: no reconstructions");
  const auto g = part_image_geometry(image.cpu());
  auto layout = g.centres[0].clone();
  auto f = facing(g.centres, layout);
  for (int round = 0; round < 50; ++round) {
    layout = mirror(g.centres, f).mean(0);
    const auto next = facing(g.centres, layout);
    if (next.equal(f)) break;
    f = next;
  }
  // Each part's principal direction of the mirrored axes: the leading eigenvector of the 2x2
  // second moment [[a, b], [b, c]], at angle atan2(2 b, a - c) / 2.
  const auto d = mirror(g.axes, f);  // (N, K, 2)
  const auto dx = d.select(-1, 0), dy = d.select(-1, 1);
  const auto a = (dx * dx).sum(0), b = (dx * dy).sum(0), c = (dy * dy).sum(0);
  const auto angle = at::atan2(2 * b, a - c) / 2;
  auto axes = at::stack({angle.cos(), angle.sin()}, -1);  // (K, 2)
  // Its sign: the one most images agree with (the summed projections on a tie).
  const auto dots = (d * axes.unsqueeze(0)).sum(-1);  // (N, K)
  const auto votes = dots.sign().sum(0), total = dots.sum(0);
  const auto flip = (votes < 0) | ((votes == 0) & (total < 0));
  axes = at::where(flip.unsqueeze(-1), -axes, axes);
  return {layout, axes};
}

PartTemplate fit_part_template(LepardNet& net, const at::Tensor& images, const at::Tensor& labels,
                               const core::SurfaceGrid& grid, int64_t batch) {
  TORCH_CHECK(images.size(0) >= 1 && batch >= 1, "fit_part_template: no images");
  const auto keep = net->part_template();
  net->set_part_template({});  // the network's own naming, not an earlier template's
  std::vector<at::Tensor> parts;
  const int64_t count = std::min(kPartTemplateImages, images.size(0));
  for (int64_t b = 0; b < count; b += batch) {
    const int64_t n = std::min(batch, count - b);
    parts.push_back(
        project_images(net, images.narrow(0, b, n), grid, labels.defined() ? labels.narrow(0, b, n) : labels).cpu());
  }
  net->set_part_template(keep);
  return fit_part_template(at::cat(parts));
}

at::Tensor part_turns(const at::Tensor& image, const PartTemplate& t) {
  TORCH_CHECK(t.defined(), "part_turns: undefined template");
  const auto g = part_image_geometry(image);
  TORCH_CHECK(t.layout.size(0) == g.centres.size(1), "part_turns: template of ", t.layout.size(0),
              " parts for reconstructions of ", g.centres.size(1));
  const auto f = facing(g.centres, t.layout);
  const auto d = mirror(g.axes, f);
  return (d * t.axes.to(d.options()).unsqueeze(0)).sum(-1) < 0;
}

at::Tensor turn_parts(const at::Tensor& points, const at::Tensor& turns, const core::SurfaceGrid& grid) {
  TORCH_CHECK(points.dim() == 4 && points.size(2) == grid.num_vertices(), "turn_parts: points must be (B, K, ",
              grid.num_vertices(), ", C), got ", points.sizes());
  TORCH_CHECK(turns.sizes() == points.sizes().slice(0, 2), "turn_parts: turns must be (B, K), got ", turns.sizes());
  const auto turned = points.index_select(2, core::half_turn_permutation(grid).to(points.device()));
  return at::where(turns.to(points.device()).unsqueeze(-1).unsqueeze(-1), turned, points);
}

at::Tensor canonicalize(Reconstruction& r, const PartTemplate& t, const core::SurfaceGrid& grid) {
  if (!t.defined()) return {};
  const auto turns = part_turns(r.image, t);
  r.image = turn_parts(r.image, turns, grid);
  if (r.world.defined()) r.world = turn_parts(r.world, turns, grid);
  if (r.local.defined()) r.local = turn_parts(r.local, turns, grid);
  return turns;
}

}  // namespace lepard::model
