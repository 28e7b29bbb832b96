// The per-chunk math of the native memory scan (chunk_step.cpp), for one row and one chunk:
// the surprise at the chunk's gradient point, the chunk's reads and the reads' backward.
// See chunk_step.cpp for the equations.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dense.h"
#include "gates.h"

namespace titans_seq_native {

using at::Tensor;
using at::TensorList;

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

inline Layout check_inputs(const Tensor& keys, const Tensor& values, TensorList memory,
                           TensorList gradient_point) {
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
    if (l < L - 1) {
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
    if (l < L - 1) {  // through h_{l+1} = silu(o_l)
      const T* o = reads.out[l].data();
      const T* gate = reads.gates[l].data();
      for (int64_t e = 0; e < C * d_out; ++e)
        grad_out[e] = grad_hidden[e] * gate[e] * (T(1) + o[e] * (T(1) - gate[e]));
    }
    const T* g_out = l == L - 1 ? grad_output : grad_out.data();  // dL/do_l
    for (int64_t t = 0; t < C; ++t) {
      const T* g = g_out + t * d_out;
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
    matmul_tn(reads.scores[l].data(), g_out, grad_clipped[l].data(), C, C, d_out, true);
    T* grad_raw = grad_scores.data();
    matmul_nt(g_out, act.clipped[l].data(), grad_raw, C, d_out, C, false,
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

}  // namespace titans_seq_native
