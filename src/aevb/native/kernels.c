/* The element-wise passes of aevb.native's training step (chained with the products by step.c),
   the Adagrad update, importance sampling's softplus sums and the binarization's random
   draws: float32, CPU.

   Compiled on first use by aevb/native/library.py and called through ctypes. Each function makes in
   one pass over memory what takes several PyTorch operations (each its own dispatch, output
   tensor and pass) at the paper's minibatch of M = 100. Rows are split between OpenMP threads
   (the runtime torch itself uses: the library resolves libgomp to torch's copy), and sums over
   rows run column by column in row order, so results do not depend on timing. Arrays are
   C-contiguous; shapes are given as [rows, columns]. */
#include "kernels.h"

/* Sums of a's columns over its rows, into out [cols]; a is [rows, cols]. Called inside a
   parallel region: each thread owns whole columns, so every sum runs in row order. */
static void column_sums(const float *a, float *out, int64_t rows, int64_t cols) {
    const int64_t block = 64;
    #pragma omp for schedule(static)
    for (int64_t c0 = 0; c0 < cols; c0 += block) {
        int64_t c1 = c0 + block < cols ? c0 + block : cols;
        for (int64_t c = c0; c < c1; c++) out[c] = 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            const float *row = a + r * cols;
            #pragma omp simd
            for (int64_t c = c0; c < c1; c++) out[c] += row[c];
        }
    }
}

/* log p_theta(x|z) of a Bernoulli decoder with logits l + bias (l [L*N, D], the output
   layer's product before its bias [D]; rows l-major: row s*N + n is sample s of data point
   n) for x [N, D]:
       rowbound[r] = sum_d x_d l_d - softplus(l_d)           (nats, [L*N])
   and, in place of l, the gradient of the loss -(1/(L N)) sum_r rowbound[r]:
       l_d <- scale * (sigmoid(l_d) - x_d),  scale = 1 / (L N)
   with its column sums (the output layer's bias gradient) in colsum [D], and estimator B per
   data point, bound[n] = mean over the L rows of n of rowbound - kl[n] (eq. 7, nats). One
   exp and one log1p per element: with e = exp(-|l|), softplus(l) = max(l, 0) + log1p(e) and
   sigmoid(+-l) = (1 or e) / (1 + e) neither overflow nor lose the small tail, and
   sigmoid(l) - x = (1 - x) sigmoid(l) - x sigmoid(-l) has no cancellation for binary x.
   The sum over pixels runs in float64: in float32 its rounding alone reached 2e-4 nats. */
void aevb_bernoulli_logits(float *l, const float *bias, const float *x, float *rowbound,
                           float *colsum, const float *kl, float *bound, int64_t rows,
                           int64_t n, int64_t d, float scale) {
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float *lr = l + r * d;
            const float *xr = x + (r % n) * d;
            double acc = 0.0;
            #pragma omp simd reduction(+:acc)
            for (int64_t j = 0; j < d; j++) {
                float v = lr[j] + bias[j], xj = xr[j], e = exp_nonpositive(-fabsf(v));
                float inv = 1.0f / (1.0f + e);
                float up = (v >= 0.0f ? 1.0f : e) * inv, down = (v >= 0.0f ? e : 1.0f) * inv;
                acc += (double)(xj * v - ((v > 0.0f ? v : 0.0f) + log1p_unit(e)));
                lr[j] = scale * ((1.0f - xj) * up - xj * down);
            }
            rowbound[r] = (float)acc;
        }
        column_sums(l, colsum, rows, d);
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double sum = 0.0;
            for (int64_t r = i; r < rows; r += n) sum += rowbound[r];
            bound[i] = (float)(sum / (double)(rows / n) - (double)kl[i]);
        }
    }
}

/* The Gaussian decoder's aevb_bernoulli_logits (appendix C.2): l [rows, 2D] holds per row the
   mean logits m and the log-variances v (plus bias [2D]); x ~ N(sigmoid(m), exp(v)), so
       log p(x|z) = sum_d -log(2 pi)/2 - v_d/2 - (x_d - s_d)^2 exp(-v_d) / 2,  s = sigmoid(m),
   per row into rowbound, and l replaced by the loss's gradient, scale times
       d/dm = -(x - s) exp(-v) s (1 - s),   d/dv = (1 - (x - s)^2 exp(-v)) / 2,
   with its column sums in colsum [2D] and estimator B per point in bound [n]. */
