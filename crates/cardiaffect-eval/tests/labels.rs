//! Labels on a corpus that mixes rating scales: each window is split at its own scale's
//! midpoint, each scale has its rule, and one given threshold for two scales is refused.

use cardiaffect_corpus::synth::{write_affect, AffectConfig};
use cardiaffect_corpus::{prepare, Corpus, PrepareConfig, Source};
use cardiaffect_eval::{make_labels, EvalError, Task, Thresholds};

fn quiet(_: cardiaffect_corpus::Progress) {}

/// `src` prepared into `dir` as 4 s windows (stride 4 s), opened.
fn prepared_4s(src: Source, dir: &std::path::Path) -> Corpus {
    let pc = PrepareConfig {
        window_s: 4.0,
        stride_s: 4.0,
        ..PrepareConfig::default()
    };
    prepare(&[src], dir, &pc, &quiet).unwrap();
    Corpus::open(dir).unwrap()
}

#[test]
fn a_corpus_of_two_scales_labels_each_window_on_its_own_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let cfg = AffectConfig {
        subjects: 2,
        trials: 6,
        trial_s: 20.0,
        seed: 3,
    };
    write_affect(&raw, &cfg, &|_| {}).unwrap();
    let dir = tmp.path().join("corpus");
    let src: Source = format!("amigos:{}", raw.display()).parse().unwrap();
    let c = prepared_4s(src, &dir);

    // As prepared: one scale (AMIGOS 1-9), one rule at its midpoint.
    let l = make_labels(&c, Task::Arousal, &Thresholds::default()).unwrap();
    assert_eq!(l.rules.len(), 1, "{}", l.describe());
    assert_eq!(l.rules[0].threshold, 5.0);

    // Now say that the second subject's file was rated 1-5 (as DREAMER is), as a corpus
    // prepared from both datasets records it.
    let mpath = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    let shards = m["sources"][0]["shards"].as_array_mut().unwrap();
    assert_eq!(shards.len(), 2, "one shard per subject file");
    let second = shards[1]["unit"].as_str().unwrap().to_string();
    shards[1]["label_scales"]["arousal"] = serde_json::json!({
        "min": 1.0, "max": 5.0, "description": "DREAMER self-assessment 1-5"
    });
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    // As a tool that edits a manifest on purpose would: record its new checksum.
    cardiaffect_io::artifact::Checksums::write(&dir, &["manifest.json"]).unwrap();

    let c = Corpus::open(&dir).unwrap();
    let col = c.label_index("arousal").unwrap();
    let l = make_labels(&c, Task::Arousal, &Thresholds::default()).unwrap();
    let th: Vec<f64> = l.rules.iter().map(|r| r.threshold).collect();
    assert_eq!(th, vec![5.0, 3.0], "{}", l.describe());
    assert!(
        l.describe().contains("DREAMER self-assessment 1-5"),
        "{}",
        l.describe()
    );
    let mut between = 0;
    for (row, y) in c.rows.iter().zip(&l.y) {
        let v = row.labels[col];
        let t = if row.source == second { 3.0 } else { 5.0 };
        assert_eq!(*y, Some(usize::from(v > t)), "{} rated {v}", row.source);
        // Windows whose label the scale decides (high on 1-5, low on 1-9).
        between += usize::from(row.source == second && v > 3.0 && v <= 5.0);
    }
    assert!(
        between > 0,
        "the synthetic ratings should include some in (3, 5]"
    );

    // Quadrants use both columns' per-window thresholds.
    let q = make_labels(&c, Task::Quadrant, &Thresholds::default()).unwrap();
    assert_eq!(q.rules.len(), 3, "{}", q.describe());

    // One given threshold for two scales: refused, naming both.
    let given = Thresholds {
        arousal: Some(4.0),
        ..Thresholds::default()
    };
    match make_labels(&c, Task::Arousal, &given) {
        Err(EvalError::Config {
            field, expected, ..
        }) => {
            assert_eq!(field, "threshold");
            assert!(
                expected.contains("AMIGOS self-assessment 1-9") && expected.contains("DREAMER"),
                "{expected}"
            );
        }
        other => panic!(
            "expected a threshold error, got {:?}",
            other.map(|l| l.rules)
        ),
    }
}

#[test]
fn any_label_column_is_a_task() {
    let tmp = tempfile::tempdir().unwrap();
    let src: Source = format!(
        "bids:{}",
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/bids")
            .display()
    )
    .parse()
    .unwrap();
    let dir = tmp.path().join("corpus");
    // 4 s windows: the fixture's trials last 8-12 s.
    let c = prepared_4s(src, &dir);
    let task: Task = "trial_type".parse().unwrap();
    assert_eq!(task, Task::Column("trial_type".into()));
    let l = make_labels(&c, task.clone(), &Thresholds::default()).unwrap();
    assert_eq!(l.classes, ["fear", "joy", "neutral"]);
    assert_eq!(l.counts, [6, 6, 6]);
    assert_eq!(serde_json::to_value(&l.task).unwrap(), "trial_type");
    // Two of the classes: the third's windows are left out.
    let two = Thresholds {
        classes: vec!["neutral".into(), "fear".into()],
        ..Thresholds::default()
    };
    let l = make_labels(&c, task.clone(), &two).unwrap();
    assert_eq!(
        (l.classes.clone(), l.counts.clone()),
        (vec!["neutral".to_string(), "fear".to_string()], vec![6, 6])
    );
    assert_eq!(l.y.iter().filter(|y| y.is_none()).count(), 6);
    // A numeric column: high = value > threshold, the rule named.
    let val: Task = "valence".parse().unwrap();
    assert_eq!(val, Task::Valence);
    let ar = Task::Column("arousal".into());
    let l = make_labels(
        &c,
        ar.clone(),
        &Thresholds {
            column: Some(3.5),
            ..Thresholds::default()
        },
    )
    .unwrap();
    assert_eq!(l.classes, ["low arousal", "high arousal"]);
    assert!(l.describe().contains("arousal > 3.5"), "{}", l.describe());
    let unl = cardiaffect_eval::unlabeled_subjects(&c, &l);
    assert_eq!(unl, ["sub-02", "sub-03"]);
    // Rules of the wrong kind are refused, naming what would do.
    let e = make_labels(
        &c,
        task,
        &Thresholds {
            column: Some(1.0),
            ..Thresholds::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("fear, joy, neutral"), "{e}");
    let e = make_labels(
        &c,
        ar,
        &Thresholds {
            classes: vec!["x".into()],
            ..Thresholds::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("numeric"), "{e}");
}
