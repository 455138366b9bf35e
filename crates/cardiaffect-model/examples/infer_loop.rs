//! Runs inference in a loop, for profiling: `cargo run --release --example infer_loop -- B N`.
//! Expected: prints the median milliseconds per call for batch B.
//!
//! `... -- B N ab` alternates the attention tiles on and off call by call (one process, so
//! that a shared host's drift weighs on both alike) and prints both medians, their ratio and
//! the median of the per-pair ratios; `... -- B N shares` alternates a batch's windows in
//! shares per thread ([`Kernels::window_shares`]) with every op split over the threads;
//! `... -- B N cls` alternates `encode_cls` (the last layer for the CLS row alone, what
//! classification runs) with `encode(..).cls` (every row). Otherwise every row is computed.
use burn::prelude::*;
use cardiaffect_model::{Kernels, ModelConfig};

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = argv.iter().filter_map(|a| a.parse().ok()).collect();
    let shares = argv.iter().any(|a| a == "shares");
    let cls = argv.iter().any(|a| a == "cls");
    let ab = shares || cls || argv.iter().any(|a| a == "ab");
    let cls_only = std::cell::Cell::new(false);
    // The model's kernel policy, switched between calls.
    let policy = std::cell::Cell::new(Kernels::default());
    let switch = |on: bool| {
        let mut k = Kernels::default();
        if cls {
            cls_only.set(on)
        } else if shares {
            k.window_shares = on;
        } else {
            k.tiled_attention = on;
        }
        policy.set(k);
    };
    let names = if cls {
        ["CLS row", "all rows"]
    } else if shares {
        ["shares", "split ops"]
    } else {
        ["tiles", "gemm"]
    };
    let (b, n) = (
        args.first().copied().unwrap_or(1),
        args.get(1).copied().unwrap_or(200),
    );
    let device = Device::flex();
    let mut cfg = ModelConfig::base();
    if std::env::var("NO_CONV_POS").is_ok() {
        cfg.conv_pos_kernel = None;
    }
    let mut model = cfg.init(&device).expect("default config");
    let x = Tensor::<2>::random(
        [b, cfg.window_len],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut time = || {
        model.kernels = policy.get();
        let s = std::time::Instant::now();
        let c = if cls_only.get() {
            model.encode_cls(x.clone())
        } else {
            model.encode(x.clone(), None).cls
        };
        let _ = model.classify(c).into_data();
        s.elapsed().as_secs_f64() * 1e3
    };
    if !ab {
        let t: Vec<f64> = (0..n).map(|_| time()).collect();
        println!("batch {b}: median {:.2} ms", median(t));
        return;
    }
    let (mut on, mut off, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        // Which goes first alternates too.
        let mut pair = [0.0; 2];
        for k in [i % 2, 1 - i % 2] {
            switch(k == 0);
            pair[k] = time();
        }
        on.push(pair[0]);
        off.push(pair[1]);
        ratio.push(pair[0] / pair[1]);
    }
    switch(true);
    let (a, g) = (median(on), median(off));
    println!(
        "batch {b}: {} {a:.2} ms, {} {g:.2} ms, ratio of medians {:.3}, median pair ratio {:.3}",
        names[0],
        names[1],
        a / g,
        median(ratio)
    );
}
