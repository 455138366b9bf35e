//! Faults tried on purpose: a second writer, SIGKILL at random points, a full filesystem,
//! flipped bytes in every artifact. What each shows is in the README ("What cardiaffect
//! guarantees").
mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Every file under `dir` (relative path -> bytes); the lock file is left out (it names the
/// last writer's pid while one runs, and is empty after).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if e.file_name() != ".cardiaffect.lock" {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The files that differ between two trees (or that only one has).
fn differences(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// `*.tmp` leftovers anywhere under `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                v.push(e.path().display().to_string());
            } else if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    v
}

/// A small seeded generator for the kill times (the test repeats exactly).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Start `args` and SIGKILL it after `after`; false if it ended by itself before.
fn kill_after(args: &[String], after: Duration) -> bool {
    let mut child = bin()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    child.wait().unwrap();
    true
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn out_of(args: &[String]) -> Output {
    bin().args(args).output().unwrap()
}

/// A synthetic labeled dataset (4 people x 4 trials), its corpus (2 s windows) and the tiny
/// model config.
fn labeled(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let corpus = synth_corpus(tmp, "4", "4");
    let cfg = tmp.join("tiny.json");
    std::fs::write(&cfg, TINY).unwrap();
    (tmp.join("raw"), corpus, cfg)
}

fn prepare_args(raw: &Path, out: &Path) -> Vec<String> {
    strings(&prepare_2s(raw, out))
}

fn pretrain_args(corpus: &Path, cfg: &Path, out: &Path, steps: &str) -> Vec<String> {
    pretrain_cmdline(corpus, cfg, out, [steps, "8", "3", "10"], &[])
}

fn finetune_args(corpus: &Path, cfg: &Path, out: &Path) -> Vec<String> {
    strings(&[
        "finetune",
        "--corpus",
        s(corpus),
        "--task",
        "arousal",
        "--config",
        s(cfg),
        "--out",
        s(out),
        "--folds",
        "4",
        "--steps",
        "6",
        "--batch",
        "8",
        "--eval-every",
        "3",
        "--seed",
        "5",
        "--pretrained",
        "none",
        "--methods",
        "scratch,hrv",
    ])
}

/// Run `args` into `out` to the end, move it to `reference`; then `kills` times: start it
/// afresh into `out`, SIGKILL it at a random point, run `resume` (or `args` again) to the end
/// and check that `out` holds the same bytes as the uninterrupted run.
fn killed_runs_resume_to_the_same_bytes(
    args: &[String],
    resume: &dyn Fn() -> Vec<String>,
    out: &Path,
    kills: usize,
    seed: u64,
) {
    let t0 = Instant::now();
    ok(out_of(args));
    let took = t0.elapsed();
    let reference = out.with_extension("reference");
    std::fs::rename(out, &reference).unwrap();
    let want = tree(&reference);
    let mut rng = Lcg(seed);
    let mut interrupted = 0;
    for k in 0..kills * 3 {
        if interrupted == kills {
            break;
        }
        let _ = std::fs::remove_dir_all(out);
        let at = took.mul_f64(0.05 + 0.9 * rng.next());
        if !kill_after(args, at) {
            continue;
        }
        interrupted += 1;
        let again = resume();
        ok(out_of(&again));
        let got = tree(out);
        let d = differences(&want, &got);
        assert!(
            d.is_empty(),
            "kill {k} after {at:?} of {took:?}, resumed with {again:?}: these differ from the uninterrupted run: {d:?}"
        );
        assert!(leftovers(out).is_empty(), "{:?}", leftovers(out));
        eprintln!(
            "{:?}: killed after {at:?} of {took:?}, resumed to the same bytes",
            args[0]
        );
    }
    assert_eq!(
        interrupted, kills,
        "{args:?}: runs of {took:?} ended before the kill"
    );
    std::fs::rename(&reference, out.with_extension(format!("reference-{seed}"))).unwrap();
}

#[test]
fn prepare_killed_at_random_points_resumes_to_the_same_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("ecg");
    ok(run(&[
        "synth",
        "--subjects",
        "8",
        "--minutes",
        "8",
        "--seed",
        "4",
        "--out",
        s(&raw),
    ]));
    let out = tmp.path().join("corpus");
    let args = prepare_args(&raw, &out);
    killed_runs_resume_to_the_same_bytes(&args, &|| args.clone(), &out, 6, 11);
}

