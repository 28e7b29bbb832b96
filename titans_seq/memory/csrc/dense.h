// Small dense kernels for the native memory scan (chunk_step.cpp): row-major matrix products
// sized for one chunk of one row (a few KiB, in registers and L1), a dot product and a
// vectorisable exp and sigmoid.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace titans_seq_native {

// Flush subnormal floats to zero on this thread while in scope. A memory that forgets decays
// its weights through the subnormal range, where x86 arithmetic is about 10x slower (a 16 K
// token call took 6x longer per token than a 4 K one); values below 1e-38 are zero to the
// model. PyTorch's own oneDNN kernels do the same.
struct FlushSubnormals {
#if defined(__SSE__)
  unsigned int saved = _mm_getcsr();
  FlushSubnormals() { _mm_setcsr(saved | 0x8040); }  // FTZ (bit 15) and DAZ (bit 6)
  ~FlushSubnormals() { _mm_setcsr(saved); }
#endif
};

// ---- small row-major matrix products

// c (m x n) (+)= A b with A(i, p) = a[i * a_row + p * a_col] and b row-major (k x n).
//
// A block of R rows x V vectors of 64 bytes (one AVX-512 register each) of c keeps its sums in
// registers across the k loop: R * V = 16 to 32 independent accumulators, enough to hide the
// latency of the fused multiply-adds, each step loading V vectors of b and broadcasting R values
// of A. Written with the compiler's vector extension so that it does not depend on the
// auto-vectoriser's choice of width (GCC prefers 256-bit vectors even where 512 exist).
#if defined(__GNUC__)
#define TITANS_SEQ_VECTOR_EXTENSION 1
typedef float FloatVector __attribute__((vector_size(64), aligned(4)));
typedef double DoubleVector __attribute__((vector_size(64), aligned(8)));
template <typename T>
struct VectorOf;
template <>
struct VectorOf<float> { using type = FloatVector; };
template <>
struct VectorOf<double> { using type = DoubleVector; };
template <typename T>
using Vector = typename VectorOf<T>::type;

