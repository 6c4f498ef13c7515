#pragma once
// The paper's evaluation (Tables 1 and 2; docs/evaluation.md) and lepard's own 3D accuracy,
// on reconstructions given as projected part meshes. Every image's parts share one
// surface grid, so vertex (k, v) of one reconstruction corresponds to vertex (k, v) of
// every other; the grid may be finer than the training grid (the parts are analytic).
//
//   keypoint transfer PCK  over all ordered pairs (i, j), i != j, and every keypoint visible
//                          in both. Surface transfer (default): the keypoint of i goes to
//                          the front surface point under it in i's reconstruction (part,
//                          face, barycentric coordinates of the keypoint in the face's
//                          projection; the nearest covered pixel's point where the keypoint
//                          is not covered); the same point of j's reconstruction is
//                          projected into j. LASSIE's rule (NearestVertex): the keypoint
//                          goes to the nearest visible projected vertex instead. Correct if
//                          within the threshold of j's keypoint: 0.05 x the crop side (the
//                          paper's 0.05 x max(h, w) on square crops) and 0.1 (LASSIE).
//   part transfer PCP      a source pixel with a ground-truth part label goes to the surface
//                          point there, which is projected with j's reconstruction. When a
//                          nearer surface of j's reconstruction hides it there (or it lands
//                          on no covered pixel), the trial is occluded and counted apart;
//                          otherwise it is correct if j's ground-truth label at that pixel
//                          equals the source label. Source pixels the reconstruction does
//                          not cover and points landing outside the image count as wrong.
//                          PCP = correct / visible trials; pcp_occluded = occluded / trials.
//                          Up to `pcp_pixels` pixels per image, spread evenly over its
//                          labelled pixels.
//   overall IoU            hard-rasterised union of the parts against the mask, mean over images
//   part IoU               parts matched to labels by majority overlap (match_parts below)
//   3D (with ground-truth meshes, the menagerie): both surfaces lifted to the camera frame
//                          (x_cam = x z / f, y_cam = y z / f, z), sampled by area
//                          (`surface_samples` points, deterministic), the prediction
//                          aligned by the best single scale about the camera centre and
//                          depth shift (iterated closest points; monocular scale is
//                          ambiguous). Distances in units of the ground-truth mesh's
//                          bounding-box diagonal: Chamfer = (mean pred->gt + mean
//                          gt->pred) / 2; F-score at 5% and 10% (harmonic mean of the
//                          shares of predicted points near the truth and of true points
//                          near the prediction); 3D part agreement = share of
//                          ground-truth points whose label equals the label matched to
//                          the predicted part nearest to them.
// A pair with no common keypoint adds nothing (and a set with none reports 0 with count 0).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace lepard::eval {

enum class KeypointTransfer { Surface, NearestVertex };

struct EvalOptions {
  double pck_paper = 0.05;   // fraction of the crop side
  double pck_lassie = 0.1;   // fraction of the crop side
  int64_t pcp_pixels = 256;  // source pixels per image for PCP
  // Each keypoint slot's left/right counterpart (-1: none), for EvalResult::pck_mirror;
  // empty: no mirror count (lepard-eval fills it from data::keypoint_mirror).
  std::vector<int64_t> keypoint_mirror;
  int64_t labels = 16;  // ground-truth part labels 1..labels
  // Each part label's left/right counterpart, index 0..labels (-1: none), for
  // EvalResult::pcp_mirror; empty: no mirror count (lepard-eval fills it from
  // data::part_label_mirror).
  std::vector<int64_t> label_mirror;
  KeypointTransfer transfer = KeypointTransfer::Surface;
  double visibility_tolerance = 0.01;              // relative depth within which a point counts as the front surface
  double focal = 2.0;                              // lifts projected points to the camera frame (3D metrics)
  int64_t surface_samples = 2048;                  // points per surface for the 3D metrics
  int64_t align_iterations = 10;                   // closest-point iterations of the scale / depth alignment
  double fscore_tight = 0.05, fscore_loose = 0.1;  // F-score thresholds, fractions of the diagonal
};

// A ground-truth surface: (T, W, 3) projected points like a reconstruction's (x, y in the
// crop's normalised coordinates, camera depth), its faces (G, 3) and the part label of
// each of the T pieces.
struct Mesh {
  at::Tensor verts;
  at::Tensor faces;
  std::vector<int64_t> labels;
};

struct EvalInputs {
  at::Tensor verts;          // (N, K, V, 3) the reconstructions, projected
  at::Tensor faces;          // (F, 3)
  at::Tensor masks;          // (N, S, S) ground-truth masks
  at::Tensor part_labels;    // (N, S, S) ground-truth labels 0..labels; undefined: no PCP, part IoU
  at::Tensor keypoints;      // (N, P, 3) x, y in crop pixels, visible; undefined: no PCK
  std::vector<Mesh> meshes;  // one per image, or empty: no 3D metrics
};

