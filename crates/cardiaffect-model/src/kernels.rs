//! In-tree kernels for the flex backend, through Burn's backend extension
//! (`#[backend_extension]`): where profiles showed a hot spot that Burn's own ops leave
//! (BENCHMARKS.md), not a rewrite of what Burn has.
//!
//! - [`self_attention`]: scaled dot-product attention of all heads straight from the packed
//!   QKV projection (one matrix product, `[B, T, 3d]`) into a packed `[B, T, d]` output.
//!   burn-flex's attention needs `[B, H, T, dk]` inputs (three strided copies before it, one after it) and runs its
//!   softmax through scalar `expf` with per-element branches; here the two matrix products per
//!   head read and write the packed layouts through gemm's strides and the softmax is
//!   vectorised ([`crate::fastmath`]).
//! - [`gelu`]: exact-erf GELU with a vectorised erf (burn-flex calls a scalar erf per element),
//!   forward and derivative; on the autodiff backend a recorded op whose backward runs the
//!   in-tree derivative, so training takes it too.
//! - [`encoder_layer`]: a whole pre-LN encoder layer at inference in two parallel passes
//!   (LayerNorm + QKV per block of rows; then attention, output projection, LayerNorm and
//!   feed-forward per block of queries): two parallel regions per layer instead of about
//!   seven, each of which waits for a worker to wake (batch-1 latency -11 %, context
//!   switches per inference 267 -> 77; BENCHMARKS.md).
//!
//! Attention, linear layers and the layer op take the in-tree path on plain (non-autodiff)
//! flex f32 tensors only: training keeps Burn's attention and its gradients. Other backends
//! (`cuda`) use Burn's ops throughout.
//! `CARDIAFFECT_KERNELS=ops` keeps the per-op kernels but not the layer op, `=burn` sends
//! everything through Burn's ops (to compare; see [`KernelMode`]).

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, DispatchDevice, ExtensionType, Flex};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::DType;
use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

use crate::fastmath;

/// Operations with an in-tree flex implementation.
#[backend_extension(Flex)]
pub trait CardiaffectOps: Backend {
    /// Self-attention core: `qkv` `[B, T, 3d]` (the query, key and value projections side by
    /// side, heads packed along each `d`) -> `softmax(q_h k_h^T / sqrt(d / n_heads)) v_h` for
    /// each head, packed `[B, T, d]`.
    fn packed_attention(qkv: FloatTensor<Self>, n_heads: usize) -> FloatTensor<Self>;

    /// `x w + b` (`x` `[.., in]`, `w` `[in, out]`, `b` `[out]`), then GELU when `gelu`.
    fn linear_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gelu: bool,
    ) -> FloatTensor<Self>;

    /// One pre-LN Transformer encoder layer at inference (no dropout) on `x` `[B, T, d]`:
    /// `x1 = x + attention(norm_attn(x))`, then `x1 + ff(norm_ff(x1))` with a GELU
    /// feed-forward, as burn-nn's `TransformerEncoderLayer` with `norm_first`.
    fn encoder_layer(
        x: FloatTensor<Self>,
        #[extension_type] p: EncoderLayerParams<Self>,
    ) -> FloatTensor<Self>;

    /// `r + x w + b`: a linear layer added to the residual stream `r` in one product.
    fn linear_bias_residual(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        r: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The parameters of one pre-LN encoder layer, for [`CardiaffectOps::encoder_layer`]:
/// LayerNorms `[d]`, projections `[d, d]` + `[d]`, feed-forward `[d, d_ff]` + `[d_ff]` and
/// `[d_ff, d]` + `[d]` (Burn's `[in, out]` layout).
#[derive(ExtensionType)]
pub struct EncoderLayerParams<B: Backend> {
    pub norm_attn_gamma: FloatTensor<B>,
    pub norm_attn_beta: FloatTensor<B>,
    pub query_weight: FloatTensor<B>,
    pub query_bias: FloatTensor<B>,
    pub key_weight: FloatTensor<B>,
    pub key_bias: FloatTensor<B>,
    pub value_weight: FloatTensor<B>,
    pub value_bias: FloatTensor<B>,
    pub output_weight: FloatTensor<B>,
    pub output_bias: FloatTensor<B>,
    pub norm_ff_gamma: FloatTensor<B>,
    pub norm_ff_beta: FloatTensor<B>,
    pub inner_weight: FloatTensor<B>,
    pub inner_bias: FloatTensor<B>,
    pub outer_weight: FloatTensor<B>,
    pub outer_bias: FloatTensor<B>,
    pub n_heads: usize,
    pub eps: f64,
}

/// GELU with an in-tree flex implementation, differentiable: the autodiff backend records a
/// backward pass that runs the in-tree derivative on the inner backend.
#[backend_extension(Flex, Autodiff)]
pub trait GeluOps: Backend {
    /// `0.5 x (1 + erf(x / sqrt 2))`.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `grad * gelu'(x)`.
    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as burn::backend::ops::ActivationOps<Self>>::gelu_backward(x, grad)
    }
}

