// The network: output shapes and bounds, and torchvision ResNet weights (written by the real
// torch.save) loading into the encoder so that it computes what PyTorch computes.
#include <lepard/io/npy.h>
#include <lepard/model/model.h>
#include <lepard/model/reconstruct.h>
#include <lepard/core/rotation.h>
#include <lepard/render/hard_rasterize.h>

#include <torch/csrc/autograd/autograd.h>

#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

namespace lepard::model {
namespace {

namespace fs = std::filesystem;

// A small network with four parts on a 32-pixel input and no local deformation.
ModelOptions small_rigid_options() {
  ModelOptions o;
  o.parts = 4;
  o.clusters = 4;
  o.image_size = 32;
  o.encoder_depth = 2;
  o.encoder_width = 8;
  o.hidden = 16;
  o.local_deformation = false;
  return o;
}

TEST(Model, OutputsHaveTheirShapesAndBounds) {
  ModelOptions o;
  o.parts = 5;
  o.clusters = 4;
  o.image_size = 64;
  o.encoder_depth = 3;
  o.encoder_width = 8;
  o.hidden = 32;
  o.flow_grid = 3;
  LepardNet net(o);
  const auto crops = at::randint(0, 256, {3, 96, 96, 3}, at::kByte);
  const auto images = normalize_images(crops, 64);
  ASSERT_EQ(images.sizes(), (at::IntArrayRef{3, 3, 64, 64}));
  // Large inputs drive the activations to their bounds.
  const auto p = net->forward(images * 100.0);
  EXPECT_EQ(p.camera.rotation.sizes(), (at::IntArrayRef{3, 4}));
  EXPECT_EQ(p.camera.translation.sizes(), (at::IntArrayRef{3, 3}));
  EXPECT_EQ(p.parts.center.sizes(), (at::IntArrayRef{3, 5, 3}));
  EXPECT_EQ(p.parts.rotation.sizes(), (at::IntArrayRef{3, 5, 4}));
  EXPECT_EQ(p.parts.shape.sizes(), (at::IntArrayRef{3, 5, 11}));
  EXPECT_EQ(p.velocity.sizes(), (at::IntArrayRef{3, 5, 3, 3, 3, 3}));
  const auto s = p.parts.shape;
  EXPECT_GE(s.select(2, core::kA0).min().item<double>(), 0.05);
  EXPECT_LE(s.select(2, core::kA0).max().item<double>(), 0.5);
  EXPECT_GE(s.narrow(2, core::kE1, 2).min().item<double>(), 0.2);
  EXPECT_LE(s.narrow(2, core::kE1, 2).max().item<double>(), 1.7);
  EXPECT_LE(p.velocity.abs().max().item<double>(), o.max_velocity);
  EXPECT_GT(p.camera.translation.select(1, 2).min().item<double>(), 0.0);  // in front of the camera
  const auto d = net->part_distribution();
  EXPECT_EQ(d.sizes(), (at::IntArrayRef{5, 4}));
  EXPECT_LT((d.sum(1) - 1).abs().max().item<double>(), 1e-6);
  // The template: distinct parts at the start.
  EXPECT_GT(net->forward(images).parts.center.std(1).min().item<double>(), 0.05);
  // Without local deformation there is no velocity head.
  o.local_deformation = false;
  EXPECT_FALSE(LepardNet(o)->forward(images).velocity.defined());
}

// model.viewpoints: the camera is the camera head's rotation turned by the chosen turn about
// the vertical axis; the selection head starts choosing no turn.
TEST(Model, TheChosenViewpointTurnsTheCamera) {
  ModelOptions o;
  o.parts = 3;
  o.image_size = 32;
  o.encoder_depth = 2;
  o.encoder_width = 8;
  o.hidden = 16;
  o.viewpoints = 4;
  LepardNet net(o);
  const auto images = normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32);
  auto raw = net->forward_raw(images);
  ASSERT_EQ(raw.view_logits.sizes(), (at::IntArrayRef{2, 4}));
  EXPECT_TRUE(raw.view_logits.argmax(1).eq(0).all().item<bool>());
  const auto plain = net->decode(raw).camera.rotation;
  raw.view = at::tensor({1, 2}, at::kLong);
  const auto turned = net->decode(raw);
  // R(turned) = R(plain) R_y(2 pi j / 4): compare rotation matrices.
  const auto expected = core::quaternion_to_matrix(plain).matmul(
      core::quaternion_to_matrix(core::yaw_quaternion(at::tensor({M_PI / 2, M_PI}, plain.options()))));
  EXPECT_LT((core::quaternion_to_matrix(turned.camera.rotation) - expected).abs().max().item<double>(), 1e-5);
  // The parts do not depend on the choice.
  EXPECT_TRUE(turned.parts.center.equal(net->decode(net->forward_raw(images)).parts.center));
  // Without the option there is no selection head and no turn.
  o.viewpoints = 1;
  EXPECT_FALSE(LepardNet(o)->forward_raw(images).view_logits.defined());
}

// model.part_frame camera: whatever the camera, each decoded centre projects to the image
// position the raw output names (1.2 tanh per axis) at the depth it names (the camera's
// depth plus 1.5 tanh), each orientation seen from the camera is the raw quaternion's, so
// that the camera's rotation moves nothing in the image (its gradient there is 0); and the
// template starts where the object-frame template does.
TEST(Model, PartsInTheCameraFrameLandWhereTheRawOutputsSay) {
  auto o = small_rigid_options();
  o.part_frame = PartFrame::Camera;
  LepardNet net(o);
  const int64_t b = 3, k = o.parts;
  const auto dbl = at::TensorOptions().dtype(at::kDouble);
  at::manual_seed(5);
  RawPrediction raw;
  raw.camera = at::randn({b, 7}, dbl).requires_grad_(true);
  raw.parts = (at::randn({b, k, 18}, dbl) * 2.0).requires_grad_(true);
  const auto p = net->decode(raw);
  const auto cam = core::camera_transform(p.camera, p.parts.center);
  const auto t3 = at::tanh(raw.parts.narrow(2, 0, 3));
  const auto depth = p.camera.translation.select(1, 2).unsqueeze(1) + 1.5 * t3.select(2, 2);
  EXPECT_LT((cam.select(2, 2) - depth).abs().max().item<double>(), 1e-12);
  const auto uv = core::perspective_project(cam, o.focal);
  EXPECT_LT((uv - 1.2 * t3.narrow(2, 0, 2)).abs().max().item<double>(), 1e-12);
  const auto seen =
      core::quaternion_to_matrix(p.camera.rotation).unsqueeze(1).matmul(core::quaternion_to_matrix(p.parts.rotation));
  EXPECT_LT((seen - core::quaternion_to_matrix(raw.parts.narrow(2, 3, 4))).abs().max().item<double>(), 1e-12);
  // The camera's rotation outputs reach neither the image positions nor the orientations.
  const auto g = torch::autograd::grad({uv.sum() + seen.sum()}, {raw.camera})[0];
  EXPECT_LT(g.narrow(1, 0, 4).abs().max().item<double>(), 1e-10);
  // The object frame (the default) differs: there the camera moves the parts.
  auto object_options = o;
  object_options.part_frame = PartFrame::Object;
  LepardNet object_net(object_options);
  const auto q = object_net->decode(raw);
  const auto uv_object = core::perspective_project(core::camera_transform(q.camera, q.parts.center), o.focal);
  EXPECT_GT(torch::autograd::grad({uv_object.sum()}, {raw.camera})[0].narrow(1, 0, 4).abs().max().item<double>(), 1e-3);

  // The template: with the heads' weights at zero both frames decode their biases to the
  // same parts (the camera at its start, the identity at the object's distance).
  auto template_of = [&](LepardNet& n) {
    at::NoGradGuard no_grad;
    for (auto& item : n->named_parameters(true))
      if (item.key().find("_head.weight") != std::string::npos) item.value().zero_();
    return n->forward(normalize_images(at::randint(0, 256, {1, 32, 32, 3}, at::kByte), 32));
  };
  const auto a = template_of(net), c = template_of(object_net);
  EXPECT_LT((a.parts.center - c.parts.center).abs().max().item<double>(), 1e-5);
  EXPECT_LT((core::quaternion_to_matrix(a.parts.rotation) - core::quaternion_to_matrix(c.parts.rotation))
                .abs()
                .max()
                .item<double>(),
            1e-6);
  EXPECT_TRUE(a.parts.shape.equal(c.parts.shape));
  // A turn of the camera would move nothing: the option refuses the viewpoint search.
  o.viewpoints = 2;
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
}

TEST(Model, AnchoredPartsSitAtTheirOwnedClustersCentroids) {
  // Four parts, three clusters on a 16 x 16 label map: part 0 owns cluster 1, part 1 owns
  // clusters 2 and 3 together, part 2 owns cluster 2 alone, part 3 owns nothing.
  auto o = small_rigid_options();
  o.clusters = 3;
  o.label_input = true;
  o.anchor = true;
  o.anchor_reach = 0.2;
  auto labels = at::zeros({2, 16, 16}, at::kLong);
  labels[0].narrow(0, 2, 3).narrow(1, 1, 4).fill_(1);   // rows 2-4, columns 1-4
  labels[0].narrow(0, 10, 4).narrow(1, 9, 2).fill_(2);  // rows 10-13, columns 9-10
  labels[0].narrow(0, 6, 2).narrow(1, 12, 4).fill_(3);  // rows 6-7, columns 12-15
  labels[1][15][15] = 1;                                // image 1: one cell of cluster 1, too few
  const auto own = at::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0}).view({4, 3});
  // Cell (i, j) has its centre at ((2 j + 1 - 16) / 16, (2 i + 1 - 16) / 16).
  const auto at_cell = [](double i, double j) { return std::make_pair((2 * j + 1 - 16) / 16, (2 * i + 1 - 16) / 16); };
  const auto c1 = at_cell(3.0, 2.5);
  // Cluster 2 has 8 cells around (11.5, 9.5), cluster 3 has 8 around (6.5, 13.5).
  const auto c23 = at_cell((11.5 + 6.5) / 2, (9.5 + 13.5) / 2), c2 = at_cell(11.5, 9.5);
  const auto anchors = part_anchors(labels, own);
  ASSERT_EQ(anchors.sizes(), (at::IntArrayRef{2, 4, 3}));
  const std::pair<double, double> expected[3] = {c1, c23, c2};
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(anchors[0][k][0].item<double>(), expected[k].first, 1e-6) << k;
    EXPECT_NEAR(anchors[0][k][1].item<double>(), expected[k].second, 1e-6) << k;
    EXPECT_EQ(anchors[0][k][2].item<double>(), 1.0) << k;
  }
  EXPECT_EQ(anchors[0][3][2].item<double>(), 0.0);               // owns nothing
  EXPECT_EQ(anchors[1].select(1, 2).sum().item<double>(), 0.0);  // one cell is not enough

  // The network: before its ownership is set every part takes its free position, which with
  // the heads' weights at zero is the template's (the camera frame's template, the same).
  LepardNet net(o);
  auto camera_options = o;
  camera_options.anchor = false;
  camera_options.part_frame = PartFrame::Camera;
  LepardNet camera_net(camera_options);
  at::NoGradGuard no_grad;
  for (auto* n : {&net, &camera_net})
    for (auto& item : (*n)->named_parameters(true))
      if (item.key().find("_head.weight") != std::string::npos) item.value().zero_();
  const auto images = normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32);
  const auto image_of = [&](const Prediction& p) {
    return core::perspective_project(core::camera_transform(p.camera, p.parts.center), o.focal);
  };
  const auto free = image_of(net->forward(images, labels));
  EXPECT_LT((free - image_of(camera_net->forward(images, labels))).abs().max().item<double>(), 1e-5);
  // With it, parts 0-2 of image 0 land on their anchors (the offsets' biases start at zero);
  // part 3, and every part of image 1, keep the free position.
  net->set_part_owner(own);
  const auto raw = net->forward_raw(images, labels);
  const auto held = image_of(net->decode(raw));
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(held[0][k][0].item<double>(), expected[k].first, 1e-5) << k;
    EXPECT_NEAR(held[0][k][1].item<double>(), expected[k].second, 1e-5) << k;
  }
  EXPECT_LT((held[0][3] - free[0][3]).abs().max().item<double>(), 1e-6);
  EXPECT_LT((held[1] - free[1]).abs().max().item<double>(), 1e-6);
  // An offset moves a held part by anchor_reach tanh, and no further.
  auto moved = raw;
  moved.parts = raw.parts.clone();
  moved.parts[0][0][0] += 100.0;
  moved.parts[0][0][1] -= 0.5;
  const auto shifted = image_of(net->decode(moved));
  EXPECT_NEAR(shifted[0][0][0].item<double>(), c1.first + 0.2, 1e-5);
  EXPECT_NEAR(shifted[0][0][1].item<double>(), c1.second + 0.2 * std::tanh(-0.5), 1e-5);
  // The ownership is a buffer: a checkpoint keeps it.
  EXPECT_TRUE(net->named_buffers().contains("part_owner"));
  // Refused: a wrong-shaped ownership, decoding without anchors, and the option without labels.
  EXPECT_THROW(net->set_part_owner(at::ones({4, 2})), std::invalid_argument);
  moved.anchor = at::Tensor();
  EXPECT_THROW(net->decode(moved), std::invalid_argument);
  o.label_input = false;
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
}

