use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::{Bool, TensorData};

use crate::kernels::gelu;
use crate::transformer::{dropout, DropoutCtx, Transformer};
use crate::{ModelConfig, ModelError, Positional};

/// Convolutions with a per-position LayerNorm over channels and GELU after each.
#[derive(Module, Debug)]
pub struct SignalEncoder {
    pub convs: Vec<Conv1d>,
    pub norms: Vec<LayerNorm>,
}

impl SignalEncoder {
    /// `[B, 1, L]` -> `[B, T, C]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut h = x;
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            let y = conv.forward(h).swap_dims(1, 2);
            h = gelu(norm.forward(y)).swap_dims(1, 2);
        }
        h.swap_dims(1, 2)
    }
}

/// The model. Parameter names (as saved in safetensors):
///
/// | name | shape (Burn layout) | what |
/// |---|---|---|
/// | `encoder.convs.{i}.weight`, `.bias` | `[C_i, C_{i-1}, k_i]`, `[C_i]` | convolution `i` (C_{-1} = 1) |
/// | `encoder.norms.{i}.gamma`, `.beta` | `[C_i]` | LayerNorm over channels after conv `i` |
/// | `proj.weight`, `.bias` | `[C_last, d]`, `[d]` | channels to model width |
/// | `cls_token`, `mask_token` | `[d]` | learned CLS and mask embeddings |
/// | `pos` | `[T + 1, d]` | learned positions (CLS first); absent when sinusoidal |
/// | `pos_conv.weight`, `.bias` | `[d, 1, k]`, `[d]` | depthwise conv over tokens (`conv_pos_kernel`) |
/// | `transformer.layers.{l}.norm_2.*` | `[d]` | pre-attention LayerNorm (Burn's naming) |
/// | `transformer.layers.{l}.mha.{query,key,value,output}.*` | `[d, d]`, `[d]` | attention |
/// | `transformer.layers.{l}.norm_1.*` | `[d]` | pre-feed-forward LayerNorm |
/// | `transformer.layers.{l}.pwff.linear_inner.*`, `linear_outer.*` | `[d, d_ff]`, `[d_ff, d]` | feed-forward |
/// | `final_norm.*` | `[d]` | LayerNorm after the last layer |
/// | `recon_head.weight`, `.bias` | `[d, s]`, `[s]` | per-token reconstruction of `s` samples |
/// | `cls_head.weight`, `.bias` | `[d, n_classes]` | classification from the CLS token |
///
/// Burn stores `Linear` weights as `[in, out]`; the PyTorch export (`save_weights_pytorch`)
/// transposes them to `[out, in]` and names LayerNorm parameters `weight`/`bias`, so that a
/// PyTorch module with the same attribute names (`reference/model.py`) loads the file with
/// `load_state_dict`.
#[derive(Module, Debug)]
pub struct Model {
    pub encoder: SignalEncoder,
    pub proj: Linear,
    pub cls_token: Param<Tensor<1>>,
    pub mask_token: Param<Tensor<1>>,
    pub pos: Option<Param<Tensor<2>>>,
    pub pos_conv: Option<Conv1d>,
    pub transformer: Transformer,
    pub final_norm: LayerNorm,
    pub recon_head: Linear,
    pub cls_head: Linear,
    pub dropout: f64,
    pub attention_dropout: f64,
    pub d_model: usize,
    pub n_tokens: usize,
    pub samples_per_token: usize,
}

/// The Transformer's output, split into the CLS vector and the signal tokens.
pub struct Encoded {
    /// `[B, d]`
    pub cls: Tensor<2>,
    /// `[B, T, d]`
    pub tokens: Tensor<3>,
}

fn sinusoid(n: usize, d: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n * d];
    for p in 0..n {
        for i in 0..d / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
            v[p * d + 2 * i] = angle.sin() as f32;
            v[p * d + 2 * i + 1] = angle.cos() as f32;
        }
    }
    v
}

impl ModelConfig {
    /// Build the model with fresh weights (seeded through the device's RNG).
    pub fn init(&self, device: &Device) -> Result<Model, ModelError> {
        self.validate()?;
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut c_in = 1;
        for ((&c, &k), &s) in self
            .conv_channels
            .iter()
            .zip(&self.conv_kernels)
            .zip(&self.conv_strides)
        {
            convs.push(
                Conv1dConfig::new(c_in, c, k)
                    .with_stride(s)
                    .with_padding(PaddingConfig1d::Explicit(k / 2, k / 2))
                    .init(device),
            );
            norms.push(
                LayerNormConfig::new(c)
                    .with_epsilon(self.layer_norm_eps)
                    .init(device),
            );
            c_in = c;
        }
        let d = self.d_model;
        let small = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let t = self.n_tokens();
        Ok(Model {
            encoder: SignalEncoder { convs, norms },
            proj: LinearConfig::new(c_in, d).init(device),
            cls_token: small.init([d], device),
            mask_token: small.init([d], device),
            pos: match self.positional {
                Positional::Learned => Some(small.init([t + 1, d], device)),
                Positional::Sinusoidal => None,
            },
            pos_conv: self.conv_pos_kernel.map(|k| {
                Conv1dConfig::new(d, d, k)
                    .with_groups(d)
                    .with_padding(PaddingConfig1d::Explicit(k / 2, k / 2))
                    .init(device)
            }),
            transformer: Transformer::new(
                d,
                self.d_ff,
                self.n_heads,
                self.n_layers,
                self.layer_norm_eps,
                device,
            ),
            final_norm: LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            recon_head: LinearConfig::new(d, self.samples_per_token()).init(device),
            cls_head: LinearConfig::new(d, self.n_classes).init(device),
            dropout: self.dropout,
            attention_dropout: self.attention_dropout.unwrap_or(self.dropout),
            d_model: d,
            n_tokens: t,
            samples_per_token: self.samples_per_token(),
        })
    }
}

