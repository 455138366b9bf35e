//! The label-efficiency figure (`curve.svg`): scores against the labeled fraction.

use std::fmt::Write as _;

use crate::esc;
use crate::svg::{open, CLOSE};

const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

/// One method's scores, each `[mean, std]` over folds, at each labeled fraction it ran.
pub struct Series<'a> {
    pub method: &'a str,
    /// (fraction, macro-F1, AUROC).
    pub points: Vec<(f64, [f64; 2], [f64; 2])>,
}

/// Two panels (macro-F1, AUROC) against the labeled fraction on a log axis, ± std bars.
pub fn label_efficiency(title: &str, fractions: &[f64], methods: &[Series]) -> String {
    let (pw, ph, left, top) = (380.0, 260.0, 60.0, 40.0);
    let w = left + 2.0 * (pw + 40.0);
    let h = top + ph + 70.0;
    let mut s = open(w, h);
    let _ = write!(
        s,
        r#"<text x="{left}" y="16" font-size="13">{}</text>"#,
        esc(title)
    );
    let fmin = fractions.first().copied().unwrap_or(0.1).min(0.999);
    let (lx0, lx1) = (fmin.ln(), 1f64.ln());
    for (panel, name) in ["macro-F1", "AUROC"].into_iter().enumerate() {
        let get = |p: &(f64, [f64; 2], [f64; 2])| if panel == 0 { p.1 } else { p.2 };
        let x0 = left + panel as f64 * (pw + 40.0);
        let (y0, y1) = (0.3, 1.0);
        let sx = |f: f64| {
            if (lx1 - lx0).abs() < 1e-12 {
                x0 + pw / 2.0
            } else {
                x0 + (f.ln() - lx0) / (lx1 - lx0) * pw
            }
        };
        let sy = |v: f64| top + ph - (v.clamp(y0, y1) - y0) / (y1 - y0) * ph;
        let _ = write!(
            s,
            r##"<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{}" y="{}">{name}</text>"##,
            x0 + 4.0,
            top + 14.0
        );
        for k in 0..=7 {
            let v = y0 + k as f64 * 0.1;
            let _ = write!(
                s,
                r##"<line x1="{x0}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.1}</text>"##,
                x0 + pw,
                x0 - 4.0,
                sy(v) + 4.0,
                y = sy(v),
            );
        }
        for &f in fractions {
            let _ = write!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{f}</text>"#,
                sx(f),
                top + ph + 14.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">fraction of labeled training trials (log scale)</text>"#,
            x0 + pw / 2.0,
            top + ph + 30.0
        );
        for (mi, m) in methods.iter().enumerate() {
            let col = COLORS[mi % COLORS.len()];
            let pts: Vec<(f64, [f64; 2])> = m
                .points
                .iter()
                .map(|p| (p.0, get(p)))
                .filter(|(_, v)| v[0].is_finite())
                .collect();
            let line: Vec<String> = pts
                .iter()
                .map(|(f, v)| format!("{:.1},{:.1}", sx(*f), sy(v[0])))
                .collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{col}" stroke-width="2" points="{}"/>"#,
                line.join(" ")
            );
            for (f, v) in &pts {
                let sd = if v[1].is_finite() { v[1] } else { 0.0 };
                let _ = write!(
                    s,
                    r#"<line x1="{x}" x2="{x}" y1="{}" y2="{}" stroke="{col}"/><circle cx="{x}" cy="{}" r="3" fill="{col}"/>"#,
                    sy(v[0] - sd),
                    sy(v[0] + sd),
                    sy(v[0]),
                    x = sx(*f)
                );
            }
        }
    }
    for (mi, m) in methods.iter().enumerate() {
        let col = COLORS[mi % COLORS.len()];
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" fill="{col}">■ {}</text>"#,
            left + mi as f64 * 110.0,
            h - 10.0,
            esc(m.method)
        );
    }
    s.push_str(CLOSE);
    s
}
