//! Every reader against files written by the real tools (scipy.io.savemat, pickle, wfdb,
//! pyedflib, numpy): `fixtures/make_fixtures.py` wrote them and recorded in `expected.json`
//! what it wrote. `CARDIAFFECT_FIXTURES=DIR` points the test at a freshly generated set (CI
//! regenerates one with the current releases of those tools).

use std::path::{Path, PathBuf};

use cardiaffect_io::{read, Format, ReadOptions, Recording};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    match std::env::var_os("CARDIAFFECT_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

fn check_recording(ctx: &str, r: &Recording, e: &Value) {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    assert_eq!(r.subject, s("subject"), "{ctx}: subject");
    assert_eq!(r.trial, s("trial"), "{ctx}: trial");
    assert_eq!(r.lead, s("lead"), "{ctx}: lead");
    if let Some(seg) = e["segment"].as_str() {
        assert_eq!(r.segment.as_deref(), Some(seg), "{ctx}: segment");
    }
    assert_eq!(r.fs, e["fs"].as_f64().unwrap(), "{ctx}: fs");
    assert_eq!(
        r.samples.len() as u64,
        e["samples"].as_u64().unwrap(),
        "{ctx}: sample count"
    );
    for (i, v) in e["first_samples"].as_array().unwrap().iter().enumerate() {
        match v.as_f64() {
            Some(v) => assert!(
                close(r.samples[i] as f64, v, 1e-6),
                "{ctx}: sample {i}: {} vs {v}",
                r.samples[i]
            ),
            None => assert!(r.samples[i].is_nan(), "{ctx}: sample {i} should be NaN"),
        }
    }
    let sum: f64 = r
        .samples
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| v as f64)
        .sum();
    let want = e["sum"].as_f64().unwrap();
    assert!(
        close(sum, want, 1e-6),
        "{ctx}: sum of samples {sum} vs {want}"
    );
    let nans = r.samples.iter().filter(|v| v.is_nan()).count() as u64;
    assert_eq!(nans, e["nan"].as_u64().unwrap(), "{ctx}: NaN count");
    // Lead-variant expectations check the signal only and carry no "labels".
    let Some(labels) = e["labels"].as_object() else {
        return;
    };
    assert_eq!(
        r.labels.len(),
        labels.len(),
        "{ctx}: labels {:?}",
        r.labels.iter().map(|l| &l.name).collect::<Vec<_>>()
    );
    for (k, v) in labels {
        let l = r
            .label(k)
            .unwrap_or_else(|| panic!("{ctx}: label {k} missing"));
        match v.as_str() {
            // A categorical label: its class by name.
            Some(class) => assert_eq!(
                l.scale.classes.get(l.value as usize).map(String::as_str),
                Some(class),
                "{ctx}: label {k} (classes {:?})",
                l.scale.classes
            ),
            None if v.is_null() => assert!(l.value.is_nan(), "{ctx}: label {k} should be n/a"),
            None => assert!(
                close(l.value, v.as_f64().unwrap(), 1e-12),
                "{ctx}: label {k}: {} vs {v}",
                l.value
            ),
        }
    }
    if let Some(chans) = e["channels"].as_array() {
        let got: Vec<&str> = r.channels.iter().map(|c| c.name.as_str()).collect();
        let want: Vec<&str> = chans.iter().filter_map(|c| c.as_str()).collect();
        assert_eq!(got, want, "{ctx}: other channels");
    }
    if let Some(meta) = e["meta"].as_object() {
        for (k, v) in meta {
            assert_eq!(
                r.meta.get(k).map(String::as_str),
                v.as_str(),
                "{ctx}: meta {k}"
            );
        }
    }
    check_label_track(ctx, r, e);
}

fn check_label_track(ctx: &str, r: &Recording, e: &Value) {
    if let Some(counts) = e["label_counts"].as_object() {
        let t = r
            .label_track
            .as_ref()
            .unwrap_or_else(|| panic!("{ctx}: no label track"));
        assert_eq!(t.values.len(), r.samples.len(), "{ctx}: label track length");
        for (name, n) in counts {
            let code = t.classes.iter().find(|(_, c)| c == name).unwrap().0;
            let got = t.values.iter().filter(|&&v| v == code).count() as u64;
            assert_eq!(got, n.as_u64().unwrap(), "{ctx}: samples labelled {name}");
        }
    }
}

