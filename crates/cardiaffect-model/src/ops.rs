//! The model's operations, one function each: the signal encoder's convolution, LayerNorm,
//! GELU, dropout, linear layers, attention, the feed-forward's halves, a whole encoder layer
//! and the whole embedding. Each calls one method of Burn's backend extension
//! [`CardiaffectOps`], which the backend of its tensors runs: the in-tree kernels on flex,
//! recorded ops with in-tree backwards on flex under autodiff, Burn's ops (the trait's
//! default bodies, [`defaults`]) on every other backend. `KernelMode::Burn` calls those
//! defaults directly, on any backend. Neither this module nor the model (`model.rs`,
//! `transformer.rs`) asks which backend it is on; [`in_windows`], the CPU's inference
//! schedule, asks whether it runs on flex's threads at all.
//!
//! What a forward pass runs with is a [`Pass`], made once at its top: the model's [`Kernels`]
//! policy (a plain value the model's owner sets, e.g. `bench` from `CARDIAFFECT_KERNELS`; no
//! environment variable or global switch is read here), the training step's dropout, the
//! threads an op may split over (1 while a thread runs its share of a batch alone), the
//! scratch the kernels work in (the model's [`Workspace`]; no thread-local) and, at
//! inference, the weights the fused ops read rearranged once ([`Prepared`], held by a
//! [`crate::PreparedModel`]; without them each call rearranges its own).
//!
//! Two forms stay beside the one forward, each for a reason: [`encoder_layer`] and
//! [`signal_embed`] are the fused inference forms of a layer and of the embedding (one
//! parallel pass instead of about seven; BENCHMARKS.md), taken where they apply and otherwise
//! the per-op form runs; `Transformer::forward_attention` keeps the attention weights, which
//! no fused op forms.

use burn::backend::DispatchDevice;
use burn::nn::conv::Conv1d;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::DType;
use std::sync::Arc;

use crate::kernels::{defaults, CardiaffectOps, EncoderLayerParams, Projection, Workspace};

/// The backend of every `Tensor`, whose extension impls route to the kernels.
type B = burn::backend::Dispatch;

/// `B`'s extension leaf `$op` where `$k` takes the extension for tensors of `$dtype`
/// ([`Kernels::extension`]), else its default body (Burn's ops, [`defaults`]) on `B`.
macro_rules! op {
    ($k:expr, $dtype:expr, $op:ident($($arg:expr),* $(,)?)) => {
        if $k.extension($dtype) {
            <B as CardiaffectOps>::$op($($arg),*)
        } else {
            defaults::$op::<B>($($arg),*)
        }
    };
}

/// Which kernels a model runs on flex (see [`Kernels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelMode {
    /// The whole-layer and whole-embedding ops at inference, per-op kernels elsewhere.
    #[default]
    Layer,
    /// The per-op kernels only.
    Ops,
    /// Burn's ops throughout (to compare).
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

    /// The mode named `burn`, `ops`, or `layer`/`in-tree`; `None` for anything else.
    pub fn from_name(name: &str) -> Option<KernelMode> {
        match name {
            "burn" => Some(KernelMode::Burn),
            "ops" => Some(KernelMode::Ops),
            "layer" | "in-tree" => Some(KernelMode::Layer),
            _ => None,
        }
    }
}

/// How a model runs on flex: a plain value held by the model ([`crate::Model::kernels`]) and
/// set by its owner, so that one process can compare settings in alternation
/// (`examples/infer_loop.rs`, `bench`). Other backends run Burn's ops whatever it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    pub mode: KernelMode,
    /// The layer op's attention in AVX-512 register tiles (where the CPU has them) rather
    /// than through gemm's products.
    pub tiled_attention: bool,
    /// Inference splits a batch into windows that each thread runs through the whole model
    /// alone (one window's activations stay in a core's cache; faster at batch 32, measured:
    /// BENCHMARKS.md), rather than every op of the whole batch over the threads.
    pub window_shares: bool,
}

impl Default for Kernels {
    fn default() -> Kernels {
        Kernels {
            mode: KernelMode::Layer,
            tiled_attention: true,
            window_shares: true,
        }
    }
}

impl Kernels {
    /// Any in-tree kernel at all.
    fn in_tree(self) -> bool {
        self.mode != KernelMode::Burn
    }

    /// Whether tensors of `dtype` go through the extension's methods (whose flex kernels
    /// read f32) rather than straight to Burn's ops.
    fn extension(self, dtype: DType) -> bool {
        self.in_tree() && dtype == DType::F32
    }

    /// Whether the whole-layer and whole-embedding ops run for tensors of `dtype`.
    fn fused(self, dtype: DType) -> bool {
        self.mode == KernelMode::Layer && self.extension(dtype)
    }
}

/// Dropout for one training step: rates, the step's seed, and the index of the input's first
/// window in the step's whole batch (0 but for a process's share in data-parallel training,
/// whose masks are the whole batch's masks of its rows).
#[derive(Debug, Clone, Copy)]
pub struct DropoutCtx {
    pub p: f64,
    pub attention_p: f64,
    pub seed: u64,
    pub first_row: usize,
}

/// What one forward pass runs with (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    pub kernels: Kernels,
    /// The step's dropout in training; `None` at inference.
    pub drop: Option<DropoutCtx>,
    /// Threads an in-tree op splits its work over.
    pub threads: usize,
    /// The weights the fused inference ops read, rearranged once; `None`: per call.
    pub prepared: Option<&'a Prepared>,
    /// The scratch the kernels work in (the model's).
    pub workspace: &'a Arc<Workspace>,
}

impl<'a> Pass<'a> {
    /// A pass with `kernels`, dropout `drop` (none at inference), on all of rayon's threads,
    /// the kernels working in `workspace`.
    pub fn new(
        kernels: Kernels,
        drop: Option<DropoutCtx>,
        workspace: &'a Arc<Workspace>,
    ) -> Pass<'a> {
        Pass {
            kernels,
            drop,
            threads: rayon::current_num_threads(),
            prepared: None,
            workspace,
        }
    }

    /// This pass reading the fused ops' weights from `prepared`.
    pub fn with_prepared(self, prepared: Option<&'a Prepared>) -> Pass<'a> {
        Pass { prepared, ..self }
    }

    /// This pass on the calling thread alone: for a share of a batch while the other threads
    /// run theirs, where splitting each op again would only add smaller blocks and more
    /// packing of the same weights.
    pub fn alone(self) -> Pass<'a> {
        Pass { threads: 1, ..self }
    }
}

