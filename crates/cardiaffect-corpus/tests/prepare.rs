//! `prepare` on the bundled real ECG and on fixtures: contents, reuse, resume, bad input.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use cardiaffect_corpus::{prepare, Corpus, CorpusError, PrepareConfig, Source};
use cardiaffect_io::Format;
use cardiaffect_signal::{ecg_clean, resample};

mod common;
use common::{quiet, root};

fn src(spec: &str) -> Source {
    let mut s: Source = spec.parse().unwrap();
    s.path = root().join(&s.path);
    s
}

/// 10 s windows every 10 s (these tests were written for them; the default is now 4 s).
fn ten_s() -> PrepareConfig {
    PrepareConfig {
        window_s: 10.0,
        stride_s: 10.0,
        ..PrepareConfig::default()
    }
}

/// A fresh folder holding the corpus of the bundled one-minute EDF in [`ten_s`] windows.
fn supine_corpus() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    prepare(
        &[src("edf:data/biosignalsnotebooks/supine_1min.edf")],
        tmp.path(),
        &ten_s(),
        &quiet,
    )
    .unwrap();
    tmp
}

#[test]
fn windows_are_the_filtered_resampled_signal_and_reruns_reuse_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ten_s();
    let sources = [
        src("wfdb:data/mitdb208"),
        src("edf:data/biosignalsnotebooks/supine_1min.edf"),
    ];
    let r = prepare(&sources, tmp.path(), &cfg, &quiet).unwrap();
    assert_eq!(r.reused_units, 0);
    let c = Corpus::open(tmp.path()).unwrap();
    assert_eq!(c.len(), r.manifest.counts.windows);
    assert_eq!(c.window_len(), 1280);
    // 30 windows of 10 s in 5 minutes of MIT-BIH 208, 6 in the 1-minute EDF, less those dropped.
    let dropped: usize = r.manifest.counts.dropped.values().sum();
    assert_eq!(c.len() + dropped, 36);
    // Window 0 is the first 10 s of the band-passed, resampled recording.
    let cardiaffect_io::ReadResult { output: out, .. } = cardiaffect_io::read(
        &root().join("data/mitdb208/208.hea"),
        Format::Wfdb,
        &Default::default(),
    )
    .unwrap();
    let x = &out.recordings[0];
    let want = resample(
        &ecg_clean(&x.samples, x.fs, &cfg.clean).unwrap(),
        x.fs,
        128.0,
    )
    .unwrap();
    assert_eq!(c.rows[0].start_s, 0.0);
    assert_eq!(&c.window(0)[..], &want[..1280]);
    assert!(
        c.rows[0].hr_bpm > 40.0 && c.rows[0].hr_bpm < 160.0,
        "{}",
        c.rows[0].hr_bpm
    );
    // Every source file is hashed in the manifest.
    let files: Vec<&str> = r
        .manifest
        .sources
        .iter()
        .flat_map(|s| s.shards.iter())
        .flat_map(|s| s.files.iter())
        .map(|f| f.path.as_str())
        .collect();
    assert!(files.iter().any(|f| f.ends_with("208.dat")), "{files:?}");
    // Same inputs: nothing recomputed, nothing rewritten.
    let before = std::fs::metadata(tmp.path().join("windows.npy"))
        .unwrap()
        .modified()
        .unwrap();
    let r2 = prepare(&sources, tmp.path(), &cfg, &quiet).unwrap();
    assert_eq!(r2.reused_units, 2);
    assert!(r2.up_to_date);
    assert_eq!(
        std::fs::metadata(tmp.path().join("windows.npy"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
}

#[test]
fn an_interrupted_run_resumes_and_a_new_config_rebuilds() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ten_s();
    let sources = [
        src("wfdb:data/mitdb208"),
        src("edf:data/biosignalsnotebooks/supine_1min.edf"),
    ];
    let full = prepare(&sources, tmp.path(), &cfg, &quiet).unwrap();
    let first = Corpus::open(tmp.path()).unwrap().window(3);
    // As if killed before the end: one shard and the corpus files gone, a half-written shard left.
    let shards = tmp.path().join("shards");
    let shard_dirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect()
    };
    let keys = shard_dirs(&shards);
    assert_eq!(keys.len(), 2);
    std::fs::remove_dir_all(&keys[0]).unwrap();
    std::fs::create_dir_all(shards.join("deadbeef.tmp")).unwrap();
    for f in ["windows.npy", "windows.csv", "manifest.json"] {
        std::fs::remove_file(tmp.path().join(f)).unwrap();
    }
    let resumed = prepare(&sources, tmp.path(), &cfg, &quiet).unwrap();
    assert_eq!(resumed.reused_units, 1);
    assert_eq!(resumed.manifest, full.manifest);
    assert_eq!(Corpus::open(tmp.path()).unwrap().window(3), first);
    assert!(
        !shards.join("deadbeef.tmp").exists(),
        "stale shard folders are cleaned up"
    );
    // Another config gives other shards; the old ones go.
    let cfg2 = PrepareConfig {
        stride_s: 5.0,
        ..cfg
    };
    let r = prepare(&sources, tmp.path(), &cfg2, &quiet).unwrap();
    assert_eq!(r.reused_units, 0);
    assert!(r.manifest.counts.windows > full.manifest.counts.windows);
    assert_eq!(shard_dirs(&shards).len(), 2);
}

