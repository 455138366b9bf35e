//! Attention: one head (`softmax(scale q k^T) v` through gemm strides, vectorised softmax) and
//! the packed multi-head op over a `[B, T, 3d]` projection.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::fastmath;
use super::gemm::{contiguous, f32_slice, product, product_to_ptr, Mat, MatMut, SendPtr};
use super::workspace::Workspace;

/// One head of attention: `out = softmax(scale q k^T) v` for the `n` query rows of `q`
/// against the `t` key/value rows of `k` and `v`, each `dk` wide (`out` `[n, dk]`); `scratch`
/// holds `[n, t]` scores and `n` sums. The probabilities stay unnormalised through the second
/// product and each output row is divided by its sum after it: `dk` multiplies a row instead
/// of `t` (less softmax time; measured: BENCHMARKS.md).
pub(super) fn attend_head(
    (q, k, v): (Mat<'_>, Mat<'_>, Mat<'_>),
    scale: f32,
    scratch: &mut [f32],
    mut out: MatMut<'_>,
) {
    let (n, t) = (q.rows(), k.rows());
    let (scores, inv) = scratch[..n * (t + 1)].split_at_mut(n * t);
    qk_scores(q, k, scale, scores);
    for (row, s) in scores.chunks_exact_mut(t).zip(inv.iter_mut()) {
        *s = 1.0 / fastmath::exp_shifted_row(row);
    }
    // out[n, dk] = scores[n, t] v[t, dk].
    product(out.reborrow(), Mat::new(scores, n, t, t), v, 1.0);
    for (i, &s) in inv.iter().enumerate() {
        for o in out.row_mut(i) {
            *o *= s;
        }
    }
}

/// [`attend_head`] with `post(i, row)` applied to each row `i` of the probabilities after the
/// softmax (training's attention dropout), into `out`, `n` rows of `dk` at row stride
/// `out_rs`: columns of a buffer whose other columns other tasks write meanwhile (other
/// heads), so a pointer rather than a `&mut` slice. `scores` holds at least `n * t` elements.
///
/// # Safety
/// `out`'s `n` rows of `dk` elements at its stride must lie inside one allocation that
/// nobody else reads or writes there meanwhile.
pub(super) unsafe fn attend_head_with(
    (q, k, v): (Mat<'_>, Mat<'_>, Mat<'_>),
    scale: f32,
    scores: &mut [f32],
    out: (*mut f32, usize),
    post: impl Fn(usize, &mut [f32]),
) {
    let (n, t) = (q.rows(), k.rows());
    qk_scores(q, k, scale, scores);
    for (i, row) in scores[..n * t].chunks_exact_mut(t).enumerate() {
        fastmath::softmax_row(row);
        post(i, row);
    }
    // SAFETY: `out` as this function's contract has it, `[n, dk]` (the product's shape); it
    // overlaps neither `scores` (a `&mut` slice) nor `v` (read through a shared slice).
    unsafe { product_to_ptr(out, Mat::new(scores, n, t, t), v, 1.0) };
}

/// `scores[n, t] = scale q k^T` (`k` read transposed through its strides).
fn qk_scores(q: Mat<'_>, k: Mat<'_>, scale: f32, scores: &mut [f32]) {
    let (n, t) = (q.rows(), k.rows());
    product(MatMut::new(scores, n, t, t), q, k.t(), scale);
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
pub(super) fn packed_attention(
    qkv: FlexTensor,
    n_heads: usize,
    threads: usize,
    ws: &Workspace,
) -> FlexTensor {
    packed_attention_with(qkv, n_heads, threads, ws, |_, _, _| {})
}

/// [`packed_attention`] with `post(task, i, row)` applied to row `i` of the probabilities of
/// head task `task` (batch item `task / n_heads`, head `task % n_heads`) after the softmax.
pub(super) fn packed_attention_with(
    qkv: FlexTensor,
    n_heads: usize,
    threads: usize,
    ws: &Workspace,
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
        let q0 = bi * t * d3 + h * dk;
        let qkv = [0, d, 2 * d].map(|c| Mat::at(src, q0 + c, t, dk, d3));
        let o = bi * t * d + h * dk;
        // Score matrices (T x T, 412 kB at T = 321) live in the thread's scratch.
        ws.with_scratch(t * t, |scores| {
            // SAFETY: the output columns of (bi, h), t rows of dk from `o` at stride d, lie
            // inside `out` ([B, T, d]), which nobody else reads meanwhile and whose columns
            // of (bi, h) belong to this task alone (they cannot be a `&mut` slice: other
            // heads' columns lie between their rows).
            unsafe {
                attend_head_with(
                    qkv.into(),
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
