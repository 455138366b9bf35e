//! The label-efficiency curve: the same protocol, folds and seeds run with a fraction of each
//! training fold's labeled trials, for every method, to show whether pre-training pays when
//! labels are few.
//!
//! Run folder: `frac-<f>/` (one `finetune` run per fraction, each resumable on its own),
//! `curve.json`, `curve.md`, `curve.svg` (window-level macro-F1 and AUROC against the labeled
//! fraction, one line per method, ± one standard deviation over folds).

use std::fmt::Write as _;
use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use cardiaffect_eval::{Method, Protocol, Task};
use cardiaffect_io::artifact::{write_atomic, write_json_atomic};
use cardiaffect_render::figures::curve::{label_efficiency, Series};
use cardiaffect_render::pm_or_zero;

use crate::finetune::{finetune, FinetuneConfig, FinetuneEvent};
use crate::TrainError;

/// One method at one fraction (window level, mean and sample std over folds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub fraction: f64,
    pub macro_f1: [f64; 2],
    pub auroc: [f64; 2],
    pub balanced_accuracy: [f64; 2],
    pub folds: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodCurve {
    pub method: Method,
    pub points: Vec<CurvePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub corpus: String,
    pub task: Task,
    pub label_rule: String,
    pub calibration: String,
    pub protocol: Protocol,
    pub folds: usize,
    pub seed: u64,
    pub pretrained: String,
    /// What a fraction is.
    pub fraction_rule: String,
    pub fractions: Vec<f64>,
    pub methods: Vec<MethodCurve>,
}

/// Fractions must lie in (0, 1]; they are run in the order given (sorted, deduplicated).
pub fn check_fractions(fractions: &[f64]) -> Result<Vec<f64>, TrainError> {
    if fractions.is_empty() {
        return Err(TrainError::Data(
            "‹fractions›: expected at least one fraction in (0, 1]".into(),
        ));
    }
    for &f in fractions {
        if !(f > 0.0 && f <= 1.0) {
            return Err(TrainError::Data(format!(
                "‹fractions› {f}: expected fractions in (0, 1] of each training fold's labeled trials"
            )));
        }
    }
    let mut v = fractions.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    Ok(v)
}

/// Run `base` at every fraction into `out/frac-<f>` and collect the curve.
pub fn curve(
    base: &FinetuneConfig,
    fractions: &[f64],
    out: &Path,
    device: &Device,
    on: &mut dyn FnMut(f64, FinetuneEvent),
) -> Result<Curve, TrainError> {
    let fractions = check_fractions(fractions)?;
    let _lock = cardiaffect_corpus::RunLock::acquire(out, "curve")?;
    cardiaffect_io::artifact::remove_tmp(out);
    let mut methods: Vec<MethodCurve> = Vec::new();
    let mut last = None;
    for &f in &fractions {
        let mut cfg = base.clone();
        cfg.train_fraction = f;
        // Below 1 only the table is wanted; at 1 the run is an ordinary `finetune` run (the
        // same configuration, so an existing run of it is reused fold by fold).
        cfg.final_model = f >= 1.0;
        let dir = out.join(format!("frac-{f}"));
        let r = finetune(&cfg, &dir, device, &mut |e| on(f, e))?;
        for a in r.summary.iter().filter(|a| a.level == "window") {
            let p = CurvePoint {
                fraction: f,
                macro_f1: a.macro_f1,
                auroc: a.auroc,
                balanced_accuracy: a.balanced_accuracy,
                folds: a.folds,
            };
            match methods.iter_mut().find(|m| m.method == a.method) {
                Some(m) => m.points.push(p),
                None => methods.push(MethodCurve {
                    method: a.method,
                    points: vec![p],
                }),
            }
        }
        last = Some(r);
    }
    let r = last.ok_or_else(|| TrainError::Data("‹fractions›: nothing to run".into()))?;
    let c = Curve {
        corpus: r.corpus.clone(),
        task: r.task.clone(),
        label_rule: r.label_rule.clone(),
        calibration: r.calibration_rule.clone(),
        protocol: r.protocol,
        folds: r.folds,
        seed: r.seed,
        pretrained: r.pretrained.clone(),
        fraction_rule: "fraction of each training fold's labeled trials kept (whole trials, seeded; the same for every method); validation and test people untouched".into(),
        fractions,
        methods,
    };
    write_json_atomic(&out.join("curve.json"), &c)?;
    write_atomic(&out.join("curve.md"), markdown(&c).as_bytes())?;
    write_atomic(&out.join("curve.svg"), svg(&c).as_bytes())?;
    Ok(c)
}

