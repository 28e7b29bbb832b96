// The sequential part of the chunked memory scan on the CPU: every chunk of a block, for all
// batch x head rows at once, and its hand-written backward.
//
// It computes exactly what `_advance` in titans_seq/memory/chunked.py computes with PyTorch ops
// (that path is the reference the tests compare to). Per row and chunk, with the memory
// M = [W; S] per layer and P the weights the chunk's gradients are taken at (Eq. 16):
//
//   forward through the memory MLP at P:  a_0 = k,  z_l = a_l P_l,  a_{l+1} = silu(z_l)
//   its output gradient (Eq. 12):         d_{L-1} = 2 (z_{L-1} - v),
//                                         d_l = (d_{l+1} P_{l+1}^T) * silu'(z_l)
//   the optional clip of u_i = a_i^T d_i: d_l *= min(1, tau / ||u||)
//   the update (Eqs. 13 and 18):          M'_l[s] = sum_r T[s, r] M_l[r] + sum_i U[s, i] a_i^T d_i
//
// T (2 x 2) and U (2 x C) are the chunk's gate coefficients (coefficients.py). Rows are
// independent, so they run in parallel; a row's memory (a few KiB at the sizes the models use)
// stays in cache across its chunks. The backward recomputes a chunk's forward from its start
// memory rather than storing the activations.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;
using at::TensorList;

// ---- small row-major matrix products

// c (m x n) (+)= A b with A(i, p) = a[i * a_row + p * a_col] and b row-major (k x n). Blocks of
// 4 rows x 64 bytes of columns keep their sums in registers (8 AVX2 vectors) across the k loop.
template <typename T>
inline void gemm(const T* a, int64_t a_row, int64_t a_col, const T* b, T* c, int64_t m,
                 int64_t k, int64_t n, bool accumulate) {
  constexpr int64_t W = 64 / sizeof(T);
  constexpr int64_t R = 4;
  int64_t j0 = 0;
  for (; j0 + W <= n; j0 += W) {
    int64_t i0 = 0;
    for (; i0 + R <= m; i0 += R) {
      T sums[R][W];
      for (int64_t r = 0; r < R; ++r)
        for (int64_t w = 0; w < W; ++w) sums[r][w] = accumulate ? c[(i0 + r) * n + j0 + w] : T(0);
      for (int64_t p = 0; p < k; ++p) {
        const T* b_row = b + p * n + j0;
        for (int64_t r = 0; r < R; ++r) {
          const T scale = a[(i0 + r) * a_row + p * a_col];
#pragma omp simd
          for (int64_t w = 0; w < W; ++w) sums[r][w] += scale * b_row[w];
        }
      }
      for (int64_t r = 0; r < R; ++r)
        for (int64_t w = 0; w < W; ++w) c[(i0 + r) * n + j0 + w] = sums[r][w];
    }
    for (; i0 < m; ++i0) {
      T sums[W];
      for (int64_t w = 0; w < W; ++w) sums[w] = accumulate ? c[i0 * n + j0 + w] : T(0);
      for (int64_t p = 0; p < k; ++p) {
        const T scale = a[i0 * a_row + p * a_col];
        const T* b_row = b + p * n + j0;
#pragma omp simd
        for (int64_t w = 0; w < W; ++w) sums[w] += scale * b_row[w];
      }
      for (int64_t w = 0; w < W; ++w) c[i0 * n + j0 + w] = sums[w];
    }
  }
  if (j0 < n) {  // the columns left over
    for (int64_t i = 0; i < m; ++i) {
      T* c_row = c + i * n;
      if (!accumulate) std::fill(c_row + j0, c_row + n, T(0));
      for (int64_t p = 0; p < k; ++p) {
        const T scale = a[i * a_row + p * a_col];
        const T* b_row = b + p * n;
        for (int64_t j = j0; j < n; ++j) c_row[j] += scale * b_row[j];
      }
    }
  }
}

// out (m x n) (+)= a (m x k) . b (k x n)
template <typename T>
inline void matmul_nn(const T* a, const T* b, T* out, int64_t m, int64_t k, int64_t n,
                      bool accumulate) {
  gemm(a, k, 1, b, out, m, k, n, accumulate);
}

// out (m x n) (+)= a^T b, with a (k x m) and b (k x n)
template <typename T>
inline void matmul_tn(const T* a, const T* b, T* out, int64_t k, int64_t m, int64_t n,
                      bool accumulate) {
  gemm(a, 1, m, b, out, m, k, n, accumulate);
}

// out (m x n) (+)= a b^T, with a (m x k) and b (n x k); `scratch` holds k x n values
template <typename T>
inline void matmul_nt(const T* a, const T* b, T* out, int64_t m, int64_t k, int64_t n,
                      bool accumulate, T* scratch) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) scratch[p * n + j] = b[j * k + p];
  gemm(a, k, 1, scratch, out, m, k, n, accumulate);
}

template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

// exp(x) from plain arithmetic and bit operations, so that loops calling it vectorise (the
// libm call does not): x = n ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor polynomial
// (degree 6 in float, 13 in double: within about one unit in the last place), 2^n from the
// exponent bits. Inputs are clamped to the range where exp neither overflows nor underflows.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float shift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float rounded = x * 1.44269504088896341f + shift;
  const float n = rounded - shift;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits, shift_bits;
  std::memcpy(&bits, &rounded, sizeof bits);
  std::memcpy(&shift_bits, &shift, sizeof shift_bits);
  const int32_t scale_bits = (bits - shift_bits + 127) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

