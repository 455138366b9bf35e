//! A lab's own study as a corpus: BIDS events become labeled trials, categorical columns keep
//! one class list for the whole corpus (each source's codes mapped onto it), inferred scales
//! are the union of the sources', and skipped events are counted by reason.

use std::path::{Path, PathBuf};

use cardiaffect_corpus::{prepare, Corpus, PrepareConfig, Source};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn quiet(_: cardiaffect_corpus::Progress) {}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn column(c: &Corpus, name: &str) -> Vec<f64> {
    let i = c.label_index(name).unwrap();
    c.rows.iter().map(|r| r.labels[i]).collect()
}

#[test]
fn a_bids_study_becomes_a_labeled_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let study = tmp.path().join("study");
    copy_dir(&root().join("fixtures/bids"), &study);
    // sub-02 saw an "anger" clip where the others saw "fear": the corpus's classes are the
    // union, and sub-01's code for fear (0 in its own file) must become 1.
    let ev = study.join("sub-02/eeg/sub-02_task-film_run-1_events.tsv");
    let text = std::fs::read_to_string(&ev)
        .unwrap()
        .replace("\tfear\t", "\tanger\t");
    std::fs::write(&ev, text).unwrap();
    let src: Source = format!("{}", study.display()).parse().unwrap();
    let out = tmp.path().join("corpus");
    // The study's sidecar declares the Levels of trial_type: "anger" is not one of them.
    let e = prepare(
        std::slice::from_ref(&src),
        &out,
        &PrepareConfig::default(),
        &quiet,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("sub-02_task-film_run-1_events.tsv")
            && msg.contains("row 1")
            && msg.contains("\"anger\""),
        "{msg}"
    );
    // Without declared Levels, each file's classes are what it holds.
    let side = study.join("task-film_events.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&side).unwrap()).unwrap();
    j.as_object_mut().unwrap().remove("trial_type");
    std::fs::write(&side, j.to_string()).unwrap();
    let r = prepare(&[src], &out, &PrepareConfig::default(), &quiet).unwrap();
    let m = &r.manifest;
    assert_eq!(m.counts.skipped_trials, 3);
    assert_eq!(m.counts.skipped["outside the recording"], 3);
    let tt = &m.label_scales["trial_type"];
    assert_eq!(tt.classes, ["anger", "fear", "joy", "neutral"]);
    // Declared by the root sidecar's Levels; inferred from sub-01's values.
    assert_eq!(
        (m.label_scales["valence"].min, m.label_scales["valence"].max),
        (1.0, 9.0)
    );
    assert!(!m.label_scales["valence"].inferred);
    assert!(m.label_scales["arousal"].inferred);
    // Every shard agrees with the corpus on the categorical and inferred scales.
    for sh in m.sources.iter().flat_map(|s| &s.shards) {
        if let Some(s) = sh.label_scales.get("trial_type") {
            assert_eq!(s, tt);
        }
    }
    let c = Corpus::open(&out).unwrap();
    let codes = column(&c, "trial_type");
    for (row, code) in c.rows.iter().zip(&codes) {
        let want = match (row.subject.as_str(), row.trial.as_str()) {
            ("sub-02", t) if t.ends_with("001") => "anger",
            (_, t) if t.ends_with("001") => "fear",
            (_, t) if t.ends_with("002") => "joy",
            _ => "neutral",
        };
        assert_eq!(tt.classes[*code as usize], want, "{row:?}");
    }
    // Arousal only in sub-01's events: the others' windows have none.
    let ar = column(&c, "arousal");
    for (row, a) in c.rows.iter().zip(&ar) {
        assert_eq!(a.is_finite(), row.subject == "sub-01", "{row:?}");
    }
    assert_eq!(c.rows.len(), 18);
}

#[test]
fn user_events_and_baselines_on_any_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.csv");
    std::fs::write(
        &events,
        "recording,onset,duration,stress\n208.hea,20,30,2\n208.hea,60,30,7\n208.hea,110,30,n/a\n",
    )
    .unwrap();
    let mut src: Source = format!("wfdb:{}", root().join("data/mitdb208").display())
        .parse()
        .unwrap();
    src.events = Some(cardiaffect_io::EventSource::File(events.clone()));
    src.baseline_s = Some(10.0);
    src.label_scales = [("stress".to_string(), (0.0, 10.0))].into();
    src.lead = Some("MLII".into());
    let out = tmp.path().join("corpus");
    let r = prepare(
        std::slice::from_ref(&src),
        &out,
        &PrepareConfig::default(),
        &quiet,
    )
    .unwrap();
    let s = &r.manifest.label_scales["stress"];
    assert_eq!((s.min, s.max, s.inferred), (0.0, 10.0, false));
    let c = Corpus::open(&out).unwrap();
    let base: Vec<_> = c.rows.iter().filter(|r| r.segment == "baseline").collect();
    let trials: Vec<_> = c.rows.iter().filter(|r| r.segment.is_empty()).collect();
    // 10 s baselines (2 windows of 4 s) and 30 s trials (7 windows), 3 events.
    assert_eq!(
        (base.len(), trials.len()),
        (6, 21),
        "{:?}",
        c.rows
            .iter()
            .map(|r| (&r.trial, &r.segment))
            .collect::<Vec<_>>()
    );
    let i = c.label_index("stress").unwrap();
    assert!(
        base.iter().all(|r| r.labels[i].is_nan()),
        "a baseline is not rated"
    );
    // Changing the events file rebuilds the shard (it is one of its inputs).
    std::fs::write(
        &events,
        "recording,onset,duration,stress\n208.hea,20,30,3\n",
    )
    .unwrap();
    let r2 = prepare(&[src], &out, &PrepareConfig::default(), &quiet).unwrap();
    assert_eq!(r2.reused_units, 0);
    assert_eq!(r2.manifest.counts.windows, 9);
}
