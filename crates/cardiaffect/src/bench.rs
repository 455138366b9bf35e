//! `cardiaffect bench`: the model's speed (pre-training step, fine-tuning step, inference at
//! batch 32 and batch 1) and, when a Python with torch is found, PyTorch's on the same model in
//! the same run, with ratios. A benchmark prints figures; it asserts nothing.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Bool, Int, TensorData};
use cardiaffect_model::{cross_entropy, masked_mse, KernelMode, Kernels, ModelConfig};
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed steps (the median is reported); batch-1 latency uses 4x as many.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// A Python with torch for the PyTorch side (default: $CARDIAFFECT_TORCH_PYTHON, else
    /// python3 if it imports torch); `none` to skip.
    #[arg(long)]
    pub torch_python: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Time inference only (batch 32 and batch 1), not the training steps.
    #[arg(long)]
    pub skip_train: bool,
    /// Inference computes the last layer for the CLS row alone on both sides, as `predict`
    /// does (classification reads nothing else). By default both compute every row, the
    /// model's whole forward pass as a PyTorch user runs it.
    #[arg(long)]
    pub cls_row: bool,
    /// Rounds, each timing ours then PyTorch's: figures and ratios are the medians over the
    /// rounds, so that a host whose speed drifts over minutes (a shared VM) weighs on both
    /// sides alike. Each round's ratios are printed too.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// One busy thread spinning beside both sides while they are timed (a CPU hog, as a
    /// wearable's or a server's other work would be).
    #[arg(long)]
    pub cpu_hog: bool,
    /// Also time `predict` with this fine-tuned model (a `finetune` run or model folder) on an
    /// hour of synthetic 256-Hz ECG, streamed block by block as from a file: seconds per hour
    /// of ECG. Repeat for several models.
    #[arg(long = "predict-model", value_name = "RUN_DIR")]
    pub predict_models: Vec<std::path::PathBuf>,
}

/// Seconds `predict` takes per hour of single-lead 256-Hz ECG with the model in `dir` (the
/// median of three runs over one synthetic hour; default hop, half a window).
fn predict_seconds_per_hour(dir: &std::path::Path, device: &Device) -> Result<f64> {
    use cardiaffect_corpus::blocks::BlockConfig;
    use cardiaffect_io::chunked::InMemory;
    use cardiaffect_signal::{ecgsyn, EcgSynParams, Rng};
    let model = cardiaffect_infer::Predictor::load(dir, device)
        .with_context(|| format!("--predict-model {}", dir.display()))?;
    let fs = 256.0;
    let p = EcgSynParams {
        fs,
        duration_s: 3600.0,
        ..EcgSynParams::default()
    };
    let ecg = ecgsyn(&p, &mut Rng::new(1)).0;
    let rec = cardiaffect_io::Recording::new("bench", dir, fs, Vec::new());
    let hop = model.preprocess.window_s / 2.0;
    let models = [model];
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let tl = cardiaffect_infer::predict_source(
            &rec,
            &mut InMemory(&ecg),
            &models,
            hop,
            None,
            &BlockConfig::default(),
        )?;
        std::hint::black_box(tl.rows.len());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[1])
}

