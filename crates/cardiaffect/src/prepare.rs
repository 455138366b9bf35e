//! `cardiaffect prepare`: sources in, a training corpus out.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cardiaffect_corpus::{prepare, Dtype, PrepareConfig, Progress, Source};
use cardiaffect_signal::CleanConfig;
use clap::Args;
use indicatif::ProgressBar;

#[derive(Args)]
pub struct PrepareArgs {
    /// A source as FORMAT:PATH (formats as for `inspect`), a bare PATH (detected), or
    /// `bundled` (the real ECG shipped with cardiaffect, the default). Repeatable.
    #[arg(long = "source", value_name = "FORMAT:PATH")]
    pub sources: Vec<String>,
    /// Corpus folder to write (created; reused by later runs).
    #[arg(long, required_unless_present = "verify")]
    pub out: Option<PathBuf>,
    /// Re-check the corpus in DIR instead (checksums, finite values, the table) and exit.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub verify: Option<PathBuf>,
    /// Target sampling rate in Hz.
    #[arg(long, default_value_t = PrepareConfig::default().fs)]
    pub fs: f64,
    /// Window length, e.g. 4s, 2500ms, 1m (default: the shipped pre-trained model's 10 s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub window: f64,
    /// Step between window starts.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub stride: f64,
    /// Band-pass edges in Hz, LOW,HIGH.
    #[arg(long, default_value = "0.5,40", value_parser = parse_band)]
    pub band: (f64, f64),
    /// Butterworth order of the band-pass.
    #[arg(long, default_value_t = PrepareConfig::default().clean.order)]
    pub order: usize,
    /// Powerline frequency to notch out (50 or 60).
    #[arg(long, value_name = "HZ")]
    pub notch: Option<f64>,
    /// Storage type of the windows.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// ECG lead to take from every source (see `inspect --lead`).
    #[arg(long)]
    pub lead: Option<String>,
    /// Sampling rate of sources that do not store one (CSV, NPY).
    #[arg(long, value_name = "HZ")]
    pub input_fs: Option<f64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub events: EventArgs,
    /// Print the manifest counts as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

/// Trials from events, for formats whose trials are not in the file's layout.
#[derive(Args, Clone, Default)]
pub struct EventArgs {
    /// Cut every recording into trials at events: FILE.csv or FILE.tsv (columns `recording`
    /// (file name) or `subject`, `onset`, `duration` in seconds, then any label columns), or
    /// `annotations` (the file's own EDF+ annotations or BrainVision markers). BIDS datasets
    /// use their `*_events.tsv` without it.
    #[arg(long, value_name = "FILE|annotations", value_parser = parse_events)]
    pub events: Option<cardiaffect_io::EventSource>,
    /// Keep the S seconds before each event as the trial's `baseline` segment (for
    /// `finetune --calibration baseline`), written -S..0.
    #[arg(long, value_name = "-S..0", allow_hyphen_values = true, value_parser = parse_baseline)]
    pub baseline: Option<f64>,
    /// The scale of a numeric label column, NAME=LO-HI (repeatable); a column without one has
    /// its scale inferred from its values, and says so.
    #[arg(long = "label-scale", value_name = "NAME=LO-HI", value_parser = cardiaffect_io::events::parse_label_scale)]
    pub label_scales: Vec<(String, (f64, f64))>,
}

fn parse_events(s: &str) -> Result<cardiaffect_io::EventSource, String> {
    let e: cardiaffect_io::EventSource = s.parse()?;
    if let cardiaffect_io::EventSource::File(p) = &e {
        if !p.is_file() {
            return Err(format!("{}: no such file", p.display()));
        }
    }
    Ok(e)
}

/// `-5..0` (or `5`): 5 seconds before onset.
pub fn parse_baseline(s: &str) -> Result<f64, String> {
    let bad = || format!("{s:?}: expected -S..0 (seconds before each onset), e.g. -5..0");
    let v = match s.split_once("..") {
        Some((a, b)) => {
            if b.trim().parse::<f64>().ok() != Some(0.0) {
                return Err(format!(
                    "{s:?}: a baseline ends at the onset: expected -S..0"
                ));
            }
            -a.trim().parse::<f64>().map_err(|_| bad())?
        }
        None => s.trim().parse::<f64>().map_err(|_| bad())?.abs(),
    };
    if !(v > 0.0 && v.is_finite()) {
        return Err(bad());
    }
    Ok(v)
}

/// "arousal (1-9, ...), trial_type (classes a, b)": the label columns a task can be made of.
pub fn task_list(columns: impl Iterator<Item = (String, Vec<String>, f64, f64, String)>) -> String {
    columns
        .map(|(name, classes, lo, hi, desc)| {
            if classes.is_empty() {
                format!("{name} (high/low on {lo}-{hi}, {desc})")
            } else {
                format!("{name} (classes {})", classes.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What to say when the shipped pre-trained weights (`finetune`'s default start) expect
/// another window or rate than `cfg`'s: `finetune` would refuse the corpus with them, so the
/// user hears it before the long run, not after.
pub fn window_warning(
    cfg: &PrepareConfig,
    weights: &cardiaffect_bundle::Preprocess,
) -> Option<String> {
    let other_fs = (weights.fs - cfg.fs).abs() > 1e-9;
    if !other_fs && weights.window_len() == cfg.window_len() {
        return None;
    }
    Some(format!(
        "the shipped pre-trained weights (`finetune --pretrained bundled`, the default) expect {} s windows at {} Hz ({} samples); this corpus gets {} s at {} Hz ({} samples), which finetune refuses with them: prepare with --window {}s{}, or fine-tune with --pretrained none or your own pretrain run",
        weights.window_s,
        weights.fs,
        weights.window_len(),
        cfg.window_s,
        cfg.fs,
        cfg.window_len(),
        weights.window_s,
        if other_fs {
            format!(" --fs {}", weights.fs)
        } else {
            String::new()
        }
    ))
}

pub fn parse_duration(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("ms") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60.0)
    } else {
        (s, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0 && v.is_finite())
        .map(|v| v * mult)
        .ok_or_else(|| format!("{s:?}: expected a duration such as 10s, 2500ms or 1m"))
}

fn parse_band(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: expected LOW,HIGH in Hz, e.g. 0.5,40"))?;
    let (a, b) = (
        a.trim()
            .parse::<f64>()
            .map_err(|_| format!("{a:?} is not a frequency"))?,
        b.trim()
            .parse::<f64>()
            .map_err(|_| format!("{b:?} is not a frequency"))?,
    );
    if !(0.0 < a && a < b) {
        return Err(format!("{s:?}: expected 0 < LOW < HIGH"));
    }
    Ok((a, b))
}

pub fn config_from(a: &PrepareArgs) -> PrepareConfig {
    PrepareConfig {
        fs: a.fs,
        window_s: a.window,
        stride_s: a.stride,
        clean: CleanConfig {
            low_hz: a.band.0,
            high_hz: a.band.1,
            order: a.order,
            notch_hz: a.notch,
        },
        dtype: a.dtype,
        ..PrepareConfig::default()
    }
}

pub fn sources_from(a: &PrepareArgs) -> Result<Vec<Source>> {
    let specs = if a.sources.is_empty() {
        vec!["bundled".to_string()]
    } else {
        a.sources.clone()
    };
    let mut out = Vec::new();
    for s in specs {
        if s == "bundled" {
            out.extend(crate::bundled::sources()?);
            continue;
        }
        let resolved = crate::bundled::source_spec(&s)?;
        let mut src: Source = resolved
            .as_deref()
            .unwrap_or(&s)
            .parse()
            .map_err(anyhow::Error::msg)?;
        if !src.path.exists() {
            bail!("--source {s}: {} does not exist", src.path.display());
        }
        src.lead = a.lead.clone();
        src.fs = a.input_fs;
        src.events = a.events.events.clone();
        src.baseline_s = a.events.baseline;
        src.label_scales = a.events.label_scales.iter().cloned().collect();
        out.push(src);
    }
    Ok(out)
}

pub fn run(a: PrepareArgs) -> Result<()> {
    if let Some(dir) = &a.verify {
        let c = cardiaffect_corpus::verify(dir)?;
        println!(
            "{}: ok: {} windows; windows.npy, windows.csv and dropped.csv match the manifest's checksums, every value is finite",
            dir.display(),
            c.len()
        );
        return Ok(());
    }
    let Some(out) = a.out.clone() else {
        bail!("--out DIR is required (or --verify DIR)");
    };
    let cfg = config_from(&a);
    let sources = sources_from(&a)?;
    if let Some(w) = window_warning(&cfg, &crate::bundled::weights_preprocess()?) {
        eprintln!("warning: {w}");
    }
    if let Some(j) = a.jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global()
            .context("setting --jobs")?;
    }
    let bar = crate::pretrain::styled_bar(
        ProgressBar::new(0),
        "{spinner} prepare [{bar:30}] {pos}/{len} units, {msg} (ETA {eta})",
        Duration::from_millis(200),
    );
    let windows = std::sync::atomic::AtomicUsize::new(0);
    let report = prepare(&sources, &out, &cfg, &|p| match p {
        Progress::Units(n) => bar.set_length(n as u64),
        Progress::UnitDone {
            windows: w,
            reused,
            unit,
        } => {
            let total = windows.fetch_add(w, std::sync::atomic::Ordering::Relaxed) + w;
            bar.set_message(format!(
                "{total} windows{}",
                if reused { " (reusing)" } else { "" }
            ));
            tracing::info!(
                "{}: {w} windows{}",
                unit.display(),
                if reused { " (reused)" } else { "" }
            );
            bar.inc(1);
        }
        Progress::Assembling => bar.set_message("writing the corpus".to_string()),
    });
    bar.finish_and_clear();
    let report = report?;
    let m = &report.manifest;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"out": out, "counts": m.counts, "reused_units": report.reused_units, "up_to_date": report.up_to_date, "config": m.config,
                    "sources": m.sources.iter().map(|s| serde_json::json!({"spec": s.spec, "hours": s.hours, "windows": s.windows, "units": s.shards.len(), "unreadable": s.unreadable})).collect::<Vec<_>>()})
            )?
        );
        return Ok(());
    }
    let dropped: usize = m.counts.dropped.values().sum();
    println!(
        "{} windows of {} s at {} Hz from {} recordings ({} units, {} reused){}",
        m.counts.windows,
        cfg.window_s,
        cfg.fs,
        m.counts.recordings,
        m.counts.units,
        report.reused_units,
        if report.up_to_date {
            "; corpus already up to date"
        } else {
            ""
        }
    );
    println!(
        "dropped {dropped} windows: {}",
        if m.counts.dropped.is_empty() {
            "none".to_string()
        } else {
            m.counts
                .dropped
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if m.sources.len() > 1 {
        for src in &m.sources {
            println!(
                "  {}: {:.2} h of signal, {} windows, {} units{}",
                src.spec,
                src.hours,
                src.windows,
                src.shards.len(),
                if src.unreadable.is_empty() {
                    String::new()
                } else {
                    format!(", {} unreadable", src.unreadable.len())
                }
            );
        }
    }
    let unreadable: usize = m.counts.unreadable.values().sum();
    if unreadable > 0 {
        println!(
            "{unreadable} units unreadable, not prepared: {} (each named in the manifest's sources[].unreadable and below)",
            m.counts
                .unreadable
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if m.counts.skipped_trials > 0 {
        println!(
            "skipped {} trials: {} (each named in the manifest's warnings)",
            m.counts.skipped_trials,
            if m.counts.skipped.is_empty() {
                "empty or all-NaN".to_string()
            } else {
                m.counts
                    .skipped
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    if !m.label_columns.is_empty() {
        println!(
            "labels: {}",
            m.label_columns
                .iter()
                .map(|c| format!("{c} ({})", m.label_scales[c].describe()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "tasks (finetune --task): {}",
            task_list(m.label_columns.iter().map(|c| {
                let s = &m.label_scales[c];
                (
                    c.clone(),
                    s.classes.clone(),
                    s.min,
                    s.max,
                    s.description.clone(),
                )
            }))
        );
    }
    for w in report.warnings.iter().take(10) {
        println!("warning: {w}");
    }
    if report.warnings.len() > 10 {
        println!("... and {} more warnings", report.warnings.len() - 10);
    }
    println!(
        "wrote {}/windows.npy, windows.csv, dropped.csv, manifest.json",
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_the_shipped_weights_do_not_expect_is_said_with_the_flag() {
        let w = crate::bundled::weights_preprocess().unwrap();
        let cfg = |window_s: f64, fs: f64| PrepareConfig {
            window_s,
            fs,
            ..PrepareConfig::default()
        };
        assert_eq!(window_warning(&cfg(w.window_s, w.fs), &w), None);
        let m = window_warning(&cfg(w.window_s + 1.0, w.fs), &w).unwrap();
        assert!(m.contains(&format!("--window {}s,", w.window_s)), "{m}");
        let m = window_warning(&cfg(w.window_s, 2.0 * w.fs), &w).unwrap();
        assert!(
            m.contains(&format!("--window {}s --fs {}", w.window_s, w.fs)),
            "{m}"
        );
    }

    #[test]
    fn flags_default_to_the_librarys_config() {
        // Window, stride and band are written as text ("4s", "0.5,40"); parsed, they must be
        // the library's defaults.
        let a: PrepareArgs = crate::pretrain::parse_flags(&["t", "--out", "o"]);
        assert_eq!(config_from(&a), PrepareConfig::default());
    }
}
