//! `cardiaffect predict`: a fine-tuned model on a new recording, as a timeline and a plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cardiaffect_bundle::Calibration;
use cardiaffect_corpus::blocks::BlockConfig;
use cardiaffect_infer::{predict_source, Predictor, Timeline, TimelineRow, WindowAttention};
use cardiaffect_io::chunked::{self, InMemory, SampleSource};
use cardiaffect_io::{read, Format, ReadOptions, Recording};
use cardiaffect_render::figures::timeline;
use clap::Args;

#[derive(Args)]
pub struct PredictArgs {
    /// A fine-tuned model: a `finetune` run folder (its final model/) or a model folder.
    /// Repeat for several tasks (e.g. an arousal and a valence model).
    #[arg(long = "model", value_name = "RUN_DIR", required = true)]
    pub models: Vec<PathBuf>,
    /// The recording (any format `inspect` reads), or a bundled one by name, e.g.
    /// `bundled:biosignalsnotebooks/ecg_7min`.
    pub recording: PathBuf,
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<Format>())]
    pub format: Format,
    /// Sampling rate for formats that do not store one (CSV, NPY).
    #[arg(long = "input-fs", value_name = "HZ")]
    pub fs: Option<f64>,
    /// Which ECG lead (name or 1-based number).
    #[arg(long)]
    pub lead: Option<String>,
    /// Seconds between window starts (default: half a window).
    #[arg(long, value_name = "S")]
    pub hop: Option<f64>,
    /// Timeline file: .csv or .json (default: CSV on standard output). A plot is written beside
    /// it (same name, .svg).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Seconds of this recording to calibrate from (e.g. a resting minute, `0-60`), for models
    /// fine-tuned with subject or baseline calibration (default for `subject`: every window of
    /// the recording that passes the quality checks; `baseline` needs it).
    #[arg(long, value_name = "START-END", value_parser = parse_segment)]
    pub calibrate_from: Option<(f64, f64)>,
    /// What a calibrated model's scores are relative to, without --calibrate-from: each
    /// `recording`'s own good windows, or all recordings of the same `person` read together
    /// (a BIDS subject folder with a rest run and a task run, e.g. `bundled:eegmat/sub-03`).
    #[arg(long, value_enum, default_value_t = Reference::Recording, conflicts_with = "calibrate_from")]
    pub reference: Reference,
    /// Seconds of signal band-passed at once: a longer recording is filtered in blocks of this
    /// length (each with 30 s of signal on both sides, discarded), read from WFDB and EDF
    /// files as it goes, so memory does not grow with the recording.
    #[arg(long = "block", value_name = "S", default_value_t = BlockConfig::default().block_s)]
    pub block_s: f64,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// What a calibrated model's scores are made relative to (`--reference`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Reference {
    Recording,
    Person,
}

