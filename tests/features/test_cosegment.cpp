// Co-segmentation on constructed collections where the answer is known: patches of an
// object made of three parts (each its own feature prototype) on a background of two
// kinds, with noise. LASSIE's rule must find the object, the clusters must be the parts,
// runs must repeat for a seed, the elbow must find three parts, PCA must order variance.
#include <lepard/features/cosegment.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/TensorIndexing.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/where.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace lepard::features {
namespace {

struct Collection {
  std::vector<at::Tensor> features, saliency, parts;  // parts: (g, g) int64, 0 = background
};

// n images of g x g patches: an ellipse-shaped object whose thirds (left to right) are
// parts 1..3, two background kinds (top and bottom halves), Gaussian noise.
Collection make_collection(int64_t n, int64_t g, int64_t d, double noise, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Orthogonal prototypes (0-2 parts, 3-4 background), so that both background kinds are
  // as far from the object's mean as each other: LASSIE's relative distance threshold
  // assumes a background that is uniformly unlike the object.
  const auto prototypes = at::eye(6, d, at::kFloat) * 5;
  Collection c;
  for (int64_t i = 0; i < n; ++i) {
    auto part = at::zeros({g, g}, at::kLong);
    auto p = part.accessor<int64_t, 2>();
    const double cx = g / 2.0 + (i % 3) - 1, cy = g / 2.0 + (i % 2), rx = g * 0.35, ry = g * 0.22;
    for (int64_t y = 0; y < g; ++y)
      for (int64_t x = 0; x < g; ++x) {
        const double ex = (x + 0.5 - cx) / rx, ey = (y + 0.5 - cy) / ry;
        if (ex * ex + ey * ey <= 1) p[y][x] = 1 + std::min<int64_t>(2, static_cast<int64_t>((ex + 1) / 2 * 3));
      }
    const auto kind = at::where(part > 0, part - 1, (at::arange(g, at::kLong).view({g, 1}) < g / 2).to(at::kLong) + 3);
    auto f = prototypes.index_select(0, kind.flatten()).view({g, g, d}) + noise * at::randn({g, g, d}, gen, at::kFloat);
    // Saliency: high on the object, below the 0.1 threshold on the background (as DINO's
    // min-max normalised CLS attention mostly is).
    auto s = (part > 0).to(at::kFloat) * 0.7 + 0.09 * at::rand({g, g}, gen, at::kFloat);
    c.features.push_back(f);
    c.saliency.push_back(s.clamp(0, 1));
    c.parts.push_back(part);
  }
  return c;
}

CosegOptions options(int64_t fg, Foreground rule = Foreground::lassie) {
  CosegOptions o;
  o.foreground = rule;
  o.fg_clusters = fg;
  o.bg_clusters = 2;
  o.kmeans.restarts = 3;
  o.kmeans.iterations = 50;
  o.kmeans.seed = 5;
  return o;
}

TEST(Cosegment, FindsTheObjectAndItsParts) {
  const auto c = make_collection(12, 20, 32, 0.3, 1);
  const auto r = cosegment(c.features, c.saliency, options(3));
  ASSERT_EQ(r.labels.size(), 12u);
  EXPECT_EQ(r.clusters, 3);
  std::vector<at::Tensor> masks, fg_labels, fg_parts;
  for (size_t i = 0; i < r.labels.size(); ++i) {
    EXPECT_EQ(r.labels[i].scalar_type(), at::kByte);
    masks.push_back((c.parts[i] > 0).to(at::kByte));
    const auto on = c.parts[i] > 0;
    fg_labels.push_back(r.labels[i].to(at::kLong).masked_select(on));
    fg_parts.push_back(c.parts[i].masked_select(on));
  }
  EXPECT_GT(foreground_iou(r.labels, masks), 0.97);
  EXPECT_GT(adjusted_rand_index(at::cat(fg_labels), at::cat(fg_parts)), 0.95);
  // Deterministic for a seed.
  const auto again = cosegment(c.features, c.saliency, options(3));
  for (size_t i = 0; i < r.labels.size(); ++i) EXPECT_TRUE(again.labels[i].equal(r.labels[i]));
}

// The label a part's patches take most often.
int64_t majority(const at::Tensor& labels, const at::Tensor& parts, int64_t part) {
  return labels.to(at::kLong).masked_select(parts == part).bincount({}, 8).argmax().item<int64_t>();
}

// A collection's clusters label other images of the same kind as they labelled the
// collection: on the collection's own images assign_labels gives cosegment's labels; on new
// images it finds the object, and each part takes the label it has in the collection. Under
// both rules.
TEST(Cosegment, AssignLabelsLabelsNewImagesWithTheCollectionsClusters) {
  const auto c = make_collection(12, 20, 32, 0.3, 1);
  const auto fresh = make_collection(6, 20, 32, 0.3, 9);
  for (auto rule : {Foreground::lassie, Foreground::vote}) {
    SCOPED_TRACE(foreground_name(rule));
    const auto r = cosegment(c.features, c.saliency, options(3, rule));
    EXPECT_EQ(r.model.foreground, rule);
    EXPECT_EQ(r.model.clusters(), 3);
    for (size_t i = 0; i < r.labels.size(); ++i)
      EXPECT_TRUE(at::equal(assign_labels(r.model, c.features[i]), r.labels[i])) << "image " << i;
    std::vector<at::Tensor> labels, masks;
    for (size_t i = 0; i < fresh.features.size(); ++i) {
      labels.push_back(assign_labels(r.model, fresh.features[i]));
      EXPECT_EQ(labels.back().sizes(), (at::IntArrayRef{20, 20}));
      EXPECT_EQ(labels.back().scalar_type(), at::kByte);
      masks.push_back((fresh.parts[i] > 0).to(at::kByte));
    }
    EXPECT_GT(foreground_iou(labels, masks), 0.97);
    const auto collection_labels = at::stack(r.labels), collection_parts = at::stack(c.parts);
    const auto new_labels = at::stack(labels), new_parts = at::stack(fresh.parts);
    for (int64_t part = 1; part <= 3; ++part) {
      const int64_t label = majority(collection_labels, collection_parts, part);
      EXPECT_GT(label, 0) << "part " << part;
      EXPECT_EQ(majority(new_labels, new_parts, part), label) << "part " << part;
      EXPECT_GT(
          (new_labels.to(at::kLong).masked_select(new_parts == part) == label).to(at::kDouble).mean().item<double>(),
          0.95)
          << "part " << part;
    }
    // Features of another dimension, or an empty model, are named.
    try {
      assign_labels(r.model, at::zeros({4, 4, 31}));
      ADD_FAILURE();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("clusters of dimension 32"), std::string::npos) << e.what();
    }
    EXPECT_THROW(assign_labels(ClusterModel{}, c.features[0]), std::invalid_argument);
  }
}

