//! ECGSYN: a dynamical model for generating synthetic ECG signals.
//!
//! A trajectory on a limit cycle in (x, y) at the instantaneous heart rate; z is pushed by five
//! Gaussian events P, Q, R, S, T at fixed angles and relaxes to a baseline that wanders with
//! respiration. The RR intervals come from a process with a bimodal power spectrum: Mayer waves
//! (LF, about 0.1 Hz) and respiratory sinus arrhythmia (HF, about 0.25 Hz), whose power ratio is
//! the LF/HF ratio. On top: muscle noise (band-limited) and powerline interference.
//!
//! Reference: P. E. McSharry, G. D. Clifford, L. Tarassenko, L. A. Smith, "A dynamical model for
//! generating synthetic electrocardiogram signals", IEEE Trans. Biomed. Eng. 50(3), 289-294, 2003.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcgSynParams {
    /// Output sampling rate (Hz).
    pub fs: f64,
    pub duration_s: f64,
    pub hr_mean_bpm: f64,
    /// Standard deviation of the heart rate (bpm): sets SDNN/RMSSD.
    pub hr_std_bpm: f64,
    pub lf_hf: f64,
    pub lf_hz: f64,
    pub hf_hz: f64,
    /// Respiration rate (Hz): baseline wander and, through HF, RSA.
    pub resp_hz: f64,
    /// Peak-to-peak scale of the ECG in mV (R wave ~ 1.2 mV at 1.0).
    pub amplitude: f64,
    /// PQRST event amplitudes a_i (ECGSYN's defaults: 1.2, -5, 30, -7.5, 0.75).
    pub event_amplitude: [f64; 5],
    pub baseline_wander_mv: f64,
    pub muscle_noise_mv: f64,
    pub powerline_mv: f64,
    pub powerline_hz: f64,
}

impl Default for EcgSynParams {
    fn default() -> Self {
        EcgSynParams {
            fs: 256.0,
            duration_s: 60.0,
            hr_mean_bpm: 60.0,
            hr_std_bpm: 1.0,
            lf_hf: 0.5,
            lf_hz: 0.1,
            hf_hz: 0.25,
            resp_hz: 0.25,
            amplitude: 1.0,
            event_amplitude: [1.2, -5.0, 30.0, -7.5, 0.75],
            baseline_wander_mv: 0.1,
            muscle_noise_mv: 0.01,
            powerline_mv: 0.0,
            powerline_hz: 50.0,
        }
    }
}

/// RR intervals (s) sampled at 1 Hz with the bimodal spectrum (ECGSYN's `rrprocess`).
fn rr_process(p: &EcgSynParams, n: usize, rng: &mut Rng) -> Vec<f64> {
    let (c1, c2) = (0.01, 0.01);
    let sig2 = 1.0;
    let sig1 = p.lf_hf;
    let df = 1.0 / n as f64;
    // One-sided amplitude spectrum with random phases, Hermitian-symmetric, inverse DFT.
    let half = n / 2;
    let mut re = vec![0.0; n];
    let mut im = vec![0.0; n];
    for k in 1..=half {
        let f = k as f64 * df;
        let s = sig1 * (-(f - p.lf_hz).powi(2) / (2.0 * c1 * c1)).exp()
            / (2.0 * std::f64::consts::PI * c1 * c1).sqrt()
            + sig2 * (-(f - p.hf_hz).powi(2) / (2.0 * c2 * c2)).exp()
                / (2.0 * std::f64::consts::PI * c2 * c2).sqrt();
        let amp = (s / 2.0).sqrt();
        let phase = 2.0 * std::f64::consts::PI * rng.uniform();
        re[k] = amp * phase.cos();
        im[k] = amp * phase.sin();
        if k != n - k && n - k < n {
            re[n - k] = re[k];
            im[n - k] = -im[k];
        }
    }
    let mut x = vec![0.0; n];
    for (t, v) in x.iter_mut().enumerate() {
        let mut acc = 0.0;
        for k in 0..n {
            let a = 2.0 * std::f64::consts::PI * (k * t % n) as f64 / n as f64;
            acc += re[k] * a.cos() - im[k] * a.sin();
        }
        *v = acc / n as f64;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64)
        .sqrt()
        .max(1e-12);
    let rr_mean = 60.0 / p.hr_mean_bpm;
    let rr_std = 60.0 * p.hr_std_bpm / (p.hr_mean_bpm * p.hr_mean_bpm);
    x.iter()
        .map(|v| rr_mean + (v - mean) / sd * rr_std)
        .collect()
}

