//! Resuming a run with another configuration is refused and names what differs.

mod common;

use cardiaffect_model::ModelConfig;
use cardiaffect_train::{pretrain, CorpusSpec, PretrainConfig, TrainError};

#[test]
fn resume_with_another_config_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = common::corpus(&tmp.path().join("corpus"), 2.0);
    let model = ModelConfig::new()
        .with_window_len(256)
        .with_conv_channels(vec![8, 16, 16])
        .with_d_model(16)
        .with_n_heads(2)
        .with_n_layers(1)
        .with_d_ff(32);
    let mut cfg = PretrainConfig::new(
        model,
        vec![CorpusSpec {
            path: corpus,
            weight: 1.0,
        }],
    );
    cfg.steps = 4;
    cfg.batch = 4;
    cfg.checkpoint_every = 2;
    cfg.eval_every = 4;
    let run = tmp.path().join("run");
    let device = burn::prelude::Device::flex();
    pretrain(&cfg, &run, false, &device, &mut |_| {}).unwrap();
    let mut other = cfg.clone();
    other.batch = 8;
    other.lr = 1e-3;
    match pretrain(&other, &run, true, &device, &mut |_| {}) {
        Err(TrainError::ResumeMismatch { differences, .. }) => {
            assert!(
                differences.contains("batch: 4 (saved) vs 8 (now)") && differences.contains("lr"),
                "{differences}"
            );
        }
        other => panic!(
            "expected a resume mismatch, got {:?}",
            other.map(|s| s.steps)
        ),
    }
}
