// Fused CPU kernel for project_parts(): per point, the superquadric, its Jacobian J,
// assembly, camera and projection in one pass; parallel over parts.
#include "project_parts_kernel.h"

#include <lepard/core/rotation.h>
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>

#include <Eigen/Core>
#include <Eigen/Geometry>

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <map>
#include <utility>
#include <vector>

namespace lepard::core::detail {

namespace {

// Small fixed-size algebra with Eigen (third_party/README.md): per part and per camera,
// never inside the SIMD loops over points, which read the matrices' entries as scalars.
template <typename T>
using Mat3 = Eigen::Matrix<T, 3, 3>;
template <typename T>
using Vec3 = Eigen::Matrix<T, 3, 1>;

// R(q / |q|) for q = (w, x, y, z), the convention of rotation.h.
template <typename T>
Mat3<T> quaternion_matrix(const T* q) {
  return Eigen::Quaternion<T>(q[0], q[1], q[2], q[3]).normalized().toRotationMatrix();
}

// The grid's cos/sin values factor into a latitude part (cos u, sin u) and a longitude
// part (cos v, sin v). Every signed power and the bending angle depend on one of the two
// only, so they are computed once per distinct u and per distinct v of a part (about 50
// of each for the default 642-point grid) instead of once per point.
struct GridTables {
  struct Entry {
    double c, s, log_c, log_s;  // cos, sin and their log-magnitudes (0 where the value counts as zero)
  };
  std::vector<Entry> u, v;          // distinct latitudes and longitudes
  std::vector<int32_t> u_of, v_of;  // per point: its index into u and v
  // Consecutive points that share a latitude and take consecutive longitudes: points
  // [start, start + length) have latitude u and longitudes v_start, v_start + 1, ...
  // (the default grid has one run per ring and one per pole).
  struct Run {
    int64_t start, length;
    int32_t u, v_start;
  };
  std::vector<Run> runs;
};

GridTables grid_tables(const at::Tensor& trig) {
  const auto t = trig.to(at::kDouble).contiguous();
  const double* p = t.data_ptr<double>();
  const int64_t V = t.size(0);
  auto val = [](double x) { return std::abs(x) < kSignedPowerEps ? 0.0 : x; };
  auto lg = [](double x) { return std::abs(x) < kSignedPowerEps ? 0.0 : std::log(std::abs(x)); };
  GridTables g;
  std::map<std::pair<double, double>, int32_t> u_index, v_index;
  auto intern = [&](std::map<std::pair<double, double>, int32_t>& index, std::vector<GridTables::Entry>& table,
                    double c, double s) {
    const auto [it, added] = index.emplace(std::make_pair(c, s), static_cast<int32_t>(table.size()));
    if (added) table.push_back({val(c), val(s), lg(c), lg(s)});
    return it->second;
  };
  g.u_of.resize(static_cast<size_t>(V));
  g.v_of.resize(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) {
    const double* r = p + 4 * i;
    g.u_of[i] = intern(u_index, g.u, r[kCosU], r[kSinU]);
    g.v_of[i] = intern(v_index, g.v, r[kCosV], r[kSinV]);
    if (!g.runs.empty()) {
      auto& run = g.runs.back();
      if (run.u == g.u_of[i] && run.v_start + run.length == g.v_of[i]) {
        ++run.length;
        continue;
      }
    }
    g.runs.push_back({i, 1, g.u_of[i], g.v_of[i]});
  }
  return g;
}

template <typename T>
inline T signed_power(T x, T log_abs, T p) {
  return x == T(0) ? T(0) : std::copysign(std::exp(p * log_abs), x);
}

// One part's constants.
template <typename T>
struct Part {
  T c[3];
  Mat3<T> R;
  T a0, a1, a2, a3, e1, e2, t1, t2, b1, b2, b3;
  T A, pib3, b2A;

