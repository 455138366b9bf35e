#![no_main]
//! Pickle VM on arbitrary bytes, then decoding every array it rebuilt.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = cardiaffect_io::formats::pickle::parse(data) {
        let root = p.root();
        let _ = root.describe();
        let _ = root.array_f64();
        for (k, v) in root.items() {
            let _ = k.as_str();
            let _ = v.array_f64();
            for (_, w) in v.items() {
                let _ = w.array_f64();
            }
        }
    }
});
