//! `cardiaffect demo`: the whole method on bundled real ECG with real labels (PhysioNet eegmat:
//! 12 people at rest and doing mental arithmetic), as the sequence of commands a user would
//! type (each printed before it runs). `--synthetic` runs it on the synthetic affect set instead
//! (the pipeline check: its labels are made of the physiology).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct DemoArgs {
    /// Output folder (created; a re-run reuses the corpora it finds there).
    #[arg(long, default_value = "cardiaffect-demo")]
    pub out: PathBuf,
    /// A smaller run for CI and a first look (under 2 minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// Fine-tune from the demo's own short pre-training instead of the shipped weights.
    #[arg(long)]
    pub own_pretraining: bool,
    /// Fine-tune on the synthetic affect set (`synth --affect`, AMIGOS layout) instead of the
    /// real labels: a check that the pipeline learns, not emotion recognition.
    #[arg(long)]
    pub synthetic: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How every table of the real-label demo names what it measures.
pub const EEGMAT_TASK: &str = "mental stress vs rest (PhysioNet eegmat, 12 people)";

/// The person whose two runs `predict` shows (rest, then mental arithmetic).
const EEGMAT_PERSON: &str = "sub-03";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The curve's full-label point is exactly step 5's run (same configuration): link it, so that
/// `curve` reuses its folds instead of training them again. Where links cannot be made, the
/// curve simply runs that fraction itself.
fn link_full_label_run(curve: &Path, finetune: &Path) {
    let full = curve.join("frac-1");
    if full.exists() || std::fs::create_dir_all(curve).is_err() {
        return;
    }
    #[cfg(unix)]
    {
        if let Ok(target) = std::fs::canonicalize(finetune) {
            let _ = std::os::unix::fs::symlink(target, &full);
        }
    }
}

/// Print and run each step (the curve's full-label point linked to the fine-tuning run first).
fn run_steps(
    steps: Vec<(String, Vec<String>)>,
    curve: &Path,
    finetune: &Path,
    dispatch: &dyn Fn(Vec<String>) -> Result<()>,
) -> Result<()> {
    for (what, args) in steps {
        if args[0] == "curve" {
            link_full_label_run(curve, finetune);
        }
        println!("\n== {what}\n$ cardiaffect {}", args.join(" "));
        dispatch(args)?;
    }
    Ok(())
}

