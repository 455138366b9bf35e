//! The SVG documents' frame: one white page, sans-serif, in one of two layouts.

/// A figure's opening: width, height, font size 11 on one line (results and prediction
/// figures); close it with [`CLOSE`].
pub fn open(w: f64, h: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#
    )
}

/// A figure's opening with font size 12 and one element per line (training figures).
pub fn open_lines(w: f64, h: f64) -> String {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n")
}

pub const CLOSE: &str = "</svg>";

/// An SVG path through `points` (`M x,y L x,y …`, one decimal), skipping non-finite values.
pub fn path_d(points: impl IntoIterator<Item = (f64, f64)>) -> String {
    use std::fmt::Write as _;
    let mut d = String::new();
    for (px, py) in points {
        if !(px.is_finite() && py.is_finite()) {
            continue;
        }
        let _ = write!(
            d,
            "{}{px:.1},{py:.1} ",
            if d.is_empty() { "M" } else { "L" }
        );
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_well_formed() {
        let s = open(10.0, 20.0) + CLOSE;
        assert!(s.starts_with("<svg") && s.contains(r#"width="10""#) && s.ends_with("</svg>"));
        assert!(open_lines(1.0, 2.0).ends_with("fill=\"white\"/>\n"));
        assert_eq!(
            path_d([(0.0, 1.0), (f64::NAN, 2.0), (2.0, 3.04)]),
            "M0.0,1.0 L2.0,3.0 "
        );
    }
}
