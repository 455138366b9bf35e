//! The bundled data sets (`data/`: real ECG, and eegmat's real labels) listed for
//! `include_bytes!`, so that adding a file to a bundled folder needs no edit of the source.

use std::path::{Path, PathBuf};

/// The folders of `data/` shipped inside the binary (data/README.md says what each is).
const SETS: [&str; 3] = ["mitdb208", "biosignalsnotebooks", "eegmat"];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    // Read when the script runs, not when it is compiled: cargo reuses a compiled build
    // script for a checkout at another path sharing the target directory (CI's clean clone).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let data = Path::new(&manifest).join("../../data");
    let mut files = Vec::new();
    for set in SETS {
        println!("cargo:rerun-if-changed={}", data.join(set).display());
        walk(&data.join(set), &mut files);
    }
    let mut src = format!(
        "/// (path under data/, bytes)\nconst FILES: [(&str, &[u8]); {}] = [\n",
        files.len()
    );
    for f in &files {
        let rel = f
            .strip_prefix(&data)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        src.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            f.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bundled_files.rs");
    std::fs::write(out, src).unwrap();
}
