//! Text inside figures, tables and pages.

/// Escape text for SVG and HTML (element text and attribute values).
pub fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `mean ± std` with three decimals; `n/a` without a mean.
pub fn pm(v: [f64; 2]) -> String {
    if v[0].is_finite() {
        format!("{:.3} ± {:.3}", v[0], v[1])
    } else {
        "n/a".into()
    }
}

/// As [`pm`], with an undefined spread (one fold) written as 0.
pub fn pm_or_zero(v: [f64; 2]) -> String {
    pm([v[0], if v[1].is_finite() { v[1] } else { 0.0 }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_spreads_written() {
        assert_eq!(esc(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
        assert_eq!(pm([0.5, 0.25]), "0.500 ± 0.250");
        assert_eq!(pm([f64::NAN, 0.1]), "n/a");
        assert_eq!(pm([0.5, f64::NAN]), "0.500 ± NaN");
        assert_eq!(pm_or_zero([0.5, f64::NAN]), "0.500 ± 0.000");
    }
}
