//! The pre-LN Transformer encoder, written on [`crate::ops`] rather than taken from burn-nn,
//! for two measured reasons (see BENCHMARKS.md):
//! - burn-nn's `Dropout` draws each element through ChaCha20 and a distribution sampler, a large
//!   share of a pre-training step; here masks come from the in-tree xoshiro generator, in parallel,
//!   and are seeded per step (so that a resumed run draws the same masks);
//! - each operation runs the in-tree flex kernels where they apply (at inference on flex a
//!   whole layer is one op), Burn's ops elsewhere.
//!
//! One forward ([`Layer::forward`]) serves training and inference; `forward_attention` is the
//! second form that keeps the attention weights (for inspection).
//!
//! Parameter names and the computation are those of burn-nn's `TransformerEncoder` with
//! `norm_first` (norm_2 before attention, norm_1 before the feed-forward), so weights and the
//! PyTorch parity files are unchanged.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::kernels::EncoderLayerParams;
use crate::ops::{self, Kernels, Pass};

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

    /// `[B, T, d]` -> `[B, T, d]` in `pass` (dropout only in training). With `cls_only`, at
    /// inference where the in-tree layer op runs, the last layer computes the CLS row alone
    /// (`[B, 1, d]`); row 0 is the CLS row either way.
    pub fn forward(&self, x: Tensor<3>, pass: Pass, cls_only: bool) -> Tensor<3> {
        let last = self.layers.len().saturating_sub(1);
        self.layers.iter().enumerate().fold(x, |x, (l, layer)| {
            layer.forward(x, pass, l, cls_only && l == last, self.eps)
        })
    }
}

impl Layer {
    /// Layer `index` of the encoder in `pass`: `x + attention(norm_2(x))`, then
    /// `+ ff(norm_1(..))`, with dropout in training. At inference on flex the same as one
    /// in-tree op ([`ops::encoder_layer`]; the CLS row alone with `cls_only`).
    pub fn forward(
        &self,
        x: Tensor<3>,
        pass: Pass,
        index: usize,
        cls_only: bool,
        eps: f64,
    ) -> Tensor<3> {
        // This layer's dropout sites are site + 1 ..= site + 4.
        let site = 16 * (index as u64 + 1);
        if ops::layer_op_applies(&x, pass) {
            let qkv = pass
                .prepared
                .and_then(|p| p.qkv.get(index).cloned().flatten());
            if let Some(p) = self.layer_params(eps, pass, cls_only, qkv) {
                // By value: the op writes over the input's buffer when nobody else holds it.
                return ops::encoder_layer(x, p);
            }
        }
        let k = pass.kernels;
        let m = &self.mha;
        let h = ops::layer_norm(x.clone(), &self.norm_2, eps, k);
        let ctx = ops::attention_core(h, (&m.query, &m.key, &m.value), m.n_heads, pass, site);
        let x = ops::linear_residual(ctx, &m.output, x, pass, site + 1);
        let h = ops::layer_norm(x.clone(), &self.norm_1, eps, k);
        let f = ops::linear_gelu(h, &self.pwff.linear_inner, pass, site + 2);
        ops::linear_residual(f, &self.pwff.linear_outer, x, pass, site + 3)
    }
}

impl Transformer {
    /// Inference with the attention weights of every layer kept: `[B, T, d]` ->
    /// (`[B, T, d]`, per layer `[B, heads, T, T]`, rows summing to 1). Burn's ops throughout
    /// (explicit weights, so slower than [`Transformer::forward`]; for inspection, not speed).
    pub fn forward_attention(&self, x: Tensor<3>, k: Kernels) -> (Tensor<3>, Vec<Tensor<4>>) {
        let mut x = x;
        let mut maps = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let m = &layer.mha;
            let h = ops::layer_norm(x.clone(), &layer.norm_2, self.eps, k);
            let [q, kk, v] = ops::heads(h, (&m.query, &m.key, &m.value), m.n_heads);
            let w = ops::attention_weights(q, kk);
            let ctx = ops::merge_heads(w.clone().matmul(v));
            maps.push(w);
            x = x + m.output.forward(ctx);
            let f = ops::gelu(
                layer.pwff.linear_inner.forward(ops::layer_norm(
                    x.clone(),
                    &layer.norm_1,
                    self.eps,
                    k,
                )),
                k,
            );
            x = x + layer.pwff.linear_outer.forward(f);
        }
        (x, maps)
    }
}

