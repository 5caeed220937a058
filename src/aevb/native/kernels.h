/* Shared by kernels.c and step.c (compiled together by aevb/native/library.py): the native
   step's declared interface (aevb_layer, aevb_step_args), the vectorizable scalar functions
   both files use, and the kernels step.c chains. */
#ifndef AEVB_KERNELS_H
#define AEVB_KERNELS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* The library's interface, declared once: interface.py reads the structs, the enum and the
   prototypes below (from here to the end of the prototypes) and makes the ctypes structs and
   signatures from them; a library whose aevb_interface_sizes differ from those structs is
   not loaded. Pointers, int64_t, int32_t, int, float and double are the types it knows.

   One Linear layer y = h W^T + b of the paper's tanh MLPs: */
typedef struct {
    float *weight, *bias;            /* [out, in], [out] */
    float *grad_weight, *grad_bias;  /* their .grad, written by the step */
    float *sum_weight, *sum_bias;    /* Adagrad's sums of squares (NULL where no update) */
    float *step_weight, *step_bias;  /* Adagrad's step counts, [1] each (NULL where no update) */
    float *out;                      /* [rows, out]: after the tanh except in a net's last layer */
    float *grad_in;                  /* [rows, in]: the gradient at the input (NULL for the
                                        encoder's first layer, whose input is the data) */
    int64_t fan_in, fan_out;
} aevb_layer;

enum { AEVB_BERNOULLI = 0, AEVB_GAUSSIAN = 1 };

/* One training step of estimator B: the data, the noise, scratch, the result and the layers
   (the encoder's n_encoder, then the decoder's n_decoder). */
typedef struct {
    const float *x, *eps;            /* [n, D], [samples, n, J] */
    float *sigma, *z;                /* scratch [n, J], [samples n, J] */
    float *kl, *rows;                /* scratch [n], [samples n] */
    float *de;                       /* scratch [n, 2J]: the gradient at the encoder's output */
    float *bound;                    /* result: estimator B per data point [n], nats */
    int64_t samples, n, n_encoder, n_decoder;
    int32_t likelihood;              /* AEVB_BERNOULLI: the decoder's output is [rows, D] logits;
                                        AEVB_GAUSSIAN: [rows, 2D], mean logits and log-variances */
    aevb_layer *layers;
    int32_t update;                  /* 1: Adagrad's step with the three numbers below */
    float lr, weight_decay, adagrad_eps;
    double *spent;                   /* NULL, or seconds per kind of work (step.c's enum) */
} aevb_step_args;

/* Fortran BLAS sgemm (column-major, 32-bit integers), as MKL's LP64 interface exports it. */
typedef void (*sgemm_t)(const char *ta, const char *tb, const int *m, const int *n,
                        const int *k, const float *alpha, const float *a, const int *lda,
                        const float *b, const int *ldb, const float *beta, float *c,
                        const int *ldc);

/* What the library exports (kernels.c, step.c). */
void aevb_bernoulli_logits(float *l, const float *bias, const float *x, float *rowbound,
                           float *colsum, const float *kl, float *bound, int64_t rows,
                           int64_t n, int64_t d, float scale);
void aevb_gaussian_output(float *l, const float *bias, const float *x, float *rowbound,
                          float *colsum, const float *kl, float *bound, int64_t rows,
                          int64_t n, int64_t d, float scale);
void aevb_gaussian_latent(const float *enc, const float *eps, float *sigma, float *z,
                          float *kl, int64_t samples, int64_t n, int64_t j);
void aevb_gaussian_latent_backward(const float *dz, const float *eps, const float *enc,
                                   const float *sigma, float *de, float *colsum,
                                   int64_t samples, int64_t n, int64_t j);
void aevb_interface_sizes(int64_t *sizes);
void aevb_adagrad(float *p, const float *g, float *s, float *step, int64_t n, float lr,
                  float weight_decay, float eps);
void aevb_softplus_sums(const float *l, const float *bias, float *out, int64_t rows, int64_t d);
int aevb_mt19937_bernoulli(uint8_t *state, const float *probs, const int64_t *rows,
                           int64_t sources, float *out, int64_t count, int64_t width);
int aevb_vae_step(sgemm_t gemm, const aevb_step_args *a);
/* (end of the interface) */

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

/* exp(a) for any a, vectorizable: exp_nonpositive's polynomial, valid up to a = 88 (e^88 ~
   1.7e38, near float32's largest); above that it returns e^88 rather than infinity. */
static inline float exp_clamped(float a) {
    a = a > 88.0f ? 88.0f : a;
    a = a < -87.0f ? -87.0f : a;
    float k = rintf(a * 1.44269504f);
    float r = (a - k * 0.693145752f) - k * 1.42860677e-6f;
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


#endif
