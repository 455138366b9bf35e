//! Zero-phase IIR filtering: Butterworth band-pass / low-pass / high-pass in second-order
//! sections, the IIR notch, and forward-backward filtering with odd padding.
//!
//! Designed to give the same numbers as `scipy.signal.butter(N, Wn, btype, output='sos', fs=fs)`
//! followed by `scipy.signal.sosfiltfilt(sos, x)` (and `iirnotch` + `filtfilt`): analog
//! Butterworth prototype, frequency transform, bilinear transform with pre-warping, sections of
//! conjugate pole pairs, gain on the first section; odd extension of 3 x (2 x sections + 1) samples,
//! initial conditions from the step response steady state (`sosfilt_zi`).
//!
//! References: S. Butterworth, "On the theory of filter amplifiers", Wireless Engineer 7, 1930;
//! F. Gustafsson, "Determining the initial states in forward-backward filtering", IEEE TSP 44(4),
//! 1996 (the padding scheme scipy and MATLAB use).

use num_complex::Complex64 as C;
use std::f64::consts::PI;

use crate::SignalError;

/// One biquad: `[b0, b1, b2, a0, a1, a2]` with `a0 = 1`, scipy's sos row layout.
pub type Sos = [f64; 6];

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Band {
    LowPass(f64),
    HighPass(f64),
    BandPass(f64, f64),
}

/// Butterworth filter of order `order` for `band` (Hz) at sampling rate `fs`, as sections.
pub fn butter_sos(order: usize, band: Band, fs: f64) -> Result<Vec<Sos>, SignalError> {
    if order == 0 || order > 24 {
        return Err(SignalError::Config {
            field: "order",
            expected: "1 to 24".into(),
            found: order.to_string(),
        });
    }
    let nyq = fs / 2.0;
    let check = |f: f64, name: &'static str| -> Result<f64, SignalError> {
        if f > 0.0 && f < nyq {
            Ok(f)
        } else {
            Err(SignalError::Config {
                field: name,
                expected: format!("a frequency between 0 and the Nyquist frequency {nyq} Hz (sampling rate {fs} Hz)"),
                found: format!("{f} Hz"),
            })
        }
    };
    // Analog prototype: poles on the left half unit circle, no zeros.
    let n = order as i64;
    let p: Vec<C> = (0..order)
        .map(|i| {
            let m = (-n + 1 + 2 * i as i64) as f64;
            -(C::new(0.0, PI * m / (2.0 * n as f64))).exp()
        })
        .collect();
    // Pre-warp: digital frequencies normalised to Nyquist, bilinear with fs = 2.
    let warp = |f: f64| 4.0 * (PI * (f / nyq) / 2.0).tan();
    let (z_a, p_a, k_a): (Vec<C>, Vec<C>, f64) = match band {
        Band::LowPass(f) => {
            let wo = warp(check(f, "cutoff")?);
            (
                vec![],
                p.iter().map(|&x| x * wo).collect(),
                wo.powi(order as i32),
            )
        }
        Band::HighPass(f) => {
            let wo = warp(check(f, "cutoff")?);
            let prod: C = p.iter().fold(C::new(1.0, 0.0), |acc, &x| acc * (-x));
            let k = (C::new(1.0, 0.0) / prod).re;
            (
                vec![C::new(0.0, 0.0); order],
                p.iter().map(|&x| wo / x).collect(),
                k,
            )
        }
        Band::BandPass(lo, hi) => {
            let (lo, hi) = (check(lo, "low cutoff")?, check(hi, "high cutoff")?);
            if lo >= hi {
                return Err(SignalError::Config {
                    field: "band",
                    expected: "low cutoff below high cutoff".into(),
                    found: format!("{lo}-{hi} Hz"),
                });
            }
            let (w1, w2) = (warp(lo), warp(hi));
            let bw = w2 - w1;
            let wo = (w1 * w2).sqrt();
            let mut pb = Vec::with_capacity(2 * order);
            for &x in &p {
                let pl = x * (bw / 2.0);
                let s = (pl * pl - wo * wo).sqrt();
                pb.push(pl + s);
                pb.push(pl - s);
            }
            (vec![C::new(0.0, 0.0); order], pb, bw.powi(order as i32))
        }
    };
    // Bilinear transform (fs = 2, so 2 * fs = 4).
    let fs2 = 4.0;
    let zd: Vec<C> = z_a.iter().map(|&z| (fs2 + z) / (fs2 - z)).collect();
    let pd: Vec<C> = p_a.iter().map(|&x| (fs2 + x) / (fs2 - x)).collect();
    let degree = p_a.len() - z_a.len();
    let mut zd = zd;
    zd.extend(std::iter::repeat_n(C::new(-1.0, 0.0), degree));
    let num: C = z_a.iter().fold(C::new(1.0, 0.0), |acc, &z| acc * (fs2 - z));
    let den: C = p_a.iter().fold(C::new(1.0, 0.0), |acc, &x| acc * (fs2 - x));
    let k = k_a * (num / den).re;
    Ok(zpk_to_sos(&zd, &pd, k))
}

