// Fused CPU kernel for project_parts(): per point, the superquadric, its Jacobian J,
// assembly, camera and projection in one pass; parallel over parts.
#include "project_parts_kernel.h"

#include <lepard/core/rotation.h>
#include <lepard/core/surface_grid.h>

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <vector>

namespace lepard::core::detail {

namespace {

template <typename T>
void quaternion_matrix(const T* q, T R[3][3]) {
  const T n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const T w = q[0] / n, x = q[1] / n, y = q[2] / n, z = q[3] / n;
  R[0][0] = 1 - 2 * (y * y + z * z); R[0][1] = 2 * (x * y - w * z);     R[0][2] = 2 * (x * z + w * y);
  R[1][0] = 2 * (x * y + w * z);     R[1][1] = 1 - 2 * (x * x + z * z); R[1][2] = 2 * (y * z - w * x);
  R[2][0] = 2 * (x * z - w * y);     R[2][1] = 2 * (y * z + w * x);     R[2][2] = 1 - 2 * (x * x + y * y);
}

// The grid's cos/sin values with their log-magnitudes (0 where the value counts as zero).
template <typename T>
struct GridEntry {
  T cu, su, cv, sv, lcu, lsu, lcv, lsv;
};

template <typename T>
std::vector<GridEntry<T>> grid_entries(const at::Tensor& trig) {
  const auto t = trig.to(at::kDouble).contiguous();
  const double* p = t.data_ptr<double>();
  const int64_t V = t.size(0);
  std::vector<GridEntry<T>> out(static_cast<size_t>(V));
  auto lg = [](double x) { return std::abs(x) < kSignedPowerEps ? 0.0 : std::log(std::abs(x)); };
  auto val = [](double x) { return std::abs(x) < kSignedPowerEps ? 0.0 : x; };
  for (int64_t v = 0; v < V; ++v) {
    const double* r = p + 4 * v;
    out[v] = {T(val(r[0])), T(val(r[1])), T(val(r[2])), T(val(r[3])),
              T(lg(r[0])),  T(lg(r[1])),  T(lg(r[2])),  T(lg(r[3]))};
  }
  return out;
}

template <typename T>
inline T signed_power(T x, T log_abs, T p) {
  return x == T(0) ? T(0) : std::copysign(std::exp(p * log_abs), x);
}

// One part's constants.
template <typename T>
struct Part {
  T c[3];
  T R[3][3];
  T a0, a1, a2, a3, e1, e2, t1, t2, b1, b2, b3;
  T A, pib3, b2A;

  Part(const T* center, const T* quat, const T* q) {
    for (int i = 0; i < 3; ++i) c[i] = center[i];
    quaternion_matrix(quat, R);
    a0 = q[0]; a1 = q[1]; a2 = q[2]; a3 = q[3]; e1 = q[4]; e2 = q[5];
    t1 = q[6]; t2 = q[7]; b1 = q[8]; b2 = q[9]; b3 = q[10];
    A = a0 * a3;
    pib3 = T(M_PI) * b3;
    b2A = b2 / A;
  }
};

// Per-point quantities of the superquadric needed by forward and backward.
template <typename T>
struct SurfacePoint {
  T C, S, X, Y, ex, ey, ez, phi, s[3];

