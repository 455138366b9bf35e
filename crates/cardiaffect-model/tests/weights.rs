//! Saving, loading and exporting weights; configs and weight files that do not fit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::prelude::*;
use burn::tensor::TensorData;
use cardiaffect_model::{
    load_model, load_weights, load_weights_pytorch, save_model, save_weights_pytorch, ModelConfig,
    Positional,
};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/model")
}

fn shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, v.shape().to_vec()))
        .collect()
}

fn small() -> ModelConfig {
    ModelConfig::load(golden().join("config.json")).unwrap()
}

#[test]
fn a_saved_model_loads_back_with_its_config_and_the_same_outputs() {
    let device = Device::flex();
    let cfg = small().with_positional(Positional::Sinusoidal);
    let model = cfg.init(&device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    save_model(tmp.path(), &cfg, &model).unwrap();
    let (cfg2, model2) = load_model(tmp.path(), &device).unwrap();
    assert_eq!(cfg2, cfg);
    let x = Tensor::<2>::from_data(
        TensorData::new(
            (0..2 * cfg.window_len)
                .map(|i| (i as f32 * 0.05).sin())
                .collect::<Vec<_>>(),
            [2, cfg.window_len],
        ),
        &device,
    );
    let a = model
        .classify(model.encode(x.clone(), None).cls)
        .into_data();
    let b = model2.classify(model2.encode(x, None).cls).into_data();
    assert_eq!(a, b);
    // Saving again over the same folder works (atomic replace).
    save_model(tmp.path(), &cfg, &model2).unwrap();
}

#[test]
fn pytorch_export_has_pytorchs_names_and_shapes() {
    let device = Device::flex();
    let model = small().init(&device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("export.safetensors");
    save_weights_pytorch(&model, &path).unwrap();
    // The golden file is PyTorch's own state_dict of reference/model.py.
    assert_eq!(shapes(&path), shapes(&golden().join("weights.safetensors")));
}

#[test]
fn inconsistent_configs_are_refused_naming_the_field() {
    let device = Device::flex();
    let e = ModelConfig::base()
        .with_n_heads(5)
        .init(&device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("n_heads") && e.contains("d_model (128)"), "{e}");
    let e = ModelConfig::base()
        .with_window_len(8)
        .init(&device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("window_len") && e.contains("receptive field"),
        "{e}"
    );
    let e = ModelConfig::base()
        .with_window_len(1282)
        .init(&device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of the total stride 4"), "{e}");
    let e = ModelConfig::base()
        .with_conv_kernels(vec![7, 4, 3])
        .init(&device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("odd kernel"), "{e}");
}

#[test]
fn weights_of_another_config_or_with_a_missing_tensor_are_refused() {
    let device = Device::flex();
    // The golden weights (d_model 32) into the base model (d_model 128).
    let mut big = ModelConfig::base().init(&device).unwrap();
    let e = load_weights_pytorch(&mut big, &golden().join("weights.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("weights.safetensors")
            && e.contains("`encoder.convs.0.weight`")
            && e.contains("[64, 1, 7]")
            && e.contains("[16, 1, 7]"),
        "{e}"
    );
    // A file without one tensor.
    let bytes = std::fs::read(golden().join("weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(k, _)| k != "final_norm.weight")
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("partial.safetensors");
    safetensors::serialize_to_file(kept, None, &path).unwrap();
    let mut m = small().init(&device).unwrap();
    let e = load_weights_pytorch(&mut m, &path).unwrap_err().to_string();
    assert!(
        e.contains("partial.safetensors") && e.contains("final_norm") && e.contains("missing"),
        "{e}"
    );
    // A model folder without its config.
    let e = load_model(tmp.path(), &device).err().unwrap().to_string();
    assert!(e.contains("config.json"), "{e}");
    // Burn-layout loading of a file that is not there.
    let e = load_weights(&mut m, &tmp.path().join("none.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.safetensors"), "{e}");
}
