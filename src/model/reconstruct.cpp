#include <lepard/core/project_parts.h>
#include <lepard/core/superquadric.h>
#include <lepard/model/canonical.h>
#include <lepard/model/reconstruct.h>

namespace lepard::model {

core::LocalFlowOptions flow_options(const ModelOptions& o) {
  core::LocalFlowOptions flow;
  flow.grid_size = o.flow_grid;
  flow.integration_size = o.flow_integration;
  return flow;
}

core::SurfaceGrid surface_grid(const ModelOptions& o) { return core::make_surface_grid(o.rings, o.segments); }

at::Tensor local_displacement(const at::Tensor& shape, const at::Tensor& velocity, const core::SurfaceGrid& grid,
                              const core::LocalFlowOptions& flow) {
  if (!velocity.defined()) return {};
  const auto surface = core::superquadric_points(shape.unsqueeze(-2), grid.trig_like(shape));
  return core::local_displacement(shape, surface, velocity, flow);
}

Reconstruction reconstruct(const Prediction& p, const core::SurfaceGrid& grid, const core::LocalFlowOptions& flow) {
  Reconstruction r;
  r.local = local_displacement(p.parts.shape, p.velocity, grid, flow);
  r.world = core::assemble_parts(p.parts, r.local, grid);
  r.image = core::project_parts_reference(p.parts, r.local, p.camera, grid);
  return r;
}

at::Tensor project_images(LepardNet& net, const at::Tensor& images, const core::SurfaceGrid& grid,
                          const at::Tensor& labels) {
  at::NoGradGuard no_grad;
  auto r = reconstruct(net->forward(images, labels), grid, flow_options(net->options()));
  canonicalize(r, net->part_template(), grid);
  return r.image;
}

}  // namespace lepard::model