  SurfacePoint(const Part<T>& k, const GridEntry<T>& g) {
    C = signed_power(g.cu, g.lcu, k.e1);
    S = signed_power(g.su, g.lsu, k.e1);
    X = signed_power(g.cv, g.lcv, k.e2);
    Y = signed_power(g.sv, g.lsv, k.e2);
    ex = k.a0 * k.a1 * C * X;
    ey = k.a0 * k.a2 * C * Y;
    ez = k.A * S;
    phi = k.pib3 * (S + k.b2A);
    s[0] = (k.t1 * S + 1) * ex + k.b1 * std::cos(phi);
    s[1] = (k.t2 * S + 1) * ey;
    s[2] = ez;
  }
};

template <typename T>
inline void mat_vec(const T M[3][3], const T* v, T* out) {
  for (int i = 0; i < 3; ++i) out[i] = M[i][0] * v[0] + M[i][1] * v[1] + M[i][2] * v[2];
}
template <typename T>
inline void mat_t_vec(const T M[3][3], const T* v, T* out) {
  for (int i = 0; i < 3; ++i) out[i] = M[0][i] * v[0] + M[1][i] * v[1] + M[2][i] * v[2];
}
template <typename A, typename T>
inline void add_cross(A* acc, const T* a, const T* b) {
  acc[0] += a[1] * b[2] - a[2] * b[1];
  acc[1] += a[2] * b[0] - a[0] * b[2];
  acc[2] += a[0] * b[1] - a[1] * b[0];
}

struct Sizes {
  int64_t B, K, V;
};

Sizes sizes_of(const ProjectPartsInputs& in) {
  return {in.shape.size(0), in.shape.size(1), in.trig.size(0)};
}

}  // namespace

at::Tensor project_parts_forward_cpu(const ProjectPartsInputs& in) {
  const auto [B, K, V] = sizes_of(in);
  auto out = at::empty({B, K, V, 3}, in.shape.options());
  AT_DISPATCH_FLOATING_TYPES(in.shape.scalar_type(), "project_parts_forward_cpu", [&] {
    using T = scalar_t;
    const auto grid = grid_entries<T>(in.trig);
    const T* center = in.center.data_ptr<T>();
    const T* rotation = in.rotation.data_ptr<T>();
    const T* shape = in.shape.data_ptr<T>();
    const T* local = in.local.defined() ? in.local.data_ptr<T>() : nullptr;
    const T* cam_q = in.world ? nullptr : in.camera_rotation.data_ptr<T>();
    const T* cam_t = in.world ? nullptr : in.camera_translation.data_ptr<T>();
    const T f = static_cast<T>(in.focal);
    T* o = out.data_ptr<T>();
    at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bk = begin; bk < end; ++bk) {
        const int64_t b = bk / K;
        const Part<T> k(center + 3 * bk, rotation + 4 * bk, shape + 11 * bk);
        T Rc[3][3];
        if (!in.world) quaternion_matrix(cam_q + 4 * b, Rc);
        for (int64_t v = 0; v < V; ++v) {
          const SurfacePoint<T> sp(k, grid[v]);
          T p[3] = {sp.s[0], sp.s[1], sp.s[2]};
          if (local) {
            const T* d = local + (bk * V + v) * 3;
            p[0] += d[0]; p[1] += d[1]; p[2] += d[2];
          }
          T x[3];
          mat_vec(k.R, p, x);
          for (int i = 0; i < 3; ++i) x[i] += k.c[i];
          T* dst = o + (bk * V + v) * 3;
          if (in.world) {
            dst[0] = x[0]; dst[1] = x[1]; dst[2] = x[2];
            continue;
          }
          T xc[3];
          mat_vec(Rc, x, xc);
          for (int i = 0; i < 3; ++i) xc[i] += cam_t[3 * b + i];
          dst[0] = f * xc[0] / xc[2];
          dst[1] = f * xc[1] / xc[2];
          dst[2] = xc[2];
        }
      }
    });
  });
  return out;
}