inline double exp_approx(double x) {
  x = std::min(std::max(x, -708.0), 709.0);
  const double shift = 6755399441055744.0;  // 1.5 * 2^52
  const double rounded = x * 1.4426950408889634074 + shift;
  const double n = rounded - shift;
  double r = x - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1 / 13!
  const double inverse_factorials[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                       1.0 / 362880.0,    1.0 / 40320.0,    1.0 / 5040.0,
                                       1.0 / 720.0,       1.0 / 120.0,      1.0 / 24.0,
                                       1.0 / 6.0,         0.5,              1.0,
                                       1.0};
  for (double c : inverse_factorials) p = p * r + c;
  int64_t bits, shift_bits;
  std::memcpy(&bits, &rounded, sizeof bits);
  std::memcpy(&shift_bits, &shift, sizeof shift_bits);
  const int64_t scale_bits = (bits - shift_bits + 1023) << 52;
  double scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_approx(-x));
}

// ---- the shapes of one call

struct Layout {
  int64_t rows = 0, chunks = 0, chunk = 0, depth = 0;
  std::vector<int64_t> d_in, d_out;
  int64_t size(int64_t layer) const { return d_in[layer] * d_out[layer]; }
  int64_t max_width() const {
    int64_t width = 0;
    for (int64_t l = 0; l < depth; ++l) width = std::max({width, d_in[l], d_out[l]});
    return width;
  }
};

Layout check_inputs(const Tensor& keys, const Tensor& values, const Tensor& transition,
                    const Tensor& update_weights, TensorList memory, TensorList gradient_point) {
  TORCH_CHECK(keys.device().is_cpu(), "chunk_step: CPU tensors only");
  TORCH_CHECK(keys.dim() == 4 && values.dim() == 4, "chunk_step: keys and values (R, N, C, D)");
  TORCH_CHECK(!memory.empty(), "chunk_step: at least one memory layer");
  Layout layout;
  layout.rows = keys.size(0);
  layout.chunks = keys.size(1);
  layout.chunk = keys.size(2);
  layout.depth = static_cast<int64_t>(memory.size());
  const auto dtype = keys.scalar_type();
  auto same = [&](const Tensor& t, std::vector<int64_t> shape, const char* name) {
    TORCH_CHECK(t.scalar_type() == dtype && t.is_contiguous() && t.device().is_cpu() &&
                    t.sizes().vec() == shape,
                "chunk_step: ", name, " must be a contiguous CPU tensor of ", keys.scalar_type(),
                " and shape ", c10::IntArrayRef(shape), ", got ", t.sizes());
  };
  for (const Tensor& m : memory) {
    TORCH_CHECK(m.dim() == 4, "chunk_step: memory layers (R, 2, D_in, D_out)");
    layout.d_in.push_back(m.size(2));
    layout.d_out.push_back(m.size(3));
  }
  const int64_t R = layout.rows, N = layout.chunks, C = layout.chunk;
  same(keys, {R, N, C, layout.d_in[0]}, "keys");
  same(values, {R, N, C, layout.d_out[layout.depth - 1]}, "values");
  same(transition, {R, N, 2, 2}, "transition");
  same(update_weights, {R, N, 2, C}, "update_weights");
  for (int64_t l = 0; l < layout.depth; ++l) {
    if (l > 0) TORCH_CHECK(layout.d_in[l] == layout.d_out[l - 1], "chunk_step: layer widths");
    same(memory[l], {R, 2, layout.d_in[l], layout.d_out[l]}, "memory");
    if (!gradient_point.empty())
      same(gradient_point[l], {R, layout.d_in[l], layout.d_out[l]}, "gradient_point");
  }
  TORCH_CHECK(gradient_point.empty() ||
                  static_cast<int64_t>(gradient_point.size()) == layout.depth,
              "chunk_step: one gradient point per layer, or none");
  return layout;
}

// ---- per-row scratch: the activations of one chunk

template <typename T>
struct ChunkActivations {
  std::vector<std::vector<T>> inputs;      // a_l (C x D_in), l >= 1 (a_0 is the keys)
  std::vector<std::vector<T>> pre;         // z_l (C x D_out)
  std::vector<std::vector<T>> back;        // g_l = d_{l+1} P_{l+1}^T (C x D_out), l < L - 1
  std::vector<std::vector<T>> grads;       // d_l before the clip (C x D_out)
  std::vector<std::vector<T>> gates;       // sigmoid(z_l) (C x D_out), l < L - 1
  std::vector<T> squared, factor;          // ||u_i||^2 and the clip factor per token
  std::vector<std::vector<T>> clipped;     // d_l after the clip (C x D_out)
  std::vector<T> scratch;                  // a transposed matrix

  explicit ChunkActivations(const Layout& layout) {
    const int64_t C = layout.chunk;
    for (int64_t l = 0; l < layout.depth; ++l) {
      inputs.emplace_back(C * layout.d_in[l]);
      pre.emplace_back(C * layout.d_out[l]);
      back.emplace_back(C * layout.d_out[l]);
      grads.emplace_back(C * layout.d_out[l]);
      gates.emplace_back(C * layout.d_out[l]);
      clipped.emplace_back(C * layout.d_out[l]);
    }
    int64_t largest = C * std::max(C, layout.max_width());
    for (int64_t l = 0; l < layout.depth; ++l) largest = std::max(largest, layout.size(l));
    scratch.resize(largest);
    squared.assign(C, T(0));
    factor.assign(C, T(1));
  }
};