impl Model {
    /// Inference: `x`: `[B, L]` windows; `mask`: `[B, T]`, true where a token is replaced by
    /// the mask embedding. No dropout.
    pub fn encode(&self, x: Tensor<2>, mask: Option<Tensor<2, Bool>>) -> Encoded {
        self.encode_with(x, mask, None)
    }

    /// Training: as [`Model::encode`], with dropout whose masks are drawn from `seed` (give
    /// each step its own seed; the same seed gives the same masks).
    pub fn encode_train(&self, x: Tensor<2>, mask: Option<Tensor<2, Bool>>, seed: u64) -> Encoded {
        let drop = DropoutCtx {
            p: self.dropout,
            attention_p: self.attention_dropout,
            seed,
        };
        self.encode_with(x, mask, Some(drop))
    }

    fn encode_with(
        &self,
        x: Tensor<2>,
        mask: Option<Tensor<2, Bool>>,
        drop: Option<DropoutCtx>,
    ) -> Encoded {
        if drop.is_none() && crate::kernels::plain_flex(&x.device()) {
            // Inference on a pool worker: each parallel op below splits from a worker instead
            // of being injected from outside the pool (one wake-up of the caller per call, not
            // per op). Not under autodiff: training's activations, allocated in a worker's malloc
            // arena, were unmapped and faulted back every step (1.2 M page faults per bench
            // run instead of 0.47 M) for no measurable gain.
            return crate::kernels::on_worker(|| self.encode_inner(x, mask, drop));
        }
        self.encode_inner(x, mask, drop)
    }

    /// The attention weights of every Transformer layer for windows `x` `[B, L]` (inference):
    /// per layer `[B, heads, T + 1, T + 1]`, index 0 the CLS token, rows summing to 1.
    pub fn attention_maps(&self, x: Tensor<2>) -> Vec<Tensor<4>> {
        self.transformer
            .forward_attention(self.embed(x, None, None))
            .1
    }

    fn encode_inner(
        &self,
        x: Tensor<2>,
        mask: Option<Tensor<2, Bool>>,
        drop: Option<DropoutCtx>,
    ) -> Encoded {
        let h = self.embed(x, mask, drop);
        let [b, t1, d] = h.dims();
        let t = t1 - 1;
        let h = self.final_norm.forward(self.transformer.forward(h, drop));
        Encoded {
            cls: h.clone().slice([0..b, 0..1, 0..d]).reshape([b, d]),
            tokens: h.slice([0..b, 1..t + 1, 0..d]),
        }
    }

    /// Signal encoder, mask, token convolution, CLS and positions: the Transformer's input
    /// `[B, T + 1, d]`.
    fn embed(
        &self,
        x: Tensor<2>,
        mask: Option<Tensor<2, Bool>>,
        drop: Option<DropoutCtx>,
    ) -> Tensor<3> {
        let [b, l] = x.dims();
        let d = self.d_model;
        let h = self
            .proj
            .forward(self.encoder.forward(x.reshape([b, 1, l])));
        let [_, t, _] = h.dims();
        let h = match mask {
            Some(m) => {
                let m3: Tensor<3, Bool> = m.unsqueeze_dim::<3>(2).expand([b, t, d]);
                let fill = self.mask_token.val().reshape([1, 1, d]).expand([b, t, d]);
                h.mask_where(m3, fill)
            }
            None => h,
        };
        let h = match &self.pos_conv {
            Some(c) => {
                let r = gelu(c.forward(h.clone().swap_dims(1, 2))).swap_dims(1, 2);
                h + r
            }
            None => h,
        };
        let cls = self.cls_token.val().reshape([1, 1, d]).expand([b, 1, d]);
        let h = Tensor::cat(vec![cls, h], 1);
        let pos = match &self.pos {
            Some(p) => p.val(),
            None => Tensor::from_data(TensorData::new(sinusoid(t + 1, d), [t + 1, d]), &h.device()),
        };
        let h = h + pos.unsqueeze::<3>();
        match drop {
            Some(dc) => dropout(h, dc.p, dc.seed, 0),
            None => h,
        }
    }

    /// Per-token reconstruction of the raw window: `[B, T, d]` -> `[B, T * s]`.
    pub fn reconstruct(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [b, t, _] = tokens.dims();
        self.recon_head
            .forward(tokens)
            .reshape([b, t * self.samples_per_token])
    }

    /// Class logits of windows `[B, L]` (inference: no mask, no dropout), one row each: what
    /// calibration works on (probabilities saturate in f32).
    pub fn class_logits(&self, x: Tensor<2>) -> Vec<Vec<f64>> {
        rows(self.classify(self.encode(x, None).cls))
    }

    /// CLS embeddings of windows `[B, L]` (inference), one row of `d_model` each.
    pub fn cls_embeddings(&self, x: Tensor<2>) -> Vec<Vec<f64>> {
        rows(self.encode(x, None).cls)
    }

    /// Class logits from the CLS vector: `[B, d]` -> `[B, n_classes]`.
    pub fn classify(&self, cls: Tensor<2>) -> Tensor<2> {
        self.cls_head.forward(cls)
    }
}

/// A `[B, k]` tensor as B rows of f64.
fn rows(t: Tensor<2>) -> Vec<Vec<f64>> {
    let k = t.dims()[1];
    let v: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .unwrap_or_default();
    v.chunks(k.max(1))
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect()
}
