//! `cardiaffect inspect PATH`: what is in a file or folder, as a table or one JSON document.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use cardiaffect_io::{read, Format, ReadOptions, Recording, Run};
use clap::Args;
use serde::Serialize;

#[derive(Args)]
pub struct InspectArgs {
    /// A file or a folder in one of the supported layouts, or bundled data by name
    /// (`bundled:eegmat`, `bundled:biosignalsnotebooks/ecg_7min`).
    pub path: PathBuf,
    /// Format of PATH; `auto` detects it from names and magic bytes.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: Format,
    /// Sampling rate in Hz, for formats that do not store one (CSV, NPY).
    #[arg(long, value_name = "HZ")]
    pub fs: Option<f64>,
    /// Which ECG lead: a name ("ECG Left", "right", "MLII") or a 1-based number.
    #[arg(long)]
    pub lead: Option<String>,
    #[command(flatten)]
    pub events: crate::prepare::EventArgs,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

#[derive(Serialize)]
struct JsonRecording {
    dataset: String,
    source: String,
    subject: String,
    trial: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<String>,
    lead: String,
    fs: f64,
    samples: usize,
    duration_s: f64,
    unit: Option<String>,
    /// Non-finite values (a trial without a rating) are written as null.
    labels: BTreeMap<String, Option<f64>>,
    label_scales: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_track: Option<JsonTrack>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    annotations: Vec<cardiaffect_io::Annotation>,
    channels: Vec<JsonChannel>,
    first_samples: Vec<Option<f32>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    meta: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct JsonTrack {
    name: String,
    fs: f64,
    /// Samples per class name.
    counts: BTreeMap<String, usize>,
}

#[derive(Serialize)]
struct JsonChannel {
    name: String,
    fs: f64,
    samples: Option<usize>,
}

#[derive(Serialize)]
struct JsonDoc {
    format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detected: Option<String>,
    recordings: Vec<JsonRecording>,
    skipped: Vec<cardiaffect_io::Skipped>,
    warnings: Vec<String>,
    /// The continuous recordings that `recordings` were cut from at events (BIDS, `--events`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<Run>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn to_json(r: &Recording) -> JsonRecording {
    JsonRecording {
        dataset: r.dataset.clone(),
        source: r.source.display().to_string(),
        subject: r.subject.clone(),
        trial: r.trial.clone(),
        segment: r.segment.clone(),
        lead: r.lead.clone(),
        fs: r.fs,
        samples: r.samples.len(),
        duration_s: r.duration_s(),
        unit: r.unit.clone(),
        labels: r
            .labels
            .iter()
            .map(|l| (l.name.clone(), finite(l.value)))
            .collect(),
        label_scales: r
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.scale.description.to_string()))
            .collect(),
        label_track: r.label_track.as_ref().map(|t| JsonTrack {
            name: t.name.clone(),
            fs: t.fs,
            counts: t
                .counts()
                .into_iter()
                .map(|(c, n)| {
                    (
                        t.class_name(c)
                            .map(str::to_string)
                            .unwrap_or_else(|| c.to_string()),
                        n,
                    )
                })
                .collect(),
        }),
        annotations: r.annotations.clone(),
        channels: r
            .channels
            .iter()
            .map(|c| JsonChannel {
                name: c.name.clone(),
                fs: c.fs,
                samples: c.len,
            })
            .collect(),
        first_samples: r
            .samples
            .iter()
            .take(5)
            .map(|&v| v.is_finite().then_some(v))
            .collect(),
        meta: r.meta.clone(),
    }
}

