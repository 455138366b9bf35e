//! The Transformer's input at inference in one op per convolution (with its LayerNorm over
//! channels and GELU, the projection to the model width fused into the last) and one for the
//! token convolution with its GELU and residual add, the CLS row and the positions.
//!
//! Burn's path runs each convolution channels-first and transposes around every LayerNorm
//! (about a dozen parallel ops, each waking the workers, and four transposing copies). Here
//! activations stay channels-last, `[L + 2p, C]` per window with `p` zero rows either side:
//! output row `t` of a convolution with kernel `k` and stride `s` reads input rows
//! `t s .. t s + k`, which are `k C` consecutive floats, so the whole convolution is one
//! product of a strided view (row stride `s C`) with the weights as `[k C_in, C_out]`, no
//! im2col copy. Bias, LayerNorm, GELU (and, after the last convolution, the projection) run
//! on each block of rows while it is in cache: one parallel pass per convolution, one for
//! the token convolution. Between the ops the activations are `[B, pad + L + pad, C]`
//! tensors whose padding rows are the next convolution's zeros.

use burn_flex::FlexTensor;

use super::fastmath::{self, multiversion};
use super::gemm::{contiguous, f32_slice, gemm_rows, Mat, MatMut};
use super::layer::{rows_per_task, run_tasks};
use super::workspace::Workspace;

/// One convolution of the signal encoder: its weight as rows `[k, C_in, C_out]`
/// ([`conv_weight_rows`]), bias `[C_out]`, its LayerNorm's `gamma` and `beta` `[C_out]`, the
/// stride (padding `k / 2` either side).
pub(super) struct ConvStage<'a> {
    pub weight_rows: &'a FlexTensor,
    pub bias: &'a FlexTensor,
    pub gamma: &'a FlexTensor,
    pub beta: &'a FlexTensor,
    pub stride: usize,
}

/// `[C_out, C_in, k]` -> `[k C_in, C_out]`: row `j C_in + c` holds tap `j` of input channel `c`.
pub(super) fn conv_weight_rows(w: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; k * c_in * c_out];
    for o in 0..c_out {
        for c in 0..c_in {
            for j in 0..k {
                out[(j * c_in + c) * c_out + o] = w[(o * c_in + c) * k + j];
            }
        }
    }
    out
}

/// Splits `buf` (`b` windows of `before + len + after` rows of `width`) into `(window, first
/// row, rows)` blocks of at most `rb` rows of each window's `len` interior rows, the rows
/// before and after zeroed.
fn interior_blocks(
    buf: &mut [f32],
    (b, len, (before, after), width): (usize, usize, (usize, usize), usize),
    rb: usize,
) -> Vec<(usize, usize, &mut [f32])> {
    let mut tasks = Vec::with_capacity(b * len.div_ceil(rb.max(1)));
    let mut rest = buf;
    for item in 0..b {
        let (head, r) = std::mem::take(&mut rest).split_at_mut(before * width);
        head.fill(0.0);
        rest = r;
        let mut r0 = 0;
        while r0 < len {
            let n = rb.min(len - r0);
            let (block, r) = std::mem::take(&mut rest).split_at_mut(n * width);
            tasks.push((item, r0, block));
            rest = r;
            r0 += n;
        }
        let (tail, r) = std::mem::take(&mut rest).split_at_mut(after * width);
        tail.fill(0.0);
        rest = r;
    }
    tasks
}