void aevb_gaussian_output(float *l, const float *bias, const float *x, float *rowbound,
                          float *colsum, const float *kl, float *bound, int64_t rows,
                          int64_t n, int64_t d, float scale) {
    const float half_log_two_pi = 0.918938533f;
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float *mr = l + r * 2 * d, *vr = mr + d;
            const float *xr = x + (r % n) * d;
            double acc = 0.0;
            #pragma omp simd reduction(+:acc)
            for (int64_t j = 0; j < d; j++) {
                float m = mr[j] + bias[j], v = vr[j] + bias[d + j];
                float e = exp_nonpositive(-fabsf(m)), inv = 1.0f / (1.0f + e);
                float s = (m >= 0.0f ? 1.0f : e) * inv;  /* sigmoid(m), stable */
                float res = xr[j] - s, w = exp_clamped(-v), rw = res * res * w;
                acc += (double)(-half_log_two_pi - 0.5f * v - 0.5f * rw);
                mr[j] = -scale * res * w * s * (1.0f - s);
                vr[j] = scale * 0.5f * (1.0f - rw);
            }
            rowbound[r] = (float)acc;
        }
        column_sums(l, colsum, rows, 2 * d);
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double sum = 0.0;
            for (int64_t r = i; r < rows; r += n) sum += rowbound[r];
            bound[i] = (float)(sum / (double)(rows / n) - (double)kl[i]);
        }
    }
}

/* out[r] = sum_d softplus(l[r, d] + bias[d]) for l [rows, D] (nats): the x-free part of a
   Bernoulli decoder's -log p(x|z) for each of many z (importance sampling), in one pass with
   no [rows, D] result; softplus(v) = max(v, 0) + log1p(e^-|v|), summed in float64 as in
   aevb_bernoulli_logits. */
void aevb_softplus_sums(const float *l, const float *bias, float *out, int64_t rows,
                        int64_t d) {
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *lr = l + r * d;
        double acc = 0.0;
        #pragma omp simd reduction(+:acc)
        for (int64_t j = 0; j < d; j++) {
            float v = lr[j] + bias[j];
            acc += (double)((v > 0.0f ? v : 0.0f) + log1p_unit(exp_nonpositive(-fabsf(v))));
        }
        out[r] = (float)acc;
    }
}

/* q_phi(z|x) = N(mu, sigma^2) from the encoder's output enc [N, 2J] = (mu, log sigma^2):
   sigma [N, J]; z = mu + sigma * eps [L, N, J] for eps [L, N, J] (eq. 10's g_phi); and
   kl [N] = KL(q_phi(z|x) || N(0, I)) = sum_j (mu^2 + sigma^2 - 1 - log sigma^2) / 2 (nats). */
void aevb_gaussian_latent(const float *enc, const float *eps, float *sigma, float *z,
                          float *kl, int64_t samples, int64_t n, int64_t j) {
    for (int64_t i = 0; i < n; i++) {
        const float *mu = enc + i * 2 * j, *log_var = mu + j;
        float acc = 0.0f;
        for (int64_t k = 0; k < j; k++) {
            float s = expf(0.5f * log_var[k]);  /* scalar glibc: 2,000 per step */
            sigma[i * j + k] = s;
            acc += mu[k] * mu[k] + s * s - 1.0f - log_var[k];
        }
        kl[i] = 0.5f * acc;
    }
    for (int64_t s = 0; s < samples; s++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < j; k++) {
                int64_t at = (s * n + i) * j + k;
                z[at] = enc[i * 2 * j + k] + sigma[i * j + k] * eps[at];
            }
}

/* The gradient of the loss -(1/N) sum_n (E[log p(x|z)] - kl_n) at the encoder's output,
   given dz [L, N, J], its part through z (already divided by L N):
       d/d mu = sum_s dz + mu / N
       d/d log sigma^2 = sigma / 2 * sum_s dz * eps + (sigma^2 - 1) / (2 N)
   into de [N, 2J], and de's column sums (the encoder output layer's bias gradient) into
   colsum [2J]. */
void aevb_gaussian_latent_backward(const float *dz, const float *eps, const float *enc,
                                   const float *sigma, float *de, float *colsum,
                                   int64_t samples, int64_t n, int64_t j) {
    float inv_n = 1.0f / (float)n;
    for (int64_t c = 0; c < 2 * j; c++) colsum[c] = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < j; k++) {
            float sum_dz = 0.0f, sum_dz_eps = 0.0f;
            for (int64_t s = 0; s < samples; s++) {
                int64_t at = (s * n + i) * j + k;
                sum_dz += dz[at];
                sum_dz_eps += dz[at] * eps[at];
            }
            float sg = sigma[i * j + k];
            float d_mu = sum_dz + enc[i * 2 * j + k] * inv_n;
            float d_log_var = 0.5f * sg * sum_dz_eps + 0.5f * inv_n * (sg * sg - 1.0f);
            de[i * 2 * j + k] = d_mu;
            de[i * 2 * j + j + k] = d_log_var;
            colsum[k] += d_mu;
            colsum[j + k] += d_log_var;
        }
    }
}

