//! Results files: `results.json` (everything), `results.md` (a table ready for a paper) and SVG
//! plots (confusion matrices, per-fold bars). Each states the task's label rule, the protocol,
//! the seed, the dataset and the model configuration.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::metrics::{mean_std, Metrics};
use crate::{EvalError, Labels};

/// One method on one fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    pub method: String,
    pub fold: usize,
    pub n_train: usize,
    pub n_val: usize,
    pub test_groups: Vec<String>,
    pub window: Metrics,
    pub trial: Metrics,
    /// Training steps run and the step whose weights were kept (models only).
    pub steps: Option<usize>,
    pub best_step: Option<usize>,
    pub best_val_macro_f1: Option<f64>,
    /// Wall time of this fold (said on the console, not written: the same run must write the
    /// same bytes).
    #[serde(skip)]
    pub seconds: f64,
    /// The calibration and threshold the test decisions were made at.
    #[serde(default)]
    pub operating_point: Option<crate::OperatingPoint>,
    /// For `fusion` with `auto`: which fusion this fold kept, and why.
    #[serde(default)]
    pub fusion: Option<String>,
}

/// Mean ± sample standard deviation over folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub method: String,
    pub level: String,
    pub accuracy: [f64; 2],
    pub macro_f1: [f64; 2],
    pub balanced_accuracy: [f64; 2],
    /// Over the folds where it is defined (`auroc_folds` of them).
    pub auroc: [f64; 2],
    pub auroc_folds: usize,
    pub folds: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub cardiaffect_version: String,
    pub corpus: String,
    pub datasets: Vec<String>,
    pub task: String,
    pub labels: Labels,
    pub label_rule: String,
    pub protocol: String,
    pub protocol_warning: Option<String>,
    pub folds: usize,
    pub seed: u64,
    pub pretrained: String,
    pub model_config: serde_json::Value,
    pub finetune_config: serde_json::Value,
    pub chance: Chance,
    /// Which calibration produced these results (`none`, `subject`, `baseline`) and its rule.
    #[serde(default)]
    pub calibration: String,
    #[serde(default)]
    pub calibration_rule: String,
    /// How decisions were made from calibrated probabilities.
    #[serde(default)]
    pub operating_point_rule: String,
    /// What `fusion` is, when it ran.
    #[serde(default)]
    pub fusion: Option<String>,
    pub summary: Vec<Aggregate>,
    pub per_fold: Vec<FoldResult>,
    pub warnings: Vec<String>,
}

/// What guessing gives, for reading the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chance {
    /// Accuracy of always predicting the most frequent class (over all labeled windows).
    pub majority_accuracy: f64,
    pub balanced_accuracy: f64,
    pub auroc: f64,
}

pub fn aggregate(per_fold: &[FoldResult], methods: &[String]) -> Vec<Aggregate> {
    let mut out = Vec::new();
    for m in methods {
        for level in ["window", "trial"] {
            let ms: Vec<&Metrics> = per_fold
                .iter()
                .filter(|f| &f.method == m)
                .map(|f| {
                    if level == "window" {
                        &f.window
                    } else {
                        &f.trial
                    }
                })
                .collect();
            if ms.is_empty() {
                continue;
            }
            let ms_of = |g: &dyn Fn(&Metrics) -> f64| {
                let (a, b, _) = mean_std(&ms.iter().map(|x| g(x)).collect::<Vec<_>>());
                [a, b]
            };
            let (am, asd, an) = mean_std(
                &ms.iter()
                    .map(|x| x.auroc.unwrap_or(f64::NAN))
                    .collect::<Vec<_>>(),
            );
            out.push(Aggregate {
                method: m.clone(),
                level: level.into(),
                accuracy: ms_of(&|x| x.accuracy),
                macro_f1: ms_of(&|x| x.macro_f1),
                balanced_accuracy: ms_of(&|x| x.balanced_accuracy),
                auroc: [am, asd],
                auroc_folds: an,
                folds: ms.len(),
            });
        }
    }
    out
}

