//! Branch-free `exp` and `erf` for f32 slices, written so that the compiler vectorises the
//! loops, and compiled three times (AVX-512, AVX2 + FMA, baseline) with the widest one the CPU
//! has chosen at run time. burn-flex computes both through scalar libm calls, a large share
//! of a batch-1 inference (measured: BENCHMARKS.md).
//!
//! - `exp`: Cody–Waite range reduction `x = n ln2 + r` and a degree-6 Taylor polynomial on
//!   `|r| <= ln2 / 2` (relative error < 3e-7), `2^n` built in the exponent bits.
//! - `erf`: the rational approximation of Eigen's `generic_fast_erf_float` (x clamped to ±4,
//!   odd degree-13 numerator over even degree-8 denominator; absolute error < 2e-7).

// The constants of `exp`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that `n * LN2_HI` is exact for |n| < 2^9.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a rounding instruction.
const ROUND_MAGIC: f32 = 12_582_912.0;
// Below EXP_MIN the result is under f32's normal range: flush to 0 as the clamp gives
// exp(-87.3) ~ 1e-38 (harmless for softmax and GELU, whose users are the only callers).
const EXP_MIN: f32 = -87.3;
const EXP_MAX: f32 = 88.3;
/// The Taylor polynomial of `exp(r)` on `|r| <= ln2 / 2`, highest degree first (Horner).
const EXP_TAYLOR: [f32; 7] = [
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// Multiply-add as one instruction where the CPU has FMA; two (not a libm call) where not.
trait Mad {
    fn mad(a: f32, b: f32, c: f32) -> f32;
}
pub(crate) struct Fused;
pub(crate) struct Unfused;
impl Mad for Fused {
    #[inline(always)]
    fn mad(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}
impl Mad for Unfused {
    #[inline(always)]
    fn mad(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

#[inline(always)]
fn exp1<M: Mad>(x: f32) -> f32 {
    let x = if x > EXP_MAX { EXP_MAX } else { x };
    let x = if x < EXP_MIN { EXP_MIN } else { x };
    let t = M::mad(x, LOG2E, ROUND_MAGIC);
    let n = t - ROUND_MAGIC;
    let r = M::mad(n, -LN2_HI, x);
    let r = M::mad(n, -LN2_LO, r);
    let mut p = EXP_TAYLOR[0];
    for c in &EXP_TAYLOR[1..] {
        p = M::mad(p, r, *c);
    }
    // `t`'s low mantissa bits hold n: integer arithmetic on them vectorises, where the
    // saturating `n as i32` cast does not.
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    p * scale
}

#[inline(always)]
fn erf1<M: Mad>(x: f32) -> f32 {
    let x = if x > 4.0 { 4.0 } else { x };
    let x = if x < -4.0 { -4.0 } else { x };
    let x2 = x * x;
    let p = -2.726_142_3e-10f32;
    let p = M::mad(p, x2, 2.770_681_4e-8);
    let p = M::mad(p, x2, -2.101_024e-6);
    let p = M::mad(p, x2, -5.692_506_4e-5);
    let p = M::mad(p, x2, -7.349_906e-4);
    let p = M::mad(p, x2, -2.954_600_1e-3);
    let p = M::mad(p, x2, -1.609_603_3e-2);
    let q = -1.456_607_2e-5f32;
    let q = M::mad(q, x2, -2.133_740_6e-4);
    let q = M::mad(q, x2, -1.682_827e-3);
    let q = M::mad(q, x2, -7.373_329e-3);
    let q = M::mad(q, x2, -1.426_474e-2);
    x * p / q
}

#[inline(always)]
fn gelu1<M: Mad>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf1::<M>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// d gelu / dx = Phi(x) + x phi(x).
#[inline(always)]
fn gelu_grad1<M: Mad>(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf1::<M>(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * INV_SQRT_2PI * exp1::<M>(-0.5 * x * x)
}

/// One loop body per kernel, compiled three times: for AVX-512 (with AVX2 and FMA), for AVX2
/// and FMA, and for the baseline; `$name` runs the widest copy the CPU has. Inside the body,
/// `M` is [`Fused`] or [`Unfused`] (for `M::mad`); plain `+` and `*` are never fused, so a
/// body without `M::mad` computes the same numbers in every copy. The kernels use it too
/// (`kernels::fastmath::multiversion!`, for `unsafe fn`s that write through raw pointers).
macro_rules! multiversion {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $crate::kernels::fastmath::multiversion!(@wide ($($arg: $ty),*) $(-> $ret)? $body);
            #[allow(dead_code)]
            type M = $crate::kernels::fastmath::Unfused;
            $body
        }
    };
    ($(#[$doc:meta])* $vis:vis unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        $vis unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            $crate::kernels::fastmath::multiversion!(@wide ($($arg: $ty),*) $(-> $ret)? $body);
            #[allow(dead_code)]
            type M = $crate::kernels::fastmath::Unfused;
            $body
        }
    };
    // The wide copies, and the return through the widest the CPU has.
    (@wide ($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        #[cfg(target_arch = "x86_64")]
        {
            /// The body compiled for AVX-512 (with AVX2 and FMA).
            ///
            /// # Safety
            /// The CPU has these features, and the arguments meet the outer function's contract
            /// (none where it is safe).
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                #[allow(dead_code)]
                type M = $crate::kernels::fastmath::Fused;
                $body
            }
            /// The body compiled for AVX2 and FMA.
            ///
            /// # Safety
            /// As `v4`, for these features.
            #[target_feature(enable = "avx2,fma")]
            unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                #[allow(dead_code)]
                type M = $crate::kernels::fastmath::Fused;
                $body
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function was compiled for; the rest
                // is the function's own contract.
                return unsafe { v4($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: as above.
                return unsafe { v3($($arg),*) };
            }
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// `x = gelu(x)` (exact-erf GELU, as PyTorch's default), in place.
    pub fn gelu_inplace(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = gelu1::<M>(*v);
        }
    }
}

multiversion! {
    /// `x = gelu(x + bias)` for each `bias.len()`-wide row of `x`, in place: a feed-forward's
    /// bias and activation in one pass over its output.
    pub fn gelu_bias_rows(x: &mut [f32], bias: &[f32]) {
        if bias.is_empty() {
            return;
        }
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v = gelu1::<M>(*v + b);
            }
        }
    }
}

multiversion! {
    /// `dst = gelu(src)`.
    pub fn gelu_into(src: &[f32], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = gelu1::<M>(s);
        }
    }
}

multiversion! {
    /// `g = g * gelu'(x)`, in place on the incoming gradient `g`.
    pub fn gelu_backward_inplace(x: &[f32], g: &mut [f32]) {
        for (g, &x) in g.iter_mut().zip(x) {
            *g *= gelu_grad1::<M>(x);
        }
    }
}

multiversion! {
    /// `out = g * gelu'(x)`.
    pub fn gelu_backward_into(x: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &g), &x) in out.iter_mut().zip(g).zip(x) {
            *o = g * gelu_grad1::<M>(x);
        }
    }
}

