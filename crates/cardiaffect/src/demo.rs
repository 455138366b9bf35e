//! `cardiaffect demo`: the whole method on bundled real ECG and synthetic labeled ECG, as the
//! sequence of commands a user would type (each printed before it runs).

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
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

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

pub fn run(a: DemoArgs, dispatch: &dyn Fn(Vec<String>) -> Result<()>) -> Result<()> {
    let t0 = Instant::now();
    let out = a.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let model_cfg = out.join("model.json");
    std::fs::write(&model_cfg, crate::bundled::weights_config())
        .with_context(|| format!("writing {}", model_cfg.display()))?;
    let seed = a.seed.to_string();
    // Sizes: (subjects, trials, seconds per trial, pre-training steps, folds, epochs).
    let (subjects, trials, trial_s, pt_steps, folds, epochs) = if a.quick {
        ("6", "8", "24", "40", "3", "1")
    } else {
        ("10", "16", "40", "300", "5", "3")
    };
    let real = out.join("corpus-real");
    let affect_raw = out.join("synth-affect");
    let affect = out.join("corpus-affect");
    let pretrain = out.join("pretrain");
    let finetune = out.join("finetune");
    let weights = if a.own_pretraining {
        s(&pretrain)
    } else {
        "bundled".to_string()
    };
    // Named, not by its cache path: the printout and the timeline are the same on every machine.
    let recording = PathBuf::from("bundled:biosignalsnotebooks/ecg_7min");
    let curve = out.join("curve");
    let ft_args = |dir: &Path| -> Vec<String> {
        vec![
            "--corpus".into(),
            s(&affect),
            "--pretrained".into(),
            weights.clone(),
            "--config".into(),
            s(&model_cfg),
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
            seed.clone(),
            "--out".into(),
            s(dir),
        ]
    };
    let fractions = if a.quick { "0.25,1" } else { "0.1,0.25,1" };
    let steps: Vec<(&str, Vec<String>)> = vec![
        ("1/8 real ECG (bundled: MIT-BIH 208, biosignalsnotebooks) into 4 s windows", vec!["prepare".into(), "--out".into(), s(&real), "--window".into(), "4s".into(), "--stride".into(), "2s".into()]),
        ("2/8 a synthetic labeled dataset in the AMIGOS layout (SYNTHETIC: the labels change the physiology by construction)", vec!["synth".into(), "--affect".into(), "--subjects".into(), subjects.into(), "--trials".into(), trials.into(), "--trial-seconds".into(), trial_s.into(), "--seed".into(), seed.clone(), "--out".into(), s(&affect_raw)]),
        ("3/8 its corpus", vec!["prepare".into(), "--source".into(), s(&affect_raw), "--out".into(), s(&affect), "--window".into(), "4s".into(), "--stride".into(), "4s".into()]),
        ("4/8 self-supervised pre-training on the real ECG (masked spans, reconstruct the hidden signal)", vec!["pretrain".into(), "--corpus".into(), s(&real), "--config".into(), s(&model_cfg), "--out".into(), s(&pretrain), "--steps".into(), pt_steps.into(), "--lr".into(), "1e-3".into(), "--eval-every".into(), if a.quick { "20".into() } else { "50".into() }, "--checkpoint-every".into(), "100".into(), "--seed".into(), seed.clone()]),
        ("5/8 fine-tuning and evaluation: subject-independent folds, against the same model from scratch, HRV + logistic regression and their fusion; each person's scores calibrated (subject), the threshold chosen on validation people", std::iter::once("finetune".to_string()).chain(ft_args(&finetune)).collect()),
        ("6/8 label efficiency: the same folds and seeds with fewer labeled training trials (the full-label point is step 5's run)", ["curve".to_string(), "--fractions".into(), fractions.into()].into_iter().chain(ft_args(&curve)).collect()),
        ("7/8 the final model on a real recording (biosignalsnotebooks, 7 min)", vec!["predict".into(), "--model".into(), s(&finetune), s(&recording), "--out".into(), s(&out.join("timeline.csv"))]),
        ("8/8 one HTML page with everything", vec!["report".into(), s(&out)]),
    ];
    for (what, args) in steps {
        if args[0] == "curve" {
            link_full_label_run(&curve, &finetune);
        }
        println!("\n== {what}\n$ cardiaffect {}", args.join(" "));
        dispatch(args)?;
    }
    println!(
        "\ndemo finished in {:.0} s. Everything is in {}:",
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    println!("  report.html            the page to open first");
    println!(
        "  pretrain/              pre-training run: summary.json, loss.svg, reconstructions.png"
    );
    println!("  finetune/              results.json, results.md, confusion.svg, folds.svg, model/ (for predict)");
    println!("  curve/                 curve.json, curve.md, curve.svg: macro-F1 and AUROC against the labeled fraction");
    println!("  timeline.csv, .svg     predictions on a real recording");
    println!("  timeline_attention.svg where the model's CLS token looks in one window");
    println!("The labeled data are SYNTHETIC: these numbers test the pipeline, they are not emotion-recognition results.");
    Ok(())
}
