//! Cross-validation protocols. `subject-independent` (the default) and `trial-grouped` keep
//! every subject (resp. trial) on one side of every split, validation included; `paper` splits
//! windows as the seed paper and SSL-ECG did, and leaks: windows of one trial land on both
//! sides. Validation (for early stopping) is carved from the training side of each fold only.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cardiaffect_corpus::Row;
use cardiaffect_signal::Rng;
use serde::{Deserialize, Serialize};

use crate::EvalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Protocol {
    SubjectIndependent,
    TrialGrouped,
    Paper,
}

impl Protocol {
    pub const ALL: [&'static str; 3] = ["subject-independent", "trial-grouped", "paper"];

    /// The warning printed with every `paper` result.
    pub const PAPER_WARNING: &'static str = "protocol `paper` splits windows, not trials: windows of one trial (and one subject) are in both training and test sets, so its figures are optimistic and not comparable with subject-independent ones";

    /// The key that must not cross a split.
    pub fn group(&self, row: &Row, index: usize) -> String {
        match self {
            Protocol::SubjectIndependent => format!("{}/{}", row.dataset, row.subject),
            Protocol::TrialGrouped => {
                format!(
                    "{}/{}/{}/{}",
                    row.dataset, row.subject, row.trial, row.segment
                )
            }
            Protocol::Paper => format!("window {index}"),
        }
    }

    fn unit(&self) -> (&'static str, &'static str) {
        match self {
            Protocol::SubjectIndependent => ("subjects", "subject"),
            Protocol::TrialGrouped => ("trials", "trial"),
            Protocol::Paper => ("windows", "window"),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Protocol::ALL[*self as usize])
    }
}

impl FromStr for Protocol {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Protocol, EvalError> {
        match s {
            "subject-independent" => Ok(Protocol::SubjectIndependent),
            "trial-grouped" => Ok(Protocol::TrialGrouped),
            "paper" => Ok(Protocol::Paper),
            _ => Err(EvalError::Config {
                field: "protocol",
                expected: Protocol::ALL.join(", "),
                found: s.into(),
            }),
        }
    }
}

/// How many folds: k groups of groups, or one group per fold (leave-one-subject-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Folds {
    K(usize),
    LeaveOneOut,
}

impl FromStr for Folds {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Folds, EvalError> {
        match s {
            "loso" | "leave-one-out" => Ok(Folds::LeaveOneOut),
            _ => match s.parse::<usize>() {
                Ok(k) if k >= 2 => Ok(Folds::K(k)),
                _ => Err(EvalError::Config {
                    field: "folds",
                    expected: "a number of folds >= 2, or `loso` (one subject per fold)".into(),
                    found: s.into(),
                }),
            },
        }
    }
}

/// Row indices of one fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fold {
    pub index: usize,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    /// The groups (subjects, trials or windows) tested in this fold.
    pub test_groups: Vec<String>,
    pub val_groups: Vec<String>,
}

/// The usable rows of each group (subject, trial or window), by group key.
fn group_rows(rows: &[Row], usable: &[usize], protocol: Protocol) -> BTreeMap<String, Vec<usize>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in usable {
        groups
            .entry(protocol.group(&rows[i], i))
            .or_default()
            .push(i);
    }
    groups
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// Folds over the rows in `usable` (the labeled windows). Groups are shuffled by `seed`, then
/// dealt round-robin into folds; within each fold, `val_fraction` of the training groups
/// (at least one) are held out for validation.
pub fn make_folds(
    rows: &[Row],
    usable: &[usize],
    protocol: Protocol,
    folds: Folds,
    val_fraction: f64,
    seed: u64,
) -> Result<Vec<Fold>, EvalError> {
    let groups = group_rows(rows, usable, protocol);
    let mut keys: Vec<String> = groups.keys().cloned().collect();
    let (what, what_one) = protocol.unit();
    let k = match folds {
        Folds::K(k) => k,
        Folds::LeaveOneOut => keys.len(),
    };
    // Each fold needs a test group, and its training side needs a training and a validation
    // group.
    let n = keys.len();
    if n < k.max(3) || n - n.div_ceil(k.max(1)) < 2 {
        return Err(EvalError::TooFewGroups {
            protocol: protocol.to_string(),
            groups: keys.len(),
            folds: k.max(3),
            what,
            what_one,
        });
    }
    let mut rng = Rng::new(seed).fork(0xF01D);
    shuffle(&mut keys, &mut rng);
    let mut out = Vec::with_capacity(k);
    for f in 0..k {
        let test_keys: Vec<String> = keys.iter().skip(f).step_by(k).cloned().collect();
        let mut rest: Vec<String> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| i % k != f)
            .map(|(_, g)| g.clone())
            .collect();
        let mut frng = Rng::new(seed).fork(0xFA1D ^ f as u64);
        shuffle(&mut rest, &mut frng);
        let n_val = ((val_fraction * rest.len() as f64).round() as usize).clamp(1, rest.len() - 1);
        let val_keys: Vec<String> = rest[..n_val].to_vec();
        let collect = |ks: &[String]| {
            let mut v: Vec<usize> = ks.iter().flat_map(|g| groups[g].iter().copied()).collect();
            v.sort_unstable();
            v
        };
        let mut test_groups = test_keys.clone();
        test_groups.sort();
        let mut val_groups = val_keys.clone();
        val_groups.sort();
        out.push(Fold {
            index: f,
            train: collect(&rest[n_val..]),
            val: collect(&val_keys),
            test: collect(&test_keys),
            test_groups,
            val_groups,
        });
    }
    Ok(out)
}