/// Whether a tensor on `device` can take the in-tree path.
fn fast_path(device: &Device, dtype: DType) -> bool {
    in_tree_enabled() && plain_flex(device) && dtype == DType::F32
}

/// Which kernels inference runs on flex, from `CARDIAFFECT_KERNELS` (read once): unset (or
/// `layer`) the whole-layer op, `ops` the per-op kernels only, `burn` Burn's ops throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelMode {
    Layer,
    Ops,
    Burn,
}

impl KernelMode {
    /// The name `bench` reports: `in-tree`, `ops` or `burn`.
    pub fn name(self) -> &'static str {
        match self {
            KernelMode::Layer => "in-tree",
            KernelMode::Ops => "ops",
            KernelMode::Burn => "burn",
        }
    }
}

/// The mode this process runs (see [`KernelMode`]).
pub fn kernel_mode() -> KernelMode {
    static MODE: std::sync::OnceLock<KernelMode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("CARDIAFFECT_KERNELS").as_deref() {
        Ok("burn") => KernelMode::Burn,
        Ok("ops") => KernelMode::Ops,
        _ => KernelMode::Layer,
    })
}

/// Whether `device` is flex without autodiff (inference).
pub fn plain_flex(device: &Device) -> bool {
    matches!(device.as_dispatch(), DispatchDevice::Flex(_))
}

/// Whether `device` is flex (with or without autodiff).
pub fn on_flex(device: &Device) -> bool {
    matches!(
        device.as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    )
}

/// Runs `f` on a rayon worker (at once when already on one) and returns its result. Every
/// parallel op that flex, gemm and these kernels run splits its work with rayon: called from
/// outside the pool, each one is injected into the pool while the caller sleeps until it is
/// done (a wake-up per op); called from a worker, the worker takes a share itself. Measured:
/// batch-1 latency -6 % (BENCHMARKS.md). Not under `CARDIAFFECT_KERNELS=burn`.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if !in_tree_enabled() || rayon::current_thread_index().is_some() {
        return f();
    }
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.expect("the scope ran its closure")
}

/// False when `CARDIAFFECT_KERNELS=burn`.
pub fn in_tree_enabled() -> bool {
    kernel_mode() != KernelMode::Burn
}

/// Multi-head self-attention core (no output projection) of `x` `[B, T, d]` through the
/// `query`, `key` and `value` projections (see the module doc).
pub fn self_attention(
    x: Tensor<3>,
    query: &Linear,
    key: &Linear,
    value: &Linear,
    n_heads: usize,
) -> Tensor<3> {
    if fast_path(&x.device(), x.dtype()) {
        // One matrix product for the three projections (weights side by side, [d, 3d]).
        let w = Tensor::cat(
            vec![query.weight.val(), key.weight.val(), value.weight.val()],
            1,
        );
        let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val());
        let qkv = match (bias(query), bias(key), bias(value)) {
            (Some(bq), Some(bk), Some(bv)) => {
                Tensor::from_dispatch(<burn::backend::Dispatch as CardiaffectOps>::linear_bias(
                    x.into_dispatch(),
                    w.into_dispatch(),
                    Tensor::cat(vec![bq, bk, bv], 0).into_dispatch(),
                    false,
                ))
            }
            _ => Tensor::cat(
                vec![
                    query.forward(x.clone()),
                    key.forward(x.clone()),
                    value.forward(x),
                ],
                2,
            ),
        };
        return Tensor::from_dispatch(
            <burn::backend::Dispatch as CardiaffectOps>::packed_attention(
                qkv.into_dispatch(),
                n_heads,
            ),
        );
    }
    let (q, k, v) = (
        query.forward(x.clone()),
        key.forward(x.clone()),
        value.forward(x),
    );
    let [b, t, d] = q.dims();
    let dk = d / n_heads;
    let split = |y: Tensor<3>| y.reshape([b, t, n_heads, dk]).swap_dims(1, 2);
    attention(split(q), split(k), split(v), None, None, Default::default())
        .swap_dims(1, 2)
        .reshape([b, t, d])
}

/// `l(x)`, then GELU when `gelu`, then `+ residual` when given: one matrix product whose
/// output starts from the bias (and residual) rows, instead of three or four Burn ops.
pub fn linear(
    x: Tensor<3>,
    l: &Linear,
    gelu_after: bool,
    residual: Option<Tensor<3>>,
) -> Tensor<3> {
    if let (true, Some(b)) = (fast_path(&x.device(), x.dtype()), &l.bias) {
        let (xd, w, b) = (
            x.into_dispatch(),
            l.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        );
        type D = burn::backend::Dispatch;
        return Tensor::from_dispatch(match residual {
            Some(r) if !gelu_after => {
                <D as CardiaffectOps>::linear_bias_residual(xd, w, b, r.into_dispatch())
            }
            Some(r) => {
                let y =
                    Tensor::<3>::from_dispatch(<D as CardiaffectOps>::linear_bias(xd, w, b, true));
                (y + r).into_dispatch()
            }
            None => <D as CardiaffectOps>::linear_bias(xd, w, b, gelu_after),
        });
    }
    let y = l.forward(x);
    let y = if gelu_after { gelu(y) } else { y };
    match residual {
        Some(r) => r + y,
        None => y,
    }
}

