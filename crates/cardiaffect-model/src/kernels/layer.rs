//! The whole pre-LN encoder layer at inference as one op in two parallel passes.

use burn::backend::Flex;
use burn_flex::FlexTensor;

use rayon::prelude::*;

use super::attention::attend_head;
use super::fastmath::{self, multiversion};
use super::fused_attention::{self, panel_index, panel_len};
use super::gemm::{contiguous, f32_slice, gemm_rows, Mat, MatMut, SendPtr};
use super::EncoderLayerParams;

/// Rows per task: `total` split into about two tasks per thread, within `[lo, hi]` rows. One
/// task per thread was slower at batch 1 (the thread that wakes late holds up the pass),
/// four per thread slower too (more packing of the same weights); measured: BENCHMARKS.md.
/// Alone (one thread), the blocks are as large as `hi` allows: nothing waits for them.
pub(super) fn rows_per_task(total: usize, (lo, hi): (usize, usize), threads: usize) -> usize {
    let per = if threads == 1 {
        total
    } else {
        total.div_ceil(2 * threads)
    };
    per.clamp(lo, hi).max(1)
}

/// Runs `f` on every task, in parallel where there are several tasks and threads.
pub(super) fn run_tasks<T: Send>(tasks: Vec<T>, threads: usize, f: impl Fn(T) + Sync + Send) {
    if threads > 1 && tasks.len() > 1 {
        tasks.into_par_iter().for_each(f);
    } else {
        tasks.into_iter().for_each(f);
    }
}

/// Where the tiled attention's inputs for batch item `bi` and head `h` start: its keys'
/// panel (`dk * panel_len(T)`, laid out by `panel_index`) and its values (`[T, dk]`), each
/// buffer holding the batch items' heads in turn.
fn head_panels(bi: usize, h: usize, (t, d, heads): (usize, usize, usize)) -> (usize, usize) {
    let first = (bi * heads + h) * (d / heads);
    (first * panel_len(t), first * t)
}

multiversion! {
    /// The biases onto a block of the QKV projection (`rows`, `[n, 3d]`, from row `r0` of
    /// `[B T, 3d]`), written without them. For the attention tiles (`panels`: the key panels
    /// and values that [`head_panels`] lays out, and the factor of the keys in the panels),
    /// the queries get theirs in place and each head's keys and values go, with theirs, into
    /// its transposed key panel (times the factor) and its `[T, dk]` values; without the
    /// tiles, every column in place.
    ///
    /// # Safety
    /// With `panels`, they must point at the buffers that [`head_panels`] lays out for the
    /// batch, and nobody else may write these rows' elements of them meanwhile.
    unsafe fn finish_qkv(
        rows: &mut [f32],
        r0: usize,
        dims: (usize, usize, usize),
        biases: (&[f32], &[f32], &[f32]),
        panels: Option<(SendPtr, SendPtr, f32)>,
    ) {
        let (t, d, heads) = dims;
        let (bq, bk, bv) = biases;
        let dk = d / heads;
        let Some((kt, vt, key_scale)) = panels else {
            for row in rows.chunks_exact_mut(3 * d) {
                add_to(row, bq);
                add_to(&mut row[d..], bk);
                add_to(&mut row[2 * d..], bv);
            }
            return;
        };
        // Sixteen tokens of one window from a multiple of 16 go into the key panels together
        // (`keys_into_panel16`'s 16 × 16 transposes); others one by one.
        const RUN: usize = 16;
        let n = rows.len() / (3 * d);
        let mut i = 0;
        while i < n {
            let (bi, j) = ((r0 + i) / t, (r0 + i) % t);
            let run = if j % RUN == 0 && j + RUN <= t && i + RUN <= n { RUN } else { 1 };
            for (ii, row) in rows[i * 3 * d..(i + run) * 3 * d].chunks_exact_mut(3 * d).enumerate() {
                add_to(&mut row[..d], bq);
                for h in 0..heads {
                    let vp = head_panels(bi, h, (t, d, heads)).1;
                    let value = &row[2 * d + h * dk..][..dk];
                    // SAFETY: value row j + ii of (bi, h) inside the buffer (the caller's
                    // contract).
                    unsafe {
                        let v = vt.ptr().add(vp + (j + ii) * dk);
                        for (c, (&vv, &b)) in value.iter().zip(&bv[h * dk..]).enumerate() {
                            *v.add(c) = vv + b;
                        }
                    }
                }
            }
            for h in 0..heads {
                let kp = head_panels(bi, h, (t, d, heads)).0;
                let (key, key_bias) = (&rows[i * 3 * d + d + h * dk..], &bk[h * dk..][..dk]);
                // SAFETY: the keys of tokens j..j + run of (bi, h) in its panel are the
                // caller's to write; panels exist only where the tiles (AVX-512, dk a multiple
                // of 16) run.
                unsafe {
                    let k = kt.ptr().add(kp);
                    if run == RUN {
                        fused_attention::keys_into_panel16(
                            (key.as_ptr(), 3 * d),
                            key_bias,
                            key_scale,
                            dk,
                            k.add(panel_index(j, 0, dk)),
                        )
                    } else {
                        for (c, (&kv, &b)) in key[..dk].iter().zip(key_bias).enumerate() {
                            *k.add(panel_index(j, c, dk)) = (kv + b) * key_scale;
                        }
                    }
                }
            }
            i += run;
        }
    }
}

