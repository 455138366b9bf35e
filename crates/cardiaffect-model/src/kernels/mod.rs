//! The model's operations behind Burn's backend extension (`#[backend_extension]`):
//! [`CardiaffectOps`], one method per operation, whose default bodies are Burn's own ops
//! ([`defaults`]) and whose flex implementation is the in-tree kernels, written where profiles
//! showed a hot spot that Burn's ops leave (BENCHMARKS.md), not a rewrite of what Burn has. The
//! model reaches them only through [`crate::ops`].
//!
//! - Inference on plain flex: attention of all heads straight from the packed QKV projection
//!   ([`attention`]; burn-flex's needs `[B, H, T, dk]` inputs and runs its softmax through
//!   scalar `expf`), linear layers whose output starts from the bias (and residual) rows
//!   ([`gemm`]), a whole pre-LN encoder layer in two parallel passes ([`layer`]; two parallel
//!   regions per layer instead of about seven, for batch-1 latency, measured in BENCHMARKS.md;
//!   on AVX-512 its attention in register tiles, [`fused_attention`] with the vector
//!   operations of [`simd`]) and the signal encoder channels-last, one parallel pass per
//!   convolution ([`embed`]).
//! - Training on flex, with or without autodiff: exact-erf GELU with a vectorised erf
//!   ([`gelu`]), attention with its dropout recomputing each head's probabilities in the
//!   backward ([`train_attention`]), LayerNorm, hashed-mask dropout and linear layers
//!   ([`train_ops`]) and the convolutions channels-last ([`train_conv`]); under autodiff each
//!   one recorded op with an in-tree backward ([`autodiff`]).
//!
//! The inference ops take their weights as they read them (the QKV projections side by
//! side, convolution taps as rows), rearranged once by whoever holds the model
//! ([`crate::PreparedModel`]); threads, attention tiles and the scratch they work in
//! ([`Workspace`]) come in each call's arguments ([`crate::ops::Pass`]). Nothing global is kept.
//!
//! Two second forms, each for a performance path (either one made the only form would also
//! change the last bits of training or of inference, and with them the demo's outputs):
//! - vector style: the row kernels are plain loops the compiler vectorises for three
//!   instruction sets ([`fastmath`]'s `multiversion!`); only the AVX-512 attention tiles use
//!   explicit registers ([`simd`]'s `Simd` trait), because a register-blocked tile is not
//!   something a compiler vectorises from loops;
//! - exponential: `fastmath`'s `exp` (Cody–Waite, 16 instructions) everywhere, except the
//!   tiles' `Simd::exp2` (a fitted polynomial and `scalef`, 8 instructions), their most
//!   frequent operation besides the multiply-adds.

use std::sync::Arc;

use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, ExtensionType, Shape, Slice, TensorMetadata};

mod attention;
mod autodiff;
pub mod defaults;
mod embed;
pub(crate) mod fastmath;
mod flex;
mod fused_attention;
mod gelu;
mod gemm;
mod layer;
#[cfg(target_arch = "x86_64")]
mod simd;
pub(crate) mod train_attention;
mod train_conv;
pub(crate) mod train_ops;
mod workspace;

pub use workspace::Workspace;

/// The model's operations, one method each, with Burn's ops as the default bodies, which
/// every backend without kernels runs (wgpu, and autodiff over it); flex implements them with
/// the kernels ([`flex`]) and flex under autodiff records the training leaves with in-tree
/// backwards ([`autodiff`]), taking the defaults for the rest.
///
/// The last six methods are training's leaves (differentiable everywhere; defaults in
/// [`defaults`]); the first six inference's (no dropout, not differentiated on flex), whose
/// defaults compose the leaves, so that a backend with kernels for the leaves runs them there
/// too.
#[backend_extension(Flex, Cube: cfg(feature = "wgpu"), Autodiff)]
pub trait CardiaffectOps: Backend {
    /// Self-attention core: `qkv` `[B, T, 3d]` (the query, key and value projections side by
    /// side, heads packed along each `d`) -> `softmax(q_h k_h^T / sqrt(d / n_heads)) v_h` for
    /// each head, packed `[B, T, d]`, split over up to `threads` threads, the scores in
    /// `workspace`'s scratch.
    fn packed_attention(
        qkv: FloatTensor<Self>,
        n_heads: usize,
        threads: usize,
        workspace: Arc<Workspace>,
    ) -> FloatTensor<Self> {
        let _ = threads;
        Self::attention_train(qkv, n_heads, 0.0, 0, 0, workspace)
    }

