#![no_main]
//! MAT v5 parser on arbitrary bytes: must return Ok or Err, never panic or over-allocate.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = cardiaffect_io::formats::mat::parse(data) {
        for (_, v) in &m.variables {
            let _ = v.describe();
        }
    }
});