#[test]
fn every_fixture_reads_as_written() {
    let dir = fixtures_dir();
    let text = std::fs::read_to_string(dir.join("expected.json"))
        .expect("fixtures/expected.json: run fixtures/make_fixtures.py");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let fixtures = doc["fixtures"].as_array().unwrap();
    assert!(
        fixtures.len() >= 20,
        "expected.json lists {} fixtures",
        fixtures.len()
    );
    for fx in fixtures {
        let rel = fx["path"].as_str().unwrap();
        let path = dir.join(rel);
        let format: Format = fx["format"].as_str().unwrap().parse().unwrap();
        let opts = ReadOptions {
            fs: fx["options"]["fs"].as_f64(),
            lead: fx["options"]["lead"].as_str().map(str::to_string),
            events: fx["options"]["events"].as_str().map(|e| {
                let e = if e == "annotations" {
                    e.to_string()
                } else {
                    dir.join(e).display().to_string()
                };
                e.parse().unwrap()
            }),
            baseline_s: fx["options"]["baseline"].as_f64(),
            ..Default::default()
        };
        for fmt in [format, Format::Auto] {
            let ctx = format!("{rel} as {fmt}");
            let cardiaffect_io::ReadResult {
                format: used,
                output: out,
                ..
            } = read(&path, fmt, &opts).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(used, format, "{ctx}: detected format");
            // wfdb.wrsamp writes each signal's checksum: ours must agree.
            assert!(
                !out.warnings.iter().any(|w| w.contains("checksum")),
                "{ctx}: {:?}",
                out.warnings
            );
            let want = fx["recordings"].as_array().unwrap();
            assert_eq!(
                out.recordings.len(),
                want.len(),
                "{ctx}: number of recordings"
            );
            for (i, (r, e)) in out.recordings.iter().zip(want).enumerate() {
                check_recording(&format!("{ctx} #{i}"), r, e);
            }
            let skipped: Vec<(String, String)> = out
                .skipped
                .iter()
                .map(|s| (s.subject.clone(), s.trial.clone()))
                .collect();
            let want_skipped: Vec<(String, String)> = fx["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["subject"].as_str().unwrap().to_string(),
                        s["trial"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert_eq!(skipped, want_skipped, "{ctx}: skipped trials");
            if let Some(anns) = fx["annotations"].as_array() {
                let got = &out.recordings[0].annotations;
                assert_eq!(got.len(), anns.len(), "{ctx}: annotations {got:?}");
                for (g, a) in got.iter().zip(anns) {
                    assert!(
                        close(g.onset_s, a["onset_s"].as_f64().unwrap(), 1e-9),
                        "{ctx}: onset"
                    );
                    assert_eq!(
                        g.text,
                        a["text"].as_str().unwrap(),
                        "{ctx}: annotation text"
                    );
                }
            }
        }
    }
}

#[test]
fn other_channels_load_on_demand() {
    let dir = fixtures_dir();
    let cardiaffect_io::ReadResult { output: out, .. } = read(
        &dir.join("amigos/Data_Preprocessed_P02.mat"),
        Format::Amigos,
        &ReadOptions::default(),
    )
    .unwrap();
    let r = &out.recordings[0];
    let gsr = r.channel("GSR").expect("GSR channel");
    assert!(
        !gsr.is_loaded(),
        "GSR must not be loaded before it is asked for"
    );
    let v = gsr.load().unwrap();
    assert_eq!(v.len(), r.samples.len());
    assert!(
        v.iter().all(|&x| x == 1000.0),
        "GSR of trial 1 is 1000 in the fixture"
    );
    let right = r.channel("ECG Right").unwrap().load().unwrap();
    assert!(
        (right[10] - 0.9 * r.samples[10]).abs() < 1e-5,
        "ECG Right is 0.9 x ECG Left in the fixture"
    );

    let cardiaffect_io::ReadResult { output: out, .. } = read(
        &dir.join("wesad/S3/S3.pkl"),
        Format::Wesad,
        &ReadOptions::default(),
    )
    .unwrap();
    let r = &out.recordings[0];
    let temp = r.channel("chest Temp").unwrap();
    assert_eq!(temp.len, Some(700));
    assert!(temp.load().unwrap().iter().all(|&x| x == 33.5));
    let acc = r.channel("wrist ACC y").unwrap();
    assert_eq!(acc.fs, 32.0);
    assert_eq!(acc.load().unwrap().len(), 32);
}

#[test]
fn reading_unit_by_unit_gives_the_same_recordings() {
    let dir = fixtures_dir();
    for (rel, fmt) in [
        ("amigos", Format::Amigos),
        ("wesad", Format::Wesad),
        ("ascertain", Format::Ascertain),
        ("wfdb", Format::Wfdb),
        ("dreamer", Format::Dreamer),
    ] {
        let path = dir.join(rel);
        let cardiaffect_io::ReadResult { output: whole, .. } =
            read(&path, fmt, &ReadOptions::default()).unwrap();
        let (_, units) = cardiaffect_io::read_units(&path, Format::Auto).unwrap();
        let mut pieces = Vec::new();
        for u in &units {
            let cardiaffect_io::ReadResult { output: out, .. } =
                read(u, fmt, &ReadOptions::default()).unwrap();
            pieces.extend(out.recordings);
        }
        assert_eq!(
            pieces.len(),
            whole.recordings.len(),
            "{rel}: {} units",
            units.len()
        );
        for (a, b) in pieces.iter().zip(&whole.recordings) {
            let same = a.samples.len() == b.samples.len()
                && a.samples
                    .iter()
                    .zip(&b.samples)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same && a.labels == b.labels,
                "{rel}: {} {} unit by unit vs {} {} whole",
                a.subject,
                a.trial,
                b.subject,
                b.trial
            );
        }
    }
}

#[test]
fn wesad_lists_the_channels_the_file_has() {
    // S6's chest dict has no EMG and no Temp, its wrist dict no BVP.
    let cardiaffect_io::ReadResult { output: out, .. } = read(
        &fixtures_dir().join("wesad_partial/S6/S6.pkl"),
        Format::Wesad,
        &ReadOptions::default(),
    )
    .unwrap();
    let names: Vec<&str> = out.recordings[0]
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for absent in ["chest EMG", "chest Temp", "wrist BVP"] {
        assert!(!names.contains(&absent), "{absent} listed: {names:?}");
    }
    for present in [
        "chest EDA",
        "chest Resp",
        "chest ACC x",
        "wrist EDA",
        "wrist TEMP",
    ] {
        assert!(names.contains(&present), "{present} missing: {names:?}");
    }
    for (key, place) in [("EMG", "chest"), ("Temp", "chest"), ("BVP", "wrist")] {
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains(&format!("['{place}'] has no '{key}'"))),
            "{:?}",
            out.warnings
        );
    }
}
