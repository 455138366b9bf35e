//! Broken inputs get errors that name the file, the field and what was expected; never a panic,
//! never an allocation sized by a corrupt header.

use std::path::{Path, PathBuf};

use cardiaffect_io::{read, Format, IoError, ReadOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn err(path: &Path, format: Format) -> (IoError, String) {
    match read(path, format, &ReadOptions::default()) {
        Ok(cardiaffect_io::ReadResult { output: out, .. }) => panic!(
            "{}: expected an error, got {} recordings",
            path.display(),
            out.recordings.len()
        ),
        Err(e) => {
            let msg = e.to_string();
            (e, msg)
        }
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(
            msg.contains(p),
            "error message {msg:?} should mention {p:?}"
        );
    }
}

#[test]
fn cell_of_the_wrong_shape() {
    let (e, msg) = err(&fixtures().join("bad/amigos_wrong_shape"), Format::Amigos);
    assert!(matches!(e, IoError::Layout { .. }), "{e:?}");
    assert_mentions(
        &msg,
        &[
            "Data_Preprocessed_P03.mat",
            "joined_data{2}",
            "T x 17",
            "[32, 5]",
        ],
    );
}

#[test]
fn missing_variable() {
    let (_, msg) = err(&fixtures().join("bad/amigos_no_labels"), Format::Amigos);
    assert_mentions(
        &msg,
        &[
            "Data_Preprocessed_P04.mat",
            "labels_selfassessment",
            "joined_data",
        ],
    );
}

#[test]
fn zero_length_trials_are_reported_not_returned() {
    let (e, msg) = err(&fixtures().join("bad/amigos_all_empty"), Format::Amigos);
    assert!(matches!(e, IoError::Empty { .. }), "{e:?}");
    assert_mentions(
        &msg,
        &[
            "amigos_all_empty",
            "all 2 trials were skipped",
            "joined_data{1} is empty",
        ],
    );
}

#[test]
fn struct_without_the_expected_field() {
    let (_, msg) = err(&fixtures().join("bad/dreamer_no_ecg"), Format::Dreamer);
    assert_mentions(
        &msg,
        &["DREAMER.mat", "DREAMER.Data{1}.ECG", "a field `ECG`", "Age"],
    );
}

#[test]
fn wfdb_header_naming_a_missing_dat() {
    let (e, msg) = err(
        &fixtures().join("bad/wfdb_missing_dat/r1.hea"),
        Format::Auto,
    );
    assert!(matches!(e, IoError::MissingFile { .. }), "{e:?}");
    assert_mentions(&msg, &["r1.hea", "signal 1 file", "r1.dat"]);
}

#[test]
fn wfdb_header_claiming_a_trillion_samples() {
    let (_, msg) = err(&fixtures().join("bad/wfdb_huge/r2.hea"), Format::Wfdb);
    assert_mentions(
        &msg,
        &["r2.dat", "number of samples", "1000000000000", "200 bytes"],
    );
}

#[test]
fn wfdb_unsupported_format() {
    let (e, msg) = err(&fixtures().join("bad/wfdb_format_311/r3.hea"), Format::Wfdb);
    assert!(matches!(e, IoError::Unsupported { .. }), "{e:?}");
    assert_mentions(&msg, &["r3.hea", "format 311", "212"]);
}

#[test]
fn pickle_without_ecg() {
    let (_, msg) = err(
        &fixtures().join("bad/wesad_no_ecg/S9/S9.pkl"),
        Format::Wesad,
    );
    assert_mentions(&msg, &["S9.pkl", "['signal']['chest']['ECG']", "EDA"]);
}

#[test]
fn wrong_magic() {
    let (_, msg) = err(&fixtures().join("bad/not_a_mat.mat"), Format::Amigos);
    assert_mentions(&msg, &["not_a_mat.mat", "MATLAB"]);
    let (e, _) = err(&fixtures().join("bad/not_a_mat.mat"), Format::Auto);
    assert!(matches!(e, IoError::UnknownFormat { .. }), "{e:?}");
    let (_, msg) = err(&fixtures().join("bad/not_an_edf.edf"), Format::Edf);
    assert_mentions(&msg, &["not_an_edf.edf", "version"]);
}

#[test]
fn missing_path() {
    let (e, msg) = err(Path::new("/nonexistent/cardiaffect/x.mat"), Format::Auto);
    assert!(matches!(e, IoError::Open { .. }), "{e:?}");
    assert_mentions(&msg, &["/nonexistent/cardiaffect/x.mat"]);
}

/// Copy a fixture into a temporary folder, cut to `keep` bytes (siblings copied whole).
fn truncated_copy(dir: &Path, rel: &str, keep: impl Fn(usize) -> usize) -> PathBuf {
    let src = fixtures().join(rel);
    let dst = dir.join(src.file_name().unwrap());
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(&dst, &bytes[..keep(bytes.len())]).unwrap();
    dst
}

#[test]
fn truncated_files_fail_cleanly_at_every_cut() {
    let cases: &[(&str, Format)] = &[
        ("amigos/Data_Preprocessed_P01.mat", Format::Amigos),
        ("amigos/Data_Preprocessed_P02.mat", Format::Amigos),
        ("dreamer/DREAMER.mat", Format::Dreamer),
        ("wesad/S2/S2.pkl", Format::Wesad),
        ("wesad/S3/S3.pkl", Format::Wesad),
        ("edf/ecg_edfplus.edf", Format::Edf),
        ("npy/ecg_2lead_i2.npy", Format::Npy),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let opts = ReadOptions {
        fs: Some(250.0),
        lead: None,
        ..Default::default()
    };
    for (rel, fmt) in cases {
        for frac in [0.0, 0.01, 0.1, 0.33, 0.5, 0.9, 0.999] {
            let p = truncated_copy(tmp.path(), rel, |n| ((n as f64 * frac) as usize).min(n - 1));
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            match read(&p, *fmt, &opts) {
                Ok(_) => panic!("{rel} cut at {frac}: read without error"),
                Err(e) => assert!(
                    e.to_string().contains(&name),
                    "{rel} cut at {frac}: {e} does not name the file"
                ),
            }
        }
    }
    // A WFDB .dat shorter than its header says.
    let d = tmp.path().join("wfdb");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(fixtures().join("wfdb/rec212.hea"), d.join("rec212.hea")).unwrap();
    truncated_copy(&d, "wfdb/rec212.dat", |n| n / 2);
    let e = read(&d.join("rec212.hea"), Format::Wfdb, &opts)
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["rec212.dat", "truncated"]);
}

#[test]
fn physio_columns_that_disagree_with_the_tsv() {
    let (_, msg) = err(&fixtures().join("bad/bids_columns_mismatch"), Format::Auto);
    assert_mentions(
        &msg,
        &["sub-01_task-x_physio.json", "Columns", "3 names", "2 names"],
    );
}

#[test]
fn a_label_column_of_numbers_and_text() {
    let (_, msg) = err(&fixtures().join("bad/bids_mixed_labels"), Format::Bids);
    assert_mentions(
        &msg,
        &[
            "sub-01_task-x_events.tsv",
            "`valence`",
            "row 1",
            "row 2",
            "\"high\"",
        ],
    );
}

#[test]
fn a_brainvision_header_naming_a_missing_data_file() {
    let (e, msg) = err(
        &fixtures().join("bad/brainvision_missing_data"),
        Format::Auto,
    );
    assert!(matches!(e, IoError::MissingFile { .. }), "{e:?}");
    assert_mentions(&msg, &["rec.vhdr", "DataFile", "gone.eeg"]);
}

#[test]
fn a_brainvision_header_without_its_binary_format() {
    let (_, msg) = err(
        &fixtures().join("bad/brainvision_no_format"),
        Format::BrainVision,
    );
    assert_mentions(
        &msg,
        &["rec.vhdr", "[Binary Infos] BinaryFormat", "IEEE_FLOAT_32"],
    );
}

#[test]
fn a_baseline_without_events_is_refused() {
    let opts = ReadOptions {
        baseline_s: Some(2.0),
        ..Default::default()
    };
    let e = read(&fixtures().join("edf/ecg_plain.edf"), Format::Edf, &opts).unwrap_err();
    assert_mentions(
        &e.to_string(),
        &["ecg_plain.edf", "‹baseline_s›", "‹events›"],
    );
}
