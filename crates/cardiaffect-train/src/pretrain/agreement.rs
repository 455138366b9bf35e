//! What the ranks of a data-parallel group must agree on (inputs, the step they resume from,
//! their weights), compared through the group so a disagreement is an error, not a drift.

use cardiaffect_model::Model;

use super::config::PretrainConfig;
use super::data::Data;
use crate::distributed::{fingerprint, hash_bytes, Group};
use crate::TrainError;

/// The ranks' corpora checksums and configs, compared before anything is written: ranks that
/// read other data (or were given other flags) would train on different batches without a
/// word, or wait for each other forever at the first sum of another length.
pub(super) fn agree_on_inputs(
    cfg: &PretrainConfig,
    data: &Data,
    group: &mut Group,
) -> Result<(), TrainError> {
    let mut mine: Vec<u64> = data
        .corpora
        .iter()
        .map(|c| {
            let sums: Vec<String> = c
                .manifest
                .checksums
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            hash_bytes(sums.join(",").as_bytes())
        })
        .collect();
    let n_corpora = mine.len();
    mine.push(hash_bytes(
        &serde_json::to_vec(cfg).map_err(|e| TrainError::Data(e.to_string()))?,
    ));
    let all = group
        .gather(&mine)
        .map_err(|source| TrainError::Reduce { step: 0, source })?;
    for (rank, theirs) in all.iter().enumerate() {
        if theirs.iter().all(|&v| v == 0) {
            // Hashes are never all zero: this rank's values did not reach us.
            return Err(TrainError::Reduce {
                step: 0,
                source: crate::distributed::ReduceError::NotSummed { rank },
            });
        }
    }
    for (rank, theirs) in all.iter().enumerate().skip(1) {
        if theirs.len() != mine.len() {
            return Err(TrainError::RanksDisagree {
                rank,
                what: "the number of corpora".into(),
            });
        }
        for ci in 0..n_corpora {
            if theirs[ci] != all[0][ci] {
                return Err(TrainError::RanksDisagree {
                    rank,
                    what: format!(
                        "the checksums of corpus {} (its manifest's checksums of windows.npy and windows.csv)",
                        cfg.corpora[ci].path.display()
                    ),
                });
            }
        }
        if theirs[n_corpora] != all[0][n_corpora] {
            return Err(TrainError::RanksDisagree {
                rank,
                what: "the configuration (pretrain.json: flags or a resumed run's saved one)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The same `value` on every rank, or the first rank that differs.
pub(super) fn agree_on(
    group: &mut Group,
    value: u64,
    step: usize,
    what: impl Fn(u64, u64) -> String,
) -> Result<(), TrainError> {
    let all = group
        .gather(&[value])
        .map_err(|source| TrainError::Reduce { step, source })?;
    match all.iter().position(|v| v[0] != all[0][0]) {
        None => Ok(()),
        Some(rank) => Err(TrainError::RanksDisagree {
            rank,
            what: what(all[rank][0], all[0][0]),
        }),
    }
}

/// Every rank's weights equal rank 0's (the sums gave every rank the same bits), checked at
/// each checkpoint: a reducer that did not would let the ranks drift apart silently.
pub(super) fn same_weights(
    group: &mut Group,
    model: &Model,
    step: usize,
) -> Result<(), TrainError> {
    agree_on(group, fingerprint(model), step, |_, _| {
        format!("its weights after step {step} (the gradient sums differed between ranks)")
    })
}
