#include "tuss_kernels.h"
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TUSS_X86 1
#endif

/* The package is built without -march flags (it must stay consumable as a dependency), which leaves these loops at
   SSE2 width. Each kernel body is therefore written once as an always-inline function and instantiated three times:
   plain, AVX2+FMA and AVX-512, the widest the CPU and OS support being chosen once at first use. The bodies are
   identical C, so every variant computes the same formula; FMA contraction only changes last-bit rounding. */

/* exp by Cody-Waite range reduction and a degree-6 polynomial (about 2 ulp on [-87, 88]); 2^n is built in the
   exponent bits after rounding with the 1.5*2^23 trick, so the loop has no calls and no float-to-int conversion. */
static inline __attribute__((always_inline)) float fast_exp(float x) {
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

/* sin^2 needs no sign: reduce y by the nearest multiple of pi (two-part pi for accuracy), then an odd polynomial on
   [-pi/2, pi/2] (Taylor to r^11, error < 6e-8). */
static inline __attribute__((always_inline)) float sin_squared(float y) {
    float k = y * 0.318309886f;
    k = k + 12582912.0f;
    k = k - 12582912.0f;
    float r = y - k * 3.140625f;
    r = r - k * 9.67653589793e-4f;
    float r2 = r * r;
    float s = r * (1.0f + r2 * (-1.0f / 6.0f + r2 * (1.0f / 120.0f + r2 * (-1.0f / 5040.0f + r2 * (1.0f / 362880.0f + r2 * (-1.0f / 39916800.0f))))));
    return s * s;
}

#define BODY static inline __attribute__((always_inline))

BODY void silu_body(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + fast_exp(-x[i]));
}

BODY void sigmoid_body(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + fast_exp(-x[i]));
}

BODY void tanh_body(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x[i];
        float a = v < 0 ? -v : v;
        /* Odd Taylor series near zero, where the exp form loses relative precision; both are computed so the loop
           stays branch-free and vectorises. */
        float a2 = a * a;
        float small = a * (1.0f + a2 * (-1.0f / 3.0f + a2 * (2.0f / 15.0f + a2 * (-17.0f / 315.0f + a2 * (62.0f / 2835.0f)))));
        float large = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);
        float t = a < 0.3f ? small : large;
        x[i] = v < 0 ? -t : t;
    }
}

BODY void swiglu_body(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * width, *b = a + width;
        float *o = y + r * width;
        for (ptrdiff_t i = 0; i < width; i++) o[i] = a[i] * b[i] / (1.0f + fast_exp(-b[i]));
    }
}

BODY void swiglu_bias_body(const float *x, ptrdiff_t rows, ptrdiff_t width, const float *bias, float *y) {
    const float *ba = bias, *bb = bias + width;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * width, *b = a + width;
        float *o = y + r * width;
        for (ptrdiff_t i = 0; i < width; i++) {
            float u = a[i] + ba[i], v = b[i] + bb[i];
            o[i] = u * v / (1.0f + fast_exp(-v));
        }
    }
}

/* Columns go sixteen at a time through a fixed-size accumulator: the taps loop is inside, and the compiler only
   vectorises innermost loops, so a plain i-outer/k-inner loop would stay scalar. Summation order per element:
   tap 0, 1, ..., then bias, then the residual. */
BODY void overlap_add_rows_body(const float *p, ptrdiff_t taps, ptrdiff_t dim, ptrdiff_t length, ptrdiff_t shift,
                                const float *bias, float *y) {
    const ptrdiff_t stride = taps * dim;
    for (ptrdiff_t t = 0; t < length; t++) {
        float *d = y + t * dim;
        const float *p0 = p + (t + shift) * stride;
        ptrdiff_t i0 = 0;
        for (; i0 + 16 <= dim; i0 += 16) {
            float acc[16];
            for (int j = 0; j < 16; j++) acc[j] = p0[i0 + j];
            for (ptrdiff_t k = 1; k < taps; k++) {
                const float *pk = p + (t + shift - k) * stride + k * dim + i0;
                for (int j = 0; j < 16; j++) acc[j] += pk[j];
            }
            for (int j = 0; j < 16; j++) d[i0 + j] += acc[j] + bias[i0 + j];
        }
        for (ptrdiff_t i = i0; i < dim; i++) {
            float acc = p0[i];
            for (ptrdiff_t k = 1; k < taps; k++) acc += p[(t + shift - k) * stride + k * dim + i];
            d[i] += acc + bias[i];
        }
    }
}

BODY void glu_body(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * width, *b = a + width;
        float *o = y + r * width;
        for (ptrdiff_t i = 0; i < width; i++) o[i] = a[i] / (1.0f + fast_exp(-b[i]));
    }
}

/* Row maximum with sixteen independent partial maxima: a single accumulator would make the loop latency-bound,
   and the compiler may not reorder a float reduction by itself. */