/// One pre-LN encoder layer at inference (no dropout) as one in-tree op: two parallel passes
/// (LayerNorm + QKV for blocks of rows; then, per block of queries, attention, the output
/// projection, LayerNorm and the feed-forward with its residual adds) instead of eight
/// parallel Burn ops, each of which wakes the worker threads (see BENCHMARKS.md). `None`
/// when `x` is not on the in-tree path or a parameter the op needs (a bias) is absent: the
/// caller then runs Burn's ops.
pub fn encoder_layer(
    x: &Tensor<3>,
    layer: &crate::transformer::Layer,
    eps: f64,
) -> Option<Tensor<3>> {
    if kernel_mode() != KernelMode::Layer || !fast_path(&x.device(), x.dtype()) {
        return None;
    }
    let lin = |l: &Linear| {
        l.bias
            .as_ref()
            .map(|b| (l.weight.val().into_dispatch(), b.val().into_dispatch()))
    };
    let norm = |n: &burn::nn::LayerNorm| {
        n.beta
            .as_ref()
            .map(|b| (n.gamma.val().into_dispatch(), b.val().into_dispatch()))
    };
    let m = &layer.mha;
    let (na, nf) = (norm(&layer.norm_2)?, norm(&layer.norm_1)?);
    let (q, k, v, o) = (
        lin(&m.query)?,
        lin(&m.key)?,
        lin(&m.value)?,
        lin(&m.output)?,
    );
    let (i, u) = (
        lin(&layer.pwff.linear_inner)?,
        lin(&layer.pwff.linear_outer)?,
    );
    let p = EncoderLayerParams {
        norm_attn_gamma: na.0,
        norm_attn_beta: na.1,
        query_weight: q.0,
        query_bias: q.1,
        key_weight: k.0,
        key_bias: k.1,
        value_weight: v.0,
        value_bias: v.1,
        output_weight: o.0,
        output_bias: o.1,
        norm_ff_gamma: nf.0,
        norm_ff_beta: nf.1,
        inner_weight: i.0,
        inner_bias: i.1,
        outer_weight: u.0,
        outer_bias: u.1,
        n_heads: m.n_heads,
        eps,
    };
    Some(Tensor::from_dispatch(
        <burn::backend::Dispatch as CardiaffectOps>::encoder_layer(x.clone().into_dispatch(), p),
    ))
}

/// GELU (exact erf form); on flex, with or without autodiff, the in-tree kernel.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if in_tree_enabled() && on_flex(&x.device()) && x.dtype() == DType::F32 {
        return Tensor::from_dispatch(<burn::backend::Dispatch as GeluOps>::gelu_erf(
            x.into_dispatch(),
        ));
    }
    activation::gelu(x)
}

/// The contiguous f32 elements of a flex tensor.
fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("kernels: a contiguous f32 tensor (checked by the caller)")
}

/// A pointer that may cross into rayon's workers: each task writes a disjoint set of elements.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint elements (one head's columns of one batch item each).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer, through a method: a closure that named the field would capture the bare
    /// (not Sync) pointer instead of the wrapper.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// Per-thread scratch of the in-tree kernels (attention scores, a layer's row blocks): it
    /// outlives the call, as a fresh buffer per call cost page faults and a memset each time.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch, at least `n` elements long.
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut s = cell.borrow_mut();
        if s.len() < n {
            s.resize(n, 0.0);
        }
        f(&mut s[..n])
    })
}

/// `dst += lhs rhs` on one thread, all row-major with unit column stride: `dst` `[m, n]` (row
/// stride `dst_rs`), `lhs` `[m, k]` (`lhs_rs`), `rhs` `[k, n]` (`rhs_rs`).
///
/// # Safety
/// The three regions must lie inside their allocations for these sizes and strides, and
/// `dst` must not overlap the others or be written by another thread meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_acc(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_rs: usize,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        true,
        lhs,
        1,
        lhs_rs as isize,
        rhs,
        1,
        rhs_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// One head of attention: `out = softmax(scale q k^T) v` for `n` query rows against `t`