struct EvalResult {
  int64_t images = 0;
  double pck_paper = 0, pck_lassie = 0;         // keypoint transfer
  int64_t keypoint_pairs = 0;                   // (pair, keypoint) trials
  std::vector<double> pck_per_keypoint;         // PCK@pck_paper of each slot (NaN: no trials)
  std::vector<double> pck_lassie_per_keypoint;  // PCK@pck_lassie of each slot (NaN: no trials)
  // Of the trials that miss their keypoint at pck_lassie and land inside the target image with
  // ground-truth part labels given, the share that land on the ground-truth label the target's
  // keypoint lies on (the right region, the wrong place in it) rather than on another label or
  // the background. NaN: no such trial.
  double pck_lassie_miss_same_label = std::numeric_limits<double>::quiet_NaN();
  // The same misses by keypoint slot (row, P) and the target's ground-truth label where they
  // land (column, 0 = background; labels + 1): which part a keypoint's misses end on.
  std::vector<std::vector<int64_t>> pck_lassie_miss_landing;
  // Share of all trials that miss their keypoint at pck_paper and land within it of the
  // keypoint's left/right counterpart (visible in the target): transfers that took the
  // mirror limb or eye (EvalOptions::keypoint_mirror).
  double pck_mirror = 0;
  double pcp = 0;           // correct among the visible transfers
  double pcp_occluded = 0;  // share of trials hidden in the target
  int64_t pcp_trials = 0;   // all trials, occluded included
  // Per source label 1..labels (index 0 unused; NaN: no trial): PCP of the trials whose source
  // pixel has that label, among those visible in the target.
  std::vector<double> pcp_per_label;
  // Visible trials that landed inside the target image, by source label (row) and the target's
  // ground-truth label there (column, 0 = background); (labels + 1)^2. A row's visible trials
  // not in it are the source pixels no part covers and the points landing outside the image.
  std::vector<std::vector<int64_t>> pcp_confusion;
  // Share of the visible trials that land on the left/right counterpart of their source label
  // (EvalOptions::label_mirror): parts that cover the other side's leg in other images.
  double pcp_mirror = 0;
  // Share of the visible trials whose source pixel no part covers: each is wrong in every
  // target, so a silhouette's misses weigh 1 / (1 - pcp_occluded) times more in PCP than
  // their share of the pixels.
  double pcp_uncovered = 0;
  double iou = 0, part_iou = 0;
  std::vector<int64_t> assignment;            // label matched to each part (-1: none)
  std::vector<double> per_label_iou;          // part IoU of each label 1..labels (NaN: absent)
  std::vector<double> missed_per_label;       // share of each label's pixels no part covers (NaN: absent)
  std::vector<std::vector<int64_t>> overlap;  // pixels of part k on label g (g = 0: background), pooled
  int64_t mesh_images = 0;                    // images with 3D metrics
  double chamfer = 0, fscore_tight = 0, fscore_loose = 0, part_agreement_3d = 0;
  double precision = 0, recall = 0;  // the silhouette's, means over images (metrics.h)
  // Per image, in input order (metrics.h; NaN where a figure does not apply: part IoU
  // without part labels, the 3D figures without a mesh).
  struct Image {
    double iou = 0, precision = 0, recall = 0, part_iou = 0;
    double chamfer = 0, fscore_tight = 0, fscore_loose = 0, part_agreement_3d = 0;
  };
  std::vector<Image> per_image;
};

EvalResult evaluate(const EvalInputs& inputs, const EvalOptions& options = {});

// Overall and part IoU of label maps given directly (the pseudo-labels' row, the
// "DINO clustering" of the paper's Table 2): maps (N, S, S) integer, 0 background and
// 1..parts a part (cluster); scored as evaluate() scores a reconstruction's hard-rasterised
// part map, with the same matching rule. No transfer metrics (a label map has no surface).
EvalResult evaluate_label_maps(const at::Tensor& maps, int64_t parts, const at::Tensor& masks,
                               const at::Tensor& part_labels, const EvalOptions& options = {});

// 3D accuracy of one reconstruction (K, V, 3) with faces (F, 3) against a ground-truth
// mesh; `assignment` gives each predicted part's label (empty: no part agreement).
struct Accuracy3D {
  double chamfer = 0, fscore_tight = 0, fscore_loose = 0, part_agreement = 0;
  double scale = 1, depth_shift = 0;  // the alignment found
};
Accuracy3D accuracy_3d(const at::Tensor& verts, const at::Tensor& faces, const Mesh& truth,
                       const std::vector<int64_t>& assignment, const EvalOptions& options = {});

// Area-weighted, deterministic points on a surface given in the camera frame:
// verts (K, V, 3), faces (F, 3) -> points (n, 3) float64 and the part of each (n) int64.
std::pair<at::Tensor, at::Tensor> sample_surface(const at::Tensor& camera_verts, const at::Tensor& faces, int64_t n);

// Projected points (..., 3) (x, y normalised, depth) -> the camera frame (x z / f, y z / f, z).
at::Tensor lift_to_camera(const at::Tensor& projected, double focal);

// The q-quantile (q = 1: the largest) of the distances in pixels between neighbouring vertices
// of projected parts (B, K, V, 3) along the faces' edges, at an S x S image: how finely a grid
// meshes them. A quantile, because squarish superquadrics (small e1, e2) bunch their vertices
// at the corners, and the few long edges across their flat sides shrink only slowly with the grid.
double edge_pixels(const at::Tensor& verts, const at::Tensor& faces, int64_t size, double q = 1.0);

}  // namespace lepard::eval
