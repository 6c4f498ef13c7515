#pragma once
// The viewpoint search (model.viewpoints > 1, loss.viewpoint; docs/training.md "The camera in
// practice").
//
// Left alone, the network keeps one camera for every image and explains each change of
// viewpoint by moving the parts in the object's frame, so a part's identity becomes a place
// in the image. With model.viewpoints J > 1 the camera is the camera head's rotation turned
// by one of J turns about the object's vertical axis (model/model.h), chosen by a selection
// head. In training the search chooses the turn, per image, under which a layout shared by
// all images falls best on the pseudo-labels' clusters; the picture is rendered with that
// turn, and the selection head learns to predict it (cross-entropy, weight loss.viewpoint).
// The layout is a running mean of the part centres of the images that need no turn, started
// from one image's (widest_layout).

#include <lepard/core/camera.h>

#include <ATen/core/Tensor.h>

namespace lepard::train {

struct YawSearch {
  at::Tensor best;  // (B) int64: the hypothesis of least cost, j for the turn 2 pi j / J
  at::Tensor cost;  // (B, J) the cost of each hypothesis
};

// For each image, the turn theta_j = 2 pi j / `hypotheses` of the shared layout (K, 3) about
// the vertical axis under which the layout seen through the image's camera (rotation
// R_cam R_y(theta_j)) falls best on the pseudo-labels' clusters. The layout is taken flat
// (depth 0): the network places parts in depth freely, and its parts for an animal facing
// the other way are a mirror image that keeps their depths, which only a flat layout turned
// half round matches. The turned layout's projected part centres are moved so that their mean
// is `anchor` (B, 2), the image's own predicted centres' mean in normalised image units (the
// cost ignores where the animal is in the picture). The cost is the mean over parts of the
// squared distance from the part's centre to the nearest pixel of the clusters it owns
// (ownership (K, C) 0/1; up to `pixels` pixels per cluster), over the parts that own a cluster
// the image has. labels: (B, H, W) int64, 0 = background.
YawSearch search_yaw(const core::Camera& camera, const at::Tensor& layout, const at::Tensor& anchor,
                     const at::Tensor& ownership, const at::Tensor& labels, int64_t hypotheses, int64_t pixels = 64);

// The turn to train with (B) int64: the search's best where its cost is below `keep` times
// the cost of `own` (B) int64, the selection head's own choice; `own` elsewhere, so that
// near-ties (end-on views) do not flip from one epoch to the next. keep 1: the search's best.
at::Tensor choose_view(const YawSearch& search, const at::Tensor& own, double keep);

// The starting layout: the centres (K, 3) of the image whose parts spread widest across the
// vertical axis (a side view, most likely), so that the layout is not the mean of opposite
// views, which fits every turn alike.
at::Tensor widest_layout(const at::Tensor& centres);

}  // namespace lepard::train
