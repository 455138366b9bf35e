//! Stream mode: samples arrive in chunks; every `hop` seconds the last window is classified.
//!
//! Filtering is causal (the band-pass runs forward only, its state kept between chunks: equal
//! to scipy's `sosfilt` of the whole stream), unlike the zero-phase filter of the training
//! data: the phase delay is stated in the stream's first output line. Each window is then
//! resampled to the model's rate as one block, checked, z-scored and classified. A NaN or
//! infinite sample resets the filter; windows that contain it, and those of the first seconds
//! while the filter settles, are reported as such and not classified.

use cardiaffect_signal::{
    butter_sos, check_window, ecg_peaks_neurokit, iirnotch_sos, resample, Band, QualityConfig,
    SosStream,
};

use crate::{InferError, Preprocess};

/// A window ready for the model, from one stream.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Stream time of the window's end, seconds since the first sample.
    pub end_s: f64,
    /// Resampled to the model's rate (`window_len` samples); empty when not classifiable.
    pub window: Vec<f32>,
    /// `ok`, a quality flaw, `nan`, or `warming up`.
    pub quality: String,
    pub hr_bpm: f64,
}

/// The stream's input as text: one sample per line, the first field (split at `,`, tab or
/// space) read as a number. `None` for a line without a field, `Err(field)` for one that is
/// not a number (the caller counts it as a missing sample, NaN).
pub fn text_sample(line: &str) -> Option<Result<f32, &str>> {
    let field = line.split([',', '\t', ' ']).find(|f| !f.is_empty())?;
    Some(field.parse::<f32>().map_err(|_| field))
}

/// The stream's input as raw little-endian float32: bytes arrive in any chunks; a sample split
/// across two chunks is kept until its last byte comes.
#[derive(Debug, Default)]
pub struct F32Decoder {
    carry: Vec<u8>,
}