TEST(Model, PartHeatmapPositionsAreTheSoftArgmaxAboutThePrior) {
  // Against the sum written out cell by cell, in double precision.
  const int64_t h = 5, w = 7;
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto scores = at::randn({2, 3, h, w}, opts);
  const auto prior = at::rand({2, 3, 2}, opts) * 1.6 - 0.8;
  const double sigma = 0.3;
  const auto got = part_heatmap_positions(scores, prior, sigma);
  ASSERT_EQ(got.sizes(), (at::IntArrayRef{2, 3, 2}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k = 0; k < 3; ++k) {
      // The map's cells, and cells of score 0 past its edges out to 3 sigma.
      const int64_t py = heatmap_padding(h, sigma), px = heatmap_padding(w, sigma);
      EXPECT_EQ(px, 4);  // 3 sigma = 0.9 = 3.15 cells of 2 / 7
      double z = 0, sx = 0, sy = 0;
      for (int64_t i = -py; i < h + py; ++i)
        for (int64_t j = -px; j < w + px; ++j) {
          const double x = (2.0 * j + 1 - w) / w, y = (2.0 * i + 1 - h) / h;
          const double dx = x - prior[b][k][0].item<double>(), dy = y - prior[b][k][1].item<double>();
          const bool inside = i >= 0 && i < h && j >= 0 && j < w;
          const double score = inside ? scores[b][k][i][j].item<double>() : 0.0;
          const double e = std::exp(score - (dx * dx + dy * dy) / (2 * sigma * sigma));
          z += e;
          sx += e * x;
          sy += e * y;
        }
      EXPECT_NEAR(got[b][k][0].item<double>(), sx / z, 1e-12);
      EXPECT_NEAR(got[b][k][1].item<double>(), sy / z, 1e-12);
    }
  // Flat scores: the position is the prior's, and follows it one for one, even near an edge,
  // so a network whose scores start at zero starts where it would without them.
  const auto fine = at::zeros({1, 1, 64, 64}, opts);
  const auto edge = at::tensor({0.93, -0.05}, opts).view({1, 1, 2});
  EXPECT_LT((part_heatmap_positions(at::zeros({1, 1, 8, 8}, opts), edge, 0.3) - edge).abs().max().item<double>(), 1e-3);
  const auto p0 = at::tensor({0.13, -0.27}, opts).view({1, 1, 2}).requires_grad_(true);
  const auto at_p0 = part_heatmap_positions(fine, p0, 0.15);
  EXPECT_LT((at_p0 - p0).abs().max().item<double>(), 1e-6);
  const auto grad = torch::autograd::grad({at_p0.select(2, 0).sum()}, {p0})[0];
  EXPECT_NEAR(grad[0][0][0].item<double>(), 1.0, 1e-4);
  EXPECT_NEAR(grad[0][0][1].item<double>(), 0.0, 1e-6);
  // A score peak a sigma away wins: the position goes most of the way to it.
  auto peaked = fine.clone();
  peaked[0][0][24][40] = 30.0;  // cell centre ((2 * 40 + 1 - 64) / 64, (2 * 24 + 1 - 64) / 64)
  const auto at_peak = part_heatmap_positions(peaked, p0.detach(), 0.15);
  EXPECT_NEAR(at_peak[0][0][0].item<double>(), 17.0 / 64, 1e-6);
  EXPECT_NEAR(at_peak[0][0][1].item<double>(), -15.0 / 64, 1e-6);
  EXPECT_THROW(part_heatmap_positions(fine, at::zeros({1, 2, 2}, opts), 0.1), std::invalid_argument);
  EXPECT_THROW(part_heatmap_positions(fine, p0.detach(), 0.0), std::invalid_argument);
}

TEST(Model, PartHeatmapsMoveEachCentreInTheImageAtItsDepth) {
  auto o = small_rigid_options();
  o.image_size = 64;  // stage 1 is then 16 x 16 cells of 0.125
  o.heatmap_sigma = 0.3;
  auto with = o;
  with.part_heatmaps = true;
  torch::manual_seed(3);
  LepardNet plain(o);
  torch::manual_seed(3);
  LepardNet net(with);
  at::NoGradGuard no_grad;
  const auto images = normalize_images(at::randint(0, 256, {2, 64, 64, 3}, at::kByte), 64);
  const auto camera_of = [&](const Prediction& p) { return core::camera_transform(p.camera, p.parts.center); };
  // The scores start at zero: the same parts, to the discretisation of the Gaussian's mean.
  const auto a = plain->forward(images);
  const auto raw = net->forward_raw(images);
  ASSERT_EQ(raw.heat.sizes(), (at::IntArrayRef{2, 4, 16, 16}));
  EXPECT_EQ(raw.heat.abs().max().item<double>(), 0.0);
  const auto b = net->decode(raw);
  EXPECT_TRUE(a.parts.rotation.equal(b.parts.rotation));
  EXPECT_TRUE(a.parts.shape.equal(b.parts.shape));
  const auto xa = camera_of(a), xb = camera_of(b);
  EXPECT_LT((xa.select(2, 2) - xb.select(2, 2)).abs().max().item<double>(), 1e-5);  // depth kept
  const auto ia = core::perspective_project(xa, o.focal), ib = core::perspective_project(xb, o.focal);
  EXPECT_LT((ia - ib).abs().max().item<double>(), 2e-3);
  // A peak in part 2's scores of image 1 takes that part there, at its depth; nothing else moves.
  auto moved = raw;
  moved.heat = raw.heat.clone();
  const int64_t i = static_cast<int64_t>(std::floor((ib[1][2][1].item<double>() + 1) * 8)) + 2;
  const int64_t j = static_cast<int64_t>(std::floor((ib[1][2][0].item<double>() + 1) * 8)) - 2;
  ASSERT_TRUE(i >= 0 && i < 16 && j >= 0 && j < 16);
  moved.heat[1][2][i][j] = 40.0;
  const auto c = net->decode(moved);
  const auto xc = camera_of(c);
  const auto ic = core::perspective_project(xc, o.focal);
  EXPECT_NEAR(ic[1][2][0].item<double>(), (2.0 * j + 1 - 16) / 16, 1e-4);
  EXPECT_NEAR(ic[1][2][1].item<double>(), (2.0 * i + 1 - 16) / 16, 1e-4);
  EXPECT_NEAR(xc[1][2][2].item<double>(), xb[1][2][2].item<double>(), 1e-5);
  ic[1][2].zero_();
  ib[1][2].zero_();
  EXPECT_LT((ic - ib).abs().max().item<double>(), 1e-6);
  // The scores are the network's: decoding without them, and the option with another placement,
  // are refused.
  moved.heat = at::Tensor();
  EXPECT_THROW(net->decode(moved), std::invalid_argument);
  with.part_frame = PartFrame::Camera;
  EXPECT_THROW(LepardNet{with}, std::invalid_argument);
}

TEST(Model, ReconstructionOnAnyGridAndZeroVelocityIsRigid) {
  ModelOptions o;
  o.parts = 3;
  o.clusters = 4;
  o.image_size = 32;
  o.encoder_depth = 2;
  o.encoder_width = 8;
  o.hidden = 16;
  o.flow_grid = 3;
  o.flow_integration = 6;
  o.rings = 5;
  o.segments = 7;
  LepardNet net(o);
  EXPECT_EQ(flow_options(net->options()).grid_size, 3);
  EXPECT_EQ(flow_options(net->options()).integration_size, 6);
  EXPECT_EQ(surface_grid(net->options()).num_vertices(), core::make_surface_grid(5, 7).num_vertices());
  at::NoGradGuard no_grad;
  auto p = net->forward(normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32));
  for (const auto& grid : {surface_grid(net->options()), core::make_surface_grid(9, 16)}) {
    const auto r = reconstruct(p, grid, flow_options(net->options()));
    const auto v = grid.num_vertices();
    EXPECT_EQ(r.image.sizes(), (at::IntArrayRef{2, 3, v, 3}));
    EXPECT_EQ(r.world.sizes(), (at::IntArrayRef{2, 3, v, 3}));
    EXPECT_EQ(r.local.sizes(), (at::IntArrayRef{2, 3, v, 3}));
    EXPECT_GT(r.local.abs().max().item<double>(), 1e-4);  // the random velocity moves points
    // Zero velocity: no displacement, the rigid parts' projection.
    auto still = p;
    still.velocity = at::zeros_like(p.velocity);
    auto rigid = p;
    rigid.velocity = at::Tensor();
    const auto a = reconstruct(still, grid, flow_options(net->options()));
    const auto b = reconstruct(rigid, grid, flow_options(net->options()));
    EXPECT_FALSE(b.local.defined());
    EXPECT_LT(a.local.abs().max().item<double>(), 1e-6);
    EXPECT_LT((a.image - b.image).abs().max().item<double>(), 1e-5);
    EXPECT_LT((a.world - b.world).abs().max().item<double>(), 1e-5);
  }
}

