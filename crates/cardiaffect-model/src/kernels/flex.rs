//! The flex implementation of [`CardiaffectOps`]: each method hands the tensors to its kernel.
//! `linear_train` keeps its default (Burn's linear): outside autodiff it runs only where a
//! training-shaped forward meets an inference tensor (the masked embedding and the
//! reconstruction head in evaluation), and its kernel's gain is in the recorded backward.

use std::sync::Arc;

use burn::backend::Flex;
use burn_flex::FlexTensor;

use super::train_attention::{self, Dropout};
use super::{attention, embed, gelu, gemm, layer, train_conv, train_ops};
use super::{CardiaffectOps, EncoderLayerParams, Projection, Workspace};

impl Projection<Flex> {
    fn as_pair(&self) -> Option<(&FlexTensor, &FlexTensor)> {
        match self {
            Projection::None => None,
            Projection::Some { weight, bias } => Some((weight, bias)),
        }
    }
}

impl CardiaffectOps for Flex {
    fn packed_attention(
        qkv: FlexTensor,
        n_heads: usize,
        threads: usize,
        workspace: Arc<Workspace>,
    ) -> FlexTensor {
        attention::packed_attention(qkv, n_heads, threads, &workspace)
    }

    fn conv_stage(
        x: FlexTensor,
        weight_rows: FlexTensor,
        bias: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        proj: Projection<Flex>,
        stride: usize,
        pad_input: bool,
        next_pad: usize,
        eps: f64,
        threads: usize,
        workspace: Arc<Workspace>,
    ) -> FlexTensor {
        embed::conv_stage_flex(
            x,
            embed::ConvStage {
                weight_rows: &weight_rows,
                bias: &bias,
                gamma: &gamma,
                beta: &beta,
                stride,
            },
            proj.as_pair(),
            (pad_input, next_pad),
            eps as f32,
            threads,
            &workspace,
        )
    }

    fn token_head(
        tokens: FlexTensor,
        pos_conv: Projection<Flex>,
        cls: FlexTensor,
        pos: FlexTensor,
        threads: usize,
    ) -> FlexTensor {
        embed::token_head_flex(tokens, pos_conv.as_pair(), &cls, &pos, threads)
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

    fn gelu_erf(x: FlexTensor) -> FlexTensor {
        gelu::forward(x)
    }

    fn attention_train(
        qkv: FlexTensor,
        n_heads: usize,
        dropout: f64,
        seed: u64,
        first_row: usize,
        workspace: Arc<Workspace>,
    ) -> FlexTensor {
        let drop = Dropout::new(dropout, seed).at_row(first_row, n_heads);
        train_attention::forward(qkv, n_heads, drop, &workspace)
    }

    fn dropout_train(x: FlexTensor, p: f64, seed: u64, site: u64, first: u64) -> FlexTensor {
        train_ops::dropout(x, p, seed, site, first)
    }

    fn layer_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f64,
    ) -> FlexTensor {
        train_ops::layer_norm_stats(x, gamma, beta, eps).0
    }

    fn conv1d_train(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: usize,
        _workspace: Arc<Workspace>,
    ) -> FlexTensor {
        train_conv::forward(x, weight, bias, stride).0
    }
}
