// project_parts(): the generalized-force Function (paper eqs. 9-11). With unit group
// weights its gradients equal autograd's through the same geometry (acceptance: 1e-8 in
// float64); other weights scale each group.
#include <lepard/core/local_flow.h>
#include <lepard/core/project_parts.h>
#include <lepard/core/rotation.h>
#include <lepard/core/superquadric.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

namespace lepard::core {
namespace {

using testing::max_abs_diff;

struct Scene {
  PartParams params;
  at::Tensor local;
  Camera camera;
  SurfaceGrid grid;

  std::vector<at::Tensor> leaves() const {
    std::vector<at::Tensor> out{params.center, params.rotation, params.shape, camera.rotation, camera.translation};
    if (local.defined()) out.push_back(local);
    return out;
  }
};

Scene make_scene(const c10::Device& device, at::ScalarType dtype, bool with_local, uint64_t seed, int64_t rings = 9,
                 int64_t segments = 12) {
  const int64_t B = 2, K = 3;
  Scene s;
  s.grid = make_surface_grid(rings, segments);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  auto leaf = [&](const at::Tensor& t) { return t.to(device, dtype).detach().requires_grad_(); };
  s.params.center = leaf(0.3 * at::randn({B, K, 3}, gen, opt));
  s.params.rotation = leaf(testing::random_quaternion({B, K}, at::kDouble, seed + 1));
  s.params.shape = leaf(testing::random_shape({B, K}, at::kDouble, seed + 2) *
                        at::tensor({0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, opt));
  if (with_local) s.local = leaf(0.03 * at::randn({B, K, s.grid.num_vertices(), 3}, gen, opt));
  s.camera.rotation = leaf(testing::random_quaternion({B}, at::kDouble, seed + 3));
  s.camera.translation = leaf(at::tensor({0.1, -0.2, 4.0, -0.1, 0.05, 5.0}, opt).view({B, 3}));
  s.camera.focal = 2.0;
  return s;
}

// Gradients of sum(out * weights) with respect to the scene's leaves.
std::vector<at::Tensor> gradients(const at::Tensor& out, const at::Tensor& weights, const Scene& s) {
  return torch::autograd::grad({(out * weights).sum()}, s.leaves(), {}, /*retain_graph=*/false,
                               /*create_graph=*/false, /*allow_unused=*/true);
}

const char* kLeafNames[] = {"q_c", "q_theta", "q_s", "camera rotation", "camera translation", "d"};

struct Case {
  Backend backend;
  PointSpace space;
  bool with_local;
};

class ProjectParts : public ::testing::TestWithParam<c10::Device> {};

// The projection written out point by point from its definition, independently of the
// library's batched tensor code: x = c + R(q_theta) (s + d), x_cam = R(q_cam) x + t, image
// point (f x_cam / z, f y_cam / z, z). Uses only superquadric_points and
// quaternion_to_matrix, which have their own tests.
at::Tensor project_by_definition(const PartParams& params, const at::Tensor& local, const Camera& camera,
                                 const SurfaceGrid& grid, PointSpace space) {
  const auto shape = params.shape.cpu().to(at::kDouble);
  const auto surface = superquadric_points(shape.unsqueeze(-2), grid.trig_like(shape));  // (B, K, V, 3)
  const auto points = local.defined() ? surface + local.cpu().to(at::kDouble) : surface;
  const auto R = quaternion_to_matrix(params.rotation.cpu().to(at::kDouble));   // (B, K, 3, 3)
  const auto Rc = quaternion_to_matrix(camera.rotation.cpu().to(at::kDouble));  // (B, 3, 3)
  const auto c = params.center.cpu().to(at::kDouble), t = camera.translation.cpu().to(at::kDouble);
  auto out = at::empty_like(points);
  const auto P = points.accessor<double, 4>();
  const auto Ra = R.accessor<double, 4>();
  const auto Rca = Rc.accessor<double, 3>();
  const auto ca = c.accessor<double, 3>();
  const auto ta = t.accessor<double, 2>();
  auto o = out.accessor<double, 4>();
  for (int64_t b = 0; b < points.size(0); ++b)
    for (int64_t k = 0; k < points.size(1); ++k)
      for (int64_t v = 0; v < points.size(2); ++v) {
        double x[3], xc[3];
        for (int i = 0; i < 3; ++i) {
          x[i] = ca[b][k][i];
          for (int j = 0; j < 3; ++j) x[i] += Ra[b][k][i][j] * P[b][k][v][j];
        }
        for (int i = 0; i < 3; ++i) {
          xc[i] = ta[b][i];
          for (int j = 0; j < 3; ++j) xc[i] += Rca[b][i][j] * x[j];
        }
        for (int i = 0; i < 3; ++i)
          o[b][k][v][i] = space == PointSpace::World ? x[i] : i < 2 ? camera.focal * xc[i] / xc[2] : xc[2];
      }
  return out;
}

TEST_P(ProjectParts, ForwardMatchesReference) {
  for (auto backend : {Backend::Auto, Backend::TensorOps}) {
    for (auto space : {PointSpace::Image, PointSpace::World}) {
      for (bool with_local : {true, false}) {
        const auto s = make_scene(GetParam(), at::kDouble, with_local, 5);
        const auto out = project_parts(s.params, s.local, s.camera, s.grid, {}, space, backend);
        const auto ref = project_parts_reference(s.params, s.local, s.camera, s.grid, space);
        const auto by_definition = project_by_definition(s.params, s.local, s.camera, s.grid, space);
        ASSERT_EQ(out.sizes(), (at::IntArrayRef{2, 3, s.grid.num_vertices(), 3}));
        EXPECT_LT(max_abs_diff(out.cpu(), by_definition), 1e-12);
        EXPECT_LT(max_abs_diff(ref.cpu(), by_definition), 1e-12);
        EXPECT_GT(by_definition.abs().max().item<double>(), 0.1);  // a scene, not zeros
      }
    }
  }
}

TEST_P(ProjectParts, UnitWeightGradientsEqualAutograd) {
  const auto device = GetParam();
  std::vector<Case> cases;
  for (auto space : {PointSpace::Image, PointSpace::World}) {
    for (bool with_local : {true, false}) {
      if (device.is_cpu()) cases.push_back({Backend::Kernel, space, with_local});
      cases.push_back({Backend::TensorOps, space, with_local});
    }
  }
  for (const auto& c : cases) {
    const auto s = make_scene(device, at::kDouble, c.with_local, 17);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
    const auto w = at::randn({2, 3, s.grid.num_vertices(), 3}, gen, at::TensorOptions().dtype(at::kDouble)).to(device);
    const auto ours = gradients(project_parts(s.params, s.local, s.camera, s.grid, {}, c.space, c.backend), w, s);
    const auto ref = gradients(project_parts_reference(s.params, s.local, s.camera, s.grid, c.space), w, s);
    for (size_t i = 0; i < ref.size(); ++i) {
      const std::string what = std::string(kLeafNames[i]) + (c.backend == Backend::Kernel ? " kernel" : " tensor ops") +
                               (c.space == PointSpace::World ? " world" : " image");
      if (c.space == PointSpace::World && (i == 3 || i == 4)) {  // the camera plays no part
        EXPECT_FALSE(ours[i].defined() && ours[i].abs().max().item<double>() > 0) << what;
        continue;
      }
      ASSERT_TRUE(ours[i].defined() && ref[i].defined()) << what;
      EXPECT_LT(max_abs_diff(ours[i], ref[i]), 1e-8) << what;
      EXPECT_GT(ref[i].abs().max().item<double>(), 1e-3) << what << ": the test needs a nonzero gradient";
    }
  }
}

TEST_P(ProjectParts, GroupWeightsScaleEachGroup) {
  const auto device = GetParam();
  const auto s = make_scene(device, at::kDouble, true, 23);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto w = at::randn({2, 3, s.grid.num_vertices(), 3}, gen, at::TensorOptions().dtype(at::kDouble)).to(device);
  GroupWeights weights;
  weights.center = 2.0;
  weights.rotation = 0.5;
  weights.shape = 3.0;
  weights.local = 0.25;
  weights.camera = 0.0;
  const double expected_scale[] = {2.0, 0.5, 3.0, 0.0, 0.0, 0.25};
  for (auto backend : {Backend::Auto, Backend::TensorOps}) {
    const auto unit =
        gradients(project_parts(s.params, s.local, s.camera, s.grid, {}, PointSpace::Image, backend), w, s);
    const auto scaled =
        gradients(project_parts(s.params, s.local, s.camera, s.grid, weights, PointSpace::Image, backend), w, s);
    for (size_t i = 0; i < unit.size(); ++i) {
      EXPECT_LT(max_abs_diff(scaled[i], unit[i] * expected_scale[i]), 1e-10) << kLeafNames[i];
    }
  }
}

// The q_d group flows on through autograd into the velocity grid of the local flow.
TEST_P(ProjectParts, LocalForcesReachTheVelocityGrid) {
  const auto device = GetParam();
  auto s = make_scene(device, at::kDouble, false, 31);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  const auto velocity = (0.1 * at::randn({2, 3, 3, 4, 4, 4}, gen, opt)).to(device).requires_grad_();
  LocalFlowOptions flow;
  flow.grid_size = 4;
  flow.integration_size = 6;
  flow.steps = 3;
  const auto trig = s.grid.trig.to(device);
  const auto surface = superquadric_points(s.params.shape.unsqueeze(-2), trig);
  const auto d = local_displacement(s.params.shape, surface, velocity, flow);
  const auto w = at::randn({2, 3, s.grid.num_vertices(), 3}, gen, opt).to(device);
  auto grads = [&](const at::Tensor& out) {
    return torch::autograd::grad({(out * w).sum()}, {velocity, s.params.shape}, {}, true, false, false);
  };
  const auto ours = grads(project_parts(s.params, d, s.camera, s.grid));
  const auto ref = grads(project_parts_reference(s.params, d, s.camera, s.grid));
  EXPECT_LT(max_abs_diff(ours[0], ref[0]), 1e-8);
  EXPECT_LT(max_abs_diff(ours[1], ref[1]), 1e-8);
  EXPECT_GT(ref[0].abs().max().item<double>(), 1e-4);
}

TEST_P(ProjectParts, Float32MatchesFloat64) {
  const auto s64 = make_scene(GetParam(), at::kDouble, true, 41, 20, 32);
  const auto s32 = make_scene(GetParam(), at::kFloat, true, 41, 20, 32);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto w =
      at::randn({2, 3, s64.grid.num_vertices(), 3}, gen, at::TensorOptions().dtype(at::kDouble)).to(GetParam());
  const auto out64 = project_parts(s64.params, s64.local, s64.camera, s64.grid);
  const auto out32 = project_parts(s32.params, s32.local, s32.camera, s32.grid);
  EXPECT_EQ(out32.scalar_type(), at::kFloat);
  EXPECT_LT(max_abs_diff(out32, out64), 1e-5);
  const auto g64 = gradients(out64, w, s64);
  const auto g32 = gradients(out32, w.to(at::kFloat), s32);
  for (size_t i = 0; i < g64.size(); ++i) {
    const double scale = std::max(1.0, g64[i].abs().max().item<double>());
    EXPECT_LT(max_abs_diff(g32[i], g64[i]) / scale, 1e-4) << kLeafNames[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, ProjectParts, ::testing::ValuesIn(testing::test_devices()), [](const auto& info) {
  return info.param.is_cpu() ? std::string("CPU") : std::string("CUDA");
});

TEST(ProjectPartsErrors, BadShapesNameTheArgument) {
  auto s = make_scene(c10::Device(c10::kCPU), at::kDouble, true, 1);
  s.params.center = s.params.center.detach().narrow(1, 0, 2);
  try {
    project_parts(s.params, s.local, s.camera, s.grid);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("params.center (q_c) must have sizes [2, 3, 3]"), std::string::npos)
        << e.what();
  }
  auto t = make_scene(c10::Device(c10::kCPU), at::kDouble, true, 1);
  t.camera.translation = at::Tensor();
  EXPECT_THROW(project_parts(t.params, t.local, t.camera, t.grid), c10::Error);
  // World space ignores the camera entirely.
  EXPECT_NO_THROW(project_parts(t.params, t.local, t.camera, t.grid, {}, PointSpace::World));
}

}  // namespace
}  // namespace lepard::core
