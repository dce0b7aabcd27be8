#ifndef TUSS_KERNELS_H
#define TUSS_KERNELS_H
/* Element-wise activation kernels written as plain loops so the C compiler vectorises them; Swift's generic SIMD
   clamps and float-to-int conversions are not vectorised and cost more than the GEMMs around them. */
#include <stddef.h>

void tuss_silu(float *x, ptrdiff_t n);
void tuss_sigmoid(float *x, ptrdiff_t n);
void tuss_tanh(float *x, ptrdiff_t n);
/* y[r, i] = a[r, i] * silu(b[r, i]) where row r of x is [a | b], each `width` wide. */
void tuss_swiglu(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y);
/* swiglu of (x + bias) where bias is 2 * width long: the bias of a GEMM folded into the pass that reads it. */
void tuss_swiglu_bias(const float *x, ptrdiff_t rows, ptrdiff_t width, const float *bias, float *y);
/* y[t, i] += bias[i] + sum_k p[t + shift - k, k * dim + i] for t < length, where row r of p is `taps` blocks of
   `dim` (the per-tap products of a transposed convolution, gathered instead of scattered). */
void tuss_overlap_add_rows(const float *p, ptrdiff_t taps, ptrdiff_t dim, ptrdiff_t length, ptrdiff_t shift,
                           const float *bias, float *y);
/* y[r, i] = a[r, i] * sigmoid(b[r, i]) where row r of x is [a | b], each `width` wide. */
void tuss_glu(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y);
/* Softmax of each row, in place, max-subtracted. */
void tuss_softmax_rows(float *x, ptrdiff_t rows, ptrdiff_t width);
/* exp(x - rowmax) in place and 1 / (row sum) into inverse_sums[r]: the caller folds the normalisation into a
   narrower product (attention scales the 32-wide head output instead of the 564-wide score row). */
void tuss_softmax_rows_unnormalized(float *x, ptrdiff_t rows, ptrdiff_t width, float *inverse_sums);

/* DAC's Snake on [channels, length]: x + sin^2(alpha x) / (alpha + 1e-9), one alpha per channel. */
void tuss_snake(float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha);
/* The same, reading x and writing y (the residual units keep their input for the skip connection). */
void tuss_snake_copy(const float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha, float *y);
/* Snake of (x + bias[c]) in place: a convolution's bias folded into the activation that follows it. */
void tuss_snake_bias(float *x, ptrdiff_t channels, ptrdiff_t length, const float *bias, const float *alpha);

/* Instruction set the kernels above run with: 0 plain (SSE2), 1 AVX2+FMA, 2 AVX-512. */
int tuss_kernel_isa(void);
/* Forces a variant (capped at what the CPU supports); tests use it to compare every variant with naive loops. */
void tuss_force_kernel_isa(int isa);

#endif
