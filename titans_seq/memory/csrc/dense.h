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

}  // namespace titans_seq_native