/// The closing lines every demo prints first: its time and the folders shared by both demos.
fn finished(t0: Instant, out: &Path, pretrain: &str) {
    println!(
        "\ndemo finished in {:.0} s. Everything is in {}:",
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    println!("  report.html            the page to open first");
    println!("  pretrain/              {pretrain}: summary.json, loss.svg, reconstructions.png");
    println!("  finetune/              results.json, results.md, confusion.svg, folds.svg, model/ (for predict)");
    println!("  curve/                 curve.json, curve.md, curve.svg: macro-F1 and AUROC against the labeled fraction");
}

/// What both demos begin with: the output folder made, the shipped weights' config written
/// into it (pre-training's `--config`), and the folders and weights their steps name.
struct Begun {
    t0: Instant,
    out: PathBuf,
    model_cfg: PathBuf,
    seed: String,
    real: PathBuf,
    pretrain: PathBuf,
    finetune: PathBuf,
    curve: PathBuf,
    /// Fine-tuning's `--pretrained`: this run's pre-training, or the shipped weights.
    weights: String,
}

fn begin(a: &DemoArgs) -> Result<Begun> {
    let t0 = Instant::now();
    let out = a.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let model_cfg = out.join("model.json");
    std::fs::write(&model_cfg, crate::bundled::weights_config())
        .with_context(|| format!("writing {}", model_cfg.display()))?;
    let pretrain = out.join("pretrain");
    let weights = if a.own_pretraining {
        s(&pretrain)
    } else {
        "bundled".to_string()
    };
    Ok(Begun {
        t0,
        model_cfg,
        seed: a.seed.to_string(),
        real: out.join("corpus-real"),
        pretrain,
        finetune: out.join("finetune"),
        curve: out.join("curve"),
        weights,
        out,
    })
}

pub fn run(a: DemoArgs, dispatch: &dyn Fn(Vec<String>) -> Result<()>) -> Result<()> {
    if a.synthetic {
        return run_synthetic(a, dispatch);
    }
    let b = begin(&a)?;
    let window = format!("{}s", crate::bundled::weights_preprocess()?.window_s);
    // Sizes: (pre-training steps, fine-tuning epochs); the curve's fractions.
    let (pt_steps, epochs) = if a.quick { ("40", "1") } else { ("100", "10") };
    let fractions = if a.quick { "0.5,1" } else { "0.25,1" };
    let eegmat = b.out.join("corpus-eegmat");
    let person = format!("bundled:eegmat/{EEGMAT_PERSON}");
    let ft_args = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--corpus".into(),
            s(&eegmat),
            "--pretrained".into(),
            b.weights.clone(),
            "--task".into(),
            "trial_type".into(),
            "--folds".into(),
            // Quick: 4 folds of 3 people instead of 12 of one.
            if a.quick { "4".into() } else { "loso".into() },
            "--seed".into(),
            b.seed.clone(),
            "--out".into(),
            s(dir),
        ];
        if a.quick {
            v.extend(["--epochs".into(), epochs.into()]);
        }
        v
    };
    let steps: Vec<(String, Vec<String>)> = vec![
        (format!("1/7 unlabeled real ECG (bundled: MIT-BIH 208, biosignalsnotebooks) into {window} windows, for the pre-training tutorial"), vec!["prepare".into(), "--out".into(), s(&b.real), "--window".into(), window.clone()]),
        (format!("2/7 real labels: PhysioNet eegmat, 12 people, ECG at rest (3 min) and during serial subtraction (1 min), as EEG-BIDS, into {window} windows that do not overlap (the README's table uses the default 4 s stride: 2.5 times the windows, and the time)"), vec!["prepare".into(), "--source".into(), "bundled:eegmat".into(), "--out".into(), s(&eegmat), "--stride".into(), window.clone()]),
        ("3/7 self-supervised pre-training on the unlabeled ECG (masked spans, reconstruct the hidden signal): the tutorial; fine-tuning starts from the shipped weights, pre-trained the same way on 100 h of real ECG, unless --own-pretraining".into(), vec!["pretrain".into(), "--corpus".into(), s(&b.real), "--config".into(), s(&b.model_cfg), "--out".into(), s(&b.pretrain), "--steps".into(), pt_steps.into(), "--eval-every".into(), if a.quick { "20".into() } else { "50".into() }, "--checkpoint-every".into(), "100".into(), "--seed".into(), b.seed.clone()]),
        (format!("4/7 {EEGMAT_TASK}: fine-tuning with the defaults, leave-one-subject-out, against the same model from scratch, HRV + logistic regression and their fusion; each person's scores calibrated on their own windows, the threshold chosen on validation people"), std::iter::once("finetune".to_string()).chain(ft_args(&b.finetune)).collect()),
        (format!("5/7 label efficiency on {EEGMAT_TASK}: the same folds and seeds with fewer labeled training trials (the full-label point is step 4's run)"), ["curve".to_string(), "--fractions".into(), fractions.into()].into_iter().chain(ft_args(&b.curve)).collect()),
        (format!("6/7 the final model on one person's two runs ({EEGMAT_PERSON}: rest, then mental arithmetic), scores relative to all of this person's windows"), vec!["predict".into(), "--model".into(), s(&b.finetune), person.clone(), "--reference".into(), "person".into(), "--out".into(), s(&b.out.join("timeline.csv"))]),
        ("7/7 one HTML page with everything".into(), vec!["report".into(), s(&b.out)]),
    ];
    run_steps(steps, &b.curve, &b.finetune, dispatch)?;
    finished(b.t0, &b.out, "pre-training tutorial run");
    println!("  timeline.csv, .svg     predictions on {EEGMAT_PERSON}'s rest and arithmetic runs");
    println!("  timeline_attention.svg where the model's CLS token looks in one window");
    println!("These are real labels of a real study: {EEGMAT_TASK}. It is mental stress against rest, not valence or arousal ratings.");
    Ok(())
}

