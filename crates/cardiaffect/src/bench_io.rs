//! `cardiaffect bench-io`: read speed of the WFDB 212 reader, or of the BrainVision reader
//! taking one ECG channel out of a many-channel EEG file, on a generated record.
//!
//! A benchmark, not a test: it prints figures. The record is generated in a temporary folder
//! (WFDB: 1 hour, 12 leads, 500 Hz: about 32 MB; BrainVision: 1 hour, 64 channels, 1000 Hz,
//! float32, multiplexed: 922 MB), read once to warm the page cache, then timed on this thread.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

/// Which reader to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchFormat {
    /// WFDB format 212, every lead.
    Wfdb212,
    /// BrainVision IEEE_FLOAT_32, multiplexed: the ECG channel alone.
    Brainvision,
    /// BrainVision IEEE_FLOAT_32, vectorized: the ECG channel alone.
    BrainvisionVectorized,
}

#[derive(Args)]
pub struct BenchIoArgs {
    #[arg(long, value_enum, default_value_t = BenchFormat::Wfdb212)]
    pub format: BenchFormat,
    /// Length of the generated record in minutes.
    #[arg(long, default_value_t = 60.0)]
    pub minutes: f64,
    /// Number of leads or channels (default: 12 for WFDB, 64 for BrainVision).
    #[arg(long)]
    pub leads: Option<usize>,
    /// Sampling rate in Hz (default: 500 for WFDB, 1000 for BrainVision).
    #[arg(long)]
    pub fs: Option<f64>,
    /// Time this BrainVision file (its ECG channel) instead of a generated one (as
    /// `reference/bench_brainvision.py` writes for the comparison with MNE).
    #[arg(long, value_name = "VHDR")]
    pub file: Option<std::path::PathBuf>,
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

/// Write a BrainVision recording of `channels` float32 channels (the last one named ECG).
fn write_brainvision(
    dir: &Path,
    channels: usize,
    fs: f64,
    frames: usize,
    vectorized: bool,
) -> Result<()> {
    use std::io::BufWriter;
    let mut hdr = format!(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\nDataFile=bench.eeg\nDataFormat=BINARY\nDataOrientation={}\nNumberOfChannels={channels}\nSamplingInterval={}\n\n[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n\n[Channel Infos]\n",
        if vectorized { "VECTORIZED" } else { "MULTIPLEXED" },
        1e6 / fs
    );
    for c in 0..channels {
        let name = if c + 1 == channels {
            "ECG".to_string()
        } else {
            format!("EEG{}", c + 1)
        };
        hdr.push_str(&format!("Ch{}={name},,0.1,µV\n", c + 1));
    }
    std::fs::write(dir.join("bench.vhdr"), hdr)?;
    let mut w = BufWriter::with_capacity(1 << 22, std::fs::File::create(dir.join("bench.eeg"))?);
    let value = |f: usize, c: usize| ((f as f32 * 0.01 + c as f32).sin() * 500.0).to_le_bytes();
    if vectorized {
        for c in 0..channels {
            for f in 0..frames {
                w.write_all(&value(f, c))?;
            }
        }
    } else {
        for f in 0..frames {
            for c in 0..channels {
                w.write_all(&value(f, c))?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

fn run_brainvision(a: &BenchIoArgs, dir: &Path, vectorized: bool) -> Result<()> {
    let (channels, fs) = (a.leads.unwrap_or(64), a.fs.unwrap_or(1000.0));
    let vhdr = match &a.file {
        Some(f) => f.clone(),
        None => {
            let frames = (a.minutes * 60.0 * fs) as usize;
            write_brainvision(dir, channels, fs, frames, vectorized)?;
            dir.join("bench.vhdr")
        }
    };
    let bv0 = cardiaffect_io::datasets::generic::open_brainvision(&vhdr)?;
    let (channels, fs, frames) = (bv0.header.channels.len(), bv0.header.fs, bv0.samples);
    let minutes = frames as f64 / fs / 60.0;
    let vectorized =
        bv0.header.orientation == cardiaffect_io::formats::brainvision::Orientation::Vectorized;
    let bytes = std::fs::metadata(&bv0.data)?.len() as f64;
    let read = || -> Result<Vec<f32>> {
        let bv = cardiaffect_io::datasets::generic::open_brainvision(&vhdr)?;
        let ecg = bv
            .header
            .channels
            .iter()
            .position(|c| c.name == "ECG")
            .context("no ECG channel")?;
        Ok(bv.read(&[ecg])?.remove(0))
    };
    let x = read()?;
    anyhow::ensure!(
        x.len() == frames,
        "the generated recording did not read back"
    );
    let mut times = Vec::new();
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        std::hint::black_box(read()?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mb_s = bytes / 1e6 / median;
    let layout = if vectorized {
        "vectorized"
    } else {
        "multiplexed"
    };
    let mut w = std::io::stdout().lock();
    if a.json {
        writeln!(
            w,
            "{}",
            serde_json::json!({"format": format!("brainvision-float32-{layout}"), "file_mb": bytes / 1e6, "channels": channels,
                "minutes": minutes, "fs": fs, "median_s": median, "mb_per_s": mb_s, "threads": 1, "page_cache": "warm"})
        )?;
    } else {
        writeln!(
            w,
            "BrainVision read of the ECG channel: {:.1} MB file ({channels} channels float32 {layout}, {} min at {fs} Hz), one thread, file in the page cache",
            bytes / 1e6,
            minutes
        )?;
        writeln!(
            w,
            "median of {}: {:.3} s = {:.0} MB/s of file",
            times.len(),
            median,
            mb_s
        )?;
    }
    Ok(())
}

pub fn run(a: BenchIoArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("cardiaffect-bench-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if a.format != BenchFormat::Wfdb212 {
        let r = run_brainvision(&a, &dir, a.format == BenchFormat::BrainvisionVectorized);
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    let (leads, fs) = (a.leads.unwrap_or(12), a.fs.unwrap_or(500.0));
    let frames = (a.minutes * 60.0 * fs) as usize;
    write_212_record(&dir, "bench", leads, fs, frames)?;
    let hea = dir.join("bench.hea");
    let bytes = std::fs::metadata(dir.join("bench.dat"))?.len() as f64;
    // First read warms the page cache, so that the figure is parsing, not the disk.
    let rec = cardiaffect_io::formats::wfdb::read_record(&hea)?;
    anyhow::ensure!(
        rec.signals.len() == leads && rec.signals[0].len() == frames,
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
    let samples_s = (frames * leads) as f64 / median;
    let _ = std::fs::remove_dir_all(&dir);
    let mut w = std::io::stdout().lock();
    if a.json {
        writeln!(
            w,
            "{}",
            serde_json::json!({"format": "wfdb-212", "file_mb": bytes / 1e6, "leads": leads, "minutes": a.minutes, "fs": fs,
                "median_s": median, "mb_per_s": mb_s, "samples_per_s": samples_s, "threads": 1})
        )?;
    } else {
        writeln!(
            w,
            "WFDB 212 read: {:.1} MB file ({} leads, {} min at {} Hz), one thread",
            bytes / 1e6,
            leads,
            a.minutes,
            fs
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
