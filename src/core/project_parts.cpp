#include "project_parts_kernel.h"

#include <lepard/core/camera.h>
#include <lepard/core/jacobian.h>
#include <lepard/core/project_parts.h>
#include <lepard/core/rotation.h>
#include <lepard/core/superquadric.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <utility>
#include <vector>

namespace lepard::core {

namespace detail {

namespace {
// The part-frame points p = s + d and the object-frame points x = c + R p, (B, K, V, 3) each.
std::pair<at::Tensor, at::Tensor> part_and_object_points(const at::Tensor& center, const at::Tensor& rotation,
                                                         const at::Tensor& shape, const at::Tensor& local,
                                                         const at::Tensor& trig) {
  const auto s = superquadric_points(shape.unsqueeze(-2), trig);
  auto p = local.defined() ? s + local : s;
  auto x = center.unsqueeze(-2) + rotate_points(rotation.unsqueeze(-2), p);
  return {std::move(p), std::move(x)};
}
}  // namespace

at::Tensor project_parts_forward_tensor_ops(const ProjectPartsInputs& in) {
  const auto x = part_and_object_points(in.center, in.rotation, in.shape, in.local, in.trig).second;
  if (in.world) return x;
  const auto xc = camera_transform(Camera{in.camera_rotation, in.camera_translation, in.focal}, x);
  return at::cat({perspective_project(xc, in.focal), xc.narrow(-1, 2, 1)}, -1);
}

ProjectPartsGrads project_parts_backward_tensor_ops(const ProjectPartsInputs& in, const at::Tensor& grad) {
  const int64_t B = in.shape.size(0);
  const auto [p, x] = part_and_object_points(in.center, in.rotation, in.shape, in.local, in.trig);
  ProjectPartsGrads out;
  at::Tensor h;  // dE/dx (B, K, V, 3)
  if (in.world) {
    h = grad;
  } else {
    const auto xc = camera_transform(Camera{in.camera_rotation, in.camera_translation, in.focal}, x);
    const auto P = projection_jacobian(xc, in.focal);  // (B, K, V, 2, 3)
    const auto h_cam = grad.narrow(-1, 0, 2).unsqueeze(-2).matmul(P).squeeze(-2) +
                       at::cat({at::zeros_like(grad.narrow(-1, 0, 2)), grad.narrow(-1, 2, 1)}, -1);
    const auto Rc = quaternion_to_matrix(in.camera_rotation).view({B, 1, 1, 3, 3});
    h = h_cam.unsqueeze(-2).matmul(Rc).squeeze(-2);
    out.camera_translation = h_cam.sum({1, 2});
    const auto Bc = rotation_jacobian(in.camera_rotation.view({B, 1, 1, 4}), x);  // (B, K, V, 3, 4)
    out.camera_rotation = h_cam.unsqueeze(-2).matmul(Bc).squeeze(-2).sum({1, 2});
  }
  const auto L = model_jacobian(in.rotation.unsqueeze(-2), in.shape.unsqueeze(-2), in.trig, p);  // (B, K, V, 3, 21)
  const auto gq = h.unsqueeze(-2).matmul(L).squeeze(-2);                                         // (B, K, V, 21)
  out.center = gq.narrow(-1, kCenterCol, kCenterDim).sum(2);
  out.rotation = gq.narrow(-1, kRotationCol, kRotationDim).sum(2);
  out.shape = gq.narrow(-1, kShapeCol, 11).sum(2);
  if (in.local.defined()) out.local = gq.narrow(-1, kLocalCol, kLocalDim);
  return out;
}

}  // namespace detail

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Custom Functions reject undefined inputs, so absent ones (no local deformation, no
// camera in world space) travel as empty (0-element) tensors.
at::Tensor empty_if_absent(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t.contiguous() : at::empty({0}, like.options());
}
at::Tensor absent_if_empty(const at::Tensor& t) { return t.numel() == 0 ? at::Tensor() : t; }

detail::ProjectPartsInputs unpack(const variable_list& t, double focal, bool world) {
  return {t[0], t[1], t[2], absent_if_empty(t[3]), absent_if_empty(t[4]), absent_if_empty(t[5]), t[6], focal, world};
}

class ProjectPartsFunction : public torch::autograd::Function<ProjectPartsFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, at::Tensor center, at::Tensor rotation, at::Tensor shape,
                            at::Tensor local, at::Tensor camera_rotation, at::Tensor camera_translation,
                            at::Tensor trig, double focal, std::vector<double> weights, bool world, bool use_kernel) {
    ctx->save_for_backward({center, rotation, shape, local, camera_rotation, camera_translation, trig});
    ctx->saved_data["focal"] = focal;
    ctx->saved_data["weights"] = weights;
    ctx->saved_data["world"] = world;
    ctx->saved_data["use_kernel"] = use_kernel;
    const auto in = unpack({center, rotation, shape, local, camera_rotation, camera_translation, trig}, focal, world);
    return use_kernel ? detail::project_parts_forward_cpu(in) : detail::project_parts_forward_tensor_ops(in);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto in = unpack(saved, ctx->saved_data["focal"].toDouble(), ctx->saved_data["world"].toBool());
    const auto w = ctx->saved_data["weights"].toDoubleVector();
    variable_list result(11);
    const auto& grad = grad_outputs[0];
    if (!grad.defined()) return result;
    const auto g = ctx->saved_data["use_kernel"].toBool() ? detail::project_parts_backward_cpu(in, grad)
                                                          : detail::project_parts_backward_tensor_ops(in, grad);
    // Per-group weights of the generalized forces (paper eq. 11).
    auto weighted = [](const at::Tensor& t, double weight) { return (!t.defined() || weight == 1.0) ? t : t * weight; };
    result[0] = weighted(g.center, w[0]);
    result[1] = weighted(g.rotation, w[1]);
    result[2] = weighted(g.shape, w[2]);
    result[3] = weighted(g.local, w[3]);
    result[4] = weighted(g.camera_rotation, w[4]);
    result[5] = weighted(g.camera_translation, w[4]);
    return result;
  }
};