/// The curve as a Markdown table: one row per fraction, macro-F1 and AUROC per method.
pub fn markdown(c: &Curve) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Label efficiency: {}\n", c.task);
    let _ = writeln!(s, "- **Labels**: {}", c.label_rule);
    let _ = writeln!(s, "- **Calibration**: {}", c.calibration);
    let _ = writeln!(
        s,
        "- **Protocol**: {}, {} folds, seed {}; pre-trained weights: {}",
        c.protocol, c.folds, c.seed, c.pretrained
    );
    let _ = writeln!(s, "- **Fraction**: {}\n", c.fraction_rule);
    let _ = write!(s, "| labeled fraction |");
    for m in &c.methods {
        let _ = write!(s, " {} macro-F1 | {} AUROC |", m.method, m.method);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---|---|".repeat(c.methods.len()));
    for &f in &c.fractions {
        let _ = write!(s, "| {f} |");
        for m in &c.methods {
            match m.points.iter().find(|p| p.fraction == f) {
                Some(p) => {
                    let _ = write!(s, " {} | {} |", pm_or_zero(p.macro_f1), pm_or_zero(p.auroc));
                }
                None => {
                    let _ = write!(s, " n/a | n/a |");
                }
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\nWindow level, mean ± sample standard deviation over folds."
    );
    s
}

/// Two panels (macro-F1, AUROC) against the labeled fraction on a log axis, ± std bars.
pub fn svg(c: &Curve) -> String {
    let series: Vec<Series> = c
        .methods
        .iter()
        .map(|m| Series {
            method: m.method.name(),
            points: m
                .points
                .iter()
                .map(|p| (p.fraction, p.macro_f1, p.auroc))
                .collect(),
        })
        .collect();
    label_efficiency(
        &format!(
            "{} — labeled fraction vs window-level score (± std over {} folds; {})",
            c.task, c.folds, c.label_rule
        ),
        &c.fractions,
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_outside_the_unit_interval_are_refused() {
        for bad in [[0.0].as_slice(), &[1.5], &[-0.1], &[f64::NAN], &[]] {
            let e = check_fractions(bad).unwrap_err().to_string();
            assert!(e.contains("‹fractions›"), "{e}");
        }
        assert_eq!(check_fractions(&[1.0, 0.1, 0.1]).unwrap(), vec![0.1, 1.0]);
    }

    #[test]
    fn markdown_and_svg_name_every_method_and_fraction() {
        let pt = |f: f64, v: f64| CurvePoint {
            fraction: f,
            macro_f1: [v, 0.05],
            auroc: [v + 0.1, 0.02],
            balanced_accuracy: [v, 0.05],
            folds: 5,
        };
        let c = Curve {
            corpus: "c".into(),
            task: Task::Arousal,
            label_rule: "high arousal = rating > 5".into(),
            calibration: "subject".into(),
            protocol: Protocol::SubjectIndependent,
            folds: 5,
            seed: 1,
            pretrained: "bundled".into(),
            fraction_rule: "f".into(),
            fractions: vec![0.1, 1.0],
            methods: vec![
                MethodCurve {
                    method: Method::Pretrained,
                    points: vec![pt(0.1, 0.6), pt(1.0, 0.7)],
                },
                MethodCurve {
                    method: Method::Hrv,
                    points: vec![pt(0.1, 0.55), pt(1.0, 0.65)],
                },
            ],
        };
        let md = markdown(&c);
        assert!(
            md.contains("| 0.1 | 0.600 ± 0.050 | 0.700 ± 0.020 | 0.550 ± 0.050 |"),
            "{md}"
        );
        assert!(md.contains("rating > 5"));
        let s = svg(&c);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 4);
        assert!(s.contains("pretrained") && s.contains("hrv"));
    }
}