/// Weights rearranged the way the fused inference ops read them, made once from a model's
/// weights (by [`crate::PreparedModel`]) instead of on every call: rearranging them per call
/// was a visible share of a batch-1 inference (measured: BENCHMARKS.md).
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Per layer, the query, key and value projections side by side ([`packed_qkv`]).
    pub qkv: Vec<Option<(Tensor<2>, Tensor<1>)>>,
    /// Per convolution of the signal encoder, its weight as rows ([`conv_rows`]).
    pub conv_rows: Vec<Tensor<3>>,
    /// The token convolution's taps as rows `[k, d]` ([`token_taps`]).
    pub token_taps: Option<Tensor<2>>,
}

/// `conv`'s weight `[C_out, C_in, k]` as rows `[k, C_in, C_out]`, as the in-tree
/// convolutions read it (tap `j` of input channel `c` one row of outputs), in its own buffer.
pub fn conv_rows(conv: &Conv1d) -> Tensor<3> {
    let w = conv.weight.val();
    let device = w.device();
    Tensor::from_data(w.permute([2, 1, 0]).into_data(), &device)
}

/// The depthwise token convolution's taps `[d, 1, k]` as rows `[k, d]`.
pub fn token_taps(conv: &Conv1d) -> Tensor<2> {
    let rows = conv_rows(conv);
    let [k, _, d] = rows.dims();
    rows.reshape([k, d])
}

/// Whether `c` pads by `k / 2` either side with an odd kernel and no dilation, the only
/// convolutions the channels-last ops take (so that tokens stay aligned with samples).
fn same_padded(c: &Conv1d) -> bool {
    use burn::nn::PaddingConfig1d;
    c.kernel_size % 2 == 1
        && c.dilation == 1
        && matches!(c.padding, PaddingConfig1d::Explicit(a, b)
            if a == c.kernel_size / 2 && b == a)
}

/// Whether `device` is flex without autodiff: where inference runs on rayon's threads.
pub fn plain_flex(device: &Device) -> bool {
    matches!(device.as_dispatch(), DispatchDevice::Flex(_))
}

/// Runs `f` on a rayon worker (at once when already on one) and returns its result. Every
/// parallel op that flex, gemm and the kernels run splits its work with rayon: called from
/// outside the pool, each one is injected into the pool while the caller sleeps until it is
/// done (a wake-up per op); called from a worker, the worker takes a share itself, which
/// lowers batch-1 latency (measured: BENCHMARKS.md). Not with `KernelMode::Burn`.
pub fn on_worker<R: Send>(k: Kernels, f: impl FnOnce() -> R + Send) -> R {
    if !k.in_tree() || rayon::current_thread_index().is_some() {
        return f();
    }
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.expect("the scope ran its closure")
}

/// `f` of windows `x` `[B, L]` in `pass`, the fastest way the kernels allow at inference on
/// flex: on a pool worker ([`on_worker`]), and, where `split` and [`window_shares_apply`],
/// window by window ([`each_window`]). One result per part, in the windows' order (one for
/// the whole batch when it is not split). Training and other backends: `f(x, pass)` (a GPU
/// runs a batch as one, and its work is not on rayon's threads).
pub fn in_windows<R: Send>(
    x: Tensor<2>,
    pass: Pass,
    split: bool,
    f: impl Fn(Tensor<2>, Pass) -> R + Sync + Send,
) -> Vec<R> {
    // Not under autodiff: training's activations, allocated in a worker's malloc arena, were
    // unmapped and faulted back every step, for no measured gain (BENCHMARKS.md).
    if pass.drop.is_some() || !plain_flex(&x.device()) {
        return vec![f(x, pass)];
    }
    on_worker(pass.kernels, || {
        if split && window_shares_apply(x.dims()[0], pass.kernels) {
            each_window(x, pass, f)
        } else {
            vec![f(x, pass)]
        }
    })
}

/// `f` of each window of `x` `[B, L]` as a batch of one, in parallel, the in-tree kernels of
/// each on its thread alone ([`Pass::alone`]); in the windows' order. One window's
/// activations stay in a core's cache from layer to layer, where a batch's went through
/// memory between passes.
pub fn each_window<R: Send>(
    x: Tensor<2>,
    pass: Pass,
    f: impl Fn(Tensor<2>, Pass) -> R + Sync + Send,
) -> Vec<R> {
    use rayon::prelude::*;
    let [b, l] = x.dims();
    (0..b)
        .into_par_iter()
        .with_max_len(1)
        .map(|i| f(x.clone().slice([i..i + 1, 0..l]), pass.alone()))
        .collect()
}

/// Whether a batch of `b` windows at inference goes window by window (see
/// [`Kernels::window_shares`]): with the layer op, where every thread gets the same number of
/// windows or enough of them that an uneven last round weighs little. A single window
/// (latency) is split op by op.
pub fn window_shares_apply(b: usize, k: Kernels) -> bool {
    let threads = rayon::current_num_threads();
    k.window_shares
        && k.mode == KernelMode::Layer
        && b >= 2
        && (b.is_multiple_of(threads) || b >= 4 * threads)
}

/// The three projections side by side, `[d, 3d]` and `[3d]` (`None` without all biases).
pub fn packed_qkv(query: &Linear, key: &Linear, value: &Linear) -> Option<(Tensor<2>, Tensor<1>)> {
    let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val());
    let b = Tensor::cat(vec![bias(query)?, bias(key)?, bias(value)?], 0);
    let w = Tensor::cat(
        vec![query.weight.val(), key.weight.val(), value.weight.val()],
        1,
    );
    Some((w, b))
}

