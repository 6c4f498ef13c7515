// The CPU kernel behind sample_field(): trilinear sampling with border padding on the
// align_corners grid, forward and analytic backward, in at::grid_sampler's conventions
// (core/local_flow.h). The local flow's scaling and squaring samples its own field six
// times per part and step; LibTorch's grid_sampler_3d spends most of that time in
// per-element accessor arithmetic, this kernel computes each point's eight corner offsets
// and weights once and reuses them for every channel.
#include "trilinear_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <array>
#include <cmath>
#include <limits>

namespace lepard::core::detail {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One axis of a point: the cell [i0, i0 + 1] it falls in after clamping to the grid, its
// fraction f in that cell, and d(index)/d(coordinate), zero where the border clamps (on the
// border itself too, as grid_sampler's clip_coordinates_set_grad has it).
template <typename T>
struct Axis {
  int64_t i0 = 0, i1 = 0;
  T f = 0, grad = 0;
  bool nan = false;
};

template <typename T>
inline Axis<T> axis(T coord, int64_t size) {
  Axis<T> a;
  if (std::isnan(coord)) {
    a.nan = true;
    return a;
  }
  if (size == 1) return a;  // every coordinate samples the one node; no gradient
  const T last = static_cast<T>(size - 1);
  T ix = ((coord + 1) / 2) * last;  // grid_sampler's unnormalisation (align_corners)
  a.grad = last / 2;
  if (ix <= 0) {
    ix = 0;
    a.grad = 0;
  } else if (ix >= last) {
    ix = last;
    a.grad = 0;
  }
  a.i0 = std::min(static_cast<int64_t>(std::floor(ix)), size - 2);
  a.i1 = a.i0 + 1;
  a.f = ix - static_cast<T>(a.i0);
  return a;
}

// The eight corners of a point: offsets into one channel (z, y, x major to minor) and weights.
template <typename T>
struct Cell {
  Axis<T> x, y, z;
  std::array<int64_t, 8> offset;
  std::array<T, 8> weight;
  bool nan = false;
};

template <typename T>
inline Cell<T> cell(const T* p, int64_t D, int64_t H, int64_t W) {
  Cell<T> c;
  c.x = axis(p[0], W);
  c.y = axis(p[1], H);
  c.z = axis(p[2], D);
  c.nan = c.x.nan || c.y.nan || c.z.nan;
  if (c.nan) return c;
  const int64_t zs[2] = {c.z.i0, c.z.i1}, ys[2] = {c.y.i0, c.y.i1}, xs[2] = {c.x.i0, c.x.i1};
  const T wz[2] = {1 - c.z.f, c.z.f}, wy[2] = {1 - c.y.f, c.y.f}, wx[2] = {1 - c.x.f, c.x.f};
  int k = 0;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int d = 0; d < 2; ++d, ++k) {
        // A size-1 axis has i1 = i0 = 0 and f = 0: its second corner weighs nothing.
        c.offset[k] = (zs[a] * H + ys[b]) * W + xs[d];
        c.weight[k] = wz[a] * wy[b] * wx[d];
      }
  return c;
}

void check_kernel_inputs(const at::Tensor& field, const at::Tensor& points) {
  TORCH_CHECK(field.device().is_cpu() && points.device().is_cpu(), "sample_field: the kernel needs CPU tensors");
  TORCH_CHECK(field.scalar_type() == points.scalar_type(), "sample_field: field and points must share a dtype");
}

at::Tensor forward_cpu(const at::Tensor& field_in, const at::Tensor& points_in) {
  const auto field = field_in.contiguous(), points = points_in.contiguous();
  const int64_t N = field.size(0), C = field.size(1), D = field.size(2), H = field.size(3), W = field.size(4);
  const int64_t P = points.size(1), cells = D * H * W;
  auto out = at::empty({N, C, P}, field.options());
  AT_DISPATCH_FLOATING_TYPES(field.scalar_type(), "sample_field", [&] {
    using T = scalar_t;
    const T* f = field.data_ptr<T>();
    const T* pts = points.data_ptr<T>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const T* fn = f + n * C * cells;
        T* on = o + n * C * P;
        for (int64_t p = 0; p < P; ++p) {
          const auto c = cell(pts + (n * P + p) * 3, D, H, W);
          for (int64_t ch = 0; ch < C; ++ch) {
            if (c.nan) {
              on[ch * P + p] = std::numeric_limits<T>::quiet_NaN();
              continue;
            }
            const T* v = fn + ch * cells;
            T s = 0;
            for (int k = 0; k < 8; ++k) s += c.weight[k] * v[c.offset[k]];
            on[ch * P + p] = s;
          }
        }
      }
    });
  });
  return out;
}