/// murmur3's 32-bit finaliser: every input bit reaches every output bit.
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

multiversion! {
    /// `row[j] *= scale` where the hash of (`key`, `first + j`) is at least `threshold`, else
    /// `row[j] = 0`: a dropout mask that any thread redraws from the key alone, eight lanes at
    /// a time (a serial generator drew one pair per step, a visible share of a pre-training
    /// step; measured: BENCHMARKS.md).
    /// `first` is the index of `row[0]` in the key's run of elements, so a part of that run
    /// (a process's share of a batch) draws what the whole run draws there.
    pub fn dropout_row(row: &mut [f32], key: u32, first: u32, threshold: u32, scale: f32) {
        for (j, v) in row.iter_mut().enumerate() {
            let h = fmix32(key ^ first.wrapping_add(j as u32).wrapping_mul(0x9E37_79B9));
            *v *= if h >= threshold { scale } else { 0.0 };
        }
    }
}

multiversion! {
    /// `row = exp(row - max(row))` in place; returns the sum of the new row (the softmax's
    /// denominator), so a caller that scales later products can skip the normalising pass.
    pub fn exp_shifted_row(row: &mut [f32]) -> f32 {
        // Two AVX2 registers per step: 32 lanes spilled registers (perf annotate), 8 and 16
        // timed level; 16 keeps a second dependency chain for the sums.
        const L: usize = 16;
        // Lane-wise maxima and sums so the reductions vectorise without reassociation.
        let mut m = [f32::NEG_INFINITY; L];
        let mut chunks = row.chunks_exact(L);
        for c in &mut chunks {
            for i in 0..L {
                m[i] = if c[i] > m[i] { c[i] } else { m[i] };
            }
        }
        let mut max = f32::NEG_INFINITY;
        for &v in m.iter().chain(chunks.remainder()) {
            max = if v > max { v } else { max };
        }
        let mut s = [0.0f32; L];
        let mut chunks = row.chunks_exact_mut(L);
        for c in &mut chunks {
            for i in 0..L {
                let e = exp1::<M>(c[i] - max);
                c[i] = e;
                s[i] += e;
            }
        }
        let mut sum: f32 = s.iter().sum();
        for v in chunks.into_remainder() {
            let e = exp1::<M>(*v - max);
            *v = e;
            sum += e;
        }
        sum
    }
}

