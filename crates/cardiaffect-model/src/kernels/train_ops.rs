//! Training's element-wise ops on flex, recorded on autodiff with in-tree backwards
//! ([`super::autodiff`]):
//! - dropout, whose backward redraws the mask from its seed: Burn's way stores an f32 mask
//!   per element and runs two broadcasting multiplications;
//! - LayerNorm, forward and backward in one pass over the rows each: Burn's default records
//!   about eight ops (mean, centring, square, mean, add, square root, division, scale, shift),
//!   each with its own output and backward;
//! - linear layers ([`super::gemm`]), the output starting from the bias rows and the backward
//!   reading the transposes through strides;
//! - the signal encoder's convolutions, channels-last ([`super::train_conv`]).

use burn::backend::tensor::FloatTensor;
use burn::backend::Backend;
use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use burn_flex::FlexTensor;
use cardiaffect_signal::Rng;
use rayon::prelude::*;
use std::fmt::Debug;

use super::fastmath;
use super::gemm::{contiguous, f32_slice, sum_in_order, update};

/// Elements per task of a dropout mask.
pub(crate) const DROPOUT_CHUNK: usize = 1 << 15;

/// `values` times the dropout mask of (`seed`, `site`) at rate `p` (0, or `1 / (1 - p)`), in
/// place, over the threads; with `src`, `values` is first overwritten by `src`, chunk by chunk
/// in the same task (one pass instead of a copy and a pass). Each chunk's mask is a hash of
/// its key and the element's index ([`fastmath::dropout_row`], eight lanes at a time), so it
/// is the same whichever thread draws it, in the forward and in the backward. (A serial
/// generator per chunk, as before, was slower; measured: BENCHMARKS.md.) `first` is the index of
/// `values[0]` in a larger tensor whose mask this part repeats (data-parallel training: a
/// process's rows of the step's batch); chunks are counted from that tensor's start.
pub(crate) fn apply_dropout_mask(
    values: &mut [f32],
    src: Option<&[f32]>,
    p: f64,
    seed: u64,
    site: u64,
    first: usize,
) {
    let threshold = (p * 4294967296.0).min(u32::MAX as f64) as u32;
    let scale = (1.0 / (1.0 - p)) as f32;
    let base = Rng::new(seed).fork(site);
    // The part of a chunk before the first whole one (none when `first` is a chunk boundary).
    let head = ((DROPOUT_CHUNK - first % DROPOUT_CHUNK) % DROPOUT_CHUNK).min(values.len());
    let (head_values, rest) = values.split_at_mut(head);
    if head > 0 {
        if let Some(src) = src {
            head_values.copy_from_slice(&src[..head]);
        }
        let key = base.fork((first / DROPOUT_CHUNK) as u64).next_u64() as u32;
        let at = (first % DROPOUT_CHUNK) as u32;
        fastmath::dropout_row(head_values, key, at, threshold, scale);
    }
    let chunk0 = (first + head) / DROPOUT_CHUNK;
    rest.par_chunks_mut(DROPOUT_CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            if let Some(src) = src {
                chunk.copy_from_slice(&src[head + c * DROPOUT_CHUNK..][..chunk.len()]);
            }
            let key = base.fork((chunk0 + c) as u64).next_u64() as u32;
            fastmath::dropout_row(chunk, key, 0, threshold, scale)
        });
}

/// Rows of LayerNorm per parallel task.
const NORM_ROWS: usize = 64;

/// `x` times the dropout mask of (`seed`, `site`) at rate `p`, its first element at `first`
/// of the whole tensor (see [`apply_dropout_mask`]).
pub(super) fn dropout(x: FlexTensor, p: f64, seed: u64, site: u64, first: u64) -> FlexTensor {
    update(x, |v, src| {
        apply_dropout_mask(v, src, p, seed, site, first as usize)
    })
    .0
}

/// LayerNorm over the last dimension and each row's mean and `1 / sqrt(var + eps)`,
/// `[rows, 2]` (what the backward reads).
pub(super) fn layer_norm_stats(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    eps: f64,
) -> (FlexTensor, FlexTensor) {
    let [x, gamma, beta] = [x, gamma, beta].map(|t| t.to_contiguous());
    let shape = x.layout().shape().clone();
    let (xs, gs, bs) = (f32_slice(&x), f32_slice(&gamma), f32_slice(&beta));
    let d = gs.len();
    assert!(
        d > 0 && shape.num_dims() > 0 && shape[shape.num_dims() - 1] == d && bs.len() == d,
        "layer_norm_train: input {shape:?}, gamma {d} and beta {} (expected [.., d], [d], [d])",
        bs.len()
    );
    let rows = xs.len() / d;
    let mut out = vec![0.0f32; xs.len()];
    let mut stats = vec![0.0f32; 2 * rows];
    out.par_chunks_mut(NORM_ROWS * d)
        .zip(stats.par_chunks_mut(NORM_ROWS * 2))
        .zip(xs.par_chunks(NORM_ROWS * d))
        .for_each(|((o, st), xr)| fastmath::layer_norm_rows_stats(xr, gs, bs, eps as f32, o, st));
    (contiguous(out, shape), contiguous(stats, [rows, 2]))
}

