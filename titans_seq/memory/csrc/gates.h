// The gate coefficients of one chunk (coefficients.py, chunk_coefficients) computed inside the
// native scan from the chunk's per-token gates, with their backward.
//
// Why here: in PyTorch the coefficients are a dozen batched ops over (C + 1) x (C + 1) matrices
// per chunk (logs, masked cumulative sums, exps, a matmul) plus as many in the backward, and
// their C x C token weights and gradients make a round trip through memory; at a small chunk
// this cost more than the scan itself. Here they are two short recurrences per chunk, in cache.
//
// With local positions 1..C, index 0 the state before the chunk, and the gates neutralised at
// padding (theta = 0, eta = 1, keep = 1 - alpha = 1, written m = 0):
//   E[t, i] = eta_t E[t - 1, i],                         E[i, i] = 1
//   G[t, i] = keep_t G[t - 1, i] + m_t E[t, i],          G[i, i] = m_i (m_0 = 0)
//   B[t, 0] = keep_t B[t - 1, 0],                        B[0, 0] = 1
// which is coefficients.py's closed form G = B diag(m) E, built by products instead of sums of
// logarithms (a gate of exactly 0 stays exact). The chunk's coefficients are then
//   token weights TW[t, i] = G[t, i] theta_i,  read weights R[t] = [B[t, 0], G[t, 0]],
//   transition [[B[C, 0], G[C, 0]], [0, E[C, 0]]],  update -[G[C, i] theta_i, E[C, i] theta_i].
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace titans_seq_native {

template <typename T>
struct ChunkGateMath {
  int64_t C, K;                              // chunk, C + 1
  std::vector<T> theta, eta, keep, written;  // per position 0..C (0: neutral)
  std::vector<T> E, G, B;                    // E, G (K x K, row t, column i), B[t, 0] (K)
  std::vector<T> transition, update, token, read;                  // the coefficients
  std::vector<T> grad_transition, grad_update, grad_token, grad_read;  // and their gradients
  std::vector<T> grad_E, grad_G, grad_B, grad_theta, grad_eta, grad_keep, adj_G, adj_E;

  explicit ChunkGateMath(int64_t chunk)
      : C(chunk), K(chunk + 1), theta(K), eta(K), keep(K), written(K), E(K * K), G(K * K),
        B(K), transition(4), update(2 * C), token(C * C), read(2 * C), grad_transition(4),
        grad_update(2 * C), grad_token(C * C), grad_read(2 * C), grad_E(K * K), grad_G(K * K),
        grad_B(K), grad_theta(K), grad_eta(K), grad_keep(K), adj_G(K), adj_E(K) {}

  // The coefficients of a chunk from its gates (C each; valid is 1 or 0 per token).
  void forward(const T* theta_in, const T* eta_in, const T* alpha_in, const T* valid) {
    theta[0] = T(0), eta[0] = T(1), keep[0] = T(1), written[0] = T(0), B[0] = T(1);
    for (int64_t j = 1; j <= C; ++j) {
      const bool v = valid[j - 1] != T(0);
      written[j] = v ? T(1) : T(0);
      theta[j] = v ? theta_in[j - 1] : T(0);
      eta[j] = v ? eta_in[j - 1] : T(1);
      keep[j] = v ? T(1) - alpha_in[j - 1] : T(1);
      B[j] = keep[j] * B[j - 1];
    }
    E[0] = T(1), G[0] = T(0);
    for (int64_t t = 1; t <= C; ++t) {  // row t from row t - 1, over the columns i < t
      const T* e_prev = E.data() + (t - 1) * K;
      const T* g_prev = G.data() + (t - 1) * K;
      T* e = E.data() + t * K;
      T* g = G.data() + t * K;
      for (int64_t i = 0; i < t; ++i) {
        e[i] = eta[t] * e_prev[i];
        g[i] = keep[t] * g_prev[i] + written[t] * e[i];
      }
      e[t] = T(1), g[t] = written[t];
    }
    for (int64_t t = 1; t <= C; ++t) {
      T* row = token.data() + (t - 1) * C;
      for (int64_t i = 1; i <= C; ++i) row[i - 1] = i <= t ? G[t * K + i] * theta[i] : T(0);
      read[2 * (t - 1)] = B[t], read[2 * (t - 1) + 1] = G[t * K];
    }
    const T* g_last = G.data() + C * K;
    const T* e_last = E.data() + C * K;
    transition[0] = B[C], transition[1] = g_last[0], transition[2] = T(0);
    transition[3] = e_last[0];
    for (int64_t i = 1; i <= C; ++i) {
      update[i - 1] = -g_last[i] * theta[i];
      update[C + i - 1] = -e_last[i] * theta[i];
    }
  }

  // The gradients of the gates from those of the coefficients (grad_* buffers, filled by the
  // scan's backward), after forward() of the same chunk. Writes C values to each output.
  void backward(const T* valid, T* grad_theta_out, T* grad_eta_out, T* grad_alpha_out) {
    gather_coefficient_gradients();
    std::fill(grad_eta.begin(), grad_eta.end(), T(0));
    std::fill(grad_keep.begin(), grad_keep.end(), T(0));
    // adj_G[i], adj_E[i]: the total gradient of G[t, i], E[t, i], row by row from the last
    T adj_B = T(0);
    for (int64_t t = C; t >= 1; --t) {
      const T keep_next = t < C ? keep[t + 1] : T(0), eta_next = t < C ? eta[t + 1] : T(0);
      const T* e_prev = E.data() + (t - 1) * K;
      const T* g_prev = G.data() + (t - 1) * K;
      T sum_keep = T(0), sum_eta = T(0);
      for (int64_t i = 0; i <= t; ++i) {
        const T total_g = grad_G[t * K + i] + keep_next * adj_G[i];
        const T total_e = grad_E[t * K + i] + written[t] * total_g + eta_next * adj_E[i];
        adj_G[i] = total_g, adj_E[i] = total_e;
        if (i < t) sum_keep += total_g * g_prev[i], sum_eta += total_e * e_prev[i];
      }
      adj_B = grad_B[t] + keep_next * adj_B;
      grad_keep[t] = sum_keep + adj_B * B[t - 1];
      grad_eta[t] = sum_eta;
    }
    for (int64_t j = 1; j <= C; ++j) {
      const bool v = valid[j - 1] != T(0);
      grad_theta_out[j - 1] = v ? grad_theta[j] : T(0);
      grad_eta_out[j - 1] = v ? grad_eta[j] : T(0);
      grad_alpha_out[j - 1] = v ? -grad_keep[j] : T(0);
    }
  }

 private:
  // grad_G, grad_E, grad_B and grad_theta from the gradients of the four coefficients.
  void gather_coefficient_gradients() {
    std::fill(grad_G.begin(), grad_G.end(), T(0));
    std::fill(grad_E.begin(), grad_E.end(), T(0));
    std::fill(grad_B.begin(), grad_B.end(), T(0));
    std::fill(grad_theta.begin(), grad_theta.end(), T(0));
    std::fill(adj_G.begin(), adj_G.end(), T(0));
    std::fill(adj_E.begin(), adj_E.end(), T(0));
    for (int64_t t = 1; t <= C; ++t) {
      const T* row = grad_token.data() + (t - 1) * C;
      for (int64_t i = 1; i <= t; ++i) {
        grad_G[t * K + i] += row[i - 1] * theta[i];
        grad_theta[i] += row[i - 1] * G[t * K + i];
      }
      grad_B[t] += grad_read[2 * (t - 1)];
      grad_G[t * K] += grad_read[2 * (t - 1) + 1];
    }
    grad_B[C] += grad_transition[0];
    grad_G[C * K] += grad_transition[1];
    grad_E[C * K] += grad_transition[3];
    for (int64_t i = 1; i <= C; ++i) {
      const T to_g = grad_update[i - 1], to_e = grad_update[C + i - 1];
      grad_G[C * K + i] -= to_g * theta[i];
      grad_E[C * K + i] -= to_e * theta[i];
      grad_theta[i] -= to_g * G[C * K + i] + to_e * E[C * K + i];
    }
  }
};

// ---- where the scan reads a chunk's coefficients from

// The coefficients of a call: given as tensors (scan_forward: transition (R, N, 2, 2), update
// weights (R, N, 2, C), token weights (R, N, C, C), read weights (R, N, C, 2)), or the gates
// (gated_scan_forward: theta, eta, alpha (R, N, C) and valid (B, N, C), rows b * H + h).
struct CoefficientInputs {
  at::Tensor transition, update_weights, token_weights, read_weights;
  at::Tensor theta, eta, alpha, valid;
  bool gated() const { return theta.defined(); }
};

template <typename T>
struct ChunkCoefficients {
  const T *transition, *update, *token, *read;
};

template <typename T>
struct ChunkCoefficientGradients {
  T *transition, *update, *token, *read;
};

// One per thread: the coefficients of chunk n of row r, read from the tensors or computed from
// the gates into the thread's scratch (kept until the next chunk, for the backward).
template <typename T>
class CoefficientSource {
 public:
  CoefficientSource(const CoefficientInputs& inputs, int64_t rows, int64_t chunks, int64_t chunk)
      : in_(inputs), math_(chunk), N_(chunks), C_(chunk),
        heads_(inputs.gated() ? rows / inputs.valid.size(0) : 1) {}

  ChunkCoefficients<T> at(int64_t r, int64_t n) {
    const int64_t index = r * N_ + n, C = C_;
    if (!in_.gated())
      return {in_.transition.const_data_ptr<T>() + index * 4,
              in_.update_weights.const_data_ptr<T>() + index * 2 * C,
              in_.token_weights.const_data_ptr<T>() + index * C * C,
              in_.read_weights.const_data_ptr<T>() + index * 2 * C};
    math_.forward(in_.theta.const_data_ptr<T>() + index * C,
                  in_.eta.const_data_ptr<T>() + index * C,
                  in_.alpha.const_data_ptr<T>() + index * C, valid(r, n));
    return {math_.transition.data(), math_.update.data(), math_.token.data(), math_.read.data()};
  }

  // Where the backward writes the gradients of chunk n of row r's coefficients: the output
  // tensors `given` (R, N, ...) or, for gates, the scratch that finish() turns into theirs.
  ChunkCoefficientGradients<T> gradients(int64_t r, int64_t n,
                                         const ChunkCoefficientGradients<T>& given) {
    const int64_t index = r * N_ + n, C = C_;
    if (!in_.gated())
      return {given.transition + index * 4, given.update + index * 2 * C,
              given.token + index * C * C, given.read + index * 2 * C};
    return {math_.grad_transition.data(), math_.grad_update.data(), math_.grad_token.data(),
            math_.grad_read.data()};
  }

  // For gates: their gradients (theta, eta, alpha (R, N, C)) from the chunk's coefficients'.
  void finish(int64_t r, int64_t n, T* grad_theta, T* grad_eta, T* grad_alpha) {
    if (!in_.gated()) return;
    const int64_t offset = (r * N_ + n) * C_;
    math_.backward(valid(r, n), grad_theta + offset, grad_eta + offset, grad_alpha + offset);
  }

 private:
  const T* valid(int64_t r, int64_t n) const {
    return in_.valid.const_data_ptr<T>() + ((r / heads_) * N_ + n) * C_;
  }
  const CoefficientInputs& in_;
  ChunkGateMath<T> math_;
  int64_t N_, C_, heads_;
};

}  // namespace titans_seq_native