multiversion! {
    /// Softmax's backward through dropout, one row of one head: with `p` the probabilities,
    /// `m` the dropout mask (0 or `1 / (1 - rate)`) and `dp` the gradient of the dropped-out
    /// probabilities, `dp` becomes `p ∘ (dp ∘ m - <dp ∘ m, p>)` (the scores' gradient) and `p`
    /// becomes `p ∘ m` (what multiplied the values). The dot product runs in lanes: a serial
    /// sum showed in a single-threaded pre-training step (measured: BENCHMARKS.md).
    pub fn softmax_dropout_backward_row(p: &mut [f32], dp: &mut [f32], m: &[f32]) {
        const L: usize = 16;
        let full = p.len() / L * L;
        let mut s = [0.0f32; L];
        for j0 in (0..full).step_by(L) {
            let (pc, dc, mc) = (&p[j0..j0 + L], &mut dp[j0..j0 + L], &m[j0..j0 + L]);
            for i in 0..L {
                let v = dc[i] * mc[i];
                dc[i] = v;
                s[i] = M::mad(pc[i], v, s[i]);
            }
        }
        let mut dot: f32 = s.iter().sum();
        for j in full..p.len() {
            let v = dp[j] * m[j];
            dp[j] = v;
            dot = M::mad(p[j], v, dot);
        }
        for ((dv, pv), &mv) in dp.iter_mut().zip(p.iter_mut()).zip(m) {
            *dv = *pv * (*dv - dot);
            *pv *= mv;
        }
    }
}

/// `row = softmax(row)` in place.
pub fn softmax_row(row: &mut [f32]) {
    let inv = 1.0 / exp_shifted_row(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// One row of LayerNorm into `out`; returns the row's mean and `1 / sqrt(var + eps)`.
#[inline(always)]
fn layer_norm_row<M: Mad>(
    xr: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    or: &mut [f32],
) -> (f32, f32) {
    const L: usize = 16;
    let d = gamma.len();
    let mut s = [0.0f32; L];
    let mut chunks = xr.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            s[i] += c[i];
        }
    }
    let mean = (s.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()) / d as f32;
    let mut q = [0.0f32; L];
    let mut chunks = xr.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            let e = c[i] - mean;
            q[i] = M::mad(e, e, q[i]);
        }
    }
    let mut var: f32 = q.iter().sum();
    for &v in chunks.remainder() {
        var += (v - mean) * (v - mean);
    }
    let inv = 1.0 / (var / d as f32 + eps).sqrt();
    for (((o, &v), &g), &b) in or.iter_mut().zip(xr).zip(gamma).zip(beta) {
        *o = M::mad((v - mean) * inv, g, b);
    }
    (mean, inv)
}