impl Layer {
    /// The whole layer as the extension's op (on flex inference the in-tree kernel), or `None`
    /// when it does not apply or a parameter the op needs (a bias) is absent: the caller then
    /// runs the per-op form.
    #[cfg(test)]
    pub(crate) fn fused(&self, x: &Tensor<3>, eps: f64) -> Option<Tensor<3>> {
        let pass = crate::ops::tests::inference();
        if !ops::layer_op_applies(x, pass) {
            return None;
        }
        Some(ops::encoder_layer(
            x.clone(),
            self.layer_params(eps, pass, false, None)?,
        ))
    }

    /// The parameters the in-tree layer op takes in `pass` (only the CLS rows with
    /// `cls_only`), the packed QKV projection from `qkv` when prepared (else packed here), or
    /// `None` without a bias it needs.
    pub(crate) fn layer_params(
        &self,
        eps: f64,
        pass: Pass,
        cls_only: bool,
        qkv: Option<(Tensor<2>, Tensor<1>)>,
    ) -> Option<EncoderLayerParams<burn::backend::Dispatch>> {
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
        let m = &self.mha;
        let (na, nf) = (norm(&self.norm_2)?, norm(&self.norm_1)?);
        let (qkv_weight, qkv_bias) = match qkv {
            Some(p) => p,
            None => ops::packed_qkv(&m.query, &m.key, &m.value)?,
        };
        let o = lin(&m.output)?;
        let (i, u) = (lin(&self.pwff.linear_inner)?, lin(&self.pwff.linear_outer)?);
        Some(EncoderLayerParams {
            norm_attn_gamma: na.0,
            norm_attn_beta: na.1,
            qkv_weight: qkv_weight.into_dispatch(),
            qkv_bias: qkv_bias.into_dispatch(),
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
            cls_only,
            tiled_attention: pass.kernels.tiled_attention,
            threads: pass.threads,
            workspace: pass.workspace.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::encoder_layer;
    use crate::ops::tests::{burns_attention, inference, max_diff, max_rel_diff, normal};
    use burn::tensor::activation;

    /// The layer op's parameters of `l` at inference (the CLS rows alone with `cls_only`).
    fn params(l: &Layer, cls_only: bool) -> EncoderLayerParams<burn::backend::Dispatch> {
        l.layer_params(1e-5, inference(), cls_only, None).unwrap()
    }

    /// One pre-LN layer through burn-nn's LayerNorm and Linear and Burn's attention and GELU.
    fn burns_layer(x: Tensor<3>, l: &Layer) -> Tensor<3> {
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
            let mut tr = Transformer::new(d, ff, h, 1, 1e-5, &dev);
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
            let cls = encoder_layer(x, params(&layer, true));
            assert_eq!(cls.dims(), [b, 1, d]);
            let e = max_rel_diff(cls, reference.slice([0..b, 0..1, 0..d]));
            assert!(e < 1e-5, "CLS rows ({b},{t},{d},{h},{ff}): {e}");
        }
    }

    #[test]
    fn encoder_layer_with_tiled_attention_equals_gemms_attention() {
        let dev = Device::flex();
        let tr = Transformer::new(64, 96, 2, 1, 1e-5, &dev);
        let p = || params(&tr.layers[0], false);
        let x = normal::<3>([2, 45, 64], 1.0, &dev);
        let cls = || params(&tr.layers[0], true);
        let gemm_attention = |mut p: EncoderLayerParams<_>| {
            p.tiled_attention = false;
            p
        };
        let gemm = encoder_layer(x.clone(), gemm_attention(p()));
        let gemm_cls = encoder_layer(x.clone(), gemm_attention(cls()));
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
        let tr = Transformer::new(32, 48, 2, 1, 1e-5, &dev);
        let x = Tensor::<3>::zeros([2, 0, 32], &dev);
        let y = encoder_layer(x.clone(), params(&tr.layers[0], false));
        assert_eq!(y.dims(), [2, 0, 32]);
        assert_eq!(
            encoder_layer(x, params(&tr.layers[0], true)).dims(),
            [2, 0, 32]
        );
    }

    #[test]
    fn encoder_layer_in_place_equals_the_copy_and_leaves_a_shared_input_alone() {
        // A uniquely owned input is overwritten with the residual stream; a shared one is
        // copied first, so its other owner still reads the original.
        let dev = Device::flex();
        let tr = Transformer::new(32, 48, 2, 1, 1e-5, &dev);
        let p = || params(&tr.layers[0], false);
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
        let mut tr = Transformer::new(16, 32, 4, 1, 1e-5, &dev);
        let mut layer = tr.layers.remove(0);
        let x = normal::<3>([2, 16, 9], 1.0, &dev).swap_dims(1, 2); // [2, 9, 16], strided
        let c = Tensor::<3>::from_data(x.clone().into_data(), &dev);
        let e = max_diff(layer.fused(&x, 1e-5).unwrap(), burns_layer(c, &layer));
        assert!(e < 1e-5, "{e}");
        layer.mha.value.bias = None;
        assert!(layer.fused(&x, 1e-5).is_none());
        // Under autodiff the layer op is the default body on the recorded leaves: the same
        // values, and a gradient through it.
        let ad = Device::flex().autodiff();
        let xa = normal::<3>([1, 4, 16], 1.0, &ad).require_grad();
        let tr = Transformer::new(16, 32, 4, 1, 1e-5, &ad);
        let y = tr.layers[0].fused(&xa, 1e-5).expect("the default body");
        let e = max_rel_diff(
            y.clone().inner(),
            burns_layer(xa.clone(), &tr.layers[0]).inner(),
        );
        assert!(e < 1e-5, "autodiff {e}");
        let g = xa
            .grad(&y.sum().backward())
            .expect("a gradient of the input");
        assert_eq!(g.dims(), [1, 4, 16]);
    }

    #[test]
    fn forward_attention_computes_what_forward_computes() {
        let d = Device::flex();
        let tr = Transformer::new(16, 32, 4, 2, 1e-5, &d);
        let x = Tensor::<3>::random([2, 9, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &d);
        let k = Kernels::default();
        let (y, maps) = tr.forward_attention(x.clone(), k);
        let a: Vec<f32> = y.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = tr
            .forward(x, Pass::new(k, None, crate::ops::tests::workspace()), false)
            .into_data()
            .try_to_vec()
            .unwrap();
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

    /// On wgpu the layer op is the extension's default body (Burn's ops in turn) and computes
    /// what flex's kernel computes, the CLS rows alone too.
    #[cfg(feature = "wgpu")]
    #[test]
    fn on_wgpu_the_layer_op_runs_burns_ops_as_flex_runs_its_kernel() {
        let dev = crate::ops::tests::wgpu();
        let flex = Device::flex();
        let tr = Transformer::new(16, 32, 4, 1, 1e-5, &flex);
        let x = normal::<3>([2, 9, 16], 1.0, &flex);
        let want = tr.layers[0]
            .fused(&x, 1e-5)
            .expect("flex takes the layer op");
        let trw = tr.clone().to_device(&dev);
        let xw = Tensor::<3>::from_data(x.into_data(), &dev);
        assert!(ops::layer_op_applies(&xw, inference()));
        let got = trw.layers[0]
            .fused(&xw, 1e-5)
            .expect("the layer op on wgpu");
        let got = Tensor::<3>::from_data(got.into_data(), &flex);
        let e = max_rel_diff(got, want.clone());
        assert!(e < 1e-4, "{e}");
        let cls = encoder_layer(xw, params(&trw.layers[0], true));
        assert_eq!(cls.dims(), [2, 1, 16]);
        let cls = Tensor::<3>::from_data(cls.into_data(), &flex);
        let e = max_rel_diff(cls, want.slice([0..2, 0..1, 0..16]));
        assert!(e < 1e-4, "CLS rows: {e}");
    }

    #[test]
    fn dropout_keeps_the_mean_and_its_rate() {
        let dropout = |x, p, seed, site| ops::dropout(x, p, seed, site, Kernels::default());
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
