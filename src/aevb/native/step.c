/* One whole training step of estimator B (eq. 7 and 10) for aevb.native's Step, in one call:
   the paper's networks (tanh MLPs, Gaussian q_phi(z|x), Bernoulli p_theta(x|z)), float32, CPU.

   kernels.c holds the element-wise passes; this file chains them with the matrix products,
   which it hands to the BLAS that torch itself calls (MKL's sgemm_, found in torch's library
   by aevb/native/library.py and passed in as a pointer). At the paper's minibatch of M = 100 the same
   chain driven from Python spent ~15% of a step on the interpreter and torch's dispatch
   between some forty calls; here it is one call. The arithmetic is that of native/step.py's
   docstring and of the kernels; the tests compare it with float64 autograd. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

/* c [m, n] = op(a) op(b), all row-major with row strides lda, ldb, ldc; op(a) is [m, k] (a
   stored [k, m] if ta), op(b) is [k, n] (b stored [n, k] if tb). A row-major matrix is its
   transpose in column-major, so this is the column-major product c^T = op(b)^T op(a)^T. The
   integers sit in zeroed 64-bit slots: on a little-endian machine a BLAS with 32-bit and one
   with 64-bit integers (ILP64) read the same values from them. */
static void matmul_strided(sgemm_t gemm, int ta, int tb, int64_t m, int64_t n, int64_t k,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc) {
    const int64_t M = m, N = n, K = k, LDA = lda, LDB = ldb, LDC = ldc;
    const float one = 1.0f, zero = 0.0f;
    gemm(tb ? "T" : "N", ta ? "T" : "N", (const int *)&N, (const int *)&M, (const int *)&K,
         &one, b, (const int *)&LDB, a, (const int *)&LDA, &zero, c, (const int *)&LDC);
}

/* A weight's gradient gw [out, in] = dy^T h from dy [rows, out] and h [rows, in], and with
   `hyper` its Adagrad step: in blocks of output rows (about 64, as many for each thread),
   each block updated while its gradient is still in the core's cache. The update reads and
   writes w, gw and the sums once each: about 20 bytes a parameter, so at M = 100 it cost as
   much as a quarter of the products when it ran after them over memory. A block's product
   runs on its thread alone (no nested parallelism); the blocks depend on the sizes and the
   thread count only, so the result does not depend on timing. */
static void weight_gradient(sgemm_t gemm, const float *dy, const float *h, float *gw,
                            int64_t rows, int64_t out, int64_t in, float *w, float *sw,
                            float *step, const float *hyper) {
    int64_t threads = omp_get_max_threads();
    int64_t blocks = (out + 63) / 64;
    blocks = (blocks + threads - 1) / threads * threads;
    int64_t block = (out + blocks - 1) / blocks;
    #pragma omp parallel for schedule(static)
    for (int64_t r0 = 0; r0 < out; r0 += block) {
        int64_t m = out - r0 < block ? out - r0 : block;
        matmul_strided(gemm, 1, 0, m, in, rows, dy + r0, out, h, in, gw + r0 * in, in);
        if (hyper != NULL)
            adagrad_update(w + r0 * in, gw + r0 * in, sw + r0 * in, m * in, hyper[0],
                           hyper[1], hyper[2]);
    }
    if (hyper != NULL) *step += 1.0f;
}

/* tanh(a), vectorizable, within 1.5 ulp of float64's (relative error 1.5e-7 over [-12, 12]):
   below |a| = 0.625 an odd polynomial a + a^3 P(a^2) (a least-squares fit on Chebyshev
   nodes), above it (1 - e) / (1 + e) with e = exp(-2|a|) <= 0.29, where 1 - e loses no
   digits. */
static inline float tanh_fast(float a) {
    float t = a * a;
    float small = a + a * t * (-0.333333343f + t * (0.133333042f + t * (-0.0539594106f
                  + t * (0.0217699874f + t * (-0.00834704284f + t * 0.00229589548f)))));
    float e = exp_nonpositive(-2.0f * fabsf(a));
    float big = copysignf((1.0f - e) / (1.0f + e), a);
    return fabsf(a) < 0.625f ? small : big;
}

/* The columns [c[0], c[1]) of n that this thread takes in a parallel region: equal parts in
   multiples of 16 floats, so that no two threads write one 64-byte cache line. */
static void my_columns(int64_t n, int64_t c[2]) {
    int64_t threads = omp_get_num_threads(), part = ((n + threads - 1) / threads + 15) / 16 * 16;
    c[0] = omp_get_thread_num() * part < n ? omp_get_thread_num() * part : n;
    c[1] = c[0] + part < n ? c[0] + part : n;
}