// The surprise of one chunk at the weights `point`: fills `act` (inputs, pre-activations and
// gradients before the clip, and the clip factor). `layer_inputs[l]` points to where a_l lives
// (the keys for l = 0, act.inputs[l] otherwise, or an output tensor).
template <typename T>
void surprise(const Layout& layout, const T* values, const std::vector<const T*>& point,
              const std::vector<T*>& layer_inputs, ChunkActivations<T>& act, double max_norm) {
  const int64_t C = layout.chunk, L = layout.depth;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t d_in = layout.d_in[l], d_out = layout.d_out[l];
    T* z = act.pre[l].data();
    matmul_nn(layer_inputs[l], point[l], z, C, d_in, d_out, false);
    if (l < L - 1) {
      T* next = layer_inputs[l + 1];
      T* gate = act.gates[l].data();
      for (int64_t e = 0; e < C * d_out; ++e) {
        gate[e] = sigmoid(z[e]);
        next[e] = z[e] * gate[e];
      }
    }
  }
  {
    const int64_t d_out = layout.d_out[L - 1];
    const T* z = act.pre[L - 1].data();
    T* d = act.grads[L - 1].data();
    for (int64_t e = 0; e < C * d_out; ++e) d[e] = T(2) * (z[e] - values[e]);
  }
  for (int64_t l = L - 2; l >= 0; --l) {
    const int64_t width = layout.d_out[l];  // = d_in[l + 1]
    T* g = act.back[l].data();
    matmul_nt(act.grads[l + 1].data(), point[l + 1], g, C, layout.d_out[l + 1], width, false,
              act.scratch.data());
    const T* z = act.pre[l].data();
    const T* gate = act.gates[l].data();
    T* d = act.grads[l].data();
    for (int64_t e = 0; e < C * width; ++e) {
      const T s = gate[e];
      d[e] = g[e] * s * (T(1) + z[e] * (T(1) - s));
    }
  }
  if (max_norm > 0) {
    const T tau = static_cast<T>(max_norm);
    for (int64_t i = 0; i < C; ++i) {
      T squared = 0;
      for (int64_t l = 0; l < L; ++l) {
        const T* a = layer_inputs[l] + i * layout.d_in[l];
        const T* d = act.grads[l].data() + i * layout.d_out[l];
        squared += dot(a, a, layout.d_in[l]) * dot(d, d, layout.d_out[l]);
      }
      act.squared[i] = squared;
      act.factor[i] = tau / std::sqrt(std::max(squared, tau * tau));  // clip_factor in chunked.py
    }
  }
  for (int64_t l = 0; l < L; ++l) {
    const int64_t d_out = layout.d_out[l];
    for (int64_t i = 0; i < C; ++i) {
      const T factor = max_norm > 0 ? act.factor[i] : T(1);
      for (int64_t q = 0; q < d_out; ++q)
        act.clipped[l][i * d_out + q] = act.grads[l][i * d_out + q] * factor;
    }
  }
}


// ---- the reads of one chunk: every token at its own weights (Eq. 15), from the chunk's start
// memory [W; S] and its surprise factors (chunked.py `_retrieve`), per layer
//   o_l = diag(R[:, 0]) h_l W_l + diag(R[:, 1]) h_l S_l - ((h_l a_l^T) * TW) d_l,
// with h_0 = q, h_{l+1} = silu(o_l) and the read y = o_{L-1}; R and TW are the chunk's read and
// token weights (coefficients.py).

template <typename T>
struct ReadActivations {
  std::vector<std::vector<T>> hidden;          // h_l (C x D_in), l >= 1 (h_0 is the queries)
  std::vector<std::vector<T>> raw;             // h_l a_l^T (C x C)
  std::vector<std::vector<T>> scores;          // -(h_l a_l^T) * TW (C x C)
  std::vector<std::vector<T>> from_w, from_s;  // h_l W_l and h_l S_l (C x D_out)
  std::vector<std::vector<T>> out;             // o_l (C x D_out)
  std::vector<std::vector<T>> gates;           // sigmoid(o_l) (C x D_out), l < L - 1

  explicit ReadActivations(const Layout& layout) {
    const int64_t C = layout.chunk;
    for (int64_t l = 0; l < layout.depth; ++l) {
      hidden.emplace_back(C * layout.d_in[l]);
      raw.emplace_back(C * C);
      scores.emplace_back(C * C);
      from_w.emplace_back(C * layout.d_out[l]);
      from_s.emplace_back(C * layout.d_out[l]);
      out.emplace_back(C * layout.d_out[l]);
      gates.emplace_back(C * layout.d_out[l]);
    }
  }
  const T* input(int64_t layer, const T* queries) const {
    return layer == 0 ? queries : hidden[layer].data();
  }
};

template <typename T>
void read_chunk(const Layout& layout, const T* queries, const std::vector<const T*>& start,
                const std::vector<T*>& inputs, ChunkActivations<T>& act,
                const T* token_weights, const T* read_weights, ReadActivations<T>& reads,
                T* output) {
  const int64_t C = layout.chunk, L = layout.depth;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t d_in = layout.d_in[l], d_out = layout.d_out[l], size = layout.size(l);
    const T* h = reads.input(l, queries);
    T* raw = reads.raw[l].data();
    T* scores = reads.scores[l].data();
    matmul_nt(h, inputs[l], raw, C, d_in, C, false, act.scratch.data());
    for (int64_t e = 0; e < C * C; ++e) scores[e] = -raw[e] * token_weights[e];
    matmul_nn(h, start[l], reads.from_w[l].data(), C, d_in, d_out, false);
    matmul_nn(h, start[l] + size, reads.from_s[l].data(), C, d_in, d_out, false);
    T* out = l == L - 1 ? output : reads.out[l].data();
    for (int64_t t = 0; t < C; ++t) {
      const T from_w = read_weights[2 * t], from_s = read_weights[2 * t + 1];
      for (int64_t q = 0; q < d_out; ++q)
        out[t * d_out + q] =
            from_w * reads.from_w[l][t * d_out + q] + from_s * reads.from_s[l][t * d_out + q];
    }
    matmul_nn(scores, act.clipped[l].data(), out, C, C, d_out, true);
    if (l == L - 1) {
      std::copy_n(out, C * d_out, reads.out[l].data());
    } else {
      T* gate = reads.gates[l].data();
      T* next = reads.hidden[l + 1].data();
      for (int64_t e = 0; e < C * d_out; ++e) {
        gate[e] = sigmoid(out[e]);
        next[e] = out[e] * gate[e];
      }
    }
  }
}