  Part(const T* center, const T* quat, const T* q) {
    for (int i = 0; i < 3; ++i) c[i] = center[i];
    R = quaternion_matrix(quat);
    a0 = q[0];
    a1 = q[1];
    a2 = q[2];
    a3 = q[3];
    e1 = q[4];
    e2 = q[5];
    t1 = q[6];
    t2 = q[7];
    b1 = q[8];
    b2 = q[9];
    b3 = q[10];
    A = a0 * a3;
    pib3 = T(M_PI) * b3;
    b2A = b2 / A;
  }
};

// Per-latitude quantities of one part: C = fexp(cos u, e1), S = fexp(sin u, e1), their
// e1-derivatives, and the bending angle phi = pi b3 (S + b2 / (a0 a3)).
template <typename T>
struct Latitude {
  T C, S, dC, dS, cos_phi, sin_phi, phi_b3;  // phi_b3 = d phi / d b3
};
// Per-longitude quantities: X = fexp(cos v, e2), Y = fexp(sin v, e2) and their e2-derivatives.
template <typename T>
struct Longitude {
  T X, Y, dX, dY;
};

template <typename T>
void part_tables(const Part<T>& k, const GridTables& g, std::vector<Latitude<T>>& lat, std::vector<Longitude<T>>& lon) {
  lat.resize(g.u.size());
  lon.resize(g.v.size());
  for (size_t i = 0; i < g.u.size(); ++i) {
    const auto& e = g.u[i];
    auto& l = lat[i];
    l.C = signed_power(T(e.c), T(e.log_c), k.e1);
    l.S = signed_power(T(e.s), T(e.log_s), k.e1);
    l.dC = l.C * T(e.log_c);
    l.dS = l.S * T(e.log_s);
    const T phi = k.pib3 * (l.S + k.b2A);
    l.cos_phi = std::cos(phi);
    l.sin_phi = std::sin(phi);
    l.phi_b3 = T(M_PI) * (l.S + k.b2A);
  }
  for (size_t i = 0; i < g.v.size(); ++i) {
    const auto& e = g.v[i];
    auto& l = lon[i];
    l.X = signed_power(T(e.c), T(e.log_c), k.e2);
    l.Y = signed_power(T(e.s), T(e.log_s), k.e2);
    l.dX = l.X * T(e.log_c);
    l.dY = l.Y * T(e.log_s);
  }
}

// The surface point s of a part at a latitude and a longitude (see superquadric_points()).
template <typename T>
inline void surface_point(const Part<T>& k, const Latitude<T>& la, const Longitude<T>& lo, T& ex, T& ey, T* s) {
  ex = k.a0 * k.a1 * la.C * lo.X;
  ey = k.a0 * k.a2 * la.C * lo.Y;
  s[0] = (k.t1 * la.S + 1) * ex + k.b1 * la.cos_phi;
  s[1] = (k.t2 * la.S + 1) * ey;
  s[2] = k.A * la.S;
}

// The quaternion gradient from a body-frame angular "force" w: for R(q / |q|),
// dE/dq = w^T G(q^) / |q| with G = 2 [-v | s I - [v]_x] (rotation.h), i.e.
// (-2 v.w, 2 (s w + v x w)) / |q|.
template <typename T, typename A>
void quaternion_gradient(const T* q, const A* w_in, T* out) {
  const Eigen::Matrix<A, 4, 1> quat = Eigen::Map<const Eigen::Matrix<T, 4, 1>>(q).template cast<A>();
  const A n = quat.norm();
  const A s = quat[0] / n;
  const Vec3<A> v = quat.template tail<3>() / n, w = Eigen::Map<const Vec3<A>>(w_in);
  out[0] = static_cast<T>(-2 * v.dot(w) / n);
  Eigen::Map<Vec3<T>>(out + 1) = (2 * (s * w + v.cross(w)) / n).template cast<T>();
}

// A part's longitude values as separate arrays (indexed by longitude), for SIMD loops.
template <typename T>
struct LongitudeArrays {
  std::vector<T> X, Y, dX, dY;

