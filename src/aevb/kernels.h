/* Shared by kernels.c and step.c (compiled together by aevb/kernels.py): the vectorizable
   scalar functions both use, and the kernels step.c chains. */
#ifndef AEVB_KERNELS_H
#define AEVB_KERNELS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* exp(a) for a <= 0, vectorizable (glibc's libmvec was slower than torch's own here): a = k ln2
   + r with |r| <= ln2 / 2, e^r by its Taylor polynomial to r^7 (truncation below 1e-8
   relative), times 2^k built in the exponent bits. Below -87 (e^a < 2^-125) it returns
   e^-87 ~ 1.6e-38, which no caller can tell from 0. */
static inline float exp_nonpositive(float a) {
    a = a < -87.0f ? -87.0f : a;
    float k = rintf(a * 1.44269504f);
    float r = (a - k * 0.693145752f) - k * 1.42860677e-6f;  /* ln 2 in two parts */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    union { int32_t i; float f; } scale = { .i = ((int32_t)k + 127) << 23 };
    return p * scale.f;
}

/* log(1 + e) for 0 <= e <= 1, vectorizable: u = 1 + e = 2^j m with m in [1/sqrt 2, sqrt 2],
   log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, by its series to s^9; the
   rounding of u is undone by the factor e / (u - 1) (u - 1 is exact). */
static inline float log1p_unit(float e) {
    float u = 1.0f + e;
    int big = u > 1.41421356f;
    float m = big ? 0.5f * u : u, j = big ? 0.693147181f : 0.0f;
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float log_u = j + 2.0f * s * (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7
                  + s2 * (1.0f / 9)))));
    float d = u - 1.0f;
    return d == 0.0f ? e : log_u * (e / d);
}

/* Adagrad's update of n parameters (see aevb_adagrad), without its step count. */
static inline void adagrad_update(float *p, const float *g, float *s, int64_t n, float lr,
                                  float weight_decay, float eps) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + weight_decay * p[i];
        float si = s[i] + gi * gi;
        s[i] = si;
        p[i] -= lr * (gi / (sqrtf(si) + eps));  /* torch's order of rounding */
    }
}

void aevb_bernoulli_logits(float *l, const float *bias, const float *x, float *rowbound,
                           float *colsum, const float *kl, float *bound, int64_t rows,
                           int64_t n, int64_t d, float scale);
void aevb_gaussian_latent(const float *enc, const float *eps, float *sigma, float *z,
                          float *kl, int64_t samples, int64_t n, int64_t j);
void aevb_gaussian_latent_backward(const float *dz, const float *eps, const float *enc,
                                   const float *sigma, float *de, float *colsum,
                                   int64_t samples, int64_t n, int64_t j);
void aevb_adagrad(float *p, const float *g, float *s, float *step, int64_t n, float lr,
                  float weight_decay, float eps);

#endif