fn pm(v: [f64; 2]) -> String {
    if v[0].is_finite() {
        format!("{:.3} ± {:.3}", v[0], v[1])
    } else {
        "n/a".into()
    }
}

/// The Markdown report.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {} recognition: {}\n", r.task, r.datasets.join(", "));
    let _ = writeln!(s, "- **Labels**: {}", r.label_rule);
    let _ = writeln!(
        s,
        "- **Classes** (labeled windows): {}",
        r.labels
            .classes
            .iter()
            .zip(&r.labels.counts)
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(s, "- **Protocol**: {}, {} folds, seed {}; validation for early stopping carved from each training fold", r.protocol, r.folds, r.seed);
    if let Some(w) = &r.protocol_warning {
        let _ = writeln!(s, "- **Warning**: {w}");
    }
    if !r.calibration.is_empty() {
        let _ = writeln!(s, "- **Calibration**: {}", r.calibration_rule);
        let _ = writeln!(s, "- **Operating point**: {}", r.operating_point_rule);
    }
    if let Some(f) = &r.fusion {
        let _ = writeln!(s, "- **Fusion**: {f}");
    }
    let _ = writeln!(s, "- **Corpus**: `{}`", r.corpus);
    let _ = writeln!(s, "- **Pre-trained weights**: {}", r.pretrained);
    let _ = writeln!(s, "- **Model**: `{}`", r.model_config);
    let _ = writeln!(s, "- **Fine-tuning**: `{}`", r.finetune_config);
    let _ = writeln!(
        s,
        "- **Chance**: majority-class accuracy {:.3}, balanced accuracy {:.3}, AUROC {:.3}\n",
        r.chance.majority_accuracy, r.chance.balanced_accuracy, r.chance.auroc
    );
    let _ = writeln!(
        s,
        "| method | level | accuracy | macro-F1 | balanced accuracy | AUROC | folds |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for a in &r.summary {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {}{} | {} |",
            a.method,
            a.level,
            pm(a.accuracy),
            pm(a.macro_f1),
            pm(a.balanced_accuracy),
            pm(a.auroc),
            if a.auroc_folds < a.folds {
                format!(" ({} folds)", a.auroc_folds)
            } else {
                String::new()
            },
            a.folds
        );
    }
    let _ = writeln!(s, "\nMean ± sample standard deviation over folds; trial level = mean probability over a trial's windows.");
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "\n## Warnings\n");
        for w in &r.warnings {
            let _ = writeln!(s, "- {w}");
        }
    }
    s
}

/// Escape text for SVG and HTML.
pub fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Confusion matrices (window level, summed over folds), one panel per method.
#[allow(clippy::needless_range_loop)] // cells are addressed by (true, predicted)
pub fn confusion_svg(r: &Results) -> String {
    let methods: Vec<String> = {
        let mut m: Vec<String> = Vec::new();
        for f in &r.per_fold {
            if !m.contains(&f.method) {
                m.push(f.method.clone());
            }
        }
        m
    };
    let k = r.labels.classes.len();
    let cell = 46.0;
    let panel = 120.0 + cell * k as f64;
    let (w, h) = (
        (panel * methods.len() as f64 + 20.0).max(760.0),
        120.0 + cell * k as f64 + 40.0,
    );
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="10" y="16" font-size="13">Confusion matrices (windows, all folds): {} — {}, seed {}</text>"#,
        esc(&r.task),
        esc(&r.protocol),
        r.seed
    );
    let _ = write!(
        s,
        r##"<text x="10" y="32" fill="#555">{}</text>"##,
        esc(&r.label_rule)
    );
    for (mi, m) in methods.iter().enumerate() {
        let mut c = vec![vec![0usize; k]; k];
        for f in r.per_fold.iter().filter(|f| &f.method == m) {
            for (i, row) in f.window.confusion.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    c[i][j] += v;
                }
            }
        }
        let x0 = 10.0 + mi as f64 * panel + 100.0;
        let y0 = 70.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="12" font-weight="bold">{}</text>"#,
            x0,
            y0 - 18.0,
            esc(m)
        );
        for i in 0..k {
            let total: usize = c[i].iter().sum::<usize>().max(1);
            let _ = write!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                x0 - 4.0,
                y0 + cell * (i as f64 + 0.55),
                esc(&r.labels.classes[i])
            );
            for j in 0..k {
                let frac = c[i][j] as f64 / total as f64;
                let shade = (255.0 * (1.0 - 0.8 * frac)) as u8;
                let _ = write!(
                    s,
                    r##"<rect x="{}" y="{}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="#999"/><text x="{}" y="{}" text-anchor="middle">{}</text>"##,
                    x0 + cell * j as f64,
                    y0 + cell * i as f64,
                    x0 + cell * (j as f64 + 0.5),
                    y0 + cell * (i as f64 + 0.55),
                    c[i][j]
                );
            }
        }
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">predicted →  (rows: true)</text>"##,
            x0 + cell * k as f64 / 2.0,
            y0 + cell * k as f64 + 16.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Window-level macro-F1 per fold, one bar per method.