TEST(Cosegment, ElbowFindsThreePartsAndPcaOrdersVariance) {
  // Less noise than above: LASSIE's distance threshold is relative to each image's
  // farthest patch, and noisy outliers push ordinary background patches below it.
  const auto c = make_collection(12, 20, 32, 0.15, 2);
  auto o = options(8);
  o.elbow = true;
  o.pca_dims = 4;
  const auto r = cosegment(c.features, c.saliency, o);
  EXPECT_EQ(r.clusters, 3);
  ASSERT_EQ(r.pca.size(), 12u);
  EXPECT_EQ(r.pca[0].sizes(), (std::vector<int64_t>{20, 20, 4}));
  std::vector<at::Tensor> fg;
  for (size_t i = 0; i < r.labels.size(); ++i)
    fg.push_back(r.pca[i].view({-1, 4}).index({(r.labels[i] > 0).flatten()}));
  const auto var = at::cat(fg).var(0);
  for (int k = 0; k + 1 < 4; ++k) EXPECT_GE(var[k].item<double>(), var[k + 1].item<double>() - 1e-6);
  // Three parts span two directions beyond their mean: the third component is noise.
  EXPECT_GT(var[1].item<double>(), 10 * var[2].item<double>());
}

TEST(Cosegment, BadInputsAreNamed) {
  const auto c = make_collection(2, 8, 4, 0.1, 3);
  auto sal = c.saliency;
  sal[1] = at::zeros({7, 8});
  EXPECT_THROW(cosegment(c.features, sal, options(2)), std::invalid_argument);
  const std::vector<at::Tensor> none = {at::zeros({8, 8}), at::zeros({8, 8})};
  try {
    cosegment(c.features, none, options(2));
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no patch has saliency"), std::string::npos);
  }
}

// A thin object (a bar of two parts, 7% of the patches) on one kind of background whose
// saliency passes LASSIE's 0.1 threshold on 30% of its patches: the salient mean is then a
// background feature and LASSIE's rule swaps foreground and background (what the surrogate
// does to giraffes, docs/features.md). The saliency vote must not.
Collection make_thin_collection(int64_t n, double object_saliency, uint64_t seed) {
  const int64_t g = 20, d = 32;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto prototypes = at::eye(3, d, at::kFloat) * 5;  // parts 1, 2; background
  Collection c;
  for (int64_t i = 0; i < n; ++i) {
    auto part = at::zeros({g, g}, at::kLong);
    const int64_t row = 8 + i % 4, col = 3 + i % 3;
    part.narrow(0, row, 2).narrow(1, col, 7).fill_(1);
    part.narrow(0, row, 2).narrow(1, col + 7, 7).fill_(2);
    const auto kind = at::where(part > 0, part - 1, at::full({g, g}, 2, at::kLong));
    c.features.push_back(prototypes.index_select(0, kind.flatten()).view({g, g, d}) +
                         0.3 * at::randn({g, g, d}, gen, at::kFloat));
    const auto clutter = at::where(at::rand({g, g}, gen, at::kFloat) < 0.3, at::full({g, g}, 0.12, at::kFloat),
                                   at::full({g, g}, 0.01, at::kFloat));
    c.saliency.push_back(at::where(part > 0, at::full({g, g}, object_saliency, at::kFloat), clutter));
    c.parts.push_back(part);
  }
  return c;
}

