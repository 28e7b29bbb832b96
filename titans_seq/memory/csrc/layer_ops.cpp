// Two elementwise stages of NeuralMemory (titans_seq/memory/layer.py) around the scan, fused
// forward and backward, for CPU tensors:
//
//   qkv_activation: the convolved projections x (B, T, 3, H, D) -> q, k, v, each (B, H, T, D)
//     contiguous (the scan's layout): q, k = l2norm(silu(x)) per head, v = silu(x).
//   gated_output:   the reads r (B, H, T, D) -> (B, T, H * D): per-head RMSNorm times its weight
//     (H, D), times silu(gate) with the gate (B, T, H * D).
//
// Why: in PyTorch each is five to eight ops forward and as many backward over the whole
// sequence (silu, the norms, slices, permutes and contiguous copies, zero-filled slice
// gradients), each a pass through memory; here one pass each way, per token row in cache.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "dense.h"

namespace {

using at::Tensor;
using titans_seq_native::FlushSubnormals;
using titans_seq_native::sigmoid;

template <typename T>
inline T silu_derivative(T x, T s) {  // s = sigmoid(x)
  return s * (T(1) + x * (T(1) - s));
}

// ---- qkv_activation

template <typename T>
void qkv_forward_kernel(const Tensor& x, std::vector<Tensor>& out, double eps) {
  const int64_t B = x.size(0), L = x.size(1), H = x.size(3), D = x.size(4);
  const T* in = x.const_data_ptr<T>();
  T* o[3] = {out[0].mutable_data_ptr<T>(), out[1].mutable_data_ptr<T>(),
             out[2].mutable_data_ptr<T>()};
  const T offset = static_cast<T>(D * eps);
  at::parallel_for(0, B * L, 64, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    std::vector<T> s(D);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / L, t = row % L;
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t h = 0; h < H; ++h) {
          const T* src = in + ((row * 3 + j) * H + h) * D;
          T* dst = o[j] + ((b * H + h) * L + t) * D;
          T squared = 0;
#pragma omp simd reduction(+ : squared)
          for (int64_t e = 0; e < D; ++e) {
            s[e] = src[e] * sigmoid(src[e]);
            squared += s[e] * s[e];
          }
          const T scale = j < 2 ? T(1) / std::sqrt(squared + offset) : T(1);
#pragma omp simd
          for (int64_t e = 0; e < D; ++e) dst[e] = s[e] * scale;
        }
    }
  });
}

template <typename T>
void qkv_backward_kernel(const Tensor& x, at::TensorList grad_out, Tensor& grad_x, double eps) {
  const int64_t B = x.size(0), L = x.size(1), H = x.size(3), D = x.size(4);
  const T* in = x.const_data_ptr<T>();
  const T* g[3] = {grad_out[0].const_data_ptr<T>(), grad_out[1].const_data_ptr<T>(),
                   grad_out[2].const_data_ptr<T>()};
  T* gx = grad_x.mutable_data_ptr<T>();
  const T offset = static_cast<T>(D * eps);
  at::parallel_for(0, B * L, 64, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    std::vector<T> s(D), gate(D);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / L, t = row % L;
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t h = 0; h < H; ++h) {
          const T* src = in + ((row * 3 + j) * H + h) * D;
          const T* gy = g[j] + ((b * H + h) * L + t) * D;
          T* dst = gx + ((row * 3 + j) * H + h) * D;
          T squared = 0, along = 0;  // |s|^2 and s . dL/dy
#pragma omp simd reduction(+ : squared, along)
          for (int64_t e = 0; e < D; ++e) {
            gate[e] = sigmoid(src[e]);
            s[e] = src[e] * gate[e];
            squared += s[e] * s[e];
            along += s[e] * gy[e];
          }
          // y = s / n with n = sqrt(|s|^2 + D eps): dL/ds = (dL/dy - y (y . dL/dy)) / n
          const T inverse = j < 2 ? T(1) / std::sqrt(squared + offset) : T(1);
          const T radial = j < 2 ? along * inverse * inverse * inverse : T(0);
#pragma omp simd
          for (int64_t e = 0; e < D; ++e)
            dst[e] = (gy[e] * inverse - s[e] * radial) * silu_derivative(src[e], gate[e]);
        }
    }
  });
}

