//! The extension's leaves in Burn's own ops, generic over the backend: GELU, dropout,
//! LayerNorm, linear, convolution and attention, the default bodies of
//! [`super::CardiaffectOps`]'s training methods (which every backend without kernels runs,
//! wgpu and autodiff over it) and what `KernelMode::Burn` runs (the model's `crate::ops` calls
//! them on `Dispatch`). Safe code: primitives in, primitives out. (The trait's other defaults
//! are compositions of its own methods, written in its declaration.)

use std::sync::Arc;

use burn::backend::ops::{AttentionModuleOptions, ConvOptions};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Shape, Slice, TensorData, TensorMetadata};

use super::train_attention::Dropout;
use super::train_ops::apply_dropout_mask;
use super::workspace::Workspace;

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
/// `k / 2` either side): Burn's on the channels-first view (the kernels' `_workspace` unused).
pub fn conv1d_train<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    stride: usize,
    _workspace: Arc<Workspace>,
) -> FloatTensor<B> {
    let k = weight.shape()[2];
    let options = ConvOptions::new([stride], [k / 2], [1], 1);
    let y = B::conv1d(B::float_swap_dims(x, 1, 2), weight, Some(bias), options);
    B::float_swap_dims(y, 1, 2)
}

/// Multi-head attention of the packed projections `qkv` `[B, T, 3d]` -> `[B, T, d]`, the
/// attention weights dropped out with the in-tree op's masks: Burn's `attention` without
/// dropout, else its matrix products and a softmax (the kernels' `_workspace` unused).
pub fn attention_train<B: Backend>(
    qkv: FloatTensor<B>,
    n_heads: usize,
    dropout: f64,
    seed: u64,
    first_row: usize,
    _workspace: Arc<Workspace>,
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

/// `x` `[B, R, C]` with `p` zero rows either side.
pub fn pad_rows<B: Backend>(x: FloatTensor<B>, p: usize) -> FloatTensor<B> {
    if p == 0 {
        return x;
    }
    let [b, _, c] = dims3(&x);
    let zeros = B::float_zeros(Shape::new([b, p, c]), &x.device(), x.dtype().into());
    B::float_cat(vec![zeros.clone(), x, zeros], 1)
}

/// The three dimensions of a rank-3 tensor.
pub fn dims3(x: &impl TensorMetadata) -> [usize; 3] {
    let s = x.shape();
    [s[0], s[1], s[2]]
}
