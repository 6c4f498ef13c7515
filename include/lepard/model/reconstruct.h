#pragma once
// From a network prediction to surfaces: the one entry point that training validation,
// lepard-eval, lepard-infer and test-time refinement share (no loss type involved).
//
//   const auto r = model::reconstruct(net->forward(images), grid, model::flow_options(net->options()));
//   r.image  (B, K, V, 3): normalised image x, y and camera depth of every surface point
//   r.world  (B, K, V, 3): the same points in the object's frame
//   r.local  (B, K, V, 3): local displacement in each part's frame (undefined without q_d)
//
// V = grid.num_vertices(); any grid works, e.g. a finer one than training's for evaluation.
#include <lepard/core/local_flow.h>
#include <lepard/core/surface_grid.h>
#include <lepard/model/model.h>

#include <ATen/core/Tensor.h>

namespace lepard::model {

struct Reconstruction {
  at::Tensor local;
  at::Tensor world;
  at::Tensor image;
};

// The integration of q_d a model was trained with (its flow_grid and flow_integration).
core::LocalFlowOptions flow_options(const ModelOptions& options);

// The surface grid a model was trained with (rings x segments per part).
core::SurfaceGrid surface_grid(const ModelOptions& options);

// Local displacements (B, K, V, 3) of the superquadric surfaces of `shape` (B, K, 11) under
// the velocity (B, K, 3, G, G, G); undefined when `velocity` is.
at::Tensor local_displacement(const at::Tensor& shape, const at::Tensor& velocity, const core::SurfaceGrid& grid,
                              const core::LocalFlowOptions& flow);

Reconstruction reconstruct(const Prediction& prediction, const core::SurfaceGrid& grid,
                           const core::LocalFlowOptions& flow);

// The network's projected parts (B, K, V, 3) for normalised images (B, 3, S, S) on `grid`
// (the training grid, surface_grid(net->options()), or a finer one: the parts are analytic),
// with the model's own flow options, its parts' surfaces named by its part template when it has
// one (model/canonical.h). No gradients. labels: the pseudo-labels a
// model.label_input network needs (LepardNet::forward).
at::Tensor project_images(LepardNet& net, const at::Tensor& images, const core::SurfaceGrid& grid,
                          const at::Tensor& labels = {});

}  // namespace lepard::model
