//! Heart rate and heart-rate variability from R-peaks.
//!
//! Time domain as defined by the Task Force of the ESC and NASPE, "Heart rate variability:
//! standards of measurement, physiological interpretation and clinical use", Circulation 93(5),
//! 1996: mean HR, SDNN (sample standard deviation of NN intervals), RMSSD, pNN50 (percentage of
//! successive differences above 50 ms). Frequency domain: the RR series interpolated at 4 Hz,
//! Welch periodogram (Hann window), power in LF 0.04-0.15 Hz and HF 0.15-0.4 Hz, LF/HF.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hrv {
    pub mean_hr_bpm: f64,
    pub sdnn_ms: f64,
    pub rmssd_ms: f64,
    pub pnn50_pct: f64,
    pub lf_ms2: f64,
    pub hf_ms2: f64,
    pub lf_hf: f64,
}

impl Hrv {
    pub const NAMES: [&'static str; 7] = [
        "mean_hr_bpm",
        "sdnn_ms",
        "rmssd_ms",
        "pnn50_pct",
        "lf_ms2",
        "hf_ms2",
        "lf_hf",
    ];

    pub fn to_vec(&self) -> Vec<f64> {
        vec![
            self.mean_hr_bpm,
            self.sdnn_ms,
            self.rmssd_ms,
            self.pnn50_pct,
            self.lf_ms2,
            self.hf_ms2,
            self.lf_hf,
        ]
    }
}

/// RR intervals in ms from peak indices.
pub fn rr_intervals_ms(peaks: &[usize], fs: f64) -> Vec<f64> {
    // Divide, then scale, as NeuroKit2 does: RR differences of exactly 50 ms then compare alike.
    peaks
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / fs * 1000.0)
        .collect()
}

/// HRV from peak indices; `None` with fewer than 3 peaks.
pub fn hrv(peaks: &[usize], fs: f64) -> Option<Hrv> {
    let rr = rr_intervals_ms(peaks, fs);
    if rr.len() < 2 {
        return None;
    }
    let n = rr.len() as f64;
    let mean = rr.iter().sum::<f64>() / n;
    let sdnn = (rr.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let diffs: Vec<f64> = rr.windows(2).map(|w| w[1] - w[0]).collect();
    let rmssd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
    // Task Force: NN50 over the number of NN intervals (not of differences).
    let pnn50 = 100.0 * diffs.iter().filter(|d| d.abs() > 50.0).count() as f64 / rr.len() as f64;
    let (lf, hf) = lf_hf_power(peaks, fs, &rr);
    Some(Hrv {
        mean_hr_bpm: 60_000.0 / mean,
        sdnn_ms: sdnn,
        rmssd_ms: rmssd,
        pnn50_pct: pnn50,
        lf_ms2: lf,
        hf_ms2: hf,
        lf_hf: if hf > 0.0 { lf / hf } else { f64::NAN },
    })
}

/// LF and HF power (ms^2) of the RR series, linearly interpolated at 4 Hz.
fn lf_hf_power(peaks: &[usize], fs: f64, rr: &[f64]) -> (f64, f64) {
    const FS_RR: f64 = 4.0;
    let t: Vec<f64> = peaks[1..].iter().map(|&p| p as f64 / fs).collect();
    let (t0, t1) = (t[0], t[t.len() - 1]);
    let n = ((t1 - t0) * FS_RR).floor() as usize + 1;
    if n < 16 {
        return (f64::NAN, f64::NAN);
    }
    let mut series = Vec::with_capacity(n);
    let mut j = 0;
    for i in 0..n {
        let ti = t0 + i as f64 / FS_RR;
        while j + 1 < t.len() - 1 && t[j + 1] < ti {
            j += 1;
        }
        let (ta, tb) = (t[j], t[(j + 1).min(t.len() - 1)]);
        let w = if tb > ta {
            ((ti - ta) / (tb - ta)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        series.push(rr[j] * (1.0 - w) + rr[(j + 1).min(rr.len() - 1)] * w);
    }
    let mean = series.iter().sum::<f64>() / n as f64;
    for v in &mut series {
        *v -= mean;
    }
    // Welch: Hann segments of up to 256 samples (64 s), 50% overlap, one-sided density.
    let seg = n.min(256);
    let step = (seg / 2).max(1);
    let window: Vec<f64> = (0..seg)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / seg as f64).cos())
        .collect();
    let wpow: f64 = window.iter().map(|w| w * w).sum();
    let nfreq = seg / 2 + 1;
    let mut psd = vec![0.0; nfreq];
    let mut count = 0;
    let mut start = 0;
    while start + seg <= n {
        for (k, p) in psd.iter_mut().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for i in 0..seg {
                let a = -2.0 * std::f64::consts::PI * (k * i) as f64 / seg as f64;
                let v = series[start + i] * window[i];
                re += v * a.cos();
                im += v * a.sin();
            }
            let mut d = (re * re + im * im) / (FS_RR * wpow);
            if k != 0 && !(seg.is_multiple_of(2) && k == nfreq - 1) {
                d *= 2.0;
            }
            *p += d;
        }
        count += 1;
        start += step;
    }
    let df = FS_RR / seg as f64;
    let band = |lo: f64, hi: f64| -> f64 {
        psd.iter()
            .enumerate()
            .filter(|(k, _)| (*k as f64 * df) >= lo && (*k as f64 * df) < hi)
            .map(|(_, p)| p / count as f64 * df)
            .sum()
    };
    (band(0.04, 0.15), band(0.15, 0.4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_domain_by_hand() {
        // RR = 1000, 800, 1100 ms at fs = 1000.
        let h = hrv(&[0, 1000, 1800, 2900], 1000.0).unwrap();
        assert!((h.mean_hr_bpm - 60_000.0 / (2900.0 / 3.0)).abs() < 1e-9);
        let m: f64 = 2900.0 / 3.0;
        let sd = (((1000.0 - m).powi(2) + (800.0 - m).powi(2) + (1100.0 - m).powi(2)) / 2.0).sqrt();
        assert!((h.sdnn_ms - sd).abs() < 1e-9);
        assert!((h.rmssd_ms - ((200.0f64.powi(2) + 300.0f64.powi(2)) / 2.0).sqrt()).abs() < 1e-9);
        assert!((h.pnn50_pct - 200.0 / 3.0).abs() < 1e-9, "2 of 3 intervals");
    }

    #[test]
    fn lf_and_hf_follow_the_modulation() {
        // RR modulated at 0.1 Hz (LF) or 0.3 Hz (HF), 5 minutes.
        for (f, lf_dominant) in [(0.1, true), (0.3, false)] {
            let mut peaks = vec![0usize];
            let mut t = 0.0;
            while t < 300.0 {
                let rr = 0.8 + 0.05 * (2.0 * std::f64::consts::PI * f * t).sin();
                t += rr;
                peaks.push((t * 1000.0) as usize);
            }
            let h = hrv(&peaks, 1000.0).unwrap();
            assert_eq!(h.lf_hf > 1.0, lf_dominant, "{f} Hz: LF/HF = {}", h.lf_hf);
        }
    }
}