void check_qkv(const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous() && x.dim() == 5 && x.size(2) == 3,
              "qkv_activation: x must be a contiguous CPU tensor (B, T, 3, H, D)");
}

// Returns q, k and v, each (B, H, T, D).
std::vector<Tensor> qkv_activation_forward(const Tensor& x, double eps) {
  check_qkv(x);
  std::vector<Tensor> out;
  for (int j = 0; j < 3; ++j)
    out.push_back(at::empty({x.size(0), x.size(3), x.size(1), x.size(4)}, x.options()));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "qkv_activation_forward",
                             [&] { qkv_forward_kernel<scalar_t>(x, out, eps); });
  return out;
}

Tensor qkv_activation_backward(const Tensor& x, at::TensorList grad_out, double eps) {
  check_qkv(x);
  TORCH_CHECK(grad_out.size() == 3, "qkv_activation: three gradients (q, k, v)");
  for (const Tensor& g : grad_out)
    TORCH_CHECK(g.is_contiguous() && g.scalar_type() == x.scalar_type() &&
                    g.sizes() == c10::IntArrayRef({x.size(0), x.size(3), x.size(1), x.size(4)}),
                "qkv_activation: the gradients must be contiguous (B, H, T, D)");
  Tensor grad_x = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "qkv_activation_backward",
                             [&] { qkv_backward_kernel<scalar_t>(x, grad_out, grad_x, eps); });
  return grad_x;
}

// ---- gated_output

template <typename T>
void output_forward_kernel(const Tensor& reads, const Tensor& weight, const Tensor& gate,
                           Tensor& y, double eps) {
  const int64_t B = reads.size(0), H = reads.size(1), L = reads.size(2), D = reads.size(3);
  const T* r = reads.const_data_ptr<T>();
  const T* w = weight.const_data_ptr<T>();
  const T* g = gate.const_data_ptr<T>();
  T* out = y.mutable_data_ptr<T>();
  at::parallel_for(0, B * L, 64, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / L, t = row % L;
      for (int64_t h = 0; h < H; ++h) {
        const T* src = r + ((b * H + h) * L + t) * D;
        const T* gr = g + (row * H + h) * D;
        T* dst = out + (row * H + h) * D;
        T squared = 0;
#pragma omp simd reduction(+ : squared)
        for (int64_t e = 0; e < D; ++e) squared += src[e] * src[e];
        const T inverse = T(1) / std::sqrt(squared / T(D) + static_cast<T>(eps));
#pragma omp simd
        for (int64_t e = 0; e < D; ++e)
          dst[e] = src[e] * inverse * w[h * D + e] * gr[e] * sigmoid(gr[e]);
      }
    }
  });
}

template <typename T>
void output_backward_kernel(const Tensor& reads, const Tensor& weight, const Tensor& gate,
                            const Tensor& grad_y, Tensor& grad_reads, Tensor& grad_weight,
                            Tensor& grad_gate, double eps) {
  const int64_t B = reads.size(0), H = reads.size(1), L = reads.size(2), D = reads.size(3);
  const T* r = reads.const_data_ptr<T>();
  const T* w = weight.const_data_ptr<T>();
  const T* g = gate.const_data_ptr<T>();
  const T* gy = grad_y.const_data_ptr<T>();
  T* gr_out = grad_reads.mutable_data_ptr<T>();
  T* gg_out = grad_gate.mutable_data_ptr<T>();
  // the weight's gradient, summed per thread, then over threads
  const int64_t threads = at::get_num_threads();
  std::vector<T> partial(threads * H * D, T(0));
  at::parallel_for(0, B * L, 64, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    T* grad_w = partial.data() + at::get_thread_num() * H * D;
    std::vector<T> dn(D);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / L, t = row % L;
      for (int64_t h = 0; h < H; ++h) {
        const T* src = r + ((b * H + h) * L + t) * D;
        const T* gate_row = g + (row * H + h) * D;
        const T* up = gy + (row * H + h) * D;
        T squared = 0;
#pragma omp simd reduction(+ : squared)
        for (int64_t e = 0; e < D; ++e) squared += src[e] * src[e];
        const T inverse = T(1) / std::sqrt(squared / T(D) + static_cast<T>(eps));
        T along = 0;  // n . dL/dn
#pragma omp simd reduction(+ : along)
        for (int64_t e = 0; e < D; ++e) {
          const T s = sigmoid(gate_row[e]), n = src[e] * inverse, weighted = n * w[h * D + e];
          const T to_product = up[e] * gate_row[e] * s;  // dL/d(n w)
          gg_out[(row * H + h) * D + e] = up[e] * weighted * silu_derivative(gate_row[e], s);
          grad_w[h * D + e] += to_product * n;
          dn[e] = to_product * w[h * D + e];
          along += dn[e] * n;
        }
        T* dst = gr_out + ((b * H + h) * L + t) * D;  // n = x r: dL/dx = r (dn - n (n . dn) / D)
#pragma omp simd
        for (int64_t e = 0; e < D; ++e)
          dst[e] = inverse * (dn[e] - src[e] * inverse * along / T(D));
      }
    }
  });
  T* gw = grad_weight.mutable_data_ptr<T>();
  for (int64_t e = 0; e < H * D; ++e) {
    T sum = 0;
    for (int64_t thread = 0; thread < threads; ++thread) sum += partial[thread * H * D + e];
    gw[e] = sum;
  }
}

