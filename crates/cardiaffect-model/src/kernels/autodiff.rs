//! [`CardiaffectOps`] on flex under autodiff: training's leaves as recorded ops whose forward
//! and backward run the in-tree kernels ([`record`]); the inference ops take the default
//! bodies, which compose these recorded leaves.

use std::sync::Arc;

use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::Autodiff;

use super::gemm::{linear_backward_flex, linear_flex};
use super::train_attention::{self, Dropout};
use super::train_ops::{self, record};
use super::{gelu, train_conv, CardiaffectOps, Workspace};

impl<C: CheckpointStrategy> CardiaffectOps for Autodiff<Flex, C> {
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<Flex, C, _, _, 1>(
            [x],
            (),
            |(), x, grad, _| [gelu::backward(x, grad)],
            |[x]| (gelu::forward(x.clone()), x),
            |[x]| gelu::forward(x),
        )
    }

    fn attention_train(
        qkv: FloatTensor<Self>,
        n_heads: usize,
        dropout: f64,
        seed: u64,
        first_row: usize,
        workspace: Arc<Workspace>,
    ) -> FloatTensor<Self> {
        let drop = Dropout::new(dropout, seed).at_row(first_row, n_heads);
        let ws = workspace.clone();
        record::<Flex, C, _, _, 1>(
            [qkv],
            (n_heads, drop, workspace),
            |(n_heads, drop, ws), qkv, grad, _| {
                [train_attention::backward(qkv, grad, n_heads, drop, &ws)]
            },
            |[qkv]| {
                (
                    train_attention::forward(qkv.clone(), n_heads, drop, &ws),
                    qkv,
                )
            },
            |[qkv]| train_attention::forward(qkv, n_heads, drop, &ws),
        )
    }

    fn dropout_train(
        x: FloatTensor<Self>,
        p: f64,
        seed: u64,
        site: u64,
        first: u64,
    ) -> FloatTensor<Self> {
        record::<Flex, C, _, _, 1>(
            [x],
            (p, seed, site, first),
            // The mask is redrawn: multiplying by it again is the backward.
            |(p, seed, site, first), (), grad, _| [train_ops::dropout(grad, p, seed, site, first)],
            |[x]| (train_ops::dropout(x, p, seed, site, first), ()),
            |[x]| train_ops::dropout(x, p, seed, site, first),
        )
    }

    fn layer_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        record::<Flex, C, _, _, 3>(
            [x, gamma, beta],
            (),
            |(), (x, gamma, stats), grad, _| {
                train_ops::layer_norm_backward(x, gamma, stats, grad).into()
            },
            |[x, gamma, beta]| {
                let (out, stats) = train_ops::layer_norm_stats(x.clone(), gamma.clone(), beta, eps);
                (out, (x, gamma, stats))
            },
            |[x, gamma, beta]| train_ops::layer_norm_stats(x, gamma, beta, eps).0,
        )
    }

    fn linear_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        record::<Flex, C, _, _, 3>(
            [x, weight, bias],
            (),
            |(), (x, weight), grad, input_grad| {
                linear_backward_flex(x, weight, grad, input_grad).into()
            },
            |[x, weight, bias]| {
                let out = linear_flex(x.clone(), weight.clone(), bias, None, false);
                (out, (x, weight))
            },
            |[x, weight, bias]| linear_flex(x, weight, bias, None, false),
        )
    }

    fn conv1d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        workspace: Arc<Workspace>,
    ) -> FloatTensor<Self> {
        record::<Flex, C, _, _, 3>(
            [x, weight, bias],
            (stride, workspace),
            // The raw signal into the first convolution needs no gradient: skipped.
            |(stride, ws), (padded, weight), grad, input_grad| {
                train_conv::backward(padded, weight, grad, stride, input_grad, &ws).into()
            },
            |[x, weight, bias]| {
                let (out, padded) = train_conv::forward(x, weight.clone(), bias, stride);
                (out, (padded, weight))
            },
            |[x, weight, bias]| train_conv::forward(x, weight, bias, stride).0,
        )
    }
}
