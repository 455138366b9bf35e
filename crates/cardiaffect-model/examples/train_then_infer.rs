//! A few training steps, then inference in the same process, for the bimodal batch-1 latency
//! in BENCHMARKS.md: `cargo run --release -p cardiaffect-model --example train_then_infer --
//! 3 [B]`. Expected: prints the median of 200 inferences of a batch of B (default 1), about
//! 7.8 ms at batch 1 on the project's machine, and in some runs about 9.7 ms (the unexplained
//! slow mode). `-- 0 B` skips the training steps.
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use cardiaffect_model::ModelConfig;
fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let b: usize = std::env::args()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let cfg = ModelConfig::base();
    if steps > 0 {
        let mut model = cfg.init(&ad).unwrap();
        let mut optim = AdamWConfig::new().init();
        let x = Tensor::<2>::random(
            [32, cfg.window_len],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &ad,
        );
        for s in 0..steps {
            let enc = model.encode_train(x.clone(), None, s as u64);
            let loss = model.reconstruct(enc.tokens).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-4, model.clone(), grads);
        }
    }
    let m = cfg.init(&dev).unwrap();
    let x1 = Tensor::<2>::random(
        [b, cfg.window_len],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &dev,
    );
    let mut t = Vec::new();
    let n = if b == 1 { 200 } else { 40 };
    for _ in 0..n {
        let s = std::time::Instant::now();
        let _ = m.classify(m.encode(x1.clone(), None).cls).into_data();
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    println!("after {steps} steps: batch {b} median {:.2} ms", t[n / 2]);
}
