//! Attention: one head (`softmax(scale q k^T) v` through gemm strides, vectorised softmax) and
//! the packed multi-head op over a `[B, T, 3d]` projection.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::fastmath;
use super::gemm::{contiguous, f32_slice, product_ptr, with_scratch, SendPtr};

/// One head of attention: `out = softmax(scale q k^T) v` for `n` query rows against `t`
/// key/value rows, each `dk` wide. `qkv` gives the three row pointers and their common row
/// stride, `out` its pointer and row stride; `scratch` holds `[n, t]` scores and `n` sums.
/// The probabilities stay unnormalised through the second product and each output row is
/// divided by its sum after it: `dk` multiplies a row instead of `t` (less softmax time;
/// measured: BENCHMARKS.md).
///
/// # Safety
/// `q` must point at `n` rows and `k`, `v` at `t` rows of `dk` elements at the given stride;
/// `out` at `n` rows of `dk` elements at its stride that nobody else reads or writes meanwhile;
/// `scratch` must hold at least `n * (t + 1)` elements.
pub(super) unsafe fn attend_head(
    (n, t, dk): (usize, usize, usize),
    (q, k, v, in_rs): (*const f32, *const f32, *const f32, usize),
    scale: f32,
    scratch: &mut [f32],
    (out, out_rs): (*mut f32, usize),
) {
    let (scores, inv) = scratch[..n * (t + 1)].split_at_mut(n * t);
    // SAFETY: `q` and `k` as this function's contract has them; `scores` is n * t elements of
    // a `&mut` slice (split off above, which checked the length).
    unsafe { qk_scores((n, t, dk), (q, k, in_rs), scale, scores) };
    for (row, s) in scores.chunks_exact_mut(t).zip(inv.iter_mut()) {
        *s = 1.0 / fastmath::exp_shifted_row(row);
    }
    // SAFETY: `scores` is [n, t]; `v` and `out` as this function's contract has them.
    unsafe { pv((n, t, dk), scores, (v, in_rs), (out, out_rs)) };
    for (i, &s) in inv.iter().enumerate() {
        // SAFETY: row i < n of `out` holds `dk` elements at out + i out_rs that nobody else
        // reads or writes meanwhile (the caller's contract), so one `&mut` to them is unique.
        let row = unsafe { std::slice::from_raw_parts_mut(out.add(i * out_rs), dk) };
        for o in row {
            *o *= s;
        }
    }
}

/// [`attend_head`] with `post(i, row)` applied to each row `i` of the probabilities after the
/// softmax (training's attention dropout).
///
/// # Safety
/// As [`attend_head`], with `scores` (in place of `scratch`) at least `n * t` elements long.
pub(super) unsafe fn attend_head_with(
    (n, t, dk): (usize, usize, usize),
    (q, k, v, in_rs): (*const f32, *const f32, *const f32, usize),
    scale: f32,
    scores: &mut [f32],
    (out, out_rs): (*mut f32, usize),
    post: impl Fn(usize, &mut [f32]),
) {
    debug_assert!(scores.len() >= n * t);
    // SAFETY: the pointers and `scores`' length are this function's contract.
    unsafe { qk_scores((n, t, dk), (q, k, in_rs), scale, scores) };
    for (i, row) in scores[..n * t].chunks_exact_mut(t).enumerate() {
        fastmath::softmax_row(row);
        post(i, row);
    }
    // SAFETY: as above; `scores` now holds the [n, t] probabilities.
    unsafe { pv((n, t, dk), scores, (v, in_rs), (out, out_rs)) };
}

/// `scores[n, t] = scale q k^T` (`k` read transposed through its strides).
///
/// # Safety
/// As [`attend_head`]; `scores` holds at least `n * t` elements.
unsafe fn qk_scores(
    (n, t, dk): (usize, usize, usize),
    (q, k, in_rs): (*const f32, *const f32, usize),
    scale: f32,
    scores: &mut [f32],
) {
    // SAFETY: dst `scores` [n, t] (row stride t, at least n t long: the contract); lhs `q`, n
    // rows of dk at stride in_rs; rhs k^T [dk, t], column stride in_rs: the t rows of `k`.
    // `scores` is a `&mut` slice, so it overlaps none of the caller's rows.
    unsafe {
        product_ptr(
            (n, t, dk),
            (scores.as_mut_ptr(), 1, t),
            (q, 1, in_rs),
            (k, in_rs, 1),
            scale,
        )
    };
}