pub fn folds_svg(r: &Results) -> String {
    let methods: Vec<String> = {
        let mut m: Vec<String> = Vec::new();
        for f in &r.per_fold {
            if !m.contains(&f.method) {
                m.push(f.method.clone());
            }
        }
        m
    };
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    let bw = 14.0;
    let gw = bw * methods.len() as f64 + 16.0;
    let (pl, pt, ph) = (50.0, 50.0, 200.0);
    let w = (pl + gw * r.folds as f64 + 160.0).max(760.0);
    let h = pt + ph + 40.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = write!(
        s,
        r##"<text x="10" y="16" font-size="13">Macro-F1 per fold (windows): {} — {}, seed {}</text><text x="10" y="32" fill="#555">{}</text>"##,
        esc(&r.task),
        esc(&r.protocol),
        r.seed,
        esc(&r.label_rule)
    );
    for t in 0..=4 {
        let v = t as f64 / 4.0;
        let y = pt + ph * (1.0 - v);
        let _ = write!(
            s,
            r##"<line x1="{pl}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.2}</text>"##,
            pl + gw * r.folds as f64,
            pl - 4.0,
            y + 4.0
        );
    }
    for f in &r.per_fold {
        let Some(mi) = methods.iter().position(|m| m == &f.method) else {
            continue;
        };
        let v = if f.window.macro_f1.is_finite() {
            f.window.macro_f1
        } else {
            0.0
        };
        let x = pl + gw * f.fold as f64 + 8.0 + bw * mi as f64;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="{}" height="{}" fill="{}"/>"#,
            pt + ph * (1.0 - v),
            bw - 2.0,
            ph * v,
            colors[mi % colors.len()]
        );
    }
    for fold in 0..r.folds {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">fold {}</text>"#,
            pl + gw * (fold as f64 + 0.5),
            pt + ph + 16.0,
            fold + 1
        );
    }
    for (mi, m) in methods.iter().enumerate() {
        let y = pt + 14.0 * mi as f64;
        let x = pl + gw * r.folds as f64 + 10.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 9.0,
            colors[mi % colors.len()],
            x + 14.0,
            y,
            esc(m)
        );
    }
    s.push_str("</svg>");
    s
}

use cardiaffect_io::artifact::{write_atomic, write_json_atomic};

/// Write `results.json`, `results.md`, `confusion.svg` and `folds.svg` into `dir`.
pub fn write_all(dir: &Path, r: &Results) -> Result<(), EvalError> {
    write_json_atomic(&dir.join("results.json"), r)?;
    write_atomic(&dir.join("results.md"), markdown(r).as_bytes())?;
    write_atomic(&dir.join("confusion.svg"), confusion_svg(r).as_bytes())?;
    write_atomic(&dir.join("folds.svg"), folds_svg(r).as_bytes())?;
    Ok(())
}