// Backward of read_chunk: adds to the gradients of the layer inputs a_l (grad_inputs), of the
// clipped output gradients d_l (grad_clipped) and of the start memory (grad_start); writes those
// of the queries, token weights and read weights.
template <typename T>
void read_chunk_backward(const Layout& layout, const T* queries, const std::vector<const T*>& start,
                         const std::vector<T*>& inputs, ChunkActivations<T>& act,
                         const T* token_weights, const T* read_weights,
                         const ReadActivations<T>& reads, const T* grad_output,
                         std::vector<std::vector<T>>& grad_inputs,
                         std::vector<std::vector<T>>& grad_clipped,
                         std::vector<std::vector<T>>& grad_start, T* grad_queries,
                         T* grad_token_weights, T* grad_read_weights, std::vector<T>& grad_out,
                         std::vector<T>& grad_hidden, std::vector<T>& scaled_w,
                         std::vector<T>& scaled_s, std::vector<T>& grad_scores) {
  const int64_t C = layout.chunk, L = layout.depth;
  std::fill(grad_token_weights, grad_token_weights + C * C, T(0));
  std::fill(grad_read_weights, grad_read_weights + 2 * C, T(0));
  for (int64_t l = L - 1; l >= 0; --l) {
    const int64_t d_in = layout.d_in[l], d_out = layout.d_out[l], size = layout.size(l);
    const T* h = reads.input(l, queries);
    if (l == L - 1) {
      std::copy_n(grad_output, C * d_out, grad_out.data());
    } else {  // through h_{l+1} = silu(o_l)
      const T* o = reads.out[l].data();
      const T* gate = reads.gates[l].data();
      for (int64_t e = 0; e < C * d_out; ++e)
        grad_out[e] = grad_hidden[e] * gate[e] * (T(1) + o[e] * (T(1) - gate[e]));
    }
    for (int64_t t = 0; t < C; ++t) {
      const T* g = grad_out.data() + t * d_out;
      grad_read_weights[2 * t] += dot(g, reads.from_w[l].data() + t * d_out, d_out);
      grad_read_weights[2 * t + 1] += dot(g, reads.from_s[l].data() + t * d_out, d_out);
      const T from_w = read_weights[2 * t], from_s = read_weights[2 * t + 1];
      for (int64_t q = 0; q < d_out; ++q) {
        scaled_w[t * d_out + q] = from_w * g[q];
        scaled_s[t * d_out + q] = from_s * g[q];
      }
    }
    matmul_tn(h, scaled_w.data(), grad_start[l].data(), C, d_in, d_out, true);
    matmul_tn(h, scaled_s.data(), grad_start[l].data() + size, C, d_in, d_out, true);
    // dL/dh_l, kept in grad_hidden for the layer below
    matmul_nt(scaled_w.data(), start[l], grad_hidden.data(), C, d_out, d_in, false,
              act.scratch.data());
    matmul_nt(scaled_s.data(), start[l] + size, grad_hidden.data(), C, d_out, d_in, true,
              act.scratch.data());
    // o_l -= ((h a^T) * TW) d: the clipped gradients, then the scores
    matmul_tn(reads.scores[l].data(), grad_out.data(), grad_clipped[l].data(), C, C, d_out, true);
    T* grad_raw = grad_scores.data();
    matmul_nt(grad_out.data(), act.clipped[l].data(), grad_raw, C, d_out, C, false,
              act.scratch.data());  // dL/dscores up to the sign
    const T* raw = reads.raw[l].data();
    for (int64_t e = 0; e < C * C; ++e) {
      grad_token_weights[e] -= grad_raw[e] * raw[e];
      grad_raw[e] = -grad_raw[e] * token_weights[e];
    }
    matmul_nn(grad_raw, inputs[l], grad_hidden.data(), C, C, d_in, true);
    matmul_tn(grad_raw, h, grad_inputs[l].data(), C, C, d_in, true);
  }
  std::copy_n(grad_hidden.data(), C * layout.d_in[0], grad_queries);
}

// ---- forward

struct ReadInputs {
  const at::Tensor& queries;
  const at::Tensor& token_weights;
  const at::Tensor& read_weights;
};

void check_reads(const Layout& layout, const Tensor& keys, const ReadInputs& reads) {
  const int64_t R = layout.rows, N = layout.chunks, C = layout.chunk;
  auto same = [&](const Tensor& t, std::vector<int64_t> shape, const char* name) {
    TORCH_CHECK(t.scalar_type() == keys.scalar_type() && t.is_contiguous() &&
                    t.device().is_cpu() && t.sizes().vec() == shape,
                "chunk_step: ", name, " must be a contiguous CPU tensor of ", keys.scalar_type(),
                " and shape ", c10::IntArrayRef(shape), ", got ", t.sizes());
  };
  same(reads.queries, {R, N, C, layout.d_in[0]}, "queries");
  same(reads.token_weights, {R, N, C, C}, "token_weights");
  same(reads.read_weights, {R, N, C, 2}, "read_weights");
}

