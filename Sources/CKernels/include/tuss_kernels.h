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
/* y[r, i] = a[r, i] * sigmoid(b[r, i]) where row r of x is [a | b], each `width` wide. */
void tuss_glu(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y);
/* Softmax of each row, in place, max-subtracted. */
void tuss_softmax_rows(float *x, ptrdiff_t rows, ptrdiff_t width);

/* DAC's Snake on [channels, length]: x + sin^2(alpha x) / (alpha + 1e-9), one alpha per channel. */
void tuss_snake(float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha);

#endif
