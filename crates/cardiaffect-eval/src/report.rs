//! Results files: `results.json` (everything), `results.md` (a table ready for a paper) and SVG
//! plots (confusion matrices, per-fold bars). Each states the task's label rule, the protocol,
//! the seed, the dataset and the model configuration.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use cardiaffect_render::figures::{self, Bar, Confusion};
use cardiaffect_render::pm;

use crate::metrics::{mean_std, Metrics};
use crate::{EvalError, Labels, Method, Protocol, Task};

/// One method on one fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    pub method: Method,
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
    pub method: Method,
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
    pub task: Task,
    pub labels: Labels,
    pub label_rule: String,
    pub protocol: Protocol,
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

pub fn aggregate(per_fold: &[FoldResult], methods: &[Method]) -> Vec<Aggregate> {
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
                method: *m,
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

pub use cardiaffect_render::esc;

/// The methods of `r`, in the order they ran.
fn methods_in_order(r: &Results) -> Vec<Method> {
    let mut m: Vec<Method> = Vec::new();
    for f in &r.per_fold {
        if !m.contains(&f.method) {
            m.push(f.method);
        }
    }
    m
}

/// Confusion matrices (window level, summed over folds), one panel per method.
pub fn confusion_svg(r: &Results) -> String {
    let k = r.labels.classes.len();
    let panels: Vec<Confusion> = methods_in_order(r)
        .into_iter()
        .map(|m| {
            let mut cells = vec![vec![0usize; k]; k];
            for f in r.per_fold.iter().filter(|f| f.method == m) {
                for (i, row) in f.window.confusion.iter().enumerate() {
                    for (j, v) in row.iter().enumerate() {
                        cells[i][j] += v;
                    }
                }
            }
            Confusion {
                method: m.name(),
                cells,
            }
        })
        .collect();
    figures::confusion(
        &format!(
            "Confusion matrices (windows, all folds): {} — {}, seed {}",
            r.task, r.protocol, r.seed
        ),
        &r.label_rule,
        &r.labels.classes,
        &panels,
    )
}

/// Window-level macro-F1 per fold, one bar per method.
pub fn folds_svg(r: &Results) -> String {
    let methods = methods_in_order(r);
    let bars: Vec<Bar> = r
        .per_fold
        .iter()
        .filter_map(|f| {
            Some(Bar {
                method: methods.iter().position(|m| *m == f.method)?,
                fold: f.fold,
                value: f.window.macro_f1,
            })
        })
        .collect();
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    figures::fold_bars(
        &format!(
            "Macro-F1 per fold (windows): {} — {}, seed {}",
            r.task, r.protocol, r.seed
        ),
        &r.label_rule,
        r.folds,
        &names,
        &bars,
    )
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