/// Generate `duration_s` of ECG (mV) at `fs`, and the R-peak sample indices.
pub fn ecgsyn(p: &EcgSynParams, rng: &mut Rng) -> (Vec<f32>, Vec<usize>) {
    let fs_int = (p.fs * 2.0).max(512.0);
    let n_out = (p.duration_s * p.fs).round() as usize;
    let n_int = (p.duration_s * fs_int).ceil() as usize + 2;
    // RR series at 1 Hz, long enough, a power of two for the spectrum's resolution.
    let n_rr = (p.duration_s * 1.5 + 64.0).max(256.0).log2().ceil().exp2() as usize;
    let rr = rr_process(p, n_rr, rng);
    // RR(t) held over each beat: build beat times, then an RR value per internal sample.
    let mut rr_at = Vec::with_capacity(n_int);
    let mut t_beat = 0.0f64;
    while rr_at.len() < n_int {
        // The RR process is sampled at 1 Hz: read it at the beat's time, not its index, so
        // that its LF and HF peaks stay at their frequencies whatever the heart rate.
        let pos = t_beat.min((rr.len() - 2) as f64);
        let j = pos.floor() as usize;
        let w = pos - j as f64;
        let r = (rr[j] * (1.0 - w) + rr[j + 1] * w).clamp(0.25, 2.5);
        let end = ((t_beat + r) * fs_int).round() as usize;
        while rr_at.len() < end.min(n_int) {
            rr_at.push(r);
        }
        t_beat += r;
    }
    let hrfact = (p.hr_mean_bpm / 60.0).sqrt();
    let hrfact2 = hrfact.sqrt();
    let pi = std::f64::consts::PI;
    let theta = [
        -pi / 3.0 * hrfact2,
        -pi / 12.0 * hrfact,
        0.0,
        pi / 12.0 * hrfact,
        pi / 2.0 * hrfact2,
    ];
    let b = [
        0.25 * hrfact,
        0.1 * hrfact,
        0.1 * hrfact,
        0.1 * hrfact,
        0.4 * hrfact,
    ];
    let a = p.event_amplitude;
    let dt = 1.0 / fs_int;
    let deriv = |t: f64, s: [f64; 3], rr_now: f64| -> [f64; 3] {
        let (x, y, z) = (s[0], s[1], s[2]);
        let alpha = 1.0 - (x * x + y * y).sqrt();
        let w = 2.0 * pi / rr_now;
        let th = y.atan2(x);
        let z0 = 0.005 * (2.0 * pi * p.resp_hz * t).sin();
        let mut dz = -(z - z0);
        for k in 0..5 {
            let mut d = th - theta[k];
            d = (d + pi).rem_euclid(2.0 * pi) - pi;
            dz -= a[k] * d * (-d * d / (2.0 * b[k] * b[k])).exp();
        }
        [alpha * x - w * y, alpha * y + w * x, dz]
    };
    let mut s: [f64; 3] = [-1.0, 0.0, 0.04];
    let mut z = Vec::with_capacity(n_int);
    let mut peaks_int = Vec::new();
    let mut prev_th = s[1].atan2(s[0]);
    for (k, &r) in rr_at.iter().enumerate().take(n_int) {
        let t = k as f64 * dt;
        let k1 = deriv(t, s, r);
        let s2 = [
            s[0] + 0.5 * dt * k1[0],
            s[1] + 0.5 * dt * k1[1],
            s[2] + 0.5 * dt * k1[2],
        ];
        let k2 = deriv(t + 0.5 * dt, s2, r);
        let s3 = [
            s[0] + 0.5 * dt * k2[0],
            s[1] + 0.5 * dt * k2[1],
            s[2] + 0.5 * dt * k2[2],
        ];
        let k3 = deriv(t + 0.5 * dt, s3, r);
        let s4 = [s[0] + dt * k3[0], s[1] + dt * k3[1], s[2] + dt * k3[2]];
        let k4 = deriv(t + dt, s4, r);
        for j in 0..3 {
            s[j] += dt / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
        let th = s[1].atan2(s[0]);
        // The R event is at angle 0: a crossing from below marks a beat.
        if prev_th < 0.0 && th >= 0.0 && prev_th > -pi / 2.0 {
            peaks_int.push(k);
        }
        prev_th = th;
        z.push(s[2]);
    }
    // Scale z to ECGSYN's -0.4..1.2 mV range, times the amplitude.
    let (zmin, zmax) = z
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = (zmax - zmin).max(1e-9);
    let ratio = fs_int / p.fs;
    let mut out = Vec::with_capacity(n_out);
    // Muscle noise: white noise smoothed over ~5 ms (broadband, most power well above the ECG).
    let mut muscle = 0.0;
    for i in 0..n_out {
        let t = i as f64 / p.fs;
        let zi = z[((i as f64 * ratio).round() as usize).min(z.len() - 1)];
        let ecg = ((zi - zmin) / span * 1.6 - 0.4) * p.amplitude;
        muscle = 0.6 * muscle + 0.4 * rng.normal();
        let v = ecg
            + p.baseline_wander_mv * (2.0 * pi * p.resp_hz * t).sin()
            + 0.3 * p.baseline_wander_mv * (2.0 * pi * 0.05 * t + 1.0).sin()
            + p.muscle_noise_mv * muscle
            + p.powerline_mv * (2.0 * pi * p.powerline_hz * t).sin();
        out.push(v as f32);
    }
    let peaks = peaks_int
        .iter()
        .map(|&k| (k as f64 / ratio).round() as usize)
        .filter(|&k| k < n_out)
        .collect();
    (out, peaks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ecg_clean, ecg_peaks_neurokit, hrv, CleanConfig};

    #[test]
    fn heart_rate_and_variability_follow_the_parameters() {
        let mut results = Vec::new();
        for (hr, std, lfhf) in [(60.0, 1.0, 0.5), (90.0, 3.0, 4.0)] {
            let p = EcgSynParams {
                duration_s: 300.0,
                hr_mean_bpm: hr,
                hr_std_bpm: std,
                lf_hf: lfhf,
                ..Default::default()
            };
            let (x, truth) = ecgsyn(&p, &mut Rng::new(3));
            assert_eq!(x.len(), 300 * 256);
            let clean = ecg_clean(&x, p.fs, &CleanConfig::default()).unwrap();
            let peaks = ecg_peaks_neurokit(&clean, p.fs);
            // The detector finds the generated beats.
            assert!(
                (peaks.len() as i64 - truth.len() as i64).abs() <= 2,
                "{} vs {}",
                peaks.len(),
                truth.len()
            );
            let h = hrv(&peaks, p.fs).unwrap();
            assert!(
                (h.mean_hr_bpm - hr).abs() < 3.0,
                "HR {} for {hr}",
                h.mean_hr_bpm
            );
            results.push(h);
        }
        assert!(
            results[1].sdnn_ms > 0.0 && results[1].lf_hf > results[0].lf_hf,
            "LF/HF {} vs {}",
            results[1].lf_hf,
            results[0].lf_hf
        );
    }

    #[test]
    fn same_seed_same_signal() {
        let p = EcgSynParams {
            duration_s: 5.0,
            ..Default::default()
        };
        assert_eq!(
            ecgsyn(&p, &mut Rng::new(9)).0,
            ecgsyn(&p, &mut Rng::new(9)).0
        );
        assert_ne!(
            ecgsyn(&p, &mut Rng::new(9)).0,
            ecgsyn(&p, &mut Rng::new(10)).0
        );
    }
}
