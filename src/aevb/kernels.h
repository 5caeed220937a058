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

/* log(1 + e) for 0 <= e <= 1, vectorizable and without a division: e P(e), P of degree 9
   fitted to log(1 + e) / e by least squares on Chebyshev nodes of [0, 1] (log(1 + e)'s
   nearest singularity, e = -1, is far enough for that to converge fast). Relative error
   1.5e-7 in float32, against 2.7e-7 for the atanh series with two divisions it replaced. */
static inline float log1p_unit(float e) {
    return e * (1.0f + e * (-0.499999046f + e * (0.333300054f + e * (-0.249545604f
           + e * (0.196781218f + e * (-0.153118744f + e * (0.106142804f + e * (-0.0570643246f
           + e * (0.0199072119f + e * -0.00325638661f)))))))));
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
