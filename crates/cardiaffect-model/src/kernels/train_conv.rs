//! The signal encoder's convolutions for training on flex, channels-last, forward and
//! backward.
//!
//! Burn's path runs each `Conv1d` channels-first as a 3-D convolution (an expanded copy of the
//! input, im2col, a product), transposes around every LayerNorm over channels, and in the backward
//! runs a transposed convolution for the input's gradient and another im2col for the weight's: a
//! large share of a pre-training step, mostly in gemm's narrow edge kernels (measured:
//! BENCHMARKS.md). Here, as at inference ([`super::embed`]), activations stay `[B, L, C]`: with the
//! input padded by `p = k / 2` zero rows either side, output row `t` of a convolution with kernel
//! `k` and stride `s` reads padded rows `t s .. t s + k`, which are `k C_in` consecutive floats.
//! So, per window, with `X` that strided view `[L_out, k C_in]` (row stride `s C_in`, no copy) and
//! `W` the weight as `[k C_in, C_out]`:
//! - forward: `Y = X W + b`, one product onto bias rows;
//! - weight: `dW = X^T dY`, one product per window (added in window order);
//! - input: tap `j` adds `dY W_j^T` to padded rows `t s + j`, one product per tap writing a
//!   strided view (rows `s C_in` apart, so that no two rows of one product overlap).

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::embed::conv_weight_rows;
use super::gemm::{contiguous, f32_slice, product, product_acc, sum_in_order, Mat, MatMut};
use super::workspace::Workspace;

/// Sizes of one convolution: windows, input rows and channels, kernel, stride, output
/// channels and rows.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    l: usize,
    c_in: usize,
    k: usize,
    s: usize,
    c_out: usize,
    l_out: usize,
}

impl Dims {
    /// Padding either side.
    fn pad(&self) -> usize {
        self.k / 2
    }

    /// Padded input rows per window.
    fn rows(&self) -> usize {
        self.l + 2 * self.pad()
    }

    /// From the input `[B, L, C_in]` and weight `[C_out, C_in, k]`; panics naming the sizes
    /// when they do not fit (the caller builds them from one model).
    fn new(x: &[usize], w: &[usize], stride: usize) -> Dims {
        assert!(
            x.len() == 3 && w.len() == 3 && x[2] == w[1] && w[2] % 2 == 1,
            "conv1d_train: input {x:?} and weight {w:?}, expected [B, L, C_in] and [C_out, C_in, odd k]"
        );
        let (k, s) = (w[2], stride.max(1));
        let rows = x[1] + 2 * (k / 2);
        Dims {
            b: x[0],
            l: x[1],
            c_in: x[2],
            k,
            s,
            c_out: w[0],
            // An input shorter than the kernel (even padded) has no output rows.
            l_out: if rows >= k { (rows - k) / s + 1 } else { 0 },
        }
    }
}

/// Forward: `x` `[B, L, C_in]`, weight `[C_out, C_in, k]`, bias `[C_out]` -> the output `[B,
/// L_out, C_out]` and the padded input `[B, L + 2p, C_in]` (what the backward reads).
pub(super) fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    stride: usize,
) -> (FlexTensor, FlexTensor) {
    let [x, w, bias] = [x, weight, bias].map(|t| t.to_contiguous());
    let dims = Dims::new(x.layout().shape(), w.layout().shape(), stride);
    let Dims {
        b,
        l,
        c_in,
        k,
        s,
        c_out,
        l_out,
    } = dims;
    let (p, rows) = (dims.pad(), dims.rows());
    let bs = f32_slice(&bias);
    assert_eq!(bs.len(), c_out, "conv1d_train: bias of {c_out} channels");
    let mut padded = vec![0.0f32; b * rows * c_in];
    if l * c_in > 0 {
        padded
            .par_chunks_mut(rows * c_in)
            .zip(f32_slice(&x).par_chunks(l * c_in))
            .for_each(|(dst, src)| dst[p * c_in..][..l * c_in].copy_from_slice(src));
    }
    let wr = conv_weight_rows(f32_slice(&w), c_out, c_in, k);
    let mut out = vec![0.0f32; b * l_out * c_out];
    if l_out * c_out > 0 {
        out.par_chunks_mut(l_out * c_out)
            .zip(padded.par_chunks(rows * c_in))
            .for_each(|(o, xp)| {
                for row in o.chunks_exact_mut(c_out) {
                    row.copy_from_slice(bs);
                }
                // `o` [l_out, c_out] += `xp`'s rows `t s .. t s + k` for t < l_out, read as
                // [l_out, k c_in] at row stride s c_in, times `wr` [k c_in, c_out].
                product_acc(
                    MatMut::new(o, l_out, c_out, c_out),
                    Mat::new(xp, l_out, k * c_in, s * c_in),
                    Mat::new(&wr, k * c_in, c_out, c_out),
                    1.0,
                );
            });
    }
    (
        contiguous(out, [b, l_out, c_out]),
        contiguous(padded, [b, rows, c_in]),
    )
}