TEST(Model, RigidSuperquadricsHaveNoTaperOrBend) {
  auto o = small_rigid_options();
  LepardNet deformable(o);
  o.rigid = true;
  LepardNet rigid(o);
  // The same raw outputs through both decoders: only t1, t2 and b1 differ, and are 0 when rigid.
  const auto raw = deformable->forward_raw(normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32));
  RawPrediction big = raw;
  big.parts = raw.parts * 50.0;
  const auto d = deformable->decode(big), r = rigid->decode(big);
  const auto dt = d.parts.shape.narrow(2, core::kT1, 3), rt = r.parts.shape.narrow(2, core::kT1, 3);
  EXPECT_GT(dt.abs().max().item<double>(), 0.09);
  EXPECT_EQ(rt.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(d.parts.shape.narrow(2, 0, core::kT1).equal(r.parts.shape.narrow(2, 0, core::kT1)));
  EXPECT_TRUE(d.parts.shape.narrow(2, core::kB2, 2).equal(r.parts.shape.narrow(2, core::kB2, 2)));
}

// model.max_size bounds a part's size a0: raw outputs driven to both ends reach 0.05 and the
// bound, the rest of the decoding is unchanged, and the template starts at a0 = 0.3 whatever
// the bound (the same raw outputs at the start give the same parts).
TEST(Model, TheSizeBoundFollowsMaxSize) {
  auto o = small_rigid_options();
  LepardNet small(o);
  o.max_size = 0.9;
  LepardNet large(o);
  const auto images = normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32);
  for (LepardNet* net : {&small, &large})
    EXPECT_NEAR((*net)->forward(images).parts.shape.select(2, core::kA0).mean().item<double>(), 0.3, 0.02);
  RawPrediction raw = small->forward_raw(images);
  auto a0_range = [&](LepardNet& net, double gain) {
    RawPrediction r = raw;
    r.parts = raw.parts.clone();
    r.parts.select(2, 7 + core::kA0).fill_(gain);
    return net->decode(r).parts.shape.select(2, core::kA0).mean().item<double>();
  };
  EXPECT_NEAR(a0_range(small, 50.0), 0.5, 1e-6);
  EXPECT_NEAR(a0_range(large, 50.0), 0.9, 1e-6);
  EXPECT_NEAR(a0_range(small, -50.0), 0.05, 1e-6);
  EXPECT_NEAR(a0_range(large, -50.0), 0.05, 1e-6);
  EXPECT_NEAR(a0_range(large, 0.0), 0.05 + 0.85 * 0.5, 1e-6);
  const auto ds = small->decode(raw).parts.shape, dl = large->decode(raw).parts.shape;
  EXPECT_TRUE(ds.narrow(2, core::kA1, core::kShapeDim - 1).equal(dl.narrow(2, core::kA1, core::kShapeDim - 1)));
  o.max_size = 0.3;
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
}