ProjectPartsGrads project_parts_backward_cpu(const ProjectPartsInputs& in, const at::Tensor& grad_in) {
  const auto [B, K, V] = sizes_of(in);
  const auto grad = grad_in.contiguous();
  const auto opts = in.shape.options();
  auto g_center = at::empty({B, K, 3}, opts);
  auto g_omega = at::empty({B, K, 3}, opts);      // sum_v p x a, turned into q_theta below
  auto g_shape = at::empty({B, K, 11}, opts);
  auto g_local = in.local.defined() ? at::empty({B, K, V, 3}, opts) : at::Tensor();
  auto g_cam_t = at::zeros({B, K, 3}, opts);      // per-part partial sums, reduced over K below
  auto g_cam_omega = at::zeros({B, K, 3}, opts);
  AT_DISPATCH_FLOATING_TYPES(in.shape.scalar_type(), "project_parts_backward_cpu", [&] {
    using T = scalar_t;
    using Acc = at::acc_type<T, /*is_cuda=*/false>;
    const auto grid = grid_entries<T>(in.trig);
    const T* center = in.center.data_ptr<T>();
    const T* rotation = in.rotation.data_ptr<T>();
    const T* shape = in.shape.data_ptr<T>();
    const T* local = in.local.defined() ? in.local.data_ptr<T>() : nullptr;
    const T* cam_q = in.world ? nullptr : in.camera_rotation.data_ptr<T>();
    const T* cam_t = in.world ? nullptr : in.camera_translation.data_ptr<T>();
    const T f = static_cast<T>(in.focal);
    const T* gp = grad.data_ptr<T>();
    T* out_c = g_center.data_ptr<T>();
    T* out_w = g_omega.data_ptr<T>();
    T* out_s = g_shape.data_ptr<T>();
    T* out_l = in.local.defined() ? g_local.data_ptr<T>() : nullptr;
    T* out_ct = g_cam_t.data_ptr<T>();
    T* out_cw = g_cam_omega.data_ptr<T>();
    at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bk = begin; bk < end; ++bk) {
        const int64_t b = bk / K;
        const Part<T> k(center + 3 * bk, rotation + 4 * bk, shape + 11 * bk);
        T Rc[3][3];
        if (!in.world) quaternion_matrix(cam_q + 4 * b, Rc);
        // Part constants of J's bending columns.
        const T dphi_a0 = -k.pib3 * k.b2 / (k.a0 * k.A);
        const T dphi_a3 = -k.pib3 * k.b2 / (k.a3 * k.A);
        const T dphi_b2 = k.pib3 / k.A;
        Acc gc[3] = {0, 0, 0}, gw[3] = {0, 0, 0}, gct[3] = {0, 0, 0}, gcw[3] = {0, 0, 0};
        Acc gs[11] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t v = 0; v < V; ++v) {
          const GridEntry<T>& ge = grid[v];
          const SurfacePoint<T> sp(k, ge);
          T p[3] = {sp.s[0], sp.s[1], sp.s[2]};
          if (local) {
            const T* d = local + (bk * V + v) * 3;
            p[0] += d[0]; p[1] += d[1]; p[2] += d[2];
          }
          T x[3];
          mat_vec(k.R, p, x);
          for (int i = 0; i < 3; ++i) x[i] += k.c[i];
          const T* g = gp + (bk * V + v) * 3;
          T h[3];  // dE/dx in the object frame
          if (in.world) {
            h[0] = g[0]; h[1] = g[1]; h[2] = g[2];
          } else {
            T xc[3];
            mat_vec(Rc, x, xc);
            for (int i = 0; i < 3; ++i) xc[i] += cam_t[3 * b + i];
            const T iz = 1 / xc[2];
            // dE/dx_cam = g_uv^T P + g_depth e_z (paper eq. 6 plus the depth row).
            const T hc[3] = {g[0] * f * iz, g[1] * f * iz, -(g[0] * xc[0] + g[1] * xc[1]) * f * iz * iz + g[2]};
            mat_t_vec(Rc, hc, h);
            for (int i = 0; i < 3; ++i) gct[i] += hc[i];
            add_cross(gcw, x, h);  // (x x R_cam^T h_cam)^T G_cam / |q_cam| is the camera quaternion's share
          }
          for (int i = 0; i < 3; ++i) gc[i] += h[i];
          T a[3];  // dE/dp in the part frame
          mat_t_vec(k.R, h, a);
          add_cross(gw, p, a);  // h^T B = (p x a)^T G / |q|
          if (out_l) {
            T* dl = out_l + (bk * V + v) * 3;
            dl[0] = a[0]; dl[1] = a[1]; dl[2] = a[2];
          }
          // a^T J, column by column (see superquadric_jacobian()).
          const T dC = sp.C * ge.lcu, dS = sp.S * ge.lsu, dX = sp.X * ge.lcv, dY = sp.Y * ge.lsv;
          const T Tx = k.t1 * sp.S + 1, Ty = k.t2 * sp.S + 1;
          const T bsin = k.b1 * std::sin(sp.phi), cphi = std::cos(sp.phi);
          const T dphi_b3 = T(M_PI) * (sp.S + k.b2A);
          const T CX = sp.C * sp.X, CY = sp.C * sp.Y;
          gs[0] += a[0] * (Tx * k.a1 * CX - bsin * dphi_a0) + a[1] * Ty * k.a2 * CY + a[2] * k.a3 * sp.S;
          gs[1] += a[0] * Tx * k.a0 * CX;
          gs[2] += a[1] * Ty * k.a0 * CY;
          gs[3] += -a[0] * bsin * dphi_a3 + a[2] * k.a0 * sp.S;
          gs[4] += a[0] * (k.t1 * dS * sp.ex + Tx * k.a0 * k.a1 * dC * sp.X - bsin * k.pib3 * dS) +
                   a[1] * (k.t2 * dS * sp.ey + Ty * k.a0 * k.a2 * dC * sp.Y) + a[2] * k.A * dS;
          gs[5] += a[0] * Tx * k.a0 * k.a1 * sp.C * dX + a[1] * Ty * k.a0 * k.a2 * sp.C * dY;
          gs[6] += a[0] * sp.S * sp.ex;
          gs[7] += a[1] * sp.S * sp.ey;
          gs[8] += a[0] * cphi;
          gs[9] += -a[0] * bsin * dphi_b2;
          gs[10] += -a[0] * bsin * dphi_b3;
        }
        for (int i = 0; i < 3; ++i) {
          out_c[3 * bk + i] = static_cast<T>(gc[i]);
          out_w[3 * bk + i] = static_cast<T>(gw[i]);
          out_ct[3 * bk + i] = static_cast<T>(gct[i]);
          out_cw[3 * bk + i] = static_cast<T>(gcw[i]);
        }
        for (int i = 0; i < 11; ++i) out_s[11 * bk + i] = static_cast<T>(gs[i]);
      }
    });
  });
  ProjectPartsGrads out;
  out.center = g_center;
  out.rotation = g_omega.unsqueeze(-2).matmul(quaternion_rate_matrix(in.rotation)).squeeze(-2);
  out.shape = g_shape;
  out.local = g_local;
  if (!in.world) {
    out.camera_translation = g_cam_t.sum(1);
    out.camera_rotation =
        g_cam_omega.sum(1).unsqueeze(-2).matmul(quaternion_rate_matrix(in.camera_rotation)).squeeze(-2);
  }
  return out;
}

}  // namespace lepard::core::detail
