//! A model applied to a recording (`predict --out F`: `F.svg`, `F_attention.svg`).

use std::fmt::Write as _;

use crate::esc;
use crate::svg::{open, path_d};

/// What the timeline figure shows.
pub struct Timeline<'a> {
    /// e.g. "208.hea — subject 208 trial 208".
    pub title: String,
    /// The first seconds of the band-passed ECG, at `fs`.
    pub strip: &'a [f32],
    pub fs: f64,
    /// Per window: (start s, end s, heart rate bpm).
    pub windows: Vec<(f64, f64, f64)>,
    /// Per model: the class whose probability is drawn, and its probability per window.
    pub probabilities: Vec<(&'a str, Vec<f64>)>,
    /// What the probabilities are relative to, said after their panel's title
    /// ("relative to this recording"), where that is not the trained population.
    pub note: Option<String>,
}

/// ECG strip, heart rate and probabilities over time, as one SVG.
pub fn timeline(t: &Timeline) -> String {
    let (w, ph) = (900.0, 150.0);
    let h = 40.0 + 3.0 * (ph + 30.0);
    let mut s = open(w, h);
    let _ = write!(
        s,
        r#"<text x="10" y="16" font-size="13">{}</text>"#,
        esc(&t.title)
    );
    let panel = |s: &mut String,
                 k: usize,
                 title: &str,
                 ys: &[(f64, f64)],
                 lo: f64,
                 hi: f64,
                 x1: f64,
                 color: &str| {
        let top = 40.0 + k as f64 * (ph + 30.0);
        let _ = write!(
            s,
            r##"<text x="50" y="{}" fill="#333">{}</text><rect x="50" y="{}" width="{}" height="{ph}" fill="none" stroke="#ccc"/>"##,
            top - 4.0,
            esc(title),
            top,
            w - 70.0
        );
        let _ = write!(
            s,
            r#"<text x="46" y="{}" text-anchor="end">{hi:.2}</text><text x="46" y="{}" text-anchor="end">{lo:.2}</text>"#,
            top + 10.0,
            top + ph
        );
        let d = path_d(ys.iter().filter(|(_, y)| y.is_finite()).map(|&(x, y)| {
            (
                50.0 + (w - 70.0) * x / x1.max(1e-9),
                top + ph * (1.0 - ((y - lo) / (hi - lo).max(1e-9)).clamp(0.0, 1.0)),
            )
        }));
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1"/>"#
        );
    };
    let fs = t.fs;
    let strip: Vec<(f64, f64)> = t
        .strip
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64 / fs, v as f64))
        .collect();
    let (lo, hi) = strip
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &(_, v)| (a.min(v), b.max(v)));
    panel(
        &mut s,
        0,
        &format!(
            "ECG, first {:.0} s (band-passed, {fs} Hz)",
            strip.len() as f64 / fs
        ),
        &strip,
        lo,
        hi,
        strip.len() as f64 / fs,
        "#222",
    );
    let end = t.windows.last().map(|r| r.1).unwrap_or(1.0);
    let hr: Vec<(f64, f64)> = t.windows.iter().map(|r| ((r.0 + r.1) / 2.0, r.2)).collect();
    let (hlo, hhi) = hr
        .iter()
        .filter(|v| v.1.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), &(_, v)| (a.min(v), b.max(v)));
    panel(
        &mut s,
        1,
        "heart rate (bpm) per window",
        &hr,
        (hlo - 5.0).min(hhi),
        hhi + 5.0,
        end,
        "#c00",
    );
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];
    let mut title = String::from("probability per window: ");
    for (mi, (class, probs)) in t.probabilities.iter().enumerate() {
        let p: Vec<(f64, f64)> = t
            .windows
            .iter()
            .zip(probs)
            .map(|(r, &p)| ((r.0 + r.1) / 2.0, p))
            .collect();
        panel(&mut s, 2, "", &p, 0.0, 1.0, end, colors[mi % colors.len()]);
        let _ = write!(title, "{}P({class}) ", if mi > 0 { "· " } else { "" });
    }
    if let Some(n) = &t.note {
        let _ = write!(title, "— {n}");
    }
    let top = 40.0 + 2.0 * (ph + 30.0);
    let _ = write!(
        s,
        r##"<text x="50" y="{}" fill="#333">{}</text><text x="{}" y="{}" text-anchor="end" fill="#555">time (s), 0-{end:.0}</text></svg>"##,
        top - 4.0,
        esc(&title),
        w - 20.0,
        top + ph + 16.0
    );
    s
}

/// Where a model's summary token looks in one window.
pub struct Attention<'a> {
    /// e.g. "208.hea — subject 208 trial 208: the window at 12.0 s".
    pub title: String,
    pub start_s: f64,
    pub fs: f64,
    /// The window's samples (z-scored or not: drawn to fit).
    pub window: &'a [f32],
    /// Attention to each signal token.
    pub tokens: &'a [f32],
    pub layer: usize,
    pub heads: usize,
}

/// One window's ECG with the attention over its tokens shaded behind it, as one SVG.
pub fn attention(a: &Attention) -> String {
    let (w, top, ph) = (900.0, 56.0, 220.0);
    let h = top + ph + 40.0;
    let x0 = 50.0;
    let pw = w - 70.0;
    let mut s = open(w, h);
    let _ = write!(
        s,
        r##"<text x="10" y="16" font-size="13">{}</text><text x="10" y="34" fill="#555">shade: attention of the CLS token to each signal token, layer {} (the last), mean over {} heads; darker = more (what the summary looks at, not a causal explanation)</text>"##,
        esc(&a.title),
        a.layer,
        a.heads
    );
    let n = a.tokens.len().max(1);
    let max = a.tokens.iter().cloned().fold(f32::MIN_POSITIVE, f32::max);
    let tw = pw / n as f64;
    for (i, &v) in a.tokens.iter().enumerate() {
        let _ = write!(
            s,
            r##"<rect x="{:.2}" y="{top}" width="{:.2}" height="{ph}" fill="#d9480f" fill-opacity="{:.3}"/>"##,
            x0 + i as f64 * tw,
            tw + 0.05,
            0.85 * (v / max).clamp(0.0, 1.0)
        );
    }
    let (lo, hi) = a
        .window
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let m = a.window.len().max(2);
    let d = path_d(a.window.iter().enumerate().map(|(i, &v)| {
        (
            x0 + pw * i as f64 / (m - 1) as f64,
            top + ph * (1.0 - ((v - lo) / (hi - lo).max(1e-9)) as f64),
        )
    }));
    let _ = write!(
        s,
        r##"<path d="{d}" fill="none" stroke="#1c1c1c" stroke-width="0.8"/><rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/><text x="{x0}" y="{}" fill="#555">{:.1} s</text><text x="{}" y="{}" text-anchor="end" fill="#555">{:.1} s ({} tokens of {} samples at {} Hz)</text></svg>"##,
        top + ph + 16.0,
        a.start_s,
        x0 + pw,
        top + ph + 16.0,
        a.start_s + a.window.len() as f64 / a.fs,
        a.tokens.len(),
        a.window.len() / n,
        a.fs
    );
    s
}
