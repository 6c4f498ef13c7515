// The paper's metrics and the 3D accuracy on constructed cases: the synthetic generator's own
// ground-truth meshes, evaluated as if they were predictions, score (near) perfectly on every
// metric; rolled part order, a shifted part and a sphere each lose what they should; no
// common keypoint divides nothing by zero.
#include <lepard/core/surface_grid.h>
#include <lepard/data/keypoints.h>
#include <lepard/data/menagerie.h>
#include <lepard/eval/evaluate.h>

#include <ATen/ATen.h>

#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lepard::eval {
namespace {

EvalInputs ground_truth_set(int64_t n, int64_t size) {
  std::vector<at::Tensor> verts, masks, parts, kps;
  EvalInputs s;
  for (int64_t i = 0; i < n; ++i) {
    const auto img = data::render_synthetic("horse", size, 100 + static_cast<uint64_t>(i));
    if (!verts.empty() && img.mesh.size(0) != verts[0].size(0)) ADD_FAILURE() << "tube count differs between horses";
    verts.push_back(img.mesh);
    masks.push_back(img.mask);
    parts.push_back(img.parts);
    kps.push_back(img.keypoints);
    s.faces = img.mesh_faces;
    s.meshes.push_back(Mesh{img.mesh, img.mesh_faces, img.mesh_labels});
  }
  s.verts = at::stack(verts);
  s.masks = at::stack(masks);
  s.part_labels = at::stack(parts);
  s.keypoints = at::stack(kps);
  return s;
}

void print(const char* what, const EvalResult& r) {
  std::printf(
      "%s: PCK@0.05 %.4f PCK@0.1 %.4f PCP %.4f (occluded %.3f) IoU %.4f part IoU %.4f Chamfer %.5f "
      "F@5%% %.4f F@10%% %.4f 3D parts %.4f (%lld pairs)\n",
      what, r.pck_paper, r.pck_lassie, r.pcp, r.pcp_occluded, r.iou, r.part_iou, r.chamfer, r.fscore_tight,
      r.fscore_loose, r.part_agreement_3d, static_cast<long long>(r.keypoint_pairs));
}

TEST(Evaluate, GroundTruthMeshesScorePerfectly) {
  const auto s = ground_truth_set(12, 128);
  const auto r = evaluate(s);
  print("ground truth (surface transfer)", r);
  EXPECT_EQ(r.images, 12);
  EXPECT_GT(r.keypoint_pairs, 500);
  EXPECT_GE(r.pck_paper, 0.99);
  EXPECT_GE(r.pck_lassie, r.pck_paper);
  EXPECT_EQ(r.iou, 1.0);
  EXPECT_EQ(r.part_iou, 1.0);
  // Among the transfers visible in the target, the truth maps pixels to their own part.
  EXPECT_GE(r.pcp, 0.97);
  EXPECT_GT(r.pcp_occluded, 0.0);   // some points are hidden in other views (legs behind legs)
  EXPECT_LT(r.pcp_occluded, 0.75);  // about half: views come from all round the animal
  EXPECT_EQ(r.mesh_images, 12);
  EXPECT_LT(r.chamfer, 1e-6);
  EXPECT_EQ(r.fscore_tight, 1.0);
  EXPECT_EQ(r.fscore_loose, 1.0);
  EXPECT_EQ(r.part_agreement_3d, 1.0);
  ASSERT_EQ(r.missed_per_label.size(), 16u);
  for (const double m : r.missed_per_label) EXPECT_TRUE(std::isnan(m) || m == 0.0);
  ASSERT_EQ(r.per_image.size(), 12u);
  for (const auto& im : r.per_image) {
    EXPECT_EQ(im.iou, 1.0);
    EXPECT_EQ(im.precision, 1.0);
    EXPECT_EQ(im.recall, 1.0);
    EXPECT_EQ(im.part_iou, 1.0);
    EXPECT_LT(im.chamfer, 1e-6);
    EXPECT_EQ(im.part_agreement_3d, 1.0);
  }
  // LASSIE's nearest-visible-vertex rule on the coarse 10 x 12 tube grid is worse.
  EvalOptions lassie;
  lassie.transfer = KeypointTransfer::NearestVertex;
  const auto v = evaluate(s, lassie);
  print("ground truth (nearest vertex)", v);
  EXPECT_LT(v.pck_paper, r.pck_paper);
  EXPECT_EQ(v.keypoint_pairs, r.keypoint_pairs);
}

// Per-keypoint PCK and the mirror count: the truth transfers every keypoint and none to its
// left/right counterpart; with the left and right legs' annotations swapped in half the
// images, the leg keypoints fail between the halves and those failures land on the mirror leg,
// while the muzzle and the tail do not move.
TEST(Evaluate, SwappedLegAnnotationsCountAsMirrorTransfers) {
  for (int64_t q = 0; q < data::kNumKeypoints; ++q) {
    const int64_t m = data::keypoint_mirror(q);
    if (m >= 0) {
      EXPECT_EQ(data::keypoint_mirror(m), q) << data::keypoint_names()[static_cast<size_t>(q)];
    }
  }
  EXPECT_EQ(data::keypoint_mirror(data::keypoint_slot_from_name("rfuleg")), data::keypoint_slot_from_name("lfuleg"));
  EXPECT_EQ(data::keypoint_mirror(data::keypoint_slot_from_name("leye")), data::keypoint_slot_from_name("reye"));
  EXPECT_EQ(data::keypoint_mirror(data::keypoint_slot_from_name("muzzle")), -1);
  EXPECT_EQ(data::keypoint_mirror(data::keypoint_slot_from_name("tail")), -1);

  auto s = ground_truth_set(12, 128);
  EvalOptions o;
  for (int64_t q = 0; q < data::kNumKeypoints; ++q) o.keypoint_mirror.push_back(data::keypoint_mirror(q));
  const auto truth = evaluate(s, o);
  ASSERT_EQ(truth.pck_per_keypoint.size(), static_cast<size_t>(data::kNumKeypoints));
  // (A keypoint under another leg in the source view lands on that leg's surface: the truth
  // has one ankle at 0.89 on these 12 horses, every other keypoint at 1.)
  for (const double v : truth.pck_per_keypoint) EXPECT_TRUE(std::isnan(v) || v >= 0.85) << v;
  EXPECT_LT(truth.pck_mirror, 0.005);
  ASSERT_EQ(truth.pck_lassie_per_keypoint.size(), truth.pck_per_keypoint.size());
  for (size_t q = 0; q < truth.pck_per_keypoint.size(); ++q)
    if (!std::isnan(truth.pck_per_keypoint[q])) {
      EXPECT_GE(truth.pck_lassie_per_keypoint[q], truth.pck_per_keypoint[q]) << q;
    }

  const int64_t muzzle = data::keypoint_slot_from_name("muzzle");
  const int64_t legs[4][2] = {{6, 8}, {7, 9}, {10, 12}, {11, 13}};  // rfuleg/lfuleg, rbuleg/lbuleg, ...
  for (int64_t i = 6; i < 12; ++i)
    for (const auto& pair : legs) {
      const auto a = s.keypoints[i][pair[0]].clone();
      s.keypoints[i][pair[0]].copy_(s.keypoints[i][pair[1]]);
      s.keypoints[i][pair[1]].copy_(a);
    }
  const auto swapped = evaluate(s, o);
  EXPECT_GE(swapped.pck_per_keypoint[static_cast<size_t>(muzzle)], 0.95);
  // At 0.1 of this 128-pixel crop (12.8 px) a leg's counterpart is often near enough to pass:
  // the swapped legs score 0.82-0.92 there, the truth 1.
  EXPECT_GE(swapped.pck_lassie_per_keypoint[static_cast<size_t>(muzzle)], 0.95);
  for (const auto& pair : legs)
    for (const int64_t q : pair) {
      const double v = swapped.pck_per_keypoint[static_cast<size_t>(q)];
      const double loose = swapped.pck_lassie_per_keypoint[static_cast<size_t>(q)];
      if (!std::isnan(v)) {
        EXPECT_LT(v, 0.75) << data::keypoint_names()[static_cast<size_t>(q)];
        EXPECT_LT(loose, 0.95) << data::keypoint_names()[static_cast<size_t>(q)];
        EXPECT_GE(loose, v) << data::keypoint_names()[static_cast<size_t>(q)];
      }
    }
  // What the swap took from PCK went to the mirror count (up to the few leg keypoints whose
  // counterpart lies within the threshold of them anyway); the trial counts differ a little,
  // since a swapped annotation carries its visibility with it.
  EXPECT_GT(swapped.pck_mirror, 0.1);
  EXPECT_NEAR(swapped.pck_mirror, truth.pck_paper - swapped.pck_paper, 0.05);
  EXPECT_EQ(evaluate(s).pck_mirror, 0.0) << "no mirror map, no mirror count";
  // The misses at 0.1 land on the leg the source keypoint was on, and the target's annotation
  // lies on the other side's leg: another label. With every animal pixel given one label, the
  // same misses land on the target keypoint's label.
  EXPECT_LT(swapped.pck_lassie_miss_same_label, 0.2);
  auto one_label = s;
  one_label.part_labels = (s.part_labels > 0).to(at::kLong);
  EXPECT_GT(evaluate(one_label, o).pck_lassie_miss_same_label, 0.8);
  auto no_labels = s;
  no_labels.part_labels = at::Tensor();
  EXPECT_TRUE(std::isnan(evaluate(no_labels, o).pck_lassie_miss_same_label));
}

// Where the misses at 0.1 land is the target's label under the transferred point, not the
// label under the target's keypoint: the muzzle annotated at the tail's tip in half the images,
// whose tails are relabelled 5. Transfers into those images land on the muzzle (head) with the
// keypoint on a label-5 tail; transfers out of them land on the other images' tails (label 4).
TEST(Evaluate, KeypointMissesLandOnTheTargetsLabelUnderTheTransfer) {
  auto s = ground_truth_set(12, 128);
  const int64_t muzzle = data::keypoint_slot_from_name("muzzle"), tail = data::keypoint_slot_from_name("tail");
  for (int64_t i = 6; i < 12; ++i) {
    s.keypoints[i][muzzle].copy_(s.keypoints[i][tail]);
    s.part_labels[i].masked_fill_(s.part_labels[i] == 4, 5);
  }
  EvalOptions o;
  const auto r = evaluate(s, o);
  ASSERT_EQ(r.pck_lassie_miss_landing.size(), static_cast<size_t>(data::kNumKeypoints));
  const auto& row = r.pck_lassie_miss_landing[static_cast<size_t>(muzzle)];
  std::printf("muzzle misses: background %lld neck %lld head %lld torso %lld tail %lld relabelled tail %lld\n",
              static_cast<long long>(row[0]), static_cast<long long>(row[1]), static_cast<long long>(row[2]),
              static_cast<long long>(row[3]), static_cast<long long>(row[4]), static_cast<long long>(row[5]));
  EXPECT_EQ(row[5], 0) << "a miss counted under the target's keypoint";
  EXPECT_GT(row[2], 0);
  EXPECT_GT(row[4], 0);
  EXPECT_LT(r.pck_lassie_miss_same_label, 0.2);
  for (int64_t q = 0; q < data::kNumKeypoints; ++q)
    if (q != muzzle) {
      EXPECT_EQ(r.pck_lassie_miss_landing[static_cast<size_t>(q)][5], 0)
          << data::keypoint_names()[static_cast<size_t>(q)];
    }
}

// PCP per label, its confusion table and the mirror count: the truth keeps every label and
// moves none to its left/right counterpart; with the left and right legs' part labels swapped
// in half the images, each leg label loses about half its transfers, and they land on the
// mirror label, while the neck, head and torso do not move.
TEST(Evaluate, SwappedLegLabelsCountAsMirrorPartTransfers) {
  for (int64_t g = 0; g <= data::kNumPartLabels; ++g) {
    const int64_t m = data::part_label_mirror(g);
    if (m >= 0) {
      EXPECT_EQ(data::part_label_mirror(m), g) << data::part_label_name(g);
    }
  }
  EXPECT_EQ(data::part_label_mirror(9), 10);   // rfuleg -> lfuleg
  EXPECT_EQ(data::part_label_mirror(16), 15);  // lblleg -> rblleg
  for (const int64_t g : {0, 1, 2, 3, 4, 17}) EXPECT_EQ(data::part_label_mirror(g), -1) << g;

  auto s = ground_truth_set(12, 128);
  EvalOptions o;
  for (int64_t g = 0; g <= data::kNumPartLabels; ++g) o.label_mirror.push_back(data::part_label_mirror(g));
  const auto truth = evaluate(s, o);
  ASSERT_EQ(truth.pcp_per_label.size(), 17u);
  ASSERT_EQ(truth.pcp_confusion.size(), 17u);
  int64_t legs_present = 0;
  for (int64_t g = 1; g <= 16; ++g) {
    const double v = truth.pcp_per_label[static_cast<size_t>(g)];
    if (std::isnan(v)) continue;
    legs_present += g >= 9;
    // The diagonal is the label's correct transfers; PCP is its share of the visible ones.
    int64_t row = 0;
    for (const int64_t c : truth.pcp_confusion[static_cast<size_t>(g)]) row += c;
    EXPECT_GE(v, 0.9) << data::part_label_name(g);
    EXPECT_LE(static_cast<double>(truth.pcp_confusion[static_cast<size_t>(g)][static_cast<size_t>(g)]) /
                  static_cast<double>(row),
              1.0);
  }
  EXPECT_EQ(legs_present, 8);
  EXPECT_LT(truth.pcp_mirror, 0.01);

  const auto labels = s.part_labels.clone();
  for (int64_t i = 6; i < 12; ++i)
    for (int64_t g = 9; g <= 16; ++g) s.part_labels[i].masked_fill_(labels[i].eq(g), data::part_label_mirror(g));
  const auto swapped = evaluate(s, o);
  print("leg labels swapped in half the images", swapped);
  for (const int64_t g : {1, 2, 3}) {
    EXPECT_NEAR(swapped.pcp_per_label[static_cast<size_t>(g)], truth.pcp_per_label[static_cast<size_t>(g)], 1e-12)
        << data::part_label_name(g);
  }
  for (int64_t g = 9; g <= 16; ++g) {
    const auto& row = swapped.pcp_confusion[static_cast<size_t>(g)];
    const auto m = static_cast<size_t>(data::part_label_mirror(g));
    EXPECT_LT(swapped.pcp_per_label[static_cast<size_t>(g)], 0.75) << data::part_label_name(g);
    // Between the two halves (72 of the 132 ordered pairs) the transfers land on the mirror label.
    EXPECT_GT(row[m], row[static_cast<size_t>(g)] / 2) << data::part_label_name(g);
  }
  EXPECT_GT(swapped.pcp_mirror, 0.05);
  EXPECT_NEAR(swapped.pcp_mirror, truth.pcp - swapped.pcp, 0.02);
  EXPECT_EQ(evaluate(s).pcp_mirror, 0.0) << "no mirror map, no mirror count";
}

TEST(Evaluate, RolledPartOrderLosesPartMetricsNotTheSilhouette) {
  const auto s = ground_truth_set(12, 128);
  const auto base = evaluate(s);
  // Every part takes the next part's place in every other image: silhouettes and shapes
  // are unchanged, correspondences and the part-to-label matching are not.
  auto rolled = s;
  rolled.verts = s.verts.clone();
  for (int64_t i = 1; i < rolled.verts.size(0); i += 2) rolled.verts[i] = s.verts[i].roll(1, 0);
  const auto r = evaluate(rolled);
  print("rolled in half the images", r);
  EXPECT_NEAR(r.iou, base.iou, 1e-9);
  EXPECT_LT(r.part_iou, base.part_iou - 0.2);
  EXPECT_LT(r.pcp, base.pcp - 0.2);
  EXPECT_LT(r.pck_paper, base.pck_paper - 0.2);
  EXPECT_LT(r.part_agreement_3d, base.part_agreement_3d - 0.2);
  EXPECT_LT(r.chamfer, 0.01);  // the same surface, sampled in another order
  // The same roll in every image changes nothing but the matching.
  auto all = s;
  all.verts = s.verts.roll(1, 1);
  const auto a = evaluate(all);
  EXPECT_NEAR(a.part_iou, base.part_iou, 1e-9);
  EXPECT_NEAR(a.pcp, base.pcp, 1e-9);
  EXPECT_GT(a.part_agreement_3d, 0.9);  // the same surface, sampled in another order
}

TEST(Evaluate, AShiftedPartLosesEveryMetric) {
  const auto s = ground_truth_set(12, 128);
  const auto base = evaluate(s);
  // Move the largest part (the torso tube) and the head sideways in every image, in the
  // image plane and in depth.
  auto shifted = s;
  shifted.verts = s.verts.clone();
  const auto extent = (s.verts.select(3, 0).amax(2) - s.verts.select(3, 0).amin(2)).mean(0);  // (K)
  std::vector<int64_t> moved = {extent.argmax().item<int64_t>()};
  for (size_t t = 0; t < s.meshes[0].labels.size(); ++t)
    if (s.meshes[0].labels[t] == 2) moved.push_back(static_cast<int64_t>(t));  // LASSIE label 2: head
  ASSERT_GE(moved.size(), 2u);
  for (const int64_t k : moved) {
    shifted.verts.select(1, k).select(2, 0).add_(0.3);
    shifted.verts.select(1, k).select(2, 2).mul_(1.3);
  }
  const auto r = evaluate(shifted);
  print("largest part shifted", r);
  // Every image's own figures: the set's means are theirs, and each image lost.
  ASSERT_EQ(r.per_image.size(), 12u);
  double iou = 0, precision = 0, recall = 0, chamfer = 0;
  for (const auto& im : r.per_image) {
    EXPECT_LT(im.iou, 1.0);
    EXPECT_LT(im.part_iou, 1.0);
    EXPECT_GT(im.chamfer, 0.001);
    iou += im.iou / 12;
    precision += im.precision / 12;
    recall += im.recall / 12;
    chamfer += im.chamfer / 12;
  }
  EXPECT_NEAR(iou, r.iou, 1e-12);
  EXPECT_NEAR(precision, r.precision, 1e-12);
  EXPECT_NEAR(recall, r.recall, 1e-12);
  EXPECT_NEAR(chamfer, r.chamfer, 1e-12);
  EXPECT_LT(r.recall, 1.0);                // the moved parts leave their pixels
  EXPECT_GT(r.missed_per_label[1], 0.05);  // LASSIE label 2, the head, moved off its own pixels
  EXPECT_LT(r.precision, 1.0);
  EXPECT_LT(r.iou, base.iou - 0.05);
  EXPECT_LT(r.part_iou, base.part_iou - 0.05);
  EXPECT_LT(r.pck_paper, base.pck_paper - 0.02);
  EXPECT_LT(r.pcp, base.pcp - 0.02);
  // The moved parts leave source pixels uncovered; each such trial is wrong, so PCP cannot
  // exceed the rest. The truth covers every labelled pixel.
  EXPECT_EQ(base.pcp_uncovered, 0.0);
  EXPECT_GT(r.pcp_uncovered, 0.02);
  EXPECT_LE(r.pcp, 1.0 - r.pcp_uncovered + 1e-12);
  EXPECT_GT(r.chamfer, 0.01);
  EXPECT_LT(r.fscore_tight, 0.95);
}

TEST(Evaluate, ASphereScoresPoorlyIn3D) {
  const auto s = ground_truth_set(4, 128);
  // One sphere per image at the animal's centre and depth, as wide as its silhouette.
  const auto grid = core::make_surface_grid(16, 24);
  const auto trig = grid.trig;  // cos u, sin u, cos v, sin v
  const auto unit =
      at::stack({trig.select(1, 0) * trig.select(1, 2), trig.select(1, 1), trig.select(1, 0) * trig.select(1, 3)}, 1);
  std::vector<at::Tensor> spheres;
  for (int64_t i = 0; i < 4; ++i) {
    const auto cam = lift_to_camera(s.verts[i].to(at::kDouble).reshape({-1, 3}), 2.0);
    const auto lo = std::get<0>(cam.min(0)), hi = std::get<0>(cam.max(0));
    const auto centre = (lo + hi) / 2;
    const double radius = ((hi - lo).narrow(0, 0, 2).max() / 2).item<double>();
    const auto pts = unit * radius + centre;
    const auto z = pts.select(1, 2).unsqueeze(1);
    spheres.push_back(at::cat({pts.narrow(1, 0, 2) * 2.0 / z, z}, 1).unsqueeze(0).to(at::kFloat));
  }
  auto sphere = s;
  sphere.verts = at::stack(spheres);
  sphere.faces = grid.faces;
  const auto base = evaluate(s);
  const auto r = evaluate(sphere);
  print("sphere", r);
  EXPECT_GT(r.chamfer, 0.04);
  EXPECT_LT(r.fscore_tight, 0.6);
  EXPECT_LT(r.fscore_tight, r.fscore_loose);
  EXPECT_LT(r.part_agreement_3d, 0.7);  // one part, one label: the torso's share at most
  EXPECT_LT(r.iou, 0.8);
  EXPECT_LT(r.part_iou, 0.3);
}

TEST(Evaluate, ThreeDAlignmentUndoesScaleAndDepthShift) {
  const auto s = ground_truth_set(1, 64);
  const auto& m = s.meshes[0];
  // The same shape, twice as far and twice as large: the same picture, the same surface.
  auto far = m.verts.clone();
  far.select(2, 2).mul_(2.0).add_(0.0);
  const auto a = accuracy_3d(far, m.faces, m, {}, {});
  EXPECT_NEAR(a.scale, 0.5, 1e-6);
  EXPECT_NEAR(a.depth_shift, 0.0, 1e-6);
  EXPECT_LT(a.chamfer, 1e-6);
  EXPECT_EQ(a.fscore_tight, 1.0);
}

TEST(Evaluate, LabelMapsScoreLikeTheirHardRasterisedReconstruction) {
  const auto s = ground_truth_set(3, 64);
  // The ground-truth part map as a "pseudo-label" map with labels as clusters: perfect.
  const auto r = evaluate_label_maps(s.part_labels, 16, s.masks, s.part_labels);
  EXPECT_EQ(r.iou, 1.0);
  EXPECT_EQ(r.part_iou, 1.0);
  // Merging every label into one cluster keeps the IoU and loses part IoU.
  const auto one = evaluate_label_maps((s.part_labels > 0).to(at::kLong), 1, s.masks, s.part_labels);
  EXPECT_EQ(one.iou, 1.0);
  EXPECT_LT(one.part_iou, 0.3);
  EXPECT_THROW(evaluate_label_maps(s.part_labels.narrow(0, 0, 2), 16, s.masks, s.part_labels), std::invalid_argument);
}

TEST(Evaluate, NoCommonKeypointsIsNotADivisionByZero) {
  auto s = ground_truth_set(2, 64);
  s.keypoints.select(2, 2).zero_();
  s.keypoints[0].narrow(0, 0, 7).select(1, 2).fill_(1);
  s.keypoints[1].narrow(0, 7, 7).select(1, 2).fill_(1);
  const auto r = evaluate(s);
  EXPECT_EQ(r.keypoint_pairs, 0);
  EXPECT_EQ(r.pck_paper, 0.0);
  EXPECT_EQ(r.pck_lassie, 0.0);
  EXPECT_FALSE(std::isnan(r.pcp));
  // One image: no pairs at all.
  EvalInputs one;
  one.verts = s.verts.narrow(0, 0, 1);
  one.faces = s.faces;
  one.masks = s.masks.narrow(0, 0, 1);
  one.part_labels = s.part_labels.narrow(0, 0, 1);
  one.keypoints = s.keypoints.narrow(0, 0, 1);
  const auto o = evaluate(one);
  EXPECT_EQ(o.keypoint_pairs, 0);
  EXPECT_EQ(o.pcp_trials, 0);
}

TEST(Evaluate, EdgePixelsMeasuresTheGrid) {
  // Edges of 6.4, 3.2 and hypot(6.4, 3.2) px at 128 px.
  auto verts = at::zeros({1, 1, 3, 3});
  verts[0][0][1][0] = 0.1;
  verts[0][0][2][1] = 0.05;
  verts.select(3, 2).fill_(1);
  const auto faces = at::tensor({0, 1, 2}, at::kLong).view({1, 3});
  EXPECT_NEAR(edge_pixels(verts, faces, 128), std::hypot(6.4, 3.2), 1e-4);
  EXPECT_NEAR(edge_pixels(verts, faces, 128, 0.5), 6.4, 1e-4);
  EXPECT_NEAR(edge_pixels(verts, faces, 128, 0.1), 3.2, 1e-4);
  EXPECT_THROW(edge_pixels(verts, faces, 128, 0.0), std::invalid_argument);
}

}  // namespace
}  // namespace lepard::eval
