//! Runs inference in a loop, for profiling: `cargo run --release --example infer_loop -- B N`.
//! Expected: prints the median milliseconds per call for batch B.
use burn::prelude::*;
use cardiaffect_model::ModelConfig;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (b, n) = (
        args.first().copied().unwrap_or(1),
        args.get(1).copied().unwrap_or(200),
    );
    let device = Device::flex();
    let mut cfg = ModelConfig::base();
    if std::env::var("NO_CONV_POS").is_ok() {
        cfg.conv_pos_kernel = None;
    }
    let model = cfg.init(&device).expect("default config");
    let x = Tensor::<2>::random(
        [b, cfg.window_len],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut t = Vec::new();
    for _ in 0..n {
        let s = std::time::Instant::now();
        let _ = model
            .classify(model.encode(x.clone(), None).cls)
            .into_data();
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    println!("batch {b}: median {:.2} ms", t[t.len() / 2]);
}