void check_output(const Tensor& reads, const Tensor& weight, const Tensor& gate) {
  TORCH_CHECK(reads.device().is_cpu() && reads.is_contiguous() && reads.dim() == 4,
              "gated_output: reads must be a contiguous CPU tensor (B, H, T, D)");
  const int64_t B = reads.size(0), H = reads.size(1), L = reads.size(2), D = reads.size(3);
  TORCH_CHECK(weight.is_contiguous() && weight.sizes() == c10::IntArrayRef({H, D}) &&
                  weight.scalar_type() == reads.scalar_type(),
              "gated_output: weight must be contiguous (H, D) of the reads' dtype");
  TORCH_CHECK(gate.is_contiguous() && gate.sizes() == c10::IntArrayRef({B, L, H * D}) &&
                  gate.scalar_type() == reads.scalar_type(),
              "gated_output: gate must be contiguous (B, T, H * D) of the reads' dtype");
}

Tensor gated_output_forward(const Tensor& reads, const Tensor& weight, const Tensor& gate,
                            double eps) {
  check_output(reads, weight, gate);
  Tensor y = at::empty_like(gate);
  AT_DISPATCH_FLOATING_TYPES(reads.scalar_type(), "gated_output_forward", [&] {
    output_forward_kernel<scalar_t>(reads, weight, gate, y, eps);
  });
  return y;
}

std::tuple<Tensor, Tensor, Tensor> gated_output_backward(const Tensor& reads,
                                                         const Tensor& weight,
                                                         const Tensor& gate,
                                                         const Tensor& grad_y, double eps) {
  check_output(reads, weight, gate);
  TORCH_CHECK(grad_y.is_contiguous() && grad_y.sizes() == gate.sizes() &&
                  grad_y.scalar_type() == gate.scalar_type(),
              "gated_output: grad_y must be contiguous, of the gate's shape");
  Tensor grad_reads = at::empty_like(reads), grad_weight = at::empty_like(weight);
  Tensor grad_gate = at::empty_like(gate);
  AT_DISPATCH_FLOATING_TYPES(reads.scalar_type(), "gated_output_backward", [&] {
    output_backward_kernel<scalar_t>(reads, weight, gate, grad_y, grad_reads, grad_weight,
                                     grad_gate, eps);
  });
  return {grad_reads, grad_weight, grad_gate};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(titans_seq, m) {
  m.def("qkv_activation_forward(Tensor x, float eps) -> Tensor[]");
  m.def("qkv_activation_backward(Tensor x, Tensor[] grad_out, float eps) -> Tensor");
  m.def("gated_output_forward(Tensor reads, Tensor weight, Tensor gate, float eps) -> Tensor");
  m.def(
      "gated_output_backward(Tensor reads, Tensor weight, Tensor gate, Tensor grad_y, "
      "float eps) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(titans_seq, CPU, m) {
  m.impl("qkv_activation_forward", TORCH_FN(qkv_activation_forward));
  m.impl("qkv_activation_backward", TORCH_FN(qkv_activation_backward));
  m.impl("gated_output_forward", TORCH_FN(gated_output_forward));
  m.impl("gated_output_backward", TORCH_FN(gated_output_backward));
}
