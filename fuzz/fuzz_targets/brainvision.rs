#![no_main]
//! BrainVision header, markers and data: the input is "vhdr \0 vmrk \0 data bytes".
use libfuzzer_sys::fuzz_target;

use cardiaffect_io::formats::brainvision;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let head = brainvision::decode_text(parts.next().unwrap_or(&[]));
    let marks = brainvision::decode_text(parts.next().unwrap_or(&[]));
    let bytes = parts.next().unwrap_or(&[]);
    let _ = brainvision::parse_markers(&marks);
    if let Ok(h) = brainvision::parse_header(&head) {
        let all: Vec<usize> = (0..h.channels.len().min(8)).collect();
        let cur = std::io::Cursor::new(bytes);
        if let Ok(ch) = brainvision::decode_channels(cur, bytes.len() as u64, &h, &all) {
            let n = h.samples_in(bytes.len() as u64).unwrap();
            assert!(ch.iter().all(|c| c.len() == n));
        }
    }
});