/// One convolution stage (see [`super::CardiaffectOps::conv_stage`]): `x` `[B, R, C_in]`,
/// padded unless `pad_input` (then the padding is added here), -> `[B, next_pad + L_out +
/// next_pad, width]`, `width` the projection's when `proj` is given, else `C_out`. Panics
/// naming the stage's sizes when they do not fit together (the caller builds them from one
/// model).
pub(super) fn conv_stage_flex(
    x: FlexTensor,
    stage: ConvStage<'_>,
    proj: Option<(&FlexTensor, &FlexTensor)>,
    (pad_input, next_pad): (bool, usize),
    eps: f32,
    threads: usize,
    ws: &Workspace,
) -> FlexTensor {
    let x = x.to_contiguous();
    let shape = x.layout().shape().clone();
    let [w, bias, gamma, beta] =
        [stage.weight_rows, stage.bias, stage.gamma, stage.beta].map(|t| t.to_contiguous());
    let wshape = w.layout().shape().to_vec();
    assert!(
        shape.num_dims() == 3 && wshape.len() == 3 && shape[2] == wshape[1] && wshape[0] % 2 == 1,
        "conv_stage: input {shape:?} and weight rows {wshape:?}, expected [B, R, C_in] and [odd k, C_in, C_out]"
    );
    let (b, rows, c_in) = (shape[0], shape[1], shape[2]);
    let (c_out, k, s) = (wshape[2], wshape[0], stage.stride.max(1));
    let pad = k / 2;
    // The input with its padding rows: as given, or with zeros added here.
    let padded_copy;
    let xs: &[f32] = if pad_input {
        let mut v = vec![0.0f32; b * (rows + 2 * pad) * c_in];
        for (item, src) in f32_slice(&x).chunks_exact((rows * c_in).max(1)).enumerate() {
            v[(item * (rows + 2 * pad) + pad) * c_in..][..rows * c_in].copy_from_slice(src);
        }
        padded_copy = v;
        &padded_copy
    } else {
        f32_slice(&x)
    };
    let in_rows = if pad_input { rows + 2 * pad } else { rows };
    assert!(
        in_rows >= k,
        "conv_stage: {in_rows} padded rows for a kernel of {k}"
    );
    let len_out = (in_rows - k) / s + 1;
    let wr = f32_slice(&w);
    let [bias, gamma, beta] = [&bias, &gamma, &beta].map(f32_slice);
    assert!(
        bias.len() == c_out && gamma.len() == c_out && beta.len() == c_out,
        "conv_stage: bias {}, LayerNorm {} and {} for {c_out} channels",
        bias.len(),
        gamma.len(),
        beta.len()
    );
    let proj = proj.map(|(pw, pb)| (pw.to_contiguous(), pb.to_contiguous()));
    let proj = proj.as_ref().map(|(pw, pb)| (f32_slice(pw), f32_slice(pb)));
    let width = match proj {
        Some((pw, pb)) => {
            assert_eq!(
                pw.len(),
                c_out * pb.len(),
                "conv_stage: projection [{c_out}, {}]",
                pb.len()
            );
            pb.len()
        }
        None => c_out,
    };
    let mut next = vec![0.0f32; b * (len_out + 2 * next_pad) * width];
    let rb = rows_per_task(b * len_out, (16, 128), threads).min(len_out.max(1));
    let tasks = interior_blocks(&mut next, (b, len_out, (next_pad, next_pad), width), rb);
    run_tasks(tasks, threads, |(item, r0, block)| {
        let n = block.len() / width;
        ws.with_scratch(2 * n * c_out, |scratch| {
            let (y, h) = scratch.split_at_mut(n * c_out);
            for row in y.chunks_exact_mut(c_out) {
                row.copy_from_slice(bias);
            }
            // `y` [n, c_out] += the input rows r0 s .. (r0 + n - 1) s + k of this window, read
            // as [n, k c_in] at row stride s c_in, times `wr` [k c_in, c_out].
            gemm_rows(
                MatMut::new(y, n, c_out, c_out),
                Mat::at(xs, (item * in_rows + r0 * s) * c_in, n, k * c_in, s * c_in),
                Mat::new(wr, k * c_in, c_out, c_out),
                true,
            );
            match proj {
                Some((pw, pb)) => {
                    fastmath::layer_norm_rows(y, gamma, beta, eps, h);
                    fastmath::gelu_inplace(h);
                    for row in block.chunks_exact_mut(width) {
                        row.copy_from_slice(pb);
                    }
                    // `block` [n, width] += `h` [n, c_out] `pw` [c_out, width].
                    gemm_rows(
                        MatMut::new(block, n, width, width),
                        Mat::new(h, n, c_out, c_out),
                        Mat::new(pw, c_out, width, width),
                        true,
                    );
                }
                None => {
                    fastmath::layer_norm_rows(y, gamma, beta, eps, block);
                    fastmath::gelu_inplace(block);
                }
            }
        })
    });
    contiguous(next, [b, len_out + 2 * next_pad, width])
}

