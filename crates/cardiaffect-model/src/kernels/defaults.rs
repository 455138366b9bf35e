//! The extension's operations in Burn's own ops, generic over the backend: the default
//! bodies of [`super::CardiaffectOps`] (so every backend without kernels, wgpu and autodiff
//! over it, runs them) and the whole of `KernelMode::Burn` (the model's `crate::ops` calls
//! them on `Dispatch`). Safe code: primitives in, primitives out.
//!
//! The leaves (GELU, dropout, LayerNorm, linear, convolution, attention) are Burn's ops. The
//! whole-layer and whole-embedding ops are written on the extension's own leaves (`B`'s
//! methods), so that a backend with kernels for the leaves only (flex under autodiff) runs
//! its kernels inside them.

use burn::backend::ops::{AttentionModuleOptions, ConvOptions};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Shape, Slice, TensorData, TensorMetadata};

use super::train_attention::Dropout;
use super::{apply_dropout_mask, CardiaffectOps, EncoderLayerParams, Projection};

/// `0.5 x (1 + erf(x / sqrt 2))`: Burn's GELU.
pub fn gelu_erf<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::gelu(x)
}

/// `x` times the dropout mask of (`seed`, `site`) at rate `p` (the in-tree op's mask, drawn
/// on the host), its first element at `first` of the whole tensor.
pub fn dropout_train<B: Backend>(
    x: FloatTensor<B>,
    p: f64,
    seed: u64,
    site: u64,
    first: u64,
) -> FloatTensor<B> {
    if p <= 0.0 {
        return x;
    }
    let shape = x.shape();
    let mut mask = vec![1.0f32; shape.num_elements()];
    apply_dropout_mask(&mut mask, None, p, seed, site, first as usize);
    let mask = mask_like::<B>(&x, mask, shape);
    B::float_mul(x, mask)
}

/// `values` as a tensor of `shape` on `like`'s device, in `like`'s float type.
fn mask_like<B: Backend>(like: &FloatTensor<B>, values: Vec<f32>, shape: Shape) -> FloatTensor<B> {
    let data = TensorData::new(values, shape).convert_dtype(like.dtype());
    B::float_from_data(data, &like.device())
}

/// LayerNorm over the last dimension: Burn's.
pub fn layer_norm_train<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    eps: f64,
) -> FloatTensor<B> {
    B::layer_norm(x, gamma, Some(beta), eps)
}

/// `x w + b`: Burn's linear.
pub fn linear_train<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    B::linear(x, weight, Some(bias))
}

/// A convolution on channels-last `x` `[B, L, C_in]` (weight `[C_out, C_in, k]`, padding
/// `k / 2` either side): Burn's on the channels-first view.
pub fn conv1d_train<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    stride: usize,
) -> FloatTensor<B> {
    let k = weight.shape()[2];
    let options = ConvOptions::new([stride], [k / 2], [1], 1);
    let y = B::conv1d(B::float_swap_dims(x, 1, 2), weight, Some(bias), options);
    B::float_swap_dims(y, 1, 2)
}

/// Multi-head attention of the packed projections `qkv` `[B, T, 3d]` -> `[B, T, d]`, the
/// attention weights dropped out with the in-tree op's masks: Burn's `attention` without
/// dropout, else its matrix products and a softmax.
pub fn attention_train<B: Backend>(
    qkv: FloatTensor<B>,
    n_heads: usize,
    dropout: f64,
    seed: u64,
    first_row: usize,
) -> FloatTensor<B> {
    let shape = qkv.shape();
    let (b, t, d) = (shape[0], shape[1], shape[2] / 3);
    let dk = d / n_heads;
    // Each of q, k, v as heads `[B, H, T, dk]`.
    let part = |i: usize| {
        let slices = [
            Slice::from(0..b),
            Slice::from(0..t),
            Slice::from(i * d..(i + 1) * d),
        ];
        let x = B::float_slice(qkv.clone(), &slices);
        let x = B::float_reshape(x, Shape::new([b, t, n_heads, dk]));
        B::float_swap_dims(x, 1, 2)
    };
    let (q, k, v) = (part(0), part(1), part(2));
    let y = if dropout <= 0.0 {
        B::attention(q, k, v, None, None, AttentionModuleOptions::default())
    } else {
        let scores = B::float_mul_scalar(
            B::float_matmul(q, B::float_swap_dims(k, 2, 3)),
            (1.0 / (dk as f64).sqrt()).into(),
        );
        let weights = softmax_last::<B>(scores);
        let drop = Dropout::new(dropout, seed).at_row(first_row, n_heads);
        let mask = mask_like::<B>(
            &weights,
            drop.mask(b, n_heads, t),
            Shape::new([b, n_heads, t, t]),
        );
        B::float_matmul(B::float_mul(weights, mask), v)
    };
    B::float_reshape(B::float_swap_dims(y, 1, 2), Shape::new([b, t, d]))
}

/// Softmax over the last dimension, its maximum subtracted first.
fn softmax_last<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let last = x.shape().num_dims() - 1;
    let max = B::float_max_dim(x.clone(), last);
    let e = B::float_exp(B::float_sub(x, max));
    let sum = B::float_sum_dim(e.clone(), last);
    B::float_div(e, sum)
}