/* y [rows, out] = h [rows, in] W^T for W [out, in], plus b [out] (if not NULL) and then tanh
   (if `squash`). Each thread makes its own columns of y, product and bias and tanh while
   they are in its cache: at M = 100 this ran faster than MKL's own split of the product. */
static void linear_forward(sgemm_t gemm, const float *h, const float *w, const float *b,
                           float *y, int64_t rows, int64_t in, int64_t out, int squash) {
    #pragma omp parallel
    {
        int64_t c[2];
        my_columns(out, c);
        if (c[1] > c[0]) {
            matmul_strided(gemm, 0, 1, rows, c[1] - c[0], in, h, in, w + c[0] * in, in,
                           y + c[0], out);
            for (int64_t r = 0; b != NULL && r < rows; r++) {
                float *yr = y + r * out;
                if (squash) {
                    #pragma omp simd
                    for (int64_t k = c[0]; k < c[1]; k++) yr[k] = tanh_fast(yr[k] + b[k]);
                } else {
                    #pragma omp simd
                    for (int64_t k = c[0]; k < c[1]; k++) yr[k] += b[k];
                }
            }
        }
    }
}

/* dh [rows, in] = dy [rows, out] W for W [out, in]; then, if h is not NULL, through the tanh
   that made h [rows, in]: dh <- dh (1 - h^2), with its column sums (the bias gradient of the
   layer that made h) into colsum [in], each summed in row order. Each thread its own
   columns, as in linear_forward. */
static void linear_input_gradient(sgemm_t gemm, const float *dy, const float *w, float *dh,
                                  const float *h, float *colsum, int64_t rows, int64_t in,
                                  int64_t out) {
    #pragma omp parallel
    {
        int64_t c[2];
        my_columns(in, c);
        if (c[1] > c[0]) {
            matmul_strided(gemm, 0, 0, rows, c[1] - c[0], out, dy, out, w + c[0], in,
                           dh + c[0], in);
            if (h != NULL) {
                for (int64_t k = c[0]; k < c[1]; k++) colsum[k] = 0.0f;
                for (int64_t r = 0; r < rows; r++) {
                    float *g = dh + r * in;
                    const float *hr = h + r * in;
                    #pragma omp simd
                    for (int64_t k = c[0]; k < c[1]; k++) {
                        g[k] *= 1.0f - hr[k] * hr[k];
                        colsum[k] += g[k];
                    }
                }
            }
        }
    }
}

/* Where the step's time goes, for bench/run.py: with `spent` non-NULL, lap() adds the seconds
   since the last lap to spent[kind]. (Products by kind, so that their FLOP rate inside the
   step can be told, each with the work fused into it: bias and tanh, the tanh's backward,
   the Adagrad update.) */
enum { FORWARD_LAYERS, INPUT_GRADIENTS, WEIGHT_GRADIENTS_AND_UPDATE, OTHER_WORK, KINDS };
typedef struct { double *spent, mark; } profile_t;

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void lap(profile_t *prof, int kind) {
    if (prof->spent == NULL) return;
    double t = seconds();
    prof->spent[kind] += t - prof->mark;
    prof->mark = t;
}

/* The net's forward pass from h [rows, in]; the last layer's bias is left out where
   `last_bias` is 0 (the likelihood kernel adds it as it reads the logits). */
static void forward(sgemm_t gemm, aevb_layer *layer, int64_t count, const float *h,
                    int64_t rows, int last_bias, profile_t *prof) {
    for (int64_t i = 0; i < count; i++) {
        aevb_layer *p = layer + i;
        linear_forward(gemm, h, p->weight, i < count - 1 || last_bias ? p->bias : NULL,
                       p->out, rows, p->fan_in, p->fan_out, i < count - 1);
        lap(prof, FORWARD_LAYERS);
        h = p->out;
    }
}

/* Fills the .grad of each layer from dy [rows, out], the loss's gradient at the net's output
   (whose column sums, the last bias's gradient, are already in place), and leaves the
   gradient at the net's input in the first layer's grad_in if `first`. With `a->update`
   each layer's Adagrad step is made as soon as the pass is done with its weights, while they
   and their gradient are still in cache. */
