#pragma once
// Explicit part-to-cluster ownership (docs/design.md "Training signal", item 2): which pseudo-label
// clusters each primitive stands for. Shared by every image; every foreground cluster is
// owned by at least one part; several parts may own one cluster (the leg segments share the
// leg clusters); each part owns one, or with a slack, the clusters it cannot tell apart.
//
// Initialised from statistics, not from an index: over a sample of training images, each
// cluster's pseudo-label region and each part's projected template region (the untrained
// network's prediction, hard-rasterised) are summarised by where they sit vertically in
// their object's box (0 top, 1 bottom), how elongated they are (square root of the ratio of
// the principal second moments) and their share of the object's area. The assignment
// minimises the summed cost
//     ((y_k - y_c) / 0.15)^2 + (ln(e_k / e_c) / 0.7)^2 + (ln(a_k / a_c) / 2)^2
// subject to every cluster being owned (exact, by dynamic programming over the set of
// covered clusters), so the template's low thin cylinders go to low elongated clusters (the
// legs) and its compact blobs to the body's. Horizontal position is not used: animals face
// either way.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lepard::train {

struct RegionStats {
  double y = 0;           // centroid height in the object's box, 0 top .. 1 bottom
  double elongation = 1;  // sqrt(lambda_max / lambda_min) of the pixel covariance, >= 1
  double area = 0;        // share of the object's pixels
  int64_t images = 0;     // images the region appears in
};

// Statistics of regions 1..regions of label maps (N, H, W) (0 = none): averaged over the
// images where each appears; the object's box is that of all non-zero pixels of the image.
std::vector<RegionStats> region_stats(const at::Tensor& maps, int64_t regions);

// The ownership (K, C) float 0/1 minimising the cost above with every cluster owned; a
// cluster that appears in no image is owned by nobody. Requires K >= the clusters present.
// With slack > 0, each part also owns every other present cluster whose cost is within
// `slack` of the cost of the cluster it was assigned: clusters a part cannot tell apart
// (two leg clusters that split the legs between them) become one region for it.
// With capacity > 0, no cluster keeps more than `capacity` parts (before the slack): while one
// has more, the move of one of its parts to a cluster with room that costs least is made (a
// greedy repair of the exact assignment); capacity x the clusters present must reach K.
at::Tensor assign_ownership(const std::vector<RegionStats>& parts, const std::vector<RegionStats>& clusters,
                            double slack = 0.0, int64_t capacity = 0);

// From hard-rasterised part maps (N, H, W) int64 (-1 background) and pseudo-labels (N, H, W)
// (0 background, 1..C) of the same images. The clusters flagged in `exclude` (C entries, or
// empty) are owned by nobody, as if absent (the rim: loss.rim_share).
at::Tensor initial_ownership(const at::Tensor& part_maps, const at::Tensor& labels, int64_t parts, int64_t clusters,
                             double slack = 0.0, int64_t capacity = 0, const std::vector<bool>& exclude = {});

// For each cluster 1..C of label maps (N, H, W) (0 background), the share of its pixels, pooled
// over the maps, that touch a background pixel among their 8 neighbours (pixels beyond the
// map's edge are not background); 0 for a cluster with no pixel. A cluster of the outline's
// mixed cells, half object and half background in the features, sits near 1 (on the
// 1,200-horse benchmark's 16 clusters two have 0.98, the others 0.07-0.55).
std::vector<double> rim_shares(const at::Tensor& labels, int64_t clusters);

// The clusters' left/right mirror, estimated from label maps alone (train.flip_clusters
// mirror): a horizontal flip of an image shows a mirrored animal, and where the clusters tell
// the animal's left from its right (a near-side leg cluster and a far-side one), the flipped
// labels must swap each cluster with its mirror to look like the labels of a real image.
//
// Each image's facing is the sign of its first principal component over the clusters'
// horizontal offsets from the object's centroid (head and tail clusters sit on opposite sides;
// the sign of the whole is arbitrary and does not matter). Over the images clearly seen from
// the side (the half with the larger component), each cluster is summarised separately for
// the two facings: its share of images, of the object's area, its centroid height in the
// object's box and its horizontal offset towards the facing. Flipping an image facing one way
// gives one facing the other, so a cluster's mirror is the cluster whose statistics in the
// other facing are its own; the pairing (an involution: pairs and clusters that are their own
// mirror) minimises the summed squared differences, each over its standard error, exactly by
// dynamic programming over the set of clusters; a pair must lower that sum by more than 8
// (clusters alike in both facings stay their own). labels (N, H, W), 0 background, 1..C
// (C <= 20). On the 1,200-horse benchmark's 16 surrogate clusters it pairs each of the eight
// leg clusters with the cluster of the mirrored leg label (docs/training.md, "Batches").
struct ClusterMirror {
  std::vector<int64_t> partner;   // (C) 0-based: cluster c's mirror (c itself when unpaired or absent)
  std::vector<double> self_cost;  // (C) the cost of cluster c as its own mirror
  double cost = 0;                // the chosen pairing's cost (smaller: more alike)
  int64_t side_images = 0;        // images used (clearly seen from the side)
};
ClusterMirror estimate_cluster_mirror(const at::Tensor& labels, int64_t clusters);

// "c1<->c4 c2 c3<->c5 ..." one entry per cluster, pairs once.
std::string cluster_mirror_text(const std::vector<int64_t>& partner);

// Per-image ownership of the clusters several parts share (loss.split_shared). A shared
// cluster's pixels in one image often fall apart into pieces (the four legs of one leg
// cluster): covering their union asks each owner to reach all of them. Here, per image and
// per cluster with n >= 2 owners, the cluster's 8-connected components of at least
// `min_fraction` of its pixels in the image (at most n, the largest first; the smaller
// pieces join the nearest kept one) become clusters of their own, each given one owner so
// that the summed squared distance from the owners' projected centres to their pieces'
// centroids is least (exact up to 8 owners, closest pair first beyond); the owners left over
// join their nearest piece. The first piece keeps the cluster's id,
// the others take ids C+1, C+2, ...; a cluster with one piece, or one owner, is unchanged.
struct ImageOwnership {
  at::Tensor labels;     // (B, H, W) int64: 0 background, 1..C', C' >= C
  at::Tensor ownership;  // (B, K, C') float 0/1
};
// labels (B, H, W) int64 (0 background, 1..C); ownership (K, C); part_centers (B, K, 2) each
// part's projected centre in render::pixel_centers' coordinates (x, y in (-1, 1)).
ImageOwnership split_shared_clusters(const at::Tensor& labels, const at::Tensor& ownership,
                                     const at::Tensor& part_centers, double min_fraction);

// A readable K x C table ("part 3: cluster 5"), one line per part, and cluster -> parts.
std::string ownership_table(const at::Tensor& ownership);

// The inverse of ownership_table: a (K, C) float 0/1 tensor from the text of such a table
// (lines starting with '#' and blank lines are skipped; a header "part c1 .. cC", then one
// row per part 0..K-1 of '.' or 'x'). Throws std::invalid_argument naming `source` and the
// line when the table is malformed or is not K x C.
at::Tensor parse_ownership_table(const std::string& text, int64_t parts, int64_t clusters, const std::string& source);

}  // namespace lepard::train
