// Test-time refinement: the raw-output split of the network is exact, zero iterations change
// nothing, and N iterations of the training forces bring each image's own reconstruction
// closer to its pseudo-labels (silhouette IoU up, loss down), independently per image.
#include <lepard/render/hard_rasterize.h>
#include <lepard/eval/metrics.h>
#include <lepard/model/reconstruct.h>
#include <lepard/train/refine.h>

#include "test_support.h"
#include "training_fixture.h"

#include <gtest/gtest.h>

namespace lepard::train {
namespace {

double label_iou(const at::Tensor& verts, const core::SurfaceGrid& grid, const at::Tensor& labels) {
  const int64_t r = labels.size(1);
  const auto parts = render::rasterize_hard(verts, grid.faces, r, r).part_id;
  return eval::silhouette_iou(parts >= 0, labels > 0);
}

TEST(Refine, DecodeOfRawOutputsIsTheForwardPass) {
  const auto dir = testing::temp_dir("refine_decode");
  auto c = testing::tiny_config(dir);
  const auto d = testing::blob_dataset(4, c.model.image_size, c.loss.render_size, 3);
  at::manual_seed(0);
  model::LepardNet net(model_options(c, d.clusters));
  const auto a = net->forward(d.images);
  const auto b = net->decode(net->forward_raw(d.images));
  EXPECT_TRUE(a.parts.shape.equal(b.parts.shape));
  EXPECT_TRUE(a.parts.center.equal(b.parts.center));
  EXPECT_TRUE(a.camera.translation.equal(b.camera.translation));
  EXPECT_TRUE(a.velocity.equal(b.velocity));
  const auto none = refine(net, c, d.images, d.labels.to(at::kLong), {}, RefineOptions{0, 0.02});
  EXPECT_TRUE(none.prediction.parts.shape.equal(a.parts.shape));
}

// Six blob images and an untrained network of four parts (the template).
struct Scene {
  TrainConfig c;
  Dataset d;
  model::LepardNet net{nullptr};
  at::Tensor labels;
};
Scene four_part_scene(const std::string& name) {
  Scene s;
  s.c = testing::tiny_config(testing::temp_dir(name));
  s.c.model.parts = 4;
  s.d = testing::blob_dataset(6, s.c.model.image_size, s.c.loss.render_size, 5);
  at::manual_seed(1);
  s.net = model::LepardNet(model_options(s.c, s.d.clusters));
  s.labels = s.d.labels.to(at::kLong);
  return s;
}

TEST(Refine, IterationsFitEachImagesOwnPseudoLabels) {
  auto scene = four_part_scene("refine_fit");  // named references: lambdas below capture them
  const auto& c = scene.c;
  const auto& d = scene.d;
  auto& net = scene.net;
  const auto& labels = scene.labels;
  const auto grid = core::make_surface_grid(c.model.rings, c.model.segments);
  const auto before = refine(net, c, d.images, labels, {}, RefineOptions{0, 0.05});
  const auto after = refine(net, c, d.images, labels, {}, RefineOptions{60, 0.05});
  EXPECT_LT(after.last_loss, 0.7 * after.first_loss);
  const double iou0 =
      label_iou(model::reconstruct(before.prediction, grid, model::flow_options(net->options())).image, grid, labels);
  const double iou1 =
      label_iou(model::reconstruct(after.prediction, grid, model::flow_options(net->options())).image, grid, labels);
  EXPECT_GT(iou1, iou0 + 0.1) << iou0 << " -> " << iou1;
  // Bounded: every refined part is still a valid part.
  const auto s = after.prediction.parts.shape;
  EXPECT_GE(s.select(2, core::kA0).min().item<double>(), 0.05);
  EXPECT_LE(s.narrow(2, core::kE1, 2).max().item<double>(), 1.7);
  // Per image: the batch's loss gives image 0's raw outputs 1/B of the gradient image 0 alone
  // gives them (each term is a mean over images), so images refine independently; Adam
  // normalises each coordinate. (Comparing Adam iterates instead is not robust: sign flips of
  // near-zero gradients under float32 rounding grow through the iterations.)
  auto grad_of_first = [&](int64_t n) {
    auto raw = net->forward_raw(d.images.narrow(0, 0, n));
    raw.parts = raw.parts.detach().requires_grad_(true);
    LossInputs in;
    const auto p = net->decode(raw);
    in.camera = p.camera;
    in.parts = p.parts;
    in.velocity = p.velocity;
    in.distribution = net->part_distribution().detach();
    auto settings = loss_settings(c);
    compute_losses(in, LossTargets{labels.narrow(0, 0, n)}, grid, settings).total.backward();
    return raw.parts.grad()[0].clone();
  };
  const auto alone = grad_of_first(1), in_batch = grad_of_first(6) * 6.0;
  EXPECT_LT((alone - in_batch).abs().max().item<double>(), 1e-3 * alone.abs().max().item<double>());
}

TEST(Refine, PartHeatmapScoresAreRefinedWithTheOtherOutputs) {
  // A model with part heatmaps: its scores are raw outputs that the iterations move (held
  // fixed, a sharp peak would keep a part where the network put it), and the fit improves.
  auto c = testing::tiny_config(testing::temp_dir("refine_heat"));
  c.model.parts = 4;
  c.model.part_heatmaps = true;
  const auto d = testing::blob_dataset(4, c.model.image_size, c.loss.render_size, 5);
  at::manual_seed(1);
  model::LepardNet net(model_options(c, d.clusters));
  const auto labels = d.labels.to(at::kLong);
  const auto start = refine(net, c, d.images, labels, {}, RefineOptions{0, 0.05});
  ASSERT_TRUE(start.raw.heat.defined());
  EXPECT_EQ(start.raw.heat.abs().max().item<double>(), 0.0);  // the scores start at zero
  const auto after = refine(net, c, d.images, labels, {}, RefineOptions{20, 0.05});
  EXPECT_GT(after.raw.heat.abs().max().item<double>(), 0.01);
  EXPECT_LT(after.last_loss, after.first_loss);
  // What it returns is what its raw outputs decode to.
  at::NoGradGuard no_grad;
  EXPECT_TRUE(net->decode(after.raw).parts.center.equal(after.prediction.parts.center));
}

TEST(Refine, TheAnchorHoldsThePartsNearTheNetworksPrediction) {
  auto scene = four_part_scene("refine_anchor");
  auto run = [&](const RefineOptions& o) { return refine(scene.net, scene.c, scene.d.images, scene.labels, {}, o); };
  const auto start = run(RefineOptions{0, 0.05});
  const auto free = run(RefineOptions{40, 0.05, 0.0});
  const auto held = run(RefineOptions{40, 0.05, 1.0});
  auto moved = [&](const RefineResult& r) {
    return (r.prediction.parts.center - start.prediction.parts.center).norm().item<double>() +
           (r.prediction.parts.shape - start.prediction.parts.shape).norm().item<double>();
  };
  // Without the anchor the parts move; held by it they move less than half as far, and the
  // forces still lower the loss (the reported loss is the forces' alone, without the anchor).
  EXPECT_GT(moved(free), 0.05);
  EXPECT_LT(moved(held), 0.5 * moved(free)) << moved(held) << " against " << moved(free);
  EXPECT_LT(held.last_loss, held.first_loss);
  EXPECT_DOUBLE_EQ(held.first_loss, free.first_loss);
  testing::expect_error<std::invalid_argument>([&] { run(RefineOptions{5, 0.05, -1.0}); }, "anchor");
}

// Each image is refined alone: a config trained with the consistency terms refines exactly as
// one without them (with them, the test images' own mean would pull the images together).
TEST(Refine, TheConsistencyTermsAreLeftOut) {
  auto scene = four_part_scene("refine_consistency");
  const auto plain = refine(scene.net, scene.c, scene.d.images, scene.labels, {}, RefineOptions{10, 0.05});
  auto with = scene.c;
  with.loss.shape_consistency = with.loss.distance_consistency = 10.0;
  const auto consistent = refine(scene.net, with, scene.d.images, scene.labels, {}, RefineOptions{10, 0.05});
  EXPECT_EQ((plain.prediction.parts.center - consistent.prediction.parts.center).abs().max().item<double>(), 0.0);
  EXPECT_EQ((plain.prediction.parts.shape - consistent.prediction.parts.shape).abs().max().item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(plain.last_loss, consistent.last_loss);
}

// RefineOptions::choose_view: with two turns, pseudo-labels drawn from one turn's
// reconstruction of each image make that turn the choice, whatever the selection head scores;
// labels drawn from the other turn make the other the choice.
TEST(Refine, TheTurnChosenFromThePseudoLabelsIsTheOneTheyWereDrawnFrom) {
  auto scene = four_part_scene("refine_view");
  scene.c.model.viewpoints = 2;
  at::manual_seed(1);
  scene.net = model::LepardNet(model_options(scene.c, scene.d.clusters));
  auto& net = scene.net;
  const auto& c = scene.c;
  const auto grid = model::surface_grid(net->options());
  const int64_t b = scene.d.images.size(0), r = c.loss.render_size;
  at::NoGradGuard no_grad;
  const auto raw = net->forward_raw(scene.d.images);
  auto turned = [&](int64_t v) {
    auto one = raw;
    one.view = at::full({b}, v, at::kLong);
    return net->decode(one);
  };
  for (int64_t v : {0, 1}) {
    // One cluster: the hard silhouette of turn v's parts.
    const auto verts = model::reconstruct(turned(v), grid, model::flow_options(net->options())).image;
    const auto labels = (render::rasterize_hard(verts, grid.faces, r, r).part_id >= 0).to(at::kLong);
    RefineOptions o{0, 0.05};
    o.choose_view = true;
    const auto chosen = refine(net, c, scene.d.images, labels, {}, o).prediction;
    EXPECT_TRUE(chosen.camera.rotation.equal(turned(v).camera.rotation)) << "labels from turn " << v;
    EXPECT_FALSE(chosen.camera.rotation.equal(turned(1 - v).camera.rotation));
    // Without the choice, the head's scores decide, whatever the labels.
    const auto head = refine(net, c, scene.d.images, labels, {}, RefineOptions{0, 0.05}).prediction;
    EXPECT_TRUE(head.camera.rotation.equal(net->decode(raw).camera.rotation));
  }
}

}  // namespace
}  // namespace lepard::train
