#include "tuss_kernels.h"
#include <stdint.h>
#include <string.h>

/* exp by Cody-Waite range reduction and a degree-6 polynomial (about 2 ulp on [-87, 88]); 2^n is built in the
   exponent bits after rounding with the 1.5*2^23 trick, so the loop has no calls and no float-to-int conversion. */
static inline float fast_exp(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float t = x * 1.442695041f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits;
    memcpy(&bits, &t, 4);
    bits = (bits - 0x4B400000 + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

void tuss_silu(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + fast_exp(-x[i]));
}

void tuss_sigmoid(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + fast_exp(-x[i]));
}

void tuss_tanh(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x[i];
        float a = v < 0 ? -v : v;
        float t;
        if (a < 0.3f) {
            /* Odd Taylor series: the exp form loses relative precision near zero. */
            float a2 = a * a;
            t = a * (1.0f + a2 * (-1.0f / 3.0f + a2 * (2.0f / 15.0f + a2 * (-17.0f / 315.0f + a2 * (62.0f / 2835.0f)))));
        } else {
            t = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);
        }
        x[i] = v < 0 ? -t : t;
    }
}

void tuss_swiglu(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * width, *b = a + width;
        float *o = y + r * width;
        for (ptrdiff_t i = 0; i < width; i++) o[i] = a[i] * b[i] / (1.0f + fast_exp(-b[i]));
    }
}

void tuss_glu(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * width, *b = a + width;
        float *o = y + r * width;
        for (ptrdiff_t i = 0; i < width; i++) o[i] = a[i] / (1.0f + fast_exp(-b[i]));
    }
}

void tuss_softmax_rows(float *x, ptrdiff_t rows, ptrdiff_t width) {
    /* Eight independent partial maxima and sums: the compiler may not reorder a float reduction by itself, and a
       single accumulator would make the loops latency-bound. */
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *v = x + r * width;
        float m8[8];
        for (int k = 0; k < 8; k++) m8[k] = v[0];
        ptrdiff_t i = 0;
        for (; i + 8 <= width; i += 8)
            for (int k = 0; k < 8; k++) m8[k] = v[i + k] > m8[k] ? v[i + k] : m8[k];
        float m = m8[0];
        for (int k = 1; k < 8; k++) m = m8[k] > m ? m8[k] : m;
        for (; i < width; i++) m = v[i] > m ? v[i] : m;
        for (ptrdiff_t j = 0; j < width; j++) v[j] = fast_exp(v[j] - m);
        float s8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        i = 0;
        for (; i + 8 <= width; i += 8)
            for (int k = 0; k < 8; k++) s8[k] += v[i + k];
        float sum = 0.0f;
        for (int k = 0; k < 8; k++) sum += s8[k];
        for (; i < width; i++) sum += v[i];
        float inv = 1.0f / sum;
        for (ptrdiff_t j = 0; j < width; j++) v[j] *= inv;
    }
}

/* sin^2 needs no sign: reduce y by the nearest multiple of pi (two-part pi for accuracy), then an odd polynomial on
   [-pi/2, pi/2] (Taylor to r^11, error < 6e-8). */
static inline float sin_squared(float y) {
    float k = y * 0.318309886f;
    k = k + 12582912.0f;
    k = k - 12582912.0f;
    float r = y - k * 3.140625f;
    r = r - k * 9.67653589793e-4f;
    float r2 = r * r;
    float s = r * (1.0f + r2 * (-1.0f / 6.0f + r2 * (1.0f / 120.0f + r2 * (-1.0f / 5040.0f + r2 * (1.0f / 362880.0f + r2 * (-1.0f / 39916800.0f))))));
    return s * s;
}

void tuss_snake(float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha) {
    for (ptrdiff_t c = 0; c < channels; c++) {
        float a = alpha[c];
        float inv = 1.0f / (a + 1e-9f);
        float *row = x + c * length;
        for (ptrdiff_t t = 0; t < length; t++) row[t] += inv * sin_squared(a * row[t]);
    }
}