#[test]
fn trial_labels_and_pure_conditions_reach_every_window() {
    // Real ECG given a rating and a per-sample condition that changes at 65 s.
    let cardiaffect_io::ReadResult { output: out, .. } = cardiaffect_io::read(
        &root().join("data/mitdb208/208.hea"),
        Format::Wfdb,
        &Default::default(),
    )
    .unwrap();
    let mut rec = out.recordings.into_iter().next().unwrap();
    let scale = cardiaffect_io::Scale {
        min: 1.0,
        max: 9.0,
        description: Cow::Borrowed("test 1-9"),
        classes: Vec::new(),
        inferred: false,
    };
    rec.labels = vec![
        cardiaffect_io::Label {
            name: "arousal".into(),
            value: 7.5,
            scale: scale.clone(),
        },
        cardiaffect_io::Label {
            name: "valence".into(),
            value: f64::NAN,
            scale,
        },
    ];
    let n = rec.samples.len();
    let change = (65.0 * rec.fs) as usize;
    rec.label_track = Some(cardiaffect_io::LabelTrack {
        name: "condition".into(),
        fs: rec.fs,
        values: (0..n).map(|i| if i < change { 1 } else { 2 }).collect(),
        classes: vec![(1, "baseline"), (2, "stress")],
    });
    let w = cardiaffect_corpus::window_recording(&rec, &ten_s()).unwrap();
    assert!(w.meta.len() > 20);
    for m in &w.meta {
        assert_eq!(
            m.labels,
            vec![("arousal".to_string(), 7.5)],
            "NaN ratings are left out, finite ones kept"
        );
        let want = if m.start_s + 10.0 <= 65.0 {
            Some(1)
        } else if m.start_s >= 65.0 {
            Some(2)
        } else {
            None
        };
        assert_eq!(m.condition, want, "window at {} s", m.start_s);
    }
    assert!(
        w.meta
            .iter()
            .any(|m| m.start_s == 60.0 && m.condition.is_none()),
        "the window across the change has no condition"
    );
}

#[test]
fn too_short_fixture_windows_are_an_error_with_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = PrepareConfig {
        window_s: 0.5,
        stride_s: 0.5,
        ..ten_s()
    };
    // Half a second holds at most one beat: every window fails the heart-rate check, and that
    // is an error that says so, not an empty corpus.
    match prepare(
        &[src("amigos:fixtures/amigos/Data_Preprocessed_P01.mat")],
        tmp.path(),
        &cfg,
        &quiet,
    ) {
        Err(CorpusError::Empty {
            dropped, skipped, ..
        }) => {
            assert!(
                dropped.get("implausible_hr").copied().unwrap_or(0) > 0,
                "{dropped:?}"
            );
            assert_eq!(skipped, 2, "P01's empty and all-NaN trials");
        }
        other => panic!("expected an empty-corpus error, got {other:?}"),
    }
}

