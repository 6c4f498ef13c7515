#include <lepard/train/nearest.h>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>
#include <stdexcept>
#include <string>

namespace lepard::train {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Forward: per batch entry, every pair once, updating both directions' nearest.
std::vector<at::Tensor> nearest_cpu(const at::Tensor& a_in, const at::Tensor& b_in) {
  const auto a = a_in.contiguous(), b = b_in.contiguous();
  const int64_t B = a.size(0), N = a.size(1), M = b.size(1);
  auto to_b = at::empty({B, N}, a.options()), to_a = at::empty({B, M}, a.options());
  auto arg_b = at::empty({B, N}, a.options().dtype(at::kLong)), arg_a = at::empty({B, M}, a.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "nearest_squared_distances", [&] {
    using T = scalar_t;
    const T* pa = a.data_ptr<T>();
    const T* pb = b.data_ptr<T>();
    T* db = to_b.data_ptr<T>();
    T* da = to_a.data_ptr<T>();
    int64_t* ib = arg_b.data_ptr<int64_t>();
    int64_t* ia = arg_a.data_ptr<int64_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) {
        const T* x = pa + e * N * 2;
        const T* y = pb + e * M * 2;
        T* best_b = db + e * N;
        T* best_a = da + e * M;
        int64_t* arg_of_b = ib + e * N;
        int64_t* arg_of_a = ia + e * M;
        for (int64_t j = 0; j < M; ++j) {
          best_a[j] = std::numeric_limits<T>::infinity();
          arg_of_a[j] = 0;
        }
        for (int64_t i = 0; i < N; ++i) {
          const T xi = x[2 * i], yi = x[2 * i + 1];
          T best = std::numeric_limits<T>::infinity();
          int64_t arg = 0;
          for (int64_t j = 0; j < M; ++j) {
            const T dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
            const T dx2 = dx * dx, dy2 = dy * dy;  // as the tensor ops round: each square, then the sum
            const T d = dx2 + dy2;
            if (d < best) {  // strict: the first of equal distances wins
              best = d;
              arg = j;
            }
            if (d < best_a[j]) {
              best_a[j] = d;
              arg_of_a[j] = i;
            }
          }
          best_b[i] = best;
          arg_of_b[i] = arg;
        }
      }
    });
  });
  return {to_b, to_a, arg_b, arg_a};
}

class NearestFunction : public torch::autograd::Function<NearestFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    auto out = nearest_cpu(a, b);
    ctx->save_for_backward({a, b, out[2], out[3]});
    ctx->mark_non_differentiable({out[2], out[3]});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto a = saved[0].contiguous(), b = saved[1].contiguous();
    const auto arg_b = saved[2].contiguous(), arg_a = saved[3].contiguous();
    const int64_t B = a.size(0), N = a.size(1), M = b.size(1);
    auto ga = at::zeros_like(a), gb = at::zeros_like(b);
    const auto g_to_b = grads[0].defined() ? grads[0].contiguous() : at::zeros({B, N}, a.options());
    const auto g_to_a = grads[1].defined() ? grads[1].contiguous() : at::zeros({B, M}, a.options());
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "nearest_squared_distances_backward", [&] {
      using T = scalar_t;
      const T* pa = a.data_ptr<T>();
      const T* pb = b.data_ptr<T>();
      const T* g1 = g_to_b.data_ptr<T>();
      const T* g2 = g_to_a.data_ptr<T>();
      const int64_t* ib = arg_b.data_ptr<int64_t>();
      const int64_t* ia = arg_a.data_ptr<int64_t>();
      T* qa = ga.data_ptr<T>();
      T* qb = gb.data_ptr<T>();
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e) {
          // d = |a_i - b_j|^2: dd/da_i = 2 (a_i - b_j) = -dd/db_j.
          auto add = [&](int64_t i, int64_t j, T g) {
            if (g == 0) return;
            const T* x = pa + (e * N + i) * 2;
            const T* y = pb + (e * M + j) * 2;
            T* gx = qa + (e * N + i) * 2;
            T* gy = qb + (e * M + j) * 2;
            for (int c = 0; c < 2; ++c) {
              const T f = 2 * g * (x[c] - y[c]);
              gx[c] += f;
              gy[c] -= f;
            }
          };
          for (int64_t i = 0; i < N; ++i) add(i, ib[e * N + i], g1[e * N + i]);
          for (int64_t j = 0; j < M; ++j) add(ia[e * M + j], j, g2[e * M + j]);
        }
      });
    });
    return {ga, gb};
  }
};

void check(const at::Tensor& a, const at::Tensor& b) {
  auto shape = [](const at::Tensor& t) { return t.defined() ? std::string(c10::str(t.sizes())) : "undefined"; };
  if (!a.defined() || !b.defined() || a.dim() != 3 || b.dim() != 3 || a.size(2) != 2 || b.size(2) != 2 ||
      a.size(0) != b.size(0) || a.size(1) == 0 || b.size(1) == 0)
    throw std::invalid_argument("nearest_squared_distances: a must be (B, N, 2) and b (B, M, 2) with N, M > 0, got " +
                                shape(a) + " and " + shape(b));
  if (a.scalar_type() != b.scalar_type() || a.device() != b.device())
    throw std::invalid_argument("nearest_squared_distances: a and b must share dtype and device");
}

}  // namespace

std::pair<at::Tensor, at::Tensor> nearest_squared_distances(const at::Tensor& a, const at::Tensor& b,
                                                            core::Backend backend) {
  check(a, b);
  const bool on_cpu = a.device().is_cpu();
  if (backend == core::Backend::Kernel && !on_cpu)
    throw std::invalid_argument("nearest_squared_distances: Backend::Kernel needs CPU tensors");
  if (backend == core::Backend::TensorOps || (backend == core::Backend::Auto && !on_cpu)) {
    const auto d2 = (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(3);  // (B, N, M)
    return {std::get<0>(d2.min(2)), std::get<0>(d2.min(1))};
  }
  const auto out = NearestFunction::apply(a, b);
  return {out[0], out[1]};
}

}  // namespace lepard::train