multiversion! {
    /// LayerNorm of each `gamma.len()`-wide row of `x` into `out`:
    /// `(x - mean) / sqrt(var + eps) * gamma + beta`, biased variance (as PyTorch and Burn),
    /// two passes over the row (mean, then squared deviations) for accuracy.
    pub fn layer_norm_rows(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
        let d = gamma.len();
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            layer_norm_row::<M>(xr, gamma, beta, eps, or);
        }
    }
}

multiversion! {
    /// A pre-LN layer's step between attention and feed-forward, per `gamma.len()`-wide row of
    /// `x`: `x += before`, `out = LayerNorm(x)`, then `x += after` (the attention's output
    /// bias, the feed-forward's input, and its output bias added ahead of its product), one
    /// visit per row instead of three passes.
    pub fn bias_norm_bias_rows(
        x: &mut [f32],
        before: &[f32],
        after: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        out: &mut [f32]
    ) {
        let d = gamma.len();
        if d == 0 {
            return;
        }
        for (xr, or) in x.chunks_exact_mut(d).zip(out.chunks_exact_mut(d)) {
            for (v, &b) in xr.iter_mut().zip(before) {
                *v += b;
            }
            layer_norm_row::<M>(xr, gamma, beta, eps, or);
            for (v, &b) in xr.iter_mut().zip(after) {
                *v += b;
            }
        }
    }
}

multiversion! {
    /// [`layer_norm_rows`] for training: also writes each row's mean and `1 / sqrt(var +
    /// eps)` into `stats` (two per row), which the backward reads.
    pub fn layer_norm_rows_stats(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        out: &mut [f32],
        stats: &mut [f32]
    ) {
        let d = gamma.len();
        let rows = x.chunks_exact(d).zip(out.chunks_exact_mut(d));
        for ((xr, or), st) in rows.zip(stats.chunks_exact_mut(2)) {
            let (mean, inv) = layer_norm_row::<M>(xr, gamma, beta, eps, or);
            st[0] = mean;
            st[1] = inv;
        }
    }
}

multiversion! {
    /// The backward of [`layer_norm_rows_stats`] over rows of `x`: `g` (the output's gradient)
    /// becomes the input's, `r (g gamma - mean(g gamma) - xh mean(g gamma xh))` with `xh = (x -
    /// mean) r`, and each row's `g xh` and `g` are added to `dgamma` and `dbeta`.
    pub fn layer_norm_backward_rows(
        x: &[f32],
        gamma: &[f32],
        stats: &[f32],
        g: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32]
    ) {
        const L: usize = 16;
        let d = gamma.len();
        let inv_d = 1.0 / d as f32;
        let full = d / L * L;
        let rows = x.chunks_exact(d).zip(g.chunks_exact_mut(d));
        for ((xr, gr), st) in rows.zip(stats.chunks_exact(2)) {
            let (mean, r) = (st[0], st[1]);
            // Lane-wise sums so that the reductions vectorise without reassociation.
            let (mut sa, mut sb) = ([0.0f32; L], [0.0f32; L]);
            for j0 in (0..full).step_by(L) {
                let (xc, gc, gmc) = (&xr[j0..j0 + L], &gr[j0..j0 + L], &gamma[j0..j0 + L]);
                let (dgc, dbc) = (&mut dgamma[j0..j0 + L], &mut dbeta[j0..j0 + L]);
                for i in 0..L {
                    let xh = (xc[i] - mean) * r;
                    let gg = gc[i] * gmc[i];
                    sa[i] += gg;
                    sb[i] = M::mad(gg, xh, sb[i]);
                    dgc[i] = M::mad(gc[i], xh, dgc[i]);
                    dbc[i] += gc[i];
                }
            }
            let (mut a, mut b) = (sa.iter().sum::<f32>(), sb.iter().sum::<f32>());
            for j in full..d {
                let xh = (xr[j] - mean) * r;
                let gg = gr[j] * gamma[j];
                a += gg;
                b = M::mad(gg, xh, b);
                dgamma[j] = M::mad(gr[j], xh, dgamma[j]);
                dbeta[j] += gr[j];
            }
            let (a, b) = (a * inv_d, b * inv_d);
            for ((&v, gv), &gm) in xr.iter().zip(gr.iter_mut()).zip(gamma) {
                let xh = (v - mean) * r;
                *gv = r * (*gv * gm - a - xh * b);
            }
        }
    }
}