/// Pair poles into sections (conjugate pairs, most resonant last, as scipy's `nearest`
/// pairing does) with zeros nearest to them; gain goes to the first section.
fn zpk_to_sos(z: &[C], p: &[C], k: f64) -> Vec<Sos> {
    // Poles with non-negative imaginary part represent their pair; real poles pair up.
    let mut complex: Vec<C> = p.iter().copied().filter(|x| x.im > 1e-14).collect();
    let mut real: Vec<f64> = p
        .iter()
        .filter(|x| x.im.abs() <= 1e-14)
        .map(|x| x.re)
        .collect();
    // Least resonant first (farthest from the unit circle), as scipy orders sections.
    complex.sort_by(|a, b| {
        (1.0 - a.norm())
            .abs()
            .total_cmp(&(1.0 - b.norm()).abs())
            .reverse()
    });
    real.sort_by(|a, b| {
        (1.0 - a.abs())
            .abs()
            .total_cmp(&(1.0 - b.abs()).abs())
            .reverse()
    });
    let mut zeros: Vec<C> = z.to_vec();
    let mut take_zero = |target: C| -> Option<C> {
        if zeros.is_empty() {
            return None;
        }
        let (i, _) = zeros
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| (**a - target).norm().total_cmp(&(**b - target).norm()))?;
        Some(zeros.remove(i))
    };
    let mut sections: Vec<Sos> = Vec::new();
    let mut push = |poles: [Option<C>; 2], zs: [Option<C>; 2]| {
        let poly = |r: [Option<C>; 2]| -> [f64; 3] {
            match r {
                [Some(a), Some(b)] => [1.0, -(a + b).re, (a * b).re],
                [Some(a), None] | [None, Some(a)] => [1.0, -a.re, 0.0],
                [None, None] => [1.0, 0.0, 0.0],
            }
        };
        let b = poly(zs);
        let a = poly(poles);
        sections.push([b[0], b[1], b[2], a[0], a[1], a[2]]);
    };
    for &c in &complex {
        let z1 = take_zero(c);
        let z2 = take_zero(c.conj());
        push([Some(c), Some(c.conj())], [z1, z2]);
    }
    let mut it = real.chunks(2);
    for pair in &mut it {
        let a = C::new(pair[0], 0.0);
        let b = pair.get(1).map(|&x| C::new(x, 0.0));
        let z1 = take_zero(a);
        let z2 = if b.is_some() {
            take_zero(b.unwrap_or(a))
        } else {
            None
        };
        push([Some(a), b], [z1, z2]);
    }
    // scipy lists the most resonant section last; we built least-resonant first already.
    if let Some(first) = sections.first_mut() {
        for v in first.iter_mut().take(3) {
            *v *= k;
        }
    }
    sections
}

/// Second-order IIR notch at `f0` Hz with quality factor `q` (scipy `iirnotch`).
pub fn iirnotch_sos(f0: f64, q: f64, fs: f64) -> Result<Sos, SignalError> {
    if !(f0 > 0.0 && f0 < fs / 2.0) {
        return Err(SignalError::Config {
            field: "notch",
            expected: format!("a frequency below {} Hz", fs / 2.0),
            found: format!("{f0} Hz"),
        });
    }
    let w0 = 2.0 * f0 / fs;
    let bw = w0 / q * PI;
    let w0 = w0 * PI;
    let beta = (bw / 2.0).tan(); // gb = 1/sqrt(2): sqrt(1 - gb^2) / gb = 1
    let gain = 1.0 / (1.0 + beta);
    Ok([
        gain,
        -2.0 * gain * w0.cos(),
        gain,
        1.0,
        -2.0 * gain * w0.cos(),
        2.0 * gain - 1.0,
    ])
}