#[test]
fn pretrain_killed_at_random_points_resumes_to_the_same_weights_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, corpus, cfg) = labeled(tmp.path());
    let out = tmp.path().join("run");
    let args = pretrain_args(&corpus, &cfg, &out, "80");
    let o = out.clone();
    let fresh = args.clone();
    // A run killed before it wrote its configuration is started again; after, it is resumed.
    let resume = move || {
        if o.join("pretrain.json").exists() {
            strings(&["pretrain", "--resume", s(&o)])
        } else {
            fresh.clone()
        }
    };
    killed_runs_resume_to_the_same_bytes(&args, &resume, &out, 5, 12);
}

#[test]
fn finetune_killed_at_random_points_resumes_to_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, corpus, cfg) = labeled(tmp.path());
    let out = tmp.path().join("ft");
    let args = finetune_args(&corpus, &cfg, &out);
    killed_runs_resume_to_the_same_bytes(&args, &|| args.clone(), &out, 5, 13);
}

#[test]
fn the_same_command_writes_the_same_bytes() {
    // CARDIAFFECT_KEEP_OUTPUTS=DIR: work in DIR (emptied first) and keep it, so that what two
    // builds write can be compared file by file (a restructuring must change no byte).
    let keep = std::env::var_os("CARDIAFFECT_KEEP_OUTPUTS").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let root = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    if keep.is_some() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
    }
    let tmp = Root(root);
    let (raw, corpus, cfg) = labeled(tmp.path());
    let twice = |args: Vec<String>, out: &Path| {
        ok(out_of(&args));
        let first = tree(out);
        std::fs::remove_dir_all(out).unwrap();
        ok(out_of(&args));
        let d = differences(&first, &tree(out));
        assert!(d.is_empty(), "{args:?}: differ between two runs: {d:?}");
        first
    };
    let files = twice(
        prepare_args(&raw, &tmp.path().join("c2")),
        &tmp.path().join("c2"),
    );
    assert!(files.contains_key("windows.npy") && files.contains_key("manifest.json"));
    let p = tmp.path().join("pt");
    let files = twice(pretrain_args(&corpus, &cfg, &p, "8"), &p);
    for f in [
        "model.safetensors",
        "checkpoint/optimizer.bpk",
        "checkpoint/model.bpk",
        "summary.json",
        "metrics.jsonl",
        "reconstructions.png",
    ] {
        assert!(files.contains_key(f), "{f}");
    }
    let f = tmp.path().join("ft");
    let files = twice(finetune_args(&corpus, &cfg, &f), &f);
    for k in [
        "results.json",
        "predictions.csv",
        "model/model.safetensors",
        "folds/checksums.json",
    ] {
        assert!(files.contains_key(k), "{k}");
    }
    let c = tmp.path().join("curve");
    let mut curve = finetune_args(&corpus, &cfg, &c);
    curve[0] = "curve".into();
    curve.extend(strings(&["--fractions", "0.5,1"]));
    twice(curve, &c);
    let pr = tmp.path().join("pred");
    let predict = strings(&[
        "predict",
        "--model",
        s(&f),
        "--out",
        s(&pr.join("timeline.csv")),
        s(&record()),
    ]);
    twice(predict, &pr);
    let ex = tmp.path().join("export");
    let files = twice(strings(&["export", "--model", s(&f), "--out", s(&ex)]), &ex);
    assert!(files.contains_key("model.safetensors") && files.contains_key("checksums.json"));
    let rep = tmp.path().join("report");
    twice(
        strings(&["report", s(&f), "--out", s(&rep.join("r.html"))]),
        &rep,
    );
    let sy = tmp.path().join("synth-affect");
    twice(
        strings(&[
            "synth",
            "--affect",
            "--subjects",
            "2",
            "--trials",
            "2",
            "--trial-seconds",
            "10",
            "--out",
            s(&sy),
        ]),
        &sy,
    );
    let sw = tmp.path().join("synth-wfdb");
    twice(
        strings(&[
            "synth",
            "--subjects",
            "2",
            "--minutes",
            "1",
            "--out",
            s(&sw),
        ]),
        &sw,
    );
}