/// `out[n, dk] = scores[n, t] v[t, dk]`.
///
/// # Safety
/// As [`attend_head`]; `scores` holds at least `n * t` elements.
unsafe fn pv(
    (n, t, dk): (usize, usize, usize),
    scores: &[f32],
    (v, in_rs): (*const f32, usize),
    (out, out_rs): (*mut f32, usize),
) {
    // SAFETY: dst `out`, n rows of dk at stride out_rs, nobody else's (the contract); lhs
    // `scores` [n, t], at least n t long; rhs `v`, t rows of dk at stride in_rs.
    unsafe {
        product_ptr(
            (n, dk, t),
            (out, 1, out_rs),
            (scores.as_ptr(), 1, t),
            (v, 1, in_rs),
            1.0,
        )
    };
}

/// Sizes of a packed `[B, T, 3d]` projection with `n_heads` heads: (b, t, d, dk).
pub(super) fn packed_dims(qkv: &FlexTensor, n_heads: usize) -> (usize, usize, usize, usize) {
    let shape = qkv.layout().shape();
    let (b, t, d3) = (shape[0], shape[1], shape[2]);
    let d = d3 / 3;
    assert!(
        d3 % 3 == 0 && n_heads > 0 && d % n_heads == 0,
        "packed_attention: width {d3} is not 3 x a multiple of {n_heads} heads"
    );
    (b, t, d, d / n_heads)
}

/// Runs `f(task)` for every (batch item, head) task, in parallel where there is more than one.
pub(super) fn each_task(tasks: usize, threads: usize, f: impl Fn(usize) + Sync + Send) {
    if tasks > 1 && threads > 1 {
        (0..tasks).into_par_iter().for_each(f);
    } else {
        (0..tasks).for_each(f);
    }
}

/// All heads of scaled dot-product attention from the packed QKV projection.
pub(super) fn packed_attention(qkv: FlexTensor, n_heads: usize, threads: usize) -> FlexTensor {
    packed_attention_with(qkv, n_heads, threads, |_, _, _| {})
}

/// [`packed_attention`] with `post(task, i, row)` applied to row `i` of the probabilities of
/// head task `task` (batch item `task / n_heads`, head `task % n_heads`) after the softmax.
pub(super) fn packed_attention_with(
    qkv: FlexTensor,
    n_heads: usize,
    threads: usize,
    post: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> FlexTensor {
    let qkv = qkv.to_contiguous();
    let (b, t, d, dk) = packed_dims(&qkv, n_heads);
    let d3 = 3 * d;
    let src = f32_slice(&qkv);
    let mut out = vec![0.0f32; b * t * d];
    let scale = 1.0 / (dk as f32).sqrt();
    let dst = SendPtr(out.as_mut_ptr());
    each_task(b * n_heads, threads, |task| {
        let (bi, h) = (task / n_heads, task % n_heads);
        // Row r of batch item bi: q at r * 3d, k at r * 3d + d, v at r * 3d + 2d.
        let q = bi * t * d3 + h * dk;
        let (k, v) = (q + d, q + 2 * d);
        let o = bi * t * d + h * dk;
        // Score matrices (T x T, 412 kB at T = 321) live in the per-thread scratch.
        with_scratch(t * t, |scores| {
            // SAFETY: for the given sizes and strides every pointer below stays inside `src`
            // ([B, T, 3d]), `scores` ([T, T]) and `out` ([B, T, d]); the output columns of
            // (bi, h) belong to this task alone.
            unsafe {
                let p = src.as_ptr();
                attend_head_with(
                    (t, t, dk),
                    (p.add(q), p.add(k), p.add(v), d3),
                    scale,
                    scores,
                    (dst.ptr().add(o), d),
                    |i, row| post(task, i, row),
                );
            }
        })
    });
    contiguous(out, [b, t, d])
}