static void backward(sgemm_t gemm, aevb_layer *layer, int64_t count, const float *x,
                     float *dy, int64_t rows, int first, const aevb_step_args *a,
                     profile_t *prof) {
    const float hyper[3] = { a->lr, a->weight_decay, a->adagrad_eps };
    const float *update = a->update ? hyper : NULL;
    for (int64_t i = count - 1; i >= 0; i--) {
        aevb_layer *p = layer + i;
        const float *h = i > 0 ? layer[i - 1].out : x;  /* [rows, in] */
        /* dy W first: the update below changes W */
        if (i > 0 || first)  /* through the tanh that made h, if there is one */
            linear_input_gradient(gemm, dy, p->weight, p->grad_in, i > 0 ? h : NULL,
                                  i > 0 ? layer[i - 1].grad_bias : NULL, rows, p->fan_in,
                                  p->fan_out);
        lap(prof, INPUT_GRADIENTS);
        weight_gradient(gemm, dy, h, p->grad_weight, rows, p->fan_out, p->fan_in, p->weight,
                        p->sum_weight, p->step_weight, update);
        lap(prof, WEIGHT_GRADIENTS_AND_UPDATE);
        if (update != NULL)
            aevb_adagrad(p->bias, p->grad_bias, p->sum_bias, p->step_bias, p->fan_out,
                         a->lr, a->weight_decay, a->adagrad_eps);
        lap(prof, OTHER_WORK);
        dy = p->grad_in;
    }
}

void aevb_interface_sizes(int64_t *sizes) {
    sizes[0] = (int64_t)sizeof(aevb_layer);
    sizes[1] = (int64_t)sizeof(aevb_step_args);
}

/* Estimator B per data point into a->bound [n] (nats) for x [n, D] and eps [samples, n, J];
   every parameter's .grad set to d(-mean_n bound)/d(theta, phi). With a->update the step
   also updates the weights, unless the bound is not finite: then it returns 1 before the
   backward pass, and .grad and the weights are as they were. Returns 0 otherwise, 2 if no
   memory was left for its scratch buffer. a->spent (NULL, or KINDS seconds) adds up where
   the time went. */
int aevb_vae_step(sgemm_t gemm, const aevb_step_args *a) {
    profile_t prof = { a->spent, a->spent != NULL ? seconds() : 0.0 };
    aevb_layer *enc = a->layers, *dec = a->layers + a->n_encoder;
    int64_t n_enc = a->n_encoder, n_dec = a->n_decoder, n = a->n, samples = a->samples;
    int64_t j = dec[0].fan_in, rows = samples * n, out = dec[n_dec - 1].fan_out;
    int64_t d = a->likelihood == AEVB_GAUSSIAN ? out / 2 : out;  /* values a data point */
    float *mu_log_var = enc[n_enc - 1].out;  /* [n, 2J] */
    float *logits = dec[n_dec - 1].out;      /* [samples n, D], or 2D for AEVB_GAUSSIAN */

    forward(gemm, enc, n_enc, a->x, n, 1, &prof);
    aevb_gaussian_latent(mu_log_var, a->eps, a->sigma, a->z, a->kl, samples, n, j);
    forward(gemm, dec, n_dec, a->z, rows, 0, &prof);
    /* The output bias's gradient goes to scratch first and reaches .grad only once the bound
       is known to be finite: a refused step leaves every .grad as it was. */
    float *bias_grad = malloc((size_t)out * sizeof(float));
    if (bias_grad == NULL) return 2;
    if (a->likelihood == AEVB_GAUSSIAN)
        aevb_gaussian_output(logits, dec[n_dec - 1].bias, a->x, a->rows, bias_grad, a->kl,
                             a->bound, rows, n, d, 1.0f / (float)rows);
    else
        aevb_bernoulli_logits(logits, dec[n_dec - 1].bias, a->x, a->rows, bias_grad, a->kl,
                              a->bound, rows, n, d, 1.0f / (float)rows);
    if (a->update) {
        float sum = 0.0f;
        for (int64_t i = 0; i < n; i++) sum += a->bound[i];
        if (!isfinite(sum)) {
            free(bias_grad);
            return 1;
        }
    }
    memcpy(dec[n_dec - 1].grad_bias, bias_grad, (size_t)out * sizeof(float));
    free(bias_grad);
    lap(&prof, OTHER_WORK);
    backward(gemm, dec, n_dec, a->z, logits, rows, 1, a, &prof);
    aevb_gaussian_latent_backward(dec[0].grad_in, a->eps, mu_log_var, a->sigma, a->de,
                                  enc[n_enc - 1].grad_bias, samples, n, j);
    lap(&prof, OTHER_WORK);
    backward(gemm, enc, n_enc, a->x, a->de, n, 0, a, &prof);
    return 0;
}
