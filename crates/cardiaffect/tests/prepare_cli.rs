//! `cardiaffect prepare` end to end on the bundled real ECG (unpacked from the binary).

use std::process::Command;

#[test]
fn prepare_bundled_writes_a_corpus_numpy_can_read_and_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("corpus");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_cardiaffect"))
            .args(["prepare", "--out"])
            .arg(&out)
            .env("CARDIAFFECT_CACHE", tmp.path().join("cache"))
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("from 4 recordings (4 units, 0 reused)"),
        "{text}"
    );
    let header = std::fs::read(out.join("windows.npy")).unwrap();
    assert!(header.starts_with(b"\x93NUMPY"));
    let h = String::from_utf8_lossy(&header[10..128]);
    assert!(h.contains("'descr': '<f4'") && h.contains(", 1280)"), "{h}");
    let csv = std::fs::read_to_string(out.join("windows.csv")).unwrap();
    assert!(
        csv.starts_with("index,dataset,source,subject,trial,segment,lead,start_s,hr_bpm,condition")
    );
    let o = run();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("4 reused") && text.contains("already up to date"),
        "{text}"
    );
}

#[test]
fn prepare_rejects_a_missing_source_and_a_bad_band() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_cardiaffect"))
        .args(["prepare", "--out"])
        .arg(tmp.path())
        .args(["--source", "wfdb:/nonexistent/x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x does not exist"));
    let o = Command::new(env!("CARGO_BIN_EXE_cardiaffect"))
        .args(["prepare", "--out"])
        .arg(tmp.path())
        .args(["--band", "40,0.5"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("LOW < HIGH"));
}