/// The gradients of LayerNorm with respect to `x`, `gamma` and `beta` given the output's
/// `grad`, from the statistics [`layer_norm_stats`] kept.
pub(super) fn layer_norm_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    stats: FlexTensor,
    grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (x, gamma) = (x.to_contiguous(), gamma.to_contiguous());
    let (xs, gs, st) = (f32_slice(&x), f32_slice(&gamma), f32_slice(&stats));
    let d = gs.len();
    let n = grad.layout().num_elements();
    assert!(
        d > 0 && xs.len() == n && st.len() * d == 2 * xs.len(),
        "layer_norm_backward: input of {} elements, gradient of {n}, {} statistics for width {d}",
        xs.len(),
        st.len()
    );
    // The input's gradient over the output's; per task partial sums of the parameters'
    // gradients, added in task order.
    let (dx, partial) = update(grad, |g, src| {
        if let Some(src) = src {
            g.copy_from_slice(src);
        }
        g.par_chunks_mut(NORM_ROWS * d)
            .zip(xs.par_chunks(NORM_ROWS * d))
            .zip(st.par_chunks(NORM_ROWS * 2))
            .map(|((g, xr), s)| {
                let mut acc = vec![0.0f32; 2 * d];
                let (dg, db) = acc.split_at_mut(d);
                fastmath::layer_norm_backward_rows(xr, gs, s, g, dg, db);
                acc
            })
            .collect::<Vec<_>>()
    });
    let mut sums = sum_in_order(&partial, 2 * d);
    let dbeta = sums.split_off(d);
    (dx, contiguous(sums, [d]), contiguous(dbeta, [d]))
}

/// A recorded op's backward: the op's parameters and a plain function from them, the state
/// its forward kept and the output's gradient to the gradients of its `N` inputs (told
/// whether the first input needs one; the others are parameters).
///
/// Burn's autodiff wants a type implementing [`Backward`] per op; each op here would write the
/// same struct, impl and gradient bookkeeping around one kernel call. This one generic type
/// (with [`record`]) is that ceremony, written once for every recorded op
/// ([`super::autodiff`]): an op states only its kernels.
struct Recorded<B: Backend, P, S, const N: usize> {
    params: P,
    backward: fn(P, S, FloatTensor<B>, bool) -> [FloatTensor<B>; N],
}

impl<B: Backend, P: Debug, S, const N: usize> Debug for Recorded<B, P, S, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorded")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl<B, P, S, const N: usize> Backward<B, N> for Recorded<B, P, S, N>
where
    B: Backend,
    P: Debug + Send + 'static,
    S: Clone + Send + Debug + 'static,
{
    type State = S;

    fn backward(self, ops: Ops<S, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        // Only a tracked op runs this, so at least one input needs a gradient.
        let grad = grads.consume::<B>(&ops.node);
        let input_grad = ops.parents[0].is_some();
        let inputs = (self.backward)(self.params, ops.state, grad, input_grad);
        for (node, g) in ops.parents.into_iter().zip(inputs) {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// Records one op on the autodiff backend: `tracked` runs the forward on the inner backend
/// when some input needs a gradient, giving the output and the state that `backward` (with
/// `params`, see [`Recorded`]) reads; `untracked` runs it when none does.
pub(super) fn record<B, C, P, S, const N: usize>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    params: P,
    backward: fn(P, S, FloatTensor<B>, bool) -> [FloatTensor<B>; N],
    tracked: impl FnOnce([FloatTensor<B>; N]) -> (FloatTensor<B>, S),
    untracked: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    P: Debug + Send + 'static,
    S: Clone + Send + Debug + 'static,
{
    let guards = inputs.each_ref().map(|x| x.node());
    let inputs = inputs.map(|x| x.into_primitive());
    let op = Recorded { params, backward };
    match op.prepare::<C>(guards).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (out, state) = tracked(inputs);
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(untracked(inputs)),
    }
}
