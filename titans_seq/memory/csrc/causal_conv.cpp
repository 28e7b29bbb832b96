// The memory's causal depthwise convolution over time (titans_seq/memory/conv.py) on the CPU,
// forward and backward: y[b, t, c] = bias[c] + sum_j weight[c, j] x[b, t + j, c], where x holds
// the kernel_size - 1 inputs before the call followed by the call's T inputs. Channels are the
// contiguous dimension, so every loop below runs over them; this is several times faster than
// the general convolution routines for these shapes (a few channels per group, a kernel of 4).

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "dense.h"

namespace {

using at::Tensor;
using titans_seq_native::FlushSubnormals;

void check(const Tensor& x, const Tensor& weight, int64_t channels) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous() && x.dim() == 3 && x.size(2) == channels,
              "causal_conv: x must be a contiguous CPU tensor (B, T + K - 1, channels)");
  TORCH_CHECK(weight.is_contiguous() && weight.dim() == 2 && weight.size(0) == channels &&
                  weight.scalar_type() == x.scalar_type() && x.size(1) >= weight.size(1),
              "causal_conv: weight must be (channels, K) of the input's dtype, K <= length");
}

template <typename T>
std::vector<T> transposed(const Tensor& weight) {  // (K, channels): contiguous per tap
  const int64_t channels = weight.size(0), taps = weight.size(1);
  const T* w = weight.const_data_ptr<T>();
  std::vector<T> out(taps * channels);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t j = 0; j < taps; ++j) out[j * channels + c] = w[c * taps + j];
  return out;
}

template <typename T>
void forward_kernel(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y) {
  const int64_t batch = x.size(0), channels = x.size(2), taps = weight.size(1);
  const int64_t length = x.size(1) - taps + 1;
  const std::vector<T> w = transposed<T>(weight);
  const T* input = x.const_data_ptr<T>();
  const T* b = bias.const_data_ptr<T>();
  T* out = y.mutable_data_ptr<T>();
  at::parallel_for(0, batch * length, 64, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / length, t = row % length;
      T* o = out + row * channels;
      std::copy_n(b, channels, o);
      for (int64_t j = 0; j < taps; ++j) {
        const T* in = input + (n * (length + taps - 1) + t + j) * channels;
        const T* tap = w.data() + j * channels;
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) o[c] += tap[c] * in[c];
      }
    }
  });
}

template <typename T>
void backward_kernel(const Tensor& x, const Tensor& weight, const Tensor& grad_y, Tensor& grad_x,
                     Tensor& grad_weight, Tensor& grad_bias) {
  const int64_t batch = x.size(0), channels = x.size(2), taps = weight.size(1);
  const int64_t extended = x.size(1), length = extended - taps + 1;
  const std::vector<T> w = transposed<T>(weight);
  const T* input = x.const_data_ptr<T>();
  const T* gy = grad_y.const_data_ptr<T>();
  T* gx = grad_x.mutable_data_ptr<T>();
  // dL/dx[s] = sum_j weight[:, j] dL/dy[s - j] over the outputs that read input s
  at::parallel_for(0, batch * extended, 64, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / extended, s = row % extended;
      T* g = gx + row * channels;
      std::fill(g, g + channels, T(0));
      for (int64_t j = std::max<int64_t>(0, s - length + 1); j < taps && j <= s; ++j) {
        const T* upstream = gy + (n * length + s - j) * channels;
        const T* tap = w.data() + j * channels;
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) g[c] += tap[c] * upstream[c];
      }
    }
  });
  // dL/dweight and dL/dbias: each thread owns a range of channels (no reduction needed)
  std::vector<T> grad_w(taps * channels, T(0));
  T* gb = grad_bias.mutable_data_ptr<T>();
  at::parallel_for(0, channels, 16, [&](int64_t first, int64_t last) {
    FlushSubnormals flush;
    std::fill(gb + first, gb + last, T(0));
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t t = 0; t < length; ++t) {
        const T* upstream = gy + (n * length + t) * channels;
#pragma omp simd
        for (int64_t c = first; c < last; ++c) gb[c] += upstream[c];
        for (int64_t j = 0; j < taps; ++j) {
          const T* in = input + (n * extended + t + j) * channels;
          T* acc = grad_w.data() + j * channels;
#pragma omp simd
          for (int64_t c = first; c < last; ++c) acc[c] += upstream[c] * in[c];
        }
      }
    }
  });
  T* gw = grad_weight.mutable_data_ptr<T>();
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t j = 0; j < taps; ++j) gw[c * taps + j] = grad_w[j * channels + c];
}

Tensor causal_conv_forward(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t batch = x.size(0), channels = x.size(2), taps = weight.size(1);
  check(x, weight, channels);
  TORCH_CHECK(bias.is_contiguous() && bias.numel() == channels &&
                  bias.scalar_type() == x.scalar_type(),
              "causal_conv: bias must be (channels,) of the input's dtype");
  Tensor y = at::empty({batch, x.size(1) - taps + 1, channels}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv_forward",
                             [&] { forward_kernel<scalar_t>(x, weight, bias, y); });
  return y;
}

std::tuple<Tensor, Tensor, Tensor> causal_conv_backward(const Tensor& x, const Tensor& weight,
                                                        const Tensor& grad_y) {
  const int64_t batch = x.size(0), channels = x.size(2), taps = weight.size(1);
  check(x, weight, channels);
  const int64_t length = x.size(1) - taps + 1;
  TORCH_CHECK(grad_y.is_contiguous() && grad_y.scalar_type() == x.scalar_type() &&
                  grad_y.sizes() == c10::IntArrayRef({batch, length, channels}),
              "causal_conv: grad_y must be contiguous (B, T, channels)");
  Tensor grad_x = at::empty_like(x);
  Tensor grad_weight = at::empty_like(weight);
  Tensor grad_bias = at::empty({channels}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv_backward", [&] {
    backward_kernel<scalar_t>(x, weight, grad_y, grad_x, grad_weight, grad_bias);
  });
  return {grad_x, grad_weight, grad_bias};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(titans_seq, m) {
  m.def("causal_conv_forward(Tensor x, Tensor weight, Tensor bias) -> Tensor");
  m.def("causal_conv_backward(Tensor x, Tensor weight, Tensor grad_y) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(titans_seq, CPU, m) {
  m.impl("causal_conv_forward", TORCH_FN(causal_conv_forward));
  m.impl("causal_conv_backward", TORCH_FN(causal_conv_backward));
}
