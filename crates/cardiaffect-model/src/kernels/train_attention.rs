//! Attention for training on flex: the packed multi-head op with attention dropout, forward
//! and backward, recorded as one op on the autodiff backend.
//!
//! Burn's autodiff runs attention as its fallback (head split copies, `q k^T`, a softmax of
//! five elementwise ops, dropout as a mask tensor, `p v`, merge copies), each op recorded and
//! its `[B, H, T, T]` intermediates (53 MB each for the default model at batch 32) kept for
//! the backward. Here the forward keeps only its input (the packed QKV projection) and the
//! backward recomputes each head's probabilities in a per-thread `[T, T]` scratch
//! (flash-attention's trade: one more product per head instead of the stored tensors), with
//! the dropout mask drawn again from the same seeded streams. Per head, with `P` the
//! probabilities, `M` the dropout mask (0 or `1/(1-p)`) and `dO` the incoming gradient:
//! `dV = (P∘M)^T dO`, `dP = (dO V^T)∘M`, `dS = P∘(dP - rowsum(dP∘P))`,
//! `dQ = scale dS K`, `dK = scale dS^T Q`.

use burn_flex::FlexTensor;
use cardiaffect_signal::Rng;

use super::attention::{each_task, packed_attention_with, packed_dims};
use super::fastmath;
use super::gemm::{contiguous, f32_slice, product, product_to_ptr, Mat, MatMut, SendPtr};
use super::workspace::Workspace;

/// The dropout of one step's attention: rate, the seed its masks derive from, and the head
/// task of the input's first window in the step's whole batch (its row times the heads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dropout {
    p: f64,
    seed: u64,
    first_task: usize,
}

impl Dropout {
    pub(crate) fn new(p: f64, seed: u64) -> Dropout {
        Dropout {
            p,
            seed,
            first_task: 0,
        }
    }

    /// The masks of windows `first_row ..` of a batch with `n_heads` heads (a process's share
    /// in data-parallel training draws the whole batch's masks for its rows).
    pub(crate) fn at_row(self, first_row: usize, n_heads: usize) -> Dropout {
        Dropout {
            first_task: first_row * n_heads,
            ..self
        }
    }

    /// Multiplies `row` (row `i` of head task `task`, `[T]`) by its mask: 0 with probability
    /// `p`, else `1 / (1 - p)`. The same (seed, task, row) always draws the same mask,
    /// whichever thread computes it, so the backward redraws what the forward drew.
    fn apply(&self, task: usize, i: usize, row: &mut [f32]) {
        if self.p <= 0.0 {
            return;
        }
        let threshold = (self.p * 4294967296.0).min(u32::MAX as f64) as u32;
        let scale = (1.0 / (1.0 - self.p)) as f32;
        let stream = ((self.first_task + task) * row.len() + i) as u64;
        let key = Rng::new(self.seed).fork(stream).next_u64() as u32;
        fastmath::dropout_row(row, key, 0, threshold, scale);
    }

    /// The mask of every head as a `[B, H, T, T]` tensor's values: what Burn's ops multiply
    /// the attention weights by (other backends, and tests), so that every backend draws the
    /// masks the in-tree op draws.
    pub(crate) fn mask(&self, b: usize, h: usize, t: usize) -> Vec<f32> {
        let mut m = vec![1.0f32; b * h * t * t];
        for (task, head) in m.chunks_exact_mut(t * t).enumerate() {
            for (i, row) in head.chunks_exact_mut(t).enumerate() {
                self.apply(task, i, row);
            }
        }
        m
    }
}

/// `[B, T, 3d]` -> `[B, T, d]`: each head's `dropout(softmax(scale q k^T)) v`.
pub(super) fn forward(
    qkv: FlexTensor,
    n_heads: usize,
    drop: Dropout,
    ws: &Workspace,
) -> FlexTensor {
    // Training splits every op over all threads (no shares of a batch per thread).
    let threads = rayon::current_num_threads();
    packed_attention_with(qkv, n_heads, threads, ws, |task, i, row| {
        drop.apply(task, i, row)
    })
}

/// The gradient with respect to the packed `[B, T, 3d]` input of [`forward`], given the
/// gradient `grad` `[B, T, d]` of its output (see the module doc).
pub(super) fn backward(
    qkv: FlexTensor,
    grad: FlexTensor,
    n_heads: usize,
    drop: Dropout,
    ws: &Workspace,
) -> FlexTensor {
    let qkv = qkv.to_contiguous();
    let grad = grad.to_contiguous();
    let (b, t, d, dk) = packed_dims(&qkv, n_heads);
    let (src, g) = (f32_slice(&qkv), f32_slice(&grad));
    assert_eq!(
        g.len(),
        b * t * d,
        "attention backward: gradient of another shape"
    );
    let mut out = vec![0.0f32; b * t * 3 * d];
    let scale = 1.0 / (dk as f32).sqrt();
    let dst = SendPtr(out.as_mut_ptr());
    let d3 = 3 * d;
    each_task(b * n_heads, rayon::current_num_threads(), |task| {
        let (bi, h) = (task / n_heads, task % n_heads);
        let q = bi * t * d3 + h * dk;
        let (k, v) = (q + d, q + 2 * d);
        let go = bi * t * d + h * dk;
        ws.with_scratch(2 * t * t + t, |scratch| {
            let (pr, rest) = scratch.split_at_mut(t * t);
            let (dp, mask) = rest.split_at_mut(t * t);
            // Views of this head: its q, k and v columns of `src` ([B, T, 3d]) and its columns
            // of the output's gradient `g` ([B, T, d]), t rows each.
            let [sq, sk, sv] = [q, k, v].map(|c| Mat::at(src, c, t, dk, d3));
            let d_out = Mat::at(g, go, t, dk, d);
            // P = softmax(scale Q K^T), recomputed.
            product(MatMut::new(pr, t, t, t), sq, sk.t(), scale);
            // dP' = dO V^T (the gradient of the dropped-out probabilities).
            product(MatMut::new(dp, t, t, t), d_out, sv.t(), 1.0);
            for (i, (p_row, d_row)) in pr
                .chunks_exact_mut(t)
                .zip(dp.chunks_exact_mut(t))
                .enumerate()
            {
                fastmath::softmax_row(p_row);
                // dP = dP' ∘ M; then dS = P ∘ (dP - <dP, P>); then P' = P ∘ M for dV.
                mask.fill(1.0);
                drop.apply(task, i, mask);
                fastmath::softmax_dropout_backward_row(p_row, d_row, mask);
            }
            let (pr, ds) = (Mat::new(pr, t, t, t), Mat::new(dp, t, t, t));
            // SAFETY: the gradient columns of (bi, h) (its q, k and v columns, t rows of dk
            // from `q`, `k` and `v` at stride 3d) lie inside `out` ([B, T, 3d]), which nobody
            // else reads meanwhile, and belong to this task alone (they cannot be `&mut`
            // slices: other heads' columns lie between their rows); the operands are the
            // scratch and the inputs, not `out`.
            unsafe {
                let o = dst.ptr();
                // dV = P'^T dO
                product_to_ptr((o.add(v), d3), pr.t(), d_out, 1.0);
                // dQ = scale dS K
                product_to_ptr((o.add(q), d3), ds, sk, scale);
                // dK = scale dS^T Q
                product_to_ptr((o.add(k), d3), ds.t(), sq, scale);
            }
        })
    });
    contiguous(out, [b, t, d3])
}
