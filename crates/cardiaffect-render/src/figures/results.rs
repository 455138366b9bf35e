//! Cross-validation figures: confusion matrices and per-fold scores (`confusion.svg`,
//! `folds.svg`).

use std::fmt::Write as _;

use crate::esc;
use crate::svg::{open, CLOSE};

/// One method's confusion matrix (rows: true class, columns: predicted).
pub struct Confusion<'a> {
    pub method: &'a str,
    pub cells: Vec<Vec<usize>>,
}

/// One panel per method, each cell shaded by its share of its row.
#[allow(clippy::needless_range_loop)] // cells are addressed by (true, predicted)
pub fn confusion(title: &str, rule: &str, classes: &[String], panels: &[Confusion]) -> String {
    let k = classes.len();
    let cell = 46.0;
    let panel = 120.0 + cell * k as f64;
    let (w, h) = (
        (panel * panels.len() as f64 + 20.0).max(760.0),
        120.0 + cell * k as f64 + 40.0,
    );
    let mut s = open(w, h);
    let _ = write!(
        s,
        r#"<text x="10" y="16" font-size="13">{}</text>"#,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<text x="10" y="32" fill="#555">{}</text>"##,
        esc(rule)
    );
    for (mi, p) in panels.iter().enumerate() {
        let c = &p.cells;
        let x0 = 10.0 + mi as f64 * panel + 100.0;
        let y0 = 70.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="12" font-weight="bold">{}</text>"#,
            x0,
            y0 - 18.0,
            esc(p.method)
        );
        for i in 0..k {
            let total: usize = c[i].iter().sum::<usize>().max(1);
            let _ = write!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                x0 - 4.0,
                y0 + cell * (i as f64 + 0.55),
                esc(&classes[i])
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
    s.push_str(CLOSE);
    s
}

/// One score of one method on one fold (0-based indices into the figure's methods and folds).
pub struct Bar {
    pub method: usize,
    pub fold: usize,
    pub value: f64,
}

/// Scores in [0, 1] per fold, one bar per method, with a legend.
pub fn fold_bars(title: &str, rule: &str, folds: usize, methods: &[&str], bars: &[Bar]) -> String {
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    let bw = 14.0;
    let gw = bw * methods.len() as f64 + 16.0;
    let (pl, pt, ph) = (50.0, 50.0, 200.0);
    let w = (pl + gw * folds as f64 + 160.0).max(760.0);
    let h = pt + ph + 40.0;
    let mut s = open(w, h);
    let _ = write!(
        s,
        r##"<text x="10" y="16" font-size="13">{}</text><text x="10" y="32" fill="#555">{}</text>"##,
        esc(title),
        esc(rule)
    );
    for t in 0..=4 {
        let v = t as f64 / 4.0;
        let y = pt + ph * (1.0 - v);
        let _ = write!(
            s,
            r##"<line x1="{pl}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.2}</text>"##,
            pl + gw * folds as f64,
            pl - 4.0,
            y + 4.0
        );
    }
    for b in bars {
        let v = if b.value.is_finite() { b.value } else { 0.0 };
        let x = pl + gw * b.fold as f64 + 8.0 + bw * b.method as f64;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="{}" height="{}" fill="{}"/>"#,
            pt + ph * (1.0 - v),
            bw - 2.0,
            ph * v,
            colors[b.method % colors.len()]
        );
    }
    for fold in 0..folds {
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
        let x = pl + gw * folds as f64 + 10.0;
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
    s.push_str(CLOSE);
    s
}
