// The part template (model/canonical.h): on a constructed scene whose answer is known, it finds
// the parts that were turned end over end, in images of an animal facing either way, and
// reading them through the half-turn gives back the unturned parts.
#include <lepard/core/rotation.h>
#include <lepard/model/canonical.h>
#include <lepard/model/reconstruct.h>

#include "test_support.h"

#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <utility>
#include <vector>

namespace lepard::model {
namespace {

// Three parts seen from the front of the camera: a head at the left, a body along x, a leg
// hanging down (+z towards +y, down the image). Each image shows them as they are or turned
// half round the vertical (the animal facing the other way), and some parts turned half round
// their own x axis: for a part without tapering or bending the same surface, with its ends
// named the other way round.
struct Scene {
  Prediction prediction;
  std::set<std::pair<int64_t, int64_t>> turned;  // (image, part)
};

at::Tensor quat(double w, double x, double y, double z) { return at::tensor({w, x, y, z}, at::kDouble); }

Scene make_scene(const std::vector<bool>& facing_away, const std::set<std::pair<int64_t, int64_t>>& turned) {
  const double h = std::sqrt(0.5);
  const std::vector<at::Tensor> centres = {at::tensor({-0.7, -0.3, 0.1}, at::kDouble),
                                           at::tensor({0.0, 0.0, 0.0}, at::kDouble),
                                           at::tensor({0.35, 0.45, 0.1}, at::kDouble)};
  const std::vector<at::Tensor> rotations = {quat(0.9, 0.2, 0.3, 0.1) / std::sqrt(0.95),  // the head, tilted
                                             quat(h, 0.0, h, 0.0),                        // z -> x
                                             quat(h, -h, 0.0, 0.0)};                      // z -> y
  // Unequal axes, no tapering or bending: symmetric under the half-turn about x.
  const auto shape = at::tensor({0.3, 0.5, 0.4, 1.0, 0.8, 1.3, 0.0, 0.0, 0.0, 0.0, 0.0}, at::kDouble);
  const auto about_y = quat(0.0, 0.0, 1.0, 0.0), about_x = quat(0.0, 1.0, 0.0, 0.0);
  const auto camera = at::tensor({0.0, 0.0, 4.0}, at::kDouble);
  std::vector<at::Tensor> c_all, q_all;
  for (int64_t i = 0; i < static_cast<int64_t>(facing_away.size()); ++i) {
    std::vector<at::Tensor> c, q;
    for (int64_t k = 0; k < 3; ++k) {
      auto ck = centres[static_cast<size_t>(k)], qk = rotations[static_cast<size_t>(k)];
      if (facing_away[static_cast<size_t>(i)]) {
        ck = core::rotate_points(about_y, ck);
        qk = core::quaternion_multiply(about_y, qk);
      }
      if (turned.count({i, k})) qk = core::quaternion_multiply(qk, about_x);
      c.push_back(ck);
      q.push_back(qk);
    }
    c_all.push_back(at::stack(c));
    q_all.push_back(at::stack(q));
  }
  Scene s;
  const int64_t n = static_cast<int64_t>(facing_away.size());
  s.prediction.parts.center = at::stack(c_all);
  s.prediction.parts.rotation = at::stack(q_all);
  s.prediction.parts.shape = shape.expand({n, 3, 11}).clone();
  s.prediction.camera.rotation = quat(1.0, 0.0, 0.0, 0.0).expand({n, 4}).clone();
  s.prediction.camera.translation = camera.expand({n, 3}).clone();
  s.turned = turned;
  return s;
}

TEST(Canonical, TheTemplateFindsThePartsTurnedEndOverEndInEitherFacing) {
  const std::vector<bool> away = {false, true, false, true, true, false, false, true};
  const std::set<std::pair<int64_t, int64_t>> turned = {{1, 2}, {2, 0}, {4, 1}, {6, 2}};
  const auto grid = core::make_surface_grid(6, 8);
  const core::LocalFlowOptions flow;
  const auto scene = make_scene(away, turned);
  auto r = reconstruct(scene.prediction, grid, flow);
  const auto t = fit_part_template(r.image);
  // The facing: the images turned half round the vertical face the other way than the first.
  const auto g = part_image_geometry(r.image);
  const auto f = facing(g.centres, t.layout);
  for (size_t i = 0; i < away.size(); ++i)
    EXPECT_EQ(f[static_cast<int64_t>(i)].item<double>(), away[i] ? -1.0 : 1.0) << "image " << i;
  // The leg's +z points down the image in the template.
  EXPECT_GT(t.axes[2][1].item<double>(), 0.9);
  // Exactly the turned parts point against the template.
  const auto turns = part_turns(r.image, t);
  for (int64_t i = 0; i < static_cast<int64_t>(away.size()); ++i)
    for (int64_t k = 0; k < 3; ++k)
      EXPECT_EQ(turns[i][k].item<bool>(), turned.count({i, k}) == 1) << "image " << i << " part " << k;
  // Named as the template does, the scene is the one nobody turned, vertex for vertex.
  const auto plain = reconstruct(make_scene(away, {}).prediction, grid, flow);
  EXPECT_GT((r.world - plain.world).abs().max().item<double>(), 0.1);  // the turns did rename vertices
  const auto applied = canonicalize(r, t, grid);
  EXPECT_TRUE(applied.equal(turns));
  EXPECT_LT((r.world - plain.world).abs().max().item<double>(), 1e-9);
  EXPECT_LT((r.image - plain.image).abs().max().item<double>(), 1e-9);
  // The template with every axis reversed turns every part the other way.
  PartTemplate reversed{t.layout, -t.axes};
  EXPECT_TRUE(part_turns(plain.image, reversed).logical_not().equal(part_turns(plain.image, t)));
  // No template: nothing is renamed.
  auto again = reconstruct(scene.prediction, grid, flow);
  const auto before = again.image.clone();
  EXPECT_FALSE(canonicalize(again, PartTemplate{}, grid).defined());
  EXPECT_TRUE(again.image.equal(before));
}

TEST(Canonical, TurnPartsChecksItsShapes) {
  const auto grid = core::make_surface_grid(3, 5);
  const auto points = at::zeros({2, 4, grid.num_vertices(), 3});
  EXPECT_THROW(turn_parts(points, at::zeros({2, 3}, at::kBool), grid), c10::Error);
  EXPECT_THROW(turn_parts(points.narrow(2, 0, 5), at::zeros({2, 4}, at::kBool), grid), c10::Error);
}

}  // namespace
}  // namespace lepard::model
