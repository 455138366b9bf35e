#![no_main]
//! WFDB header + signal file: the input is "header text \0 signal bytes".
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..split]);
    let dat = data.get(split + 1..).unwrap_or(&[]).to_vec();
    let _ = cardiaffect_io::formats::wfdb::decode_record(Path::new("fuzz.hea"), &text, |f, _| {
        Ok((PathBuf::from(f), dat.clone()))
    });
});
