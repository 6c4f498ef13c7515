// The viewpoint search (train/viewpoint.h): quaternion products compose rotations and the
// conjugate inverts them; the search finds which way the animal of a constructed scene faces;
// the starting layout is the widest image's. The decoded camera with a chosen turn is in
// tests/train/test_model.cpp.
#include <lepard/core/camera.h>
#include <lepard/core/rotation.h>
#include <lepard/train/viewpoint.h>

#include <ATen/ATen.h>

#include <gtest/gtest.h>

#include <cmath>

namespace lepard::train {
namespace {

const auto kDouble = at::TensorOptions().dtype(at::kDouble);

TEST(Viewpoint, QuaternionProductComposesRotations) {
  at::manual_seed(3);
  const auto a = at::randn({5, 4}, kDouble), b = at::randn({5, 4}, kDouble);
  const auto lhs = core::quaternion_to_matrix(core::quaternion_multiply(a, b));
  const auto rhs = core::quaternion_to_matrix(a).matmul(core::quaternion_to_matrix(b));
  EXPECT_LT((lhs - rhs).abs().max().item<double>(), 1e-12);
  // The conjugate is the inverse rotation: R(conj a) = R(a)^T (quaternion_to_matrix normalises).
  const auto inverse = core::quaternion_to_matrix(core::quaternion_conjugate(a));
  EXPECT_LT((inverse - core::quaternion_to_matrix(a).transpose(-1, -2)).abs().max().item<double>(), 1e-12);
  // A yaw quaternion turns about y: x goes to -z for a quarter turn (R_y = [[c, 0, s], [0, 1, 0], [-s, 0, c]]).
  const auto x = at::tensor({1.0, 0.0, 0.0}, kDouble);
  const auto turned = core::rotate_points(core::yaw_quaternion(at::tensor(M_PI / 2, kDouble)), x);
  EXPECT_LT((turned - at::tensor({0.0, 0.0, -1.0}, kDouble)).abs().max().item<double>(), 1e-12);
}

// Paint a disc of radius r pixels at normalised point (x, y) with `label`.
void disc(at::Tensor& labels, int64_t image, double x, double y, double r, int64_t label) {
  const int64_t h = labels.size(1), w = labels.size(2);
  auto acc = labels.accessor<int64_t, 3>();
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const double px = (2.0 * j + 1 - w) / w, py = (2.0 * i + 1 - h) / h;
      if (std::hypot((px - x) * w / 2, (py - y) * h / 2) <= r) acc[image][i][j] = label;
    }
}

TEST(Viewpoint, SearchFindsWhichWayTheAnimalFaces) {
  // A layout of four parts: a head and a tail cluster, and two legs sharing a third cluster.
  // The parts have depth, which the search must ignore: the network's parts for an animal
  // facing the other way are a mirror image (x to -x) that keeps the depths.
  const auto layout =
      at::tensor({0.6, -0.3, 0.3, -0.6, -0.2, 0.25, 0.3, 0.4, 0.35, -0.3, 0.4, -0.35}, kDouble).view({4, 3});
  auto own = at::zeros({4, 3}, kDouble);
  own[0][0] = own[1][1] = own[2][2] = own[3][2] = 1.0;
  const int64_t b = 3, size = 96;
  core::Camera cam;
  cam.rotation = at::tensor({1.0, 0.0, 0.0, 0.0}, kDouble).repeat({b, 1});
  cam.translation = at::tensor({0.0, 0.0, 2.5}, kDouble).repeat({b, 1});
  cam.focal = 2.0;
  const auto mirror = at::tensor({-1.0, 1.0, 1.0}, kDouble);
  // Image 0: the layout; image 1: its mirror image, depths kept; image 2: the layout turned
  // half round in 3D.
  const std::vector<at::Tensor> scenes = {layout, layout * mirror,
                                          core::rotate_points(core::yaw_quaternion(at::tensor(M_PI, kDouble)), layout)};
  const std::vector<double> truth = {0.0, 180.0, 180.0};
  auto labels = at::zeros({b, size, size}, at::kLong);
  for (int64_t i = 0; i < b; ++i) {
    const auto xy = core::perspective_project(scenes[i] + at::tensor({0.0, 0.0, 2.5}, kDouble), 2.0);
    for (int64_t p = 0; p < 4; ++p)
      disc(labels, i, xy[p][0].item<double>(), xy[p][1].item<double>(), 3.0, p < 2 ? p + 1 : 3);
  }
  // The image's own predicted centres (here the scenes) place the animal in the picture.
  const auto anchor = core::perspective_project(at::stack(scenes) + at::tensor({0.0, 0.0, 2.5}, kDouble), 2.0).mean(1);
  const auto found = search_yaw(cam, layout, anchor, own, labels, 2);
  ASSERT_EQ(found.cost.sizes(), at::IntArrayRef({b, 2}));
  for (int64_t i = 0; i < b; ++i)
    EXPECT_EQ(found.best[i].item<int64_t>(), truth[i] == 0.0 ? 0 : 1) << "image " << i << ": costs " << found.cost[i];
  // Clear decisions: the wrong way costs several times the right one.
  EXPECT_LT(found.cost[0][0].item<double>() * 4, found.cost[0][1].item<double>());
  EXPECT_LT(found.cost[1][1].item<double>() * 4, found.cost[1][0].item<double>());
  // Twelve hypotheses: the half turn is hypothesis 6 and still the best for the mirror image.
  const auto twelve = search_yaw(cam, layout, anchor, own, labels, 12);
  EXPECT_EQ(twelve.best[1].item<int64_t>(), 6) << twelve.cost[1];
}

TEST(Viewpoint, TheSearchOverridesTheHeadOnlyWhereClearlyBetter) {
  YawSearch search;
  search.cost = at::tensor({1.0, 0.5, 1.0, 0.9, 1.0, 2.0}, kDouble).view({3, 2});
  search.best = search.cost.argmin(1);
  const auto own = at::tensor({0, 0, 1}, at::kLong);
  // keep 0.8: image 0 turns (0.5 < 0.8), image 1 keeps the head's 0 (0.9 is not < 0.8), image
  // 2 turns back to 0 (1.0 < 1.6).
  EXPECT_TRUE(choose_view(search, own, 0.8).equal(at::tensor({1, 0, 0}, at::kLong)));
  EXPECT_TRUE(choose_view(search, own, 1.0).equal(search.best));
}

TEST(Viewpoint, TheStartingLayoutIsTheWidestImagesCentres) {
  auto centres = at::zeros({3, 2, 3}, kDouble);
  centres[0][1][1] = 2.0;  // apart along the vertical only: no spread across it
  centres[1][1][0] = 0.5;
  centres[2][1][2] = 0.8;  // the widest, in depth
  EXPECT_TRUE(widest_layout(centres).equal(centres[2]));
}

}  // namespace
}  // namespace lepard::train