// model.min_aspect bounds the aspect ratios a1..a3 from below: raw outputs driven down reach
// the bound (so a part's thinnest half-extent is min_aspect a0), up reach 1, and the template
// is the same whatever the bound.
TEST(Model, TheAspectBoundFollowsMinAspect) {
  auto o = small_rigid_options();
  torch::manual_seed(3);
  LepardNet wide(o);
  o.min_aspect = 0.03;
  torch::manual_seed(3);
  LepardNet thin(o);
  const auto images = normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32);
  // The same weights; only the aspects' biases differ, so that the template's aspects agree.
  RawPrediction raw = wide->forward_raw(images);
  const auto raw_thin = thin->forward_raw(images).parts;
  EXPECT_TRUE(raw.parts.narrow(2, 0, 7 + core::kA1).equal(raw_thin.narrow(2, 0, 7 + core::kA1)));
  EXPECT_TRUE(raw.parts.narrow(2, 7 + core::kE1, core::kShapeDim - core::kE1)
                  .equal(raw_thin.narrow(2, 7 + core::kE1, core::kShapeDim - core::kE1)));
  const auto start_wide = wide->forward(images).parts.shape, start_thin = thin->forward(images).parts.shape;
  EXPECT_LT((start_wide - start_thin).abs().max().item<double>(), 0.02);
  auto aspects = [&](LepardNet& net, double gain) {
    RawPrediction r = raw;
    r.parts = raw.parts.clone();
    r.parts.narrow(2, 7 + core::kA1, 3).fill_(gain);
    return net->decode(r).parts.shape.narrow(2, core::kA1, 3);
  };
  EXPECT_NEAR(aspects(wide, -50.0).max().item<double>(), 0.1, 1e-6);
  EXPECT_NEAR(aspects(thin, -50.0).max().item<double>(), 0.03, 1e-6);
  EXPECT_NEAR(aspects(thin, 50.0).min().item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(aspects(thin, 0.0).mean().item<double>(), 0.03 + 0.97 * 0.5, 1e-6);
  // Only the aspects move with the bound.
  const auto dw = wide->decode(raw).parts.shape, dt = thin->decode(raw).parts.shape;
  EXPECT_TRUE(
      dw.narrow(2, core::kE1, core::kShapeDim - core::kE1).equal(dt.narrow(2, core::kE1, core::kShapeDim - core::kE1)));
  EXPECT_TRUE(dw.select(2, core::kA0).equal(dt.select(2, core::kA0)));
  for (double bad : {0.0, 0.25}) {
    o.min_aspect = bad;
    EXPECT_THROW(LepardNet{o}, std::invalid_argument);
  }
}