impl F32Decoder {
    /// The whole samples that `bytes` completes.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<f32> {
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / 4 * 4;
        let samples = self.carry[..whole]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.carry.drain(..whole);
        samples
    }

    /// Bytes of an unfinished sample at the end of the stream.
    pub fn stray(&self) -> usize {
        self.carry.len()
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn text_lines_take_their_first_field() {
        assert_eq!(text_sample("1.5,2"), Some(Ok(1.5)));
        assert_eq!(text_sample("  -3\tx"), Some(Ok(-3.0)));
        assert_eq!(text_sample(""), None);
        assert_eq!(text_sample("abc"), Some(Err("abc")));
    }

    #[test]
    fn a_float_split_across_chunks_is_kept_whole() {
        let bytes: Vec<u8> = [1.0f32, -2.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut d = F32Decoder::default();
        assert_eq!(d.push(&bytes[..3]), Vec::<f32>::new());
        assert_eq!(d.push(&bytes[3..6]), vec![1.0]);
        assert_eq!(d.stray(), 2);
        assert_eq!(d.push(&bytes[6..]), vec![-2.5]);
        assert_eq!(d.stray(), 0);
    }
}

pub struct StreamState {
    fs_in: f64,
    fs_model: f64,
    window_len: usize,
    native_len: usize,
    hop: usize,
    band: SosStream,
    notch: Option<SosStream>,
    ring: Vec<f32>,
    /// The unfiltered samples, for the flat-line and clipping checks.
    raw_ring: Vec<f32>,
    /// Samples seen so far.
    n: u64,
    /// No classifiable window ends before this sample count (filter settling, NaN).
    clean_from: u64,
    settle: u64,
    quality: QualityConfig,
}

impl StreamState {
    pub fn new(pre: &Preprocess, fs_in: f64, hop_s: f64) -> Result<StreamState, InferError> {
        if !(fs_in.is_finite() && fs_in >= 2.0 * pre.band_hz[1]) {
            return Err(InferError::Mismatch(format!(
                "‹fs› {fs_in}: the model's band reaches {} Hz, so the input needs at least {} Hz",
                pre.band_hz[1],
                2.0 * pre.band_hz[1]
            )));
        }
        if hop_s.is_nan() || hop_s <= 0.0 {
            return Err(InferError::Mismatch(format!(
                "hop {hop_s} s: expected a positive number of seconds"
            )));
        }
        let sos = butter_sos(
            pre.filter_order,
            Band::BandPass(pre.band_hz[0], pre.band_hz[1]),
            fs_in,
        )
        .map_err(|e| InferError::Mismatch(e.to_string()))?;
        let notch =
            match pre.notch_hz.filter(|&f| f < fs_in / 2.0) {
                Some(f) => Some(SosStream::new(vec![iirnotch_sos(f, 30.0, fs_in)
                    .map_err(|e| InferError::Mismatch(e.to_string()))?])),
                None => None,
            };
        let native_len = (pre.window_s * fs_in).round() as usize;
        // The band-pass's slowest pole (0.5 Hz) settles within about 3 cycles.
        let settle = (3.0 / pre.band_hz[0].max(0.1) * fs_in) as u64;
        Ok(StreamState {
            fs_in,
            fs_model: pre.fs,
            window_len: pre.window_len(),
            native_len,
            hop: ((hop_s * fs_in).round() as usize).max(1),
            band: SosStream::new(sos),
            notch,
            ring: vec![0.0; native_len],
            raw_ring: vec![0.0; native_len],
            n: 0,
            clean_from: settle + native_len as u64,
            settle,
            quality: QualityConfig::default(),
        })
    }

    /// Feed samples; returns the windows whose hop ended inside this chunk.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Hop> {
        let mut out = Vec::new();
        let mut buf = [0.0f64; 1];
        for &v in samples {
            let y = if v.is_finite() {
                buf[0] = v as f64;
                self.band.process(&mut buf);
                if let Some(n) = &mut self.notch {
                    n.process(&mut buf);
                }
                buf[0] as f32
            } else {
                // Reset: the filter's state is meaningless after a NaN.
                self.band = SosStream::new(self.band_sos());
                self.clean_from = self
                    .clean_from
                    .max(self.n + 1 + self.native_len as u64 + self.settle);
                0.0
            };
            let i = (self.n % self.native_len as u64) as usize;
            self.ring[i] = y;
            self.raw_ring[i] = if v.is_finite() { v } else { 0.0 };
            self.n += 1;
            if self.n >= self.native_len as u64
                && (self.n - self.native_len as u64).is_multiple_of(self.hop as u64)
            {
                out.push(self.hop_now());
            }
        }
        out
    }

    fn band_sos(&self) -> Vec<cardiaffect_signal::Sos> {
        self.band.sections().to_vec()
    }

    fn hop_now(&self) -> Hop {
        let end_s = self.n as f64 / self.fs_in;
        if self.n < self.clean_from {
            let quality = if self.n < (self.settle + self.native_len as u64) {
                "warming up"
            } else {
                "nan"
            };
            return Hop {
                end_s,
                window: Vec::new(),
                quality: quality.into(),
                hr_bpm: f64::NAN,
            };
        }
        let start = (self.n % self.native_len as u64) as usize;
        let mut raw = Vec::with_capacity(self.native_len);
        raw.extend_from_slice(&self.ring[start..]);
        raw.extend_from_slice(&self.ring[..start]);
        let mut w = match resample(&raw, self.fs_in, self.fs_model) {
            Ok(w) => w,
            Err(e) => {
                return Hop {
                    end_s,
                    window: Vec::new(),
                    quality: format!("resampling failed: {e}"),
                    hr_bpm: f64::NAN,
                }
            }
        };
        w.resize(self.window_len, 0.0);
        let peaks = ecg_peaks_neurokit(&w, self.fs_model);
        let hr = if peaks.len() >= 2 {
            60.0 * (peaks.len() - 1) as f64
                / ((peaks[peaks.len() - 1] - peaks[0]) as f64 / self.fs_model)
        } else {
            f64::NAN
        };
        let mut unfiltered = Vec::with_capacity(self.native_len);
        unfiltered.extend_from_slice(&self.raw_ring[start..]);
        unfiltered.extend_from_slice(&self.raw_ring[..start]);
        let quality = match check_window(
            &unfiltered,
            self.fs_in,
            &peaks,
            self.fs_model,
            &self.quality,
        ) {
            Ok(()) => "ok".to_string(),
            Err(f) => f.name().to_string(),
        };
        Hop {
            end_s,
            window: w,
            quality,
            hr_bpm: hr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre() -> Preprocess {
        Preprocess {
            fs: 128.0,
            window_s: 4.0,
            band_hz: [0.5, 40.0],
            filter_order: 4,
            notch_hz: None,
            normalisation: "z-score per window".into(),
        }
    }

    fn pulses(n: usize, fs: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                // Pulses on a slow wave (a flat baseline would read as clipping).
                ((-((t * 1.1).fract() - 0.3).powi(2) / 0.0008).exp() + 0.05 * (t * 6.0).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn hops_are_the_same_whatever_the_chunking() {
        let x = pulses(256 * 30, 256.0);
        let run = |chunk: usize| {
            let mut s = StreamState::new(&pre(), 256.0, 2.0).unwrap();
            x.chunks(chunk)
                .flat_map(|c| s.push(c))
                .collect::<Vec<Hop>>()
        };
        let (a, b) = (run(1), run(1000));
        // Windows end at 4, 6, ..., 30 s.
        assert_eq!(a.len(), 14);
        assert_eq!(a.len(), b.len());
        for (h, g) in a.iter().zip(&b) {
            assert_eq!(
                (h.end_s, &h.quality, &h.window),
                (g.end_s, &g.quality, &g.window)
            );
        }
        // The first ones while the filter settles (6 s + one window), then classifiable.
        assert_eq!(a[0].quality, "warming up");
        assert!(a.iter().any(|h| h.quality == "ok" && h.window.len() == 512));
        assert!(
            (a.last().unwrap().hr_bpm - 66.0).abs() < 3.0,
            "{}",
            a.last().unwrap().hr_bpm
        );
    }

    #[test]
    fn a_nan_is_reported_then_the_stream_recovers() {
        let mut x = pulses(256 * 40, 256.0);
        x[256 * 15] = f32::NAN;
        let mut s = StreamState::new(&pre(), 256.0, 2.0).unwrap();
        let hops = s.push(&x);
        let q: Vec<&str> = hops.iter().map(|h| h.quality.as_str()).collect();
        let first_nan = q.iter().position(|&v| v == "nan").expect("a nan hop");
        assert!(q[..first_nan].contains(&"ok"));
        assert!(q[first_nan..].contains(&"ok"), "recovers: {q:?}");
        assert!(hops
            .iter()
            .filter(|h| h.quality == "nan")
            .all(|h| h.window.is_empty()));
    }

    #[test]
    fn too_low_a_rate_is_refused() {
        let e = StreamState::new(&pre(), 50.0, 2.0).err().unwrap();
        assert!(e.to_string().contains("at least 80 Hz"), "{e}");
    }
}