/// The query, key and value projections of `x` `[B, T, d]` side by side, `[B, T, 3d]`: one
/// matrix product (the extension's `linear_bias` at inference, [`linear_wb`] in training or
/// with Burn's ops) where every projection has a bias, else the three concatenated.
fn packed_projection(
    x: Tensor<3>,
    (query, key, value): (&Linear, &Linear, &Linear),
    pass: Pass,
) -> Tensor<3> {
    let k = pass.kernels;
    match packed_qkv(query, key, value) {
        Some((w, b)) if pass.drop.is_none() && k.extension(x.dtype()) => {
            Tensor::from_dispatch(<B as CardiaffectOps>::linear_bias(
                x.into_dispatch(),
                w.into_dispatch(),
                b.into_dispatch(),
                false,
            ))
        }
        Some((w, b)) => linear_wb(x, w, b, k),
        None => Tensor::cat(
            vec![
                query.forward(x.clone()),
                key.forward(x.clone()),
                value.forward(x),
            ],
            2,
        ),
    }
}

/// Multi-head self-attention core (no output projection) of `x` `[B, T, d]` through the
/// `query`, `key` and `value` projections at inference: one matrix product for the three
/// projections and the extension's attention on the packed result (on flex the in-tree op;
/// burn-flex's attention needs `[B, H, T, dk]` inputs, three strided copies before it and
/// one after).
pub fn self_attention(
    x: Tensor<3>,
    qkv: (&Linear, &Linear, &Linear),
    n_heads: usize,
    pass: Pass,
) -> Tensor<3> {
    let packed = packed_projection(x, qkv, Pass { drop: None, ..pass });
    let k = pass.kernels;
    let dtype = packed.dtype();
    let packed = packed.into_dispatch();
    let ws = pass.workspace.clone();
    Tensor::from_dispatch(if k.extension(dtype) {
        <B as CardiaffectOps>::packed_attention(packed, n_heads, pass.threads, ws)
    } else {
        defaults::attention_train::<B>(packed, n_heads, 0.0, 0, 0, ws)
    })
}

/// The query, key and value projections of `x` `[B, T, d]`, each split into `n_heads` heads
/// `[B, H, T, dk]` (Burn's ops).
pub fn heads(
    x: Tensor<3>,
    (query, key, value): (&Linear, &Linear, &Linear),
    n_heads: usize,
) -> [Tensor<4>; 3] {
    let [b, t, _] = x.dims();
    [
        query.forward(x.clone()),
        key.forward(x.clone()),
        value.forward(x),
    ]
    .map(|y| {
        let d = y.dims()[2];
        y.reshape([b, t, n_heads, d / n_heads]).swap_dims(1, 2)
    })
}

/// Heads `[B, H, T, dk]` back side by side, `[B, T, H dk]`.
pub fn merge_heads(y: Tensor<4>) -> Tensor<3> {
    let [b, h, t, dk] = y.dims();
    y.swap_dims(1, 2).reshape([b, t, h * dk])
}

/// The attention weights of heads `q`, `k` `[B, H, T, dk]`: `softmax(q k^T / sqrt(dk))`.
pub fn attention_weights(q: Tensor<4>, k: Tensor<4>) -> Tensor<4> {
    let dk = q.dims()[3];
    softmax(
        q.matmul(k.swap_dims(2, 3)).div_scalar((dk as f32).sqrt()),
        3,
    )
}

/// The attention core of a layer in `pass` (`site` its dropout sites' base): at inference
/// [`self_attention`]; in training the packed projection ([`linear_wb`], one recorded op on
/// flex: its weight gradient one product over all rows) and the extension's training
/// attention (on flex one op forward and backward, each head's probabilities recomputed in
/// the backward instead of Burn's stored `[B, H, T, T]` intermediates), its dropout masks
/// from the step's seed and `site`.
pub fn attention_core(
    x: Tensor<3>,
    qkv: (&Linear, &Linear, &Linear),
    n_heads: usize,
    pass: Pass,
    site: u64,
) -> Tensor<3> {
    let Some(dc) = pass.drop else {
        return self_attention(x, qkv, n_heads, pass);
    };
    let seed = cardiaffect_signal::Rng::new(dc.seed)
        .fork(site + 4)
        .next_u64();
    let packed = packed_projection(x, qkv, pass);
    let (p, first_row, ws) = (dc.attention_p, dc.first_row, pass.workspace.clone());
    Tensor::from_dispatch(op!(
        pass.kernels,
        packed.dtype(),
        attention_train(packed.into_dispatch(), n_heads, p, seed, first_row, ws)
    ))
}

/// `r + l(x)` in `pass`, `l(x)` dropped out at `site` in training: at inference on flex one
/// matrix product whose output starts from the bias and residual rows.
pub fn linear_residual(x: Tensor<3>, l: &Linear, r: Tensor<3>, pass: Pass, site: u64) -> Tensor<3> {
    match pass.drop {
        None => linear(x, l, false, Some(r), pass.kernels),
        Some(d) => {
            let y = linear_train(x, l, pass.kernels);
            r + dropout_rows(y, d.p, d.seed, site, d.first_row, pass.kernels)
        }
    }
}

/// `gelu(l(x))` in `pass`, dropped out at `site` in training: at inference on flex one
/// matrix product with GELU on its output.
pub fn linear_gelu(x: Tensor<3>, l: &Linear, pass: Pass, site: u64) -> Tensor<3> {
    match pass.drop {
        None => linear(x, l, true, None, pass.kernels),
        Some(d) => {
            let y = gelu(linear_train(x, l, pass.kernels), pass.kernels);
            dropout_rows(y, d.p, d.seed, site, d.first_row, pass.kernels)
        }
    }
}

/// `l(x)`, then GELU when `gelu_after`, then `+ residual` when given, at inference: the
/// extension's linear op (on flex one matrix product whose output starts from the bias and
/// residual rows, instead of three or four Burn ops).
pub fn linear(
    x: Tensor<3>,
    l: &Linear,
    gelu_after: bool,
    residual: Option<Tensor<3>>,
    k: Kernels,
) -> Tensor<3> {
    if let (true, Some(b)) = (k.extension(x.dtype()), &l.bias) {
        let (xd, w, b) = (
            x.into_dispatch(),
            l.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        );
        return Tensor::from_dispatch(match residual {
            Some(r) if !gelu_after => {
                <B as CardiaffectOps>::linear_bias_residual(xd, w, b, r.into_dispatch())
            }
            Some(r) => {
                let y =
                    Tensor::<3>::from_dispatch(<B as CardiaffectOps>::linear_bias(xd, w, b, true));
                (y + r).into_dispatch()
            }
            None => <B as CardiaffectOps>::linear_bias(xd, w, b, gelu_after),
        });
    }
    let y = l.forward(x);
    let y = if gelu_after { gelu(y, k) } else { y };
    match residual {
        Some(r) => r + y,
        None => y,
    }
}