multiversion! {
    /// One row of the depthwise token convolution: `o = bias + sum_j taps[j] * window[j]`,
    /// `taps` and `window` as `k` rows of `o.len()`.
    fn token_conv_row(o: &mut [f32], bias: &[f32], taps: &[f32], window: &[f32]) {
        let d = o.len();
        o.copy_from_slice(bias);
        for (tap, src) in taps.chunks_exact(d).zip(window.chunks_exact(d)) {
            for ((v, &w), &x) in o.iter_mut().zip(tap).zip(src) {
                *v += w * x;
            }
        }
    }
}

/// The token convolution, CLS and positions (see [`super::CardiaffectOps::token_head`]):
/// `tokens` `[B, T + 2p, d]` -> `[B, T + 1, d]`.
pub(super) fn token_head_flex(
    tokens: FlexTensor,
    pos_conv: Option<(&FlexTensor, &FlexTensor)>,
    cls: &FlexTensor,
    pos: &FlexTensor,
    threads: usize,
) -> FlexTensor {
    let tokens = tokens.to_contiguous();
    let shape = tokens.layout().shape().clone();
    assert!(
        shape.num_dims() == 3,
        "token_head: tokens {shape:?}, expected [B, T + 2p, d]"
    );
    let (b, tok_rows, d) = (shape[0], shape[1], shape[2]);
    let pos_conv = pos_conv.map(|(w, bias)| (w.to_contiguous(), bias.to_contiguous()));
    let kp = pos_conv.as_ref().map_or(1, |(w, _)| w.layout().shape()[0]);
    let pad = kp / 2;
    assert!(
        kp % 2 == 1 && tok_rows > 2 * pad,
        "token_head: {tok_rows} rows for a token convolution of {kp}"
    );
    let t = tok_rows - 2 * pad;
    let (cls, pos) = (cls.to_contiguous(), pos.to_contiguous());
    let (cls, pos, toks) = (f32_slice(&cls), f32_slice(&pos), f32_slice(&tokens));
    assert!(
        pos.len() == (t + 1) * d && cls.len() == d,
        "token_head: positions of {} and CLS of {} for {t} tokens of width {d}",
        pos.len(),
        cls.len()
    );
    // Taps as rows `[k, d]`, so each tap is one vectorisable pass over a token's channels.
    let taps = pos_conv.as_ref().map(|(w, bias)| {
        let ws = f32_slice(w);
        assert!(
            ws.len() == d * kp && f32_slice(bias).len() == d,
            "token_head: token convolution taps {:?} for width {d}, expected [k, d]",
            w.layout().shape()
        );
        ws
    });
    let pc_bias = pos_conv.as_ref().map(|(_, bias)| f32_slice(bias));
    let mut out = vec![0.0f32; b * (t + 1) * d];
    let rb = rows_per_task(b * t, (32, 256), threads).min(t.max(1));
    // Each window's first row (CLS) is left to the loop after the tokens'.
    let tasks = interior_blocks(&mut out, (b, t, (1, 0), d), rb);
    run_tasks(tasks, threads, |(item, r0, block)| {
        for (i, o) in block.chunks_exact_mut(d).enumerate() {
            let tt = r0 + i;
            let tok = &toks[(item * tok_rows + pad + tt) * d..][..d];
            if let (Some(taps), Some(pcb)) = (&taps, pc_bias) {
                let window = &toks[(item * tok_rows + tt) * d..][..kp * d];
                token_conv_row(o, pcb, taps, window);
                fastmath::gelu_inplace(o);
            } else {
                o.fill(0.0);
            }
            let p = &pos[(tt + 1) * d..][..d];
            for ((v, &x), &pp) in o.iter_mut().zip(tok).zip(p) {
                *v += x + pp;
            }
        }
    });
    for row0 in out.chunks_exact_mut((t + 1) * d) {
        for ((o, &c), &p) in row0.iter_mut().zip(cls).zip(&pos[..d]) {
            *o = c + p;
        }
    }
    contiguous(out, [b, t + 1, d])
}