// model.label_input: the labels become one-hot planes after the RGB channels, and the
// prediction follows them.
TEST(Model, LabelInputSeesThePseudoLabels) {
  // label_planes: one-hot of 0..C, nearest-resized (each label cell covers a 2 x 2 block).
  const auto labels = at::tensor({0, 2, 1, 2}, at::kLong).view({1, 2, 2});
  const auto planes = label_planes(labels, 2, 4);
  ASSERT_EQ(planes.sizes(), (at::IntArrayRef{1, 3, 4, 4}));
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 4; ++x) {
      const int64_t l = labels[0][y / 2][x / 2].item<int64_t>();
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(planes[0][c][y][x].item<float>(), c == l ? 1.0f : 0.0f) << y << x << c;
    }
  EXPECT_THROW(label_planes(labels + 1, 2, 4), std::invalid_argument);  // a label 3 with 2 clusters

  ModelOptions o;
  o.parts = 3;
  o.clusters = 2;
  o.image_size = 32;
  o.encoder_depth = 2;
  o.encoder_width = 8;
  o.hidden = 16;
  o.label_input = true;
  LepardNet net(o);
  const auto images = normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32);
  const auto a = at::randint(0, 3, {2, 16, 16}, at::kLong), b = at::randint(0, 3, {2, 16, 16}, at::kLong);
  EXPECT_THROW(net->forward_raw(images), std::invalid_argument);  // no labels
  at::NoGradGuard no_grad;
  const auto pa = net->forward_raw(images, a).parts, pb = net->forward_raw(images, b).parts;
  EXPECT_GT((pa - pb).abs().max().item<double>(), 1e-6);  // the labels reach the output
  // The labels of each image are its own: swapping the batch swaps the outputs.
  const auto swapped = net->forward_raw(images.flip({0}), a.flip({0})).parts;
  EXPECT_LT((swapped.flip({0}) - pa).abs().max().item<double>(), 1e-5);
  // The input layer has the C + 1 label channels; without the option it has 3 and ignores labels.
  EXPECT_EQ(net->named_parameters()["encoder.conv1.weight"].size(1), 3 + 2 + 1);
  o.label_input = false;
  LepardNet plain(o);
  EXPECT_EQ(plain->named_parameters()["encoder.conv1.weight"].size(1), 3);
  EXPECT_TRUE(plain->forward_raw(images, a).parts.equal(plain->forward_raw(images).parts));
}