/// Whether the fused inference ops run on tensors like `t` with `k` (what makes preparing
/// their weights worth it).
pub fn fused_applies<const N: usize>(t: &Tensor<N>, k: Kernels) -> bool {
    k.fused(t.dtype())
}

/// Whether the whole-layer op runs for `x` in `pass` (inference in the default mode).
pub fn layer_op_applies(x: &Tensor<3>, pass: Pass) -> bool {
    pass.drop.is_none() && pass.kernels.fused(x.dtype())
}

/// One pre-LN encoder layer at inference (no dropout) as one op of the extension: on flex
/// two parallel passes (LayerNorm + QKV for blocks of rows; then, per block of queries,
/// attention, the output projection, LayerNorm and the feed-forward with its residual adds)
/// instead of eight parallel Burn ops, each of which wakes the worker threads (see
/// BENCHMARKS.md); elsewhere the default, the same ops in turn. Call it when
/// [`layer_op_applies`]; `transformer::Layer` gathers the parameters.
pub fn encoder_layer(x: Tensor<3>, p: EncoderLayerParams<B>) -> Tensor<3> {
    Tensor::from_dispatch(<B as CardiaffectOps>::encoder_layer(x.into_dispatch(), p))
}

/// The signal encoder's convolutions, each followed by its LayerNorm (over channels) and
/// GELU, and the projection to the model's width, as [`signal_embed`] takes them.
pub struct EmbedParams<'a> {
    pub convs: &'a [Conv1d],
    pub norms: &'a [LayerNorm],
    pub proj: &'a Linear,
    pub pos_conv: Option<&'a Conv1d>,
    pub cls: Tensor<1>,
    pub pos: Tensor<2>,
    pub eps: f64,
}

/// The Transformer's input from windows `x` `[B, L]` at inference without a mask, as
/// `Model::embed`: one in-tree op per convolution ([`CardiaffectOps::conv_stage`], the
/// projection fused into the last) and one for the token convolution, CLS and positions
/// ([`CardiaffectOps::token_head`]). `Some` at inference in the default mode when every
/// convolution is the model's kind (bias, padding `k / 2`, no dilation; the token convolution
/// depthwise with stride 1), else `None` and the caller runs the per-op form.
pub fn signal_embed(x: &Tensor<2>, p: EmbedParams<'_>, pass: Pass) -> Option<Tensor<3>> {
    if !(pass.drop.is_none() && pass.kernels.fused(x.dtype())) {
        return None;
    }
    let proj = p.proj;
    let d = proj.weight.dims()[1];
    let stages: Vec<_> = p.convs.iter().zip(p.norms).collect();
    if stages.is_empty()
        || !stages
            .iter()
            .all(|(c, n)| same_padded(c) && c.groups == 1 && c.bias.is_some() && n.beta.is_some())
        || proj.bias.is_none()
    {
        return None;
    }
    let pos_conv = match p.pos_conv {
        Some(c) if !(same_padded(c) && c.groups == d && c.stride == 1 && c.bias.is_some()) => {
            return None
        }
        other => other,
    };
    let prepared = pass.prepared.filter(|p| p.conv_rows.len() == stages.len());
    let [b, l] = x.dims();
    let mut h = x.clone().reshape([b, l, 1]).into_dispatch();
    for (i, (c, n)) in stages.iter().enumerate() {
        let rows = match prepared {
            Some(p) => p.conv_rows[i].clone(),
            None => conv_rows(c),
        };
        let last = i + 1 == stages.len();
        let next_pad = match (last, pos_conv) {
            (false, _) => stages[i + 1].0.kernel_size / 2,
            (true, Some(pc)) => pc.kernel_size / 2,
            (true, None) => 0,
        };
        let val = |p: &burn::module::Param<Tensor<1>>| p.val().into_dispatch();
        h = <B as CardiaffectOps>::conv_stage(
            h,
            rows.into_dispatch(),
            val(c.bias.as_ref()?),
            val(&n.gamma),
            val(n.beta.as_ref()?),
            match (last, &proj.bias) {
                (true, Some(bias)) => Projection::Some {
                    weight: proj.weight.val().into_dispatch(),
                    bias: val(bias),
                },
                _ => Projection::None,
            },
            c.stride,
            i == 0,
            next_pad,
            p.eps,
            pass.threads,
            pass.workspace.clone(),
        );
    }
    Some(Tensor::from_dispatch(<B as CardiaffectOps>::token_head(
        h,
        match pos_conv.map(|c| (c, c.bias.as_ref())) {
            Some((c, Some(bias))) => Projection::Some {
                weight: match prepared.and_then(|p| p.token_taps.clone()) {
                    Some(taps) => taps,
                    None => token_taps(c),
                }
                .into_dispatch(),
                bias: bias.val().into_dispatch(),
            },
            _ => Projection::None,
        },
        p.cls.into_dispatch(),
        p.pos.into_dispatch(),
        pass.threads,
    )))
}

/// GELU (exact erf form); on flex, with or without autodiff, the in-tree kernel (burn-flex
/// calls a scalar erf per element), whose recorded backward runs the in-tree derivative.
pub fn gelu<const N: usize>(x: Tensor<N>, k: Kernels) -> Tensor<N> {
    Tensor::from_dispatch(op!(k, x.dtype(), gelu_erf(x.into_dispatch())))
}

/// Inverted dropout at rate `p`, the mask drawn from (`seed`, `site`): on flex one recorded
/// op whose backward redraws the mask; elsewhere Burn's ops with the same mask.
pub fn dropout<const N: usize>(
    x: Tensor<N>,
    p: f64,
    seed: u64,
    site: u64,
    k: Kernels,
) -> Tensor<N> {
    dropout_rows(x, p, seed, site, 0, k)
}

