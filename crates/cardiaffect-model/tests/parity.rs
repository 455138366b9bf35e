//! The Burn model against the PyTorch reference (`reference/model.py`), with the golden files
//! `reference/golden_model.py` wrote: same weights (PyTorch layout, loaded through Burn's
//! adapter), same real-ECG input and mask; forward outputs to 1e-4 relative, gradients to 1e-3.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::prelude::*;
use burn::tensor::{Bool, Int, TensorData};
use cardiaffect_model::{load_weights_pytorch, Model, ModelConfig};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/model")
}

fn npy(name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    let a = cardiaffect_io::formats::npy::parse(&bytes).unwrap();
    (a.shape, a.values)
}

/// max |a - b| / max |b|
fn rel(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - y).abs()))
        / scale
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn golden_model(device: &Device) -> (ModelConfig, Model) {
    let cfg = ModelConfig::load(dir().join("config.json")).unwrap();
    let mut model = cfg.init(device).unwrap();
    load_weights_pytorch(&mut model, &dir().join("weights.safetensors")).unwrap();
    (cfg, model)
}

fn inputs(cfg: &ModelConfig, device: &Device) -> (Tensor<2>, Tensor<2, Bool>, Tensor<1, Int>) {
    let (xs, x) = npy("input.npy");
    let (ms, m) = npy("mask.npy");
    let (_, y) = npy("labels.npy");
    assert_eq!(xs[1], cfg.window_len);
    let x = Tensor::from_data(
        TensorData::new(
            x.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            [xs[0], xs[1]],
        ),
        device,
    );
    let m = Tensor::<2, Bool>::from_data(
        TensorData::new(
            m.iter().map(|&v| v != 0.0).collect::<Vec<_>>(),
            [ms[0], ms[1]],
        ),
        device,
    );
    let y = Tensor::<1, Int>::from_data(
        TensorData::new(y.iter().map(|&v| v as i64).collect::<Vec<_>>(), [xs[0]]),
        device,
    );
    (x, m, y)
}

#[test]
fn forward_outputs_match_pytorch() {
    forward_outputs_match_pytorch_on(&Device::flex());
}

#[test]
fn loss_and_gradients_match_pytorch() {
    loss_and_gradients_match_pytorch_on(&Device::flex().autodiff());
}

/// The wgpu device (in CI Mesa's software Vulkan, lavapipe).
#[cfg(feature = "wgpu")]
fn wgpu() -> Device {
    cardiaffect_model::wgpu_device().expect("a wgpu adapter (in CI: mesa-vulkan-drivers)")
}

/// The same bounds on wgpu, where every op is Burn's own (no in-tree flex kernel).
#[cfg(feature = "wgpu")]
#[test]
fn forward_outputs_match_pytorch_on_wgpu() {
    forward_outputs_match_pytorch_on(&wgpu());
}

#[cfg(feature = "wgpu")]
#[test]
fn loss_and_gradients_match_pytorch_on_wgpu() {
    loss_and_gradients_match_pytorch_on(&wgpu().autodiff());
}

fn forward_outputs_match_pytorch_on(device: &Device) {
    let device = device.clone();
    let (cfg, model) = golden_model(&device);
    let (x, m, _) = inputs(&cfg, &device);
    let enc = model.encode(x, Some(m));
    let recon = model.reconstruct(enc.tokens);
    let logits = model.classify(enc.cls.clone());
    for (name, got) in [
        ("recon.npy", values(recon)),
        ("logits.npy", values(logits)),
        ("cls.npy", values(enc.cls)),
    ] {
        let err = rel(&got, &npy(name).1);
        eprintln!("{name}: relative difference {err:e}");
        assert!(
            err < 1e-4,
            "{name}: relative difference {err:e} from PyTorch"
        );
    }
}

fn loss_and_gradients_match_pytorch_on(device: &Device) {
    let device = device.clone();
    let (cfg, model) = golden_model(&device);
    let (x, m, y) = inputs(&cfg, &device);
    let enc = model.encode(x.clone(), Some(m.clone()));
    let recon = model.reconstruct(enc.tokens);
    let logits = model.classify(enc.cls);
    let mse = cardiaffect_model::masked_mse(recon, x, m, cfg.samples_per_token());
    let ce = cardiaffect_model::cross_entropy(logits, y, None);
    let total = mse.clone() + ce.clone();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("loss.json")).unwrap()).unwrap();
    for (name, got) in [
        ("masked_mse", &mse),
        ("cross_entropy", &ce),
        ("total", &total),
    ] {
        let g = values(got.clone())[0] as f64;
        let w = want[name].as_f64().unwrap();
        assert!(
            (g - w).abs() <= 1e-4 * w.abs(),
            "{name}: {g} vs PyTorch {w}"
        );
    }
    let grads = total.backward();
    let layer0 = &model.transformer.layers[0];
    let layer1 = &model.transformer.layers[1];
    // (name, gradient in Burn layout, transpose to PyTorch's [out, in]?)
    let checks: Vec<(&str, Vec<f32>, Vec<usize>, bool)> = vec![
        (
            "encoder.convs.0.weight",
            values(model.encoder.convs[0].weight.grad(&grads).unwrap()),
            vec![],
            false,
        ),
        (
            "transformer.layers.0.mha.query.weight",
            values(layer0.mha.query.weight.grad(&grads).unwrap()),
            layer0.mha.query.weight.dims().to_vec(),
            true,
        ),
        (
            "transformer.layers.1.pwff.linear_outer.weight",
            values(layer1.pwff.linear_outer.weight.grad(&grads).unwrap()),
            layer1.pwff.linear_outer.weight.dims().to_vec(),
            true,
        ),
        (
            "cls_token",
            values(model.cls_token.grad(&grads).unwrap()),
            vec![],
            false,
        ),
        (
            "mask_token",
            values(model.mask_token.grad(&grads).unwrap()),
            vec![],
            false,
        ),
        (
            "pos",
            values(model.pos.as_ref().unwrap().grad(&grads).unwrap()),
            vec![],
            false,
        ),
        (
            "pos_conv.weight",
            values(
                model
                    .pos_conv
                    .as_ref()
                    .unwrap()
                    .weight
                    .grad(&grads)
                    .unwrap(),
            ),
            vec![],
            false,
        ),
        (
            "cls_head.weight",
            values(model.cls_head.weight.grad(&grads).unwrap()),
            model.cls_head.weight.dims().to_vec(),
            true,
        ),
        (
            "recon_head.bias",
            values(
                model
                    .recon_head
                    .bias
                    .as_ref()
                    .unwrap()
                    .grad(&grads)
                    .unwrap(),
            ),
            vec![],
            false,
        ),
    ];
    for (name, g, dims, transpose) in checks {
        let g = if transpose {
            // Burn [in, out] -> PyTorch [out, in]
            let (i, o) = (dims[0], dims[1]);
            (0..o * i).map(|k| g[(k % i) * o + k / i]).collect()
        } else {
            g
        };
        let err = rel(&g, &npy(&format!("grad_{name}.npy")).1);
        eprintln!("grad {name}: relative difference {err:e}");
        assert!(
            err < 1e-3,
            "gradient of {name}: relative difference {err:e} from PyTorch"
        );
    }
}
