//! The report: one self-contained HTML page (no network: every figure is inlined as a data
//! URI) for a finetune run, a pretrain run, a label-efficiency curve, or a demo folder holding
//! them, drawn with `cardiaffect_render`'s parts from the files each run wrote.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cardiaffect_eval::report::Results;
use cardiaffect_render::html::{figure, page};
use cardiaffect_render::{esc, pm};

use crate::curve::Curve;
use crate::TrainError;

/// `path` parsed as JSON; errors name the file and what it should be.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, TrainError> {
    let bytes = std::fs::read(path).map_err(crate::error::io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("not {what}: {e}"),
    })
}

fn finetune_section(dir: &Path, r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<h2>{} recognition — {}</h2>",
        esc(&r.task.to_string()),
        esc(&r.datasets.join(", "))
    );
    let _ = writeln!(s, "<ul><li><b>Labels</b>: {}</li>", esc(&r.label_rule));
    let _ = writeln!(
        s,
        "<li><b>Classes</b>: {}</li>",
        esc(&r
            .labels
            .classes
            .iter()
            .zip(&r.labels.counts)
            .map(|(c, n)| format!("{c} ({n} windows)"))
            .collect::<Vec<_>>()
            .join(", "))
    );
    let _ = writeln!(
        s,
        "<li><b>Protocol</b>: {}, {} folds, seed {}</li>",
        esc(&r.protocol.to_string()),
        r.folds,
        r.seed
    );
    if let Some(w) = &r.protocol_warning {
        let _ = writeln!(s, "<li class=\"warn\"><b>Warning</b>: {}</li>", esc(w));
    }
    let _ = writeln!(
        s,
        "<li><b>Pre-trained weights</b>: {}</li><li><b>Corpus</b>: <code>{}</code></li>",
        esc(&r.pretrained),
        esc(&r.corpus)
    );
    let _ = writeln!(s, "<li><b>Chance</b>: majority accuracy {:.3}, balanced accuracy {:.3}, AUROC {:.3}</li></ul>", r.chance.majority_accuracy, r.chance.balanced_accuracy, r.chance.auroc);
    s.push_str("<table><tr><th>method</th><th>level</th><th>accuracy</th><th>macro-F1</th><th>balanced accuracy</th><th>AUROC</th><th>folds</th></tr>\n");
    for a in &r.summary {
        let _ = writeln!(s, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(a.method.name()), a.level, pm(a.accuracy), pm(a.macro_f1), pm(a.balanced_accuracy), pm(a.auroc), a.folds);
    }
    s.push_str("</table><p class=\"note\">Mean ± sample standard deviation over folds. Trial level: mean probability over a trial's windows.</p>\n");
    s.push_str(&figure(
        &dir.join("confusion.svg"),
        "Confusion matrices, windows of all test folds",
    ));
    s.push_str(&figure(
        &dir.join("folds.svg"),
        "Window-level macro-F1 per fold and method",
    ));
    s.push_str("<h3>Per fold</h3><table><tr><th>fold</th><th>method</th><th>test subjects / groups</th><th>accuracy</th><th>macro-F1</th><th>AUROC</th><th>kept step</th></tr>\n");
    for f in &r.per_fold {
        let _ = writeln!(s, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>", f.fold + 1, esc(f.method.name()), esc(&f.test_groups.join(", ")), f.window.accuracy, f.window.macro_f1, f.window.auroc.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into()), f.best_step.map(|v| v.to_string()).unwrap_or_else(|| "-".into()));
    }
    s.push_str("</table>\n");
    if !r.warnings.is_empty() {
        s.push_str("<h3>Warnings</h3><ul>");
        for w in &r.warnings {
            let _ = write!(s, "<li class=\"warn\">{}</li>", esc(w));
        }
        s.push_str("</ul>\n");
    }
    let _ = writeln!(s, "<details><summary>Model and fine-tuning configuration</summary><pre>{}\n{}</pre></details>", esc(&serde_json::to_string_pretty(&r.model_config).unwrap_or_default()), esc(&serde_json::to_string_pretty(&r.finetune_config).unwrap_or_default()));
    s
}