/// [`dropout`] of `x` `[B, ..]` as rows `first_row ..` of a larger batch: the mask of those rows
/// in the whole batch's mask (a process's share in data-parallel training draws what one
/// process drawing the whole batch does).
pub fn dropout_rows<const N: usize>(
    x: Tensor<N>,
    p: f64,
    seed: u64,
    site: u64,
    first_row: usize,
    k: Kernels,
) -> Tensor<N> {
    if p <= 0.0 {
        return x;
    }
    let shape = x.shape();
    let per_row = shape.num_elements() / shape[0].max(1);
    let first = (first_row * per_row) as u64;
    Tensor::from_dispatch(op!(
        k,
        x.dtype(),
        dropout_train(x.into_dispatch(), p, seed, site, first)
    ))
}

/// `norm(x)` with epsilon `eps` (burn-nn keeps its own private): on flex one recorded op,
/// forward and backward in-tree; elsewhere (or without a bias) Burn's.
pub fn layer_norm<const N: usize>(
    x: Tensor<N>,
    norm: &LayerNorm,
    eps: f64,
    k: Kernels,
) -> Tensor<N> {
    let Some(beta) = &norm.beta else {
        return norm.forward(x);
    };
    let (gamma, beta) = (norm.gamma.val().into_dispatch(), beta.val().into_dispatch());
    Tensor::from_dispatch(op!(
        k,
        x.dtype(),
        layer_norm_train(x.into_dispatch(), gamma, beta, eps)
    ))
}

/// `l(x)` in training (flex with autodiff, f32, a bias): one recorded in-tree op whose
/// output starts from the bias rows and whose backward reads the transposes through strides
/// ([`CardiaffectOps::linear_train`]). burn-flex allocates each matrix product's output
/// zeroed and then copies it to a more aligned buffer (a memset and a memmove per product;
/// measured: BENCHMARKS.md), adds the bias in another op, and transposes in the backward.
/// Elsewhere, plain flex included, Burn's linear.
pub fn linear_train<const N: usize>(x: Tensor<N>, l: &Linear, k: Kernels) -> Tensor<N> {
    match &l.bias {
        Some(b) => linear_wb(x, l.weight.val(), b.val(), k),
        None => l.forward(x),
    }
}

/// [`linear_train`] with the weight `[k, n]` and bias `[n]` given as tensors.
pub fn linear_wb<const N: usize>(
    x: Tensor<N>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    k: Kernels,
) -> Tensor<N> {
    Tensor::from_dispatch(op!(
        k,
        x.dtype(),
        linear_train(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch()
        )
    ))
}

/// Whether `conv` is the signal encoder's kind, which the extension's convolution takes: a
/// bias, odd kernel, padding `k / 2`, no dilation or groups.
fn encoder_kind(conv: &Conv1d) -> bool {
    conv.bias.is_some() && conv.groups == 1 && same_padded(conv)
}

