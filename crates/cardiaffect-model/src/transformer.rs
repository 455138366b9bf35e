//! The pre-LN Transformer encoder, written on Burn's tensor ops rather than taken from
//! burn-nn, for two measured reasons (see BENCHMARKS.md):
//! - burn-nn's `Dropout` draws each element through ChaCha20 and a distribution sampler, 26 % of
//!   a pre-training step; here masks come from the in-tree xoshiro generator, in parallel, and
//!   are seeded per step (so that a resumed run draws the same masks);
//! - at inference on plain flex tensors each layer is one in-tree op
//!   ([`crate::kernels::encoder_layer`]); elsewhere, without attention dropout, attention runs
//!   through [`crate::kernels::self_attention`] (Burn's fused `attention` op, or on flex an
//!   in-tree kernel on the packed projections).
//!
//! Parameter names and the computation are those of burn-nn's `TransformerEncoder` with
//! `norm_first` (norm_2 before attention, norm_1 before the feed-forward), so weights and the
//! PyTorch parity files are unchanged.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::kernels::{
    dropout_rows, encoder_layer, gelu, layer_norm, layer_op_applies, linear, linear_train,
    self_attention, train_self_attention,
};

#[derive(Module, Debug)]
pub struct Mha {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub n_heads: usize,
}

#[derive(Module, Debug)]
pub struct Pwff {
    pub linear_inner: Linear,
    pub linear_outer: Linear,
}

#[derive(Module, Debug)]
pub struct Layer {
    pub mha: Mha,
    pub norm_1: LayerNorm,
    pub norm_2: LayerNorm,
    pub pwff: Pwff,
}

#[derive(Module, Debug)]
pub struct Transformer {
    pub layers: Vec<Layer>,
    /// The LayerNorms' epsilon (burn-nn keeps its own private), for the in-tree layer op.
    pub eps: f64,
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

impl Transformer {
    pub fn new(
        d: usize,
        d_ff: usize,
        n_heads: usize,
        n_layers: usize,
        eps: f64,
        device: &Device,
    ) -> Transformer {
        let layers = (0..n_layers)
            .map(|_| Layer {
                mha: Mha {
                    query: LinearConfig::new(d, d).init(device),
                    key: LinearConfig::new(d, d).init(device),
                    value: LinearConfig::new(d, d).init(device),
                    output: LinearConfig::new(d, d).init(device),
                    n_heads,
                },
                norm_1: LayerNormConfig::new(d).with_epsilon(eps).init(device),
                norm_2: LayerNormConfig::new(d).with_epsilon(eps).init(device),
                pwff: Pwff {
                    linear_inner: LinearConfig::new(d, d_ff).init(device),
                    linear_outer: LinearConfig::new(d_ff, d).init(device),
                },
            })
            .collect();
        Transformer { layers, eps }
    }

    /// `[B, T, d]` -> `[B, T, d]`; dropout only when `drop` is given.
    pub fn forward(&self, x: Tensor<3>, drop: Option<DropoutCtx>) -> Tensor<3> {
        self.forward_rows(x, drop, false)
    }

    /// Inference for the CLS vector only: `[B, T, d]` -> `[B, 1, d]` where the in-tree layer
    /// op runs (the last layer computes the CLS row alone), else `[B, T, d]`. Row 0 is the
    /// CLS row of [`Transformer::forward`] either way.
    pub fn forward_cls(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_rows(x, None, true)
    }

    fn forward_rows(&self, x: Tensor<3>, drop: Option<DropoutCtx>, cls_only: bool) -> Tensor<3> {
        let mut x = x;
        let last = self.layers.len().saturating_sub(1);
        for (l, layer) in self.layers.iter().enumerate() {
            let site = 16 * (l as u64 + 1);
            if drop.is_none() {
                // Inference: the whole layer as one in-tree op where it applies; otherwise the
                // residual adds, biases and GELU ride on the matrix products.
                if layer_op_applies(&x) {
                    if let Some(mut p) = layer.layer_params(self.eps) {
                        p.cls_only = cls_only && l == last;
                        // By value: the op writes over the input's buffer when nobody else
                        // holds it.
                        x = encoder_layer(x, p);
                        continue;
                    }
                }
                let h = layer_norm(x.clone(), &layer.norm_2, self.eps);
                let m = &layer.mha;
                let ctx = self_attention(h, &m.query, &m.key, &m.value, m.n_heads);
                x = linear(ctx, &m.output, false, Some(x));
                let h = linear(
                    layer_norm(x.clone(), &layer.norm_1, self.eps),
                    &layer.pwff.linear_inner,
                    true,
                    None,
                );
                x = linear(h, &layer.pwff.linear_outer, false, Some(x));
                continue;
            }
            let a = layer
                .mha
                .forward(layer_norm(x.clone(), &layer.norm_2, self.eps), drop, site);
            x = x + drop.map_or(a.clone(), |d| {
                dropout_rows(a, d.p, d.seed, site + 1, d.first_row)
            });
            let f = linear_train(
                layer_norm(x.clone(), &layer.norm_1, self.eps),
                &layer.pwff.linear_inner,
            );
            let f = gelu(f);
            let f = drop.map_or(f.clone(), |d| {
                dropout_rows(f, d.p, d.seed, site + 2, d.first_row)
            });
            let f = linear_train(f, &layer.pwff.linear_outer);
            x = x + drop.map_or(f.clone(), |d| {
                dropout_rows(f, d.p, d.seed, site + 3, d.first_row)
            });
        }
        x
    }
}

impl Transformer {
    /// Inference with the attention weights of every layer kept: `[B, T, d]` ->
    /// (`[B, T, d]`, per layer `[B, heads, T, T]`, rows summing to 1). Burn's ops throughout
    /// (explicit weights, so slower than [`Transformer::forward`]; for inspection, not speed).
    pub fn forward_attention(&self, x: Tensor<3>) -> (Tensor<3>, Vec<Tensor<4>>) {
        let mut x = x;
        let mut maps = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let m = &layer.mha;
            let h = layer_norm(x.clone(), &layer.norm_2, self.eps);
            let (q, k, v) = (
                m.query.forward(h.clone()),
                m.key.forward(h.clone()),
                m.value.forward(h),
            );
            let [b, t, d] = q.dims();
            let dk = d / m.n_heads;
            let split = |y: Tensor<3>| y.reshape([b, t, m.n_heads, dk]).swap_dims(1, 2);
            let w = softmax(
                split(q)
                    .matmul(split(k).swap_dims(2, 3))
                    .div_scalar((dk as f32).sqrt()),
                3,
            );
            let ctx = w
                .clone()
                .matmul(split(v))
                .swap_dims(1, 2)
                .reshape([b, t, d]);
            maps.push(w);
            x = x + m.output.forward(ctx);
            let f = gelu(layer.pwff.linear_inner.forward(layer_norm(
                x.clone(),
                &layer.norm_1,
                self.eps,
            )));
            x = x + layer.pwff.linear_outer.forward(f);
        }
        (x, maps)
    }
}