/// A folder the test works in (a temporary one, or one kept for comparison).
struct Root(PathBuf);

impl Root {
    fn path(&self) -> &Path {
        &self.0
    }
}

/// A real recording shipped with the repository.
fn record() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mitdb208/208.hea")
}

#[test]
fn a_second_writer_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (raw, corpus, cfg) = labeled(tmp.path());
    let cases: Vec<(PathBuf, Vec<String>)> = vec![
        (
            tmp.path().join("c"),
            prepare_args(&raw, &tmp.path().join("c")),
        ),
        (
            tmp.path().join("p"),
            pretrain_args(&corpus, &cfg, &tmp.path().join("p"), "4"),
        ),
        (
            tmp.path().join("f"),
            finetune_args(&corpus, &cfg, &tmp.path().join("f")),
        ),
    ];
    for (dir, args) in cases {
        // This test process holds the folder's lock, as a running writer would.
        let held = cardiaffect_corpus::RunLock::acquire(&dir, "test").unwrap();
        let e = err(out_of(&args));
        assert!(
            e.contains("is being written by another cardiaffect")
                && e.contains(&format!("pid {}", std::process::id())),
            "{args:?}: {e}"
        );
        drop(held);
        ok(out_of(&args));
    }
    // A lock left by a process that is gone (its line in the file, no flock) is taken over.
    let dir = tmp.path().join("c");
    std::fs::write(
        dir.join(".cardiaffect.lock"),
        "pid 4000000 on elsewhere, `cardiaffect prepare`\n",
    )
    .unwrap();
    let o = out_of(&prepare_args(&raw, &dir));
    ok(o.clone());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("taking over the lock of pid 4000000"), "{e}");
}

/// Flip one bit at `at` (a fraction of the file's length) of `path`.
fn flip(path: &Path, at: f64) {
    let mut b = std::fs::read(path).unwrap();
    let i = ((b.len() as f64 * at) as usize).min(b.len() - 1);
    b[i] ^= 0x04;
    std::fs::write(path, b).unwrap();
}

/// Run `args` with `path` damaged (then restored): a clear error naming the file.
fn refused_naming(path: &Path, at: f64, args: &[String]) {
    let keep = std::fs::read(path).unwrap();
    flip(path, at);
    let o = out_of(args);
    let e = err(o);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        e.contains(&name) && !e.contains("panicked"),
        "{args:?} with a flipped byte in {}: {e}",
        path.display()
    );
    eprintln!("{} flipped, {}: {}", path.display(), args[0], e.trim());
    std::fs::write(path, keep).unwrap();
}