BODY float row_max(const float *v, ptrdiff_t width) {
    float m16[16];
    for (int k = 0; k < 16; k++) m16[k] = v[0];
    ptrdiff_t i = 0;
    for (; i + 16 <= width; i += 16)
        for (int k = 0; k < 16; k++) m16[k] = v[i + k] > m16[k] ? v[i + k] : m16[k];
    float m = m16[0];
    for (int k = 1; k < 16; k++) m = m16[k] > m ? m16[k] : m;
    for (; i < width; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* v = exp(v − m) in place, returning the sum (split sixteen ways, as above), in one pass. */
BODY float exp_sum(float *v, ptrdiff_t width, float m) {
    float s16[16] = {0};
    ptrdiff_t i = 0;
    for (; i + 16 <= width; i += 16)
        for (int k = 0; k < 16; k++) {
            float e = fast_exp(v[i + k] - m);
            v[i + k] = e;
            s16[k] += e;
        }
    float sum = 0.0f;
    for (int k = 0; k < 16; k++) sum += s16[k];
    for (; i < width; i++) {
        float e = fast_exp(v[i] - m);
        v[i] = e;
        sum += e;
    }
    return sum;
}

BODY void softmax_rows_body(float *x, ptrdiff_t rows, ptrdiff_t width) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *v = x + r * width;
        float inv = 1.0f / exp_sum(v, width, row_max(v, width));
        for (ptrdiff_t j = 0; j < width; j++) v[j] *= inv;
    }
}

BODY void softmax_unnormalized_body(float *x, ptrdiff_t rows, ptrdiff_t width, float *inverse_sums) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *v = x + r * width;
        inverse_sums[r] = 1.0f / exp_sum(v, width, row_max(v, width));
    }
}

BODY void snake_body(float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha) {
    for (ptrdiff_t c = 0; c < channels; c++) {
        float a = alpha[c];
        float inv = 1.0f / (a + 1e-9f);
        float *row = x + c * length;
        for (ptrdiff_t t = 0; t < length; t++) row[t] += inv * sin_squared(a * row[t]);
    }
}

BODY void snake_bias_body(float *x, ptrdiff_t channels, ptrdiff_t length, const float *bias, const float *alpha) {
    for (ptrdiff_t c = 0; c < channels; c++) {
        float a = alpha[c], b = bias[c];
        float inv = 1.0f / (a + 1e-9f);
        float *row = x + c * length;
        for (ptrdiff_t t = 0; t < length; t++) {
            float v = row[t] + b;
            row[t] = v + inv * sin_squared(a * v);
        }
    }
}

BODY void snake_copy_body(const float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha, float *y) {
    for (ptrdiff_t c = 0; c < channels; c++) {
        float a = alpha[c];
        float inv = 1.0f / (a + 1e-9f);
        const float *row = x + c * length;
        float *out = y + c * length;
        for (ptrdiff_t t = 0; t < length; t++) out[t] = row[t] + inv * sin_squared(a * row[t]);
    }
}

/* One table of entry points per instruction set. */
typedef struct {
    void (*silu)(float *, ptrdiff_t);
    void (*sigmoid)(float *, ptrdiff_t);
    void (*tanh)(float *, ptrdiff_t);
    void (*swiglu)(const float *, ptrdiff_t, ptrdiff_t, float *);
    void (*glu)(const float *, ptrdiff_t, ptrdiff_t, float *);
    void (*swiglu_bias)(const float *, ptrdiff_t, ptrdiff_t, const float *, float *);
    void (*overlap_add_rows)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, float *);
    void (*softmax)(float *, ptrdiff_t, ptrdiff_t);
    void (*softmax_unnormalized)(float *, ptrdiff_t, ptrdiff_t, float *);
    void (*snake)(float *, ptrdiff_t, ptrdiff_t, const float *);
    void (*snake_copy)(const float *, ptrdiff_t, ptrdiff_t, const float *, float *);
    void (*snake_bias)(float *, ptrdiff_t, ptrdiff_t, const float *, const float *);
} kernel_table;

