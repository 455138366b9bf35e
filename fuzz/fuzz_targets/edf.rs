#![no_main]
//! EDF/EDF+/BDF parser on arbitrary bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cardiaffect_io::formats::edf::parse(data);
});
