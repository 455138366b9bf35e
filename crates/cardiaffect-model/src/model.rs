use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::{Bool, TensorData};

use std::sync::Arc;

use crate::kernels::Workspace;
use crate::ops::{self, DropoutCtx, EmbedParams, Kernels, Pass, Prepared};
use crate::transformer::Transformer;
use crate::{ModelConfig, ModelError, Positional};

/// Convolutions with a per-position LayerNorm over channels and GELU after each.
#[derive(Module, Debug)]
pub struct SignalEncoder {
    pub convs: Vec<Conv1d>,
    pub norms: Vec<LayerNorm>,
}

impl SignalEncoder {
    /// `[B, 1, L]` -> `[B, T, C]` in `pass`, channels-last throughout; `eps` is the
    /// LayerNorms' epsilon.
    pub fn forward(&self, x: Tensor<3>, eps: f64, pass: Pass) -> Tensor<3> {
        let [b, _, l] = x.dims();
        let k = pass.kernels;
        let mut h = x.reshape([b, l, 1]);
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            h = ops::gelu(ops::layer_norm(ops::conv1d(h, conv, pass), norm, eps, k), k);
        }
        h
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
    /// [`Pooling::Mean`](crate::config::Pooling): the head reads the mean of the signal tokens.
    pub mean_pool: bool,
    /// Which kernels the model runs on flex: the default, unless its owner sets another
    /// (to compare; not saved with the weights).
    #[module(skip)]
    pub kernels: Kernels,
    /// The scratch the kernels work in, made with the model and shared by its clones and
    /// its prepared form (not saved).
    #[module(skip)]
    pub workspace: Arc<Workspace>,
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
            mean_pool: self.pooling == Some(crate::config::Pooling::Mean),
            kernels: Kernels::default(),
            workspace: Workspace::new(),
        })
    }
}

impl Model {
    /// Inference: `x`: `[B, L]` windows; `mask`: `[B, T]`, true where a token is replaced by
    /// the mask embedding. No dropout.
    pub fn encode(&self, x: Tensor<2>, mask: Option<Tensor<2, Bool>>) -> Encoded {
        self.encode_with(x, mask, None, None)
    }

    /// Training: as [`Model::encode`], with dropout whose masks are drawn from `seed` (give
    /// each step its own seed; the same seed gives the same masks).
    pub fn encode_train(&self, x: Tensor<2>, mask: Option<Tensor<2, Bool>>, seed: u64) -> Encoded {
        self.encode_train_rows(x, mask, seed, 0)
    }

    /// [`Model::encode_train`] of windows `x` that are rows `first_row ..` of the step's whole
    /// batch: their dropout masks are the ones those rows draw in the whole batch, so that
    /// processes each given a share of a batch compute what one process given all of it does.
    pub fn encode_train_rows(
        &self,
        x: Tensor<2>,
        mask: Option<Tensor<2, Bool>>,
        seed: u64,
        first_row: usize,
    ) -> Encoded {
        let drop = DropoutCtx {
            p: self.dropout,
            attention_p: self.attention_dropout,
            seed,
            first_row,
        };
        self.encode_with(x, mask, Some(drop), None)
    }

    fn encode_with(
        &self,
        x: Tensor<2>,
        mask: Option<Tensor<2, Bool>>,
        drop: Option<DropoutCtx>,
        prepared: Option<&Prepared>,
    ) -> Encoded {
        let pass = Pass::new(self.kernels, drop, &self.workspace).with_prepared(prepared);
        // Window by window only without a mask (a mask's rows would have to be split too).
        let split = mask.is_none();
        Encoded::cat(ops::in_windows(x, pass, split, |xi, p| {
            self.encode_inner(xi, mask.clone(), p)
        }))
    }

    /// The CLS vectors `[B, d]` of windows `x` `[B, L]` at inference (no mask, no dropout):
    /// `encode(x, None).cls`, where the in-tree layer op runs without the last layer's work for
    /// the other tokens (classification needs the CLS row alone).
    pub fn encode_cls(&self, x: Tensor<2>) -> Tensor<2> {
        self.encode_cls_with(x, None)
    }