/// `x += bias` element by element (inlined into each copy of the function above).
#[inline(always)]
fn add_to(x: &mut [f32], bias: &[f32]) {
    for (v, &b) in x.iter_mut().zip(bias) {
        *v += b;
    }
}

pub(super) fn encoder_layer_flex(x: FlexTensor, p: EncoderLayerParams<Flex>) -> FlexTensor {
    // `to_contiguous` clones the handle (the buffer then looks shared): only when needed, so
    // that an input nobody else holds becomes the output in place.
    let mut x = if x.is_contiguous() {
        x
    } else {
        x.to_contiguous()
    };
    let shape = x.layout().shape().clone();
    assert!(
        shape.num_dims() == 3,
        "encoder_layer: input {shape:?}, expected [B, T, d]"
    );
    let (b, t, d) = (shape[0], shape[1], shape[2]);
    let heads = p.n_heads;
    assert!(
        heads > 0 && d % heads == 0,
        "encoder_layer: width {d} is not a multiple of {heads} heads"
    );
    let dk = d / heads;
    let cls_only = p.cls_only;
    let ws = &*p.workspace;
    let params = [
        p.norm_attn_gamma,
        p.norm_attn_beta,
        p.qkv_weight,
        p.qkv_bias,
        p.output_weight,
        p.output_bias,
        p.norm_ff_gamma,
        p.norm_ff_beta,
        p.inner_weight,
        p.inner_bias,
        p.outer_weight,
        p.outer_bias,
    ]
    .map(|t| t.to_contiguous());
    let [g_a, be_a, wqkv, bqkv, wo, bo, g_f, be_f, wi, bi, wu, bu] =
        params.each_ref().map(f32_slice);
    let dff = bi.len();
    // The weights' shapes (the products below check lengths, not orientation).
    let shapes = params.each_ref().map(|t| t.layout().shape().to_vec());
    let expected: [Vec<usize>; 12] = [
        vec![d],
        vec![d],
        vec![d, 3 * d],
        vec![3 * d],
        vec![d, d],
        vec![d],
        vec![d],
        vec![d],
        vec![d, dff],
        vec![dff],
        vec![dff, d],
        vec![d],
    ];
    const NAMES: [&str; 12] = [
        "norm_attn.gamma",
        "norm_attn.beta",
        "qkv.weight",
        "qkv.bias",
        "output.weight",
        "output.bias",
        "norm_ff.gamma",
        "norm_ff.beta",
        "inner.weight",
        "inner.bias",
        "outer.weight",
        "outer.bias",
    ];
    for ((name, got), want) in NAMES.iter().zip(&shapes).zip(&expected) {
        assert_eq!(
            got, want,
            "encoder_layer: `{name}` for width {d}, d_ff {dff}"
        );
    }
    let eps = p.eps as f32;
    let (m, d3) = (b * t, 3 * d);
    let threads = p.threads.max(1);
    let parallel = threads > 1;
    // The residual stream: the input's own buffer when nobody else holds it (pass 1 reads
    // all of it before pass 2 writes row blocks that each read only their own rows), else a
    // copy.
    let in_place = x.layout().start_offset() == 0 && x.try_storage_mut::<f32>().is_some();
    let mut copy = Vec::new();
    let stream: &mut [f32] = if in_place {
        &mut x.try_storage_mut::<f32>().expect("checked just above")[..m * d]
    } else {
        copy.extend_from_slice(f32_slice(&x));
        &mut copy
    };
    let xs: &[f32] = stream;

    // Pass 1: LayerNorm and the three projections of each block of rows; their biases are
    // added where the rows are next read or copied (the products once started from bias rows:
    // a copy per row, visible in memcpy; measured: BENCHMARKS.md).
    // The QKV projection `[B T, 3d]` (a fresh one per layer, 16 MB at batch 32, was
    // zero-filled each time before pass 1 overwrote it) and, for the tiled attention kernel,
    // per batch item and head in turn, the keys transposed (`dk * panel_len(T)`, laid out by
    // `panel_index`) and the values `[T, dk]`, each head's contiguous: the buffers of this
    // thread's last call, kept in the workspace (threads that run their shares of a batch at
    // once each keep their own).
    let [mut qkv, mut keys_t, mut values] = ws.take_layer();
    qkv.resize(m * d3, 0.0);
    // The three projections side by side, [d, 3d] and [3d] (as the caller packed them): one
    // product per row block instead of three (one packing of the block's rows).
    let (bq, bk, bv) = (&bqkv[..d], &bqkv[d..2 * d], &bqkv[2 * d..]);
    // The tiled attention reads the keys transposed: pass 1 writes them so beside the
    // projection (once per layer; per block of queries it cost a large share of the kernel,
    // measured: BENCHMARKS.md).
    let tiled = p.tiled_attention && fused_attention::available(dk) && t > 0;
    let tp = panel_len(t);
    if tiled {
        keys_t.resize(b * d * tp, 0.0);
        values.resize(m * d, 0.0);
        // The padding past each panel's `t` keys must be zero (a reused buffer may have held
        // another length).
        for panel in keys_t.chunks_exact_mut(dk * tp) {
            for j in t..tp {
                for c in 0..dk {
                    panel[panel_index(j, c, dk)] = 0.0;
                }
            }
        }
    }
    let kt_out = SendPtr(keys_t.as_mut_ptr());
    let scale = 1.0 / (dk as f32).sqrt();
    // The tiles' softmax runs in base 2 on scaled scores: the keys carry the factor.
    let key_scale = std::f32::consts::LOG2_E / (dk as f32).sqrt();
    let v_out = SendPtr(values.as_mut_ptr());
    // Alone (a window's share of a batch), blocks of up to a whole window: fewer packings of
    // the same weights (measured at batch 32, both passes: BENCHMARKS.md).
    let alone = threads == 1;
    let r1 = rows_per_task(m, (32, if alone { t.max(256) } else { 256 }), threads);
    let pass1 = |(c, rows): (usize, &mut [f32])| {
        let n = rows.len() / d3;
        let r0 = c * r1;
        ws.with_scratch(n * d, |h| {
            fastmath::layer_norm_rows(&xs[r0 * d..(r0 + n) * d], g_a, be_a, eps, h);
            // `rows` [n, 3d] = `h` [n, d] `wqkv` [d, 3d].
            gemm_rows(
                MatMut::new(rows, n, d3, d3),
                Mat::new(h, n, d, d),
                Mat::new(wqkv, d, d3, d3),
                false,
            );
        });
        // SAFETY: `keys_t` and `values` are [B, heads] panels as `head_panels` lays them out;
        // these rows of the projection are this task's alone.
        unsafe {
            finish_qkv(
                rows,
                r0,
                (t, d, heads),
                (bq, bk, bv),
                tiled.then_some((kt_out, v_out, key_scale)),
            )
        };
    };
    if parallel && m > r1 {
        qkv.par_chunks_mut(r1 * d3).enumerate().for_each(pass1);
    } else {
        qkv.chunks_mut(r1 * d3).enumerate().for_each(pass1);
    }

    // Pass 2: per block of queries of one batch item, everything that is row-local after
    // attention, written straight into the block's rows of the residual stream (or, for the
    // CLS rows alone, into a copy of those rows).
    let mut cls_rows = Vec::new();
    let mut tasks = Vec::new();
    if cls_only {
        if t > 0 {
            cls_rows.reserve_exact(b * d);
            for bi in 0..b {
                cls_rows.extend_from_slice(&xs[bi * t * d..][..d]);
            }
        }
        for (bi, block) in cls_rows.chunks_mut(d).enumerate() {
            tasks.push((bi * t, 1, block));
        }
    } else {
        let per_item = t.div_ceil(
            rows_per_task(m, (16, if alone { t.max(128) } else { 128 }), threads).min(t.max(1)),
        );
        let rb = t.div_ceil(per_item.max(1)).max(1);
        tasks.reserve(b * per_item);
        let mut rest = &mut stream[..];
        for bi in 0..b {
            let mut r0 = 0;
            while r0 < t {
                let n = rb.min(t - r0);
                let (block, r) = std::mem::take(&mut rest).split_at_mut(n * d);
                tasks.push((bi * t + r0, n, block));
                rest = r;
                r0 += n;
            }
        }
    }
    let qkv_rows = &qkv[..];
    let keys_t_rows = &keys_t[..];
    let values_rows = &values[..];
    let pass2 = |(row0, n, o): (usize, usize, &mut [f32])| {
        let item0 = row0 - row0 % t.max(1);
        let att = if tiled {
            fused_attention::scratch_len(t)
        } else {
            n * (t + 1)
        };
        ws.with_scratch(att + n * (2 * d + dff), |s| {
            let (scores, s) = s.split_at_mut(att);
            let (ctx, s) = s.split_at_mut(n * d);
            let (h, ff) = s.split_at_mut(n * d);
            for head in 0..heads {
                let q = row0 * d3 + head * dk;
                let k = item0 * d3 + d + head * dk;
                if tiled {
                    let (kp, vp) = head_panels(item0 / t, head, (t, d, heads));
                    // q rows [row0, row0 + n) of `qkv` ([m, 3d]) at this head's columns; this
                    // head's key panel and values (pass 1 wrote them; nobody writes them in
                    // pass 2); this head's columns of `ctx` ([n, d], this task's).
                    fused_attention::attend_views(
                        Mat::at(qkv_rows, q, n, dk, d3),
                        &keys_t_rows[kp..],
                        Mat::at(values_rows, vp, t, dk, dk),
                        scores,
                        MatMut::at(ctx, head * dk, n, dk, d),
                    );
                    continue;
                }
                // q rows [row0, row0 + n), k and v rows [item0, item0 + t) of `qkv` ([m, 3d])
                // at this head's columns; this head's columns of `ctx` ([n, d]).
                attend_head(
                    (
                        Mat::at(qkv_rows, q, n, dk, d3),
                        Mat::at(qkv_rows, k, t, dk, d3),
                        Mat::at(qkv_rows, k + d, t, dk, d3),
                    ),
                    scale,
                    scores,
                    MatMut::at(ctx, head * dk, n, dk, d),
                );
            }
            // x1 = x + ctx wo + bo, in the block's rows.
            gemm_rows(
                MatMut::new(o, n, d, d),
                Mat::new(ctx, n, d, d),
                Mat::new(wo, d, d, d),
                true,
            );
            // x1 + gelu(norm_ff(x1) wi + bi) wu + bu: `bo`, the norm and `bu` in one visit
            // per row, `bi` with the GELU.
            fastmath::bias_norm_bias_rows(o, bo, bu, g_f, be_f, eps, h);
            // `ff` [n, dff] = `h` [n, d] `wi` [d, dff].
            gemm_rows(
                MatMut::new(ff, n, dff, dff),
                Mat::new(h, n, d, d),
                Mat::new(wi, d, dff, dff),
                false,
            );
            fastmath::gelu_bias_rows(ff, bi);
            // `o` [n, d] += `ff` [n, dff] `wu` [dff, d].
            gemm_rows(
                MatMut::new(o, n, d, d),
                Mat::new(ff, n, dff, dff),
                Mat::new(wu, dff, d, d),
                true,
            );
        })
    };
    run_tasks(tasks, threads, pass2);
    ws.keep_layer([qkv, keys_t, values]);
    if cls_only {
        // `[B, 1, d]` (`[B, 0, d]` for an empty sequence).
        let rows = usize::from(t > 0);
        return contiguous(cls_rows, burn::tensor::Shape::from(vec![b, rows, d]));
    }
    if in_place {
        x
    } else {
        contiguous(copy, shape)
    }
}
