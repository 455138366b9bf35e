//! Pre-training or fine-tuning steps of the base model in a loop, as `bench` times them, for
//! profiling: `cargo run --release -p cardiaffect-model --example train_loop -- N [finetune]`.
//! Expected: prints the median milliseconds per step at batch 32, and of its forward pass,
//! backward pass and optimizer step.
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Bool;
use cardiaffect_model::{cross_entropy, masked_mse, ModelConfig};

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = argv.iter().find_map(|a| a.parse().ok()).unwrap_or(10);
    let finetune = argv.iter().any(|a| a == "finetune");
    // `forward`: the forward pass only (recorded, as in training), for profiling it alone.
    let forward_only = argv.iter().any(|a| a == "forward");
    let ad = Device::flex().autodiff();
    let cfg = ModelConfig::base();
    let b = 32;
    let mut model = cfg.init(&ad).expect("base config");
    let mut optim = AdamWConfig::new().init();
    let x = Tensor::<2>::random(
        [b, cfg.window_len],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &ad,
    );
    let y = Tensor::<1, Int>::from_data(
        TensorData::new((0..b as i64).map(|i| i % 2).collect::<Vec<_>>(), [b]),
        &ad,
    );
    let t = cfg.n_tokens();
    let mask = Tensor::<2, Bool>::from_data(
        TensorData::new(
            (0..b * t)
                .map(|i| ((i % t) / 5).is_multiple_of(7))
                .collect::<Vec<_>>(),
            [b, t],
        ),
        &ad,
    );
    let spt = cfg.samples_per_token();
    let (mut times, mut phases) = (Vec::new(), [Vec::new(), Vec::new(), Vec::new()]);
    for step in 0..n as u64 + 2 {
        let s = std::time::Instant::now();
        let loss = if finetune {
            let enc = model.encode_train(x.clone(), None, step);
            cross_entropy(model.classify(enc.cls), y.clone(), None)
        } else {
            let enc = model.encode_train(x.clone(), Some(mask.clone()), step);
            masked_mse(model.reconstruct(enc.tokens), x.clone(), mask.clone(), spt)
        };
        // Force the forward pass before timing the backward (flex runs ops eagerly anyway).
        let _ = loss.clone().into_scalar::<f32>();
        let f = s.elapsed().as_secs_f64() * 1e3;
        if forward_only {
            times.push(f);
            continue;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let b = s.elapsed().as_secs_f64() * 1e3;
        model = optim.step(1e-4, model.clone(), grads);
        let e = s.elapsed().as_secs_f64() * 1e3;
        if step >= 2 {
            times.push(e);
            for (v, x) in phases.iter_mut().zip([f, b - f, e - b]) {
                v.push(x);
            }
        }
    }
    if forward_only {
        println!("forward batch {b}: median {:.1} ms", median(times));
        return;
    }
    let [f, bw, o] = phases.map(median);
    println!(
        "{} batch {b}: median {:.1} ms (forward {f:.1}, backward {bw:.1}, optimizer {o:.1})",
        if finetune { "finetune" } else { "pretrain" },
        median(times)
    );
}
