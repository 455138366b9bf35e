#![no_main]
//! The corpus reader on arbitrary files: the input is "manifest.json \0 windows.npy \0
//! windows.csv", written into a folder and opened (verified and not).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let manifest = parts.next().unwrap_or(&[]);
    let npy = parts.next().unwrap_or(&[]);
    let csv = parts.next().unwrap_or(&[]);
    let dir = std::env::temp_dir().join(format!("cardiaffect-fuzz-corpus-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for (name, bytes) in [("manifest.json", manifest), ("windows.npy", npy), ("windows.csv", csv)] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    for verify in [true, false] {
        if let Ok(c) =
            cardiaffect_corpus::Corpus::open_with(&dir, cardiaffect_corpus::OpenOptions { verify })
        {
            // Every window the reader says it has can be read.
            let mut w = vec![0.0f32; c.window_len()];
            for i in 0..c.len().min(64) {
                c.window_into(i, &mut w);
            }
        }
    }
});