template <typename T, int R, int V>
inline void gemm_block(const T* a, int64_t a_row, int64_t a_col, const T* b, T* c, int64_t k,
                       int64_t n, bool accumulate) {
  constexpr int64_t W = 64 / sizeof(T);
  Vector<T> sums[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) {
      if (accumulate)
        std::memcpy(&sums[r][v], c + r * n + v * W, sizeof(Vector<T>));
      else
        sums[r][v] = Vector<T>{};
    }
  for (int64_t p = 0; p < k; ++p) {
    Vector<T> row[V];
    for (int v = 0; v < V; ++v) std::memcpy(&row[v], b + p * n + v * W, sizeof(Vector<T>));
    for (int r = 0; r < R; ++r) {
      const T scale = a[r * a_row + p * a_col];
      for (int v = 0; v < V; ++v) sums[r][v] += scale * row[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) std::memcpy(c + r * n + v * W, &sums[r][v], sizeof(Vector<T>));
}

// The rows of c's columns j0 .. j0 + V * W in blocks of R, then one at a time.
template <typename T, int R, int V>
inline void gemm_columns(const T* a, int64_t a_row, int64_t a_col, const T* b, T* c, int64_t m,
                         int64_t k, int64_t n, bool accumulate) {
  int64_t i = 0;
  for (; i + R <= m; i += R)
    gemm_block<T, R, V>(a + i * a_row, a_row, a_col, b, c + i * n, k, n, accumulate);
  for (; i < m; ++i) gemm_block<T, 1, V>(a + i * a_row, a_row, a_col, b, c + i * n, k, n,
                                         accumulate);
}
#endif

template <typename T>
inline void gemm(const T* a, int64_t a_row, int64_t a_col, const T* b, T* c, int64_t m,
                 int64_t k, int64_t n, bool accumulate) {
  constexpr int64_t W = 64 / sizeof(T);
  int64_t j0 = 0;
#if defined(TITANS_SEQ_VECTOR_EXTENSION)
  for (; j0 + 4 * W <= n; j0 += 4 * W)
    gemm_columns<T, 4, 4>(a, a_row, a_col, b + j0, c + j0, m, k, n, accumulate);
  for (; j0 + 2 * W <= n; j0 += 2 * W)
    gemm_columns<T, 8, 2>(a, a_row, a_col, b + j0, c + j0, m, k, n, accumulate);
  for (; j0 + W <= n; j0 += W)
    gemm_columns<T, 8, 1>(a, a_row, a_col, b + j0, c + j0, m, k, n, accumulate);
#endif
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

// Transposes a W x W tile (W = one vector's values) of `in` (row stride in_row) into `out`
// (row stride out_row) in registers: log2(W) rounds, each exchanging the off-diagonal halves of
// the blocks of size h between rows i and i + h, one two-source shuffle per row. About 4x fewer
// instructions than element by element, which made the a b^T products below 3x slower than a b.
#if defined(TITANS_SEQ_VECTOR_EXTENSION)
template <typename T>
struct ShuffleMask;
template <>
struct ShuffleMask<float> { typedef int32_t type __attribute__((vector_size(64))); };
template <>
struct ShuffleMask<double> { typedef int64_t type __attribute__((vector_size(64))); };

// One round: rows i and i + H (bit H of i clear) exchange the lanes L with bit H set in i
// for those without it in i + H.
template <typename T, int H>
inline void transpose_round(Vector<T>* rows) {
  constexpr int W = 64 / sizeof(T);
  using Mask = typename ShuffleMask<T>::type;
  Mask low, high;  // compile-time constants once unrolled
  for (int lane = 0; lane < W; ++lane) {
    low[lane] = (lane & H) ? W + lane - H : lane;
    high[lane] = (lane & H) ? W + lane : lane + H;
  }
#pragma GCC unroll 16
  for (int i = 0; i < W; ++i) {
    if (i & H) continue;
    const Vector<T> a = rows[i], b = rows[i + H];
    rows[i] = __builtin_shuffle(a, b, low);
    rows[i + H] = __builtin_shuffle(a, b, high);
  }
  if constexpr (H > 1) transpose_round<T, H / 2>(rows);
}

template <typename T>
inline void transpose_tile(const T* in, int64_t in_row, T* out, int64_t out_row) {
  constexpr int W = 64 / sizeof(T);
  Vector<T> rows[W];
  for (int i = 0; i < W; ++i) std::memcpy(&rows[i], in + i * in_row, sizeof(Vector<T>));
  transpose_round<T, W / 2>(rows);
  for (int i = 0; i < W; ++i) std::memcpy(out + i * out_row, &rows[i], sizeof(Vector<T>));
}
#endif

// out (k x n) = in^T for in (n x k)
template <typename T>
inline void transpose(const T* in, T* out, int64_t n, int64_t k) {
  int64_t j0 = 0, p0 = 0;
#if defined(TITANS_SEQ_VECTOR_EXTENSION)
  constexpr int64_t W = 64 / sizeof(T);
  if (n % W == 0 && k % W == 0) {
    for (j0 = 0; j0 < n; j0 += W)
      for (int64_t p = 0; p < k; p += W) transpose_tile(in + j0 * k + p, k, out + p * n + j0, n);
    return;
  }
#endif
  for (int64_t j = j0; j < n; ++j)
    for (int64_t p = p0; p < k; ++p) out[p * n + j] = in[j * k + p];
}

// out (m x n) (+)= a b^T, with a (m x k) and b (n x k); `scratch` holds k x n values
template <typename T>
inline void matmul_nt(const T* a, const T* b, T* out, int64_t m, int64_t k, int64_t n,
                      bool accumulate, T* scratch) {
  transpose(b, scratch, n, k);
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

}  // namespace titans_seq_native
