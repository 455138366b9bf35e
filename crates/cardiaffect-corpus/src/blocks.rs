//! Every window of one long signal, read block by block: what `predict` streams a day-long
//! recording through in bounded memory.
//!
//! The windows, their grid and their quality checks are those of
//! [`crate::window_recording_flagged`]. A run of finite samples no longer than one block (and
//! its margins) is filtered in one piece, exactly as there. A longer run is filtered in blocks
//! of `block_s` seconds, each read with `margin_s` seconds of signal on both sides (plus one
//! window on the right) so that the zero-phase filter's edge transients, which decay within a
//! few seconds for ECG bands, fall outside the windows the block owns. Blocks start on
//! multiples of the resampling factor, so their samples lie on the run's own output grid. R-peaks
//! (heart rate and the quality checks that use them) are found per block.

use cardiaffect_io::chunked::SampleSource;
use cardiaffect_signal::{check_window, rational_factors};

use crate::window::{clean_run, window_peaks, FiniteRuns};
use crate::{CorpusError, PrepareConfig};

/// How a long signal is cut for filtering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockConfig {
    /// Seconds of signal whose windows one block yields (a run up to this long plus its
    /// margins is filtered whole).
    pub block_s: f64,
    /// Seconds read on each side of a block and discarded after filtering.
    pub margin_s: f64,
}

impl Default for BlockConfig {
    fn default() -> Self {
        // Half an hour: trials, sessions and the bundled recordings are filtered whole (as in
        // `prepare`); a block of a 256-Hz lead costs a few MB.
        BlockConfig {
            block_s: 1800.0,
            margin_s: 30.0,
        }
    }
}

/// One window: where it starts, its heart rate, and the quality check it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FlaggedWindow {
    pub start_s: f64,
    pub hr_bpm: f64,
    pub flaw: Option<&'static str>,
}

/// The windows one block yields, in time order; `data` holds them one after another
/// (`windows.len() * window_len` samples, preprocessed, not z-scored).
#[derive(Debug, Default)]
pub struct Block {
    pub windows: Vec<FlaggedWindow>,
    pub data: Vec<f32>,
}

/// What went by without a window.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BlockSummary {
    /// Windows that lay over NaN samples (not filtered, not yielded).
    pub dropped: usize,
    /// Windows yielded.
    pub windows: usize,
    pub warnings: Vec<String>,
}

/// Runs of finite samples, found in one pass over the source.
fn finite_runs(source: &mut dyn SampleSource) -> Result<Vec<(usize, usize)>, CorpusError> {
    const CHUNK: usize = 1 << 18;
    let n = source.len();
    let mut buf = vec![0f32; CHUNK.min(n)];
    let mut runs = FiniteRuns::default();
    let mut at = 0;
    while at < n {
        let len = CHUNK.min(n - at);
        source.read_into(at, &mut buf[..len])?;
        runs.feed(at, &buf[..len]);
        at += len;
    }
    Ok(runs.finish(n))
}

