//! What the train crate's integration tests share: a small real corpus prepared from the
//! repository's recordings.

use std::path::{Path, PathBuf};

use cardiaffect_corpus::{prepare, PrepareConfig, Source};

/// A corpus in `dir` of 2-s windows every `stride_s` seconds from two of the repository's
/// recordings (MIT-BIH record 208 in WFDB, a minute of EDF): two subjects, so one is held out.
pub fn corpus(dir: &Path, stride_s: f64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut s: Source = "wfdb:data/mitdb208".parse().unwrap();
    s.path = root.join(&s.path);
    let mut e: Source = "edf:data/biosignalsnotebooks/supine_1min.edf"
        .parse()
        .unwrap();
    e.path = root.join(&e.path);
    prepare(
        &[s, e],
        dir,
        &PrepareConfig {
            window_s: 2.0,
            stride_s,
            ..PrepareConfig::default()
        },
        &|_| {},
    )
    .unwrap();
    dir.to_path_buf()
}