/* One Adagrad step (Duchi et al. 2011, as torch.optim.Adagrad with lr_decay 0) on n
   parameters p with gradient g and running sum of squares s, all updated in place:
       g' = g + weight_decay p,  s <- s + g'^2,  p <- p - lr g' / (sqrt(s) + eps)
   and the step count (torch keeps it as a float32 scalar tensor) up by one. */
void aevb_adagrad(float *p, const float *g, float *s, float *step, int64_t n, float lr,
                  float weight_decay, float eps) {
    const int64_t block = 16384;  /* below that, waking the other thread costs more */
    *step += 1.0f;
    #pragma omp parallel for schedule(static) if(n > block)
    for (int64_t i = 0; i < n; i += block)
        adagrad_update(p + i, g + i, s + i, n - i < block ? n - i : block, lr, weight_decay,
                       eps);
}

/* MT19937 (Matsumoto & Nishimura 1998) as torch's CPU generator runs it: standard twist,
   32-bit outputs, and `left`/`next` counters with torch's meaning (a draw first decrements
   left and re-twists when it reaches 0, then takes word next++). */
static inline uint32_t mt19937_mix(uint32_t u, uint32_t v, uint32_t far) {
    return far ^ (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ (0x9908b0dfu & -(v & 1u));
}

static void mt19937_twist(uint32_t *s) {
    int k;
    for (k = 0; k < 624 - 397; k++) s[k] = mt19937_mix(s[k], s[k + 1], s[k + 397]);
    for (; k < 623; k++) s[k] = mt19937_mix(s[k], s[k + 1], s[k + 397 - 624]);
    s[623] = mt19937_mix(s[623], s[0], s[396]);
}

/* out[i] = 1 if u_i < p_i else 0 (float32, count rows of `width`), u_i = (w_i & (2^24 - 1))
   2^-24 from the MT19937 words w_i, and p the rows rows[0], rows[1], ... of probs [sources,
   width] (or, with rows NULL, probs itself as count rows): exactly the bits of
   torch.rand(count, width) < p for a torch CPU generator, whose get_state() bytes `state`
   hold (seed u64, left i32, seeded i32, next u64, 624 words as u64) and are advanced in
   place, as torch.rand would have left them. Serial: the stream is one sequence; it costs
   about a quarter of torch.rand's locked per-element calls. Returns 1, drawing nothing, if
   a row index is outside [0, sources), and 2 if the state's counters are out of range. */
int aevb_mt19937_bernoulli(uint8_t *state, const float *probs, const int64_t *rows,
                           int64_t sources, float *out, int64_t count, int64_t width) {
    int32_t left;
    uint64_t next, word;
    uint32_t s[624];
    for (int64_t r = 0; rows != NULL && r < count; r++)
        if (rows[r] < 0 || rows[r] >= sources) return 1;
    __builtin_memcpy(&left, state + 8, 4);
    __builtin_memcpy(&next, state + 16, 8);
    /* A draw reads words next .. next + left - 2 before re-twisting: stay inside the 624. */
    if (left < 1 || left > 624 || next > 624 || next + (uint64_t)left > 625) return 2;
    for (int k = 0; k < 624; k++) {
        __builtin_memcpy(&word, state + 24 + 8 * k, 8);
        s[k] = (uint32_t)word;
    }
    for (int64_t r = 0; r < count; r++) {
        const float *p = probs + (rows != NULL ? rows[r] : r) * width;
        float *o = out + r * width;
        for (int64_t i = 0; i < width;) {
            if (left == 1) {
                mt19937_twist(s);
                left = 625;
                next = 0;
            }
            int64_t take = width - i < left - 1 ? width - i : left - 1;
            const uint32_t *w = s + next;
            #pragma omp simd
            for (int64_t k = 0; k < take; k++) {
                uint32_t y = w[k];
                y ^= y >> 11;
                y ^= (y << 7) & 0x9d2c5680u;
                y ^= (y << 15) & 0xefc60000u;
                y ^= y >> 18;
                o[i + k] = (float)(y & 0xffffffu) * 5.9604644775390625e-8f < p[i + k];
            }
            left -= (int32_t)take;
            next += (uint64_t)take;
            i += take;
        }
    }
    __builtin_memcpy(state + 8, &left, 4);
    __builtin_memcpy(state + 16, &next, 8);
    for (int k = 0; k < 624; k++) {
        word = s[k];
        __builtin_memcpy(state + 24 + 8 * k, &word, 8);
    }
    return 0;
}
