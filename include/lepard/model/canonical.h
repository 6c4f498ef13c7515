#pragma once
// Which end of a part is which: one naming of every part's surface across images.
//
// A part's surface is read on the fixed (u, v) grid, so vertex (k, v) of one image's
// reconstruction corresponds to vertex (k, v) of another's (core/surface_grid.h). A
// superquadric is nearly symmetric under the half-turn about its x axis, and the network is
// free to turn a part end over end between images: a leg whose +z pole is at the hoof in one
// image has it at the hip in the next (docs/BENCHMARKS.md, "Parts that turn end over end
// between images"). The surface is the same either way; only its naming differs, and with it
// every correspondence read from vertex indices (keypoint transfer, lepard-infer's meshes).
//
// The part template fixes the naming. Each part's pole-to-pole direction in the image,
// mirrored when the animal faces the other way than the template's layout, is compared with the
// template's direction for that part; a part that points against it is read through
// core::half_turn_permutation (the half-turn about the part's x axis, a rotation, so meshes
// keep their outward faces). The comparison is in the image plane because that is what a
// single image determines: the depth of a limb's axis is where the reconstructions disagree
// most. The facing is the mirror (x -> -x) that best lines the image's part centres up with
// the layout. No annotation is involved: the template is fitted to the model's own
// reconstructions of its training images at the end of training and stored in the checkpoint.
//
//   auto r = model::reconstruct(prediction, grid, flow);
//   model::canonicalize(r, net->part_template(), grid);  // a no-op without a template
#include <lepard/core/surface_grid.h>
#include <lepard/model/model.h>
#include <lepard/model/reconstruct.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lepard::model {

// Per-image facing and per-part image directions of reconstructions: image (B, K, V, 3),
// normalised image x, y (and depth) of every surface point (Reconstruction::image).
//   centres (B, K, 2): each part's mean surface point minus the mean over the parts
//   axes    (B, K, 2): north pole minus south pole (vertex V-1 minus vertex 0)
struct PartImageGeometry {
  at::Tensor centres;
  at::Tensor axes;
};
PartImageGeometry part_image_geometry(const at::Tensor& image);

// +1 or -1 per image (B): the sign of sum_k centres_kx layout_kx, +1 where it is 0.
at::Tensor facing(const at::Tensor& centres, const at::Tensor& layout);

// The template (PartTemplate, model.h): layout (K, 2), the mean part centres of images turned
// to face as it does, and axes (K, 2), each part's unit pole-to-pole direction in that frame
// (the principal direction of the mirrored axes, its sign the one most of the images agree
// with). Float64 on the CPU.
//
// Fits the template to reconstructions (N, K, V, 3), N >= 1: the facing and the layout are
// refined in turn from the first image's layout until no facing changes (at most 50 rounds).
PartTemplate fit_part_template(const at::Tensor& image);

// How many images the template of a trained model is fitted on: the first of its training set.
constexpr int64_t kPartTemplateImages = 512;

// The network's reconstructions of the first (up to) kPartTemplateImages of `images`
// (B, 3, S, S), in batches of `batch`, on `grid`, fitted as above. labels: the pseudo-labels
// a model.label_input network needs. What the trainer stores in its last checkpoint and
// lepard-eval fits for a checkpoint without one.
PartTemplate fit_part_template(LepardNet& net, const at::Tensor& images, const at::Tensor& labels,
                               const core::SurfaceGrid& grid, int64_t batch = 32);

// (B, K) bool: the parts of reconstructions (B, K, V, 3) whose mirrored pole-to-pole direction
// points against the template's (dot product < 0).
at::Tensor part_turns(const at::Tensor& image, const PartTemplate& t);

// points (B, K, V, C) with the parts where turns (B, K) is true read through
// core::half_turn_permutation(grid) (V = grid.num_vertices()).
at::Tensor turn_parts(const at::Tensor& points, const at::Tensor& turns, const core::SurfaceGrid& grid);

// Names every part's surface of r (image, world and local when defined) as the template does.
// Returns the turns (B, K), undefined for an undefined template (r unchanged).
at::Tensor canonicalize(Reconstruction& r, const PartTemplate& t, const core::SurfaceGrid& grid);

}  // namespace lepard::model