#define INSTANTIATE(suffix, attr)                                                                                    \
    attr static void silu_##suffix(float *x, ptrdiff_t n) { silu_body(x, n); }                                     \
    attr static void sigmoid_##suffix(float *x, ptrdiff_t n) { sigmoid_body(x, n); }                               \
    attr static void tanh_##suffix(float *x, ptrdiff_t n) { tanh_body(x, n); }                                     \
    attr static void swiglu_##suffix(const float *x, ptrdiff_t r, ptrdiff_t w, float *y) { swiglu_body(x, r, w, y); } \
    attr static void glu_##suffix(const float *x, ptrdiff_t r, ptrdiff_t w, float *y) { glu_body(x, r, w, y); }    \
    attr static void swiglu_bias_##suffix(const float *x, ptrdiff_t r, ptrdiff_t w, const float *b, float *y) {     \
        swiglu_bias_body(x, r, w, b, y);                                                                           \
    }                                                                                                              \
    attr static void overlap_add_rows_##suffix(const float *p, ptrdiff_t k, ptrdiff_t d, ptrdiff_t l, ptrdiff_t s, \
                                               const float *b, float *y) {                                         \
        overlap_add_rows_body(p, k, d, l, s, b, y);                                                                \
    }                                                                                                              \
    attr static void softmax_##suffix(float *x, ptrdiff_t r, ptrdiff_t w) { softmax_rows_body(x, r, w); }          \
    attr static void softmax_unnormalized_##suffix(float *x, ptrdiff_t r, ptrdiff_t w, float *s) {                 \
        softmax_unnormalized_body(x, r, w, s);                                                                     \
    }                                                                                                              \
    attr static void snake_##suffix(float *x, ptrdiff_t c, ptrdiff_t l, const float *a) { snake_body(x, c, l, a); } \
    attr static void snake_copy_##suffix(const float *x, ptrdiff_t c, ptrdiff_t l, const float *a, float *y) {      \
        snake_copy_body(x, c, l, a, y);                                                                            \
    }                                                                                                              \
    attr static void snake_bias_##suffix(float *x, ptrdiff_t c, ptrdiff_t l, const float *b, const float *a) {      \
        snake_bias_body(x, c, l, b, a);                                                                            \
    }                                                                                                              \
    static const kernel_table table_##suffix = {silu_##suffix, sigmoid_##suffix, tanh_##suffix, swiglu_##suffix,   \
                                                glu_##suffix, swiglu_bias_##suffix, overlap_add_rows_##suffix,     \
                                                softmax_##suffix, softmax_unnormalized_##suffix,     \
                                                snake_##suffix, snake_copy_##suffix, snake_bias_##suffix};

INSTANTIATE(plain, )
#ifdef TUSS_X86
INSTANTIATE(avx2, __attribute__((target("avx2,fma"))))
INSTANTIATE(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))))

/* AVX state must be enabled by the OS (XCR0), not only reported by CPUID. */
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static const kernel_table *select_table(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return &table_plain;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return &table_plain;
    unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return &table_plain;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return &table_plain;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512vl = (b >> 31) & 1;
    if (avx512f && avx512dq && avx512vl && fma && (xcr0 & 0xE6) == 0xE6) return &table_avx512;
    if (avx2 && fma) return &table_avx2;
    return &table_plain;
}
#else
static const kernel_table *select_table(void) { return &table_plain; }
#endif

/* Selected once; a benign race at first use stores the same pointer from every thread. */
static const kernel_table *_Atomic active_table;

static inline const kernel_table *kernels(void) {
    const kernel_table *t = active_table;
    if (!t) {
        t = select_table();
        active_table = t;
    }
    return t;
}

void tuss_silu(float *x, ptrdiff_t n) { kernels()->silu(x, n); }
void tuss_sigmoid(float *x, ptrdiff_t n) { kernels()->sigmoid(x, n); }
void tuss_tanh(float *x, ptrdiff_t n) { kernels()->tanh(x, n); }
void tuss_swiglu(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y) { kernels()->swiglu(x, rows, width, y); }
void tuss_glu(const float *x, ptrdiff_t rows, ptrdiff_t width, float *y) { kernels()->glu(x, rows, width, y); }
void tuss_swiglu_bias(const float *x, ptrdiff_t rows, ptrdiff_t width, const float *bias, float *y) {
    kernels()->swiglu_bias(x, rows, width, bias, y);
}
void tuss_overlap_add_rows(const float *p, ptrdiff_t taps, ptrdiff_t dim, ptrdiff_t length, ptrdiff_t shift,
                           const float *bias, float *y) {
    kernels()->overlap_add_rows(p, taps, dim, length, shift, bias, y);
}
void tuss_softmax_rows(float *x, ptrdiff_t rows, ptrdiff_t width) { kernels()->softmax(x, rows, width); }
void tuss_softmax_rows_unnormalized(float *x, ptrdiff_t rows, ptrdiff_t width, float *inverse_sums) {
    kernels()->softmax_unnormalized(x, rows, width, inverse_sums);
}
void tuss_snake(float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha) {
    kernels()->snake(x, channels, length, alpha);
}
void tuss_snake_copy(const float *x, ptrdiff_t channels, ptrdiff_t length, const float *alpha, float *y) {
    kernels()->snake_copy(x, channels, length, alpha, y);
}

void tuss_snake_bias(float *x, ptrdiff_t channels, ptrdiff_t length, const float *bias, const float *alpha) {
    kernels()->snake_bias(x, channels, length, bias, alpha);
}

int tuss_kernel_isa(void) {
    const kernel_table *t = kernels();
#ifdef TUSS_X86
    if (t == &table_avx512) return 2;
    if (t == &table_avx2) return 1;
#endif
    return 0;
}

void tuss_force_kernel_isa(int isa) {
#ifdef TUSS_X86
    const kernel_table *best = select_table();
    if (isa <= 0) active_table = &table_plain;
    else if (isa == 1 && best != &table_plain) active_table = &table_avx2;
    else active_table = best;
#else
    (void)isa;
    active_table = &table_plain;
#endif
}