  void fill(const std::vector<Longitude<T>>& lon) {
    X.resize(lon.size());
    Y.resize(lon.size());
    dX.resize(lon.size());
    dY.resize(lon.size());
    for (size_t i = 0; i < lon.size(); ++i) {
      X[i] = lon[i].X;
      Y[i] = lon[i].Y;
      dX[i] = lon[i].dX;
      dY[i] = lon[i].dY;
    }
  }
};

// Gradient sums of one part, accumulated over its runs.
template <typename T>
struct PartSums {
  T gc[3] = {0, 0, 0};   // sum h
  T gw[3] = {0, 0, 0};   // sum p x a (for q_theta)
  T gs[11] = {};         // sum a^T J
  T gct[3] = {0, 0, 0};  // sum h_cam
  T gcw[3] = {0, 0, 0};  // sum x x h (for the camera quaternion)
};

// One run of a part's backward (see GridTables::Run): from the loss gradient g of its
// points to the sums of PartSums, and per point a = R^T h (for d), where h = dE/dx.
// The latitude values are the same for the whole run; every branch is resolved at compile
// time, so the loop over the run's points is one SIMD loop. Sums are kept in the
// kernel's dtype: a part has a few hundred points.
template <typename T, bool kWorld>
void backward_run(const Part<T>& k, const Mat3<T>& Rc, const T* cam_t, T f, const Latitude<T>& la,
                  const LongitudeArrays<T>& lon, int32_t v_start, int64_t n, const T* d, const T* g, T* a_out,
                  PartSums<T>& out) {
  const T a0 = k.a0, a1 = k.a1, a2 = k.a2, a3 = k.a3, t1 = k.t1, t2 = k.t2, b1 = k.b1, A = k.A, pib3 = k.pib3;
  const T a0a1 = a0 * a1, a0a2 = a0 * a2;
  const T dphi_a0 = -pib3 * k.b2 / (a0 * A), dphi_a3 = -pib3 * k.b2 / (a3 * A), dphi_b2 = pib3 / A;
  // Latitude constants of the run.
  const T C = la.C, S = la.S, dC = la.dC, dS = la.dS;
  const T Tx = t1 * S + 1, Ty = t2 * S + 1;
  const T bcos = b1 * la.cos_phi, bsin = b1 * la.sin_phi, phi_b3 = la.phi_b3, cos_phi = la.cos_phi;
  const T pz = A * S;
  const T R00 = k.R(0, 0), R01 = k.R(0, 1), R02 = k.R(0, 2), R10 = k.R(1, 0), R11 = k.R(1, 1), R12 = k.R(1, 2),
          R20 = k.R(2, 0), R21 = k.R(2, 1), R22 = k.R(2, 2);
  const T Q00 = Rc(0, 0), Q01 = Rc(0, 1), Q02 = Rc(0, 2), Q10 = Rc(1, 0), Q11 = Rc(1, 1), Q12 = Rc(1, 2),
          Q20 = Rc(2, 0), Q21 = Rc(2, 1), Q22 = Rc(2, 2);
  const T c0 = k.c[0], c1 = k.c[1], c2 = k.c[2];
  const T t0c = kWorld ? T(0) : cam_t[0], t1c = kWorld ? T(0) : cam_t[1], t2c = kWorld ? T(0) : cam_t[2];
  const T* pX = lon.X.data() + v_start;
  const T* pY = lon.Y.data() + v_start;
  const T* pdX = lon.dX.data() + v_start;
  const T* pdY = lon.dY.data() + v_start;
  T hc0s = 0, hc1s = 0, hc2s = 0, w0 = 0, w1 = 0, w2 = 0, ct0 = 0, ct1 = 0, ct2 = 0, cw0 = 0, cw1 = 0, cw2 = 0;
  T sX = 0, sY = 0, sZ = 0, sBend = 0, sE2 = 0, sT1 = 0, sT2 = 0;
#pragma omp simd reduction(+ : hc0s, hc1s, hc2s, w0, w1, w2, ct0, ct1, ct2, cw0, cw1, cw2, sX, sY, sZ, sBend, sE2, \
                               sT1, sT2)
  for (int64_t i = 0; i < n; ++i) {
    const T X = pX[i], Y = pY[i];
    const T ex = a0a1 * C * X, ey = a0a2 * C * Y;
    const T p0 = Tx * ex + bcos + d[3 * i], p1 = Ty * ey + d[3 * i + 1], p2 = pz + d[3 * i + 2];
    const T x0 = c0 + R00 * p0 + R01 * p1 + R02 * p2;
    const T x1 = c1 + R10 * p0 + R11 * p1 + R12 * p2;
    const T x2 = c2 + R20 * p0 + R21 * p1 + R22 * p2;
    const T g0 = g[3 * i], g1 = g[3 * i + 1], g2 = g[3 * i + 2];
    T h0, h1, h2;
    if constexpr (kWorld) {
      h0 = g0;
      h1 = g1;
      h2 = g2;
    } else {
      const T xc0 = t0c + Q00 * x0 + Q01 * x1 + Q02 * x2;
      const T xc1 = t1c + Q10 * x0 + Q11 * x1 + Q12 * x2;
      const T xc2 = t2c + Q20 * x0 + Q21 * x1 + Q22 * x2;
      const T fz = f / xc2;
      // dE/dx_cam = g_uv^T P + g_depth e_z (paper eq. 6 plus the depth row).
      const T q0 = g0 * fz, q1 = g1 * fz, q2 = g2 - (q0 * xc0 + q1 * xc1) / xc2;
      h0 = Q00 * q0 + Q10 * q1 + Q20 * q2;
      h1 = Q01 * q0 + Q11 * q1 + Q21 * q2;
      h2 = Q02 * q0 + Q12 * q1 + Q22 * q2;
      ct0 += q0;
      ct1 += q1;
      ct2 += q2;
      // The camera quaternion's share: (x x R_cam^T h_cam)^T G_cam / |q_cam| = (x x h)^T G_cam / |q_cam|.
      cw0 += x1 * h2 - x2 * h1;
      cw1 += x2 * h0 - x0 * h2;
      cw2 += x0 * h1 - x1 * h0;
    }
    hc0s += h0;
    hc1s += h1;
    hc2s += h2;
    const T ax = R00 * h0 + R10 * h1 + R20 * h2;  // a = R^T h = dE/dp
    const T ay = R01 * h0 + R11 * h1 + R21 * h2;
    const T az = R02 * h0 + R12 * h1 + R22 * h2;
    a_out[3 * i] = ax;
    a_out[3 * i + 1] = ay;
    a_out[3 * i + 2] = az;
    w0 += p1 * az - p2 * ay;
    w1 += p2 * ax - p0 * az;
    w2 += p0 * ay - p1 * ax;  // h^T B = (p x a)^T G / |q|
    // Point-dependent factors of a^T J; the run's constants multiply them after the loop.
    sX += ax * X;  // columns a0, a1, e1 (via ex)
    sY += ay * Y;  // columns a0, a2, e1 (via ey)
    sZ += az;      // columns a0, a3, e1
    sBend += ax;   // bending columns a0, a3, e1, b1, b2, b3
    sE2 += ax * pdX[i] * Tx * a0a1 + ay * pdY[i] * Ty * a0a2;
    sT1 += ax * ex;
    sT2 += ay * ey;
  }
  out.gc[0] += hc0s;
  out.gc[1] += hc1s;
  out.gc[2] += hc2s;
  out.gw[0] += w0;
  out.gw[1] += w1;
  out.gw[2] += w2;
  out.gct[0] += ct0;
  out.gct[1] += ct1;
  out.gct[2] += ct2;
  out.gcw[0] += cw0;
  out.gcw[1] += cw1;
  out.gcw[2] += cw2;
  // a^T J (see superquadric_jacobian()), with ex = a0 a1 C X and ey = a0 a2 C Y:
  T* gs = out.gs;
  gs[kA0] += Tx * a1 * C * sX - bsin * dphi_a0 * sBend + Ty * a2 * C * sY + a3 * S * sZ;
  gs[kA1] += Tx * a0 * C * sX;
  gs[kA2] += Ty * a0 * C * sY;
  gs[kA3] += -bsin * dphi_a3 * sBend + a0 * S * sZ;
  gs[kE1] += (t1 * dS * C + Tx * dC) * a0a1 * sX - bsin * pib3 * dS * sBend + (t2 * dS * C + Ty * dC) * a0a2 * sY +
             A * dS * sZ;
  gs[kE2] += C * sE2;
  gs[kT1] += S * sT1;
  gs[kT2] += S * sT2;
  gs[kB1] += cos_phi * sBend;
  gs[kB2] += -bsin * dphi_b2 * sBend;
  gs[kB3] += -bsin * phi_b3 * sBend;
}

// Typed views of the inputs.
template <typename T>
struct InputPointers {
  const T *center, *rotation, *shape, *local, *cam_q, *cam_t;
  T focal;

