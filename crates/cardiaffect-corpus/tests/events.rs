//! A lab's own study as a corpus: BIDS events become labeled trials, categorical columns keep
//! one class list for the whole corpus (each source's codes mapped onto it), inferred scales
//! are the union of the sources', and skipped events are counted by reason.

use std::path::Path;

use cardiaffect_corpus::{prepare, Corpus, PrepareConfig, Source};

mod common;
use common::{copy_dir, quiet, root};

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
    let e = prepare(std::slice::from_ref(&src), &out, &four_s(), &quiet).unwrap_err();
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
    let r = prepare(&[src], &out, &four_s(), &quiet).unwrap();
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
    let r = prepare(std::slice::from_ref(&src), &out, &four_s(), &quiet).unwrap();
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
    let r2 = prepare(&[src], &out, &four_s(), &quiet).unwrap();
    assert_eq!(r2.reused_units, 0);
    assert_eq!(r2.manifest.counts.windows, 9);
}

/// `windows.csv` with the checksum the manifest keeps for it updated (as `prepare` would have
/// written `text`).
fn rewrite_csv(dir: &Path, text: &str) {
    std::fs::write(dir.join("windows.csv"), text).unwrap();
    let mp = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mp).unwrap()).unwrap();
    m["checksums"]["windows.csv"] = cardiaffect_io::artifact::checksum(text.as_bytes()).into();
    std::fs::write(&mp, serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::remove_file(dir.join("checksums.json")).unwrap();
}

#[test]
fn categorical_labels_are_named_beside_their_index_and_old_tables_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let src: Source = format!("bids:{}", root().join("fixtures/bids").display())
        .parse()
        .unwrap();
    let out = tmp.path().join("corpus");
    let cfg = PrepareConfig {
        window_s: 2.0,
        stride_s: 2.0,
        ..PrepareConfig::default()
    };
    prepare(std::slice::from_ref(&src), &out, &cfg, &quiet).unwrap();
    let text = std::fs::read_to_string(out.join("windows.csv")).unwrap();
    let header = cardiaffect_corpus::corpus::split_csv(text.lines().next().unwrap());
    let k = header.iter().position(|h| h == "trial_type").unwrap();
    assert_eq!(header[k + 1], "trial_type_name", "{header:?}");
    // Numeric labels have no name column.
    assert!(!header.iter().any(|h| h == "valence_name"), "{header:?}");
    let c = Corpus::open(&out).unwrap();
    let classes = c.manifest.label_scales["trial_type"].classes.clone();
    let li = c.label_index("trial_type").unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in text.lines().skip(1).enumerate() {
        let f = cardiaffect_corpus::corpus::split_csv(line);
        let code: usize = f[k].parse().unwrap();
        assert_eq!(f[k + 1], classes[code], "row {i}");
        assert_eq!(c.class_name(i, li), Some(classes[code].as_str()));
        seen.insert(f[k + 1].clone());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // A table written before the name column (the same without it) reads the same.
    let old: String = text
        .lines()
        .map(|l| {
            let mut f = cardiaffect_corpus::corpus::split_csv(l);
            f.remove(k + 1);
            f.join(",") + "\n"
        })
        .collect();
    assert!(!old.contains("trial_type_name"));
    let old_dir = tmp.path().join("old");
    copy_dir(&out, &old_dir);
    rewrite_csv(&old_dir, &old);
    let o = Corpus::open(&old_dir).unwrap();
    // (as text: NaN, an absent label, is not equal to itself)
    assert_eq!(format!("{:?}", o.rows), format!("{:?}", c.rows));
    assert_eq!(o.class_name(0, li), c.class_name(0, li));
    // A name that is not the class of its index is an error naming the row and column.
    let bad_dir = tmp.path().join("bad");
    copy_dir(&out, &bad_dir);
    let first = &c.class_name(0, li).unwrap().to_string();
    let other = classes.iter().find(|x| *x != first).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut f = cardiaffect_corpus::corpus::split_csv(&lines[1]);
    f[k + 1] = other.clone();
    lines[1] = f.join(",");
    rewrite_csv(&bad_dir, &(lines.join("\n") + "\n"));
    let e = Corpus::open(&bad_dir).err().unwrap().to_string();
    assert!(
        e.contains("windows.csv: row 0") && e.contains("`trial_type_name`") && e.contains(first),
        "{e}"
    );
}

/// 4 s windows every 4 s: these trials (8–30 s) were sized for them (the default is 10 s).
fn four_s() -> PrepareConfig {
    PrepareConfig {
        window_s: 4.0,
        stride_s: 4.0,
        ..PrepareConfig::default()
    }
}
