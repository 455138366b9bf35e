//! `cardiaffect stream` (samples on stdin, one JSON line per hop) and `bench-stream` (many
//! simulated inputs in one process: latency per hop and whether it keeps up).

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cardiaffect_infer::{Hop, Predictor, StreamState};
use clap::Args;

/// How samples arrive on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Raw little-endian float32.
    F32le,
    /// One number per line (the first field).
    Csv,
}

#[derive(Args)]
pub struct StreamArgs {
    /// A fine-tuned model (a `finetune` run folder or a model folder). Repeatable.
    #[arg(long = "model", value_name = "RUN_DIR", required = true)]
    pub models: Vec<PathBuf>,
    /// Sampling rate of the incoming samples, Hz.
    #[arg(long)]
    pub fs: f64,
    /// f32le: raw little-endian float32 samples; csv: one number per line (first column).
    #[arg(long, value_enum, default_value_t = InputFormat::F32le)]
    pub format: InputFormat,
    /// Seconds between outputs (default: half a window).
    #[arg(long, value_name = "S")]
    pub hop: Option<f64>,
    /// Calibrate from the stream's first N minutes (this person's own windows that pass the
    /// quality checks), for models fine-tuned with subject or baseline calibration: until then
    /// each line says `"calibrating": true` and carries uncalibrated probabilities.
    #[arg(long, value_name = "N")]
    pub calibrate_minutes: Option<f64>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

fn line(
    h: &Hop,
    models: &[Predictor],
    probs: Option<&[Vec<f64>]>,
    latency_ms: f64,
    window_s: f64,
) -> String {
    let mut v = serde_json::json!({
        "start_s": h.end_s - window_s,
        "end_s": h.end_s,
        "quality": h.quality,
        "hr_bpm": if h.hr_bpm.is_finite() { serde_json::json!((h.hr_bpm * 10.0).round() / 10.0) } else { serde_json::Value::Null },
        "latency_ms": (latency_ms * 1000.0).round() / 1000.0,
    });
    if let Some(p) = probs {
        let mut m = serde_json::Map::new();
        for (model, p) in models.iter().zip(p) {
            let mut c = serde_json::Map::new();
            for (name, x) in model.labels.classes.iter().zip(p) {
                c.insert(name.clone(), serde_json::json!((x * 1e4).round() / 1e4));
            }
            m.insert(model.labels.task.to_string(), serde_json::Value::Object(c));
        }
        v["probs"] = serde_json::Value::Object(m);
    }
    v.to_string()
}

/// A reader that went away (`| head`) ends the stream quietly.
pub fn run(a: StreamArgs) -> Result<()> {
    match run_inner(a) {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn run_inner(a: StreamArgs) -> Result<()> {
    let device = a.device.device()?;
    let models = crate::predict::load_models(&a.models, &device)?;
    let pre = models[0].preprocess.clone();
    if models.iter().any(|m| m.preprocess != pre) {
        bail!("the models were trained on different preprocessing: stream them separately");
    }
    let hop = a.hop.unwrap_or(pre.window_s / 2.0);
    if let Some(m) = a.calibrate_minutes {
        if !(m.is_finite() && m * 60.0 >= pre.window_s) {
            bail!(
                "--calibrate-minutes {m}: expected at least one window ({} s = {:.3} minutes)",
                pre.window_s,
                pre.window_s / 60.0
            );
        }
    }
    let mut st = StreamState::new(&pre, a.fs, hop)?;
    let calibrated: Vec<bool> = models
        .iter()
        .map(|m| m.calibration() != cardiaffect_eval::Calibration::None)
        .collect();
    let calibration_note: Vec<String> = models
        .iter()
        .zip(&calibrated)
        .map(|(m, &c)| match (c, a.calibrate_minutes) {
            (false, _) => "none (the model was fine-tuned without calibration)".to_string(),
            (true, Some(n)) => format!("{}: from the first {n} minutes of this stream", m.calibration()),
            (true, None) => format!("NOT calibrated: the model was fine-tuned with {} calibration; give --calibrate-minutes N for decisions at its operating point", m.calibration()),
        })
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "{}",
        serde_json::json!({"stream": {
            "fs_in": a.fs, "model_fs": pre.fs, "window_s": pre.window_s, "hop_s": hop,
            "filtering": format!("causal Butterworth band-pass {}-{} Hz (order {}), forward only: phase-delayed, unlike the zero-phase filter of the training data", pre.band_hz[0], pre.band_hz[1], pre.filter_order),
            "tasks": models.iter().map(|m| m.labels.describe()).collect::<Vec<_>>(),
            "calibration": calibration_note,
        }})
    )?;
    // Per model: this person's logits collected while calibrating, then their statistics.
    let mut collected: Vec<Vec<Vec<f64>>> = vec![Vec::new(); models.len()];
    let mut stats: Vec<Option<cardiaffect_eval::calibration::Standardiser>> =
        vec![None; models.len()];
    let mut fitted = vec![false; models.len()];
    let calib_s = a.calibrate_minutes.map(|m| m * 60.0);
    let mut emit = |hops: Vec<Hop>, out: &mut std::io::StdoutLock| -> Result<()> {
        for h in hops {
            let t = Instant::now();
            let mut calibrating = false;
            let probs = (!h.window.is_empty()).then(|| {
                models
                    .iter()
                    .enumerate()
                    .map(|(mi, m)| {
                        let l = m.logits(&h.window);
                        if !calibrated[mi] {
                            return m.decide(&l, None).remove(0);
                        }
                        let Some(limit) = calib_s else {
                            return m.decide(&l, None).remove(0);
                        };
                        if !fitted[mi] {
                            if h.end_s <= limit + 1e-9 {
                                if h.quality == "ok" {
                                    collected[mi].push(l[0].clone());
                                }
                                calibrating = true;
                                return cardiaffect_eval::calibration::softmax(&l[0]);
                            }
                            fitted[mi] = true;
                            stats[mi] = cardiaffect_eval::calibration::Standardiser::fit(
                                collected[mi].iter().map(|v| v.as_slice()),
                            );
                            if stats[mi].is_none() {
                                eprintln!(
                                    "--calibrate-minutes: no window of the first {} s passed the quality checks: {} continues uncalibrated",
                                    limit,
                                    m.dir.display()
                                );
                            }
                        }
                        m.decide(&l, stats[mi].as_ref()).remove(0)
                    })
                    .collect::<Vec<_>>()
            });
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let mut text = line(&h, &models, probs.as_deref(), ms, pre.window_s);
            if calibrating {
                text.pop();
                text.push_str(",\"calibrating\":true}");
            }
            writeln!(out, "{text}")?;
        }
        out.flush()?;
        Ok(())
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut bad_lines = 0usize;
    if a.format == InputFormat::F32le {
        let mut buf = vec![0u8; 4096];
        let mut dec = cardiaffect_infer::F32Decoder::default();
        loop {
            let n = input.read(&mut buf).context("reading stdin")?;
            if n == 0 {
                break;
            }
            let samples = dec.push(&buf[..n]);
            emit(st.push(&samples), &mut out)?;
        }
        if dec.stray() > 0 {
            eprintln!("stream ended mid-sample: {} stray byte(s) after the last whole float32 were ignored", dec.stray());
        }
    } else {
        for (k, l) in input.by_ref().lines().enumerate() {
            let l = l.context("reading stdin")?;
            let v = match cardiaffect_infer::text_sample(&l) {
                None => continue,
                Some(Ok(v)) => v,
                Some(Err(field)) => {
                    bad_lines += 1;
                    if bad_lines <= 5 {
                        eprintln!(
                            "line {}: {field:?} is not a number: read as a missing sample (NaN)",
                            k + 1
                        );
                    }
                    f32::NAN
                }
            };
            emit(st.push(&[v]), &mut out)?;
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct BenchStreamArgs {
    /// A fine-tuned model (a `finetune` run folder or a model folder).
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// Parallel inputs simulated in this process.
    #[arg(long, default_value_t = 100)]
    pub streams: usize,
    /// Their sampling rate, Hz.
    #[arg(long, default_value_t = 256.0)]
    pub fs: f64,
    /// Seconds of signal each input sends.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Seconds between outputs (default: half a window).
    #[arg(long)]
    pub hop: Option<f64>,
    /// Worker threads (1: the per-hop latency on one core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

/// Feed `streams` copies of the bundled real ECG (shifted, resampled to `fs`) in 1/8 s packets,
/// classify every ready hop of all inputs together, and report latency and real-time factor.
pub fn bench(a: BenchStreamArgs) -> Result<()> {
    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global()
            .context("--threads")?;
    }
    let device = crate::device::device(crate::device::Backend::Flex)?;
    let model = Predictor::load(&a.model, &device)
        .with_context(|| format!("--model {}", a.model.display()))?;
    let pre = model.preprocess.clone();
    let hop = a.hop.unwrap_or(pre.window_s / 2.0);
    let rec_dir = crate::bundled::unpack()?.join("biosignalsnotebooks");
    let cardiaffect_io::ReadResult { output: o, .. } = cardiaffect_io::read(
        &rec_dir.join("ecg_7min.hea"),
        cardiaffect_io::Format::Wfdb,
        &Default::default(),
    )?;
    let r = &o.recordings[0];
    let signal = cardiaffect_signal::resample(&r.samples, r.fs, a.fs)?;
    let need = (a.seconds * a.fs) as usize;
    let packet = (a.fs / 8.0).round().max(1.0) as usize;
    let mut states: Vec<StreamState> = (0..a.streams)
        .map(|_| StreamState::new(&pre, a.fs, hop))
        .collect::<Result<_, _>>()?;
    let offsets: Vec<usize> = (0..a.streams)
        .map(|i| (i * 7919) % signal.len().saturating_sub(need).max(1))
        .collect();
    let mut latencies = Vec::new();
    let mut hops = 0usize;
    let t0 = Instant::now();
    let mut pos = 0;
    while pos < need {
        let end = (pos + packet).min(need);
        let mut ready: Vec<Vec<f32>> = Vec::new();
        let t_packet = Instant::now();
        for (s, &off) in states.iter_mut().zip(&offsets) {
            let chunk: Vec<f32> = (off + pos..off + end)
                .map(|k| signal[k % signal.len()])
                .collect();
            for h in s.push(&chunk) {
                hops += 1;
                if !h.window.is_empty() {
                    ready.push(h.window);
                }
            }
        }
        if !ready.is_empty() {
            let flat: Vec<f32> = ready.concat();
            let p = model.probs(&flat);
            std::hint::black_box(p);
            latencies.push((t_packet.elapsed().as_secs_f64() * 1e3, ready.len()));
        }
        pos = end;
    }
    let wall = t0.elapsed().as_secs_f64();
    // Batch-1 latency of one hop (filtering excluded): the wearable's case.
    let one = vec![0.1f32; pre.window_len()];
    let mut b1 = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        std::hint::black_box(model.probs(&one));
        b1.push(t.elapsed().as_secs_f64() * 1e3);
    }
    b1.sort_by(f64::total_cmp);
    let mut lat: Vec<f64> = latencies.iter().map(|l| l.0).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |v: &[f64], q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let rtf = a.seconds * a.streams as f64 / wall;
    let threads = rayon::current_num_threads();
    let j = serde_json::json!({
        "streams": a.streams, "fs": a.fs, "seconds": a.seconds, "hop_s": hop, "threads": threads,
        "hops": hops, "wall_s": wall,
        "realtime_factor_per_stream": a.seconds / wall,
        "keeps_up": wall < a.seconds,
        "packet_latency_ms_median": pct(&lat, 0.5), "packet_latency_ms_p99": pct(&lat, 0.99),
        "hop_latency_b1_ms_median": pct(&b1, 0.5),
        "stream_seconds_per_wall_second": rtf,
    });
    if a.json {
        println!("{j}");
    } else {
        println!("{} inputs at {} Hz, {} s of signal each, hop {hop} s, {threads} thread(s): {hops} hops in {wall:.2} s wall", a.streams, a.fs, a.seconds);
        println!(
            "keeps up: {} ({:.1}x faster than real time; {:.0} input-seconds per second)",
            if wall < a.seconds { "yes" } else { "NO" },
            a.seconds / wall,
            rtf
        );
        println!(
            "latency of a packet whose hops are classified together: median {:.2} ms, p99 {:.2} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
        println!(
            "batch-1 latency of one hop (model only): median {:.2} ms",
            pct(&b1, 0.5)
        );
    }
    Ok(())
}