    fn encode_cls_with(&self, x: Tensor<2>, prepared: Option<&Prepared>) -> Tensor<2> {
        let pass = Pass::new(self.kernels, None, &self.workspace).with_prepared(prepared);
        cat_rows(ops::in_windows(x, pass, true, |xi, p| {
            self.cls_inner(xi, p)
        }))
    }

    fn cls_inner(&self, x: Tensor<2>, pass: Pass) -> Tensor<2> {
        let h = self.embed(x, None, pass);
        let [b, _, d] = h.dims();
        // Row 0 is the CLS row whether the last layer computed one row or all of them.
        let h = self
            .transformer
            .forward(h, pass, true)
            .slice([0..b, 0..1, 0..d]);
        ops::layer_norm(h, &self.final_norm, self.transformer.eps, self.kernels).reshape([b, d])
    }

    /// Inference of a batch one window at a time ([`ops::each_window`]), whether or not
    /// [`ops::in_windows`] would choose to.
    #[cfg(test)]
    fn encode_by_window(&self, x: Tensor<2>, pass: Pass) -> Encoded {
        Encoded::cat(ops::each_window(x, pass, |xi, p| {
            self.encode_inner(xi, None, p)
        }))
    }

    /// The attention weights of every Transformer layer for windows `x` `[B, L]` (inference):
    /// per layer `[B, heads, T + 1, T + 1]`, index 0 the CLS token, rows summing to 1.
    pub fn attention_maps(&self, x: Tensor<2>) -> Vec<Tensor<4>> {
        let pass = Pass::new(self.kernels, None, &self.workspace);
        self.transformer
            .forward_attention(self.embed(x, None, pass), self.kernels)
            .1
    }

    fn encode_inner(&self, x: Tensor<2>, mask: Option<Tensor<2, Bool>>, pass: Pass) -> Encoded {
        let h = self.embed(x, mask, pass);
        let [b, t1, d] = h.dims();
        let t = t1 - 1;
        let h = ops::layer_norm(
            self.transformer.forward(h, pass, false),
            &self.final_norm,
            self.transformer.eps,
            self.kernels,
        );
        Encoded {
            cls: h.clone().slice([0..b, 0..1, 0..d]).reshape([b, d]),
            tokens: h.slice([0..b, 1..t + 1, 0..d]),
        }
    }

    /// Signal encoder, mask, token convolution, CLS and positions: the Transformer's input
    /// `[B, T + 1, d]`.
    fn embed(&self, x: Tensor<2>, mask: Option<Tensor<2, Bool>>, pass: Pass) -> Tensor<3> {
        if mask.is_none() {
            if let Some(h) = self.embed_fused(&x, pass) {
                return h;
            }
        }
        self.embed_ops(x, mask, pass)
    }

    /// [`Model::embed`] at inference as the fused in-tree op where it applies (flex), for
    /// windows whose token count the positions fit (others go the per-op way, which says
    /// what does not fit).
    fn embed_fused(&self, x: &Tensor<2>, pass: Pass) -> Option<Tensor<3>> {
        let l = x.dims()[1];
        let t = self.encoder.convs.iter().try_fold(l, |len, c| {
            let k = c.kernel_size;
            Some((len + 2 * (k / 2)).checked_sub(k)? / c.stride.max(1) + 1)
        })?;
        if self.pos.is_some() && t != self.n_tokens {
            return None;
        }
        let p = EmbedParams {
            convs: &self.encoder.convs,
            norms: &self.encoder.norms,
            proj: &self.proj,
            pos_conv: self.pos_conv.as_ref(),
            cls: self.cls_token.val(),
            pos: self.positions(t + 1, &x.device()),
            eps: self.transformer.eps,
        };
        ops::signal_embed(x, p, pass)
    }

