#pragma once
// The paper's evaluation (Tables 1 and 2; FACTS.md section 1) on reconstructions given as
// projected part meshes: every image's parts share one surface grid, so vertex (k, v) of
// one reconstruction corresponds to vertex (k, v) of every other.
//
//   keypoint transfer PCK  over all ordered pairs (i, j), i != j, and every keypoint visible
//                          in both: the keypoint of i goes to the nearest visible projected
//                          vertex of i's reconstruction; the same vertex of j's reconstruction
//                          is projected into j; correct if within the threshold of j's
//                          keypoint. Thresholds: 0.05 x the crop side (the paper's
//                          0.05 x max(h, w) on square crops) and 0.1 x the crop side (LASSIE).
//   part transfer PCP      the same for pixels: a source pixel with a ground-truth part label,
//                          covered by the source reconstruction, goes to the surface point
//                          there (part, face, barycentric coordinates), which is projected
//                          with j's reconstruction; correct if j's ground-truth label at that
//                          pixel equals the source label. Source pixels the reconstruction
//                          does not cover count as wrong. Up to `pcp_pixels` pixels per image,
//                          spread evenly over its labelled pixels.
//   overall IoU            hard-rasterised union of the parts against the mask, mean over images
//   part IoU               train::part_iou: parts assigned to labels by majority overlap
// A pair with no common keypoint adds nothing (and a set with none reports 0 with count 0).
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::eval {

struct EvalOptions {
  double pck_paper = 0.05;   // fraction of the crop side
  double pck_lassie = 0.1;   // fraction of the crop side
  int64_t pcp_pixels = 256;  // source pixels per image for PCP
  int64_t labels = 16;       // ground-truth part labels 1..labels
};

struct EvalResult {
  int64_t images = 0;
  double pck_paper = 0, pck_lassie = 0;  // keypoint transfer
  int64_t keypoint_pairs = 0;            // (pair, keypoint) trials
  double pcp = 0;
  int64_t pcp_trials = 0;
  double iou = 0, part_iou = 0;
};

// verts: (N, K, V, 3) projected parts (x, y in normalised image coordinates, depth);
// faces: (F, 3); masks, part_labels: (N, S, S) ground truth (part_labels may be undefined:
// no PCP or part IoU); keypoints: (N, P, 3) x, y in crop pixels and visibility (may be
// undefined: no PCK).
EvalResult evaluate(const at::Tensor& verts, const at::Tensor& faces, const at::Tensor& masks,
                    const at::Tensor& part_labels, const at::Tensor& keypoints, const EvalOptions& options = {});

}  // namespace lepard::eval
