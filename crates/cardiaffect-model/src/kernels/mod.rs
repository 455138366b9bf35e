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
//!   switches per inference 267 -> 77; BENCHMARKS.md). On AVX-512 its attention runs in
//!   register tiles ([`fused_attention`], vector operations in [`simd`]) from keys transposed
//!   once per layer; [`set_tiled_attention`] switches back to gemm's products, to compare.
//!
//! A batch at inference goes window by window, each thread running whole windows through the
//! model alone ([`window_shares_apply`], [`serially`]): one window's activations stay in a
//! core's cache from op to op (batch 32 about -12 %; BENCHMARKS.md). A single window is split
//! op by op over the threads.
//!
//! Weights that these ops rearrange (the QKV projections side by side, convolution taps as
//! rows) are kept between calls with the tensors they came from ([`prepared`]).
//!
//! - [`signal_embed`]: the signal encoder at inference (each convolution with its LayerNorm
//!   and GELU, the projection, the token convolution, CLS and positions) channels-last, one
//!   parallel pass per convolution instead of about a dozen ops with transposing copies
//!   between them ([`embed`]).
//!
//! - [`train_self_attention`]: attention in training (attention dropout included) as one
//!   recorded autodiff op from the packed QKV projection, forward and backward in-tree, each
//!   head's probabilities recomputed in the backward instead of Burn's recorded fallback and
//!   its stored `[B, H, T, T]` intermediates ([`train_attention`]).
//!
//! - [`TrainOps`]: the rest of a training step as recorded autodiff ops with in-tree forward
//!   and backward ([`train_ops`], [`train_conv`]): LayerNorm ([`layer_norm`]), dropout whose
//!   backward redraws its hashed mask ([`dropout`]), linear layers whose output starts from the
//!   bias rows ([`linear_train`]) and the signal encoder's convolutions channels-last
//!   ([`conv1d_channels_last`]), in place of the ten-odd Burn ops, stored masks, zeroed and
//!   copied product outputs and transposes each of them recorded.
//!
//! Linear layers and the layer op take the in-tree path on plain (non-autodiff) flex f32
//! tensors only; GELU, LayerNorm, dropout, the convolutions and training's attention on flex
//! with or without autodiff; training's linear op under autodiff only. Other backends
//! (`cuda`, `wgpu`) use Burn's ops throughout.
//! Files: this one holds the extension traits, the mode switch and the entry points;
//! [`gemm`] the matrix-product helpers and the fused linear layer, [`attention`] one head of
//! attention and the packed multi-head op, [`fused_attention`] the AVX-512 tiles of one head,
//! [`layer`] the whole-layer op, [`embed`] the signal encoder's ops, [`prepared`] the kept
//! weights, [`gelu`] GELU forward and backward, [`train_attention`] training's attention
//! forward and backward, [`train_ops`] training's LayerNorm, dropout and linear ops, and
//! [`train_conv`] training's convolutions.
//!
//! `CARDIAFFECT_KERNELS=ops` keeps the per-op kernels but not the layer op, `=burn` sends
//! everything through Burn's ops (to compare; see [`KernelMode`]).

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, DispatchDevice, ExtensionType, Flex};
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::DType;
use burn_flex::FlexTensor;