/// Steady-state initial conditions of each section for a unit step (scipy `sosfilt_zi`).
pub fn sosfilt_zi(sos: &[Sos]) -> Vec<[f64; 2]> {
    let mut scale = 1.0;
    sos.iter()
        .map(|s| {
            let (b0, b1, b2, a1, a2) = (s[0], s[1], s[2], s[4] / s[3], s[5] / s[3]);
            let (b0, b1, b2) = (b0 / s[3], b1 / s[3], b2 / s[3]);
            // Solve (I - A^T) zi = b[1:] - a[1:] b0 for the companion matrix A.
            let (r0, r1) = (b1 - a1 * b0, b2 - a2 * b0);
            // [[1 + a1, -1], [a2, 1]] zi = [r0, r1]
            let det = (1.0 + a1) + a2;
            let z0 = (r0 + r1) / det;
            let z1 = r1 - a2 * z0;
            let zi = [scale * z0, scale * z1];
            scale *= (b0 + b1 + b2) / (1.0 + a1 + a2);
            zi
        })
        .collect()
}

/// Filter in place through all sections (direct form II transposed), starting from `zi`.
///
/// All sections advance together, sample by sample: each section's recurrence is a serial
/// chain, and interleaving the chains lets the CPU overlap them (faster than filtering the
/// whole signal section after section; measured: BENCHMARKS.md).
pub fn sosfilt_inplace(sos: &[Sos], x: &mut [f64], zi: &mut [[f64; 2]]) {
    match sos.len() {
        // Common orders get a fixed-size state the compiler keeps in registers.
        1 => sosfilt_n::<1>(sos, x, zi),
        2 => sosfilt_n::<2>(sos, x, zi),
        3 => sosfilt_n::<3>(sos, x, zi),
        4 => sosfilt_n::<4>(sos, x, zi),
        5 => sosfilt_n::<5>(sos, x, zi),
        6 => sosfilt_n::<6>(sos, x, zi),
        _ => {
            for (s, z) in sos.iter().zip(zi.iter_mut()) {
                sosfilt_n::<1>(std::slice::from_ref(s), x, std::slice::from_mut(z));
            }
        }
    }
}

fn sosfilt_n<const N: usize>(sos: &[Sos], x: &mut [f64], zi: &mut [[f64; 2]]) {
    let mut c = [[0.0f64; 5]; N];
    let mut z = [[0.0f64; 2]; N];
    for k in 0..N {
        c[k] = [sos[k][0], sos[k][1], sos[k][2], sos[k][4], sos[k][5]];
        z[k] = zi[k];
    }
    for v in x.iter_mut() {
        let mut y = *v;
        for k in 0..N {
            let [b0, b1, b2, a1, a2] = c[k];
            let xin = y;
            y = b0 * xin + z[k][0];
            z[k][0] = b1 * xin - a1 * y + z[k][1];
            z[k][1] = b2 * xin - a2 * y;
        }
        *v = y;
    }
    zi[..N].copy_from_slice(&z);
}

/// A causal filter for streams: sections in direct form II transposed whose state persists
/// between calls, so that feeding a signal in chunks of any size gives exactly scipy's
/// `sosfilt` of the whole signal (zero initial state). Its phase delay is the price of
/// causality; stream mode says so in its output.
#[derive(Debug, Clone)]
pub struct SosStream {
    sos: Vec<Sos>,
    zi: Vec<[f64; 2]>,
}

impl SosStream {
    pub fn new(sos: Vec<Sos>) -> SosStream {
        let zi = vec![[0.0; 2]; sos.len()];
        SosStream { sos, zi }
    }

    pub fn sections(&self) -> &[Sos] {
        &self.sos
    }

    /// Filter the next chunk in place.
    pub fn process(&mut self, x: &mut [f64]) {
        sosfilt_inplace(&self.sos, x, &mut self.zi);
    }
}