    /// [`Model::embed`] op by op (every backend; masks and dropout).
    fn embed_ops(&self, x: Tensor<2>, mask: Option<Tensor<2, Bool>>, pass: Pass) -> Tensor<3> {
        let k = self.kernels;
        let [b, l] = x.dims();
        let d = self.d_model;
        let h = ops::linear_train(
            self.encoder
                .forward(x.reshape([b, 1, l]), self.transformer.eps, pass),
            &self.proj,
            k,
        );
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
                let r = ops::gelu(ops::conv1d(h.clone(), c, pass), k);
                h + r
            }
            None => h,
        };
        let cls = self.cls_token.val().reshape([1, 1, d]).expand([b, 1, d]);
        let h = Tensor::cat(vec![cls, h], 1);
        let pos = self.positions(t + 1, &h.device());
        let h = h + pos.unsqueeze::<3>();
        match pass.drop {
            Some(dc) => ops::dropout_rows(h, dc.p, dc.seed, 0, dc.first_row, k),
            None => h,
        }
    }

    /// The positions of the CLS row and `n - 1` tokens, `[n, d]`: learned or sinusoidal.
    fn positions(&self, n: usize, device: &Device) -> Tensor<2> {
        match &self.pos {
            Some(p) => p.val(),
            None => Tensor::from_data(
                TensorData::new(sinusoid(n, self.d_model), [n, self.d_model]),
                device,
            ),
        }
    }

    /// Per-token reconstruction of the raw window: `[B, T, d]` -> `[B, T * s]`.
    pub fn reconstruct(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [b, t, _] = tokens.dims();
        ops::linear_train(tokens, &self.recon_head, self.kernels)
            .reshape([b, t * self.samples_per_token])
    }

    /// Class logits of windows `[B, L]` (inference: no mask, no dropout), one row each: what
    /// calibration works on (probabilities saturate in f32).
    pub fn class_logits(&self, x: Tensor<2>) -> Vec<Vec<f64>> {
        self.class_logits_with(x, None)
    }

    fn class_logits_with(&self, x: Tensor<2>, prepared: Option<&Prepared>) -> Vec<Vec<f64>> {
        rows(self.classify(self.features_with(x, prepared)))
    }

    /// Embeddings of windows `[B, L]` (inference), one row of `d_model` each: what the head
    /// reads (the CLS vector, or the mean of the tokens with `pooling` `mean`).
    pub fn cls_embeddings(&self, x: Tensor<2>) -> Vec<Vec<f64>> {
        rows(self.features(x))
    }

    /// What the classification head reads of windows `x` at inference, `[B, d]`.
    pub fn features(&self, x: Tensor<2>) -> Tensor<2> {
        self.features_with(x, None)
    }

    fn features_with(&self, x: Tensor<2>, prepared: Option<&Prepared>) -> Tensor<2> {
        if self.mean_pool {
            self.pooled(self.encode_with(x, None, None, prepared))
        } else {
            self.encode_cls_with(x, prepared)
        }
    }

    /// This model ready for inference (see [`PreparedModel`]).
    pub fn prepared(&self) -> PreparedModel {
        let fused = ops::fused_applies(&self.proj.weight.val(), self.kernels);
        let prepared = if fused {
            Prepared {
                qkv: (self.transformer.layers.iter())
                    .map(|l| ops::packed_qkv(&l.mha.query, &l.mha.key, &l.mha.value))
                    .collect(),
                conv_rows: self.encoder.convs.iter().map(ops::conv_rows).collect(),
                token_taps: self.pos_conv.as_ref().map(ops::token_taps),
            }
        } else {
            Prepared::default()
        };
        PreparedModel {
            model: self.clone(),
            prepared,
        }
    }

    /// What the classification head reads of an encoding, `[B, d]`: its CLS vector, or the
    /// mean of its signal tokens.
    pub fn pooled(&self, e: Encoded) -> Tensor<2> {
        if self.mean_pool {
            let [b, _, d] = e.tokens.dims();
            e.tokens.mean_dim(1).reshape([b, d])
        } else {
            e.cls
        }
    }

    /// Class logits from the CLS vector: `[B, d]` -> `[B, n_classes]`.
    pub fn classify(&self, cls: Tensor<2>) -> Tensor<2> {
        ops::linear_train(cls, &self.cls_head, self.kernels)
    }
}

/// A model ready for inference: the weights that the fused flex ops read, rearranged once
/// (the query, key and value projections side by side, convolution taps as rows), with the
/// model they came from (a snapshot: a model trained afterwards needs a new one). Hold one
/// where a model serves many calls (predict, stream, evaluation, bench); [`Model`]'s own
/// inference methods rearrange on every call (a visible share of a batch-1 inference;
/// measured: BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct PreparedModel {
    model: Model,
    prepared: Prepared,
}