    /// `x w + b` (`x` `[.., in]`, `w` `[in, out]`, `b` `[out]`), then GELU when `gelu`.
    fn linear_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gelu: bool,
    ) -> FloatTensor<Self> {
        let y = Self::linear_train(x, w, b);
        if gelu {
            Self::gelu_erf(y)
        } else {
            y
        }
    }

    /// `r + x w + b`: a linear layer added to the residual stream `r` in one product.
    fn linear_bias_residual(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        r: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::float_add(r, Self::linear_train(x, w, b))
    }

    /// One pre-LN Transformer encoder layer at inference (no dropout) on `x` `[B, T, d]`:
    /// `x1 = x + attention(norm_attn(x))`, then `x1 + ff(norm_ff(x1))` with a GELU
    /// feed-forward, as burn-nn's `TransformerEncoderLayer` with `norm_first`.
    fn encoder_layer(
        x: FloatTensor<Self>,
        #[extension_type] p: EncoderLayerParams<Self>,
    ) -> FloatTensor<Self> {
        let h = Self::layer_norm_train(x.clone(), p.norm_attn_gamma, p.norm_attn_beta, p.eps);
        let qkv = Self::linear_bias(h, p.qkv_weight, p.qkv_bias, false);
        let ctx = Self::packed_attention(qkv, p.n_heads, p.threads, p.workspace.clone());
        let x = Self::linear_bias_residual(ctx, p.output_weight, p.output_bias, x);
        let h = Self::layer_norm_train(x.clone(), p.norm_ff_gamma, p.norm_ff_beta, p.eps);
        let f = Self::linear_bias(h, p.inner_weight, p.inner_bias, true);
        let y = Self::linear_bias_residual(f, p.outer_weight, p.outer_bias, x);
        if !p.cls_only {
            return y;
        }
        // The CLS rows of the whole computation.
        let [b, _, d] = defaults::dims3(&y);
        Self::float_slice(
            y,
            &[Slice::from(0..b), Slice::from(0..1), Slice::from(0..d)],
        )
    }

    /// One convolution of the signal encoder at inference, channels-last: `x` `[B, R, C_in]`
    /// (`R = L + 2 (k / 2)` rows with the zero padding, or `L` rows when `pad_input`), the
    /// convolution (its weight as rows `[k, C_in, C_out]`, bias, stride), LayerNorm over
    /// channels, GELU,
    /// then the projection `[C_out, d]` + `[d]` if given: `[B, L_out + 2 next_pad, width]`
    /// with `next_pad` zero rows either side for the next convolution; over up to `threads`,
    /// in `workspace`'s scratch.
    #[allow(clippy::too_many_arguments)]
    fn conv_stage(
        x: FloatTensor<Self>,
        weight_rows: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        #[extension_type] proj: Projection<Self>,
        stride: usize,
        pad_input: bool,
        next_pad: usize,
        eps: f64,
        threads: usize,
        workspace: Arc<Workspace>,
    ) -> FloatTensor<Self> {
        let _ = threads;
        let pad = weight_rows.shape()[0] / 2;
        // The leaf pads by itself: the zero rows the input came with are dropped.
        let x = if pad_input {
            x
        } else {
            let [b, r, c] = defaults::dims3(&x);
            let rows = [
                Slice::from(0..b),
                Slice::from(pad..r - pad),
                Slice::from(0..c),
            ];
            Self::float_slice(x, &rows)
        };
        let weight = Self::float_permute(weight_rows, &[2, 1, 0]);
        let y = Self::conv1d_train(x, weight, bias, stride, workspace);
        let y = Self::gelu_erf(Self::layer_norm_train(y, gamma, beta, eps));
        let y = match proj {
            Projection::Some { weight, bias } => Self::linear_train(y, weight, bias),
            Projection::None => y,
        };
        defaults::pad_rows::<Self>(y, next_pad)
    }

    /// The Transformer's input from the tokens `[B, T + 2p, d]` (`p` zero rows either side,
    /// `p = k / 2` of the depthwise token convolution, its taps as rows `[k, d]` + `[d]` if
    /// given, else 0):
    /// the token convolution with GELU added to each token, the CLS row `[d]` first and the
    /// positions `[T + 1, d]` added: `[B, T + 1, d]`; over up to `threads`.
    fn token_head(
        tokens: FloatTensor<Self>,
        #[extension_type] pos_conv: Projection<Self>,
        cls: FloatTensor<Self>,
        pos: FloatTensor<Self>,
        threads: usize,
    ) -> FloatTensor<Self> {
        let _ = threads;
        let [b, rows, d] = defaults::dims3(&tokens);
        let h = match pos_conv {
            Projection::Some { weight, bias } => {
                let k = weight.shape()[0];
                let p = k / 2;
                let core = [
                    Slice::from(0..b),
                    Slice::from(p..rows - p),
                    Slice::from(0..d),
                ];
                let core = Self::float_slice(tokens.clone(), &core);
                // Taps `[k, d]` as Burn's depthwise weight `[d, 1, k]`.
                let w = Self::float_permute(weight, &[1, 0]);
                let w = Self::float_reshape(w, Shape::new([d, 1, k]));
                let options = ConvOptions::new([1], [0], [1], d);
                let x = Self::float_swap_dims(tokens, 1, 2);
                let r = Self::float_swap_dims(Self::conv1d(x, w, Some(bias), options), 1, 2);
                Self::float_add(core, Self::gelu_erf(r))
            }
            Projection::None => tokens,
        };
        let t = defaults::dims3(&h)[1];
        let cls = Self::float_reshape(cls, Shape::new([1, 1, d]));
        let cls = Self::float_expand(cls, Shape::new([b, 1, d]));
        let h = Self::float_cat(vec![cls, h], 1);
        Self::float_add(h, Self::float_reshape(pos, Shape::new([1, t + 1, d])))
    }

    /// `0.5 x (1 + erf(x / sqrt 2))`.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        defaults::gelu_erf::<Self>(x)
    }

    /// `qkv` `[B, T, 3d]` -> `[B, T, d]`: per head `dropout(softmax(q_h k_h^T / sqrt(dk))) v_h`,
    /// the dropout at rate `dropout` with masks drawn from `seed`; `first_row` is the index of
    /// `qkv`'s first window in the step's whole batch (0 unless it is a process's share). The
    /// kernels' scratch (forward and backward) is `workspace`'s.
    fn attention_train(
        qkv: FloatTensor<Self>,
        n_heads: usize,
        dropout: f64,
        seed: u64,
        first_row: usize,
        workspace: Arc<Workspace>,
    ) -> FloatTensor<Self> {
        defaults::attention_train::<Self>(qkv, n_heads, dropout, seed, first_row, workspace)
    }

    /// `x` times a dropout mask at rate `p` (0, or `1 / (1 - p)`) drawn from `seed` and
    /// `site`; the same arguments always draw the same mask. `first` is the index of `x`'s
    /// first element in the step's whole tensor (0 unless `x` is a process's share of it).
    fn dropout_train(
        x: FloatTensor<Self>,
        p: f64,
        seed: u64,
        site: u64,
        first: u64,
    ) -> FloatTensor<Self> {
        defaults::dropout_train::<Self>(x, p, seed, site, first)
    }

    /// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * gamma + beta`.
    fn layer_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        defaults::layer_norm_train::<Self>(x, gamma, beta, eps)
    }

    /// `x W + b` for `x` `[.., k]`, `weight` `[k, n]`, `bias` `[n]`.
    fn linear_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        defaults::linear_train::<Self>(x, weight, bias)
    }

    /// A convolution of the signal encoder, channels-last: `x` `[B, L, C_in]`, `weight`
    /// `[C_out, C_in, k]` (odd `k`, padding `k / 2` either side), `bias` `[C_out]` -> `[B,
    /// L_out, C_out]`; the backward's scratch on flex is `workspace`'s.
    fn conv1d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        workspace: Arc<Workspace>,
    ) -> FloatTensor<Self> {
        defaults::conv1d_train::<Self>(x, weight, bias, stride, workspace)
    }
}

/// The GPU backends run Burn's ops: the default bodies.
#[cfg(feature = "wgpu")]
impl CardiaffectOps for burn::backend::Cube {}

/// Autodiff over the GPU backends: the default bodies, differentiated by Burn.
#[cfg(feature = "wgpu")]
impl<C: burn_autodiff::checkpoint::strategy::CheckpointStrategy> CardiaffectOps
    for burn_autodiff::Autodiff<burn::backend::Cube, C>
{
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
    /// The query, key and value projections side by side, `[d, 3d]` and `[3d]`.
    pub qkv_weight: FloatTensor<B>,
    pub qkv_bias: FloatTensor<B>,
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
    /// Attention in AVX-512 register tiles where the CPU has them (else gemm's products).
    pub tiled_attention: bool,
    /// Threads the op splits its work over (1: this thread alone).
    pub threads: usize,
    /// The scratch the kernels work in.
    pub workspace: Arc<Workspace>,
}