#[test]
fn bad_input_is_refused_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    // A rate below twice the band's upper edge.
    let npy = tmp.path().join("slow.npy");
    let mut bytes = cardiaffect_corpus::npy::header("<f4", &[5000]);
    bytes.extend(std::iter::repeat_n(0u8, 5000 * 4));
    std::fs::write(&npy, bytes).unwrap();
    let mut s: Source = format!("npy:{}", npy.display()).parse().unwrap();
    s.fs = Some(50.0);
    let e = prepare(&[s], &tmp.path().join("c1"), &ten_s(), &quiet)
        .unwrap_err()
        .to_string();
    assert!(e.contains("50 Hz") && e.contains("80 Hz"), "{e}");
    // A window longer than every recording: an error naming the counts, not an empty corpus.
    let cfg = PrepareConfig {
        window_s: 600.0,
        stride_s: 600.0,
        ..ten_s()
    };
    let e = prepare(
        &[src("wfdb:data/mitdb208")],
        &tmp.path().join("c2"),
        &cfg,
        &quiet,
    )
    .unwrap_err();
    assert!(matches!(e, CorpusError::Empty { recordings: 1, .. }), "{e}");
    assert!(!tmp.path().join("c2/windows.npy").exists());
    // A band the target rate cannot hold.
    let mut cfg = ten_s();
    cfg.clean.high_hz = 70.0;
    let e = prepare(
        &[src("wfdb:data/mitdb208")],
        &tmp.path().join("c3"),
        &cfg,
        &quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("band"), "{e}");
}

#[test]
fn a_corpus_of_another_version_is_detected() {
    let tmp = supine_corpus();
    let mpath = tmp.path().join("manifest.json");
    let text = std::fs::read_to_string(&mpath).unwrap().replace(
        &format!("\"format_version\": {}", cardiaffect_corpus::FORMAT_VERSION),
        "\"format_version\": 99",
    );
    std::fs::write(&mpath, text).unwrap();
    let e = Corpus::open(tmp.path()).err().unwrap().to_string();
    assert!(e.contains("version 99") && e.contains("prepare"), "{e}");
}

#[test]
fn reuse_follows_file_contents_not_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let edf = tmp.path().join("rec.edf");
    let original = std::fs::read(root().join("data/biosignalsnotebooks/supine_1min.edf")).unwrap();
    std::fs::write(&edf, &original).unwrap();
    let s: Source = format!("edf:{}", edf.display()).parse().unwrap();
    let out = tmp.path().join("corpus");
    let cfg = ten_s();
    assert_eq!(
        prepare(std::slice::from_ref(&s), &out, &cfg, &quiet)
            .unwrap()
            .reused_units,
        0
    );
    // Rewritten with the same bytes (new modification time): still reused.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&edf, &original).unwrap();
    assert_eq!(
        prepare(std::slice::from_ref(&s), &out, &cfg, &quiet)
            .unwrap()
            .reused_units,
        1
    );
    // One sample changed: rebuilt.
    let mut changed = original.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0x01;
    std::fs::write(&edf, &changed).unwrap();
    let r = prepare(std::slice::from_ref(&s), &out, &cfg, &quiet).unwrap();
    assert_eq!(r.reused_units, 0);
    assert!(!r.up_to_date);
}

#[test]
fn non_finite_windows_are_refused_with_their_indices() {
    // The case: the last 4,000 bytes of windows.npy overwritten with 0xFF (NaN), with
    // the checksums made to match (as a tool that rewrote the corpus would): the values decide.
    let tmp = supine_corpus();
    let npy = tmp.path().join("windows.npy");
    let mut b = std::fs::read(&npy).unwrap();
    let n = b.len();
    b[n - 4000..].fill(0xFF);
    std::fs::write(&npy, &b).unwrap();
    let mpath = tmp.path().join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["checksums"]["windows.npy"] = cardiaffect_io::artifact::checksum(&b).into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    cardiaffect_io::artifact::Checksums::write(tmp.path(), &["manifest.json"]).unwrap();
    let c = Corpus::open_with(
        tmp.path(),
        cardiaffect_corpus::OpenOptions { verify: false },
    )
    .unwrap();
    let len = c.window_len();
    let windows = c.len();
    let first_bad = (n - 4000 - (n - windows * len * 4)) / (len * 4);
    let e = Corpus::open(tmp.path()).err().unwrap();
    match &e {
        cardiaffect_corpus::CorpusError::NonFinite { count, indices, .. } => {
            assert_eq!(indices[0], first_bad, "{e}");
            assert_eq!(*count, windows - first_bad, "{e}");
        }
        other => panic!("expected the non-finite windows, got {other}"),
    }
    assert!(e.to_string().contains("windows.npy"), "{e}");
    assert!(cardiaffect_corpus::verify(tmp.path()).is_err());
}

