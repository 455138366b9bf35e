//! Per-fold files of a run folder (`folds/<method>-fold<k>.json`, vouched for by
//! `folds/checksums.json`, reused on a re-run) and the windows a fold scores.

use super::*;

/// The files of a finished run that `checksums.json` vouches for (written last).
pub const RESULT_FILES: [&str; 6] = [
    "finetune.json",
    "predictions.csv",
    "results.json",
    "results.md",
    "confusion.svg",
    "folds.svg",
];

/// A fold file is reused only if `folds/checksums.json` vouches for it (else it is computed
/// again: a damaged one is said, a missing entry means the run stopped right after writing it).
pub(super) fn fold_file_intact(file: &Path) -> bool {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return false;
    };
    let name = name.to_string_lossy();
    match Checksums::load(dir) {
        Ok(Some(list)) if list.files.contains_key(name.as_ref()) => {
            match list.check_file(dir, &name) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("{e}: this fold is computed again");
                    false
                }
            }
        }
        Ok(_) => false,
        Err(e) => {
            tracing::warn!("{e}: the folds are computed again");
            false
        }
    }
}

/// Record `file`'s checksum in its folder's `checksums.json` (one writer: the run's lock).
pub(super) fn vouch_for_fold_file(file: &Path) -> Result<(), TrainError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut list = Checksums::load(dir).ok().flatten().unwrap_or_default();
    let sum = artifact::checksum_file(file).map_err(io_err(file))?;
    list.files.insert(name, sum);
    write_json_atomic(&dir.join(Checksums::FILE), &list)?;
    Ok(())
}

/// Saved per fold and method: the metrics, the test probabilities at the operating point, and
/// the scores before calibration of every scored window (validation, test and, for `baseline`,
/// rest windows), which `fusion` combines.
#[derive(Serialize, Deserialize)]
pub(super) struct FoldFile {
    pub(super) result: FoldResult,
    pub(super) test: Vec<usize>,
    pub(super) probs: Vec<Vec<f64>>,
    #[serde(default)]
    pub(super) scored: Vec<usize>,
    #[serde(default)]
    pub(super) raw: Vec<Vec<f64>>,
}

/// The windows a fold scores: validation and test, and with `baseline` calibration the rest
/// windows of those people (their reference), sorted.
pub(super) fn scored_windows(
    corpus: &Corpus,
    calibration: Calibration,
    val: &[usize],
    test: &[usize],
) -> Vec<usize> {
    let mut out: Vec<usize> = val.iter().chain(test).copied().collect();
    if calibration == Calibration::Baseline {
        let people: std::collections::BTreeSet<String> = out
            .iter()
            .map(|&i| decision::person(&corpus.rows[i]))
            .collect();
        out.extend(
            (0..corpus.len())
                .filter(|&i| is_rest(&corpus.rows[i]))
                .filter(|&i| people.contains(&decision::person(&corpus.rows[i]))),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The protocol's folds over the labeled windows; with the default number of folds and too
/// few subjects (or trials) for it, leave-one-out instead, said.
pub(super) fn run_folds(
    cfg: &FinetuneConfig,
    corpus: &Corpus,
    usable: &[usize],
    on: &mut dyn FnMut(FinetuneEvent),
) -> Result<Vec<Fold>, TrainError> {
    Ok(
        match make_folds(
            &corpus.rows,
            usable,
            cfg.protocol,
            cfg.folds,
            cfg.val_fraction,
            cfg.seed,
        ) {
            Err(cardiaffect_eval::EvalError::TooFewGroups { groups, what, .. })
                if cfg.folds_is_default && groups >= 3 =>
            {
                on(FinetuneEvent::Warning(format!(
                "{groups} {what}, fewer than the default {} folds need: leave-one-out instead ({groups} folds)",
                match cfg.folds {
                    Folds::K(k) => k.to_string(),
                    Folds::LeaveOneOut => "loso".into(),
                }
            )));
                make_folds(
                    &corpus.rows,
                    usable,
                    cfg.protocol,
                    Folds::LeaveOneOut,
                    cfg.val_fraction,
                    cfg.seed,
                )
                .map_err(eval_err)?
            }
            r => r.map_err(eval_err)?,
        },
    )
}

/// Make `run` this configuration's: fold files and models of another configuration are
/// removed (never mixed in), `finetune.json` written, and the old results no longer vouched
/// for until this run finishes.
pub(super) fn open_run_folder(cfg: &FinetuneConfig, run: &Path) -> Result<(), TrainError> {
    fs::create_dir_all(run.join("folds")).map_err(io_err(run))?;
    let cfg_path = run.join("finetune.json");
    if let Ok(old) = fs::read(&cfg_path) {
        match serde_json::from_slice::<FinetuneConfig>(&old) {
            Ok(saved) if &saved == cfg => {}
            _ => {
                // Another configuration: its fold files and models must not be mixed with
                // this one's (a kept `model/` would carry the old operating point).
                let _ = fs::remove_dir_all(run.join("folds"));
                let _ = fs::remove_dir_all(run.join("models"));
                let _ = fs::remove_dir_all(run.join("model"));
                fs::create_dir_all(run.join("folds")).map_err(io_err(run))?;
            }
        }
    }
    write_json_atomic(&cfg_path, cfg)?;
    // A run's results are vouched for only once it has finished again.
    let _ = fs::remove_file(run.join(Checksums::FILE));
    Ok(())
}