impl PreparedModel {
    /// The model this was made from.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// [`Model::encode`] without a mask.
    pub fn encode(&self, x: Tensor<2>) -> Encoded {
        self.model.encode_with(x, None, None, Some(&self.prepared))
    }

    /// [`Model::encode_cls`].
    pub fn encode_cls(&self, x: Tensor<2>) -> Tensor<2> {
        self.model.encode_cls_with(x, Some(&self.prepared))
    }

    /// [`Model::features`].
    pub fn features(&self, x: Tensor<2>) -> Tensor<2> {
        self.model.features_with(x, Some(&self.prepared))
    }

    /// [`Model::class_logits`].
    pub fn class_logits(&self, x: Tensor<2>) -> Vec<Vec<f64>> {
        self.model.class_logits_with(x, Some(&self.prepared))
    }

    /// [`Model::cls_embeddings`].
    pub fn cls_embeddings(&self, x: Tensor<2>) -> Vec<Vec<f64>> {
        rows(self.features(x))
    }
}

impl Encoded {
    /// The encodings of consecutive parts of a batch as one (a single part as it is).
    fn cat(mut parts: Vec<Encoded>) -> Encoded {
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        let (cls, tokens): (Vec<_>, Vec<_>) = parts.into_iter().map(|e| (e.cls, e.tokens)).unzip();
        Encoded {
            cls: Tensor::cat(cls, 0),
            tokens: Tensor::cat(tokens, 0),
        }
    }
}