// grad (N, C, P). Returns (dE/dfield or undefined, dE/dpoints or undefined).
std::pair<at::Tensor, at::Tensor> backward_cpu(const at::Tensor& field_in, const at::Tensor& points_in,
                                               const at::Tensor& grad_in, bool want_field, bool want_points) {
  const auto field = field_in.contiguous(), points = points_in.contiguous(), grad = grad_in.contiguous();
  const int64_t N = field.size(0), C = field.size(1), D = field.size(2), H = field.size(3), W = field.size(4);
  const int64_t P = points.size(1), cells = D * H * W;
  at::Tensor gfield = want_field ? at::zeros_like(field) : at::Tensor();
  at::Tensor gpoints = want_points ? at::zeros_like(points) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(field.scalar_type(), "sample_field_backward", [&] {
    using T = scalar_t;
    const T* f = field.data_ptr<T>();
    const T* pts = points.data_ptr<T>();
    const T* g = grad.data_ptr<T>();
    T* gf = want_field ? gfield.data_ptr<T>() : nullptr;
    T* gp = want_points ? gpoints.data_ptr<T>() : nullptr;
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const T* fn = f + n * C * cells;
        const T* gn = g + n * C * P;
        for (int64_t p = 0; p < P; ++p) {
          const auto c = cell(pts + (n * P + p) * 3, D, H, W);
          if (c.nan) continue;  // NaN in, NaN out, and no gradient from it
          const T wz[2] = {1 - c.z.f, c.z.f}, wy[2] = {1 - c.y.f, c.y.f}, wx[2] = {1 - c.x.f, c.x.f};
          T dx = 0, dy = 0, dz = 0;
          for (int64_t ch = 0; ch < C; ++ch) {
            const T go = gn[ch * P + p];
            if (go == 0) continue;
            if (gf != nullptr) {
              T* gfc = gf + (n * C + ch) * cells;
              for (int k = 0; k < 8; ++k) gfc[c.offset[k]] += c.weight[k] * go;
            }
            if (gp != nullptr) {
              const T* v = fn + ch * cells;
              T val[8];
              for (int k = 0; k < 8; ++k) val[k] = v[c.offset[k]];
              // Corner k = 4 a + 2 b + d for (z, y, x) = (a, b, d).
              T sx = 0, sy = 0, sz = 0;
              for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b) sx += wz[a] * wy[b] * (val[4 * a + 2 * b + 1] - val[4 * a + 2 * b]);
              for (int a = 0; a < 2; ++a)
                for (int d = 0; d < 2; ++d) sy += wz[a] * wx[d] * (val[4 * a + 2 + d] - val[4 * a + d]);
              for (int b = 0; b < 2; ++b)
                for (int d = 0; d < 2; ++d) sz += wy[b] * wx[d] * (val[4 + 2 * b + d] - val[2 * b + d]);
              dx += go * sx;
              dy += go * sy;
              dz += go * sz;
            }
          }
          if (gp != nullptr) {
            T* q = gp + (n * P + p) * 3;
            q[0] = dx * c.x.grad;
            q[1] = dy * c.y.grad;
            q[2] = dz * c.z.grad;
          }
        }
      }
    });
  });
  return {gfield, gpoints};
}

class TrilinearFunction : public torch::autograd::Function<TrilinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& field, const at::Tensor& points) {
    ctx->save_for_backward({field, points});
    return forward_cpu(field, points);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    auto [gfield, gpoints] =
        backward_cpu(saved[0], saved[1], grads[0], ctx->needs_input_grad(0), ctx->needs_input_grad(1));
    return {gfield, gpoints};
  }
};

}  // namespace

at::Tensor trilinear_sample_cpu(const at::Tensor& field, const at::Tensor& points) {
  check_kernel_inputs(field, points);
  return TrilinearFunction::apply(field, points);
}

}  // namespace lepard::core::detail
