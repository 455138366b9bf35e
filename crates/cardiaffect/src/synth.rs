//! `cardiaffect synth`: synthetic ECG (ECGSYN). Never report its numbers as emotion recognition.

use std::path::PathBuf;

use anyhow::Result;
use cardiaffect_corpus::synth::{write_affect, write_unlabeled, AffectConfig, RecordFormat};
use clap::Args;

#[derive(Args)]
pub struct SynthArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Write a labeled dataset in the AMIGOS layout (arousal/valence change the physiology).
    #[arg(long)]
    pub affect: bool,
    /// Number of subjects.
    #[arg(long, default_value_t = 8)]
    pub subjects: usize,
    /// Trials per subject (--affect).
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Length of each trial in seconds (--affect).
    #[arg(long, default_value_t = 60.0)]
    pub trial_seconds: f64,
    /// Minutes per subject (unlabeled mode).
    #[arg(long, default_value_t = 5.0)]
    pub minutes: f64,
    /// Sampling rate in Hz (unlabeled mode; --affect writes 128 Hz as AMIGOS).
    #[arg(long, default_value_t = 256.0)]
    pub fs: f64,
    /// File format of the unlabeled records (--affect writes the AMIGOS layout).
    #[arg(long, value_enum, default_value = "wfdb")]
    pub format: RecordFormat,
    /// Seed: the same seed writes the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(a: SynthArgs) -> Result<()> {
    if a.affect {
        let cfg = AffectConfig {
            subjects: a.subjects,
            trials: a.trials,
            trial_s: a.trial_seconds,
            seed: a.seed,
        };
        let truth = write_affect(&a.out, &cfg, &|_| {})?;
        println!(
            "wrote {} synthetic subjects x {} trials ({} s each) in the AMIGOS layout to {} (seed {}); truth in synth_truth.csv",
            a.subjects,
            a.trials,
            a.trial_seconds,
            a.out.display(),
            a.seed
        );
        println!("SYNTHETIC: for testing that the pipeline learns, never as emotion-recognition results ({} trials)", truth.len());
    } else {
        let n = write_unlabeled(&a.out, a.subjects, a.minutes, a.fs, a.seed, a.format)?;
        println!(
            "wrote {n} synthetic {} records of {} min at {} Hz to {} (seed {})",
            match a.format {
                RecordFormat::Wfdb => "WFDB",
                RecordFormat::Edf => "EDF",
            },
            a.minutes,
            a.fs,
            a.out.display(),
            a.seed
        );
    }
    Ok(())
}