/// Backward: from the padded input of [`forward`], the weight and the output's gradient `[B,
/// L_out, C_out]`, the gradients of the input `[B, L, C_in]` (empty `[0]` unless
/// `input_grad`), the weight `[C_out, C_in, k]` and the bias `[C_out]`.
pub(super) fn backward(
    padded: FlexTensor,
    weight: FlexTensor,
    grad: FlexTensor,
    stride: usize,
    input_grad: bool,
    ws: &Workspace,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let [padded, w, grad] = [padded, weight, grad].map(|t| t.to_contiguous());
    let pshape = padded.layout().shape().to_vec();
    let wshape = w.layout().shape().to_vec();
    let k = wshape.get(2).copied().unwrap_or(1);
    let l = pshape.get(1).map_or(0, |r| r.saturating_sub(2 * (k / 2)));
    let dims = Dims::new(&[pshape[0], l, pshape[2]], &wshape, stride);
    let (b, c_in, s, c_out, l_out) = (dims.b, dims.c_in, dims.s, dims.c_out, dims.l_out);
    let (p, rows) = (dims.pad(), dims.rows());
    let (xs, gs) = (f32_slice(&padded), f32_slice(&grad));
    assert_eq!(
        gs.len(),
        b * l_out * c_out,
        "conv1d_train backward: gradient of [{b}, {l_out}, {c_out}] expected"
    );
    let kc = k * c_in;
    // Per window: dW as [k C_in, C_out], then the bias' gradient; added in window order below
    // so that the sums do not depend on which thread ran which window.
    let per_window: Vec<Vec<f32>> = (0..b)
        .into_par_iter()
        .map(|i| {
            let (xp, g) = (
                &xs[i * rows * c_in..],
                &gs[i * l_out * c_out..][..l_out * c_out],
            );
            let mut acc = vec![0.0f32; kc * c_out + c_out];
            // acc's [k c_in, c_out] = X^T g: X the [l_out, k c_in] view of this window's padded
            // rows (see `forward`), read transposed; `g` is [l_out, c_out].
            product(
                MatMut::new(&mut acc, kc, c_out, c_out),
                Mat::new(xp, l_out, kc, s * c_in).t(),
                Mat::new(g, l_out, c_out, c_out),
                1.0,
            );
            let db = &mut acc[kc * c_out..];
            for row in g.chunks_exact(c_out) {
                for (d, &v) in db.iter_mut().zip(row) {
                    *d += v;
                }
            }
            acc
        })
        .collect();
    let mut sums = sum_in_order(&per_window, kc * c_out + c_out);
    let dbias = sums.split_off(kc * c_out);
    // [k C_in, C_out] (row j C_in + c) -> [C_out, C_in, k].
    let mut dw = vec![0.0f32; c_out * c_in * k];
    for j in 0..k {
        for c in 0..c_in {
            for o in 0..c_out {
                dw[(o * c_in + c) * k + j] = sums[(j * c_in + c) * c_out + o];
            }
        }
    }
    let dx = if input_grad {
        let wr = conv_weight_rows(f32_slice(&w), c_out, c_in, k);
        let mut dx = vec![0.0f32; b * l * c_in];
        if l * c_in > 0 {
            dx.par_chunks_mut(l * c_in)
                .enumerate()
                .for_each(|(i, out)| {
                    let g = &gs[i * l_out * c_out..][..l_out * c_out];
                    ws.with_scratch(rows * c_in, |dxp| {
                        dxp.fill(0.0);
                        for j in 0..k {
                            // Tap j adds g [l_out, c_out] W_j^T to padded rows t s + j (t <
                            // l_out) of [rows, c_in], s c_in apart (so no two rows overlap);
                            // W_j is rows j c_in .. (j + 1) c_in of `wr`, read transposed.
                            product_acc(
                                MatMut::at(dxp, j * c_in, l_out, c_in, s * c_in),
                                Mat::new(g, l_out, c_out, c_out),
                                Mat::at(&wr, j * c_in * c_out, c_in, c_out, c_out).t(),
                                1.0,
                            );
                        }
                        out.copy_from_slice(&dxp[p * c_in..][..l * c_in]);
                    })
                });
        }
        contiguous(dx, [b, l, c_in])
    } else {
        contiguous(Vec::new(), [0])
    };
    (
        dx,
        contiguous(dw, [c_out, c_in, k]),
        contiguous(dbias, [c_out]),
    )
}