/// A source folder where some records are truncated or unreadable: each is named in the
/// manifest and counted by reason, the rest prepared; each source's hours are recorded.
#[test]
fn unreadable_units_are_named_and_counted_and_the_rest_prepared() {
    let tmp = tempfile::tempdir().unwrap();
    let recs = tmp.path().join("recs");
    std::fs::create_dir_all(&recs).unwrap();
    for ext in ["hea", "dat"] {
        std::fs::copy(
            root().join(format!("data/mitdb208/208.{ext}")),
            recs.join(format!("208.{ext}")),
        )
        .unwrap();
    }
    // A record whose signal file is cut to 100 bytes, and one whose signal file is missing.
    std::fs::copy(recs.join("208.hea"), recs.join("cut.hea")).unwrap();
    let hea = std::fs::read_to_string(recs.join("208.hea")).unwrap();
    std::fs::write(recs.join("cut.hea"), hea.replace("208", "cut")).unwrap();
    std::fs::write(
        recs.join("cut.dat"),
        &std::fs::read(recs.join("208.dat")).unwrap()[..100],
    )
    .unwrap();
    std::fs::write(recs.join("gone.hea"), hea.replace("208", "gone")).unwrap();
    let sources = [
        Source {
            path: recs.clone(),
            ..src("wfdb:x")
        },
        src("edf:data/biosignalsnotebooks/supine_1min.edf"),
    ];
    let out = tmp.path().join("corpus");
    let r = prepare(&sources, &out, &ten_s(), &quiet).unwrap();
    let m = &r.manifest;
    let unreadable: Vec<&str> = m.sources[0]
        .unreadable
        .iter()
        .map(|u| u.unit.as_str())
        .collect();
    assert_eq!(unreadable.len(), 2, "{:?}", m.sources[0].unreadable);
    assert!(unreadable.iter().any(|u| u.ends_with("cut.hea")));
    assert!(unreadable.iter().any(|u| u.ends_with("gone.hea")));
    assert_eq!(m.counts.unreadable.values().sum::<usize>(), 2);
    assert!(m
        .counts
        .unreadable
        .contains_key("a file it names is missing"));
    assert!(r.warnings.iter().any(|w| w.contains("gone.hea")));
    // The readable record and the EDF are prepared, with their hours.
    assert_eq!(m.sources[0].shards.len(), 1);
    assert!(
        (m.sources[0].hours - 5.0 / 60.0).abs() < 1e-6,
        "{}",
        m.sources[0].hours
    );
    assert!(
        (m.sources[1].hours - 1.0 / 60.0).abs() < 1e-3,
        "{}",
        m.sources[1].hours
    );
    assert_eq!(
        m.sources[0].windows + m.sources[1].windows,
        m.counts.windows
    );
    // Every unit unreadable: the reader's own error, no corpus.
    let only_bad = [Source {
        path: recs.join("gone.hea"),
        ..src("wfdb:x")
    }];
    let e = prepare(&only_bad, &tmp.path().join("c2"), &ten_s(), &quiet).unwrap_err();
    assert!(e.to_string().contains("gone.dat"), "{e}");
}

#[test]
fn a_manifest_whose_window_disagrees_with_its_config_is_refused_naming_the_field() {
    let tmp = supine_corpus();
    let mpath = tmp.path().join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let len = m["window_len"].as_u64().unwrap();
    m["window_len"] = (len + 1).into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    cardiaffect_io::artifact::Checksums::write(tmp.path(), &["manifest.json"]).unwrap();
    let e = Corpus::open(tmp.path()).err().unwrap().to_string();
    assert!(
        e.contains("manifest.json") && e.contains("field window_len"),
        "{e}"
    );
    assert!(
        e.contains(&format!("expected {len} samples")) && e.contains(&format!("found {}", len + 1)),
        "{e}"
    );
}