  explicit InputPointers(const ProjectPartsInputs& in)
      : center(in.center.data_ptr<T>()),
        rotation(in.rotation.data_ptr<T>()),
        shape(in.shape.data_ptr<T>()),
        local(in.local.defined() ? in.local.data_ptr<T>() : nullptr),
        cam_q(in.world ? nullptr : in.camera_rotation.data_ptr<T>()),
        cam_t(in.world ? nullptr : in.camera_translation.data_ptr<T>()),
        focal(static_cast<T>(in.focal)) {}
};

struct Sizes {
  int64_t B, K, V;
};

Sizes sizes_of(const ProjectPartsInputs& in) { return {in.shape.size(0), in.shape.size(1), in.trig.size(0)}; }

}  // namespace

at::Tensor project_parts_forward_cpu(const ProjectPartsInputs& in) {
  const Sizes sizes = sizes_of(in);
  const int64_t B = sizes.B, K = sizes.K,
                V = sizes.V;  // named copies: lambdas cannot capture structured bindings before C++20
  auto out = at::empty({B, K, V, 3}, in.shape.options());
  AT_DISPATCH_FLOATING_TYPES(in.shape.scalar_type(), "project_parts_forward_cpu", [&] {
    using T = scalar_t;
    const auto grid = grid_tables(in.trig);
    const InputPointers<T> ptr(in);
    const T *center = ptr.center, *rotation = ptr.rotation, *shape = ptr.shape, *local = ptr.local;
    const T *cam_q = ptr.cam_q, *cam_t = ptr.cam_t;
    const T f = ptr.focal;
    T* o = out.data_ptr<T>();
    at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
      std::vector<Latitude<T>> lat;
      std::vector<Longitude<T>> lon;
      for (int64_t bk = begin; bk < end; ++bk) {
        const int64_t b = bk / K;
        const Part<T> k(center + 3 * bk, rotation + 4 * bk, shape + 11 * bk);
        part_tables(k, grid, lat, lon);
        const Mat3<T> Rc = in.world ? Mat3<T>::Identity() : quaternion_matrix(cam_q + 4 * b);
        const Vec3<T> c = Eigen::Map<const Vec3<T>>(k.c);
        for (int64_t v = 0; v < V; ++v) {
          T ex, ey;
          Vec3<T> p;
          surface_point(k, lat[grid.u_of[v]], lon[grid.v_of[v]], ex, ey, p.data());
          if (local) p += Eigen::Map<const Vec3<T>>(local + (bk * V + v) * 3);
          const Vec3<T> x = k.R * p + c;
          T* dst = o + (bk * V + v) * 3;
          if (in.world) {
            Eigen::Map<Vec3<T>> world(dst);
            world = x;
            continue;
          }
          const Vec3<T> xc = Rc * x + Eigen::Map<const Vec3<T>>(cam_t + 3 * b);
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
  const Sizes sizes = sizes_of(in);
  const int64_t B = sizes.B, K = sizes.K,
                V = sizes.V;  // named copies: lambdas cannot capture structured bindings before C++20
  const auto grad = grad_in.contiguous();
  const auto opts = in.shape.options();
  auto g_center = at::empty({B, K, 3}, opts);
  auto g_rotation = at::empty({B, K, 4}, opts);
  auto g_shape = at::empty({B, K, 11}, opts);
  auto g_local = in.local.defined() ? at::empty({B, K, V, 3}, opts) : at::Tensor();
  at::Tensor g_cam_t, g_cam_q;
  if (!in.world) {
    g_cam_t = at::empty({B, 3}, opts);
    g_cam_q = at::empty({B, 4}, opts);
  }
  // Per-part partial sums of the camera's forces, reduced over K after the parallel loop.
  std::vector<double> cam_t_parts(in.world ? 0 : static_cast<size_t>(B * K * 3));
  std::vector<double> cam_w_parts(in.world ? 0 : static_cast<size_t>(B * K * 3));
  AT_DISPATCH_FLOATING_TYPES(in.shape.scalar_type(), "project_parts_backward_cpu", [&] {
    using T = scalar_t;
    using Acc = at::acc_type<T, /*is_cuda=*/false>;
    const auto grid = grid_tables(in.trig);
    const InputPointers<T> ptr(in);
    const T *center = ptr.center, *rotation = ptr.rotation, *shape = ptr.shape, *local = ptr.local;
    const T *cam_q = ptr.cam_q, *cam_t = ptr.cam_t;
    const T f = ptr.focal;
    const T* gp = grad.data_ptr<T>();
    T* out_c = g_center.data_ptr<T>();
    T* out_q = g_rotation.data_ptr<T>();
    T* out_s = g_shape.data_ptr<T>();
    T* out_l = in.local.defined() ? g_local.data_ptr<T>() : nullptr;

    at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
      std::vector<Latitude<T>> lat;
      std::vector<Longitude<T>> lon;
      LongitudeArrays<T> lon_arrays;
      std::vector<T> zeros(local ? 0 : static_cast<size_t>(V * 3), T(0));
      std::vector<T> scratch(out_l ? 0 : static_cast<size_t>(V * 3));
      for (int64_t bk = begin; bk < end; ++bk) {
        const int64_t b = bk / K;
        const Part<T> k(center + 3 * bk, rotation + 4 * bk, shape + 11 * bk);
        part_tables(k, grid, lat, lon);
        lon_arrays.fill(lon);
        const Mat3<T> Rc = in.world ? Mat3<T>::Identity() : quaternion_matrix(cam_q + 4 * b);
        const T* d = local ? local + bk * V * 3 : zeros.data();
        T* a_out = out_l ? out_l + bk * V * 3 : scratch.data();
        const T* g = gp + bk * V * 3;
        PartSums<T> sums;
        for (const auto& run : grid.runs) {
          const int64_t o = 3 * run.start;
          if (in.world) {
            backward_run<T, true>(k, Rc, nullptr, f, lat[run.u], lon_arrays, run.v_start, run.length, d + o, g + o,
                                  a_out + o, sums);
          } else {
            backward_run<T, false>(k, Rc, cam_t + 3 * b, f, lat[run.u], lon_arrays, run.v_start, run.length, d + o,
                                   g + o, a_out + o, sums);
          }
        }
        for (int i = 0; i < 3; ++i) out_c[3 * bk + i] = sums.gc[i];
        quaternion_gradient(rotation + 4 * bk, sums.gw, out_q + 4 * bk);
        for (int i = 0; i < 11; ++i) out_s[11 * bk + i] = sums.gs[i];
        if (!in.world) {
          for (int i = 0; i < 3; ++i) {
            cam_t_parts[3 * bk + i] = sums.gct[i];
            cam_w_parts[3 * bk + i] = sums.gcw[i];
          }
        }
      }
    });
    if (!in.world) {
      T* out_ct = g_cam_t.data_ptr<T>();
      T* out_cq = g_cam_q.data_ptr<T>();
      for (int64_t b = 0; b < B; ++b) {
        Acc t[3] = {0, 0, 0}, w[3] = {0, 0, 0};
        for (int64_t k = 0; k < K; ++k) {
          for (int i = 0; i < 3; ++i) {
            t[i] += cam_t_parts[3 * (b * K + k) + i];
            w[i] += cam_w_parts[3 * (b * K + k) + i];
          }
        }
        for (int i = 0; i < 3; ++i) out_ct[3 * b + i] = static_cast<T>(t[i]);
        quaternion_gradient(cam_q + 4 * b, w, out_cq + 4 * b);
      }
    }
  });
  ProjectPartsGrads out;
  out.center = g_center;
  out.rotation = g_rotation;
  out.shape = g_shape;
  out.local = g_local;
  out.camera_translation = g_cam_t;
  out.camera_rotation = g_cam_q;
  return out;
}

}  // namespace lepard::core::detail