/// The split of the final model (trained on every labeled window after cross-validation):
/// `val_fraction` of the groups for early stopping, the rest for training, no test.
pub fn final_split(
    rows: &[Row],
    usable: &[usize],
    protocol: Protocol,
    val_fraction: f64,
    seed: u64,
) -> Result<Fold, EvalError> {
    let groups = group_rows(rows, usable, protocol);
    let mut keys: Vec<String> = groups.keys().cloned().collect();
    if keys.len() < 2 {
        let (what, what_one) = protocol.unit();
        return Err(EvalError::TooFewGroups {
            protocol: protocol.to_string(),
            groups: keys.len(),
            folds: 2,
            what,
            what_one,
        });
    }
    shuffle(&mut keys, &mut Rng::new(seed).fork(0xF1AA));
    let n_val = ((val_fraction * keys.len() as f64).round() as usize).clamp(1, keys.len() - 1);
    let collect = |ks: &[String]| {
        let mut v: Vec<usize> = ks.iter().flat_map(|g| groups[g].iter().copied()).collect();
        v.sort_unstable();
        v
    };
    let mut val_groups = keys[..n_val].to_vec();
    val_groups.sort();
    Ok(Fold {
        index: usize::MAX,
        train: collect(&keys[n_val..]),
        val: collect(&keys[..n_val]),
        test: Vec::new(),
        test_groups: Vec::new(),
        val_groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(subjects: usize, trials: usize, windows: usize) -> Vec<Row> {
        let mut v = Vec::new();
        for s in 0..subjects {
            for t in 0..trials {
                for w in 0..windows {
                    v.push(Row {
                        dataset: "AMIGOS".into(),
                        source: format!("P{s:02}.mat"),
                        subject: format!("{s}"),
                        trial: format!("{t}"),
                        segment: String::new(),
                        lead: "ECG".into(),
                        start_s: w as f64 * 10.0,
                        hr_bpm: 70.0,
                        condition: None,
                        labels: vec![],
                    });
                }
            }
        }
        v
    }

    fn ids(
        rows: &[Row],
        idx: &[usize],
        f: impl Fn(&Row) -> String,
    ) -> std::collections::BTreeSet<String> {
        idx.iter().map(|&i| f(&rows[i])).collect()
    }

    #[test]
    fn no_subject_or_trial_crosses_a_split() {
        let r = rows(7, 5, 4);
        let all: Vec<usize> = (0..r.len()).collect();
        for (protocol, key) in [
            (
                Protocol::SubjectIndependent,
                (|x: &Row| x.subject.clone()) as fn(&Row) -> String,
            ),
            (Protocol::TrialGrouped, |x: &Row| {
                format!("{}/{}", x.subject, x.trial)
            }),
        ] {
            for folds in [Folds::K(3), Folds::K(5), Folds::LeaveOneOut] {
                let fs = make_folds(&r, &all, protocol, folds, 0.2, 9).unwrap();
                let mut tested = std::collections::BTreeSet::new();
                for f in &fs {
                    let (tr, va, te) = (
                        ids(&r, &f.train, key),
                        ids(&r, &f.val, key),
                        ids(&r, &f.test, key),
                    );
                    assert!(
                        tr.is_disjoint(&te),
                        "{protocol} {folds:?} fold {}: train/test share {:?}",
                        f.index,
                        tr.intersection(&te).collect::<Vec<_>>()
                    );
                    assert!(tr.is_disjoint(&va), "{protocol}: train/val share");
                    assert!(va.is_disjoint(&te), "{protocol}: val/test share");
                    assert!(!tr.is_empty() && !va.is_empty() && !te.is_empty());
                    assert_eq!(f.train.len() + f.val.len() + f.test.len(), r.len());
                    for &i in &f.test {
                        assert!(tested.insert(i), "window {i} tested twice");
                    }
                }
                assert_eq!(tested.len(), r.len(), "every window is tested once");
            }
        }
    }

    #[test]
    fn paper_protocol_does_leak_trials() {
        // The reason it carries a warning: with window-level folds, trials cross.
        let r = rows(3, 4, 6);
        let all: Vec<usize> = (0..r.len()).collect();
        let fs = make_folds(&r, &all, Protocol::Paper, Folds::K(5), 0.2, 1).unwrap();
        let key = |x: &Row| format!("{}/{}", x.subject, x.trial);
        assert!(fs
            .iter()
            .any(|f| !ids(&r, &f.train, key).is_disjoint(&ids(&r, &f.test, key))));
    }

    #[test]
    fn same_seed_same_folds_other_seed_other_folds() {
        let r = rows(8, 2, 2);
        let all: Vec<usize> = (0..r.len()).collect();
        let a = make_folds(&r, &all, Protocol::SubjectIndependent, Folds::K(4), 0.2, 1).unwrap();
        let b = make_folds(&r, &all, Protocol::SubjectIndependent, Folds::K(4), 0.2, 1).unwrap();
        let c = make_folds(&r, &all, Protocol::SubjectIndependent, Folds::K(4), 0.2, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn fewer_subjects_than_folds_is_an_error() {
        let r = rows(3, 2, 2);
        let all: Vec<usize> = (0..r.len()).collect();
        let e =
            make_folds(&r, &all, Protocol::SubjectIndependent, Folds::K(5), 0.2, 1).unwrap_err();
        assert!(e.to_string().contains("3 subjects for 5 folds"), "{e}");
    }
}