TEST(Model, FeedbackPlanesMarkWhereEachPartIsInFront) {
  // Two blobs of the small network's template, one left and one right of the image.
  auto o = small_rigid_options();
  o.parts = 2;
  LepardNet net(o);
  const auto images = normalize_images(at::randint(0, 256, {1, 32, 32, 3}, at::kByte), 32);
  at::NoGradGuard no_grad;
  auto p = net->forward(images);
  p.camera.rotation = at::tensor({1.0, 0.0, 0.0, 0.0}).view({1, 4}).to(p.camera.rotation.options());
  p.camera.translation = at::tensor({0.0, 0.0, 3.0}).view({1, 3}).to(p.camera.translation.options());
  p.parts.center = at::tensor({-0.6, 0.0, 0.0, 0.6, 0.0, 0.0}).view({1, 2, 3}).to(p.parts.center.options());
  p.parts.shape = p.parts.shape.narrow(1, 1, 1).expand({1, 2, -1}).contiguous();  // both the blob of part 1
  p.parts.rotation = p.camera.rotation.view({1, 1, 4}).expand({1, 2, 4}).contiguous();
  const auto grid = surface_grid(o);
  const auto planes = feedback_planes(p, grid, flow_options(o), 32);
  ASSERT_EQ(planes.sizes(), (at::IntArrayRef{1, 3, 32, 32}));
  // One-hot: every pixel is the background or exactly one part.
  EXPECT_TRUE(planes.sum(1).eq(1).all().item<bool>());
  // Part 0 lies in the left half of the image (x < 0 is left), part 1 in the right.
  const auto left = planes.narrow(3, 0, 16), right = planes.narrow(3, 16, 16);
  EXPECT_GT(left[0][1].sum().item<double>(), 10.0);
  EXPECT_EQ(right[0][1].sum().item<double>(), 0.0);
  EXPECT_GT(right[0][2].sum().item<double>(), 10.0);
  EXPECT_EQ(left[0][2].sum().item<double>(), 0.0);
  // The planes are the hard rasteriser's front part, pixel by pixel.
  const auto id = render::rasterize_hard(reconstruct(p, grid, flow_options(o)).image, grid.faces, 32, 32).part_id;
  EXPECT_TRUE(planes.argmax(1).equal(id + 1));
}

TEST(Model, FeedbackStartsAsThePlainNetworkAndReadsTheRenderedParts) {
  auto o = small_rigid_options();
  o.local_deformation = true;
  o.flow_grid = 2;
  o.flow_integration = 4;
  const auto images = normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32);
  torch::manual_seed(3);
  LepardNet plain(o);
  o.feedback = 2;
  torch::manual_seed(3);
  LepardNet net(o);
  // The first pass is the plain network's, and the corrector starts at zero: the same outputs.
  {
    at::NoGradGuard no_grad;
    const auto a = plain->forward_raw(images), b = net->forward_raw(images);
    EXPECT_TRUE(a.parts.equal(b.parts));
    EXPECT_TRUE(a.camera.equal(b.camera));
    EXPECT_TRUE(a.flow.equal(b.flow));
  }
  auto params = net->named_parameters();
  ASSERT_TRUE(params.contains("feedback_encoder.conv1.weight"));
  // Input: the image and K + 1 part planes.
  EXPECT_EQ(params["feedback_encoder.conv1.weight"].size(1), 3 + o.parts + 1);
  {
    at::NoGradGuard no_grad;
    for (const auto* head :
         {"feedback_heads.camera.weight", "feedback_heads.part.weight", "feedback_heads.flow.weight"})
      params[head].normal_(0.0, 0.05);
  }
  // Now the outputs differ, and the loss's gradient reaches the corrector's filters of the
  // part planes: the rendered parts enter the correction.
  const auto r = net->forward_raw(images);
  {
    at::NoGradGuard no_grad;
    EXPECT_GT((r.parts - plain->forward_raw(images).parts).abs().max().item<double>(), 1e-6);
  }
  (r.parts.square().sum() + r.camera.square().sum() + r.flow.square().sum()).backward();
  const auto g = params["feedback_encoder.conv1.weight"].grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.narrow(1, 3, o.parts + 1).abs().max().item<double>(), 0.0);
  EXPECT_GT(params["encoder.conv1.weight"].grad().abs().max().item<double>(), 0.0);  // the first pass learns too
  o.viewpoints = 2;
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
  o.viewpoints = 1;
  o.feedback = -1;
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
}

