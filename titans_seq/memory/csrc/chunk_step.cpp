// The chunked memory scan on the CPU, one sweep over the chunks of a block for all batch x head
// rows at once, and its hand-written backward.
//
// It computes what `_advance` and `_retrieve` in titans_seq/memory/chunked.py compute with
// PyTorch ops (that path is the reference the tests compare to). Per row and chunk, with the
// memory M = [W; S] per layer at the chunk's start and P the weights its gradients are taken at
// (Eq. 16; W, or the open chunk's start weights for a call that begins mid-chunk):
//
//   forward through the memory MLP at P:  a_0 = k,  z_l = a_l P_l,  a_{l+1} = silu(z_l)
//   its output gradient (Eq. 12):         d_{L-1} = 2 (z_{L-1} - v),
//                                         d_l = (d_{l+1} P_{l+1}^T) * silu'(z_l)
//   the optional clip of u_i = a_i^T d_i: d_l *= min(1, tau / ||u||)
//   the reads (Eq. 15):                   o_l = diag(R0) h_l W_l + diag(R1) h_l S_l
//                                               - ((h_l a_l^T) * TW) d_l,  h_0 = q
//   the update (Eqs. 13 and 18):          M'_l[s] = sum_r T[s, r] M_l[r] + sum_i U[s, i] a_i^T d_i
//
// T (2 x 2), U (2 x C), TW (C x C) and R (C x 2) are the chunk's gate coefficients
// (coefficients.py). Rows are independent, so they run in parallel; a row's memory (16 KiB at
// config S) stays in cache across its chunks. The backward recomputes each chunk's forward from
// its start memory rather than storing the activations.
//
// dense.h holds the small matrix products, chunk_math.h the per-chunk math (the surprise, the
// reads and their backward); this file runs them over all chunks and rows and registers the ops.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "chunk_math.h"

