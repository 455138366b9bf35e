//! Data-parallel pre-training in one process: ranks are threads whose gradients are summed by
//! `local_group` (the MPI reducer's stand-in). k ranks x their shares of a batch train as one
//! process given the whole batch; inputs the ranks disagree on are refused before anything is
//! written.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use cardiaffect_model::{Model, ModelConfig};
use cardiaffect_train::{
    count_train_windows, local_group, pretrain_group, Alone, CorpusSpec, GradientReducer, Group,
    PretrainConfig, ReduceError, TrainError, Trained,
};
use common::corpus;

/// A small model with dropout (its masks must follow the batch's rows, not the rank's).
fn config(corpus: &Path) -> PretrainConfig {
    let model = ModelConfig::new()
        .with_window_len(256)
        .with_conv_channels(vec![8, 16, 16])
        .with_d_model(16)
        .with_n_heads(2)
        .with_n_layers(2)
        .with_d_ff(32)
        .with_dropout(0.1);
    let mut cfg = PretrainConfig::new(
        model,
        vec![CorpusSpec {
            path: corpus.to_path_buf(),
            weight: 1.0,
        }],
    );
    cfg.steps = 20;
    cfg.batch = 16;
    cfg.lr = 2e-3;
    cfg.warmup_steps = 4;
    cfg.checkpoint_every = 10;
    cfg.eval_every = 10;
    cfg.max_val_windows = 32;
    cfg
}

