//! Pre-training figures: the loss curve and masked reconstructions (`loss.svg`,
//! `reconstructions.svg`).

use crate::svg::open_lines;

fn polyline(
    points: &[(f64, f64)],
    (x0, x1, y0, y1): (f64, f64, f64, f64),
    w: f64,
    h: f64,
    color: &str,
) -> String {
    let sx = |x: f64| 50.0 + (x - x0) / (x1 - x0).max(1e-12) * (w - 70.0);
    let sy = |y: f64| h - 30.0 - (y - y0) / (y1 - y0).max(1e-12) * (h - 50.0);
    let pts: Vec<String> = points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
        .collect();
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
        pts.join(" ")
    )
}

/// Train and validation loss against step, with the mean-prediction baseline.
pub fn loss_curve(train: &[(f64, f64)], val: &[(f64, f64)], baseline: Option<f64>) -> String {
    let (w, h) = (720.0, 360.0);
    let all: Vec<f64> = train
        .iter()
        .chain(val)
        .map(|p| p.1)
        .chain(baseline)
        .filter(|v| v.is_finite())
        .collect();
    let (y0, y1) = (0.0, all.iter().cloned().fold(0.0f64, f64::max) * 1.05);
    let x1 = train.iter().chain(val).map(|p| p.0).fold(1.0f64, f64::max);
    let r = (0.0, x1, y0, y1);
    let mut s = open_lines(w, h);
    s += &format!("<text x=\"50\" y=\"16\">masked reconstruction loss (MSE on z-scored windows) vs step; max {y1:.3}</text>\n");
    s += &polyline(train, r, w, h, "#1f77b4");
    s += "\n";
    s += &polyline(val, r, w, h, "#d62728");
    if let Some(b) = baseline {
        s += &polyline(&[(0.0, b), (x1, b)], r, w, h, "#7f7f7f");
    }
    s += &format!("\n<text x=\"50\" y=\"{}\" fill=\"#1f77b4\">train</text><text x=\"110\" y=\"{}\" fill=\"#d62728\">validation</text><text x=\"200\" y=\"{}\" fill=\"#7f7f7f\">predict the window mean</text><text x=\"{}\" y=\"{}\">step {x1:.0}</text>\n</svg>\n", h - 8.0, h - 8.0, h - 8.0, w - 90.0, h - 8.0);
    s
}

/// Windows with their masked spans shaded and the reconstruction over them.
pub fn reconstructions(
    rows: &[(Vec<f32>, Vec<bool>, Vec<f32>)],
    samples_per_token: usize,
) -> String {
    let (w, row_h) = (900.0, 160.0);
    let h = row_h * rows.len() as f64 + 30.0;
    let mut s = open_lines(w, h);
    s += "<text x=\"10\" y=\"16\">validation windows: original (black), hidden tokens (grey), reconstruction of the hidden tokens (red)</text>\n";
    for (k, (x, mask, recon)) in rows.iter().enumerate() {
        let top = 30.0 + k as f64 * row_h;
        let n = x.len() as f64;
        let (lo, hi) = x
            .iter()
            .chain(recon.iter())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let sx = |i: f64| 10.0 + i / n * (w - 20.0);
        let sy =
            |v: f32| top + row_h - 10.0 - ((v - lo) / (hi - lo).max(1e-6)) as f64 * (row_h - 20.0);
        for (t, &m) in mask.iter().enumerate() {
            if m {
                let a = sx((t * samples_per_token) as f64);
                let b = sx(((t + 1) * samples_per_token) as f64);
                s += &format!("<rect x=\"{a:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{}\" fill=\"#dddddd\"/>", b - a, row_h - 5.0);
            }
        }
        let line = |v: &[f32], pick: &dyn Fn(usize) -> bool, color: &str| -> String {
            let mut out = String::new();
            let mut seg: Vec<String> = Vec::new();
            for (i, &val) in v.iter().enumerate() {
                if pick(i) {
                    seg.push(format!("{:.1},{:.1}", sx(i as f64), sy(val)));
                } else if !seg.is_empty() {
                    out += &format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1\" points=\"{}\"/>", seg.join(" "));
                    seg.clear();
                }
            }
            if !seg.is_empty() {
                out += &format!(
                    "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1\" points=\"{}\"/>",
                    seg.join(" ")
                );
            }
            out
        };
        s += &line(x, &|_| true, "black");
        s += &line(
            recon,
            &|i| mask.get(i / samples_per_token).copied().unwrap_or(false),
            "#d62728",
        );
        s += "\n";
    }
    s += "</svg>\n";
    s
}
