// The paper's metrics on constructed cases: the synthetic generator's own ground-truth
// meshes, evaluated as if they were predictions, score near perfectly; parts permuted in
// half of the images lose part IoU, PCP and PCK; no common keypoint divides nothing by zero.
#include <lepard/data/menagerie.h>
#include <lepard/eval/evaluate.h>

#include <ATen/ATen.h>

#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lepard::eval {
namespace {

struct Set {
  at::Tensor verts, faces, masks, parts, keypoints;
};

Set ground_truth_set(int64_t n, int64_t size) {
  std::vector<at::Tensor> verts, masks, parts, kps;
  Set s;
  for (int64_t i = 0; i < n; ++i) {
    const auto img = data::render_synthetic("horse", size, 100 + static_cast<uint64_t>(i));
    if (!verts.empty() && img.mesh.size(0) != verts[0].size(0)) ADD_FAILURE() << "tube count differs between horses";
    verts.push_back(img.mesh);
    masks.push_back(img.mask);
    parts.push_back(img.parts);
    kps.push_back(img.keypoints);
    s.faces = img.mesh_faces;
  }
  s.verts = at::stack(verts);
  s.masks = at::stack(masks);
  s.parts = at::stack(parts);
  s.keypoints = at::stack(kps);
  return s;
}

TEST(Evaluate, GroundTruthMeshesScoreNearPerfectly) {
  const auto s = ground_truth_set(12, 128);
  const auto r = evaluate(s.verts, s.faces, s.masks, s.parts, s.keypoints);
  EXPECT_EQ(r.images, 12);
  EXPECT_GT(r.keypoint_pairs, 500);
  EXPECT_GT(r.pck_paper, 0.95) << "PCK@0.05 " << r.pck_paper;
  EXPECT_GE(r.pck_lassie, r.pck_paper);
  EXPECT_GT(r.iou, 0.95);
  EXPECT_GT(r.part_iou, 0.9);
  // PCP does not test visibility in the target (as the paper describes it): a point that a
  // nearer part hides there reads that part's label, so even the truth scores below 1.
  EXPECT_GT(r.pcp, 0.7);
  std::printf("ground truth as prediction: PCK@0.05 %.4f PCK@0.1 %.4f PCP %.4f IoU %.4f part IoU %.4f (%lld pairs)\n",
              r.pck_paper, r.pck_lassie, r.pcp, r.iou, r.part_iou, static_cast<long long>(r.keypoint_pairs));
}

TEST(Evaluate, PermutedPartsLosePartIouPcpAndPck) {
  const auto s = ground_truth_set(12, 128);
  const auto base = evaluate(s.verts, s.faces, s.masks, s.parts, s.keypoints);
  // Every part takes the next part's place in every other image: silhouettes are unchanged,
  // correspondences and the part-to-label assignment are not.
  auto permuted = s.verts.clone();
  for (int64_t i = 1; i < permuted.size(0); i += 2) permuted[i] = s.verts[i].roll(1, 0);
  const auto r = evaluate(permuted, s.faces, s.masks, s.parts, s.keypoints);
  EXPECT_NEAR(r.iou, base.iou, 1e-9);
  EXPECT_LT(r.part_iou, base.part_iou - 0.2);
  EXPECT_LT(r.pcp, base.pcp - 0.2);
  EXPECT_LT(r.pck_paper, base.pck_paper - 0.2);
  // The same permutation in every image changes nothing but the assignment.
  const auto all = evaluate(s.verts.roll(1, 1), s.faces, s.masks, s.parts, s.keypoints);
  EXPECT_NEAR(all.part_iou, base.part_iou, 1e-9);
  EXPECT_NEAR(all.pcp, base.pcp, 1e-9);
}

TEST(Evaluate, NoCommonKeypointsIsNotADivisionByZero) {
  auto s = ground_truth_set(2, 64);
  s.keypoints.select(2, 2).zero_();
  s.keypoints[0].narrow(0, 0, 7).select(1, 2).fill_(1);
  s.keypoints[1].narrow(0, 7, 7).select(1, 2).fill_(1);
  const auto r = evaluate(s.verts, s.faces, s.masks, s.parts, s.keypoints);
  EXPECT_EQ(r.keypoint_pairs, 0);
  EXPECT_EQ(r.pck_paper, 0.0);
  EXPECT_EQ(r.pck_lassie, 0.0);
  EXPECT_FALSE(std::isnan(r.pcp));
  // One image: no pairs at all.
  const auto one = evaluate(s.verts.narrow(0, 0, 1), s.faces, s.masks.narrow(0, 0, 1), s.parts.narrow(0, 0, 1),
                            s.keypoints.narrow(0, 0, 1));
  EXPECT_EQ(one.keypoint_pairs, 0);
  EXPECT_EQ(one.pcp_trials, 0);
}

}  // namespace
}  // namespace lepard::eval