/// key/value rows, each `dk` wide. `qkv` gives the three row pointers and their common row
/// stride, `out` its pointer and row stride; `scores` is `[n, t]` scratch.
///
/// # Safety
/// `q` must point at `n` rows and `k`, `v` at `t` rows of `dk` elements at the given stride;
/// `out` at `n` rows of `dk` elements at its stride that nobody else reads or writes meanwhile;
/// `scores` must hold at least `n * t` elements.
unsafe fn attend_head(
    (n, t, dk): (usize, usize, usize),
    (q, k, v, in_rs): (*const f32, *const f32, *const f32, usize),
    scale: f32,
    scores: &mut [f32],
    (out, out_rs): (*mut f32, usize),
) {
    debug_assert!(scores.len() >= n * t);
    // scores[n, t] = scale q k^T (k read transposed through its strides).
    gemm::gemm(
        n,
        t,
        dk,
        scores.as_mut_ptr(),
        1,
        t as isize,
        false,
        q,
        1,
        in_rs as isize,
        k,
        in_rs as isize,
        1,
        0.0,
        scale,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
    for row in scores[..n * t].chunks_exact_mut(t) {
        fastmath::softmax_row(row);
    }
    // out[n, dk] = scores v
    gemm::gemm(
        n,
        dk,
        t,
        out,
        1,
        out_rs as isize,
        false,
        scores.as_ptr(),
        1,
        t as isize,
        v,
        1,
        in_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// `n` rows of `out` (width `w`) set to `bias` (+ the matching rows of `add`).
fn fill_rows(out: &mut [f32], bias: &[f32], add: Option<&[f32]>) {
    let w = bias.len();
    for (i, row) in out.chunks_exact_mut(w).enumerate() {
        match add {
            Some(a) => {
                for ((o, &b), &r) in row.iter_mut().zip(bias).zip(&a[i * w..][..w]) {
                    *o = b + r;
                }
            }
            None => row.copy_from_slice(bias),
        }
    }
}

/// Rows per task: `total` split into about two tasks per thread, within `[lo, hi]` rows. One
/// task per thread was 20 % slower at batch 1 (the thread that wakes late holds up the
/// pass), four per thread 2 % slower (more packing of the same weights).
fn rows_per_task(total: usize, lo: usize, hi: usize) -> usize {
    total
        .div_ceil(2 * rayon::current_num_threads())
        .clamp(lo, hi)
        .max(1)
}

fn encoder_layer_flex(x: FlexTensor, p: EncoderLayerParams<Flex>) -> FlexTensor {
    let x = x.to_contiguous();
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
    let params = [
        p.norm_attn_gamma,
        p.norm_attn_beta,
        p.query_weight,
        p.query_bias,
        p.key_weight,
        p.key_bias,
        p.value_weight,
        p.value_bias,
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
    let [g_a, be_a, wq, bq, wk, bk, wv, bv, wo, bo, g_f, be_f, wi, bi, wu, bu] =
        params.each_ref().map(f32_slice);
    let dff = bi.len();
    // The lengths the unsafe products below rely on (and the feed-forward's orientation).
    let shapes = params.each_ref().map(|t| t.layout().shape().to_vec());
    let expected: [Vec<usize>; 16] = [
        vec![d],
        vec![d],
        vec![d, d],
        vec![d],
        vec![d, d],
        vec![d],
        vec![d, d],
        vec![d],
        vec![d, d],
        vec![d],
        vec![d],
        vec![d],
        vec![d, dff],
        vec![dff],
        vec![dff, d],
        vec![d],
    ];
    const NAMES: [&str; 16] = [
        "norm_attn.gamma",
        "norm_attn.beta",
        "query.weight",
        "query.bias",
        "key.weight",
        "key.bias",
        "value.weight",
        "value.bias",
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
    let xs = f32_slice(&x);
    let parallel = rayon::current_num_threads() > 1;

    // Pass 1: LayerNorm and the three projections of each block of rows, onto bias rows.
    let mut qkv = vec![0.0f32; m * d3];
    let r1 = rows_per_task(m, 32, 256);
    let pass1 = |(c, rows): (usize, &mut [f32])| {
        let n = rows.len() / d3;
        let r0 = c * r1;
        with_scratch(n * d, |h| {
            fastmath::layer_norm_rows(&xs[r0 * d..(r0 + n) * d], g_a, be_a, eps, h);
            for row in rows.chunks_exact_mut(d3) {
                row[..d].copy_from_slice(bq);
                row[d..2 * d].copy_from_slice(bk);
                row[2 * d..].copy_from_slice(bv);
            }
            for (j, w) in [wq, wk, wv].into_iter().enumerate() {
                // SAFETY: `rows` is [n, 3d] and column block j of it is [n, d] at stride 3d;
                // `h` is [n, d]; `w` is [d, d] (checked above).
                unsafe {
                    gemm_acc(
                        n,
                        d,
                        d,
                        rows.as_mut_ptr().add(j * d),
                        d3,
                        h.as_ptr(),
                        d,
                        w.as_ptr(),
                        d,
                    )
                };
            }
        })
    };
    if parallel && m > r1 {
        qkv.par_chunks_mut(r1 * d3).enumerate().for_each(pass1);
    } else {
        qkv.chunks_mut(r1 * d3).enumerate().for_each(pass1);
    }

    // Pass 2: per block of queries of one batch item, everything that is row-local after
    // attention, written straight into the block's output rows.
    let mut out = vec![0.0f32; m * d];
    let per_item = t.div_ceil(rows_per_task(m, 16, 128).min(t.max(1)));
    let rb = t.div_ceil(per_item.max(1)).max(1);
    let mut tasks = Vec::with_capacity(b * per_item);
    let mut rest = out.as_mut_slice();
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
    let scale = 1.0 / (dk as f32).sqrt();
    let qkv = &qkv[..];
    let pass2 = |(row0, n, o): (usize, usize, &mut [f32])| {
        let item0 = row0 - row0 % t.max(1);
        with_scratch(n * (t + 2 * d + dff), |s| {
            let (scores, s) = s.split_at_mut(n * t);
            let (ctx, s) = s.split_at_mut(n * d);
            let (h, ff) = s.split_at_mut(n * d);
            for head in 0..heads {
                let q = row0 * d3 + head * dk;
                let k = item0 * d3 + d + head * dk;
                // SAFETY: q rows [row0, row0 + n), k and v rows [item0, item0 + t) of `qkv`
                // ([m, 3d]) at this head's columns; `scores` is [n, t]; `ctx` is [n, d] and
                // this head's columns of it [n, dk] at stride d.
                unsafe {
                    let p = qkv.as_ptr();
                    attend_head(
                        (n, t, dk),
                        (p.add(q), p.add(k), p.add(k + d), d3),
                        scale,
                        scores,
                        (ctx.as_mut_ptr().add(head * dk), d),
                    );
                }
            }
            // x1 = x + ctx wo + bo, in the output rows.
            fill_rows(o, bo, Some(&xs[row0 * d..(row0 + n) * d]));
            // SAFETY: `o` and `ctx` are [n, d], `wo` [d, d].
            unsafe { gemm_acc(n, d, d, o.as_mut_ptr(), d, ctx.as_ptr(), d, wo.as_ptr(), d) };
            // x1 + gelu(norm_ff(x1) wi + bi) wu + bu.
            fastmath::layer_norm_rows(o, g_f, be_f, eps, h);
            fill_rows(ff, bi, None);
            // SAFETY: `ff` is [n, dff], `h` [n, d], `wi` [d, dff].
            unsafe {
                gemm_acc(
                    n,
                    dff,
                    d,
                    ff.as_mut_ptr(),
                    dff,
                    h.as_ptr(),
                    d,
                    wi.as_ptr(),
                    dff,
                )
            };
            fastmath::gelu_inplace(ff);
            for row in o.chunks_exact_mut(d) {
                for (v, &c) in row.iter_mut().zip(bu) {
                    *v += c;
                }
            }
            // SAFETY: `o` is [n, d], `ff` [n, dff], `wu` [dff, d].
            unsafe {
                gemm_acc(
                    n,
                    d,
                    dff,
                    o.as_mut_ptr(),
                    d,
                    ff.as_ptr(),
                    dff,
                    wu.as_ptr(),
                    d,
                )
            };
        })
    };
    if parallel && tasks.len() > 1 {
        tasks.into_par_iter().for_each(pass2);
    } else {
        tasks.into_iter().for_each(pass2);
    }
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(out),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Rows of `m` that one parallel task fills (bias/residual copy and GELU).
const ROWS_PER_TASK: usize = 64;
/// Outputs up to this many elements get their bias rows on the calling thread.
const SERIAL_FILL: usize = 1 << 18;
/// Below this many multiply-adds one thread does the product (as burn-flex's matmul decides).
const GEMM_PARALLEL_MACS: usize = 192 * 192 * 192;

fn linear_flex(
    x: FlexTensor,
    w: FlexTensor,
    b: FlexTensor,
    r: Option<FlexTensor>,
    gelu: bool,
) -> FlexTensor {
    let (x, w, b) = (x.to_contiguous(), w.to_contiguous(), b.to_contiguous());
    let xshape = x.layout().shape().clone();
    let (wshape, rank) = (w.layout().shape().clone(), xshape.num_dims());
    let k = xshape[rank - 1];
    let n = wshape[1];
    assert!(
        wshape[0] == k && b.layout().num_elements() == n,
        "linear: input width {k}, weight {wshape:?}, bias {} elements",
        b.layout().num_elements()
    );
    let m = xshape.num_elements() / k.max(1);
    let mut oshape = xshape.clone();
    oshape[rank - 1] = n;
    let r = r.map(|r| r.to_contiguous());
    if let Some(r) = &r {
        assert_eq!(r.layout().shape(), &oshape, "linear: residual shape");
    }
    let (xs, ws, bs) = (f32_slice(&x), f32_slice(&w), f32_slice(&b));
    let rs = r.as_ref().map(f32_slice);
    let mut out = vec![0.0f32; m * n];
    // The product accumulates onto rows that already hold the bias (and residual). Small
    // outputs are filled on this thread: waking a worker costs more than the copy.
    let fill = |(c, rows): (usize, &mut [f32])| {
        for (i, row) in rows.chunks_exact_mut(n).enumerate() {
            match rs {
                Some(rs) => {
                    let rr = &rs[(c * ROWS_PER_TASK + i) * n..][..n];
                    for ((o, &bv), &rv) in row.iter_mut().zip(bs).zip(rr) {
                        *o = bv + rv;
                    }
                }
                None => row.copy_from_slice(bs),
            }
        }
    };
    if m * n <= SERIAL_FILL {
        out.chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(fill);
    } else {
        out.par_chunks_mut(ROWS_PER_TASK * n)
            .enumerate()
            .for_each(fill);
    }
    let par = if m.saturating_mul(n).saturating_mul(k) >= GEMM_PARALLEL_MACS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `out` is [m, n], `xs` [m, k], `ws` [k, n], all contiguous row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            xs.as_ptr(),
            1,
            k as isize,
            ws.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    if gelu {
        out.par_chunks_mut(ROWS_PER_TASK * n)
            .for_each(fastmath::gelu_inplace);
    }
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(out),
        Layout::contiguous(oshape),
        DType::F32,
    )
}

impl CardiaffectOps for Flex {
    fn packed_attention(qkv: FlexTensor, n_heads: usize) -> FlexTensor {
        let qkv = qkv.to_contiguous();
        let shape = qkv.layout().shape().clone();
        let (b, t, d3) = (shape[0], shape[1], shape[2]);
        let d = d3 / 3;
        assert!(
            d3 % 3 == 0 && n_heads > 0 && d % n_heads == 0,
            "packed_attention: width {d3} is not 3 x a multiple of {n_heads} heads"
        );
        let dk = d / n_heads;
        let src = f32_slice(&qkv);
        let mut out = vec![0.0f32; b * t * d];
        let scale = 1.0 / (dk as f32).sqrt();
        let dst = SendPtr(out.as_mut_ptr());
        let run = |scores: &mut [f32], task: usize| {
            let (bi, h) = (task / n_heads, task % n_heads);
            // Row r of batch item bi: q at r * 3d, k at r * 3d + d, v at r * 3d + 2d.
            let q = bi * t * d3 + h * dk;
            let (k, v) = (q + d, q + 2 * d);
            let o = bi * t * d + h * dk;
            // SAFETY: for the given sizes and strides every pointer below stays inside `src`
            // ([B, T, 3d]), `scores` ([T, T]) and `out` ([B, T, d]); the output columns of
            // (bi, h) belong to this task alone.
            unsafe {
                let p = src.as_ptr();
                attend_head(
                    (t, t, dk),
                    (p.add(q), p.add(k), p.add(v), d3),
                    scale,
                    scores,
                    (dst.ptr().add(o), d),
                );
            }
        };
        // Score matrices (T x T, 412 kB at T = 321) live in the per-thread scratch.
        let with_scores = |task: usize| with_scratch(t * t, |scores| run(scores, task));
        let tasks = b * n_heads;
        if tasks > 1 && rayon::current_num_threads() > 1 {
            (0..tasks).into_par_iter().for_each(with_scores);
        } else {
            (0..tasks).for_each(with_scores);
        }
        FlexTensor::new(
            burn::tensor::Bytes::from_elems(out),
            Layout::contiguous(burn::tensor::Shape::new([b, t, d])),
            DType::F32,
        )
    }

    fn encoder_layer(x: FlexTensor, p: EncoderLayerParams<Flex>) -> FlexTensor {
        encoder_layer_flex(x, p)
    }

    fn linear_bias(x: FlexTensor, w: FlexTensor, b: FlexTensor, gelu: bool) -> FlexTensor {
        linear_flex(x, w, b, None, gelu)
    }

    fn linear_bias_residual(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        r: FlexTensor,
    ) -> FlexTensor {
        linear_flex(x, w, b, Some(r), false)
    }
}

impl GeluOps for Flex {
    fn gelu_erf(x: FlexTensor) -> FlexTensor {
        // Large tensors (training-size batches) are split over the threads.
        const CHUNK: usize = 1 << 14;
        // `to_contiguous` clones the handle (so the buffer looks shared): only call it when a
        // copy is needed, so that a tensor nobody else holds is written in place.
        let mut x = if x.is_contiguous() {
            x
        } else {
            x.to_contiguous()
        };
        let shape = x.layout().shape().clone();
        if x.layout().start_offset() == 0 {
            if let Some(s) = x.try_storage_mut::<f32>() {
                let n = shape.num_elements();
                s[..n]
                    .par_chunks_mut(CHUNK)
                    .for_each(fastmath::gelu_inplace);
                return x;
            }
        }
        let src = f32_slice(&x);
        let mut out = vec![0.0f32; src.len()];
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| fastmath::gelu_into(s, o));
        FlexTensor::new(
            burn::tensor::Bytes::from_elems(out),
            Layout::contiguous(shape),
            DType::F32,
        )
    }

    fn gelu_erf_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        const CHUNK: usize = 1 << 14;
        let x = x.to_contiguous();
        let xs = f32_slice(&x);
        let mut grad = if grad.is_contiguous() {
            grad
        } else {
            grad.to_contiguous()
        };
        let shape = grad.layout().shape().clone();
        if grad.layout().start_offset() == 0 {
            if let Some(g) = grad.try_storage_mut::<f32>() {
                let n = shape.num_elements();
                g[..n]
                    .par_chunks_mut(CHUNK)
                    .zip(xs.par_chunks(CHUNK))
                    .for_each(|(g, x)| fastmath::gelu_backward_inplace(x, g));
                return grad;
            }
        }
        let gs = f32_slice(&grad);
        let mut out = vec![0.0f32; gs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(gs.par_chunks(CHUNK).zip(xs.par_chunks(CHUNK)))
            .for_each(|(o, (g, x))| fastmath::gelu_backward_into(x, g, o));
        FlexTensor::new(
            burn::tensor::Bytes::from_elems(out),
            Layout::contiguous(shape),
            DType::F32,
        )
    }
}

impl<B: Backend + GeluOps, C: CheckpointStrategy> GeluOps for Autodiff<B, C> {
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Gelu;

        impl<B: Backend + GeluOps> Backward<B, 1> for Gelu {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::gelu_erf_backward(x, grad)
                });
            }
        }

        let guard = x.node();
        let input = x.into_primitive();
        match Gelu.prepare::<C>([guard]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::gelu_erf(input.clone());
                prep.finish(input, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_erf(input)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// Seeded normal values (the tests give the same numbers every run).
    fn normal<const D: usize>(shape: [usize; D], sd: f64, dev: &Device) -> Tensor<D> {
        let mut rng = cardiaffect_signal::Rng::new(shape.iter().product::<usize>() as u64);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * sd) as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), dev)
    }

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Burn's path: three projections, split heads, Burn's attention, merge heads.
    fn burns_attention(x: Tensor<3>, l: &[Linear; 3], h: usize) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (q, k, v) = (
            l[0].forward(x.clone()),
            l[1].forward(x.clone()),
            l[2].forward(x),
        );
        let d = q.dims()[2];
        let split = |y: Tensor<3>| y.reshape([b, t, h, d / h]).swap_dims(1, 2);
        attention(split(q), split(k), split(v), None, None, Default::default())
            .swap_dims(1, 2)
            .reshape([b, t, d])
    }

    #[test]
    fn packed_attention_equals_burns_attention() {
        let dev = Device::flex();
        for (b, t, d, h) in [(1, 321, 128, 4), (3, 17, 24, 3), (2, 5, 8, 1)] {
            let l = [0, 1, 2].map(|_| burn::nn::LinearConfig::new(d, d).init(&dev));
            let x = normal::<3>([b, t, d], 2.0, &dev);
            let ours = self_attention(x.clone(), &l[0], &l[1], &l[2], h);
            let e = max_diff(ours, burns_attention(x, &l, h));
            assert!(e < 2e-5, "({b},{t},{d},{h}): {e}");
        }
    }

    /// One pre-LN layer through burn-nn's LayerNorm and Linear and Burn's attention and GELU.
    fn burns_layer(x: Tensor<3>, l: &crate::transformer::Layer) -> Tensor<3> {
        let m = &l.mha;
        let a = burns_attention(
            l.norm_2.forward(x.clone()),
            &[m.query.clone(), m.key.clone(), m.value.clone()],
            m.n_heads,
        );
        let x = x + m.output.forward(a);
        let f = activation::gelu(l.pwff.linear_inner.forward(l.norm_1.forward(x.clone())));
        x + l.pwff.linear_outer.forward(f)
    }

    #[test]
    fn encoder_layer_equals_burns_ops() {
        let dev = Device::flex();
        // The default size; several batch items and query blocks of uneven length; tiny.
        for (b, t, d, h, ff) in [(1, 321, 128, 4, 512), (3, 300, 32, 2, 48), (2, 5, 8, 1, 16)] {
            let mut tr = crate::transformer::Transformer::new(d, ff, h, 1, 1e-5, &dev);
            let mut layer = tr.layers.remove(0);
            // Non-trivial LayerNorm parameters and biases (init gives ones and zeros).
            let w = |n: usize, sd| burn::module::Param::from_tensor(normal::<1>([n], sd, &dev));
            layer.norm_2.gamma = w(d, 1.0);
            layer.norm_2.beta = Some(w(d, 0.5));
            layer.norm_1.gamma = w(d, 1.0);
            layer.norm_1.beta = Some(w(d, 0.5));
            layer.mha.key.bias = Some(w(d, 0.3));
            layer.pwff.linear_inner.bias = Some(w(ff, 0.3));
            let x = normal::<3>([b, t, d], 2.0, &dev) + 3.0;
            let ours = encoder_layer(&x, &layer, 1e-5).expect("flex f32 takes the in-tree path");
            let e = max_rel_diff(ours, burns_layer(x, &layer));
            assert!(e < 1e-5, "({b},{t},{d},{h},{ff}): {e}");
        }
    }

    #[test]
    fn encoder_layer_reads_strided_inputs_and_declines_without_biases() {
        let dev = Device::flex();
        let mut tr = crate::transformer::Transformer::new(16, 32, 4, 1, 1e-5, &dev);
        let mut layer = tr.layers.remove(0);
        let x = normal::<3>([2, 16, 9], 1.0, &dev).swap_dims(1, 2); // [2, 9, 16], strided
        let c = Tensor::<3>::from_data(x.clone().into_data(), &dev);
        let e = max_diff(
            encoder_layer(&x, &layer, 1e-5).unwrap(),
            burns_layer(c, &layer),
        );
        assert!(e < 1e-5, "{e}");
        layer.mha.value.bias = None;
        assert!(encoder_layer(&x, &layer, 1e-5).is_none());
        let ad = Device::flex().autodiff();
        let xa = normal::<3>([1, 4, 16], 1.0, &ad);
        let tr = crate::transformer::Transformer::new(16, 32, 4, 1, 1e-5, &ad);
        assert!(
            encoder_layer(&xa, &tr.layers[0], 1e-5).is_none(),
            "autodiff keeps Burn's ops"
        );
    }

    #[test]
    fn packed_attention_reads_strided_inputs() {
        // A transposed (non-contiguous) input gives what its contiguous copy gives.
        let dev = Device::flex();
        let l = [0, 1, 2].map(|_| burn::nn::LinearConfig::new(16, 16).init(&dev));
        let x = normal::<3>([2, 16, 9], 1.0, &dev);
        let xt = x.swap_dims(1, 2); // [2, 9, 16]
        let a = self_attention(xt.clone(), &l[0], &l[1], &l[2], 4);
        let c = Tensor::<3>::from_data(xt.into_data(), &dev);
        let e = max_diff(a, self_attention(c, &l[0], &l[1], &l[2], 4));
        assert!(e < 1e-6, "{e}");
    }

    #[test]
    fn fused_linear_equals_burns_linear_gelu_and_residual() {
        let dev = Device::flex();
        for (b, t, i, o) in [(1, 321, 128, 512), (3, 7, 5, 9), (40, 321, 128, 128)] {
            let l = burn::nn::LinearConfig::new(i, o).init(&dev);
            let x = normal::<3>([b, t, i], 1.0, &dev);
            let r = normal::<3>([b, t, o], 1.0, &dev);
            let plain = l.forward(x.clone());
            let e = max_rel_diff(linear(x.clone(), &l, false, None), plain.clone());
            assert!(e < 1e-5, "linear ({b},{t},{i},{o}): {e}");
            let e = max_rel_diff(
                linear(x.clone(), &l, true, None),
                activation::gelu(plain.clone()),
            );
            assert!(e < 1e-5, "linear + gelu: {e}");
            let e = max_rel_diff(
                linear(x.clone(), &l, false, Some(r.clone())),
                r.clone() + plain.clone(),
            );
            assert!(e < 1e-5, "linear + residual: {e}");
            let e = max_rel_diff(
                linear(x, &l, true, Some(r.clone())),
                r + activation::gelu(plain),
            );
            assert!(e < 1e-5, "linear + gelu + residual: {e}");
        }
    }

    #[test]
    fn gelu_equals_burns_gelu_in_place_and_shared() {
        let dev = Device::flex();
        let x = normal::<2>([300, 517], 3.0, &dev);
        // `x` is still held here, so the kernel may not write in place.
        let ours = gelu(x.clone());
        let e = max_diff(ours, activation::gelu(x.clone()));
        assert!(e < 2e-6, "{e}");
        // A view with an offset.
        let s = x.clone().slice([10..20, 5..400]);
        let e = max_diff(gelu(s.clone()), activation::gelu(s));
        assert!(e < 2e-6, "{e}");
        // Uniquely owned: written in place.
        let y = Tensor::<1>::from_data(TensorData::from([-1.0f32, 0.0, 2.0]), &dev);
        let g: Vec<f32> = gelu(y).into_data().try_to_vec().unwrap();
        assert!((g[0] + 0.158_655_26).abs() < 1e-6 && g[1] == 0.0, "{g:?}");
        assert!((g[2] - 1.954_499_7).abs() < 1e-6, "{g:?}");
    }

    /// max |a - b| / (1 + |b|): values here reach tens, where f32 rounding alone is ~4e-6.
    fn max_rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0, f32::max)
    }

    #[test]
    fn autodiff_gelu_gradient_equals_burns() {
        let dev = Device::flex().autodiff();
        let x = normal::<2>([64, 300], 3.0, &dev).require_grad();
        let w = normal::<2>([64, 300], 1.0, &dev);
        // A weighted sum so the incoming gradient is not all ones.
        let ours = gelu(x.clone()) * w.clone();
        let burns = activation::gelu(x.clone()) * w;
        let e = max_rel_diff(ours.clone().inner(), burns.clone().inner());
        // Burn's scalar erf is an approximation too: agreement within both errors.
        assert!(e < 5e-6, "forward {e}");
        let g1 = x.grad(&ours.sum().backward()).unwrap();
        let g2 = x.grad(&burns.sum().backward()).unwrap();
        let e = max_rel_diff(g1, g2);
        assert!(e < 1e-5, "gradient {e}");
    }
}