/// `conv` on channels-last `x` `[B, L, C_in]` -> `[B, L_out, C_out]`: for the signal
/// encoder's kind of convolution (a bias, odd kernel, padding `k / 2`, no dilation or groups)
/// the extension's (on flex one recorded op with an in-tree backward: strided matrix
/// products, no transposes around the LayerNorms that follow); for others Burn's `Conv1d` on
/// the channels-first view.
pub fn conv1d(x: Tensor<3>, conv: &Conv1d, pass: Pass) -> Tensor<3> {
    let bias = match &conv.bias {
        Some(b) if encoder_kind(conv) => b.val(),
        _ => return conv.forward(x.swap_dims(1, 2)).swap_dims(1, 2),
    };
    let (w, stride) = (conv.weight.val().into_dispatch(), conv.stride);
    let ws = pass.workspace.clone();
    Tensor::from_dispatch(op!(
        pass.kernels,
        x.dtype(),
        conv1d_train(x.into_dispatch(), w, bias.into_dispatch(), stride, ws)
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::tensor::activation;
    use burn::tensor::module::attention;
    use burn::tensor::TensorData;

    /// The wgpu device (in CI Mesa's software Vulkan, lavapipe).
    #[cfg(feature = "wgpu")]
    pub(crate) fn wgpu() -> Device {
        crate::wgpu_device().expect("a wgpu adapter (in CI: mesa-vulkan-drivers)")
    }

    /// An inference pass with the default kernels.
    pub(crate) fn inference() -> Pass<'static> {
        Pass::new(Kernels::default(), None, workspace())
    }

    /// One workspace for the tests' passes.
    pub(crate) fn workspace() -> &'static Arc<Workspace> {
        static WS: std::sync::LazyLock<Arc<Workspace>> = std::sync::LazyLock::new(Workspace::new);
        &WS
    }

    /// Seeded normal values (the tests give the same numbers every run).
    pub(crate) fn normal<const D: usize>(shape: [usize; D], sd: f64, dev: &Device) -> Tensor<D> {
        let mut rng = cardiaffect_signal::Rng::new(shape.iter().product::<usize>() as u64);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * sd) as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), dev)
    }

    pub(crate) fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Burn's path: three projections, split heads, Burn's attention, merge heads.
    pub(crate) fn burns_attention(x: Tensor<3>, l: &[Linear; 3], h: usize) -> Tensor<3> {
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
            let ours = self_attention(x.clone(), (&l[0], &l[1], &l[2]), h, inference());
            let e = max_diff(ours, burns_attention(x, &l, h));
            assert!(e < 2e-5, "({b},{t},{d},{h}): {e}");
        }
    }

    #[test]
    fn packed_attention_reads_strided_inputs() {
        // A transposed (non-contiguous) input gives what its contiguous copy gives.
        let dev = Device::flex();
        let l = [0, 1, 2].map(|_| burn::nn::LinearConfig::new(16, 16).init(&dev));
        let x = normal::<3>([2, 16, 9], 1.0, &dev);
        let xt = x.swap_dims(1, 2); // [2, 9, 16]
        let a = self_attention(xt.clone(), (&l[0], &l[1], &l[2]), 4, inference());
        let c = Tensor::<3>::from_data(xt.into_data(), &dev);
        let e = max_diff(a, self_attention(c, (&l[0], &l[1], &l[2]), 4, inference()));
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
            let e = max_rel_diff(
                linear(x.clone(), &l, false, None, Kernels::default()),
                plain.clone(),
            );
            assert!(e < 1e-5, "linear ({b},{t},{i},{o}): {e}");
            let e = max_rel_diff(
                linear(x.clone(), &l, true, None, Kernels::default()),
                activation::gelu(plain.clone()),
            );
            assert!(e < 1e-5, "linear + gelu: {e}");
            let e = max_rel_diff(
                linear(x.clone(), &l, false, Some(r.clone()), Kernels::default()),
                r.clone() + plain.clone(),
            );
            assert!(e < 1e-5, "linear + residual: {e}");
            let e = max_rel_diff(
                linear(x, &l, true, Some(r.clone()), Kernels::default()),
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
        let ours = gelu(x.clone(), Kernels::default());
        let e = max_diff(ours, activation::gelu(x.clone()));
        assert!(e < 2e-6, "{e}");
        // A view with an offset.
        let s = x.clone().slice([10..20, 5..400]);
        let e = max_diff(gelu(s.clone(), Kernels::default()), activation::gelu(s));
        assert!(e < 2e-6, "{e}");
        // Uniquely owned: written in place.
        let y = Tensor::<1>::from_data(TensorData::from([-1.0f32, 0.0, 2.0]), &dev);
        let g: Vec<f32> = gelu(y, Kernels::default())
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!((g[0] + 0.158_655_26).abs() < 1e-6 && g[1] == 0.0, "{g:?}");
        assert!((g[2] - 1.954_499_7).abs() < 1e-6, "{g:?}");
    }

    /// max |a - b| / (1 + |b|): values here reach tens, where f32 rounding alone is ~4e-6.
    pub(crate) fn max_rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0, f32::max)
    }

    /// On wgpu every entry point runs the extension's default body (Burn's ops) and computes
    /// what flex's kernels compute (the layer op: `transformer`'s tests).
    #[cfg(feature = "wgpu")]
    #[test]
    fn on_wgpu_the_entry_points_run_burns_ops_as_flex_runs_its_kernels() {
        let dev = wgpu();
        let flex = Device::flex();
        let on = |t: Tensor<3>, d: &Device| Tensor::<3>::from_data(t.into_data(), d);
        let x = normal::<3>([2, 9, 16], 1.0, &flex);
        let l = [0, 1, 2].map(|_| burn::nn::LinearConfig::new(16, 16).init(&flex));
        let lw = l.clone().map(|l| l.to_device(&dev));
        let want = self_attention(x.clone(), (&l[0], &l[1], &l[2]), 4, inference());
        let got = self_attention(
            on(x.clone(), &dev),
            (&lw[0], &lw[1], &lw[2]),
            4,
            inference(),
        );
        let e = max_diff(on(got, &flex), want);
        assert!(e < 1e-4, "attention {e}");
        let k = Kernels::default();
        let got = linear(
            on(x.clone(), &dev),
            &lw[0],
            true,
            Some(on(x.clone(), &dev)),
            k,
        );
        let e = max_rel_diff(
            on(got, &flex),
            linear(x.clone(), &l[0], true, Some(x.clone()), Kernels::default()),
        );
        assert!(e < 1e-4, "linear {e}");
        let e = max_rel_diff(
            on(gelu(on(x.clone(), &dev), Kernels::default()), &flex),
            gelu(x.clone(), Kernels::default()),
        );
        assert!(e < 1e-4, "gelu {e}");
        // Training's ops: the same dropout mask, Burn's LayerNorm and Burn's convolution.
        let got = dropout(on(x.clone(), &dev), 0.3, 5, 2, Kernels::default());
        let e = max_diff(
            on(got, &flex),
            dropout(x.clone(), 0.3, 5, 2, Kernels::default()),
        );
        assert!(e < 1e-6, "dropout {e}");
        let norm = burn::nn::LayerNormConfig::new(16).init(&flex);
        let got = layer_norm(
            on(x.clone(), &dev),
            &norm.clone().to_device(&dev),
            1e-5,
            Kernels::default(),
        );
        let e = max_rel_diff(
            on(got, &flex),
            layer_norm(x.clone(), &norm, 1e-5, Kernels::default()),
        );
        assert!(e < 1e-4, "layer norm {e}");
        let conv = burn::nn::conv::Conv1dConfig::new(16, 4, 3)
            .with_padding(burn::nn::PaddingConfig1d::Explicit(1, 1))
            .init(&dev);
        let got = conv1d(on(x.clone(), &dev), &conv, inference());
        let conv_flex = conv.clone().to_device(&flex);
        let want = conv_flex.forward(x.clone().swap_dims(1, 2)).swap_dims(1, 2);
        let e = max_rel_diff(on(got, &flex), want);
        assert!(e < 1e-4, "convolution {e}");
    }

    /// The training op and its gradient against Burn's ops (split heads, softmax, the same
    /// dropout mask as a tensor, merge heads) under autodiff.
    #[test]
    fn training_attention_and_its_gradient_equal_burns_ops_with_the_same_mask() {
        use burn::tensor::activation::softmax;
        /// The backend of every `Tensor`, whose extension impls route to the kernels.
        type B = burn::backend::Dispatch;
        let ad = Device::flex().autodiff();
        for (b, t, d, h, p) in [
            (2, 9, 16, 4, 0.0),
            (3, 33, 32, 2, 0.3),
            (2, 321, 128, 4, 0.1),
        ] {
            let qkv = normal::<3>([b, t, 3 * d], 1.0, &ad);
            let w = normal::<3>([b, t, d], 1.0, &ad);
            let seed = 77;
            let x = qkv.clone().detach().require_grad();
            let ours = Tensor::<3>::from_dispatch(<B as CardiaffectOps>::attention_train(
                x.clone().into_dispatch(),
                h,
                p,
                seed,
                0,
                workspace().clone(),
            ));
            let g_ours = x
                .grad(&(ours.clone() * w.clone()).sum().backward())
                .unwrap();

            let y = qkv.detach().require_grad();
            let dk = d / h;
            let part = |i: usize| {
                y.clone()
                    .slice([0..b, 0..t, i * d..(i + 1) * d])
                    .reshape([b, t, h, dk])
                    .swap_dims(1, 2)
            };
            let mask = crate::kernels::train_attention::Dropout::new(p, seed).mask(b, h, t);
            let mask = Tensor::<4>::from_data(TensorData::new(mask, [b, h, t, t]), &ad);
            let probs = softmax(
                part(0)
                    .matmul(part(1).swap_dims(2, 3))
                    .div_scalar((dk as f32).sqrt()),
                3,
            );
            let burns = (probs * mask)
                .matmul(part(2))
                .swap_dims(1, 2)
                .reshape([b, t, d]);
            let g_burns = y.grad(&(burns.clone() * w).sum().backward()).unwrap();
            let e = max_rel_diff(ours.inner(), burns.inner());
            assert!(e < 1e-5, "forward ({b},{t},{d},{h},{p}): {e}");
            let e = max_rel_diff(g_ours, g_burns);
            assert!(e < 1e-5, "gradient ({b},{t},{d},{h},{p}): {e}");
        }
        // A dropout mask drops about p of the weights and scales the rest.
        let m = crate::kernels::train_attention::Dropout::new(0.25, 5).mask(2, 2, 100);
        let kept = m.iter().filter(|&&v| v > 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "{kept}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    }

    /// An op of an input and two parameters, ours (`forward(true)`) against Burn's
    /// (`forward(false)`) under autodiff, with the output weighted by `w` and summed: asserts
    /// that the outputs (their shapes, then values) and the gradients of `x` and of each named
    /// parameter agree within `tol` (in that order, as [`max_rel_diff`]), the messages naming
    /// `case`. The autodiff tests below each compare an op this way.
    fn assert_autodiff_equals_burns<const K: usize>(
        forward: impl Fn(bool) -> Tensor<3>,
        (x, w): (&Tensor<3>, &Tensor<3>),
        ((p_name, p), (q_name, q)): ((&str, &Tensor<K>), (&str, &Tensor<1>)),
        tol: [f32; 4],
        case: &str,
    ) {
        let run = |ours: bool| {
            let y = forward(ours);
            let g = (y.clone() * w.clone()).sum().backward();
            let grads = (
                x.grad(&g).unwrap(),
                p.grad(&g).unwrap(),
                q.grad(&g).unwrap(),
            );
            (y.inner(), grads)
        };
        let ((o, (ox, op, oq)), (r, (rx, rp, rq))) = (run(true), run(false));
        assert_eq!(o.dims(), r.dims(), "{case}");
        let e = max_rel_diff(o, r);
        assert!(e < tol[0], "forward {case}: {e}");
        let e = max_rel_diff(ox, rx);
        assert!(e < tol[1], "input gradient {case}: {e}");
        let e = max_rel_diff(op, rp);
        assert!(e < tol[2], "{p_name} gradient {case}: {e}");
        let e = max_rel_diff(oq, rq);
        assert!(e < tol[3], "{q_name} gradient {case}: {e}");
    }

    /// The recorded LayerNorm against burn-nn's (Burn's decomposed ops under autodiff):
    /// output and the gradients of input, gamma and beta; widths on and off the 16 lanes, and
    /// an input transposed in memory (as the signal encoder passes it).
    #[test]
    fn autodiff_layer_norm_and_its_gradients_equal_burns() {
        use burn::module::Param;
        let ad = Device::flex().autodiff();
        for (b, t, d, transposed) in [(3, 37, 128, false), (2, 5, 20, false), (2, 64, 48, true)] {
            let mut norm = burn::nn::LayerNormConfig::new(d)
                .with_epsilon(1e-5)
                .init(&ad);
            norm.gamma = Param::from_tensor(normal::<1>([d], 1.0, &ad) + 1.0);
            norm.beta = Some(Param::from_tensor(normal::<1>([d], 0.5, &ad)));
            let x = if transposed {
                normal::<3>([b, d, t], 2.0, &ad).swap_dims(1, 2)
            } else {
                normal::<3>([b, t, d], 2.0, &ad) + 3.0
            };
            let x = x.detach().require_grad();
            let w = normal::<3>([b, t, d], 1.0, &ad);
            assert_autodiff_equals_burns(
                |ours| {
                    if ours {
                        layer_norm(x.clone(), &norm, 1e-5, Kernels::default())
                    } else {
                        norm.forward(x.clone())
                    }
                },
                (&x, &w),
                (
                    ("gamma", &norm.gamma),
                    ("beta", norm.beta.as_ref().unwrap()),
                ),
                [1e-5, 1e-4, 1e-4, 1e-5],
                &format!("({b},{t},{d})"),
            );
        }
    }

    /// The channels-last training convolution against burn-nn's `Conv1d` under autodiff:
    /// output and the gradients of input, weight and bias, over kernels, strides and channel
    /// counts (one input channel, as the first convolution has, included).
    #[test]
    fn autodiff_channels_last_conv_and_its_gradients_equal_burns() {
        use burn::module::Param;
        use burn::nn::conv::Conv1dConfig;
        use burn::nn::PaddingConfig1d;
        let ad = Device::flex().autodiff();
        for (b, l, c_in, c_out, k, s) in [
            (2, 40, 1, 8, 7, 2),
            (3, 33, 6, 5, 5, 2),
            (2, 17, 4, 4, 3, 1),
            (1, 9, 3, 2, 1, 1),
            (2, 10, 2, 3, 5, 3),
        ] {
            let mut conv = Conv1dConfig::new(c_in, c_out, k)
                .with_stride(s)
                .with_padding(PaddingConfig1d::Explicit(k / 2, k / 2))
                .init(&ad);
            conv.weight = Param::from_tensor(normal::<3>([c_out, c_in, k], 0.5, &ad));
            conv.bias = Some(Param::from_tensor(normal::<1>([c_out], 0.5, &ad)));
            let x = normal::<3>([b, l, c_in], 1.0, &ad).require_grad();
            let l_out = (l + 2 * (k / 2) - k) / s + 1;
            let w = normal::<3>([b, l_out, c_out], 1.0, &ad);
            assert_autodiff_equals_burns(
                |ours| {
                    if ours {
                        assert!(encoder_kind(&conv));
                        conv1d(x.clone(), &conv, inference())
                    } else {
                        conv.forward(x.clone().swap_dims(1, 2)).swap_dims(1, 2)
                    }
                },
                (&x, &w),
                (
                    ("weight", &conv.weight),
                    ("bias", conv.bias.as_ref().unwrap()),
                ),
                [1e-5; 4],
                &format!("{:?}", (b, l, c_in, c_out, k, s)),
            );
        }
    }

    /// The recorded linear op against Burn's `Linear` under autodiff: output and the gradients
    /// of input, weight and bias, rank 2 and 3, sizes above and below the parallel products'.
    #[test]
    fn autodiff_linear_and_its_gradients_equal_burns() {
        use burn::module::Param;
        let ad = Device::flex().autodiff();
        for (rows, k, n) in [(7, 5, 3), (2 * 321, 128, 384), (64, 33, 17)] {
            let mut l = burn::nn::LinearConfig::new(k, n).init(&ad);
            l.bias = Some(Param::from_tensor(normal::<1>([n], 1.0, &ad)));
            let x3 = normal::<3>([2, rows / 2 + rows % 2, k], 1.0, &ad);
            let x = x3.detach().require_grad();
            let w = normal::<3>([2, rows / 2 + rows % 2, n], 1.0, &ad);
            assert_autodiff_equals_burns(
                |ours| {
                    if ours {
                        linear_train(x.clone(), &l, Kernels::default())
                    } else {
                        l.forward(x.clone())
                    }
                },
                (&x, &w),
                (("weight", &l.weight), ("bias", l.bias.as_ref().unwrap())),
                [1e-5, 1e-5, 1e-4, 1e-4],
                &format!("({rows},{k},{n})"),
            );
        }
        // Rank 2, as the classification head takes the CLS rows.
        let l = burn::nn::LinearConfig::new(6, 2).init(&ad);
        let x = normal::<2>([5, 6], 1.0, &ad).require_grad();
        let e = max_rel_diff(
            linear_train(x.clone(), &l, Kernels::default()).inner(),
            l.forward(x).inner(),
        );
        assert!(e < 1e-6, "rank 2: {e}");
    }

    /// The recorded dropout equals `x * mask` with the mask as a tensor, forward and gradient,
    /// to the bit; another site draws another mask.
    #[test]
    fn autodiff_dropout_equals_a_multiplication_by_its_mask() {
        let ad = Device::flex().autodiff();
        let shape = [3, 70_001];
        let x = normal::<2>(shape, 1.0, &ad).require_grad();
        let w = normal::<2>(shape, 1.0, &ad);
        let mut mask = vec![1.0f32; 3 * 70_001];
        crate::kernels::train_ops::apply_dropout_mask(&mut mask, None, 0.2, 9, 3, 0);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, shape), &ad);
        let ours = dropout(x.clone(), 0.2, 9, 3, Kernels::default());
        let g_ours = x
            .grad(&(ours.clone() * w.clone()).sum().backward())
            .unwrap();
        let burns = x.clone() * mask.clone();
        let g_burns = x
            .grad(&(burns.clone() * w.clone()).sum().backward())
            .unwrap();
        assert_eq!(ours.clone().inner().into_data(), burns.inner().into_data());
        assert_eq!(g_ours.into_data(), g_burns.into_data());
        let dropped = mask
            .clone()
            .equal_elem(0.0)
            .int()
            .sum()
            .into_scalar::<i64>() as f64
            / (3.0 * 70_001.0);
        assert!((dropped - 0.2).abs() < 0.005, "{dropped}");
        let other = dropout(x.clone(), 0.2, 9, 4, Kernels::default()).inner();
        assert_ne!(other.into_data(), ours.inner().into_data());
    }

    /// Rows `first ..` of a batch given alone (a process's share in data-parallel training)
    /// draw the whole batch's dropout masks there, to the bit, forward and backward: offsets
    /// inside a mask chunk, on a chunk boundary and past several; and the attention's masks.
    #[test]
    fn a_share_of_the_rows_draws_the_whole_batchs_dropout_masks() {
        let ad = Device::flex().autodiff();
        let (rows, cols) = (4, 70_001);
        let x = normal::<2>([rows, cols], 1.0, &ad);
        let w = normal::<2>([rows, cols], 1.0, &ad);
        let whole = x.clone().require_grad();
        let y = dropout(whole.clone(), 0.2, 9, 3, Kernels::default());
        let g = whole
            .grad(&(y.clone() * w.clone()).sum().backward())
            .unwrap();
        for first in 1..rows {
            let part = x.clone().slice([first..rows, 0..cols]).require_grad();
            let wp = w.clone().slice([first..rows, 0..cols]);
            let yp = dropout_rows(part.clone(), 0.2, 9, 3, first, Kernels::default());
            let gp = part.grad(&(yp.clone() * wp).sum().backward()).unwrap();
            let yr = y.clone().inner().slice([first..rows, 0..cols]);
            assert_eq!(yp.inner().into_data(), yr.into_data(), "rows {first}..");
            let gr = g.clone().slice([first..rows, 0..cols]);
            assert_eq!(gp.into_data(), gr.into_data(), "gradient, rows {first}..");
        }
        // The mask itself (Burn's ops elsewhere multiply by it) from any element on.
        let mut all = vec![1.0f32; 3 * crate::kernels::train_ops::DROPOUT_CHUNK + 77];
        crate::kernels::train_ops::apply_dropout_mask(&mut all, None, 0.3, 4, 2, 0);
        for first in [
            1,
            crate::kernels::train_ops::DROPOUT_CHUNK - 1,
            crate::kernels::train_ops::DROPOUT_CHUNK,
            crate::kernels::train_ops::DROPOUT_CHUNK + 5,
            2 * crate::kernels::train_ops::DROPOUT_CHUNK + 9,
        ] {
            let mut part = vec![1.0f32; all.len() - first];
            crate::kernels::train_ops::apply_dropout_mask(&mut part, None, 0.3, 4, 2, first);
            assert!(part == all[first..], "from element {first}");
        }
        let (b, h, t) = (3, 2, 17);
        let all = crate::kernels::train_attention::Dropout::new(0.25, 5).mask(b, h, t);
        let part = crate::kernels::train_attention::Dropout::new(0.25, 5)
            .at_row(1, h)
            .mask(b - 1, h, t);
        assert!(part == all[h * t * t..], "attention masks");
    }

    #[test]
    fn autodiff_gelu_gradient_equals_burns() {
        let dev = Device::flex().autodiff();
        let x = normal::<2>([64, 300], 3.0, &dev).require_grad();
        let w = normal::<2>([64, 300], 1.0, &dev);
        // A weighted sum so the incoming gradient is not all ones.
        let ours = gelu(x.clone(), Kernels::default()) * w.clone();
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