template <typename T>
void scan_forward_kernel(const Layout& layout, const Tensor& keys, const Tensor& values,
                         const Tensor& transition, const Tensor& update_weights,
                         const ReadInputs& read_inputs, TensorList memory,
                         TensorList gradient_point, const Tensor& select, double max_norm,
                         std::vector<Tensor>& memory_after, Tensor& output,
                         std::vector<Tensor>& selected, std::vector<Tensor>& starts) {
  const int64_t N = layout.chunks, C = layout.chunk, L = layout.depth;
  const bool has_point = !gradient_point.empty();
  const bool keep_starts = !starts.empty();
  const int64_t* select_data = select.const_data_ptr<int64_t>();
  const T* keys_data = keys.const_data_ptr<T>();
  const T* values_data = values.const_data_ptr<T>();
  const T* queries_data = read_inputs.queries.const_data_ptr<T>();
  const T* token_data = read_inputs.token_weights.const_data_ptr<T>();
  const T* read_data = read_inputs.read_weights.const_data_ptr<T>();
  const T* transition_data = transition.const_data_ptr<T>();
  const T* update_data = update_weights.const_data_ptr<T>();
  T* output_data = output.mutable_data_ptr<T>();
  at::parallel_for(0, layout.rows, 1, [&](int64_t begin, int64_t end) {
    ChunkActivations<T> act(layout);
    ReadActivations<T> reads(layout);
    std::vector<T> weighted(C * layout.max_width());
    std::vector<const T*> point(L), start(L);
    std::vector<T*> inputs(L);
    // Without stored starts (inference), the memory alternates between two buffers per layer.
    std::vector<std::vector<T>> alternate(2 * L);
    if (!keep_starts)
      for (int64_t l = 0; l < L; ++l)
        alternate[2 * l].resize(2 * layout.size(l)), alternate[2 * l + 1].resize(2 * layout.size(l));
    auto memory_at = [&](int64_t l, int64_t r, int64_t n) -> T* {
      return keep_starts ? starts[l].mutable_data_ptr<T>() + (r * N + n) * 2 * layout.size(l)
                         : alternate[2 * l + n % 2].data();
    };
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t l = 0; l < L; ++l) {  // the memory before the block is chunk 0's start
        const int64_t size = 2 * layout.size(l);
        std::copy_n(memory[l].const_data_ptr<T>() + r * size, size, memory_at(l, r, 0));
      }
      for (int64_t n = 0; n < N; ++n) {
        const int64_t chunk_index = r * N + n;
        for (int64_t l = 0; l < L; ++l) {
          const int64_t size = layout.size(l);
          start[l] = memory_at(l, r, n);
          point[l] = (n == 0 && has_point) ? gradient_point[l].const_data_ptr<T>() + r * size
                                           : start[l];  // slot 0 of [W; S] is W
          if (n == select_data[r])  // the start weights of the row's open chunk
            std::copy_n(start[l], size, selected[l].mutable_data_ptr<T>() + r * size);
          inputs[l] = l == 0 ? const_cast<T*>(keys_data + chunk_index * C * layout.d_in[0])
                             : act.inputs[l].data();
        }
        surprise(layout, values_data + chunk_index * C * layout.d_out[L - 1], point, inputs,
                 act, max_norm);
        read_chunk(layout, queries_data + chunk_index * C * layout.d_in[0], start, inputs, act,
                   token_data + chunk_index * C * C, read_data + chunk_index * 2 * C, reads,
                   output_data + chunk_index * C * layout.d_out[L - 1]);
        const T* coefficients = transition_data + chunk_index * 4;
        const T* update = update_data + chunk_index * 2 * C;
        for (int64_t l = 0; l < L; ++l) {
          const int64_t d_in = layout.d_in[l], d_out = layout.d_out[l], size = layout.size(l);
          T* next = n + 1 < N ? memory_at(l, r, n + 1)
                              : memory_after[l].mutable_data_ptr<T>() + r * 2 * size;
          for (int64_t e = 0; e < size; ++e) {
            const T w = start[l][e], s = start[l][size + e];
            next[e] = coefficients[0] * w + coefficients[1] * s;
            next[size + e] = coefficients[2] * w + coefficients[3] * s;
          }
          for (int64_t slot = 0; slot < 2; ++slot) {
            for (int64_t i = 0; i < C; ++i) {
              const T u = update[slot * C + i];
              for (int64_t p = 0; p < d_in; ++p)
                weighted[i * d_in + p] = u * inputs[l][i * d_in + p];
            }
            matmul_tn(weighted.data(), act.clipped[l].data(), next + slot * size, C, d_in,
                      d_out, true);
          }
        }
      }
    }
  });
}

void check_select(const Layout& layout, const Tensor& select) {
  TORCH_CHECK(select.scalar_type() == at::kLong && select.is_contiguous() &&
                  select.device().is_cpu() && select.dim() == 1 && select.size(0) == layout.rows,
              "chunk_step: select must be a contiguous (R,) int64 CPU tensor");
}

// The scan of one block: the memory after it, the reads, the start weights of chunk
// select[r] of each row r (zeros where select[r] is outside the block) and, with keep_starts,
// the memory at every chunk start (for the backward pass).
std::tuple<std::vector<Tensor>, Tensor, std::vector<Tensor>, std::vector<Tensor>> scan_forward(
    const Tensor& queries, const Tensor& keys, const Tensor& values, const Tensor& transition,
    const Tensor& update_weights, const Tensor& token_weights, const Tensor& read_weights,
    TensorList memory, TensorList gradient_point, const Tensor& select, double max_norm,
    bool keep_starts) {
  const Layout layout =
      check_inputs(keys, values, transition, update_weights, memory, gradient_point);
  const ReadInputs read_inputs{queries, token_weights, read_weights};
  check_reads(layout, keys, read_inputs);
  check_select(layout, select);
  const int64_t R = layout.rows, N = layout.chunks, C = layout.chunk;
  std::vector<Tensor> memory_after, selected, starts;
  for (int64_t l = 0; l < layout.depth; ++l) {
    memory_after.push_back(at::empty({R, 2, layout.d_in[l], layout.d_out[l]}, keys.options()));
    selected.push_back(at::zeros({R, layout.d_in[l], layout.d_out[l]}, keys.options()));
    if (keep_starts)
      starts.push_back(at::empty({R, N, 2, layout.d_in[l], layout.d_out[l]}, keys.options()));
  }
  Tensor output = at::empty({R, N, C, layout.d_out[layout.depth - 1]}, keys.options());
  if (N > 0) {
    AT_DISPATCH_FLOATING_TYPES(keys.scalar_type(), "scan_forward", [&] {
      scan_forward_kernel<scalar_t>(layout, keys, values, transition, update_weights,
                                    read_inputs, memory, gradient_point, select, max_norm,
                                    memory_after, output, selected, starts);
    });
  } else {
    for (int64_t l = 0; l < layout.depth; ++l) memory_after[l].copy_(memory[l]);
  }
  return {memory_after, output, selected, starts};
}