fn labels_text(r: &Recording) -> String {
    if let Some(t) = &r.label_track {
        let counts = t.counts();
        let parts: Vec<String> = counts
            .iter()
            .filter(|(c, _)| **c != 0)
            .map(|(c, n)| {
                format!(
                    "{} {:.0}s",
                    t.class_name(*c).unwrap_or("?"),
                    *n as f64 / t.fs
                )
            })
            .collect();
        return format!("{}: {}", t.name, parts.join(", "));
    }
    r.labels
        .iter()
        .take(5)
        .map(|l| {
            let short: String = l.name.chars().take(3).collect();
            if let Some(class) = l
                .scale
                .classes
                .get(l.value as usize)
                .filter(|_| l.value >= 0.0)
            {
                format!("{short}={class}")
            } else if l.value.is_finite() {
                format!("{short}={}", trim_float(l.value))
            } else {
                format!("{short}=NA")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn duration_text(s: f64) -> String {
    if s >= 3600.0 {
        format!(
            "{}h{:02}m{:02}s",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64,
            (s % 60.0) as u64
        )
    } else if s >= 60.0 {
        format!("{}m{:04.1}s", (s / 60.0) as u64, s % 60.0)
    } else {
        format!("{s:.1}s")
    }
}

/// One scale per label column over every recording, as `prepare` makes the corpus's: each
/// events file lists only its own classes, so a column's classes are the sorted union of all
/// of them, and an inferred range the union of the ranges.
fn label_columns(recordings: &[Recording]) -> BTreeMap<&str, cardiaffect_io::Scale> {
    let mut columns: BTreeMap<&str, cardiaffect_io::Scale> = BTreeMap::new();
    for l in recordings.iter().flat_map(|r| &r.labels) {
        let Some(m) = columns.get_mut(l.name.as_str()) else {
            columns.insert(l.name.as_str(), l.scale.clone());
            continue;
        };
        if !l.scale.classes.is_empty() {
            for c in &l.scale.classes {
                if !m.classes.contains(c) {
                    m.classes.push(c.clone());
                }
            }
            m.classes.sort();
        } else if m.inferred && l.scale.inferred {
            m.min = m.min.min(l.scale.min);
            m.max = m.max.max(l.scale.max);
        }
    }
    columns
}

/// Columns padded to their widest cell; the columns in `right` right-aligned (numbers).
fn write_table(
    w: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right.contains(&i) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    writeln!(w, "{}", line(&header))?;
    for r in rows {
        writeln!(w, "{}", line(r))?;
    }
    Ok(())
}

/// The continuous recordings the trials were cut from, one line each, and their total.
fn write_runs(w: &mut impl Write, root: &Path, runs: &[Run]) -> Result<()> {
    writeln!(
        w,
        "runs (the continuous recordings the trials are cut from):"
    )?;
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.source
                    .strip_prefix(root)
                    .ok()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(&r.source)
                    .display()
                    .to_string(),
                r.subject.clone(),
                r.lead.clone(),
                trim_float(r.fs),
                r.samples.to_string(),
                duration_text(r.duration_s),
                r.channels.len().to_string(),
                r.events.to_string(),
            ]
        })
        .collect();
    let header = [
        "file", "subject", "lead", "fs", "samples", "duration", "channels", "events",
    ];
    write_table(w, &header, &rows, &[3, 4, 6, 7])?;
    writeln!(
        w,
        "{} runs, {} of signal, {} events",
        runs.len(),
        duration_text(runs.iter().map(|r| r.duration_s).sum()),
        runs.iter().map(|r| r.events).sum::<usize>()
    )?;
    Ok(())
}

pub fn run(a: InspectArgs) -> Result<()> {
    let opts = ReadOptions {
        fs: a.fs,
        lead: a.lead.clone(),
        events: a.events.events.clone(),
        baseline_s: a.events.baseline,
        label_scales: a.events.label_scales.iter().cloned().collect(),
        zero_copy: false,
    };
    let cardiaffect_io::ReadResult {
        format,
        detected,
        output: out,
    } = read(
        &crate::bundled::resolve_recording(&a.path)?,
        a.format,
        &opts,
    )?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if a.json {
        let doc = JsonDoc {
            format: format.name().to_string(),
            detected,
            recordings: out.recordings.iter().map(to_json).collect(),
            skipped: out.skipped.clone(),
            warnings: out.warnings.clone(),
            runs: out.runs.clone(),
        };
        serde_json::to_writer_pretty(&mut w, &doc)?;
        writeln!(w)?;
        return Ok(());
    }
    if let Some(d) = &detected {
        writeln!(w, "detected format: {format} ({d})")?;
    } else {
        writeln!(w, "format: {format}")?;
    }
    let rows: Vec<Vec<String>> = out
        .recordings
        .iter()
        .map(|r| {
            vec![
                r.dataset.clone(),
                r.subject.clone(),
                match &r.segment {
                    Some(s) => format!("{} {s}", r.trial),
                    None => r.trial.clone(),
                },
                r.lead.clone(),
                trim_float(r.fs),
                r.samples.len().to_string(),
                duration_text(r.duration_s()),
                labels_text(r),
            ]
        })
        .collect();
    let header = [
        "dataset", "subject", "trial", "lead", "fs", "samples", "duration", "labels",
    ];
    write_table(&mut w, &header, &rows, &[4, 5])?;
    let total: f64 = out.recordings.iter().map(|r| r.duration_s()).sum();
    let subjects: std::collections::BTreeSet<&str> =
        out.recordings.iter().map(|r| r.subject.as_str()).collect();
    if out.runs.is_empty() {
        writeln!(
            w,
            "{} recordings, {} subjects, {} of signal",
            out.recordings.len(),
            subjects.len(),
            duration_text(total)
        )?;
    } else {
        // Trials hold only the events' part of each run: both totals, so that neither is
        // taken for the dataset's length.
        writeln!(
            w,
            "{} recordings (trials cut at events), {} subjects, {} of signal in them",
            out.recordings.len(),
            subjects.len(),
            duration_text(total)
        )?;
        write_runs(&mut w, &a.path, &out.runs)?;
    }
    if let Some(r) = out.recordings.first() {
        if !r.channels.is_empty() {
            let names: Vec<&str> = r.channels.iter().map(|c| c.name.as_str()).collect();
            writeln!(w, "other channels: {}", names.join(", "))?;
        }
        if !r.annotations.is_empty() {
            writeln!(
                w,
                "annotations: {} (first: {:.1}s {:?})",
                r.annotations.len(),
                r.annotations[0].onset_s,
                r.annotations[0].text
            )?;
        }
    }
    let columns = label_columns(&out.recordings);
    if !columns.is_empty() {
        writeln!(
            w,
            "tasks (finetune --task, after prepare): {}",
            crate::prepare::task_list(columns.iter().map(|(n, s)| {
                (
                    n.to_string(),
                    s.classes.clone(),
                    s.min,
                    s.max,
                    s.description.to_string(),
                )
            }))
        )?;
    }
    for s in &out.skipped {
        writeln!(
            w,
            "skipped: {} {} trial {}: {}",
            s.source.display(),
            s.subject,
            s.trial,
            s.reason
        )?;
    }
    for m in &out.warnings {
        writeln!(w, "warning: {m}")?;
    }
    Ok(())
}