mod attention;
mod embed;
mod fused_attention;
mod gelu;
mod gemm;
mod layer;
mod prepared;
#[cfg(target_arch = "x86_64")]
mod simd;
mod train_attention;
mod train_conv;
mod train_ops;

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

    /// One convolution of the signal encoder at inference, channels-last: `x` `[B, R, C_in]`
    /// (`R = L + 2 (k / 2)` rows with the zero padding, or `L` rows when `pad_input`), the
    /// convolution (weight `[C_out, C_in, k]`, bias, stride), LayerNorm over channels, GELU,
    /// then the projection `[C_out, d]` + `[d]` if given: `[B, L_out + 2 next_pad, width]`
    /// with `next_pad` zero rows either side for the next convolution.
    #[allow(clippy::too_many_arguments)]
    fn conv_stage(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        #[extension_type] proj: Projection<Self>,
        stride: usize,
        pad_input: bool,
        next_pad: usize,
        eps: f64,
    ) -> FloatTensor<Self>;

    /// The Transformer's input from the tokens `[B, T + 2p, d]` (`p` zero rows either side,
    /// `p = k / 2` of the depthwise token convolution `[d, 1, k]` + `[d]` if given, else 0):
    /// the token convolution with GELU added to each token, the CLS row `[d]` first and the
    /// positions `[T + 1, d]` added: `[B, T + 1, d]`.
    fn token_head(
        tokens: FloatTensor<Self>,
        #[extension_type] pos_conv: Projection<Self>,
        cls: FloatTensor<Self>,
        pos: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `r + x w + b`: a linear layer added to the residual stream `r` in one product.
    fn linear_bias_residual(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        r: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// An optional weight and bias for [`CardiaffectOps::conv_stage`] (the projection after the
/// last convolution) and [`CardiaffectOps::token_head`] (the token convolution). An enum, as
/// Burn's extension macro carries `Option`s of tensors for its own backends only.
#[derive(ExtensionType)]
pub enum Projection<B: Backend> {
    None,
    Some {
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
    },
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
    /// Only the CLS row (row 0 of each item) of the output, `[B, 1, d]`: the last layer when
    /// only the CLS vector is wanted (classification). Every row's keys and values are still
    /// computed; the queries, attention, output projection and feed-forward of the other rows
    /// are not (a fifth of the base model's work at inference).
    pub cls_only: bool,
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

/// Attention for training, differentiable: on the autodiff backend one recorded op whose
/// backward runs the in-tree backward on flex ([`train_attention`]).
#[backend_extension(Flex, Autodiff)]
pub trait AttentionTrainOps: Backend {
    /// `qkv` `[B, T, 3d]` -> `[B, T, d]`: per head `dropout(softmax(q_h k_h^T / sqrt(dk))) v_h`,
    /// the dropout at rate `dropout` with masks drawn from `seed`; `first_row` is the index of
    /// `qkv`'s first window in the step's whole batch (0 unless it is a process's share).
    fn attention_train(
        qkv: FloatTensor<Self>,
        n_heads: usize,
        dropout: f64,
        seed: u64,
        first_row: usize,
    ) -> FloatTensor<Self>;

    /// The gradient with respect to `qkv` given the gradient `grad` of the output.
    fn attention_train_backward(
        _qkv: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _n_heads: usize,
        _dropout: f64,
        _seed: u64,
        _first_row: usize,
    ) -> FloatTensor<Self> {
        // Only the inner backend (flex) runs a backward; autodiff records, never differentiates
        // its own backward here.
        unimplemented!("attention_train_backward: implemented on flex only")
    }
}

/// Training's element-wise ops, differentiable: on the autodiff backend recorded ops whose
/// backward runs in-tree on flex ([`train_ops`]).
#[backend_extension(Flex, Autodiff)]
pub trait TrainOps: Backend {
    /// `x` times a dropout mask at rate `p` (0, or `1 / (1 - p)`) drawn from `seed` and
    /// `site`; the same arguments always draw the same mask. `first` is the index of `x`'s
    /// first element in the step's whole tensor (0 unless `x` is a process's share of it).
    fn dropout_train(
        x: FloatTensor<Self>,
        p: f64,
        seed: u64,
        site: u64,
        first: u64,
    ) -> FloatTensor<Self>;

    /// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * gamma + beta`.
    fn layer_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;

    /// [`TrainOps::layer_norm_train`] and each row's mean and `1 / sqrt(var + eps)`, `[rows, 2]`.
    fn layer_norm_stats(
        _x: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _beta: FloatTensor<Self>,
        _eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Only the inner backend (flex) runs these; autodiff records, never differentiates
        // its own backward here.
        unimplemented!("layer_norm_stats: implemented on flex only")
    }

    /// `x W + b` for `x` `[.., k]`, `weight` `[k, n]`, `bias` `[n]`.
    fn linear_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The gradients of [`TrainOps::linear_train`] with respect to the input (empty unless
    /// `input_grad`), the weight and the bias, given the output's `grad`.
    fn linear_backward(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _input_grad: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("linear_backward: implemented on flex only")
    }

    /// A convolution of the signal encoder, channels-last: `x` `[B, L, C_in]`, `weight`
    /// `[C_out, C_in, k]` (odd `k`, padding `k / 2` either side), `bias` `[C_out]` -> `[B,
    /// L_out, C_out]`.
    fn conv1d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
    ) -> FloatTensor<Self>;

    /// [`TrainOps::conv1d_train`] and its input padded with zero rows, `[B, L + 2p, C_in]`.
    fn conv1d_padded(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _bias: FloatTensor<Self>,
        _stride: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("conv1d_padded: implemented on flex only")
    }

    /// The gradients with respect to the input (empty unless `input_grad`), the weight and
    /// the bias, from the padded input and the output's `grad`.
    fn conv1d_backward(
        _padded: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _stride: usize,
        _input_grad: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("conv1d_backward: implemented on flex only")
    }

    /// The gradients with respect to `x`, `gamma` and `beta` given the output's `grad`.
    fn layer_norm_backward(
        _x: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _stats: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("layer_norm_backward: implemented on flex only")
    }
}

/// Whether a tensor on `device` can take the in-tree path.
fn fast_path(device: &Device, dtype: DType) -> bool {
    in_tree_enabled() && plain_flex(device) && dtype == DType::F32
}

/// Whether a tensor on `device` can take an in-tree op that has a recorded backward too
/// (flex with or without autodiff).
fn train_path(device: &Device, dtype: DType) -> bool {
    in_tree_enabled() && on_flex(device) && dtype == DType::F32
}

/// Whether `c` pads by `k / 2` either side with an odd kernel and no dilation, the only
/// convolutions the channels-last ops take (so that tokens stay aligned with samples).
fn same_padded(c: &burn::nn::conv::Conv1d) -> bool {
    use burn::nn::PaddingConfig1d;
    c.kernel_size % 2 == 1
        && c.dilation == 1
        && matches!(c.padding, PaddingConfig1d::Explicit(a, b)
            if a == c.kernel_size / 2 && b == a)
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

static TILED_ATTENTION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether the layer op runs attention in its AVX-512 register tiles (where the CPU has
/// them) or through gemm's products, as before the tiles: on by default. Switchable at any
/// time so that one process can time both in alternation (`examples/infer_loop.rs`), where
/// two processes a few seconds apart on a shared host differ by more than the change.
pub fn set_tiled_attention(on: bool) {
    TILED_ATTENTION.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// See [`set_tiled_attention`].
pub fn tiled_attention() -> bool {
    TILED_ATTENTION.load(std::sync::atomic::Ordering::Relaxed)
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

static WINDOW_SHARES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether inference splits a batch into windows that each thread runs through the whole
/// model alone (on by default), or splits every op of the whole batch over the threads, as
/// before. Switchable at any time, to compare in one process (`examples/infer_loop.rs`).
pub fn set_window_shares(on: bool) {
    WINDOW_SHARES.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a batch of `b` windows at inference goes window by window (see
/// [`set_window_shares`]): with the layer op, where every thread gets the same number of
/// windows or enough of them that an uneven last round weighs little. A single window
/// (latency) is split op by op.
pub fn window_shares_apply(b: usize) -> bool {
    let threads = rayon::current_num_threads();
    WINDOW_SHARES.load(std::sync::atomic::Ordering::Relaxed)
        && kernel_mode() == KernelMode::Layer
        && b >= 2
        && (b.is_multiple_of(threads) || b >= 4 * threads)
}

thread_local! {
    /// Set while this thread runs a share of a batch alone ([`serially`]).
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Threads the in-tree kernels split one op over: rayon's, or 1 inside [`serially`].
pub(crate) fn kernel_threads() -> usize {
    if SERIAL.with(|s| s.get()) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Runs `f` with the in-tree kernels on this thread alone (see [`kernel_threads`]): for a
/// share of a batch while the other threads run theirs, where splitting each op again would
/// only add smaller blocks and more packing of the same weights.
pub(crate) fn serially<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
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

/// Multi-head self-attention core for training (with or without autodiff) on flex f32, with
/// attention dropout at rate `dropout` drawn from `seed`: the fused QKV product (one recorded
/// linear op, [`linear_wb`]), then one in-tree op forward and backward ([`AttentionTrainOps`]). `None` where
/// it does not apply (another backend, `CARDIAFFECT_KERNELS=burn`, a projection without
/// bias): the caller runs Burn's ops.
pub fn train_self_attention(
    x: &Tensor<3>,
    (query, key, value): (&Linear, &Linear, &Linear),
    n_heads: usize,
    dropout: f64,
    seed: u64,
    first_row: usize,
) -> Option<Tensor<3>> {
    if !train_path(&x.device(), x.dtype()) {
        return None;
    }
    let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val());
    let b = Tensor::cat(vec![bias(query)?, bias(key)?, bias(value)?], 0);
    let w = Tensor::cat(
        vec![query.weight.val(), key.weight.val(), value.weight.val()],
        1,
    );
    // One recorded linear op: its weight gradient is one product over all rows (a broadcast
    // matmul took one per window and a sum).
    let qkv = linear_wb(x.clone(), w, b);
    Some(Tensor::from_dispatch(
        <burn::backend::Dispatch as AttentionTrainOps>::attention_train(
            qkv.into_dispatch(),
            n_heads,
            dropout,
            seed,
            first_row,
        ),
    ))
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

/// Whether the whole-layer op runs for `x` (flex inference in the default mode).
pub fn layer_op_applies(x: &Tensor<3>) -> bool {
    kernel_mode() == KernelMode::Layer && fast_path(&x.device(), x.dtype())
}

/// One pre-LN encoder layer at inference (no dropout) as one in-tree op: two parallel passes
/// (LayerNorm + QKV for blocks of rows; then, per block of queries, attention, the output
/// projection, LayerNorm and the feed-forward with its residual adds) instead of eight
/// parallel Burn ops, each of which wakes the worker threads (see BENCHMARKS.md). Call it when
/// [`layer_op_applies`]; `transformer::Layer` gathers the parameters.
///
/// # Panics
/// On any tensor but plain flex f32, with a message that says so: the op exists on flex
/// only, and Burn's own fallback (`unsupported dispatch backend`) names neither the op nor why.
pub fn encoder_layer(x: Tensor<3>, p: EncoderLayerParams<burn::backend::Dispatch>) -> Tensor<3> {
    assert!(
        fast_path(&x.device(), x.dtype()),
        "kernels::encoder_layer is the in-tree op of plain flex f32 tensors (check layer_op_applies first); got {:?} {:?}",
        x.device(),
        x.dtype()
    );
    Tensor::from_dispatch(<burn::backend::Dispatch as CardiaffectOps>::encoder_layer(
        x.into_dispatch(),
        p,
    ))
}

/// The Transformer's input from windows `x` `[B, L]` at inference without a mask, as
/// `Model::embed`: one in-tree op per convolution ([`CardiaffectOps::conv_stage`], the
/// projection fused into the last) and one for the token convolution, CLS and positions
/// ([`CardiaffectOps::token_head`]). `Some` on plain flex f32 in the default mode when every
/// convolution is the model's kind (bias, padding `k / 2`, no dilation; the token convolution
/// depthwise with stride 1), else `None` and the caller runs Burn's ops.
pub fn signal_embed(
    x: &Tensor<2>,
    encoder: &crate::model::SignalEncoder,
    proj: &Linear,
    pos_conv: Option<&burn::nn::conv::Conv1d>,
    cls: Tensor<1>,
    pos: Tensor<2>,
    eps: f64,
) -> Option<Tensor<3>> {
    if !(kernel_mode() == KernelMode::Layer && fast_path(&x.device(), x.dtype())) {
        return None;
    }
    let d = proj.weight.dims()[1];
    let stages: Vec<_> = encoder.convs.iter().zip(&encoder.norms).collect();
    if stages.is_empty()
        || !stages
            .iter()
            .all(|(c, n)| same_padded(c) && c.groups == 1 && c.bias.is_some() && n.beta.is_some())
        || proj.bias.is_none()
    {
        return None;
    }
    let pos_conv = match pos_conv {
        Some(c) if !(same_padded(c) && c.groups == d && c.stride == 1 && c.bias.is_some()) => {
            return None
        }
        other => other,
    };
    let [b, l] = x.dims();
    let mut h = x.clone().reshape([b, l, 1]).into_dispatch();
    for (i, (c, n)) in stages.iter().enumerate() {
        let last = i + 1 == stages.len();
        let next_pad = match (last, pos_conv) {
            (false, _) => stages[i + 1].0.kernel_size / 2,
            (true, Some(pc)) => pc.kernel_size / 2,
            (true, None) => 0,
        };
        let val = |p: &burn::module::Param<Tensor<1>>| p.val().into_dispatch();
        h = <burn::backend::Dispatch as CardiaffectOps>::conv_stage(
            h,
            c.weight.val().into_dispatch(),
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
            eps,
        );
    }
    Some(Tensor::from_dispatch(
        <burn::backend::Dispatch as CardiaffectOps>::token_head(
            h,
            match pos_conv.map(|c| (c, c.bias.as_ref())) {
                Some((c, Some(bias))) => Projection::Some {
                    weight: c.weight.val().into_dispatch(),
                    bias: bias.val().into_dispatch(),
                },
                _ => Projection::None,
            },
            cls.into_dispatch(),
            pos.into_dispatch(),
        ),
    ))
}

/// GELU (exact erf form); on flex, with or without autodiff, the in-tree kernel.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if train_path(&x.device(), x.dtype()) {
        return Tensor::from_dispatch(<burn::backend::Dispatch as GeluOps>::gelu_erf(
            x.into_dispatch(),
        ));
    }
    activation::gelu(x)
}

/// Inverted dropout at rate `p`, the mask drawn from (`seed`, `site`): on flex one recorded
/// op whose backward redraws the mask ([`TrainOps`]); elsewhere Burn's ops with the same mask.
pub fn dropout<const D: usize>(x: Tensor<D>, p: f64, seed: u64, site: u64) -> Tensor<D> {
    dropout_rows(x, p, seed, site, 0)
}

/// [`dropout`] of `x` `[B, ..]` as rows `first_row ..` of a larger batch: the mask of those rows
/// in the whole batch's mask (a process's share in data-parallel training draws what one
/// process drawing the whole batch does).
pub fn dropout_rows<const D: usize>(
    x: Tensor<D>,
    p: f64,
    seed: u64,
    site: u64,
    first_row: usize,
) -> Tensor<D> {
    if p <= 0.0 {
        return x;
    }
    let shape = x.shape();
    let per_row = shape.num_elements() / shape[0].max(1);
    let first = first_row * per_row;
    if train_path(&x.device(), x.dtype()) {
        return Tensor::from_dispatch(<burn::backend::Dispatch as TrainOps>::dropout_train(
            x.into_dispatch(),
            p,
            seed,
            site,
            first as u64,
        ));
    }
    let mut mask = vec![1.0f32; shape.num_elements()];
    train_ops::apply_dropout_mask(&mut mask, None, p, seed, site, first);
    let m = Tensor::<D>::from_data(burn::tensor::TensorData::new(mask, shape), &x.device());
    x * m
}

/// `norm(x)` with epsilon `eps` (burn-nn keeps its own private): on flex one recorded op,
/// forward and backward in-tree ([`TrainOps`]); elsewhere (or without a bias) Burn's.
pub fn layer_norm<const D: usize>(x: Tensor<D>, norm: &LayerNorm, eps: f64) -> Tensor<D> {
    match &norm.beta {
        Some(beta) if train_path(&x.device(), x.dtype()) => {
            Tensor::from_dispatch(<burn::backend::Dispatch as TrainOps>::layer_norm_train(
                x.into_dispatch(),
                norm.gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
                eps,
            ))
        }
        _ => norm.forward(x),
    }
}

/// `l(x)` in training (flex with autodiff, f32, a bias): one recorded in-tree op whose
/// output starts from the bias rows and whose backward reads the transposes through strides
/// ([`TrainOps::linear_train`]). burn-flex allocates each matrix product's output zeroed and
/// then copies it to a more aligned buffer (a memset and a memmove per product, 7 % of a
/// pre-training step), adds the bias in another op, and transposes in the backward.
/// Elsewhere, inference included, Burn's `Linear`.
pub fn linear_train<const D: usize>(x: Tensor<D>, l: &Linear) -> Tensor<D> {
    match &l.bias {
        Some(b) => linear_wb(x, l.weight.val(), b.val()),
        None => l.forward(x),
    }
}

/// [`linear_train`] with the weight `[k, n]` and bias `[n]` given as tensors.
pub fn linear_wb<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<D> {
    if train_path(&x.device(), x.dtype()) && !plain_flex(&x.device()) {
        return Tensor::from_dispatch(<burn::backend::Dispatch as TrainOps>::linear_train(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ));
    }
    burn::tensor::module::linear(x, weight, Some(bias))
}

/// Whether [`conv1d_channels_last`] runs `conv` on tensors like `x` (flex f32 with the in-tree
/// kernels on, a convolution with a bias, odd kernel, padding `k / 2`, no dilation or
/// groups); else the caller runs Burn's `Conv1d` channels-first.
pub fn conv1d_channels_last_applies(conv: &burn::nn::conv::Conv1d, x: &Tensor<3>) -> bool {
    train_path(&x.device(), x.dtype())
        && conv.bias.is_some()
        && conv.groups == 1
        && same_padded(conv)
}

/// `conv` on channels-last `x` `[B, L, C_in]` -> `[B, L_out, C_out]`, one recorded op with an
/// in-tree backward ([`train_conv`]). Call it where [`conv1d_channels_last_applies`].
///
/// # Panics
/// Where it does not apply, saying so.
pub fn conv1d_channels_last(x: Tensor<3>, conv: &burn::nn::conv::Conv1d) -> Tensor<3> {
    assert!(
        conv1d_channels_last_applies(conv, &x),
        "kernels::conv1d_channels_last: flex f32 and a convolution with a bias, odd kernel and padding k / 2 (check conv1d_channels_last_applies first)"
    );
    let bias = conv.bias.as_ref().expect("checked above").val();
    Tensor::from_dispatch(<burn::backend::Dispatch as TrainOps>::conv1d_train(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.into_dispatch(),
        conv.stride,
    ))
}

impl Projection<Flex> {
    fn as_pair(&self) -> Option<(&FlexTensor, &FlexTensor)> {
        match self {
            Projection::None => None,
            Projection::Some { weight, bias } => Some((weight, bias)),
        }
    }
}

impl CardiaffectOps for Flex {
    fn packed_attention(qkv: FlexTensor, n_heads: usize) -> FlexTensor {
        attention::packed_attention(qkv, n_heads)
    }

    fn conv_stage(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        proj: Projection<Flex>,
        stride: usize,
        pad_input: bool,
        next_pad: usize,
        eps: f64,
    ) -> FlexTensor {
        embed::conv_stage_flex(
            x,
            embed::ConvStage {
                weight: &weight,
                bias: &bias,
                gamma: &gamma,
                beta: &beta,
                stride,
            },
            proj.as_pair(),
            (pad_input, next_pad),
            eps as f32,
        )
    }

    fn token_head(
        tokens: FlexTensor,
        pos_conv: Projection<Flex>,
        cls: FlexTensor,
        pos: FlexTensor,
    ) -> FlexTensor {
        embed::token_head_flex(tokens, pos_conv.as_pair(), &cls, &pos)
    }

    fn encoder_layer(x: FlexTensor, p: EncoderLayerParams<Flex>) -> FlexTensor {
        layer::encoder_layer_flex(x, p)
    }

    fn linear_bias(x: FlexTensor, w: FlexTensor, b: FlexTensor, gelu: bool) -> FlexTensor {
        gemm::linear_flex(x, w, b, None, gelu)
    }

    fn linear_bias_residual(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        r: FlexTensor,
    ) -> FlexTensor {
        gemm::linear_flex(x, w, b, Some(r), false)
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
        // Head widths 32, 16, 8 (the tiled attention) and 6 (gemm's, which the tiles decline).
        for (b, t, d, h, ff) in [
            (1, 321, 128, 4, 512),
            (3, 300, 32, 2, 48),
            (2, 5, 8, 1, 16),
            (2, 7, 12, 2, 20),
        ] {
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
            let ours = layer
                .fused(&x, 1e-5)
                .expect("flex f32 takes the in-tree path");
            let reference = burns_layer(x.clone(), &layer);
            let e = max_rel_diff(ours, reference.clone());
            assert!(e < 1e-5, "({b},{t},{d},{h},{ff}): {e}");
            // The CLS rows alone: row 0 of each item, `[B, 1, d]`.
            let mut p = layer.layer_params(1e-5).unwrap();
            p.cls_only = true;
            let cls = encoder_layer(x, p);
            assert_eq!(cls.dims(), [b, 1, d]);
            let e = max_rel_diff(cls, reference.slice([0..b, 0..1, 0..d]));
            assert!(e < 1e-5, "CLS rows ({b},{t},{d},{h},{ff}): {e}");
        }
    }

    #[test]
    fn encoder_layer_with_tiled_attention_equals_gemms_attention() {
        // The switch is process-wide: another test that runs meanwhile may see gemm's
        // attention, which gives its results within the same bounds.
        let dev = Device::flex();
        let tr = crate::transformer::Transformer::new(64, 96, 2, 1, 1e-5, &dev);
        let p = || tr.layers[0].layer_params(1e-5).unwrap();
        let x = normal::<3>([2, 45, 64], 1.0, &dev);
        let cls = || {
            let mut p = p();
            p.cls_only = true;
            p
        };
        set_tiled_attention(false);
        let gemm = encoder_layer(x.clone(), p());
        let gemm_cls = encoder_layer(x.clone(), cls());
        set_tiled_attention(true);
        let tiles = encoder_layer(x.clone(), p());
        let tiles_cls = encoder_layer(x, cls());
        let e = max_rel_diff(tiles, gemm);
        assert!(e < 1e-5, "{e}");
        let e = max_rel_diff(tiles_cls, gemm_cls);
        assert!(e < 1e-5, "CLS rows: {e}");
    }

    #[test]
    fn encoder_layer_takes_an_empty_sequence() {
        let dev = Device::flex();
        let tr = crate::transformer::Transformer::new(32, 48, 2, 1, 1e-5, &dev);
        let x = Tensor::<3>::zeros([2, 0, 32], &dev);
        let y = encoder_layer(x.clone(), tr.layers[0].layer_params(1e-5).unwrap());
        assert_eq!(y.dims(), [2, 0, 32]);
        let mut p = tr.layers[0].layer_params(1e-5).unwrap();
        p.cls_only = true;
        assert_eq!(encoder_layer(x, p).dims(), [2, 0, 32]);
    }

    #[test]
    fn encoder_layer_in_place_equals_the_copy_and_leaves_a_shared_input_alone() {
        // A uniquely owned input is overwritten with the residual stream; a shared one is
        // copied first, so its other owner still reads the original.
        let dev = Device::flex();
        let tr = crate::transformer::Transformer::new(32, 48, 2, 1, 1e-5, &dev);
        let p = || tr.layers[0].layer_params(1e-5).unwrap();
        let x = normal::<3>([2, 37, 32], 1.0, &dev);
        let before = x.clone().into_data();
        let unique = Tensor::<3>::from_data(before.clone(), &dev);
        let shared = encoder_layer(x.clone(), p());
        let in_place = encoder_layer(unique, p());
        assert_eq!(in_place.into_data(), shared.clone().into_data());
        assert_eq!(x.into_data(), before, "the shared input is unchanged");
        let e = max_rel_diff(
            shared,
            burns_layer(Tensor::from_data(before, &dev), &tr.layers[0]),
        );
        assert!(e < 1e-5, "{e}");
    }

    #[test]
    fn encoder_layer_reads_strided_inputs_and_declines_without_biases() {
        let dev = Device::flex();
        let mut tr = crate::transformer::Transformer::new(16, 32, 4, 1, 1e-5, &dev);
        let mut layer = tr.layers.remove(0);
        let x = normal::<3>([2, 16, 9], 1.0, &dev).swap_dims(1, 2); // [2, 9, 16], strided
        let c = Tensor::<3>::from_data(x.clone().into_data(), &dev);
        let e = max_diff(layer.fused(&x, 1e-5).unwrap(), burns_layer(c, &layer));
        assert!(e < 1e-5, "{e}");
        layer.mha.value.bias = None;
        assert!(layer.fused(&x, 1e-5).is_none());
        let ad = Device::flex().autodiff();
        let xa = normal::<3>([1, 4, 16], 1.0, &ad);
        let tr = crate::transformer::Transformer::new(16, 32, 4, 1, 1e-5, &ad);
        assert!(
            tr.layers[0].fused(&xa, 1e-5).is_none(),
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

    /// Off flex every entry point computes what Burn's ops compute (the in-tree kernels are
    /// flex-only), the layer op declines, and calling it anyway panics naming why.
    #[cfg(feature = "wgpu")]
    #[test]
    fn on_wgpu_the_entry_points_are_burns_ops_and_the_layer_op_refuses() {
        let dev = Device::wgpu_options()
            .init()
            .expect("a wgpu adapter (in CI: mesa-vulkan-drivers)");
        let flex = Device::flex();
        let on = |t: Tensor<3>, d: &Device| Tensor::<3>::from_data(t.into_data(), d);
        let x = normal::<3>([2, 9, 16], 1.0, &flex);
        let l = [0, 1, 2].map(|_| burn::nn::LinearConfig::new(16, 16).init(&flex));
        let lw = l.clone().map(|l| l.to_device(&dev));
        let want = self_attention(x.clone(), &l[0], &l[1], &l[2], 4);
        let got = self_attention(on(x.clone(), &dev), &lw[0], &lw[1], &lw[2], 4);
        let e = max_diff(on(got, &flex), want);
        assert!(e < 1e-4, "attention {e}");
        let got = linear(on(x.clone(), &dev), &lw[0], true, Some(on(x.clone(), &dev)));
        let e = max_rel_diff(
            on(got, &flex),
            linear(x.clone(), &l[0], true, Some(x.clone())),
        );
        assert!(e < 1e-4, "linear {e}");
        let e = max_rel_diff(on(gelu(on(x.clone(), &dev)), &flex), gelu(x.clone()));
        assert!(e < 1e-4, "gelu {e}");
        // Training's ops: the same dropout mask, Burn's LayerNorm, and the channels-last
        // convolution declining (and refusing, named, when called anyway).
        let got = dropout(on(x.clone(), &dev), 0.3, 5, 2);
        let e = max_diff(on(got, &flex), dropout(x.clone(), 0.3, 5, 2));
        assert!(e < 1e-6, "dropout {e}");
        let norm = burn::nn::LayerNormConfig::new(16).init(&flex);
        let got = layer_norm(on(x.clone(), &dev), &norm.clone().to_device(&dev), 1e-5);
        let e = max_rel_diff(on(got, &flex), layer_norm(x.clone(), &norm, 1e-5));
        assert!(e < 1e-4, "layer norm {e}");
        let conv = burn::nn::conv::Conv1dConfig::new(16, 4, 3)
            .with_padding(burn::nn::PaddingConfig1d::Explicit(1, 1))
            .init(&dev);
        assert!(!conv1d_channels_last_applies(&conv, &on(x.clone(), &dev)));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            conv1d_channels_last(on(x.clone(), &dev), &conv)
        }));
        let msg = r.err().expect("a panic off flex");
        let msg = msg.downcast_ref::<&str>().expect("a message");
        assert!(msg.contains("conv1d_channels_last_applies"), "{msg}");
        let tr = crate::transformer::Transformer::new(16, 32, 4, 1, 1e-5, &dev);
        let xw = on(x, &dev);
        assert!(!layer_op_applies(&xw) && tr.layers[0].fused(&xw, 1e-5).is_none());
        let p = tr.layers[0].layer_params(1e-5).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encoder_layer(xw, p)));
        let msg = r.err().expect("a panic off flex");
        let msg = msg.downcast_ref::<String>().expect("a formatted message");
        assert!(msg.contains("in-tree op of plain flex f32"), "{msg}");
    }

    /// The training op and its gradient against Burn's ops (split heads, softmax, the same
    /// dropout mask as a tensor, merge heads) under autodiff.
    #[test]
    fn training_attention_and_its_gradient_equal_burns_ops_with_the_same_mask() {
        use burn::tensor::activation::softmax;
        type D = burn::backend::Dispatch;
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
            let ours = Tensor::<3>::from_dispatch(<D as AttentionTrainOps>::attention_train(
                x.clone().into_dispatch(),
                h,
                p,
                seed,
                0,
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
            let mask = train_attention::Dropout::new(p, seed).mask(b, h, t);
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
        let m = train_attention::Dropout::new(0.25, 5).mask(2, 2, 100);
        let kept = m.iter().filter(|&&v| v > 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "{kept}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
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
            let run = |ours: bool| {
                let y = if ours {
                    layer_norm(x.clone(), &norm, 1e-5)
                } else {
                    norm.forward(x.clone())
                };
                let g = (y.clone() * w.clone()).sum().backward();
                let beta = norm.beta.as_ref().unwrap();
                (
                    y.inner(),
                    x.grad(&g).unwrap(),
                    norm.gamma.grad(&g).unwrap(),
                    beta.grad(&g).unwrap(),
                )
            };
            let (o, b_) = (run(true), run(false));
            let e = max_rel_diff(o.0, b_.0);
            assert!(e < 1e-5, "forward ({b},{t},{d}): {e}");
            let e = max_rel_diff(o.1, b_.1);
            assert!(e < 1e-4, "input gradient ({b},{t},{d}): {e}");
            let e = max_rel_diff(o.2, b_.2);
            assert!(e < 1e-4, "gamma gradient ({b},{t},{d}): {e}");
            let e = max_rel_diff(o.3, b_.3);
            assert!(e < 1e-5, "beta gradient ({b},{t},{d}): {e}");
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
            let run = |ours: bool| {
                let y = if ours {
                    conv1d_channels_last(x.clone(), &conv)
                } else {
                    conv.forward(x.clone().swap_dims(1, 2)).swap_dims(1, 2)
                };
                let g = (y.clone() * w.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&g).unwrap(),
                    conv.weight.grad(&g).unwrap(),
                    conv.bias.as_ref().unwrap().grad(&g).unwrap(),
                )
            };
            let (o, r) = (run(true), run(false));
            let case = (b, l, c_in, c_out, k, s);
            assert_eq!(o.0.dims(), r.0.dims(), "{case:?}");
            let e = max_rel_diff(o.0, r.0);
            assert!(e < 1e-5, "forward {case:?}: {e}");
            let e = max_rel_diff(o.1, r.1);
            assert!(e < 1e-5, "input gradient {case:?}: {e}");
            let e = max_rel_diff(o.2, r.2);
            assert!(e < 1e-5, "weight gradient {case:?}: {e}");
            let e = max_rel_diff(o.3, r.3);
            assert!(e < 1e-5, "bias gradient {case:?}: {e}");
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
            let run = |ours: bool| {
                let y = if ours {
                    linear_train(x.clone(), &l)
                } else {
                    l.forward(x.clone())
                };
                let g = (y.clone() * w.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&g).unwrap(),
                    l.weight.grad(&g).unwrap(),
                    l.bias.as_ref().unwrap().grad(&g).unwrap(),
                )
            };
            let (o, r) = (run(true), run(false));
            let e = max_rel_diff(o.0, r.0);
            assert!(e < 1e-5, "forward ({rows},{k},{n}): {e}");
            let e = max_rel_diff(o.1, r.1);
            assert!(e < 1e-5, "input gradient ({rows},{k},{n}): {e}");
            let e = max_rel_diff(o.2, r.2);
            assert!(e < 1e-4, "weight gradient ({rows},{k},{n}): {e}");
            let e = max_rel_diff(o.3, r.3);
            assert!(e < 1e-4, "bias gradient ({rows},{k},{n}): {e}");
        }
        // Rank 2, as the classification head takes the CLS rows.
        let l = burn::nn::LinearConfig::new(6, 2).init(&ad);
        let x = normal::<2>([5, 6], 1.0, &ad).require_grad();
        let e = max_rel_diff(linear_train(x.clone(), &l).inner(), l.forward(x).inner());
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
        train_ops::apply_dropout_mask(&mut mask, None, 0.2, 9, 3, 0);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, shape), &ad);
        let ours = dropout(x.clone(), 0.2, 9, 3);
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
        let other = dropout(x.clone(), 0.2, 9, 4).inner();
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
        let y = dropout(whole.clone(), 0.2, 9, 3);
        let g = whole
            .grad(&(y.clone() * w.clone()).sum().backward())
            .unwrap();
        for first in 1..rows {
            let part = x.clone().slice([first..rows, 0..cols]).require_grad();
            let wp = w.clone().slice([first..rows, 0..cols]);
            let yp = dropout_rows(part.clone(), 0.2, 9, 3, first);
            let gp = part.grad(&(yp.clone() * wp).sum().backward()).unwrap();
            let yr = y.clone().inner().slice([first..rows, 0..cols]);
            assert_eq!(yp.inner().into_data(), yr.into_data(), "rows {first}..");
            let gr = g.clone().slice([first..rows, 0..cols]);
            assert_eq!(gp.into_data(), gr.into_data(), "gradient, rows {first}..");
        }
        // The mask itself (Burn's ops elsewhere multiply by it) from any element on.
        let mut all = vec![1.0f32; 3 * train_ops::DROPOUT_CHUNK + 77];
        train_ops::apply_dropout_mask(&mut all, None, 0.3, 4, 2, 0);
        for first in [
            1,
            train_ops::DROPOUT_CHUNK - 1,
            train_ops::DROPOUT_CHUNK,
            train_ops::DROPOUT_CHUNK + 5,
            2 * train_ops::DROPOUT_CHUNK + 9,
        ] {
            let mut part = vec![1.0f32; all.len() - first];
            train_ops::apply_dropout_mask(&mut part, None, 0.3, 4, 2, first);
            assert!(part == all[first..], "from element {first}");
        }
        let (b, h, t) = (3, 2, 17);
        let all = train_attention::Dropout::new(0.25, 5).mask(b, h, t);
        let part = train_attention::Dropout::new(0.25, 5)
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