TEST(Model, SpatialSoftArgmaxIsTheExpectedPosition) {
  // Against the expectation written out, in double.
  const auto scores = at::randn({2, 3, 5, 7}, at::kDouble) * 2;
  const auto got = spatial_soft_argmax(scores);
  ASSERT_EQ(got.sizes(), at::IntArrayRef({2, 3, 2}));
  const auto s = scores.accessor<double, 4>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 0; n < 3; ++n) {
      double z = 0, x = 0, y = 0;
      for (int64_t i = 0; i < 5; ++i)
        for (int64_t j = 0; j < 7; ++j) {
          const double w = std::exp(s[b][n][i][j]);
          z += w;
          x += w * (2 * j + 1 - 7) / 7.0;
          y += w * (2 * i + 1 - 5) / 5.0;
        }
      EXPECT_NEAR(got[b][n][0].item<double>(), x / z, 1e-12);
      EXPECT_NEAR(got[b][n][1].item<double>(), y / z, 1e-12);
    }
  // A sharp peak at row 1, column 5 is that cell's centre, x right and y down.
  auto peak = at::zeros({1, 1, 5, 7}, at::kDouble);
  peak[0][0][1][5] = 60.0;
  const auto p = spatial_soft_argmax(peak);
  EXPECT_NEAR(p[0][0][0].item<double>(), (2 * 5 + 1 - 7) / 7.0, 1e-12);
  EXPECT_NEAR(p[0][0][1].item<double>(), (2 * 1 + 1 - 5) / 5.0, 1e-12);
  EXPECT_THROW(spatial_soft_argmax(at::zeros({2, 5, 7})), std::invalid_argument);
}

TEST(Model, KeypointsJoinTheFeaturesTheMlpReads) {
  auto o = small_rigid_options();
  const auto images = normalize_images(at::randint(0, 256, {2, 32, 32, 3}, at::kByte), 32);
  LepardNet plain(o);
  o.keypoints = 3;
  o.keypoint_stage = 1;
  LepardNet net(o);
  EXPECT_EQ(net->encoder()->out_features(), plain->encoder()->out_features() + 2 * 3);
  auto params = net->named_parameters();
  ASSERT_TRUE(params.contains("encoder.keypoints.weight"));
  EXPECT_EQ(params["encoder.keypoints.weight"].size(1), o.encoder_width);  // stage 1's channels
  // The last 2N features are the soft-argmax of the keypoint maps: inside the image's
  // normalised square.
  const auto f = net->encoder()->forward(images);
  const auto points = f.narrow(1, f.size(1) - 6, 6);
  EXPECT_LE(points.abs().max().item<double>(), 1.0);
  // The outputs depend on them: the loss's gradient reaches the keypoint filters.
  const auto r = net->forward_raw(images);
  (r.parts.square().sum() + r.camera.square().sum()).backward();
  ASSERT_TRUE(params["encoder.keypoints.weight"].grad().defined());
  EXPECT_GT(params["encoder.keypoints.weight"].grad().abs().max().item<double>(), 0.0);
  o.keypoint_stage = 3;  // beyond encoder_depth 2
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
  o.keypoint_stage = 2;
  o.keypoints = -1;
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
}

TEST(Model, LabelMomentsAreEachClustersShareCentroidAndSpread) {
  // Against the moments written out cell by cell, in double.
  const int64_t r = 6, c = 3;
  auto labels = at::randint(0, 3, {2, r, r}, at::kLong);  // clusters 1 and 2 (and background)
  labels[1].fill_(0);
  labels[1][2][4] = 1;  // image 1: cluster 1 one cell, cluster 2 a column, cluster 3 absent
  for (int64_t y = 1; y < 5; ++y) labels[1][y][0] = 2;
  const auto got = label_moments(labels, c).to(at::kDouble);
  ASSERT_EQ(got.sizes(), at::IntArrayRef({2, 6 * c}));
  const auto l = labels.accessor<int64_t, 3>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k = 1; k <= c; ++k) {
      double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (int64_t y = 0; y < r; ++y)
        for (int64_t x = 0; x < r; ++x) {
          if (l[b][y][x] != k) continue;
          const double px = (2.0 * x + 1 - r) / r, py = (2.0 * y + 1 - r) / r;
          n += 1;
          sx += px;
          sy += py;
          sxx += px * px;
          syy += py * py;
          sxy += px * py;
        }
      const double mx = n > 0 ? sx / n : 0, my = n > 0 ? sy / n : 0;
      const double vx = n > 0 ? sxx / n - mx * mx : 0, vy = n > 0 ? syy / n - my * my : 0;
      const double cxy = n > 0 ? sxy / n - mx * my : 0;
      const double dx = std::sqrt(std::max(vx, 0.0)), dy = std::sqrt(std::max(vy, 0.0));
      const double rho = dx * dy > 1e-9 ? cxy / (dx * dy) : 0.0;
      const double want[6] = {std::sqrt(n / (r * r)), mx, my, dx, dy, rho};
      for (int64_t m = 0; m < 6; ++m)
        EXPECT_NEAR(got[b][6 * (k - 1) + m].item<double>(), want[m], 1e-5)
            << "image " << b << " cluster " << k << " moment " << m;
    }
  // Image 1's single cell: its centre, no spread; the column: x fixed, y spread, correlation 0
  // (undefined, so zero); the absent cluster: all zeros.
  EXPECT_NEAR(got[1][1].item<double>(), (2.0 * 4 + 1 - r) / r, 1e-6);
  EXPECT_NEAR(got[1][2].item<double>(), (2.0 * 2 + 1 - r) / r, 1e-6);
  EXPECT_EQ(got[1][6 + 3].item<double>(), 0.0);
  EXPECT_GT(got[1][6 + 4].item<double>(), 0.1);
  EXPECT_EQ(got[1][6 + 5].item<double>(), 0.0);
  EXPECT_EQ(got[1].narrow(0, 12, 6).abs().sum().item<double>(), 0.0);
  EXPECT_THROW(label_moments(labels + 1, 2), std::invalid_argument);  // a label 3 with 2 clusters
  EXPECT_THROW(label_moments(at::zeros({1, 4, 5}, at::kLong), 2), std::invalid_argument);

  // In the network: the MLP reads them, so moving one cluster's cells changes the output even
  // where the encoder sees the same planes (its weights on the label channels zeroed).
  auto o = small_rigid_options();
  o.label_input = true;
  o.label_moments = true;
  o.clusters = c;
  LepardNet net(o);
  LepardNet plain([&] {
    auto p = o;
    p.label_moments = false;
    return p;
  }());
  EXPECT_EQ(net->named_parameters()["hidden.weight"].size(1),
            plain->named_parameters()["hidden.weight"].size(1) + 6 * c);
  o.label_input = false;
  EXPECT_THROW(LepardNet{o}, std::invalid_argument);
  at::NoGradGuard no_grad;
  net->named_parameters()["encoder.conv1.weight"].narrow(1, 3, c + 1).zero_();
  const auto images = normalize_images(at::randint(0, 256, {1, 32, 32, 3}, at::kByte), 32);
  auto moved = labels.narrow(0, 1, 1).clone();
  const auto before = net->forward_raw(images, moved).parts;
  moved[0][2][4] = 0;
  moved[0][3][3] = 1;
  EXPECT_GT((net->forward_raw(images, moved).parts - before).abs().max().item<double>(), 1e-7);
}

class TorchvisionWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::temp_dir("resnet");
    const std::string cmd =
        std::string(LEPARD_PYTHON) + " " + LEPARD_TRAIN_FIXTURES + "/make_resnet.py " + dir_.string() + " 8 3 2";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    o_.encoder_width = 8;
    o_.encoder_depth = 3;
    o_.encoder_blocks = 2;
    o_.norm = Normalization::FrozenBatch;
    o_.pool = Pooling::Mean;  // the reference's pooled features
  }
  fs::path dir_;
  ModelOptions o_;
};

TEST_F(TorchvisionWeights, EncoderComputesWhatPyTorchComputes) {
  LepardNet net(o_);
  const int64_t loaded = load_encoder_weights(net, dir_ / "resnet.pth");
  // conv1, bn1 (4 tensors) + 3 stages x 2 blocks x (2 convs + 2 x 4 bn) + 2 downsamples x 5.
  EXPECT_EQ(loaded, 1 + 4 + 3 * 2 * 10 + 2 * 5);
  const auto x = io::read_npy(dir_ / "input.npy");
  const auto expected = io::read_npy(dir_ / "features.npy");
  at::NoGradGuard no_grad;
  const auto got = net->encoder()->forward(x);
  EXPECT_LT(testing::max_abs_diff(got, expected), 1e-5);
  EXPECT_GT(expected.abs().max().item<double>(), 0.1);

  // With model.label_input the RGB filters load and the label channels start at 0, so the
  // encoder still computes what PyTorch computes on the image, whatever the labels.
  o_.label_input = true;
  o_.clusters = 4;
  LepardNet labelled(o_);
  EXPECT_EQ(load_encoder_weights(labelled, dir_ / "resnet.pth"), loaded);
  const auto planes = label_planes(at::randint(0, 5, {x.size(0), 8, 8}, at::kLong), 4, x.size(2));
  EXPECT_LT(testing::max_abs_diff(labelled->encoder()->forward(at::cat({x, planes}, 1)), expected), 1e-5);

  // model.keypoints' filters are lepard's own: the ResNet's load, they keep their start, and
  // the features before the keypoints are PyTorch's.
  o_.label_input = false;
  o_.keypoints = 2;
  LepardNet pointed(o_);
  const auto start = pointed->encoder()->named_parameters()["keypoints.weight"].clone();
  EXPECT_EQ(load_encoder_weights(pointed, dir_ / "resnet.pth"), loaded);
  EXPECT_TRUE(pointed->encoder()->named_parameters()["keypoints.weight"].equal(start));
  const auto with_points = pointed->encoder()->forward(x);
  EXPECT_EQ(with_points.size(1), expected.size(1) + 4);
  EXPECT_LT(testing::max_abs_diff(with_points.narrow(1, 0, expected.size(1)), expected), 1e-5);
}

TEST_F(TorchvisionWeights, MismatchesNameTheKey) {
  o_.norm = Normalization::Group;
  LepardNet group(o_);
  try {
    load_encoder_weights(group, dir_ / "resnet.pth");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("frozen_batch"), std::string::npos) << e.what();
  }
  o_.norm = Normalization::FrozenBatch;
  o_.encoder_width = 16;
  LepardNet wide(o_);
  try {
    load_encoder_weights(wide, dir_ / "resnet.pth");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("key 'conv1.weight' has shape [8, 3, 7, 7], expected [16, 3, 7, 7]"),
              std::string::npos)
        << e.what();
  }
  o_.encoder_width = 8;
  o_.encoder_depth = 4;
  LepardNet deep(o_);
  try {
    load_encoder_weights(deep, dir_ / "resnet.pth");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing key 'layer4.0.conv1.weight'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lepard::model