/// `x w + b`, then GELU when `gelu`, on `B`'s leaves.
pub fn linear_bias<B: CardiaffectOps>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    b: FloatTensor<B>,
    gelu: bool,
) -> FloatTensor<B> {
    let y = B::linear_train(x, w, b);
    if gelu {
        B::gelu_erf(y)
    } else {
        y
    }
}

/// `r + x w + b` on `B`'s leaves.
pub fn linear_bias_residual<B: CardiaffectOps>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    b: FloatTensor<B>,
    r: FloatTensor<B>,
) -> FloatTensor<B> {
    B::float_add(r, B::linear_train(x, w, b))
}

/// One pre-LN encoder layer at inference on `B`'s leaves (see
/// [`CardiaffectOps::encoder_layer`]); with `cls_only` the CLS row of the whole computation.
pub fn encoder_layer<B: CardiaffectOps>(
    x: FloatTensor<B>,
    p: EncoderLayerParams<B>,
) -> FloatTensor<B> {
    let h = B::layer_norm_train(x.clone(), p.norm_attn_gamma, p.norm_attn_beta, p.eps);
    let qkv = B::linear_bias(h, p.qkv_weight, p.qkv_bias, false);
    let ctx = B::packed_attention(qkv, p.n_heads, p.threads);
    let x = B::linear_bias_residual(ctx, p.output_weight, p.output_bias, x);
    let h = B::layer_norm_train(x.clone(), p.norm_ff_gamma, p.norm_ff_beta, p.eps);
    let f = B::linear_bias(h, p.inner_weight, p.inner_bias, true);
    let y = B::linear_bias_residual(f, p.outer_weight, p.outer_bias, x);
    if !p.cls_only {
        return y;
    }
    let [b, _, d] = dims3(&y);
    B::float_slice(
        y,
        &[Slice::from(0..b), Slice::from(0..1), Slice::from(0..d)],
    )
}

/// One convolution of the signal encoder at inference on `B`'s leaves (see
/// [`CardiaffectOps::conv_stage`]).
#[allow(clippy::too_many_arguments)]
pub fn conv_stage<B: CardiaffectOps>(
    x: FloatTensor<B>,
    weight_rows: FloatTensor<B>,
    bias: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    proj: Projection<B>,
    stride: usize,
    pad_input: bool,
    next_pad: usize,
    eps: f64,
) -> FloatTensor<B> {
    let pad = weight_rows.shape()[0] / 2;
    // The leaf pads by itself: the zero rows the input came with are dropped.
    let x = if pad_input {
        x
    } else {
        let [b, r, c] = dims3(&x);
        B::float_slice(
            x,
            &[
                Slice::from(0..b),
                Slice::from(pad..r - pad),
                Slice::from(0..c),
            ],
        )
    };
    let weight = B::float_permute(weight_rows, &[2, 1, 0]);
    let y = B::conv1d_train(x, weight, bias, stride);
    let y = B::gelu_erf(B::layer_norm_train(y, gamma, beta, eps));
    let y = match proj {
        Projection::Some { weight, bias } => B::linear_train(y, weight, bias),
        Projection::None => y,
    };
    pad_rows::<B>(y, next_pad)
}

/// `x` `[B, R, C]` with `p` zero rows either side.
fn pad_rows<B: Backend>(x: FloatTensor<B>, p: usize) -> FloatTensor<B> {
    if p == 0 {
        return x;
    }
    let [b, _, c] = dims3(&x);
    let zeros = B::float_zeros(Shape::new([b, p, c]), &x.device(), x.dtype().into());
    B::float_cat(vec![zeros.clone(), x, zeros], 1)
}

/// The Transformer's input from the tokens at inference on `B`'s leaves and Burn's depthwise
/// convolution (see [`CardiaffectOps::token_head`]).
pub fn token_head<B: CardiaffectOps>(
    tokens: FloatTensor<B>,
    pos_conv: Projection<B>,
    cls: FloatTensor<B>,
    pos: FloatTensor<B>,
) -> FloatTensor<B> {
    let [b, rows, d] = dims3(&tokens);
    let h = match pos_conv {
        Projection::Some { weight, bias } => {
            let k = weight.shape()[0];
            let p = k / 2;
            let core = B::float_slice(
                tokens.clone(),
                &[
                    Slice::from(0..b),
                    Slice::from(p..rows - p),
                    Slice::from(0..d),
                ],
            );
            // Taps `[k, d]` as Burn's depthwise weight `[d, 1, k]`.
            let w = B::float_reshape(B::float_permute(weight, &[1, 0]), Shape::new([d, 1, k]));
            let options = ConvOptions::new([1], [0], [1], d);
            let r = B::conv1d(B::float_swap_dims(tokens, 1, 2), w, Some(bias), options);
            B::float_add(core, B::gelu_erf(B::float_swap_dims(r, 1, 2)))
        }
        Projection::None => tokens,
    };
    let t = dims3(&h)[1];
    let cls = B::float_expand(
        B::float_reshape(cls, Shape::new([1, 1, d])),
        Shape::new([b, 1, d]),
    );
    let h = B::float_cat(vec![cls, h], 1);
    B::float_add(h, B::float_reshape(pos, Shape::new([1, t + 1, d])))
}

/// The three dimensions of a rank-3 tensor.
fn dims3(x: &impl TensorMetadata) -> [usize; 3] {
    let s = x.shape();
    [s[0], s[1], s[2]]
}