TEST(Cosegment, TheSaliencyVoteKeepsAThinObjectThatLassiesRuleSwaps) {
  const auto c = make_thin_collection(12, 0.8, 4);
  std::vector<at::Tensor> masks;
  for (const auto& p : c.parts) masks.push_back((p > 0).to(at::kByte));
  // The constructed failure of the default rule.
  const auto lassie = cosegment(c.features, c.saliency, options(2));
  EXPECT_LT(foreground_iou(lassie.labels, masks), 0.2);
  auto o = options(2);
  o.foreground = Foreground::vote;
  const auto r = cosegment(c.features, c.saliency, o);
  EXPECT_EQ(r.clusters, 2);
  ASSERT_TRUE(r.model.fg_groups.defined());
  EXPECT_EQ(r.model.fg_groups.size(0), 2);   // the two parts of four groups
  EXPECT_EQ(r.model.background.size(0), 2);  // the background, split in two
  EXPECT_GT(foreground_iou(r.labels, masks), 0.97);
  std::vector<at::Tensor> fg_labels, fg_parts;
  for (size_t i = 0; i < r.labels.size(); ++i) {
    const auto on = c.parts[i] > 0;
    fg_labels.push_back(r.labels[i].to(at::kLong).masked_select(on));
    fg_parts.push_back(c.parts[i].masked_select(on));
  }
  EXPECT_GT(adjusted_rand_index(at::cat(fg_labels), at::cat(fg_parts)), 0.95);
  // The labelled foreground is vote_assign's rule applied to every (normalised) patch.
  for (size_t i = 0; i < r.labels.size(); ++i) {
    auto x = c.features[i].reshape({-1, c.features[i].size(-1)}).to(at::kFloat);
    x = x / at::linalg_vector_norm(x, 2, {1}, true).clamp_min(1e-12);
    EXPECT_TRUE(at::equal(vote_assign(x, r.model.fg_groups, r.model.background), r.labels[i].reshape({-1}) > 0))
        << "image " << i;
  }
  // The share is a fraction of the images, checked by the library as well as the CLI.
  for (double share : {0.0, 1.5}) {
    auto bad = o;
    bad.vote_share = share;
    try {
      cosegment(c.features, c.saliency, bad);
      ADD_FAILURE() << share;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("vote_share"), std::string::npos) << e.what();
    }
  }
  // The rules' names, both ways; an unknown one names its setting.
  for (auto rule : {Foreground::vote, Foreground::lassie})
    EXPECT_EQ(parse_foreground(foreground_name(rule), "--foreground"), rule);
  try {
    parse_foreground("salient", "--foreground");
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--foreground must be lassie or vote, got 'salient'"), std::string::npos);
  }
  // Nothing salient enough: the vote names itself.
  const auto dim = make_thin_collection(4, 0.05, 5);
  try {
    cosegment(dim.features, dim.saliency, o);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("saliency vote found no foreground"), std::string::npos) << e.what();
  }
  // With no background group every point is foreground.
  EXPECT_TRUE(vote_assign(at::ones({3, 2}), at::ones({1, 2}), at::zeros({0, 2})).all().item<bool>());
  EXPECT_EQ(vote_assign(at::tensor({0.f, 0.f, 1.f, 1.f}).view({2, 2}), at::zeros({1, 2}), at::ones({1, 2}))
                .to(at::kLong)
                .sum()
                .item<int64_t>(),
            1);
}

TEST(ForegroundIou, ConstructedCases) {
  const auto labels = at::tensor({3, 0, 0, 0}, at::kByte).view({2, 2});
  auto mask = at::zeros({4, 4}, at::kByte);
  mask.narrow(0, 0, 2).narrow(1, 0, 2).fill_(1);
  EXPECT_DOUBLE_EQ(foreground_iou({labels}, {mask}), 1.0);
  mask.narrow(0, 0, 2).fill_(1);
  EXPECT_DOUBLE_EQ(foreground_iou({labels}, {mask}), 0.5);
  EXPECT_DOUBLE_EQ(foreground_iou({labels, at::zeros({2, 2}, at::kByte)}, {mask, at::zeros({4, 4}, at::kByte)}), 0.75);
}

}  // namespace
}  // namespace lepard::features