void check_params(const PartParams& params, const at::Tensor& local, const Camera& camera, const SurfaceGrid& grid,
                  PointSpace space) {
  TORCH_CHECK(params.shape.defined() && params.shape.dim() == 3 && params.shape.size(2) == 11,
              "project_parts: params.shape (q_s) must be (B, K, 11), got sizes ",
              params.shape.defined() ? params.shape.sizes() : at::IntArrayRef{});
  const int64_t B = params.shape.size(0), K = params.shape.size(1), V = grid.num_vertices();
  TORCH_CHECK(params.shape.is_floating_point(), "project_parts: parameters must be floating point");
  auto check = [&](const at::Tensor& t, std::vector<int64_t> sizes, const char* name) {
    TORCH_CHECK(t.defined() && t.sizes() == at::IntArrayRef(sizes), "project_parts: ", name, " must have sizes ",
                at::IntArrayRef(sizes), ", got ", t.defined() ? t.sizes() : at::IntArrayRef{});
    TORCH_CHECK(t.scalar_type() == params.shape.scalar_type() && t.device() == params.shape.device(),
                "project_parts: ", name, " must have the dtype and device of params.shape (",
                params.shape.scalar_type(), ", ", params.shape.device(), "), got ", t.scalar_type(), ", ", t.device());
  };
  check(params.center, {B, K, 3}, "params.center (q_c)");
  check(params.rotation, {B, K, 4}, "params.rotation (q_theta)");
  if (local.defined()) check(local, {B, K, V, 3}, "local (d)");
  if (space == PointSpace::Image) {
    check(camera.rotation, {B, 4}, "camera.rotation");
    check(camera.translation, {B, 3}, "camera.translation");
  }
}

}  // namespace

at::Tensor project_parts(const PartParams& params, const at::Tensor& local, const Camera& camera,
                         const SurfaceGrid& grid, const GroupWeights& weights, PointSpace space, Backend backend) {
  check_params(params, local, camera, grid, space);
  const bool on_cpu = params.shape.device().is_cpu();
  TORCH_CHECK(backend != Backend::Kernel || on_cpu, "project_parts: Backend::Kernel needs CPU tensors, got ",
              params.shape.device());
  const bool use_kernel = backend == Backend::Kernel || (backend == Backend::Auto && on_cpu);
  const bool world = space == PointSpace::World;
  const auto& like = params.shape;
  return ProjectPartsFunction::apply(
      params.center.contiguous(), params.rotation.contiguous(), params.shape.contiguous(), empty_if_absent(local, like),
      empty_if_absent(world ? at::Tensor() : camera.rotation, like),
      empty_if_absent(world ? at::Tensor() : camera.translation, like), grid.trig_like(params.shape), camera.focal,
      std::vector<double>{weights.center, weights.rotation, weights.shape, weights.local, weights.camera}, world,
      use_kernel);
}

at::Tensor assemble_parts(const PartParams& params, const at::Tensor& local, const SurfaceGrid& grid) {
  return detail::part_and_object_points(params.center, params.rotation, params.shape, local,
                                        grid.trig_like(params.shape))
      .second;
}

at::Tensor project_parts_reference(const PartParams& params, const at::Tensor& local, const Camera& camera,
                                   const SurfaceGrid& grid, PointSpace space) {
  check_params(params, local, camera, grid, space);
  return detail::project_parts_forward_tensor_ops({params.center, params.rotation, params.shape, local, camera.rotation,
                                                   camera.translation, grid.trig_like(params.shape), camera.focal,
                                                   space == PointSpace::World});
}

}  // namespace lepard::core