/// The demo on the synthetic affect set (`--synthetic`): the pipeline check it always was.
fn run_synthetic(a: DemoArgs, dispatch: &dyn Fn(Vec<String>) -> Result<()>) -> Result<()> {
    let b = begin(&a)?;
    let secs = crate::bundled::weights_preprocess()?.window_s;
    let (window, half) = (format!("{secs}s"), format!("{}s", secs / 2.0));
    // Sizes: (subjects, trials, seconds per trial, pre-training steps, folds, epochs).
    let (subjects, trials, trial_s, pt_steps, folds, epochs) = if a.quick {
        ("6", "8", "24", "40", "3", "1")
    } else {
        ("10", "16", "40", "300", "5", "3")
    };
    let affect_raw = b.out.join("synth-affect");
    let affect = b.out.join("corpus-affect");
    // Named, not by its cache path: the printout and the timeline are the same on every machine.
    let recording = PathBuf::from("bundled:biosignalsnotebooks/ecg_7min");
    let ft_args = |dir: &Path| -> Vec<String> {
        vec![
            "--corpus".into(),
            s(&affect),
            "--pretrained".into(),
            b.weights.clone(),
            "--config".into(),
            s(&b.model_cfg),
            "--task".into(),
            "arousal".into(),
            "--folds".into(),
            folds.into(),
            "--epochs".into(),
            epochs.into(),
            "--eval-every".into(),
            "10".into(),
            "--lr".into(),
            "1e-3".into(),
            "--seed".into(),
            b.seed.clone(),
            "--out".into(),
            s(dir),
        ]
    };
    let fractions = if a.quick { "0.25,1" } else { "0.1,0.25,1" };
    let steps: Vec<(String, Vec<String>)> = vec![
        (format!("1/8 real ECG (bundled: MIT-BIH 208, biosignalsnotebooks) into {window} windows"), vec!["prepare".into(), "--out".into(), s(&b.real), "--window".into(), window.clone(), "--stride".into(), half]),
        ("2/8 a synthetic labeled dataset in the AMIGOS layout (SYNTHETIC: the labels change the physiology by construction)".into(), vec!["synth".into(), "--affect".into(), "--subjects".into(), subjects.into(), "--trials".into(), trials.into(), "--trial-seconds".into(), trial_s.into(), "--seed".into(), b.seed.clone(), "--out".into(), s(&affect_raw)]),
        ("3/8 its corpus".into(), vec!["prepare".into(), "--source".into(), s(&affect_raw), "--out".into(), s(&affect), "--window".into(), window.clone(), "--stride".into(), window.clone()]),
        ("4/8 self-supervised pre-training on the real ECG (masked spans, reconstruct the hidden signal)".into(), vec!["pretrain".into(), "--corpus".into(), s(&b.real), "--config".into(), s(&b.model_cfg), "--out".into(), s(&b.pretrain), "--steps".into(), pt_steps.into(), "--lr".into(), "1e-3".into(), "--eval-every".into(), if a.quick { "20".into() } else { "50".into() }, "--checkpoint-every".into(), "100".into(), "--seed".into(), b.seed.clone()]),
        ("5/8 fine-tuning and evaluation: subject-independent folds, against the same model from scratch, HRV + logistic regression and their fusion; each person's scores calibrated (subject), the threshold chosen on validation people".into(), std::iter::once("finetune".to_string()).chain(ft_args(&b.finetune)).collect()),
        ("6/8 label efficiency: the same folds and seeds with fewer labeled training trials (the full-label point is step 5's run)".into(), ["curve".to_string(), "--fractions".into(), fractions.into()].into_iter().chain(ft_args(&b.curve)).collect()),
        ("7/8 the final model on a real recording (biosignalsnotebooks, 7 min)".into(), vec!["predict".into(), "--model".into(), s(&b.finetune), s(&recording), "--out".into(), s(&b.out.join("timeline.csv"))]),
        ("8/8 one HTML page with everything".into(), vec!["report".into(), s(&b.out)]),
    ];
    run_steps(steps, &b.curve, &b.finetune, dispatch)?;
    finished(b.t0, &b.out, "pre-training run");
    println!("  timeline.csv, .svg     predictions on a real recording");
    println!("  timeline_attention.svg where the model's CLS token looks in one window");
    println!("The labeled data are SYNTHETIC: these numbers test the pipeline, they are not emotion-recognition results.");
    Ok(())
}
