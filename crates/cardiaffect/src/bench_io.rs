//! `cardiaffect bench-io`: parse speed of the WFDB 212 reader on a generated record.
//!
//! A benchmark, not a test: it prints figures. The record is generated in a temporary folder
//! (1 hour, 12 leads, 500 Hz by default: about 32 MB), then read several times on this thread.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct BenchIoArgs {
    /// Length of the generated record in minutes.
    #[arg(long, default_value_t = 60.0)]
    pub minutes: f64,
    /// Number of leads.
    #[arg(long, default_value_t = 12)]
    pub leads: usize,
    /// Sampling rate in Hz.
    #[arg(long, default_value_t = 500.0)]
    pub fs: f64,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Write a WFDB 212 record of `leads` signals with a deterministic ECG-like waveform.
pub fn write_212_record(
    dir: &Path,
    name: &str,
    leads: usize,
    fs: f64,
    frames: usize,
) -> Result<()> {
    let mut dat = Vec::with_capacity(frames * leads * 3 / 2 + 3);
    let mut pending: Option<i32> = None;
    for f in 0..frames {
        let t = f as f64 / fs;
        for l in 0..leads {
            // A sharp periodic spike on a slow wave: enough to exercise all 12 bits.
            let phase = (t * 1.2 + l as f64 * 0.01).fract();
            let v = (1500.0 * (-((phase - 0.3) / 0.01).powi(2)).exp()
                + 200.0 * (2.0 * std::f64::consts::PI * 0.25 * t).sin()) as i32;
            let v = v.clamp(-2047, 2047);
            match pending.take() {
                None => pending = Some(v),
                Some(a) => {
                    dat.push((a & 0xFF) as u8);
                    dat.push((((a >> 8) & 0x0F) | ((v >> 4) & 0xF0)) as u8);
                    dat.push((v & 0xFF) as u8);
                }
            }
        }
    }
    if let Some(a) = pending {
        dat.push((a & 0xFF) as u8);
        dat.push(((a >> 8) & 0x0F) as u8);
    }
    std::fs::write(dir.join(format!("{name}.dat")), &dat)?;
    let mut hea = format!("{name} {leads} {fs} {frames}\n");
    for l in 0..leads {
        hea.push_str(&format!(
            "{name}.dat 212 200(0)/mV 12 0 0 0 0 lead{}\n",
            l + 1
        ));
    }
    std::fs::write(dir.join(format!("{name}.hea")), hea)?;
    Ok(())
}

pub fn run(a: BenchIoArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("cardiaffect-bench-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let frames = (a.minutes * 60.0 * a.fs) as usize;
    write_212_record(&dir, "bench", a.leads, a.fs, frames)?;
    let hea = dir.join("bench.hea");
    let bytes = std::fs::metadata(dir.join("bench.dat"))?.len() as f64;
    // First read warms the page cache, so that the figure is parsing, not the disk.
    let rec = cardiaffect_io::formats::wfdb::read_record(&hea)?;
    anyhow::ensure!(
        rec.signals.len() == a.leads && rec.signals[0].len() == frames,
        "the generated record did not read back"
    );
    let mut times = Vec::new();
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        let rec = cardiaffect_io::formats::wfdb::read_record(&hea)?;
        times.push(t.elapsed().as_secs_f64());
        std::hint::black_box(rec);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mb_s = bytes / 1e6 / median;
    let samples_s = (frames * a.leads) as f64 / median;
    let _ = std::fs::remove_dir_all(&dir);
    let mut w = std::io::stdout().lock();
    if a.json {
        writeln!(
            w,
            "{}",
            serde_json::json!({"format": "wfdb-212", "file_mb": bytes / 1e6, "leads": a.leads, "minutes": a.minutes, "fs": a.fs,
                "median_s": median, "mb_per_s": mb_s, "samples_per_s": samples_s, "threads": 1})
        )?;
    } else {
        writeln!(
            w,
            "WFDB 212 read: {:.1} MB file ({} leads, {} min at {} Hz), one thread",
            bytes / 1e6,
            a.leads,
            a.minutes,
            a.fs
        )?;
        writeln!(
            w,
            "median of {}: {:.3} s = {:.0} MB/s of file, {:.0} M samples/s",
            times.len(),
            median,
            mb_s,
            samples_s / 1e6
        )?;
    }
    Ok(())
}