/// `START-END` in seconds.
pub fn parse_segment(s: &str) -> std::result::Result<(f64, f64), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}`: expected START-END in seconds, e.g. 0-60"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<f64>()
            .map_err(|_| format!("`{s}`: `{x}` is not a number of seconds (expected START-END)"))
    };
    Ok((num(a)?, num(b)?))
}

fn col(name: &str) -> String {
    name.replace([' ', ','], "_")
}

fn csv(timelines: &[Timeline], models: &[Predictor]) -> String {
    use cardiaffect_io::formats::csv::field;
    let mut s = String::from("recording,subject,trial,start_s,end_s,quality,hr_bpm");
    for m in models {
        for c in &m.labels.classes {
            let _ = write!(s, ",p_{}", col(c));
        }
    }
    s.push('\n');
    for t in timelines {
        for r in &t.rows {
            let _ = write!(
                s,
                "{},{},{},{:.3},{:.3},{},{:.1}",
                field(&t.recording),
                field(&t.subject),
                field(&t.trial),
                r.start_s,
                r.end_s,
                r.quality,
                r.hr_bpm
            );
            for p in &r.probs {
                for v in p {
                    let _ = write!(s, ",{v:.4}");
                }
            }
            s.push('\n');
        }
    }
    s
}

fn json(timelines: &[Timeline], models: &[Predictor], blocks: &BlockConfig) -> serde_json::Value {
    serde_json::json!({
        "models": models.iter().map(|m| serde_json::json!({
            "dir": m.dir.display().to_string(),
            "task": m.labels.task,
            "classes": m.labels.classes,
            "label_rule": m.labels.describe(),
            "preprocess": m.preprocess,
            "operating_point": m.operating_point,
        })).collect::<Vec<_>>(),
        "filtering": format!(
            "zero-phase band-pass over the whole recording (offline); a run of signal longer than {} s is filtered in blocks of that length with {} s of signal on each side",
            blocks.block_s, blocks.margin_s
        ),
        "recordings": timelines,
    })
}

/// Said where a decision calibrated on the recording itself is shown: with every good window
/// as the reference, the logits are z-scored over the recording, so about half of any
/// recording lands on each side: "high" is high for this recording, not a state of the person.
const RELATIVE: &str = "relative to this recording";

/// Whether model `m`'s decisions are relative to the recording: subject calibration from
/// every good window of it (no `--calibrate-from` segment, no `--reference person`).
fn relative(m: &Predictor, a: &PredictArgs) -> bool {
    a.calibrate_from.is_none()
        && a.reference == Reference::Recording
        && m.operating_point
            .as_ref()
            .is_some_and(|op| op.calibration == Calibration::Subject)
}

/// The line printed under a decision relative to the recording.
fn relative_note(positive_class: Option<&str>) -> String {
    format!(
        "{RELATIVE}: every good window is the reference, so about half of any recording is called {}; for a statement about the person's state, calibrate from a rest segment (--calibrate-from START-END, e.g. a resting minute)",
        positive_class.unwrap_or("the positive class")
    )
}

/// The figure of one recording's timeline: its ECG strip, heart rate and each model's
/// probability of its last class; `relative`: the probabilities are relative to it.
fn plot(t: &Timeline, models: &[Predictor], relative: bool) -> String {
    let c = |m: &Predictor| m.labels.classes.len() - 1;
    timeline::timeline(&timeline::Timeline {
        title: format!("{} — subject {} trial {}", t.recording, t.subject, t.trial),
        strip: &t.strip,
        fs: models[0].preprocess.fs,
        windows: t
            .rows
            .iter()
            .map(|r| (r.start_s, r.end_s, r.hr_bpm))
            .collect(),
        probabilities: models
            .iter()
            .enumerate()
            .map(|(mi, m)| {
                let probs = t.rows.iter().map(|r| r.probs[mi][c(m)]).collect();
                (m.labels.classes[c(m)].as_str(), probs)
            })
            .collect(),
        note: relative.then(|| format!("{RELATIVE} (calibrated on its own windows)")),
    })
}

/// The timeline to plot: the first recording's, or, where the input holds several of the same
/// person (a subject's runs), all of them end to end, the title naming each trial's span.
fn plot_timeline(timelines: &[Timeline]) -> Option<Timeline> {
    let first = timelines.iter().find(|t| !t.rows.is_empty())?;
    let same: Vec<&Timeline> = timelines
        .iter()
        .filter(|t| t.subject == first.subject && !t.rows.is_empty())
        .collect();
    if same.len() < 2 {
        return Some(first.clone());
    }
    let mut out = first.clone();
    out.rows.clear();
    let mut offset = 0.0;
    let mut spans = Vec::new();
    for t in same {
        let end = t.rows.iter().map(|r| r.end_s).fold(0.0, f64::max);
        spans.push(format!("{} {:.0}-{:.0} s", t.trial, offset, offset + end));
        out.rows.extend(t.rows.iter().map(|r| TimelineRow {
            start_s: r.start_s + offset,
            end_s: r.end_s + offset,
            ..r.clone()
        }));
        offset += end;
    }
    out.trial = spans.join(", ");
    // The folder the recordings share (a BIDS subject's), not the first one's file name.
    let folder = Path::new(&first.recording).parent();
    if timelines
        .iter()
        .filter(|t| t.subject == first.subject)
        .all(|t| Path::new(&t.recording).parent() == folder)
    {
        if let Some(f) = folder.filter(|f| !f.as_os_str().is_empty()) {
            out.recording = f.display().to_string();
        }
    }
    Some(out)
}

/// One window's ECG with the CLS attention over its tokens shaded behind it.
fn plot_attention(t: &Timeline, a: &WindowAttention) -> String {
    timeline::attention(&timeline::Attention {
        title: format!(
            "{} — subject {} trial {}: the window at {:.1} s",
            t.recording, t.subject, t.trial, a.start_s
        ),
        start_s: a.start_s,
        fs: a.fs,
        window: &a.window,
        tokens: &a.tokens,
        layer: a.layer,
        heads: a.heads,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(cardiaffect_io::artifact::write_atomic(path, bytes)?)
}

/// Load every `--model`, naming the one that fails.
pub fn load_models(dirs: &[PathBuf], device: &burn::prelude::Device) -> Result<Vec<Predictor>> {
    dirs.iter()
        .map(|d| Predictor::load(d, device).with_context(|| format!("--model {}", d.display())))
        .collect()
}

pub fn run(a: PredictArgs) -> Result<()> {
    let device = a.device.device()?;
    let models = load_models(&a.models, &device)?;
    let hop = a.hop.unwrap_or(models[0].preprocess.window_s / 2.0);
    let opts = ReadOptions {
        fs: a.fs,
        lead: a.lead.clone(),
        ..Default::default()
    };
    let path = crate::bundled::resolve_recording(&a.recording)?;
    let reading = || format!("reading {}", a.recording.display());
    // WFDB and EDF stream through the file block by block (memory independent of the
    // recording's length); other formats are read whole.
    let mut whole: Vec<Vec<f32>> = Vec::new();
    let mut opened: Vec<(Recording, Option<Box<dyn SampleSource>>)> = Vec::new();
    match chunked::open(&path, a.format, &opts).with_context(reading)? {
        Some(streamed) => {
            opened = streamed
                .into_iter()
                .map(|s| (s.recording, Some(s.source)))
                .collect()
        }
        None => {
            let cardiaffect_io::ReadResult { output, .. } =
                read(&path, a.format, &opts).with_context(reading)?;
            for mut rec in output.recordings {
                whole.push(std::mem::take(&mut rec.samples));
                opened.push((rec, None));
            }
        }
    }
    let blocks = BlockConfig {
        block_s: a.block_s,
        ..BlockConfig::default()
    };
    let mut timelines = Vec::new();
    for (i, (rec, source)) in opened.iter_mut().enumerate() {
        let mut in_memory;
        let source: &mut dyn SampleSource = match source {
            Some(s) => s.as_mut(),
            None => {
                in_memory = InMemory(&whole[i]);
                &mut in_memory
            }
        };
        let mut t = predict_source(rec, source, &models, hop, a.calibrate_from, &blocks)
            .with_context(|| {
                format!(
                    "{}: subject {} trial {}",
                    a.recording.display(),
                    rec.subject,
                    rec.trial
                )
            })?;
        t.recording = crate::bundled::display_name(&rec.source);
        if t.rows.is_empty() {
            eprintln!(
                "warning: {} subject {} trial {}: no window (shorter than {} s, or NaN throughout)",
                t.recording, t.subject, t.trial, models[0].preprocess.window_s
            );
        }
        timelines.push(t);
    }
    if timelines.iter().all(|t| t.rows.is_empty()) {
        bail!("{}: no window to predict on", a.recording.display());
    }
    if a.reference == Reference::Person {
        cardiaffect_infer::calibrate_per_person(&mut timelines, &models);
    }
    for (mi, m) in models.iter().enumerate() {
        eprintln!("model {}: {}", m.dir.display(), m.labels.describe());
        match &m.operating_point {
            Some(op) => eprintln!(
                "  decisions: calibration {}{}",
                timelines
                    .iter()
                    .find_map(|t| t.calibration.get(mi))
                    .cloned()
                    .unwrap_or_else(|| op.calibration.to_string()),
                match (op.threshold, &op.positive_class) {
                    (Some(t), Some(c)) => format!(
                        "; {c} when its probability is above {t:.3} (chosen on {})",
                        op.chosen_on
                    ),
                    _ => String::new(),
                }
            ),
            None => eprintln!(
                "  decisions: no operating_point.json (a model from an older cardiaffect): uncalibrated, most probable class"
            ),
        }
        if relative(m, &a) {
            let op = m.operating_point.as_ref();
            eprintln!(
                "  {}",
                relative_note(op.and_then(|o| o.positive_class.as_deref()))
            );
        }
    }
    let relative_plot = models.iter().any(|m| relative(m, &a));
    match &a.out {
        None => print!("{}", csv(&timelines, &models)),
        Some(p) => {
            let is_json = p.extension().is_some_and(|e| e == "json");
            if is_json {
                write_atomic(
                    p,
                    &serde_json::to_vec_pretty(&json(&timelines, &models, &blocks))?,
                )?;
            } else {
                write_atomic(p, csv(&timelines, &models).as_bytes())?;
            }
            let svg = p.with_extension("svg");
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            let att_svg = p.with_file_name(format!("{stem}_attention.svg"));
            if let Some(t) = plot_timeline(&timelines) {
                write_atomic(&svg, plot(&t, &models, relative_plot).as_bytes())?;
                if let Some(a) = &t.attention {
                    write_atomic(&att_svg, plot_attention(&t, a).as_bytes())?;
                }
            }
            let n: usize = timelines.iter().map(|t| t.rows.len()).sum();
            let flagged: usize = timelines
                .iter()
                .flat_map(|t| &t.rows)
                .filter(|r| r.quality != "ok")
                .count();
            eprintln!(
                "wrote {} ({n} windows, {flagged} flagged by quality checks), {} and {}",
                p.display(),
                svg.display(),
                att_svg.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_relative_to_the_recording_says_so_and_how_to_do_better() {
        let n = relative_note(Some("high arousal"));
        assert!(n.starts_with("relative to this recording"), "{n}");
        assert!(
            n.contains("about half of any recording is called high arousal")
                && n.contains("--calibrate-from"),
            "{n}"
        );
    }
}