#[test]
fn flipped_bytes_in_every_artifact_are_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (raw, corpus, cfg) = labeled(tmp.path());
    let p = tmp.path().join("pt");
    ok(out_of(&pretrain_args(&corpus, &cfg, &p, "6")));
    let f = tmp.path().join("ft");
    ok(out_of(&finetune_args(&corpus, &cfg, &f)));
    let verify = strings(&["prepare", "--verify", s(&corpus)]);
    ok(out_of(&verify));
    // The corpus: data, table, manifest (each read by every command that opens it).
    let pre = pretrain_args(&corpus, &cfg, &tmp.path().join("pt2"), "2");
    for (file, at) in [
        ("windows.npy", 0.7),
        ("windows.csv", 0.5),
        ("dropped.csv", 0.9),
        ("manifest.json", 0.3),
    ] {
        refused_naming(&corpus.join(file), at, &verify);
        if file != "dropped.csv" {
            refused_naming(&corpus.join(file), at, &pre);
        }
    }
    // The NaN windows of the issue (the last 4,000 bytes overwritten with 0xFF): refused, by
    // checksum and, with --no-verify's checksums matching, by value in `prepare --verify`.
    let npy = corpus.join("windows.npy");
    let keep = std::fs::read(&npy).unwrap();
    let mut b = keep.clone();
    let n = b.len();
    b[n - 4000..].fill(0xFF);
    std::fs::write(&npy, &b).unwrap();
    let e = err(out_of(&pre));
    assert!(e.contains("windows.npy"), "{e}");
    // `--no-verify`: the user takes a corpus they changed as it is.
    flip(&npy, 0.7);
    let mut unverified = pre.clone();
    unverified.push("--no-verify".into());
    ok(out_of(&unverified));
    std::fs::write(&npy, &keep).unwrap();
    // A checkpoint: resuming from it.
    let resume = strings(&["pretrain", "--resume", s(&p)]);
    for file in [
        "optimizer.bpk",
        "model.bpk",
        "state.json",
        "model.safetensors",
        "config.json",
    ] {
        refused_naming(&p.join("checkpoint").join(file), 0.6, &resume);
    }
    // A pre-trained model used by finetune.
    let mut ft_pre = finetune_args(&corpus, &cfg, &tmp.path().join("ft2"));
    let i = ft_pre.iter().position(|a| a == "none").unwrap();
    ft_pre[i] = s(&p).to_string();
    let last = ft_pre.len() - 1;
    ft_pre[last] = "pretrained".into();
    refused_naming(&p.join("model.safetensors"), 0.8, &ft_pre);
    // A fine-tuned model folder used by predict, and its results used by report/evaluate.
    let predict = strings(&[
        "predict",
        "--model",
        s(&f),
        "--out",
        s(&tmp.path().join("pred.csv")),
        s(&record()),
    ]);
    for file in [
        "model.safetensors",
        "config.json",
        "preprocess.json",
        "labels.json",
        "operating_point.json",
    ] {
        refused_naming(&f.join("model").join(file), 0.5, &predict);
    }
    let evaluate = strings(&["evaluate", s(&f)]);
    let report = strings(&["report", s(&f), "--out", s(&tmp.path().join("r.html"))]);
    for file in ["results.json", "predictions.csv", "finetune.json"] {
        refused_naming(&f.join(file), 0.5, &evaluate);
        refused_naming(&f.join(file), 0.5, &report);
    }
    // A shard (the cache `prepare` reuses) is rebuilt, said, with the same corpus as result.
    let c2 = tmp.path().join("c2");
    ok(out_of(&prepare_args(&raw, &c2)));
    let before = tree(&c2);
    let shard = std::fs::read_dir(c2.join("shards"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    flip(&shard.join("windows.f32"), 0.5);
    let o = out_of(&prepare_args(&raw, &c2));
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(
        e.contains("windows.f32") && e.contains("building the shard again"),
        "{e}"
    );
    assert!(differences(&before, &tree(&c2)).is_empty());
    // A fold file is computed again, said, with the same results.
    let before = tree(&f);
    flip(&f.join("folds").join("scratch-fold2.json"), 0.5);
    let o = out_of(&finetune_args(&corpus, &cfg, &f));
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(
        e.contains("scratch-fold2.json") && e.contains("computed again"),
        "{e}"
    );
    assert!(differences(&before, &tree(&f)).is_empty());
}

/// A tmpfs of `mb` MiB at `dir`, or None (said) where this process cannot mount one.
fn small_fs(dir: &Path, mb: usize) -> Option<()> {
    std::fs::create_dir_all(dir).unwrap();
    let o = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
        .arg(dir)
        .output();
    match o {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => {
            eprintln!(
                "SKIPPED: cannot mount a small tmpfs for the full-disk test here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount for the full-disk test: {e}");
            None
        }
    }
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fill `dir` so that about `free_kb` KiB are left.
fn fill(dir: &Path, free_kb: u64) -> PathBuf {
    let filler = dir.join("filler");
    let o = Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    let avail: u64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let n = avail.saturating_sub(free_kb) * 1024;
    std::fs::write(&filler, vec![0u8; n as usize]).unwrap();
    filler
}

/// A failed run on a full filesystem: one clear error (its cause said once), no `*.tmp`
/// left, and the same command completes once space is freed.
fn full_then_freed(args: &[String], out: &Path, filler: &Path) {
    let e = err(out_of(args));
    let cause = "No space left on device";
    eprintln!("{} on a full filesystem: {}", args[0], e.trim());
    assert_eq!(e.matches(cause).count(), 1, "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(leftovers(out).is_empty(), "{args:?}: {:?}", leftovers(out));
    std::fs::remove_file(filler).unwrap();
}

#[test]
fn a_full_filesystem_is_a_clear_error_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (raw, corpus, cfg) = labeled(tmp.path());
    let mnt = tmp.path().join("small");
    if small_fs(&mnt, 16).is_none() {
        return;
    }
    let _unmount = Unmount(mnt.clone());
    // prepare: a first corpus fits; the same folder with more data does not; the first corpus
    // stays as it was; after space is freed the run completes.
    let c = mnt.join("corpus");
    ok(out_of(&prepare_args(&raw, &c)));
    let first = tree(&c);
    let big = tmp.path().join("big");
    ok(run(&[
        "synth",
        "--subjects",
        "4",
        "--minutes",
        "20",
        "--seed",
        "4",
        "--out",
        s(&big),
    ]));
    let filler = fill(&mnt, 600);
    let bigger = strings(&[
        "prepare",
        "--source",
        s(&raw),
        "--source",
        s(&big),
        "--window",
        "2s",
        "--stride",
        "1s",
        "--out",
        s(&c),
    ]);
    let e = err(out_of(&bigger));
    eprintln!("prepare on a full filesystem: {}", e.trim());
    assert_eq!(e.matches("No space left on device").count(), 1, "{e}");
    assert!(leftovers(&c).is_empty(), "{:?}", leftovers(&c));
    let now = tree(&c);
    for k in ["windows.npy", "windows.csv", "manifest.json", "dropped.csv"] {
        assert_eq!(first.get(k), now.get(k), "{k} changed by the failed run");
    }
    ok(out_of(&strings(&["prepare", "--verify", s(&c)])));
    std::fs::remove_file(&filler).unwrap();
    ok(out_of(&bigger));
    ok(out_of(&strings(&["prepare", "--verify", s(&c)])));
    std::fs::remove_dir_all(&c).unwrap();
    // pretrain and finetune, with a few KiB left: the error, then the rerun.
    let p = mnt.join("pt");
    let filler = fill(&mnt, 24);
    let args = pretrain_args(&corpus, &cfg, &p, "6");
    full_then_freed(&args, &p, &filler);
    let again = if p.join("pretrain.json").exists() {
        strings(&["pretrain", "--resume", s(&p)])
    } else {
        args.clone()
    };
    ok(out_of(&again));
    let f = mnt.join("ft");
    let filler = fill(&mnt, 24);
    let args = finetune_args(&corpus, &cfg, &f);
    full_then_freed(&args, &f, &filler);
    ok(out_of(&args));
    assert!(f.join("results.json").exists() && f.join("model/model.safetensors").exists());
}
