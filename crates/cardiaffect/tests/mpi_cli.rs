//! `cardiaffect pretrain` under `mpirun` (a binary built with `--features mpi`; needs Open MPI's
//! `mpirun`): 2 ranks x batch 8 train as one process with batch 16; a rank killed at a seeded
//! step ends the job naming it, and `--resume` ends with the uninterrupted run's weights; ranks
//! that disagree are refused before anything is written; the weights load where pre-trained
//! weights are used.
#![cfg(feature = "mpi")]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `mpirun -n N` of this build's binary (as root and on few cores, as CI runs it).
fn mpirun(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-n",
        &n.to_string(),
    ])
    .arg(env!("CARGO_BIN_EXE_cardiaffect"))
    // Ranks on one machine share its cores: one thread each.
    .env("RAYON_NUM_THREADS", "1");
    c
}

fn pretrain_args(corpus: &Path, cfg: &Path, out: &Path, batch: &str) -> Vec<String> {
    pretrain_cmdline(
        corpus,
        cfg,
        out,
        ["20", batch, "4", "10"],
        &["--lr", "2e-3"],
    )
}

/// The largest, over tensors, of max |a - b| / max |b|.
fn max_rel(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, x), (nb, y))| {
            assert_eq!(na, nb);
            cardiaffect_testkit::max_rel(x, y)
        })
        .fold(0.0, f64::max)
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The pid of rank `rank` of the job whose ranks have `marker` in their environment.
fn rank_pid(marker: &str, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = env
            .split(|&b| b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if vars.iter().any(|v| v == marker) && vars.contains(&want) {
            return Some(pid);
        }
    }
    None
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn two_ranks_train_as_one_process_and_a_killed_rank_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = synth_corpus(tmp.path(), "4", "3");
    let cfg = tmp.path().join("tiny.json");
    std::fs::write(&cfg, TINY).unwrap();

    let one = tmp.path().join("one");
    ok(bin()
        .args(pretrain_args(&corpus, &cfg, &one, "16"))
        .output()
        .unwrap());
    let two = tmp.path().join("two");
    let out = ok(mpirun(2)
        .args(pretrain_args(&corpus, &cfg, &two, "8"))
        .output()
        .unwrap());
    assert!(
        out.contains("2 processes x 8 windows = 16 windows per step")
            && out.contains("pre-trained 20 steps"),
        "{out}"
    );
    let (t1, t2) = (
        f32_tensors(&one.join("model.safetensors")),
        f32_tensors(&two.join("model.safetensors")),
    );
    let e = max_rel(&t2, &t1);
    assert!(e < 1e-4, "2 ranks x 8 against 1 x 16: {e}");

    // Rank 1 killed (SIGKILL) once the run has passed a seeded step.
    let seed = 41u64;
    let at = [4u64, 8, 12][(seed.wrapping_mul(0x9E37_79B9) >> 7) as usize % 3];
    let three = tmp.path().join("three");
    let marker = format!("CARDIAFFECT_TEST_JOB={}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    let job = mpirun(2)
        .args(pretrain_args(&corpus, &cfg, &three, "8"))
        .env(k, v)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let state = three.join("checkpoint/state.json");
    let t0 = Instant::now();
    let step = |p: &Path| -> u64 {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["step"].as_u64())
            .unwrap_or(0)
    };
    while step(&state) < at && t0.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = rank_pid(&marker, 1).expect("rank 1's process");
    // SAFETY: kill(2) of a process of this test's job.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let killed = job.wait_with_output().unwrap();
    let said = text(&killed);
    assert!(
        !killed.status.success(),
        "the job survived its rank: {said}"
    );
    assert!(
        said.contains("rank 1"),
        "the error does not name rank 1: {said}"
    );
    assert!(
        !three.join("model.safetensors").exists(),
        "the job ended before the kill (step {at})"
    );
    // Only complete files: the checkpoint verifies; nothing half-written outside `*.tmp`.
    let list = std::fs::read_to_string(three.join("checkpoint/checksums.json")).unwrap();
    assert!(list.contains("optimizer.bpk"), "{list}");
    for f in files(&three) {
        let rel = f.strip_prefix(&three).unwrap();
        assert!(
            !rel.components()
                .any(|c| c.as_os_str().to_string_lossy().ends_with(".tmp")),
            "a half-written file after the kill: {}",
            rel.display()
        );
    }
    let resumed = ok(mpirun(2)
        .args(["pretrain", "--resume", s(&three)])
        .output()
        .unwrap());
    assert!(resumed.contains("pre-trained 20 steps"), "{resumed}");
    assert_eq!(
        std::fs::read(three.join("model.safetensors")).unwrap(),
        std::fs::read(two.join("model.safetensors")).unwrap(),
        "resumed after rank 1 was killed past step {at}: other weights than the uninterrupted run"
    );

    // The distributed run's weights where pre-trained weights are used: `finetune
    // --pretrained` and what Python's `Model.load(RUN)` calls.
    let ft = tmp.path().join("ft");
    ok(run(&[
        "finetune",
        "--corpus",
        s(&corpus),
        "--task",
        "arousal",
        "--pretrained",
        s(&two),
        "--out",
        s(&ft),
        "--folds",
        "2",
        "--steps",
        "3",
        "--batch",
        "8",
        "--seed",
        "5",
    ]));
    assert!(ft.join("results.json").exists());
    let dir = cardiaffect_bundle::resolve(&two);
    let dev = burn::prelude::Device::flex();
    let (mcfg, _) = cardiaffect_model::load_model(&dir, &dev).unwrap();
    assert_eq!(mcfg.d_model, 16);
    assert!(cardiaffect_bundle::read_preprocess(&dir).is_ok());

    // Started by mpirun with another number of ranks, `--resume` is refused; nothing changes.
    let before: Vec<(PathBuf, Vec<u8>)> = files(&two)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let o = mpirun(3)
        .args(["pretrain", "--resume", s(&two)])
        .output()
        .unwrap();
    let said = text(&o);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("made for 2 processes") && said.contains("this group has 3"),
        "{said}"
    );
    for (p, b) in before {
        assert_eq!(std::fs::read(&p).unwrap(), b, "{} changed", p.display());
    }
}

#[test]
fn ranks_given_other_corpora_are_refused_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = synth_corpus(&tmp.path().join("a"), "3", "2");
    let b = synth_corpus(&tmp.path().join("b"), "4", "2");
    let cfg = tmp.path().join("tiny.json");
    std::fs::write(&cfg, TINY).unwrap();
    let out = tmp.path().join("run");
    // MPMD: rank 0 and rank 1 started with different corpora.
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-n", "1"])
        .arg(env!("CARGO_BIN_EXE_cardiaffect"))
        .args(pretrain_args(&a, &cfg, &out, "8"))
        .args([":", "-n", "1"])
        .arg(env!("CARGO_BIN_EXE_cardiaffect"))
        .args(pretrain_args(&b, &cfg, &out, "8"));
    let o = c.output().unwrap();
    let said = text(&o);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("rank 1") && said.contains("checksums"),
        "{said}"
    );
    assert!(!out.exists(), "a refused group wrote {}", out.display());
}