/// Consecutive row blocks as one tensor (a single block as it is).
fn cat_rows(mut parts: Vec<Tensor<2>>) -> Tensor<2> {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    Tensor::cat(parts, 0)
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

#[cfg(test)]
mod tests {

    /// `pooling` `mean`: the head reads the mean of the signal tokens (train and inference
    /// alike), not the CLS vector.
    #[test]
    fn mean_pooling_reads_the_tokens() {
        let dev = Device::flex();
        let cfg = crate::ModelConfig::new()
            .with_window_len(256)
            .with_pooling(Some(crate::Pooling::Mean));
        let m = cfg.init(&dev).unwrap();
        let x = crate::batch::tensor(
            (0..512).map(|i| ((i as f32) * 0.07).sin()).collect(),
            256,
            &dev,
        );
        let e = m.encode(x.clone(), None);
        let want = e.tokens.clone().mean_dim(1).reshape([2, cfg.d_model]);
        let got = m.features(x.clone());
        let diff: f32 = (got.clone() - want).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
        let cls: f32 = (got - e.cls).abs().max().into_scalar();
        assert!(cls > 1e-3, "mean pooling returned the CLS vector");
        let logits = m.class_logits(x);
        assert_eq!((logits.len(), logits[0].len()), (2, 2));
    }

    use super::*;
    use burn::module::Param;

    /// An inference pass with the default kernels.
    fn inference() -> Pass<'static> {
        crate::ops::tests::inference()
    }

    /// The in-tree embedding of `x` by `m` (`None` where it does not apply).
    fn in_tree(m: &Model, x: &Tensor<2>) -> Option<Tensor<3>> {
        m.embed_fused(x, inference())
    }

    fn normal<const D: usize>(shape: [usize; D], sd: f64, seed: u64, dev: &Device) -> Tensor<D> {
        let mut rng = cardiaffect_signal::Rng::new(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * sd) as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), dev)
    }

    /// Windows given as rows `first ..` of a batch compute what those rows compute in the
    /// whole batch in training (dropout and masks included), and so do their gradients: what
    /// lets processes each given a share of a batch train as one process given all of it.
    #[test]
    fn a_share_of_a_batch_trains_as_its_rows_in_the_whole_batch() {
        let ad = Device::flex().autodiff();
        let cfg = crate::ModelConfig::new()
            .with_window_len(128)
            .with_conv_channels(vec![8, 8, 8])
            .with_d_model(16)
            .with_n_heads(2)
            .with_n_layers(2)
            .with_d_ff(32)
            .with_dropout(0.2);
        ad.seed(3);
        let m = cfg.init(&ad).unwrap();
        let (b, l, t) = (5, 128, cfg.n_tokens());
        let x = normal::<2>([b, l], 1.0, 1, &ad);
        let mask: Vec<bool> = (0..b * t).map(|i| i % 7 < 2).collect();
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [b, t]), &ad);
        let loss = |y: Tensor<3>| y.powi_scalar(2).sum();
        let whole = m.encode_train(x.clone(), Some(mask.clone()), 11).tokens;
        let d = whole.dims()[2];
        let g_whole = m.transformer.layers[0]
            .pwff
            .linear_inner
            .weight
            .val()
            .grad(&loss(whole.clone().slice([2..b, 0..t, 0..d])).backward())
            .unwrap();
        let part = m
            .encode_train_rows(
                x.clone().slice([2..b, 0..l]),
                Some(mask.clone().slice([2..b, 0..t])),
                11,
                2,
            )
            .tokens;
        let g_part = m.transformer.layers[0]
            .pwff
            .linear_inner
            .weight
            .val()
            .grad(&loss(part.clone()).backward())
            .unwrap();
        let v = |y: Tensor<3>| y.inner().into_data().try_to_vec::<f32>().unwrap();
        let e = max_rel_err(&v(part), &v(whole.clone().slice([2..b, 0..t, 0..d])));
        assert!(e < 1e-5, "forward: {e}");
        let v2 = |y: Tensor<2>| y.into_data().try_to_vec::<f32>().unwrap();
        let e = max_rel_err(&v2(g_part.clone()), &v2(g_whole));
        assert!(e < 1e-4, "gradient: {e}");
        // The same rows as a batch of their own (first row 0) draw other masks.
        let alone = m
            .encode_train(x.slice([2..b, 0..l]), Some(mask.slice([2..b, 0..t])), 11)
            .tokens;
        let e = max_rel_err(&v(alone), &v(whole.slice([2..b, 0..t, 0..d])));
        assert!(e > 1e-3, "other masks should differ: {e}");
    }

    /// The largest `|a - r| / (1 + |r|)` over the elements.
    fn max_rel_err(a: &[f32], r: &[f32]) -> f32 {
        a.iter()
            .zip(r)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0f32, f32::max)
    }

    #[test]
    fn in_tree_embedding_equals_burns_ops() {
        let dev = Device::flex();
        let configs = [
            ModelConfig::new(),
            ModelConfig::base(),
            ModelConfig::new()
                .with_positional(Positional::Sinusoidal)
                .with_conv_pos_kernel(None),
            ModelConfig::new()
                .with_window_len(102)
                .with_conv_channels(vec![8, 12])
                .with_conv_kernels(vec![5, 3])
                .with_conv_strides(vec![3, 2])
                .with_d_model(16)
                .with_conv_pos_kernel(Some(5)),
        ];
        for (ci, cfg) in configs.iter().enumerate() {
            let mut m = cfg.init(&dev).unwrap();
            // Non-trivial LayerNorm parameters and biases (init gives ones and zeros).
            let mut seed = 7 * ci as u64;
            let mut w = |n: usize, sd: f64| {
                seed += 1;
                Param::from_tensor(normal::<1>([n], sd, seed, &dev))
            };
            for n in &mut m.encoder.norms {
                let c = n.gamma.dims()[0];
                n.gamma = w(c, 1.0);
                n.beta = Some(w(c, 0.5));
            }
            if let Some(c) = &mut m.pos_conv {
                c.bias = Some(w(cfg.d_model, 0.3));
            }
            for b in [1, 3] {
                let x = normal::<2>([b, cfg.window_len], 1.0, 100 + b as u64, &dev);
                let fused = in_tree(&m, &x).expect("flex f32 takes the in-tree path");
                let reference = m.embed_ops(x.clone(), None, inference());
                assert_eq!(fused.dims(), reference.dims(), "config {ci}");
                let a: Vec<f32> = fused.into_data().try_to_vec().unwrap();
                let r: Vec<f32> = reference.into_data().try_to_vec().unwrap();
                let e = max_rel_err(&a, &r);
                assert!(e < 1e-5, "config {ci}, batch {b}: {e}");
                // And `embed` takes it.
                let via_embed: Vec<f32> = m
                    .embed(x, None, inference())
                    .into_data()
                    .try_to_vec()
                    .unwrap();
                assert_eq!(via_embed, a, "config {ci}: embed runs the in-tree op");
            }
        }
    }

    #[test]
    fn embedding_under_autodiff_runs_the_default_body_and_with_a_mask_the_per_op_form() {
        let dev = Device::flex();
        let m = ModelConfig::new().init(&dev).unwrap();
        let x = normal::<2>([1, ModelConfig::new().window_len], 1.0, 3, &dev);
        // Under autodiff the whole-embedding ops are the extension's default bodies on the
        // recorded leaves: the per-op form's values, and a gradient through them.
        let ad = Device::flex().autodiff();
        let ma = ModelConfig::new().init(&ad).unwrap();
        let xa = Tensor::<2>::from_data(x.clone().into_data(), &ad);
        let fused = in_tree(&ma, &xa).expect("the default body under autodiff");
        let per_op = ma.embed_ops(xa, None, inference());
        let a: Vec<f32> = fused.clone().inner().into_data().try_to_vec().unwrap();
        let r: Vec<f32> = per_op.inner().into_data().try_to_vec().unwrap();
        let e = max_rel_err(&a, &r);
        assert!(e < 1e-5, "autodiff: {e}");
        let g = ma.cls_token.grad(&fused.sum().backward());
        assert!(g.is_some(), "a gradient of the CLS token");
        // A masked embedding is Burn's path: the mask token replaces the masked tokens.
        let mask = Tensor::<2, Bool>::from_data(
            TensorData::new(vec![true; m.n_tokens], [1, m.n_tokens]),
            &dev,
        );
        let masked = m.embed(x.clone(), Some(mask.clone()), inference());
        let reference = m.embed_ops(x, Some(mask), inference());
        assert_eq!(masked.into_data(), reference.into_data());
    }

    /// A prepared model computes what the model computes per call, to the bit (the same
    /// weights, rearranged once instead of per call), for CLS and mean pooling; it is a
    /// snapshot: a model changed afterwards gives other results, its old preparation the old.
    #[test]
    fn a_prepared_model_computes_what_the_model_computes() {
        let dev = Device::flex();
        for cfg in [
            ModelConfig::new(),
            ModelConfig::new().with_pooling(Some(crate::Pooling::Mean)),
        ] {
            let mut m = cfg.init(&dev).unwrap();
            let x = normal::<2>([3, cfg.window_len], 1.0, 9, &dev);
            let p = m.prepared();
            assert_eq!(p.class_logits(x.clone()), m.class_logits(x.clone()));
            assert_eq!(p.cls_embeddings(x.clone()), m.cls_embeddings(x.clone()));
            let (a, b) = (p.encode(x.clone()), m.encode(x.clone(), None));
            assert_eq!(a.tokens.into_data(), b.tokens.into_data());
            assert_eq!(
                p.encode_cls(x.clone()).into_data(),
                m.encode_cls(x.clone()).into_data()
            );
            let before = m.class_logits(x.clone());
            let l = &mut m.transformer.layers[0].mha.query;
            l.weight = Param::from_tensor(l.weight.val() * 2.0);
            let c = &mut m.encoder.convs[0];
            c.weight = Param::from_tensor(c.weight.val() * 2.0);
            let after = m.class_logits(x.clone());
            assert_ne!(after, before);
            assert_eq!(m.prepared().class_logits(x.clone()), after);
            assert_eq!(
                p.class_logits(x),
                before,
                "the old preparation keeps its snapshot"
            );
        }
    }

    /// The CLS vectors of `x` from every row of the last layer, op by op.
    fn whole_cls_of(m: &Model, x: &Tensor<2>) -> Tensor<2> {
        ops::on_worker(m.kernels, || m.encode_inner(x.clone(), None, inference())).cls
    }

    #[test]
    fn a_batch_window_by_window_equals_the_batch_op_by_op() {
        let dev = Device::flex();
        for (ci, cfg) in [ModelConfig::new(), ModelConfig::base()].iter().enumerate() {
            let m = cfg.init(&dev).unwrap();
            for b in [2, 5] {
                let x = normal::<2>([b, cfg.window_len], 1.0, 40 + b as u64, &dev);
                let shares = m.encode_by_window(x.clone(), inference());
                let whole =
                    ops::on_worker(m.kernels, || m.encode_inner(x.clone(), None, inference()));
                for (what, a, r) in [
                    ("cls", shares.cls.into_data(), whole.cls.into_data()),
                    (
                        "tokens",
                        shares.tokens.into_data(),
                        whole.tokens.into_data(),
                    ),
                ] {
                    assert_eq!(a.shape(), r.shape(), "config {ci}, batch {b}: {what}");
                    let (a, r): (Vec<f32>, Vec<f32>) =
                        (a.try_to_vec().unwrap(), r.try_to_vec().unwrap());
                    let e = max_rel_err(&a, &r);
                    assert!(e < 1e-5, "config {ci}, batch {b}: {what} {e}");
                }
                // The CLS rows alone (the last layer for row 0 only), in shares and not.
                let whole_cls = whole_cls_of(&m, &x);
                for (what, c) in [
                    ("encode_cls", m.encode_cls(x.clone())),
                    (
                        "cls_inner",
                        ops::on_worker(m.kernels, || m.cls_inner(x.clone(), inference())),
                    ),
                ] {
                    assert_eq!(c.dims(), [b, cfg.d_model], "{what}");
                    let e: f32 = (c - whole_cls.clone()).abs().max().into_scalar();
                    assert!(e < 1e-5, "config {ci}, batch {b}: {what} {e}");
                }
                // Each window's result is its own: window 1 alone gives its row.
                let one =
                    m.encode_by_window(x.clone().slice([1..2, 0..cfg.window_len]), inference());
                let row = m.encode(x, None).cls.slice([1..2, 0..cfg.d_model]);
                let e: f32 = (one.cls - row).abs().max().into_scalar();
                assert!(e < 1e-5, "config {ci}, batch {b}: window 1 alone {e}");
            }
        }
        assert!(ops::window_shares_apply(32, Kernels::default()));
        assert!(!ops::window_shares_apply(1, Kernels::default()));
    }

    /// Every kernel mode computes the same encoding: the whole-layer kernels, the per-op
    /// kernels and Burn's ops (the extension's default bodies), at inference and in training
    /// with dropout (every mode draws the same masks), gradients included.
    #[test]
    fn every_kernel_mode_computes_the_same_encoding_dropout_included() {
        let cfg = ModelConfig::new().with_dropout(0.2);
        let ad = Device::flex().autodiff();
        let m = cfg.init(&ad).unwrap();
        let x = normal::<2>([2, cfg.window_len], 1.0, 9, &ad);
        let t = m.n_tokens;
        let mask: Vec<bool> = (0..2 * t).map(|i| i % 5 == 0).collect();
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [2, t]), &ad);
        use crate::ops::KernelMode;
        let run = |mode: KernelMode| {
            let mut m = m.clone();
            m.kernels.mode = mode;
            let inference = m.valid().encode(x.clone().inner(), None).tokens;
            let train = m.encode_train(x.clone(), Some(mask.clone()), 17).tokens;
            let g = train.clone().sum().backward();
            let grad = m.transformer.layers[0].mha.query.weight.grad(&g).unwrap();
            let flat = |t: Tensor<3>| -> Vec<f32> { t.into_data().try_to_vec().unwrap() };
            let grad: Vec<f32> = grad.into_data().try_to_vec().unwrap();
            (flat(inference), flat(train.inner()), grad)
        };
        let (inf, train, grad) = run(KernelMode::Layer);
        for mode in [KernelMode::Ops, KernelMode::Burn] {
            let (i, t, g) = run(mode);
            let name = mode.name();
            let e = max_rel_err(&i, &inf);
            assert!(e < 1e-4, "{name}: inference {e}");
            let e = max_rel_err(&t, &train);
            assert!(e < 1e-4, "{name}: training {e}");
            let e = max_rel_err(&g, &grad);
            assert!(e < 1e-3, "{name}: gradient {e}");
        }
    }
}