fn median_ms(steps: usize, warmup: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut t: Vec<f64> = (0..steps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The same fixed mask as reference/bench.py: spans of 5 tokens, every 7th span.
fn token_mask(b: usize, t: usize, device: &Device) -> Tensor<2, Bool> {
    let v: Vec<bool> = (0..b * t)
        .map(|i| ((i % t) / 5).is_multiple_of(7))
        .collect();
    Tensor::from_data(TensorData::new(v, [b, t]), device)
}

fn batch(b: usize, len: usize, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let mut rng = cardiaffect_signal::Rng::new(0);
    let x: Vec<f32> = (0..b * len).map(|_| rng.normal() as f32).collect();
    let y: Vec<i64> = (0..b).map(|i| (i % 2) as i64).collect();
    (
        Tensor::from_data(TensorData::new(x, [b, len]), device),
        Tensor::from_data(TensorData::new(y, [b]), device),
    )
}

fn find_python(arg: &Option<String>) -> Option<String> {
    let candidate = arg
        .clone()
        .or_else(|| std::env::var("CARDIAFFECT_TORCH_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    if candidate == "none" {
        return None;
    }
    let ok = Command::new(&candidate)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(candidate)
}

/// glibc's malloc settings PyTorch's process runs with: the caller's `MALLOC_*_THRESHOLD_`
/// where set, else the thresholds ours runs with. With glibc's defaults it paid page faults on
/// large tensors, inference most (measured: BENCHMARKS.md).
fn pytorch_malloc_env() -> [(&'static str, String); 2] {
    [
        ("MALLOC_MMAP_THRESHOLD_", crate::allocator::MMAP_THRESHOLD),
        ("MALLOC_TRIM_THRESHOLD_", crate::allocator::TRIM_THRESHOLD),
    ]
    .map(|(var, ours)| {
        let value = std::env::var(var).unwrap_or_else(|_| ours.to_string());
        (var, value)
    })
}

/// Run reference/bench.py (embedded in the binary) with `python`.
fn pytorch(python: &str, a: &BenchArgs, cfg: &ModelConfig) -> Result<serde_json::Value> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("cardiaffect-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("model.py"),
        include_str!("../../../reference/model.py"),
    )?;
    std::fs::write(
        dir.join("bench.py"),
        include_str!("../../../reference/bench.py"),
    )?;
    // The same model on both sides: PyTorch builds it from our config.
    std::fs::write(dir.join("config.json"), serde_json::to_vec(cfg)?)?;
    let out = Command::new(python)
        .envs(pytorch_malloc_env())
        .arg(dir.join("bench.py"))
        .args(a.skip_train.then_some("--skip-train"))
        .args(a.cls_row.then_some("--cls-row"))
        .args([
            "--config",
            "config.json",
            "--batch",
            &a.batch.to_string(),
            "--steps",
            &a.steps.to_string(),
            "--warmup",
            &a.warmup.to_string(),
            "--threads",
            &std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .to_string(),
        ])
        .current_dir(&dir)
        .output()
        .with_context(|| format!("running {python} reference/bench.py"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!(
            "reference/bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Which kernels the bench's models run: the default, or `CARDIAFFECT_KERNELS=ops|burn` to
/// compare (read here, where the models are made; the library reads no environment).
fn kernels() -> Result<Kernels> {
    let mode = match std::env::var("CARDIAFFECT_KERNELS") {
        Ok(name) => KernelMode::from_name(&name)
            .with_context(|| format!("CARDIAFFECT_KERNELS={name}: expected layer, ops or burn"))?,
        Err(_) => KernelMode::default(),
    };
    Ok(Kernels {
        mode,
        ..Kernels::default()
    })
}

/// The name of the kernels inference runs: the in-tree ones are flex-only, so any other
/// backend runs Burn's.
fn kernels_name(dev: &Device, k: Kernels) -> &'static str {
    if cardiaffect_model::ops::plain_flex(dev) {
        k.mode.name()
    } else {
        KernelMode::Burn.name()
    }
}

/// Our four figures of one round: step times and inference medians in milliseconds (NaN
/// for skipped training steps).
struct Ours {
    pretrain_ms: f64,
    finetune_ms: f64,
    b32_ms: f64,
    b1_ms: f64,
}

fn time_ours(a: &BenchArgs, cfg: &ModelConfig, dev: &Device, k: Kernels) -> Result<Ours> {
    let (b, len) = (a.batch, cfg.window_len);
    let (mut pretrain_ms, mut finetune_ms) = (f64::NAN, f64::NAN);
    if !a.skip_train {
        // Training steps on the autodiff device, with dropout as configured.
        let ad = dev.clone().autodiff();
        let mut model = cfg.init(&ad)?;
        model.kernels = k;
        let mut optim = AdamWConfig::new().init();
        let (x, y) = batch(b, len, &ad);
        let mask = token_mask(b, cfg.n_tokens(), &ad);
        let spt = cfg.samples_per_token();
        let mut step = 0u64;
        pretrain_ms = median_ms(a.steps, a.warmup, || {
            step += 1;
            let enc = model.encode_train(x.clone(), Some(mask.clone()), step);
            let loss = masked_mse(model.reconstruct(enc.tokens), x.clone(), mask.clone(), spt);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-4, model.clone(), grads);
        });
        finetune_ms = median_ms(a.steps, a.warmup, || {
            step += 1;
            let enc = model.encode_train(x.clone(), None, step);
            let loss = cross_entropy(model.classify(enc.cls), y.clone(), None);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-4, model.clone(), grads);
        });
        // The training model is freed before inference (a process that serves predictions
        // does not hold one).
    }
    // Inference without autodiff.
    let mut model = cfg.init(dev)?;
    model.kernels = k;
    // As a served model runs: its weights prepared once.
    let infer = model.prepared();
    let (xi, _) = batch(b, len, dev);
    let (x1, _) = batch(1, len, dev);
    let run_infer = |x: &Tensor<2>| {
        let cls = if a.cls_row {
            infer.encode_cls(x.clone())
        } else {
            infer.encode(x.clone()).cls
        };
        let p = burn::tensor::activation::softmax(infer.model().classify(cls), 1);
        let _ = p.into_data();
    };
    let b32_ms = median_ms(a.steps, a.warmup, || run_infer(&xi));
    let b1_ms = median_ms(a.steps * 4, a.warmup, || run_infer(&x1));
    Ok(Ours {
        pretrain_ms,
        finetune_ms,
        b32_ms,
        b1_ms,
    })
}

/// A thread spinning on one CPU until dropped (`bench --cpu-hog`).
struct CpuHog(
    Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
);

impl CpuHog {
    fn start(on: bool) -> CpuHog {
        use std::sync::atomic::{AtomicBool, Ordering};
        CpuHog(on.then(|| {
            let stop = std::sync::Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let h = std::thread::spawn(move || {
                let mut x = 1u64;
                while !s.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
            });
            (stop, h)
        }))
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        if let Some((stop, h)) = self.0.take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = h.join();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The figures' keys: ours and PyTorch's under the same name, and whether a smaller value is
/// faster (times) or a larger one (throughput).
const FIGURES: [(&str, bool); 4] = [
    ("pretrain_step_ms", true),
    ("finetune_step_ms", true),
    ("infer_b32_windows_per_s", false),
    ("infer_b1_ms", true),
];
const RATIOS: [&str; 4] = [
    "ratio_pretrain_step",
    "ratio_finetune_step",
    "ratio_infer_b32",
    "ratio_infer_b1",
];

pub fn run(a: BenchArgs) -> Result<()> {
    let dev = a.device.device()?;
    let cfg = ModelConfig::base();
    let b = a.batch;
    let params = cfg.init(&dev)?.num_params();
    let k = kernels()?;
    let python = find_python(&a.torch_python);
    let hog = CpuHog::start(a.cpu_hog);
    let mut rounds = Vec::new();
    for r in 0..a.rounds {
        if a.rounds > 1 {
            tracing::info!("round {} of {}", r + 1, a.rounds);
        }
        let o = time_ours(&a, &cfg, &dev, k)?;
        let mut round = serde_json::json!({
            "pretrain_step_ms": o.pretrain_ms, "finetune_step_ms": o.finetune_ms,
            "infer_b32_windows_per_s": b as f64 / (o.b32_ms / 1e3), "infer_b1_ms": o.b1_ms,
        });
        if let Some(py) = &python {
            let t = pytorch(py, &a, &cfg)?;
            let ro = round.as_object_mut().expect("an object");
            for ((k, smaller_is_faster), rk) in FIGURES.iter().zip(RATIOS) {
                let (ours, theirs) = (
                    ro[*k].as_f64().unwrap_or(f64::NAN),
                    t[*k].as_f64().unwrap_or(f64::NAN),
                );
                ro.insert(format!("pytorch_{k}"), serde_json::json!(theirs));
                // Time ratios: ours / PyTorch's (below 1 is faster); throughput: PyTorch's /
                // ours.
                let ratio = if *smaller_is_faster {
                    ours / theirs
                } else {
                    theirs / ours
                };
                ro.insert(rk.into(), serde_json::json!(ratio));
            }
            ro.insert("pytorch".into(), t);
        }
        rounds.push(round);
    }
    drop(hog);
    // Figures and ratios: medians over the rounds (one round: its own).
    let med = |k: &str| median(rounds.iter().filter_map(|r| r[k].as_f64()).collect());
    let mut out = serde_json::json!({
        "backend": a.device.backend.name(), "batch": b, "params": params, "threads": rayon::current_num_threads(),
        "kernels": kernels_name(&dev, k), "rounds": a.rounds, "cpu_hog": a.cpu_hog,
        "infer_cls_row": a.cls_row,
        "malloc_thresholds": {
            "mmap": crate::allocator::MMAP_THRESHOLD, "trim": crate::allocator::TRIM_THRESHOLD,
            "pytorch_env": python.as_ref().map(|_| pytorch_malloc_env().into_iter().collect::<std::collections::BTreeMap<_, _>>()),
        },
    });
    let o = out.as_object_mut().expect("an object");
    for (k, _) in FIGURES {
        o.insert(k.into(), serde_json::json!(med(k)));
    }
    if python.is_some() {
        for (k, _) in FIGURES {
            let pk = format!("pytorch_{k}");
            o.insert(pk.clone(), serde_json::json!(med(&pk)));
        }
        for k in RATIOS {
            o.insert(k.into(), serde_json::json!(med(k)));
        }
        o.insert(
            "pytorch".into(),
            rounds
                .last()
                .map_or(serde_json::Value::Null, |r| r["pytorch"].clone()),
        );
    }
    if a.rounds > 1 {
        o.insert("per_round".into(), serde_json::json!(rounds));
    }
    let (pretrain_ms, finetune_ms) = (med("pretrain_step_ms"), med("finetune_step_ms"));
    let (b32_wps, b1_ms) = (med("infer_b32_windows_per_s"), med("infer_b1_ms"));
    let len = cfg.window_len;
    let mut per_hour = Vec::new();
    for dir in &a.predict_models {
        per_hour.push((
            dir.display().to_string(),
            predict_seconds_per_hour(dir, &dev)?,
        ));
    }
    out.as_object_mut().expect("an object").insert(
        "predict_s_per_hour".into(),
        per_hour
            .iter()
            .map(|(d, v)| (d.clone(), serde_json::json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    let mut w = std::io::stdout().lock();
    if a.json {
        writeln!(w, "{out}")?;
        return Ok(());
    }
    writeln!(
        w,
        "model: {params} parameters, window {len}, batch {b}, backend {} ({} threads, {} kernels)",
        a.device.backend,
        rayon::current_num_threads(),
        kernels_name(&dev, k)
    )?;
    let theirs = pytorch_malloc_env();
    let same = [
        crate::allocator::MMAP_THRESHOLD,
        crate::allocator::TRIM_THRESHOLD,
    ]
    .iter()
    .zip(&theirs)
    .all(|(ours, (_, v))| v.parse() == Ok(*ours));
    writeln!(
        w,
        "allocator: glibc's mmap threshold {} MiB, trim threshold {} MiB; PyTorch's process: {}",
        crate::allocator::MMAP_THRESHOLD >> 20,
        crate::allocator::TRIM_THRESHOLD >> 20,
        match (&python, same) {
            (None, _) => "not run".to_string(),
            (Some(_), true) => "the same".to_string(),
            (Some(_), false) => theirs.map(|(k, v)| format!("{k}={v}")).join(" "),
        }
    )?;
    writeln!(
        w,
        "inference: {}, both sides",
        if a.cls_row {
            "the last layer for the CLS row alone, as predict runs (--cls-row)"
        } else {
            "every row of every layer"
        }
    )?;
    let row = |w: &mut dyn Write,
               name: &str,
               ours: String,
               theirs: Option<String>,
               ratio: Option<f64>|
     -> Result<()> {
        match (theirs, ratio) {
            (Some(t), Some(r)) => {
                writeln!(w, "{name:<24} {ours:>14}   PyTorch {t:>14}   ratio {r:.2}x")?
            }
            _ => writeln!(w, "{name:<24} {ours:>14}")?,
        }
        Ok(())
    };
    let o = &out;
    let f = |k: &str| o.get(k).and_then(|v| v.as_f64());
    if !a.skip_train {
        row(
            &mut w,
            "pre-training step",
            format!("{pretrain_ms:.0} ms"),
            f("pytorch_pretrain_step_ms").map(|v| format!("{v:.0} ms")),
            f("ratio_pretrain_step"),
        )?;
        row(
            &mut w,
            "fine-tuning step",
            format!("{finetune_ms:.0} ms"),
            f("pytorch_finetune_step_ms").map(|v| format!("{v:.0} ms")),
            f("ratio_finetune_step"),
        )?;
    }
    row(
        &mut w,
        "inference, batch 32",
        format!("{b32_wps:.0} win/s"),
        f("pytorch_infer_b32_windows_per_s").map(|v| format!("{v:.0} win/s")),
        f("ratio_infer_b32"),
    )?;
    row(
        &mut w,
        "latency, batch 1",
        format!("{b1_ms:.1} ms"),
        f("pytorch_infer_b1_ms").map(|v| format!("{v:.1} ms")),
        f("ratio_infer_b1"),
    )?;
    for (d, v) in &per_hour {
        writeln!(
            w,
            "{:<24} {:>14}   ({d}; 24 h in {:.0} s)",
            "predict, 256-Hz ECG",
            format!("{v:.2} s/hour"),
            24.0 * v
        )?;
    }
    if python.is_none() {
        writeln!(w, "(no Python with torch found: set CARDIAFFECT_TORCH_PYTHON or --torch-python to compare with PyTorch)")?;
    } else {
        if a.rounds > 1 {
            for (i, r) in rounds.iter().enumerate() {
                let ratios: Vec<String> = RATIOS
                    .iter()
                    .filter_map(|k| r[*k].as_f64().filter(|v| !v.is_nan()))
                    .map(|v| format!("{v:.2}x"))
                    .collect();
                writeln!(w, "round {}: ratios {}", i + 1, ratios.join(" "))?;
            }
        }
        writeln!(
            w,
            "ratios: our time / PyTorch's (below 1: faster), measured in this run{}{}",
            if a.rounds > 1 {
                format!("; medians of {} alternated rounds", a.rounds)
            } else {
                String::new()
            },
            if a.cpu_hog {
                "; one CPU hog beside both"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}