namespace {

using namespace titans_seq_native;

// ---- forward

// The coefficient tensors' shapes (given), or the gates' (computed per chunk, gates.h).
void check_coefficients(const Layout& layout, const Tensor& keys,
                        const CoefficientInputs& coefficients) {
  const int64_t R = layout.rows, N = layout.chunks, C = layout.chunk;
  auto same = [&](const Tensor& t, std::vector<int64_t> shape, const char* name) {
    TORCH_CHECK(t.scalar_type() == keys.scalar_type() && t.is_contiguous() &&
                    t.device().is_cpu() && t.sizes().vec() == shape,
                "chunk_step: ", name, " must be a contiguous CPU tensor of ", keys.scalar_type(),
                " and shape ", c10::IntArrayRef(shape), ", got ", t.sizes());
  };
  if (coefficients.gated()) {
    same(coefficients.theta, {R, N, C}, "theta");
    same(coefficients.eta, {R, N, C}, "eta");
    same(coefficients.alpha, {R, N, C}, "alpha");
    const int64_t batch = coefficients.valid.dim() == 3 ? coefficients.valid.size(0) : 0;
    TORCH_CHECK(batch > 0 && R % batch == 0, "chunk_step: valid must be (B, N, C), R = B * H");
    same(coefficients.valid, {batch, N, C}, "valid");
    return;
  }
  same(coefficients.transition, {R, N, 2, 2}, "transition");
  same(coefficients.update_weights, {R, N, 2, C}, "update_weights");
  same(coefficients.token_weights, {R, N, C, C}, "token_weights");
  same(coefficients.read_weights, {R, N, C, 2}, "read_weights");
}

void check_queries(const Layout& layout, const Tensor& keys, const Tensor& queries) {
  TORCH_CHECK(queries.scalar_type() == keys.scalar_type() && queries.is_contiguous() &&
                  queries.sizes() == keys.sizes(),
              "chunk_step: queries must be contiguous, of the keys' shape and dtype");
}

template <typename T>
void scan_forward_kernel(const Layout& layout, const Tensor& queries, const Tensor& keys,
                         const Tensor& values, const CoefficientInputs& coefficient_inputs,
                         TensorList memory,
                         TensorList gradient_point, const Tensor& select, double max_norm,
                         std::vector<Tensor>& memory_after, Tensor& output,
                         std::vector<Tensor>& selected, std::vector<Tensor>& starts) {
  const int64_t N = layout.chunks, C = layout.chunk, L = layout.depth;
  const bool has_point = !gradient_point.empty();
  const bool keep_starts = !starts.empty();
  const int64_t* select_data = select.const_data_ptr<int64_t>();
  const T* keys_data = keys.const_data_ptr<T>();
  const T* values_data = values.const_data_ptr<T>();
  const T* queries_data = queries.const_data_ptr<T>();
  T* output_data = output.mutable_data_ptr<T>();
  at::parallel_for(0, layout.rows, 1, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    ChunkActivations<T> act(layout);
    ReadActivations<T> reads(layout);
    CoefficientSource<T> source(coefficient_inputs, layout.rows, N, C);
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
        const ChunkCoefficients<T> chunk = source.at(r, n);
        surprise(layout, values_data + chunk_index * C * layout.d_out[L - 1], point, inputs,
                 act, max_norm);
        read_chunk(layout, queries_data + chunk_index * C * layout.d_in[0], start, inputs, act,
                   chunk.token, chunk.read, reads,
                   output_data + chunk_index * C * layout.d_out[L - 1]);
        const T* coefficients = chunk.transition;
        const T* update = chunk.update;
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
// A fresh tensor backed by huge pages where the system offers them on request: the chunk
// starts kept for the backward are large (128 MiB at 32 K tokens of config S) and written once,
// and on 4 KiB pages their first-touch page faults cost about a third of the forward pass.
Tensor huge_empty(at::IntArrayRef shape, const at::TensorOptions& options) {
  Tensor t = at::empty(shape, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t page = 4096;
  const uintptr_t first = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t begin = (first + page - 1) & ~(page - 1);
  const uintptr_t end = (first + t.nbytes()) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
  return t;
}

using ForwardResult =
    std::tuple<std::vector<Tensor>, Tensor, std::vector<Tensor>, std::vector<Tensor>>;

// The scan of one block: the memory after it, the reads, the start weights of chunk
// select[r] of each row r (zeros where select[r] is outside the block) and, with keep_starts,
// the memory at every chunk start (for the backward pass).
ForwardResult forward(const Tensor& queries, const Tensor& keys, const Tensor& values,
                      const CoefficientInputs& coefficients, TensorList memory,
                      TensorList gradient_point, const Tensor& select, double max_norm,
                      bool keep_starts) {
  const Layout layout = check_inputs(keys, values, memory, gradient_point);
  check_coefficients(layout, keys, coefficients);
  check_queries(layout, keys, queries);
  check_select(layout, select);
  const int64_t R = layout.rows, N = layout.chunks, C = layout.chunk;
  std::vector<Tensor> memory_after, selected, starts;
  for (int64_t l = 0; l < layout.depth; ++l) {
    memory_after.push_back(at::empty({R, 2, layout.d_in[l], layout.d_out[l]}, keys.options()));
    selected.push_back(at::zeros({R, layout.d_in[l], layout.d_out[l]}, keys.options()));
    if (keep_starts)
      starts.push_back(huge_empty({R, N, 2, layout.d_in[l], layout.d_out[l]}, keys.options()));
  }
  Tensor output = at::empty({R, N, C, layout.d_out[layout.depth - 1]}, keys.options());
  if (N > 0) {
    AT_DISPATCH_FLOATING_TYPES(keys.scalar_type(), "scan_forward", [&] {
      scan_forward_kernel<scalar_t>(layout, queries, keys, values, coefficients, memory,
                                    gradient_point, select, max_norm, memory_after, output,
                                    selected, starts);
    });
  } else {
    for (int64_t l = 0; l < layout.depth; ++l) memory_after[l].copy_(memory[l]);
  }
  return {memory_after, output, selected, starts};
}

ForwardResult scan_forward(const Tensor& queries, const Tensor& keys, const Tensor& values,
                           const Tensor& transition, const Tensor& update_weights,
                           const Tensor& token_weights, const Tensor& read_weights,
                           TensorList memory, TensorList gradient_point, const Tensor& select,
                           double max_norm, bool keep_starts) {
  const CoefficientInputs coefficients{transition, update_weights, token_weights, read_weights,
                                       {}, {}, {}, {}};
  return forward(queries, keys, values, coefficients, memory, gradient_point, select, max_norm,
                 keep_starts);
}

// The same scan with the coefficients computed from the gates inside (gates.h).
ForwardResult gated_scan_forward(const Tensor& queries, const Tensor& keys, const Tensor& values,
                                 const Tensor& theta, const Tensor& eta, const Tensor& alpha,
                                 const Tensor& valid, TensorList memory,
                                 TensorList gradient_point, const Tensor& select,
                                 double max_norm, bool keep_starts) {
  const CoefficientInputs coefficients{{}, {}, {}, {}, theta, eta, alpha, valid};
  return forward(queries, keys, values, coefficients, memory, gradient_point, select, max_norm,
                 keep_starts);
}

// ---- backward

// The coefficients' gradients go to transition ... read_weights (given coefficients) or to
// theta, eta, alpha (gates); the other four stay undefined.
struct Gradients {
  Tensor queries, keys, values, transition, update_weights, token_weights, read_weights;
  Tensor theta, eta, alpha;
  std::vector<Tensor> memory, point;
};

template <typename T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<T>() : nullptr;
}

template <typename T>
void scan_backward_kernel(const Layout& layout, const Tensor& queries, const Tensor& keys,
                          const Tensor& values, const CoefficientInputs& coefficient_inputs,
                          TensorList starts,
                          TensorList gradient_point, const Tensor& select, double max_norm,
                          TensorList grad_memory_after, const Tensor& grad_output,
                          TensorList grad_selected, Gradients& grads) {
  const int64_t* select_data = select.const_data_ptr<int64_t>();
  const int64_t N = layout.chunks, C = layout.chunk, L = layout.depth;
  const bool has_point = !gradient_point.empty();
  const bool clip = max_norm > 0;
  const T tau = static_cast<T>(max_norm);
  at::parallel_for(0, layout.rows, 1, [&](int64_t begin, int64_t end) {
    FlushSubnormals flush;
    ChunkActivations<T> act(layout);
    ReadActivations<T> reads(layout);
    CoefficientSource<T> source(coefficient_inputs, layout.rows, N, C);
    const ChunkCoefficientGradients<T> given{
        data_or_null<T>(grads.transition), data_or_null<T>(grads.update_weights),
        data_or_null<T>(grads.token_weights), data_or_null<T>(grads.read_weights)};
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
        const T* query = queries.const_data_ptr<T>() + chunk_index * C * layout.d_in[0];
        const ChunkCoefficients<T> chunk = source.at(r, n);
        const ChunkCoefficientGradients<T> grad_chunk = source.gradients(r, n, given);
        const T* token_weights = chunk.token;
        const T* read_weights = chunk.read;
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
            grad_chunk.token, grad_chunk.read, grad_out,
            grad_hidden, scaled_w, scaled_s, grad_scores);

        const T* coefficients = chunk.transition;
        const T* update = chunk.update;
        T* grad_coefficients = grad_chunk.transition;
        T* grad_u = grad_chunk.update;
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
        source.finish(r, n, data_or_null<T>(grads.theta), data_or_null<T>(grads.eta),
                      data_or_null<T>(grads.alpha));  // gates: from the coefficients' gradients

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

void check_backward(const Layout& layout, const Tensor& keys, TensorList starts,
                    TensorList grad_selected, const Tensor& grad_output) {
  const int64_t R = layout.rows, N = layout.chunks, C = layout.chunk, L = layout.depth;
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
}

Gradients backward(const Tensor& queries, const Tensor& keys, const Tensor& values,
                   const CoefficientInputs& coefficients, TensorList starts,
                   TensorList gradient_point, const Tensor& select, double max_norm,
                   TensorList grad_memory_after, const Tensor& grad_output,
                   TensorList grad_selected) {
  const Layout layout = check_inputs(keys, values, grad_memory_after, gradient_point);
  check_coefficients(layout, keys, coefficients);
  check_queries(layout, keys, queries);
  check_select(layout, select);
  check_backward(layout, keys, starts, grad_selected, grad_output);
  Gradients grads{at::empty_like(queries), at::empty_like(keys), at::empty_like(values)};
  if (coefficients.gated()) {
    grads.theta = at::empty_like(coefficients.theta);
    grads.eta = at::empty_like(coefficients.eta);
    grads.alpha = at::empty_like(coefficients.alpha);
  } else {
    grads.transition = at::empty_like(coefficients.transition);
    grads.update_weights = at::empty_like(coefficients.update_weights);
    grads.token_weights = at::empty_like(coefficients.token_weights);
    grads.read_weights = at::empty_like(coefficients.read_weights);
  }
  for (int64_t l = 0; l < layout.depth; ++l) {
    grads.memory.push_back(at::empty_like(grad_memory_after[l]));
    if (!gradient_point.empty()) grads.point.push_back(at::zeros_like(gradient_point[l]));
  }
  if (layout.chunks > 0) {
    AT_DISPATCH_FLOATING_TYPES(keys.scalar_type(), "scan_backward", [&] {
      scan_backward_kernel<scalar_t>(layout, queries, keys, values, coefficients, starts,
                                     gradient_point, select, max_norm, grad_memory_after,
                                     grad_output, grad_selected, grads);
    });
  } else {
    for (int64_t l = 0; l < layout.depth; ++l) grads.memory[l].copy_(grad_memory_after[l]);
  }
  return grads;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, std::vector<Tensor>,
           std::vector<Tensor>>
scan_backward(const Tensor& queries, const Tensor& keys, const Tensor& values,
              const Tensor& transition, const Tensor& update_weights, const Tensor& token_weights,
              const Tensor& read_weights, TensorList starts, TensorList gradient_point,
              const Tensor& select, double max_norm, TensorList grad_memory_after,
              const Tensor& grad_output, TensorList grad_selected) {
  const CoefficientInputs coefficients{transition, update_weights, token_weights, read_weights,
                                       {}, {}, {}, {}};
  Gradients g = backward(queries, keys, values, coefficients, starts, gradient_point, select,
                         max_norm, grad_memory_after, grad_output, grad_selected);
  return {g.queries, g.keys, g.values, g.transition, g.update_weights, g.token_weights,
          g.read_weights, g.memory, g.point};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, std::vector<Tensor>,
           std::vector<Tensor>>
gated_scan_backward(const Tensor& queries, const Tensor& keys, const Tensor& values,
                    const Tensor& theta, const Tensor& eta, const Tensor& alpha,
                    const Tensor& valid, TensorList starts, TensorList gradient_point,
                    const Tensor& select, double max_norm, TensorList grad_memory_after,
                    const Tensor& grad_output, TensorList grad_selected) {
  const CoefficientInputs coefficients{{}, {}, {}, {}, theta, eta, alpha, valid};
  Gradients g = backward(queries, keys, values, coefficients, starts, gradient_point, select,
                         max_norm, grad_memory_after, grad_output, grad_selected);
  return {g.queries, g.keys, g.values, g.theta, g.eta, g.alpha, g.memory, g.point};
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
  m.def(
      "gated_scan_forward(Tensor queries, Tensor keys, Tensor values, Tensor theta, "
      "Tensor eta, Tensor alpha, Tensor valid, Tensor[] memory, Tensor[] gradient_point, "
      "Tensor select, float max_norm, bool keep_starts) "
      "-> (Tensor[], Tensor, Tensor[], Tensor[])");
  m.def(
      "gated_scan_backward(Tensor queries, Tensor keys, Tensor values, Tensor theta, "
      "Tensor eta, Tensor alpha, Tensor valid, Tensor[] starts, Tensor[] gradient_point, "
      "Tensor select, float max_norm, Tensor[] grad_memory_after, Tensor grad_output, "
      "Tensor[] grad_selected) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor[], "
      "Tensor[])");
}

TORCH_LIBRARY_IMPL(titans_seq, CPU, m) {
  m.impl("scan_forward", TORCH_FN(scan_forward));
  m.impl("scan_backward", TORCH_FN(scan_backward));
  m.impl("gated_scan_forward", TORCH_FN(gated_scan_forward));
  m.impl("gated_scan_backward", TORCH_FN(gated_scan_backward));
}