// ---- backward

struct Gradients {
  Tensor queries, keys, values, transition, update_weights, token_weights, read_weights;
  std::vector<Tensor> memory, point;
};

template <typename T>
void scan_backward_kernel(const Layout& layout, const Tensor& keys, const Tensor& values,
                          const Tensor& transition, const Tensor& update_weights,
                          const ReadInputs& read_inputs, TensorList starts,
                          TensorList gradient_point, const Tensor& select, double max_norm,
                          TensorList grad_memory_after, const Tensor& grad_output,
                          TensorList grad_selected, Gradients& grads) {
  const int64_t* select_data = select.const_data_ptr<int64_t>();
  const int64_t N = layout.chunks, C = layout.chunk, L = layout.depth;
  const bool has_point = !gradient_point.empty();
  const bool clip = max_norm > 0;
  const T tau = static_cast<T>(max_norm);
  at::parallel_for(0, layout.rows, 1, [&](int64_t begin, int64_t end) {
    ChunkActivations<T> act(layout);
    ReadActivations<T> reads(layout);
    const int64_t width = layout.max_width();
    std::vector<std::vector<T>> carry(L), grad_start(L), grad_in(L), grad_d(L), grad_z(L),
        grad_p(L);
    for (int64_t l = 0; l < L; ++l) {
      carry[l].resize(2 * layout.size(l));
      grad_start[l].resize(2 * layout.size(l));
      grad_in[l].resize(C * layout.d_in[l]);
      grad_d[l].resize(C * layout.d_out[l]);
      grad_z[l].resize(C * layout.d_out[l]);
      grad_p[l].resize(layout.size(l));
    }
    std::vector<T> cross(C * width), projected(C * width), scaled(C * width), inner(C);
    std::vector<T> grad_out(C * width), grad_hidden(C * width), scaled_w(C * width),
        scaled_s(C * width), grad_scores(C * C);
    std::vector<const T*> point(L), start(L);
    std::vector<T*> inputs(L);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t l = 0; l < L; ++l) {
        const int64_t size = 2 * layout.size(l);
        std::copy_n(grad_memory_after[l].const_data_ptr<T>() + r * size, size, carry[l].data());
      }
      for (int64_t n = N - 1; n >= 0; --n) {
        const int64_t chunk_index = r * N + n;
        const bool at_point = n == 0 && has_point;
        const T* key = keys.const_data_ptr<T>() + chunk_index * C * layout.d_in[0];
        const T* query = read_inputs.queries.const_data_ptr<T>() + chunk_index * C * layout.d_in[0];
        const T* token_weights = read_inputs.token_weights.const_data_ptr<T>() + chunk_index * C * C;
        const T* read_weights = read_inputs.read_weights.const_data_ptr<T>() + chunk_index * 2 * C;
        for (int64_t l = 0; l < L; ++l) {
          start[l] = starts[l].const_data_ptr<T>() + chunk_index * 2 * layout.size(l);
          point[l] = at_point ? gradient_point[l].const_data_ptr<T>() + r * layout.size(l)
                              : start[l];
          inputs[l] = l == 0 ? const_cast<T*>(key) : act.inputs[l].data();
        }
        // Recompute the chunk's forward (cheaper to redo than to store for every chunk).
        surprise(layout, values.const_data_ptr<T>() + chunk_index * C * layout.d_out[L - 1],
                 point, inputs, act, max_norm);
        read_chunk(layout, query, start, inputs, act, token_weights, read_weights, reads,
                   grad_out.data());  // the read itself is not needed again
        for (int64_t l = 0; l < L; ++l) {
          std::fill(grad_in[l].begin(), grad_in[l].end(), T(0));
          std::fill(grad_d[l].begin(), grad_d[l].end(), T(0));
          std::fill(grad_start[l].begin(), grad_start[l].end(), T(0));
          if (n == select_data[r])
            std::copy_n(grad_selected[l].const_data_ptr<T>() + r * layout.size(l),
                        layout.size(l), grad_start[l].data());
        }
        read_chunk_backward(
            layout, query, start, inputs, act, token_weights, read_weights, reads,
            grad_output.const_data_ptr<T>() + chunk_index * C * layout.d_out[L - 1], grad_in,
            grad_d, grad_start,
            grads.queries.mutable_data_ptr<T>() + chunk_index * C * layout.d_in[0],
            grads.token_weights.mutable_data_ptr<T>() + chunk_index * C * C,
            grads.read_weights.mutable_data_ptr<T>() + chunk_index * 2 * C, grad_out,
            grad_hidden, scaled_w, scaled_s, grad_scores);

        const T* coefficients = transition.const_data_ptr<T>() + chunk_index * 4;
        const T* update = update_weights.const_data_ptr<T>() + chunk_index * 2 * C;
        T* grad_coefficients = grads.transition.mutable_data_ptr<T>() + chunk_index * 4;
        T* grad_u = grads.update_weights.mutable_data_ptr<T>() + chunk_index * 2 * C;
        std::fill(grad_coefficients, grad_coefficients + 4, T(0));
        std::fill(grad_u, grad_u + 2 * C, T(0));

        // through the update M'_l[s] = sum_r T[s, r] M_l[r] + sum_i U[s, i] a_i^T d_i
        for (int64_t l = 0; l < L; ++l) {
          const int64_t d_in = layout.d_in[l], d_out = layout.d_out[l], size = layout.size(l);
          const T* grad_next = carry[l].data();  // dL/d[W'; S'] for this layer
          for (int64_t s = 0; s < 2; ++s)
            for (int64_t slot = 0; slot < 2; ++slot)
              grad_coefficients[s * 2 + slot] +=
                  dot(grad_next + s * size, start[l] + slot * size, size);
          for (int64_t s = 0; s < 2; ++s) {
            // cross = d dM'[s]^T (C x D_in), projected = a dM'[s] (C x D_out)
            matmul_nt(act.clipped[l].data(), grad_next + s * size, cross.data(), C, d_out, d_in,
                      false, act.scratch.data());
            matmul_nn(inputs[l], grad_next + s * size, projected.data(), C, d_in, d_out, false);
            for (int64_t i = 0; i < C; ++i) {
              const T u = update[s * C + i];
              grad_u[s * C + i] += dot(inputs[l] + i * d_in, cross.data() + i * d_in, d_in);
              for (int64_t p = 0; p < d_in; ++p)
                grad_in[l][i * d_in + p] += u * cross[i * d_in + p];
              for (int64_t q = 0; q < d_out; ++q)
                grad_d[l][i * d_out + q] += u * projected[i * d_out + q];
            }
          }
          // dL/d[W; S] before the chunk: T^T dM' plus what the reads sent to this start
          T* grad_w = carry[l].data();
          T* grad_s = carry[l].data() + size;
          for (int64_t e = 0; e < size; ++e) {
            const T w = grad_w[e], s = grad_s[e];
            grad_w[e] = coefficients[0] * w + coefficients[2] * s + grad_start[l][e];
            grad_s[e] = coefficients[1] * w + coefficients[3] * s + grad_start[l][size + e];
          }
        }

        // through the clip: d'_l = f d_l, f = tau / sqrt(||u||^2) once ||u|| > tau
        if (clip) {
          for (int64_t i = 0; i < C; ++i) {
            T through = 0;  // sum_l <dL/dd'_l, d_l>
            for (int64_t l = 0; l < L; ++l)
              through += dot(grad_d[l].data() + i * layout.d_out[l],
                             act.grads[l].data() + i * layout.d_out[l], layout.d_out[l]);
            inner[i] = act.squared[i] > tau * tau
                           ? through * (T(-0.5) * act.factor[i] / act.squared[i])
                           : T(0);  // dL/d||u||^2
          }
          for (int64_t l = 0; l < L; ++l) {
            const int64_t d_in = layout.d_in[l], d_out = layout.d_out[l];
            for (int64_t i = 0; i < C; ++i) {
              T* gd = grad_d[l].data() + i * d_out;
              T* ga = grad_in[l].data() + i * d_in;
              const T* d = act.grads[l].data() + i * d_out;
              const T* a = inputs[l] + i * d_in;
              const T a_squared = dot(a, a, d_in), d_squared = dot(d, d, d_out);
              for (int64_t q = 0; q < d_out; ++q)
                gd[q] = act.factor[i] * gd[q] + T(2) * inner[i] * a_squared * d[q];
              for (int64_t p = 0; p < d_in; ++p) ga[p] += T(2) * inner[i] * d_squared * a[p];
            }
          }
        }

        // through the output gradient's back-propagation, d_l = (d_{l+1} P_{l+1}^T) silu'(z_l)
        for (int64_t l = 0; l < L; ++l) {
          std::fill(grad_z[l].begin(), grad_z[l].end(), T(0));
          std::fill(grad_p[l].begin(), grad_p[l].end(), T(0));
        }
        for (int64_t l = 0; l + 1 < L; ++l) {
          const int64_t w = layout.d_out[l];
          const T* z = act.pre[l].data();
          const T* g = act.back[l].data();
          const T* gate = act.gates[l].data();
          T* grad_g = scaled.data();  // dL/dg_l (C x w)
          for (int64_t e = 0; e < C * w; ++e) {
            const T s = gate[e];
            const T first = s * (T(1) + z[e] * (T(1) - s));
            const T second = s * (T(1) - s) * (T(2) + z[e] * (T(1) - T(2) * s));
            grad_g[e] = grad_d[l][e] * first;
            grad_z[l][e] += grad_d[l][e] * g[e] * second;
          }
          matmul_nn(grad_g, point[l + 1], grad_d[l + 1].data(), C, w, layout.d_out[l + 1], true);
          matmul_tn(grad_g, act.grads[l + 1].data(), grad_p[l + 1].data(), C, w,
                    layout.d_out[l + 1], true);
        }
        {
          const int64_t d_out = layout.d_out[L - 1];
          T* grad_v = grads.values.mutable_data_ptr<T>() + chunk_index * C * d_out;
          for (int64_t e = 0; e < C * d_out; ++e) {
            grad_z[L - 1][e] += T(2) * grad_d[L - 1][e];
            grad_v[e] = T(-2) * grad_d[L - 1][e];
          }
        }
        // through the forward pass z_l = a_l P_l, a_{l+1} = silu(z_l)
        for (int64_t l = L - 1; l >= 0; --l) {
          const int64_t d_in = layout.d_in[l], d_out = layout.d_out[l];
          matmul_tn(inputs[l], grad_z[l].data(), grad_p[l].data(), C, d_in, d_out, true);
          matmul_nt(grad_z[l].data(), point[l], grad_in[l].data(), C, d_out, d_in, true,
                    act.scratch.data());
          if (l > 0) {
            const T* z = act.pre[l - 1].data();
            const T* gate = act.gates[l - 1].data();
            for (int64_t e = 0; e < C * d_in; ++e) {
              const T s = gate[e];
              grad_z[l - 1][e] += grad_in[l][e] * s * (T(1) + z[e] * (T(1) - s));
            }
          }
        }
        std::copy_n(grad_in[0].data(), C * layout.d_in[0],
                    grads.keys.mutable_data_ptr<T>() + chunk_index * C * layout.d_in[0]);
        for (int64_t l = 0; l < L; ++l) {
          const int64_t size = layout.size(l);
          if (at_point) {
            std::copy_n(grad_p[l].data(), size, grads.point[l].mutable_data_ptr<T>() + r * size);
          } else {
            for (int64_t e = 0; e < size; ++e) carry[l][e] += grad_p[l][e];  // P is W here
          }
        }
      }
      for (int64_t l = 0; l < L; ++l) {
        const int64_t size = 2 * layout.size(l);
        std::copy_n(carry[l].data(), size, grads.memory[l].mutable_data_ptr<T>() + r * size);
      }
    }
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, std::vector<Tensor>,
           std::vector<Tensor>>
scan_backward(const Tensor& queries, const Tensor& keys, const Tensor& values,
              const Tensor& transition, const Tensor& update_weights, const Tensor& token_weights,
              const Tensor& read_weights, TensorList starts, TensorList gradient_point,
              const Tensor& select, double max_norm, TensorList grad_memory_after,
              const Tensor& grad_output, TensorList grad_selected) {
  const Layout layout =
      check_inputs(keys, values, transition, update_weights, grad_memory_after, gradient_point);
  const ReadInputs read_inputs{queries, token_weights, read_weights};
  check_reads(layout, keys, read_inputs);
  const int64_t R = layout.rows, N = layout.chunks, C = layout.chunk, L = layout.depth;
  check_select(layout, select);
  TORCH_CHECK(static_cast<int64_t>(starts.size()) == L &&
                  static_cast<int64_t>(grad_selected.size()) == L,
              "scan_backward: one start and one selected tensor per layer");
  for (int64_t l = 0; l < L; ++l) {
    TORCH_CHECK(starts[l].is_contiguous() &&
                    starts[l].sizes().vec() ==
                        std::vector<int64_t>({R, N, 2, layout.d_in[l], layout.d_out[l]}) &&
                    starts[l].scalar_type() == keys.scalar_type(),
                "scan_backward: starts (R, N, 2, D_in, D_out), contiguous");
    TORCH_CHECK(grad_selected[l].is_contiguous() &&
                    grad_selected[l].sizes().vec() ==
                        std::vector<int64_t>({R, layout.d_in[l], layout.d_out[l]}) &&
                    grad_selected[l].scalar_type() == keys.scalar_type(),
                "scan_backward: selected (R, D_in, D_out), contiguous");
  }
  TORCH_CHECK(grad_output.is_contiguous() &&
                  grad_output.sizes().vec() ==
                      std::vector<int64_t>({R, N, C, layout.d_out[L - 1]}) &&
                  grad_output.scalar_type() == keys.scalar_type(),
              "scan_backward: the reads' gradient (R, N, C, D_v), contiguous");
  Gradients grads{at::empty_like(queries),        at::empty_like(keys),
                  at::empty_like(values),         at::empty_like(transition),
                  at::empty_like(update_weights), at::empty_like(token_weights),
                  at::empty_like(read_weights),   {},
                  {}};
  for (int64_t l = 0; l < L; ++l) {
    grads.memory.push_back(at::empty_like(grad_memory_after[l]));
    if (!gradient_point.empty()) grads.point.push_back(at::zeros_like(gradient_point[l]));
  }
  if (N > 0) {
    AT_DISPATCH_FLOATING_TYPES(keys.scalar_type(), "scan_backward", [&] {
      scan_backward_kernel<scalar_t>(layout, keys, values, transition, update_weights,
                                     read_inputs, starts, gradient_point, select, max_norm,
                                     grad_memory_after, grad_output, grad_selected, grads);
    });
  } else {
    for (int64_t l = 0; l < L; ++l) grads.memory[l].copy_(grad_memory_after[l]);
  }
  return {grads.queries,       grads.keys,          grads.values,
          grads.transition,    grads.update_weights, grads.token_weights,
          grads.read_weights,  grads.memory,        grads.point};
}

}  // namespace

TORCH_LIBRARY(titans_seq, m) {
  m.def(
      "scan_forward(Tensor queries, Tensor keys, Tensor values, Tensor transition, "
      "Tensor update_weights, Tensor token_weights, Tensor read_weights, Tensor[] memory, "
      "Tensor[] gradient_point, Tensor select, float max_norm, bool keep_starts) "
      "-> (Tensor[], Tensor, Tensor[], Tensor[])");
  m.def(
      "scan_backward(Tensor queries, Tensor keys, Tensor values, Tensor transition, "
      "Tensor update_weights, Tensor token_weights, Tensor read_weights, Tensor[] starts, "
      "Tensor[] gradient_point, Tensor select, float max_norm, Tensor[] grad_memory_after, "
      "Tensor grad_output, Tensor[] grad_selected) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor[], Tensor[])");
}

TORCH_LIBRARY_IMPL(titans_seq, CPU, m) {
  m.impl("scan_forward", TORCH_FN(scan_forward));
  m.impl("scan_backward", TORCH_FN(scan_backward));
}