fn pretrain_section(dir: &Path) -> Result<String, TrainError> {
    let summary: serde_json::Value =
        read_json(&dir.join("summary.json"), "a pre-training summary")?;
    let mut s = String::new();
    let v = summary["val_loss"].as_f64().unwrap_or(f64::NAN);
    let b = summary["baseline_mean_prediction"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let _ = writeln!(s, "<h2>Self-supervised pre-training</h2><p>{} steps, {} parameters, {} training windows. Validation (held-out subjects) masked-reconstruction MSE <b>{v:.4}</b> against <b>{b:.4}</b> for predicting each window's mean ({:.0}%).</p>", summary["steps"], summary["params"], summary["train_windows"], 100.0 * v / b);
    if let Some(per) = summary["val_by_corpus"].as_array() {
        s.push_str("<table><tr><th>corpus</th><th>validation windows</th><th>MSE</th><th>mean baseline</th></tr>");
        for c in per {
            let _ = write!(
                s,
                "<tr><td><code>{}</code></td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                esc(c["corpus"].as_str().unwrap_or("")),
                c["val_windows"],
                c["val_loss"].as_f64().unwrap_or(f64::NAN),
                c["baseline_mean_prediction"].as_f64().unwrap_or(f64::NAN)
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str(&figure(
        &dir.join("loss.svg"),
        "Training and validation loss, with the mean-prediction baseline",
    ));
    let png = dir.join("reconstructions.png");
    if png.exists() {
        s.push_str(&figure(
            &png,
            "Validation windows: original (black), hidden tokens (grey), reconstruction (red)",
        ));
    } else {
        s.push_str(&figure(
            &dir.join("reconstructions.svg"),
            "Validation windows: original (black), hidden tokens (grey), reconstruction (red)",
        ));
    }
    if let Ok(cfg) = std::fs::read_to_string(dir.join("pretrain.json")) {
        let _ = writeln!(
            s,
            "<details><summary>Pre-training configuration</summary><pre>{}</pre></details>",
            esc(&cfg)
        );
    }
    Ok(s)
}

/// Build the page for `dir` (finetune run, pretrain run, or a folder with both as subfolders).
pub fn build(dir: &Path) -> Result<String, TrainError> {
    let mut body = String::new();
    let mut found = false;
    let candidates: Vec<PathBuf> = [
        dir.to_path_buf(),
        dir.join("pretrain"),
        dir.join("finetune"),
    ]
    .into_iter()
    .collect();
    // A flipped byte in a results file would be reported as a number: check first.
    for d in &candidates {
        cardiaffect_io::artifact::Checksums::verify(d)?;
    }
    for d in &candidates {
        if d.join("summary.json").exists() && d.join("pretrain.json").exists() {
            body.push_str(&pretrain_section(d)?);
            found = true;
        }
    }
    for d in &candidates {
        if let Ok(bytes) = std::fs::read(d.join("results.json")) {
            let r: Results =
                serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
                    path: d.join("results.json"),
                    message: format!("not a results file: {e}"),
                })?;
            body.push_str(&finetune_section(d, &r));
            found = true;
        }
    }
    for d in [dir.to_path_buf(), dir.join("curve")] {
        if d.join("curve.json").exists() && d.join("curve.svg").exists() {
            let c: Curve = read_json(&d.join("curve.json"), "a curve file")?;
            body.push_str("<h2>Label efficiency</h2>");
            body.push_str(&format!(
                "<p class=\"note\">{} · labels: {} · calibration: {} · {}</p>",
                esc(&c.task.to_string()),
                esc(&c.label_rule),
                esc(&c.calibration),
                esc(&c.fraction_rule)
            ));
            body.push_str(&figure(
                &d.join("curve.svg"),
                "Window-level macro-F1 and AUROC against the fraction of labeled training trials, one line per method (± std over folds)",
            ));
            found = true;
        }
    }
    let tl = dir.join("timeline.svg");
    if tl.exists() {
        body.push_str("<h2>Prediction on a real recording</h2>");
        body.push_str(&figure(
            &tl,
            "ECG strip, heart rate and class probability over time (predict)",
        ));
        let att = dir.join("timeline_attention.svg");
        if att.exists() {
            body.push_str(&figure(
                &att,
                "Where the CLS token looks in one window: last-layer attention to each signal token, mean over heads (predict)",
            ));
        }
    }
    if !found {
        return Err(TrainError::Data(format!("{}: neither a finetune run (results.json) nor a pretrain run (summary.json + pretrain.json), nor a demo folder with them", dir.display())));
    }
    let title = dir.display().to_string();
    Ok(page(&title, env!("CARGO_PKG_VERSION"), &body))
}