/// Samples of odd padding on each side, as scipy's `sosfiltfilt` default.
pub fn sosfiltfilt_padlen(sos: &[Sos]) -> usize {
    let zeros_b = sos.iter().filter(|s| s[2] == 0.0).count();
    let zeros_a = sos.iter().filter(|s| s[5] == 0.0).count();
    3 * (2 * sos.len() + 1 - zeros_b.min(zeros_a))
}

/// Zero-phase forward-backward filtering with odd padding (scipy `sosfiltfilt`).
pub fn sosfiltfilt(sos: &[Sos], x: &[f64]) -> Result<Vec<f64>, SignalError> {
    let edge = sosfiltfilt_padlen(sos);
    if x.len() <= edge {
        return Err(SignalError::TooShort {
            what: "zero-phase filtering",
            needed: edge + 1,
            found: x.len(),
        });
    }
    let n = x.len();
    let mut ext = Vec::with_capacity(n + 2 * edge);
    // Odd extension: 2 x[0] - x[edge..1], x, 2 x[-1] - x[-2..-(edge+1)].
    ext.extend((1..=edge).rev().map(|i| 2.0 * x[0] - x[i]));
    ext.extend_from_slice(x);
    ext.extend((1..=edge).map(|i| 2.0 * x[n - 1] - x[n - 1 - i]));
    let zi0 = sosfilt_zi(sos);
    let mut zi: Vec<[f64; 2]> = zi0.iter().map(|z| [z[0] * ext[0], z[1] * ext[0]]).collect();
    sosfilt_inplace(sos, &mut ext, &mut zi);
    ext.reverse();
    let y0 = ext[0];
    let mut zi: Vec<[f64; 2]> = zi0.iter().map(|z| [z[0] * y0, z[1] * y0]).collect();
    sosfilt_inplace(sos, &mut ext, &mut zi);
    ext.reverse();
    Ok(ext[edge..edge + n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain_at(sos: &[Sos], f: f64, fs: f64) -> f64 {
        let z = C::new(0.0, 2.0 * PI * f / fs).exp();
        sos.iter()
            .map(|s| {
                let num = C::new(s[0], 0.0) + s[1] / z + s[2] / (z * z);
                let den = C::new(s[3], 0.0) + s[4] / z + s[5] / (z * z);
                (num / den).norm()
            })
            .product()
    }

    #[test]
    fn butterworth_is_minus_3db_at_the_edges_and_flat_inside() {
        let sos = butter_sos(4, Band::BandPass(0.5, 40.0), 360.0).unwrap();
        assert_eq!(sos.len(), 4);
        let half = std::f64::consts::FRAC_1_SQRT_2;
        assert!((gain_at(&sos, 0.5, 360.0) - half).abs() < 1e-9);
        assert!((gain_at(&sos, 40.0, 360.0) - half).abs() < 1e-9);
        assert!((gain_at(&sos, 5.0, 360.0) - 1.0).abs() < 1e-4);
        assert!(
            gain_at(&sos, 100.0, 360.0) < 0.03,
            "about (40/100)^4 for a 4th-order edge"
        );
        let hp = butter_sos(5, Band::HighPass(0.5), 1000.0).unwrap();
        assert!((gain_at(&hp, 0.5, 1000.0) - half).abs() < 1e-9);
    }

    #[test]
    fn notch_removes_its_frequency() {
        let s = iirnotch_sos(50.0, 30.0, 500.0).unwrap();
        assert!(gain_at(&[s], 50.0, 500.0) < 1e-9);
        assert!((gain_at(&[s], 10.0, 500.0) - 1.0).abs() < 1e-3);
    }

    #[test]
    fn constant_passes_a_lowpass_unchanged() {
        let sos = butter_sos(3, Band::LowPass(10.0), 100.0).unwrap();
        let y = sosfiltfilt(&sos, &[2.5; 200]).unwrap();
        assert!(y.iter().all(|v| (v - 2.5).abs() < 1e-9));
    }

    #[test]
    fn bad_bands_are_refused() {
        assert!(butter_sos(4, Band::BandPass(0.5, 40.0), 64.0).is_err());
        assert!(butter_sos(4, Band::BandPass(10.0, 5.0), 256.0).is_err());
        assert!(sosfiltfilt(
            &butter_sos(4, Band::BandPass(0.5, 40.0), 256.0).unwrap(),
            &[0.0; 20]
        )
        .is_err());
    }
}