/// Every window of the signal `source` (sampled at `fs_in`; `name` for messages), handed to
/// `each` block by block in time order.
pub fn windows_in_blocks(
    source: &mut dyn SampleSource,
    fs_in: f64,
    name: &str,
    cfg: &PrepareConfig,
    blocks: &BlockConfig,
    mut each: impl FnMut(Block),
) -> Result<BlockSummary, CorpusError> {
    let needed = 2.0 * cfg.clean.high_hz;
    if fs_in < needed {
        return Err(CorpusError::RateTooLow {
            recording: name.to_string(),
            fs: fs_in,
            needed,
        });
    }
    if !(blocks.block_s > 0.0 && blocks.margin_s >= 0.0) {
        return Err(CorpusError::Config {
            field: "blocks",
            expected: "a positive block length and a margin of 0 s or more".into(),
            found: format!("{} s and {} s", blocks.block_s, blocks.margin_s),
        });
    }
    let mut summary = BlockSummary::default();
    let n = source.len();
    let native_len = (cfg.window_s * fs_in).round() as usize;
    let len = cfg.window_len();
    if n < native_len {
        summary.warnings.push(format!(
            "{name}: {:.1} s is shorter than one {} s window: no window",
            n as f64 / fs_in,
            cfg.window_s
        ));
        return Ok(summary);
    }
    let (up, down) = rational_factors(fs_in, cfg.fs)?;
    let on_grid = |s: f64| ((s * fs_in / down as f64).ceil() as usize).max(1) * down;
    let block = on_grid(blocks.block_s);
    let margin = if blocks.margin_s > 0.0 {
        on_grid(blocks.margin_s)
    } else {
        0
    };
    // Every window of the grid that fits in the recording.
    let total = {
        let mut k = 0usize;
        while ((k as f64 * cfg.stride_s) * fs_in).round() as usize + native_len <= n {
            k += 1;
        }
        k
    };
    let mut x = Vec::new();
    for (a, b) in finite_runs(source)? {
        if b - a < native_len {
            continue;
        }
        let y_len_run = ((b - a) * up).div_ceil(down);
        let whole = b - a <= block + 2 * margin + native_len;
        let cores: Vec<(usize, usize)> = if whole {
            vec![(a, b)]
        } else {
            (a..b)
                .step_by(block)
                .map(|s| (s, (s + block).min(b)))
                .collect()
        };
        // The first window whose start lies in the run.
        let mut k = (a as f64 / fs_in / cfg.stride_s).floor().max(0.0) as usize;
        while (((k as f64 * cfg.stride_s) * fs_in).round() as usize) < a {
            k += 1;
        }
        for (core_s, core_e) in cores {
            let (ext_s, ext_e) = if whole {
                (a, b)
            } else {
                (
                    core_s.saturating_sub(margin).max(a),
                    (core_e + margin + native_len).min(b),
                )
            };
            x.resize(ext_e - ext_s, 0.0);
            source.read_into(ext_s, &mut x)?;
            let (y, peaks) = clean_run(&x, fs_in, cfg)?;
            // ext_s - a is a multiple of `down`: ext's output sample 0 is the run's `off`.
            let off = (ext_s - a) / down * up;
            let mut out = Block::default();
            loop {
                let t0 = k as f64 * cfg.stride_s;
                let ns = (t0 * fs_in).round() as usize;
                if ns >= core_e || ns + native_len > b {
                    break;
                }
                k += 1;
                let j0 = ((t0 - a as f64 / fs_in) * cfg.fs).round() as usize;
                if j0 + len > y_len_run || j0 < off || j0 - off + len > y.len() {
                    continue;
                }
                let j = j0 - off;
                let (rel, hr) = window_peaks(&peaks, j, len, cfg.fs);
                let flaw = check_window(
                    &x[ns - ext_s..ns - ext_s + native_len],
                    fs_in,
                    &rel,
                    cfg.fs,
                    &cfg.quality,
                )
                .err()
                .map(|f| f.name());
                out.windows.push(FlaggedWindow {
                    start_s: t0,
                    hr_bpm: hr,
                    flaw,
                });
                out.data.extend_from_slice(&y[j..j + len]);
            }
            summary.windows += out.windows.len();
            if !out.windows.is_empty() {
                each(out);
            }
        }
    }
    summary.dropped = total - summary.windows;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window_recording_flagged;
    use cardiaffect_io::chunked::InMemory;
    use cardiaffect_io::Recording;
    use cardiaffect_signal::{ecgsyn, EcgSynParams, Rng};

    fn ecg(seconds: f64, fs: f64, seed: u64) -> Vec<f32> {
        let p = EcgSynParams {
            fs,
            duration_s: seconds,
            hr_mean_bpm: 72.0,
            ..EcgSynParams::default()
        };
        ecgsyn(&p, &mut Rng::new(seed)).0
    }

    fn collect(x: &[f32], fs: f64, cfg: &PrepareConfig, b: &BlockConfig) -> (Block, BlockSummary) {
        let mut all = Block::default();
        let s = windows_in_blocks(&mut InMemory(x), fs, "test", cfg, b, |blk| {
            all.windows.extend(blk.windows);
            all.data.extend(blk.data);
        })
        .unwrap();
        (all, s)
    }

    #[test]
    fn a_run_that_fits_one_block_gives_what_prepare_gives() {
        let fs = 256.0;
        let mut x = ecg(120.0, fs, 3);
        for v in &mut x[(50.0 * fs) as usize..(53.0 * fs) as usize] {
            *v = f32::NAN;
        }
        let cfg = PrepareConfig {
            stride_s: 2.0,
            ..PrepareConfig::default()
        };
        let rec = Recording::new("T", std::path::Path::new("t"), fs, x.clone());
        let w = window_recording_flagged(&rec, &cfg).unwrap();
        let (b, s) = collect(&x, fs, &cfg, &BlockConfig::default());
        assert_eq!(b.data, w.data);
        assert_eq!(s.dropped, w.dropped.len());
        assert!(s.dropped > 0);
        let starts: Vec<f64> = w.meta.iter().map(|m| m.start_s).collect();
        assert_eq!(
            b.windows.iter().map(|w| w.start_s).collect::<Vec<_>>(),
            starts
        );
        for (a, m) in b.windows.iter().zip(&w.meta) {
            assert!(a.hr_bpm == m.hr_bpm || (a.hr_bpm.is_nan() && m.hr_bpm.is_nan()));
        }
        let flaws: Vec<Option<&str>> = w.flaws.iter().map(|f| f.as_deref()).collect();
        assert_eq!(b.windows.iter().map(|w| w.flaw).collect::<Vec<_>>(), flaws);
    }

    #[test]
    fn blocks_agree_with_the_whole_run_filtered_at_once() {
        // Ten minutes at 250 Hz (resampled 250 -> 128: blocks on multiples of 125 samples),
        // cut into 45-s blocks: windows, samples and heart rates as from one piece.
        let fs = 250.0;
        let x = ecg(600.0, fs, 5);
        let cfg = PrepareConfig {
            window_s: 4.0,
            stride_s: 1.5,
            ..PrepareConfig::default()
        };
        let small = BlockConfig {
            block_s: 45.0,
            margin_s: 20.0,
        };
        let (whole, sw) = collect(&x, fs, &cfg, &BlockConfig::default());
        let (cut, sc) = collect(&x, fs, &cfg, &small);
        assert_eq!(sw, sc);
        assert_eq!(cut.windows.len(), whole.windows.len());
        assert_eq!(cut.windows.len(), 398);
        let worst = cut
            .data
            .iter()
            .zip(&whole.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let scale = whole.data.iter().map(|v| v.abs()).fold(0f32, f32::max);
        assert!(
            worst <= 1e-5 * scale,
            "max difference {worst} (signal {scale})"
        );
        let same_hr = cut
            .windows
            .iter()
            .zip(&whole.windows)
            .filter(|(a, b)| (a.hr_bpm - b.hr_bpm).abs() < 1e-9)
            .count();
        assert!(
            same_hr as f64 >= 0.99 * whole.windows.len() as f64,
            "{same_hr}"
        );
        for (a, b) in cut.windows.iter().zip(&whole.windows) {
            assert_eq!(a.start_s, b.start_s);
        }
    }

    #[test]
    fn bad_block_settings_are_refused() {
        let x = ecg(20.0, 256.0, 1);
        let bad = BlockConfig {
            block_s: 0.0,
            margin_s: 10.0,
        };
        let e = windows_in_blocks(
            &mut InMemory(&x),
            256.0,
            "t",
            &PrepareConfig::default(),
            &bad,
            |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("blocks"), "{e}");
    }
}
