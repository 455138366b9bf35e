//! `cardiaffect`: emotion recognition from the ECG with a self-supervised Transformer.
//!
//! A thin binary over the library crates: it parses arguments, calls them, and formats output.
// Unsafe code only where marked `#[allow(unsafe_code)]`: mallopt in `allocator::tune`.
#![deny(unsafe_code)]

mod allocator;
mod bench;
mod bench_io;
mod bundled;
mod demo;
mod device;
mod embed;
mod export;
mod finetune;
mod inspect;
#[cfg(feature = "mpi")]
mod mpi_group;
mod output;
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
    /// The CLS embedding of every window of a corpus (an NPY file), as features for other tools.
    Embed(embed::EmbedArgs),
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
        Command::Embed(a) => embed::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Bench(a) => bench::run(a),
        Command::BenchIo(a) => bench_io::run(a),
    }
}

fn main() -> ExitCode {
    allocator::tune();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let command = matches.subcommand_name().unwrap_or("").to_string();
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
        // Colour codes only on a terminal, not in a log file or a test's captured stderr.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if cli.no_verify {
        cardiaffect_corpus::corpus::set_verify_by_default(false);
    }
    let result = dispatch(cli.command);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::flags(&command, &format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every long flag of every subcommand.
    fn all_flags(c: &clap::Command, out: &mut std::collections::BTreeSet<String>) {
        for a in c.get_arguments() {
            if let Some(l) = a.get_long() {
                out.insert(format!("--{l}"));
            }
        }
        for s in c.get_subcommands() {
            all_flags(s, out);
        }
    }

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn every_setting_a_library_names_is_spelt_as_a_flag_that_exists() {
        let mut flags_known = std::collections::BTreeSet::new();
        all_flags(&Cli::command(), &mut flags_known);
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for e in std::fs::read_dir(&crates).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("cardiaffect-") {
                rust_files(&e.path().join("src"), &mut files);
            }
        }
        let mut names = std::collections::BTreeSet::new();
        // setting.rs itself names made-up fields in its tests.
        for f in files
            .iter()
            .filter(|f| !f.ends_with("cardiaffect-io/src/setting.rs"))
        {
            let text = std::fs::read_to_string(f).unwrap();
            for n in cardiaffect_io::setting::named(&text) {
                // `{field}` is a variant's placeholder, filled with a field at run time.
                if !n.starts_with('{')
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || "_.".contains(c))
                {
                    names.insert(n);
                }
            }
        }
        assert!(names.len() > 15, "found only {names:?}");
        for n in &names {
            for f in output::flag("", n).split('/') {
                assert!(
                    flags_known.contains(f),
                    "‹{n}› is spelt {f}, which no subcommand has"
                );
            }
        }
    }

    #[test]
    fn messages_name_flags() {
        assert_eq!(
            output::flags(
                "inspect",
                "x.edf: option ‹baseline_s›: give ‹events› FILE; ‹masking.ratio› 2; ‹fs›"
            ),
            "x.edf: option --baseline: give --events FILE; --mask-ratio 2; --fs"
        );
        assert_eq!(
            output::flags("prepare", "pass ‹fs› HZ; option ‹prepare.fs›"),
            "pass --input-fs HZ; option --fs"
        );
    }
}