/// `world` ranks on threads, rank r's config and reducer from the arguments.
fn ranks(
    world: usize,
    run: &Path,
    resume: bool,
    cfg: impl Fn(usize) -> PretrainConfig + Sync,
    reducers: Vec<Box<dyn GradientReducer + Send>>,
) -> Vec<Result<Trained, TrainError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = reducers
            .into_iter()
            .enumerate()
            .map(|(rank, r)| {
                let cfg = &cfg;
                s.spawn(move || {
                    let r: Box<dyn GradientReducer> = Box::new(Boxed(r));
                    let mut g = Group::new(rank, world, r).unwrap();
                    pretrain_group(
                        &cfg(rank),
                        run,
                        resume,
                        &Device::flex(),
                        &mut g,
                        &mut |_| {},
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A `Send` reducer as the trainer's box.
struct Boxed(Box<dyn GradientReducer + Send>);
impl GradientReducer for Boxed {
    fn sum(&mut self, buf: &mut [f32]) -> Result<(), ReduceError> {
        self.0.sum(buf)
    }
}

fn local(world: usize) -> Vec<Box<dyn GradientReducer + Send>> {
    local_group(world)
        .into_iter()
        .map(|r| Box::new(r) as Box<dyn GradientReducer + Send>)
        .collect()
}

fn alone(world: usize) -> Vec<Box<dyn GradientReducer + Send>> {
    (0..world)
        .map(|_| Box::new(Alone) as Box<dyn GradientReducer + Send>)
        .collect()
}

/// Every float parameter's values, in module order.
fn weights(m: &Model) -> Vec<Vec<f32>> {
    struct All(Vec<Vec<f32>>);
    impl ModuleVisitor for All {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .push(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut all = All(Vec::new());
    m.visit(&mut all);
    all.0
}

/// The largest, over tensors, of max |a - b| / max |b| (each tensor against its own scale).
fn max_rel(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| cardiaffect_testkit::max_rel(x, y))
        .fold(0.0, f64::max)
}

fn bits(w: &[Vec<f32>]) -> Vec<Vec<u32>> {
    w.iter()
        .map(|t| t.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The tests one at a time: a process has one RNG per device, which Burn's initialisers draw
/// from at a parameter's first use (a one-process run draws it in its first step, unlocked).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn k_ranks_train_as_one_process_with_k_times_their_rows() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(&tmp.path().join("corpus"), 2.0);
    let cfg = config(&c);
    let train_windows = count_train_windows(&cfg).unwrap();
    // Neither world size below divides the training windows; 3 does not divide the batch.
    assert!(
        !train_windows.is_multiple_of(2) && !train_windows.is_multiple_of(3),
        "{train_windows}"
    );

    let one = ranks(1, &tmp.path().join("one"), false, |_| cfg.clone(), alone(1));
    let one = weights(&one.into_iter().next().unwrap().unwrap().model);

    for world in [2, 3] {
        let run = tmp.path().join(format!("world-{world}"));
        let mut cw = cfg.clone();
        cw.world_size = world;
        let done = ranks(world, &run, false, |_| cw.clone(), local(world));
        let done: Vec<Trained> = done.into_iter().map(Result::unwrap).collect();
        assert!(done[0].summary.is_some() && done[1..].iter().all(|d| d.summary.is_none()));
        let w0 = weights(&done[0].model);
        let e = max_rel(&w0, &one);
        println!("{world} ranks against one process: largest relative difference {e:.1e}");
        assert!(e < 1e-4, "{world} ranks against one process: {e}");
        assert!(
            e > 0.0,
            "{world} ranks: suspiciously bit-equal to one process"
        );
        for d in &done[1..] {
            assert!(
                bits(&weights(&d.model)) == bits(&w0),
                "{world} ranks: a rank's weights differ from rank 0's"
            );
        }
        // Rank 0 wrote the run as one process does; the saved config says the world size.
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("pretrain.json")).unwrap()).unwrap();
        assert_eq!(saved["world_size"], world);
        assert!(run.join("checksums.json").exists() && run.join("checkpoint/state.json").exists());
    }
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("one/pretrain.json")).unwrap())
            .unwrap();
    assert!(
        saved.get("world_size").is_none(),
        "one process's config as before"
    );

    // Controls: the tolerance tells batches apart (one process with half the rows)...
    let mut half = cfg.clone();
    half.batch = 8;
    let h = ranks(
        1,
        &tmp.path().join("half"),
        false,
        |_| half.clone(),
        alone(1),
    );
    let e = max_rel(
        &weights(&h.into_iter().next().unwrap().unwrap().model),
        &one,
    );
    assert!(e > 1e-2, "batch 8 against 16: {e}");
    // ...and ranks that do not sum (the identity on each) are caught before they train.
    let mut c2 = cfg.clone();
    c2.world_size = 2;
    let run = tmp.path().join("identity");
    for (rank, r) in ranks(2, &run, false, |_| c2.clone(), alone(2))
        .into_iter()
        .enumerate()
    {
        match r {
            Err(TrainError::Reduce {
                source: ReduceError::NotSummed { rank: other },
                ..
            }) => assert_eq!(other, 1 - rank),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("ranks that never summed ended as one run"),
        }
    }
    assert!(!run.exists());
}

#[test]
fn inputs_the_ranks_disagree_on_are_refused_before_anything_is_written() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let a = corpus(&tmp.path().join("a"), 2.0);
    let b = corpus(&tmp.path().join("b"), 1.0);
    let mut cfg = config(&a);
    cfg.world_size = 2;
    cfg.steps = 4;
    cfg.checkpoint_every = 2;
    cfg.eval_every = 4;

    // Rank 1 reads another corpus: its checksums differ.
    let fresh = tmp.path().join("fresh");
    let cb = {
        let mut c = cfg.clone();
        c.corpora[0].path = b.clone();
        c
    };
    let out = ranks(
        2,
        &fresh,
        false,
        |r| if r == 0 { cfg.clone() } else { cb.clone() },
        local(2),
    );
    for r in out {
        let e = r.err().expect("ranks with other corpora trained");
        let text = e.to_string();
        assert!(
            text.contains("rank 1") && text.contains("checksums") && text.contains("corpus"),
            "{text}"
        );
    }
    assert!(!fresh.exists(), "a refused group wrote {}", fresh.display());

    // Rank 1 was given another flag.
    let mut other = cfg.clone();
    other.lr = 1e-3;
    let out = ranks(
        2,
        &fresh,
        false,
        |r| if r == 0 { cfg.clone() } else { other.clone() },
        local(2),
    );
    assert!(out.iter().all(|r| matches!(
        r,
        Err(TrainError::RanksDisagree { rank: 1, what }) if what.contains("configuration")
    )));
    assert!(!fresh.exists());

    // A run of 2 ranks, resumed by 3 (with its saved config, or one saying 3): refused,
    // nothing in its folder changed.
    let run = tmp.path().join("run");
    for r in ranks(2, &run, false, |_| cfg.clone(), local(2)) {
        r.unwrap();
    }
    let before = tree(&run);
    for r in ranks(3, &run, true, |_| cfg.clone(), local(3)) {
        match r {
            Err(TrainError::WorldSize {
                configured: 2,
                group: 3,
                ..
            }) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a run of 2 ranks resumed on 3"),
        }
    }
    let mut three = cfg.clone();
    three.world_size = 3;
    for r in ranks(3, &run, true, |_| three.clone(), local(3)) {
        match r {
            Err(TrainError::ResumeMismatch { differences, .. }) => {
                assert!(
                    differences.contains("world_size: 2 (saved) vs 3 (now)"),
                    "{differences}"
                )
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a run of 2 ranks resumed on 3"),
        }
    }
    // Another configuration on the right number of ranks.
    let mut other = cfg.clone();
    other.batch = 8;
    for r in ranks(2, &run, true, |_| other.clone(), local(2)) {
        assert!(matches!(r, Err(TrainError::ResumeMismatch { .. })));
    }
    assert!(
        tree(&run) == before,
        "a refused resume changed the run folder"
    );
    // More ranks than rows.
    let mut tiny = cfg.clone();
    tiny.batch = 1;
    let e = ranks(
        2,
        &tmp.path().join("tiny"),
        false,
        |_| tiny.clone(),
        local(2),
    )
    .remove(0)
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("‹batch› 1"), "{e}");
}