impl Mha {
    fn forward(&self, x: Tensor<3>, drop: Option<DropoutCtx>, site: u64) -> Tensor<3> {
        if let Some(dc) = drop {
            // On flex: one in-tree op forward and backward, its dropout masks from this seed.
            let seed = cardiaffect_signal::Rng::new(dc.seed)
                .fork(site + 4)
                .next_u64();
            let qkv = (&self.query, &self.key, &self.value);
            let (p, first) = (dc.attention_p, dc.first_row);
            if let Some(ctx) = train_self_attention(&x, qkv, self.n_heads, p, seed, first) {
                return linear_train(ctx, &self.output);
            }
        }
        let ctx = match drop {
            Some(dc) if dc.attention_p > 0.0 => {
                let (q, k, v) = (
                    self.query.forward(x.clone()),
                    self.key.forward(x.clone()),
                    self.value.forward(x),
                );
                let [b, t, d] = q.dims();
                let h = self.n_heads;
                let dk = d / h;
                let split = |y: Tensor<3>| y.reshape([b, t, h, dk]).swap_dims(1, 2);
                let w = softmax(
                    split(q)
                        .matmul(split(k).swap_dims(2, 3))
                        .div_scalar((dk as f32).sqrt()),
                    3,
                );
                dropout_rows(w, dc.attention_p, dc.seed, site + 4, dc.first_row)
                    .matmul(split(v))
                    .swap_dims(1, 2)
                    .reshape([b, t, d])
            }
            _ => self_attention(x, &self.query, &self.key, &self.value, self.n_heads),
        };
        self.output.forward(ctx)
    }
}

impl Layer {
    /// The whole layer as the in-tree op (flex inference), or `None` when it does not apply or
    /// a parameter the op needs (a bias) is absent: the caller then runs Burn's ops.
    #[cfg(test)]
    pub(crate) fn fused(&self, x: &Tensor<3>, eps: f64) -> Option<Tensor<3>> {
        if !layer_op_applies(x) {
            return None;
        }
        Some(encoder_layer(x.clone(), self.layer_params(eps)?))
    }

    /// The parameters the in-tree layer op takes, or `None` without a bias it needs.
    pub(crate) fn layer_params(
        &self,
        eps: f64,
    ) -> Option<crate::kernels::EncoderLayerParams<burn::backend::Dispatch>> {
        let layer = self;
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
        Some(crate::kernels::EncoderLayerParams {
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
            cls_only: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_attention_computes_what_forward_computes() {
        let d = Device::flex();
        let tr = Transformer::new(16, 32, 4, 2, 1e-5, &d);
        let x = Tensor::<3>::random([2, 9, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &d);
        let (y, maps) = tr.forward_attention(x.clone());
        let a: Vec<f32> = y.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = tr.forward(x, None).into_data().try_to_vec().unwrap();
        let e = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(e < 1e-5, "{e}");
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[0].dims(), [2, 4, 9, 9]);
        let sums: Vec<f32> = maps[1].clone().sum_dim(3).into_data().try_to_vec().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    }

    #[test]
    fn dropout_keeps_the_mean_and_its_rate() {
        use crate::kernels::dropout;
        let d = Device::flex();
        let x = Tensor::<2>::ones([200, 500], &d);
        let y: Vec<f32> = dropout(x.clone(), 0.1, 7, 1)
            .into_data()
            .try_to_vec()
            .unwrap();
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        assert!((zeros - 0.1).abs() < 0.005, "{zeros}");
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        // Same seed and site, same mask; another site, another mask.
        let y2: Vec<f32> = dropout(x.clone(), 0.1, 7, 1)
            .into_data()
            .try_to_vec()
            .unwrap();
        let y3: Vec<f32> = dropout(x, 0.1, 7, 2).into_data().try_to_vec().unwrap();
        assert_eq!(y, y2);
        assert_ne!(y, y3);
    }
}
