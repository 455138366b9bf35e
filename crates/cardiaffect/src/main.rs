//! `cardiaffect`: emotion recognition from the ECG with a self-supervised Transformer.
//!
//! A thin binary over the library crates: it parses arguments, calls them, and formats output.

mod bench;
mod bench_io;
mod bundled;
mod demo;
mod device;
mod export;
mod finetune;
mod inspect;
mod predict;
mod prepare;
mod pretrain;
mod report;
mod stream;
mod synth;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cardiaffect",
    version,
    about = "Emotion recognition from the ECG with a self-supervised Transformer"
)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Open corpora without checking their checksums and values (for a corpus you changed
    /// on purpose; a damaged one then trains on whatever it holds).
    #[arg(long, global = true)]
    no_verify: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole method in one command on bundled real ECG and synthetic labels: prepare,
    /// pre-train, fine-tune and evaluate against baselines, predict, report.
    Demo(demo::DemoArgs),
    /// Read any supported ECG source and list its recordings.
    Inspect(inspect::InspectArgs),
    /// Turn recordings into a training corpus: filter, resample, window, check quality.
    Prepare(prepare::PrepareArgs),
    /// Self-supervised pre-training (masked-signal reconstruction) on one or more corpora.
    Pretrain(pretrain::PretrainArgs),
    /// Fine-tune on a labeled corpus and evaluate under a stated protocol, against the model
    /// from scratch and an HRV + logistic-regression baseline on the same folds.
    Finetune(finetune::FinetuneArgs),
    /// The label-efficiency curve: fine-tune and evaluate every method with a fraction of each
    /// training fold's labels (same folds and seeds), written as curve.json/.md/.svg.
    Curve(finetune::CurveArgs),
    /// Print (and re-draw) the results of a finished finetune run.
    Evaluate(finetune::EvaluateArgs),
    /// Run a fine-tuned model on a recording: a timeline of class probabilities and a plot.
    Predict(predict::PredictArgs),
    /// Write one self-contained HTML page for a finetune run, a pretrain run or a demo folder.
    Report(report::ReportArgs),
    /// Live inference: samples on stdin, one JSON line per hop (causal filtering).
    Stream(stream::StreamArgs),
    /// Many simulated streams in one process: per-hop latency and whether it keeps up.
    BenchStream(stream::BenchStreamArgs),
    /// Write a model's weights for other tools (PyTorch layout by default), with its config,
    /// preprocessing, classes and parameter names.
    Export(export::ExportArgs),
    /// Write synthetic ECG (ECGSYN); --affect writes a labeled dataset in the AMIGOS layout.
    Synth(synth::SynthArgs),
    /// Time the model (pre-training, fine-tuning, inference) and, with a Python that has
    /// torch, the same model in PyTorch in the same run.
    Bench(bench::BenchArgs),
    /// Measure how fast the readers parse (a generated 1-hour, 12-lead WFDB 212 record).
    BenchIo(bench_io::BenchIoArgs),
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(a) => demo::run(a, &|args: Vec<String>| {
            let cli = Cli::try_parse_from(std::iter::once("cardiaffect".to_string()).chain(args))?;
            dispatch(cli.command)
        }),
        Command::Inspect(a) => inspect::run(a),
        Command::Prepare(a) => prepare::run(a),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Curve(a) => finetune::curve(a),
        Command::Evaluate(a) => finetune::evaluate(a),
        Command::Predict(a) => predict::run(a),
        Command::Report(a) => report::run(a),
        Command::Stream(a) => stream::run(a),
        Command::BenchStream(a) => stream::bench(a),
        Command::Export(a) => export::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Bench(a) => bench::run(a),
        Command::BenchIo(a) => bench_io::run(a),
    }
}

/// glibc's malloc hands buffers above 128 kB back to the kernel on free and maps them afresh
/// on the next allocation, so every tensor op paid page faults and zeroing (batch-32 inference
/// ran 30 % faster with the thresholds raised; BENCHMARKS.md). Freed memory is kept instead;
/// the peak stays the same.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if cli.no_verify {
        cardiaffect_corpus::corpus::set_verify_by_default(false);
    }
    let result = dispatch(cli.command);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A line above a progress bar; when the bar is hidden (output not a terminal), plain stdout, so
/// that logs and pipes keep it.
/// A library error, with a config field named by the flag that sets it.
pub fn flags(e: cardiaffect_train::TrainError) -> anyhow::Error {
    match e {
        cardiaffect_train::TrainError::Invalid {
            field,
            value,
            expected,
        } => {
            // Config fields are the flags' names with `_` for `-`; masking's sit in a struct.
            let flag = match field {
                "masking.ratio" => "mask-ratio".to_string(),
                "masking.span" => "mask-span".to_string(),
                f => f.replace('_', "-"),
            };
            anyhow::anyhow!("--{flag} {value}: expected {expected}")
        }
        e => e.into(),
    }
}

pub fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}