#[cfg(test)]
multiversion! {
    /// `x = exp(x)`, in place.
    pub fn exp_inplace(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = exp1::<M>(*v);
        }
    }
}

#[cfg(test)]
multiversion! {
    /// `x = erf(x)`, in place.
    pub fn erf_inplace(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = erf1::<M>(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
            .collect()
    }

    #[test]
    fn exp_matches_libm() {
        let xs = grid(-87.0, 88.0, 200_001);
        let mut y = xs.clone();
        exp_inplace(&mut y);
        let worst = xs
            .iter()
            .zip(&y)
            .map(|(&x, &y)| {
                let r = (x as f64).exp();
                ((y as f64 - r) / r).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst < 5e-7, "relative error {worst}");
        let mut z = vec![-200.0f32, -88.0, 0.0, f32::NEG_INFINITY];
        exp_inplace(&mut z);
        assert!(z[0] >= 0.0 && z[0] < 1e-37 && z[1] < 1e-37, "{z:?}");
        assert_eq!(z[2], 1.0);
        assert!(z[3] >= 0.0 && z[3] < 1e-37);
    }

    #[test]
    fn erf_and_gelu_match_libm() {
        let xs = grid(-8.0, 8.0, 160_001);
        let mut y = xs.clone();
        erf_inplace(&mut y);
        let worst = xs
            .iter()
            .zip(&y)
            .map(|(&x, &y)| (y as f64 - libm_erf(x as f64)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 5e-7, "erf absolute error {worst}");
        let mut g = vec![0.0f32; xs.len()];
        gelu_into(&xs, &mut g);
        let worst = xs
            .iter()
            .zip(&g)
            .map(|(&x, &g)| {
                let x = x as f64;
                let r = 0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2));
                (g as f64 - r).abs() / (1.0 + r.abs())
            })
            .fold(0.0, f64::max);
        // A few f32 ulps of the result (x (1 + erf) rounds at |x| ~ 8).
        assert!(worst < 2e-6, "gelu error {worst}");
    }

    #[test]
    fn biased_gelu_is_the_gelu_of_the_sum() {
        // Rows of 7 (a vector's worth of rows and a tail) with a bias.
        let bias = [0.5f32, -1.25, 0.0, 2.0, -3.5, 0.125, 1.0];
        let x: Vec<f32> = grid(-8.0, 8.0, 7 * 2_001);
        let sums: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| v + bias[i % 7])
            .collect();
        let mut want = vec![0.0f32; x.len()];
        gelu_into(&sums, &mut want);
        let mut got = x.clone();
        gelu_bias_rows(&mut got, &bias);
        assert_eq!(got, want);
        // Nothing to add: an empty bias leaves the rows alone.
        let mut same = vec![1.0f32, -2.0];
        gelu_bias_rows(&mut same, &[]);
        assert_eq!(same, [1.0, -2.0]);
    }

    #[test]
    fn gelu_gradient_matches_the_derivative() {
        let xs = grid(-9.0, 9.0, 36_001);
        let g: Vec<f32> = xs.iter().map(|&x| 0.5 + x.abs()).collect();
        let mut a = g.clone();
        gelu_backward_inplace(&xs, &mut a);
        let mut b = vec![0.0f32; xs.len()];
        gelu_backward_into(&xs, &g, &mut b);
        assert_eq!(a, b);
        for ((&x, &g), &d) in xs.iter().zip(&g).zip(&a) {
            let x = x as f64;
            let cdf = 0.5 * (1.0 + libm_erf(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let r = g as f64 * (cdf + x * pdf);
            assert!(
                (d as f64 - r).abs() < 2e-6 * (1.0 + r.abs()),
                "x={x}: {d} vs {r}"
            );
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_definition() {
        for n in [1usize, 15, 16, 17, 321] {
            let row: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 1.7).collect();
            let mut s = row.clone();
            softmax_row(&mut s);
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let z: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            for (&v, &p) in row.iter().zip(&s) {
                let r = (v as f64 - max).exp() / z;
                assert!((p as f64 - r).abs() < 1e-6 * (1.0 + r), "n={n}: {p} vs {r}");
            }
        }
    }

    #[test]
    fn bias_norm_bias_adds_normalises_and_adds_again() {
        for d in [1usize, 7, 16, 133] {
            let rows = 4;
            let x: Vec<f32> = (0..rows * d)
                .map(|i| ((i * 29 % 13) as f32 - 6.0) * 0.7)
                .collect();
            let before: Vec<f32> = (0..d).map(|i| 0.3 - i as f32 * 0.05).collect();
            let after: Vec<f32> = (0..d).map(|i| i as f32 * 0.11 - 1.0).collect();
            let gamma: Vec<f32> = (0..d).map(|i| 1.5 - i as f32 * 0.01).collect();
            let beta: Vec<f32> = (0..d).map(|i| i as f32 * 0.03).collect();
            // The three steps one by one.
            let mut x1 = x.clone();
            for (i, v) in x1.iter_mut().enumerate() {
                *v += before[i % d];
            }
            let mut want = vec![0.0f32; rows * d];
            layer_norm_rows(&x1, &gamma, &beta, 1e-5, &mut want);
            let want_x: Vec<f32> = x1
                .iter()
                .enumerate()
                .map(|(i, &v)| v + after[i % d])
                .collect();
            let (mut got_x, mut got) = (x.clone(), vec![0.0f32; rows * d]);
            bias_norm_bias_rows(&mut got_x, &before, &after, &gamma, &beta, 1e-5, &mut got);
            assert_eq!((got_x, got), (want_x, want), "d={d}");
        }
    }

    #[test]
    fn layer_norm_rows_match_the_definition() {
        for d in [1usize, 7, 16, 128, 133] {
            let rows = 3;
            let x: Vec<f32> = (0..rows * d)
                .map(|i| ((i * 53 % 17) as f32 - 8.0) * 0.9 + 40.0)
                .collect();
            let gamma: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.01).collect();
            let beta: Vec<f32> = (0..d).map(|i| i as f32 * -0.02).collect();
            let mut out = vec![0.0f32; rows * d];
            layer_norm_rows(&x, &gamma, &beta, 1e-5, &mut out);
            for r in 0..rows {
                let xr = &x[r * d..][..d];
                let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
                let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                for i in 0..d {
                    let want = (xr[i] as f64 - mean) / (var + 1e-5).sqrt() * gamma[i] as f64
                        + beta[i] as f64;
                    let got = out[r * d + i] as f64;
                    assert!(
                        (got - want).abs() < 2e-5 * (1.0 + want.abs()),
                        "d={d} r={r} i={i}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// erf in f64 by its Taylor series (|x| < 3) and continued fraction (beyond): a reference
    /// that does not share the approximation under test.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut k = 0.0;
            while term.abs() > 1e-17 * sum.abs() {
                k += 1.0;
                term *= -a * a / k;
                sum += term / (2.0 * k + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        v.copysign(x)
    }
}
