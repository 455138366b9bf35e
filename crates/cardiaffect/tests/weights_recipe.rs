//! The recipe that builds the shipped weights (`weights/make_bundled.sh`, its sources in
//! `weights/sources.sh`) refuses a fetched file whose SHA-256 differs from PhysioNet's
//! published one, naming it; WFDB headers stored with LF line ends still match PhysioNet's
//! CRLF sums.

use std::path::Path;
use std::process::Command;

fn sha256(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn verify(dir: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/sources.sh");
    let o = Command::new("bash")
        .arg(script)
        .arg("--verify")
        .arg(dir)
        .arg(dir.join("SHA256SUMS.txt"))
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn a_file_that_differs_from_the_published_sum_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dat = b"\x01\x02\x03 signal bytes";
    let hea_crlf = b"100 2 360 650000\r\n100.dat 212 200 11 1024 995 -22131 0 MLII\r\n";
    std::fs::write(d.join("100.dat"), dat).unwrap();
    // The snapshot stores headers with LF; PhysioNet's sum is of the CRLF file.
    std::fs::write(
        d.join("100.hea"),
        String::from_utf8_lossy(hea_crlf).replace("\r\n", "\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("SHA256SUMS.txt"),
        format!("{} 100.dat\n{} 100.hea\n", sha256(dat), sha256(hea_crlf)),
    )
    .unwrap();
    let (ok, out) = verify(d);
    assert!(ok, "{out}");
    assert!(out.contains("verified 2 files"), "{out}");
    // One byte changed: refused, the file named.
    std::fs::write(d.join("100.dat"), b"\x01\x02\x04 signal bytes").unwrap();
    let (ok, out) = verify(d);
    assert!(!ok, "{out}");
    assert!(out.contains("100.dat") && out.contains("differs"), "{out}");
    assert!(!out.contains("100.hea:"), "{out}");
}
