//! `cardiaffect pretrain`: self-supervised pre-training on one or more corpora; with the `mpi`
//! feature, data-parallel when an MPI launcher started it ([`crate::mpi_group`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cardiaffect_model::ModelConfig;
use cardiaffect_train::{
    count_train_windows, pretrain_group, CorpusSpec, Event, Group, Masking, PretrainConfig,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// The pretext task's masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MaskStrategy {
    /// Contiguous runs of `--mask-span` tokens.
    Spans,
    /// Independent tokens.
    Tokens,
}

/// The library's defaults, which the flags show (one place for each).
fn defaults() -> PretrainConfig {
    PretrainConfig::new(ModelConfig::new(), Vec::new())
}

/// The default masking's ratio and span.
fn default_masking() -> (f64, usize) {
    match Masking::default() {
        Masking::Spans { ratio, span } => (ratio, span),
        Masking::RandomTokens { ratio } => (ratio, 1),
    }
}

#[derive(Args)]
pub struct PretrainArgs {
    /// A corpus folder written by `cardiaffect prepare`. Repeatable.
    #[arg(long = "corpus", value_name = "DIR")]
    pub corpora: Vec<PathBuf>,
    /// Sampling weight of each corpus, in --corpus order (default: 1 each).
    #[arg(long = "corpus-weight", value_name = "W")]
    pub weights: Vec<f64>,
    /// Run folder (created).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Model config (JSON or TOML; fields of ModelConfig, missing ones take their defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Passes over the training windows (converted to steps).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Windows per step per process (started by mpirun or srun, each rank takes this many:
    /// a step sees batch x ranks).
    #[arg(long, default_value_t = defaults().batch)]
    pub batch: usize,
    /// Peak learning rate (AdamW, linear warm-up then cosine decay).
    #[arg(long, default_value_t = defaults().lr)]
    pub lr: f64,
    /// Warm-up steps (default: 5 % of the steps).
    #[arg(long)]
    pub warmup: Option<usize>,
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    #[arg(long, default_value_t = defaults().checkpoint_every)]
    pub checkpoint_every: usize,
    #[arg(long, default_value_t = defaults().eval_every)]
    pub eval_every: usize,
    /// Continue the run in RUN_DIR from its last checkpoint, with its saved configuration.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Train nothing: measure these weights (a model folder, or `bundled`) on the validation
    /// windows and masks of this configuration (or of --resume RUN_DIR's), the figures a run
    /// of it writes in summary.json, so two sets of weights compare on equal terms. Writes
    /// nothing.
    #[arg(long, value_name = "WEIGHTS_DIR|bundled")]
    pub evaluate: Option<String>,
    /// Masking strategy of the pretext task: spans (contiguous runs of tokens) or tokens
    /// (independent tokens).
    #[arg(long, value_enum, default_value_t = MaskStrategy::Spans)]
    pub mask_strategy: MaskStrategy,
    /// Fraction of tokens hidden.
    #[arg(long, default_value_t = default_masking().0)]
    pub mask_ratio: f64,
    /// Tokens per span (spans strategy).
    #[arg(long, default_value_t = default_masking().1)]
    pub mask_span: usize,
    /// Let the conv encoder see the hidden samples (only their token embeddings are replaced).
    #[arg(long)]
    pub show_masked_input: bool,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

pub fn model_config(path: &Option<PathBuf>) -> Result<ModelConfig> {
    let Some(p) = path else {
        return Ok(ModelConfig::new());
    };
    let defaults = serde_json::to_value(ModelConfig::new())?;
    let given = config_fields(p)?;
    let mut merged = defaults;
    if let (Some(m), Some(g)) = (merged.as_object_mut(), given.as_object()) {
        for (k, v) in g {
            if !m.contains_key(k) {
                bail!(
                    "{}: unknown model config field `{k}` (fields: {})",
                    p.display(),
                    m.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(merged)
        .with_context(|| format!("{}: a field has the wrong type", p.display()))
}

/// The fields a model config file (JSON, or TOML by its extension) sets, as written.
pub fn config_fields(p: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(if p.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text)
            .with_context(|| format!("{}: not a TOML model config", p.display()))?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON model config", p.display()))?
    })
}

pub fn run(a: PretrainArgs) -> Result<()> {
    #[cfg(feature = "mpi")]
    if crate::mpi_group::launched() {
        let world = crate::mpi_group::World::init()?;
        let rank = world.rank();
        let result = world.group().and_then(|group| train(a, group));
        if let Err(e) = &result {
            if world.size() > 1 {
                // Every rank says why before the job ends (ranks fail together on a
                // disagreement; a lone failure names its rank).
                eprintln!(
                    "error: rank {rank} of {}: {}",
                    world.size(),
                    crate::output::flags("pretrain", &format!("{e:#}"))
                );
                world.abort(1);
            }
        }
        return result;
    }
    train(a, Group::alone())
}

fn train(a: PretrainArgs, mut group: Group) -> Result<()> {
    let device = a.device.device()?;
    let (world, leader) = (group.world_size, group.rank == 0);
    let (run, cfg, resume) = match &a.resume {
        Some(run) => {
            let p = run.join("pretrain.json");
            let saved: PretrainConfig =
                serde_json::from_slice(&std::fs::read(&p).with_context(|| {
                    format!(
                        "--resume {}: no pretrain.json: is it a pretrain run folder?",
                        run.display()
                    )
                })?)?;
            (run.clone(), saved, true)
        }
        None => {
            let out = match (&a.out, &a.evaluate) {
                (Some(o), _) => o.clone(),
                (None, Some(_)) => PathBuf::new(),
                (None, None) => bail!("--out RUN_DIR is required (or --resume RUN_DIR)"),
            };
            if a.corpora.is_empty() {
                bail!("give at least one --corpus DIR (a folder written by `cardiaffect prepare`)");
            }
            if !a.weights.is_empty() && a.weights.len() != a.corpora.len() {
                bail!(
                    "--corpus-weight: {} weights for {} corpora",
                    a.weights.len(),
                    a.corpora.len()
                );
            }
            let corpora = a
                .corpora
                .iter()
                .enumerate()
                .map(|(i, p)| CorpusSpec {
                    path: p.clone(),
                    weight: a.weights.get(i).copied().unwrap_or(1.0),
                })
                .collect();
            let mut cfg = PretrainConfig::new(model_config(&a.config)?, corpora);
            // --batch is per process, as in torch DDP and Horovod; the config holds the step's.
            cfg.batch = a.batch * world;
            cfg.world_size = world;
            cfg.lr = a.lr;
            cfg.seed = a.seed;
            cfg.checkpoint_every = a.checkpoint_every;
            cfg.eval_every = a.eval_every;
            cfg.masking = match a.mask_strategy {
                MaskStrategy::Tokens => Masking::RandomTokens {
                    ratio: a.mask_ratio,
                },
                MaskStrategy::Spans => Masking::Spans {
                    ratio: a.mask_ratio,
                    span: a.mask_span,
                },
            };
            cfg.masking.validate()?;
            cfg.hide_input = !a.show_masked_input;
            cfg.steps = match (a.steps, a.epochs) {
                (Some(s), _) => s,
                (None, Some(e)) => ((e * count_train_windows(&cfg)? as f64) / cfg.batch as f64)
                    .ceil()
                    .max(1.0) as usize,
                (None, None) => cfg.steps,
            };
            cfg.warmup_steps = a.warmup.unwrap_or(PretrainConfig::warmup_for(cfg.steps));
            (out, cfg, false)
        }
    };
    if let Some(w) = &a.evaluate {
        if world > 1 {
            bail!("--evaluate measures weights in one process: run it without mpirun/srun");
        }
        let dir = match w.as_str() {
            "bundled" => crate::bundled::weights_dir()?,
            p => PathBuf::from(p),
        };
        let ((l, b), per) = cardiaffect_train::pretrain::evaluate_weights(&cfg, &dir, &device)
            .with_context(|| format!("--evaluate {w}"))?;
        println!("| validation set | windows | masked MSE | mean baseline | ratio |");
        println!("|---|---|---|---|---|");
        for c in &per {
            println!(
                "| {} | {} | {:.3} | {:.3} | {:.0} % |",
                c.corpus,
                c.val_windows,
                c.val_loss,
                c.baseline_mean_prediction,
                100.0 * c.val_loss / c.baseline_mean_prediction
            );
        }
        println!(
            "| all | {} | {l:.3} | {b:.3} | {:.0} % |",
            per.iter().map(|c| c.val_windows).sum::<usize>(),
            100.0 * l / b
        );
        println!(
            "weights {}: on the held-out subjects of seed {}",
            w, cfg.seed
        );
        return Ok(());
    }
    if leader && world > 1 {
        println!(
            "data-parallel over MPI: {world} processes x {} windows = {} windows per step",
            cfg.batch / world,
            cfg.batch
        );
    }
    // Rank 0 speaks for the group.
    let bar = styled_bar(
        if leader {
            ProgressBar::new(cfg.steps as u64)
        } else {
            ProgressBar::hidden()
        },
        "{spinner} pretrain [{bar:30}] {pos}/{len} steps {msg} (ETA {eta})",
        Duration::from_millis(250),
    );
    let mut last_val = String::new();
    let mut show = |e| match e {
        Event::Start {
            start_step,
            train_windows,
            val_windows,
            params,
            ..
        } => {
            bar.set_position(start_step as u64);
            crate::output::say(&bar, format!("{params} parameters; {train_windows} training windows, {val_windows} validation windows (held-out subjects){}", if start_step > 0 { format!("; resuming at step {start_step}") } else { String::new() }));
        }
        Event::Step {
            step,
            loss,
            lr,
            windows_per_s,
        } => {
            bar.set_position(step as u64);
            bar.set_message(format!(
                "loss {loss:.4} lr {lr:.2e} {windows_per_s:.0} win/s{last_val}"
            ));
        }
        Event::Eval {
            val_loss, baseline, ..
        } => last_val = format!(" | val {val_loss:.4} (mean baseline {baseline:.4})"),
        Event::Checkpoint { .. } => {}
    };
    let mut quiet = |_: Event| {};
    let on: &mut dyn FnMut(Event) = if leader { &mut show } else { &mut quiet };
    let done = pretrain_group(&cfg, &run, resume, &device, &mut group, on);
    bar.finish_and_clear();
    let Some(s) = done?.summary else {
        return Ok(());
    };
    println!("pre-trained {} steps: validation masked-reconstruction MSE {:.4} vs {:.4} for predicting the window mean ({:.0}% of it; first evaluation {:.4})", s.steps, s.val_loss, s.baseline_mean_prediction, 100.0 * s.val_loss / s.baseline_mean_prediction, s.val_loss_first_eval);
    if s.val_by_corpus.len() > 1 {
        for c in &s.val_by_corpus {
            println!(
                "  {}: {:.4} vs {:.4} ({:.0}%, {} windows)",
                c.corpus,
                c.val_loss,
                c.baseline_mean_prediction,
                100.0 * c.val_loss / c.baseline_mean_prediction,
                c.val_windows
            );
        }
    }
    let corpora: Vec<&Path> = cfg.corpora.iter().map(|c| c.path.as_path()).collect();
    println!(
        "{}",
        held_out_text(&s.val_subjects, &corpora, &run.join("summary.json"))
    );
    println!("wrote {}/model.safetensors, config.json, summary.json, metrics.jsonl, loss.svg, reconstructions.svg/.png, preprocess.json", run.display());
    Ok(())
}

/// Subjects named per corpus on the terminal; the rest are counted.
const SHOWN_SUBJECTS: usize = 5;

/// The held-out subjects in one line: how many per corpus and the first few (a corpus of
/// single-record subjects holds out hundreds); `summary` has them all. `subjects` are
/// `CORPUS:DATASET/SUBJECT`, as in `summary.json`.
fn held_out_text(subjects: &[String], corpora: &[&Path], summary: &Path) -> String {
    let mut parts = Vec::new();
    let mut named = 0;
    for (i, c) in corpora.iter().enumerate() {
        if corpora[..i].contains(c) {
            continue;
        }
        let prefix = format!("{}:", c.display());
        let mine: Vec<&str> = subjects
            .iter()
            .filter_map(|s| s.strip_prefix(&prefix))
            .collect();
        named += mine.len();
        if mine.is_empty() {
            continue;
        }
        let more = mine.len().saturating_sub(SHOWN_SUBJECTS);
        parts.push(format!(
            "{} of {} ({}{})",
            mine.len(),
            c.display(),
            mine[..mine.len() - more].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    // Names of no given corpus (a run resumed from elsewhere): counted, never lost silently.
    if named < subjects.len() {
        parts.push(format!("{} others", subjects.len() - named));
    }
    format!(
        "held-out subjects: {}; all of them in {}",
        parts.join(", "),
        summary.display()
    )
}

/// `bar` as every command draws its progress (`template` says what it counts), redrawn every
/// `tick`.
pub(crate) fn styled_bar(bar: ProgressBar, template: &str, tick: Duration) -> ProgressBar {
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(tick);
    bar
}

/// A command's flags parsed from `argv` as the binary parses them (for the commands' tests of
/// their flag defaults).
#[cfg(test)]
pub(crate) fn parse_flags<A: clap::Args>(argv: &[&str]) -> A {
    let cmd = A::augment_args(clap::Command::new("t"));
    A::from_arg_matches(&cmd.try_get_matches_from(argv).unwrap()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_subjects_are_counted_per_corpus_not_listed() {
        let mut subjects: Vec<String> =
            (1..=853).map(|i| format!("/d/cinc:CinC/A{i:05}")).collect();
        subjects.push("bundled:MIT-BIH/208".into());
        let t = held_out_text(
            &subjects,
            &[Path::new("/d/cinc"), Path::new("bundled")],
            Path::new("run/summary.json"),
        );
        assert_eq!(
            t,
            "held-out subjects: 853 of /d/cinc (CinC/A00001, CinC/A00002, CinC/A00003, \
             CinC/A00004, CinC/A00005 and 848 more), 1 of bundled (MIT-BIH/208); all of them \
             in run/summary.json"
        );
        assert!(!t.contains("A00006"));
    }

    #[test]
    fn flags_default_to_the_librarys_config() {
        let a: PretrainArgs = parse_flags(&["t"]);
        let d = defaults();
        assert_eq!((a.batch, a.lr, a.seed), (d.batch, d.lr, d.seed));
        assert_eq!(
            (a.checkpoint_every, a.eval_every),
            (d.checkpoint_every, d.eval_every)
        );
        assert_eq!(
            Masking::Spans {
                ratio: a.mask_ratio,
                span: a.mask_span
            },
            d.masking
        );
        assert_eq!(a.mask_strategy, MaskStrategy::Spans);
    }
}
