#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <vector>

namespace lepard::core {

namespace {

struct ShapeColumns {
  at::Tensor a0, a1, a2, a3, e1, e2, t1, t2, b1, b2, b3;
};

ShapeColumns split_shape(const at::Tensor& shape, const char* fn) {
  TORCH_CHECK(shape.dim() >= 1 && shape.size(-1) == kShapeDim, fn,
              ": shape (q_s) must have last dimension 11, got sizes ", shape.sizes());
  auto c = [&](int64_t i) { return shape.select(-1, i); };
  return {c(kA0), c(kA1), c(kA2), c(kA3), c(kE1), c(kE2), c(kT1), c(kT2), c(kB1), c(kB2), c(kB3)};
}

void check_trig(const at::Tensor& trig, const char* fn) {
  TORCH_CHECK(trig.dim() >= 1 && trig.size(-1) == 4, fn,
              ": trig must have last dimension 4 (cos u, sin u, cos v, sin v), got sizes ", trig.sizes());
}

void check_points(const at::Tensor& points, const char* fn) {
  TORCH_CHECK(points.dim() >= 1 && points.size(-1) == 3, fn, ": points must have last dimension 3, got sizes ",
              points.sizes());
}

}  // namespace

at::Tensor superquadric_points(const at::Tensor& shape, const at::Tensor& trig) {
  const auto q = split_shape(shape, "superquadric_points");
  check_trig(trig, "superquadric_points");
  const auto C = signed_power(trig.select(-1, kCosU), q.e1);
  const auto S = signed_power(trig.select(-1, kSinU), q.e1);
  const auto X = signed_power(trig.select(-1, kCosV), q.e2);
  const auto Y = signed_power(trig.select(-1, kSinV), q.e2);
  const auto ex = q.a0 * q.a1 * C * X;
  const auto ey = q.a0 * q.a2 * C * Y;
  const auto ez = q.a0 * q.a3 * S;
  // w = e_z / (a0 a3) = S; phi = pi b3 (e_z + b2) / (a0 a3).
  const auto phi = M_PI * q.b3 * (S + q.b2 / (q.a0 * q.a3));
  const auto sx = (q.t1 * S + 1) * ex + q.b1 * phi.cos();
  const auto sy = (q.t2 * S + 1) * ey;
  return at::stack({sx, sy, ez}, -1);
}

at::Tensor superquadric_jacobian(const at::Tensor& shape, const at::Tensor& trig) {
  const auto q = split_shape(shape, "superquadric_jacobian");
  check_trig(trig, "superquadric_jacobian");
  const auto cu = trig.select(-1, kCosU), su = trig.select(-1, kSinU);
  const auto cv = trig.select(-1, kCosV), sv = trig.select(-1, kSinV);
  const auto C = signed_power(cu, q.e1), S = signed_power(su, q.e1);
  const auto X = signed_power(cv, q.e2), Y = signed_power(sv, q.e2);
  // Derivatives of the signed powers with respect to their exponents: fexp ln|.|.
  const auto dC = signed_power_log(cu, q.e1), dS = signed_power_log(su, q.e1);
  const auto dX = signed_power_log(cv, q.e2), dY = signed_power_log(sv, q.e2);

  const auto A = q.a0 * q.a3;
  const auto ex = q.a0 * q.a1 * C * X;
  const auto ey = q.a0 * q.a2 * C * Y;
  const auto Tx = q.t1 * S + 1, Ty = q.t2 * S + 1;
  const auto pib3 = M_PI * q.b3;
  const auto phi = pib3 * (S + q.b2 / A);
  const auto bsin = q.b1 * phi.sin();  // -d(b1 cos phi)/dphi
  const auto cphi = phi.cos();

  const auto sizes = ex.sizes().vec();
  auto full = [&](const at::Tensor& t) { return t.expand(sizes); };
  const auto zero = full(ex * 0);

  // d phi / d(a0, a3, b2, b3); e1 enters phi through S.
  const auto dphi_a0 = -pib3 * q.b2 / (q.a0 * A);
  const auto dphi_a3 = -pib3 * q.b2 / (q.a3 * A);
  const auto dphi_b2 = pib3 / A;
  const auto dphi_b3 = M_PI * (S + q.b2 / A);

  std::vector<at::Tensor> row_x = {
      full(Tx * q.a1 * C * X - bsin * dphi_a0),                             // a0
      full(Tx * q.a0 * C * X),                                              // a1
      zero,                                                                 // a2
      full(-bsin * dphi_a3),                                                // a3
      full(q.t1 * dS * ex + Tx * q.a0 * q.a1 * dC * X - bsin * pib3 * dS),  // e1
      full(Tx * q.a0 * q.a1 * C * dX),                                      // e2
      full(S * ex),                                                         // t1
      zero,                                                                 // t2
      full(cphi),                                                           // b1
      full(-bsin * dphi_b2),                                                // b2
      full(-bsin * dphi_b3),                                                // b3
  };
  std::vector<at::Tensor> row_y = {
      full(Ty * q.a2 * C * Y),                           // a0
      zero,                                              // a1
      full(Ty * q.a0 * C * Y),                           // a2
      zero,                                              // a3
      full(q.t2 * dS * ey + Ty * q.a0 * q.a2 * dC * Y),  // e1
      full(Ty * q.a0 * q.a2 * C * dY),                   // e2
      zero,                                              // t1
      full(S * ey),                                      // t2
      zero,
      zero,
      zero,  // b1, b2, b3
  };
  std::vector<at::Tensor> row_z = {
      full(q.a3 * S),                                // a0
      zero,           zero,                          // a1, a2
      full(q.a0 * S),                                // a3
      full(A * dS),                                  // e1
      zero,           zero, zero, zero, zero, zero,  // e2, t1, t2, b1, b2, b3
  };
  return at::stack({at::stack(row_x, -1), at::stack(row_y, -1), at::stack(row_z, -1)}, -2);
}

at::Tensor undo_global_deformation(const at::Tensor& shape, const at::Tensor& points) {
  const auto q = split_shape(shape, "undo_global_deformation");
  check_points(points, "undo_global_deformation");
  const auto A = q.a0 * q.a3;
  const auto z = points.select(-1, 2);
  const auto w = z / A;
  const auto phi = M_PI * q.b3 * (z + q.b2) / A;
  const auto tx = (q.t1 * w + 1).clamp_min(1e-3);
  const auto ty = (q.t2 * w + 1).clamp_min(1e-3);
  const auto x0 = (points.select(-1, 0) - q.b1 * phi.cos()) / tx;
  const auto y0 = points.select(-1, 1) / ty;
  return at::stack({x0, y0, z.expand_as(x0)}, -1);
}

at::Tensor inside_outside(const at::Tensor& shape, const at::Tensor& points) {
  const auto q = split_shape(shape, "inside_outside");
  const auto e = undo_global_deformation(shape, points);
  // Logs of |coordinate| / semi-axis; the floor keeps log finite at the axes.
  constexpr double kFloor = 1e-30;
  auto log_ratio = [&](int64_t i, const at::Tensor& axis) {
    return (e.select(-1, i).abs() / axis).clamp_min(kFloor).log();
  };
  const auto lx = log_ratio(0, q.a0 * q.a1) * (2 / q.e2);
  const auto ly = log_ratio(1, q.a0 * q.a2) * (2 / q.e2);
  const auto lz = log_ratio(2, q.a0 * q.a3) * (2 / q.e1);
  const auto lxy = (q.e2 / q.e1) * lx.logaddexp(ly);
  const auto log_f = lxy.logaddexp(lz);
  return (q.e1 * log_f).exp();
}

at::Tensor part_extent(const at::Tensor& shape, double margin) {
  const auto q = split_shape(shape, "part_extent");
  const auto ext_x = q.a0 * q.a1 * (1 + q.t1.abs()) + q.b1.abs();
  const auto ext_y = q.a0 * q.a2 * (1 + q.t2.abs());
  const auto ext_z = q.a0 * q.a3;
  return at::stack({ext_x, ext_y, ext_z}, -1) * margin;
}

}  // namespace lepard::core
