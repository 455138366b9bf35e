#![no_main]
//! The corpus reader on arbitrary files: the input is two little-endian u32 lengths, then that
//! many bytes of manifest.json, that many of windows.npy, and the rest as windows.csv; they are
//! written into a folder and opened (verified and not).
use libfuzzer_sys::fuzz_target;

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (head, rest) = data.split_at(n);
    *data = rest;
    head
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let len = |b: &[u8]| b.iter().rev().fold(0usize, |acc, &x| acc << 8 | x as usize);
    let m = len(take(&mut data, 4));
    let w = len(take(&mut data, 4));
    let manifest = take(&mut data, m);
    let npy = take(&mut data, w);
    let csv = data;
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
