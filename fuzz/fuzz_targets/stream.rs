#![no_main]
//! The stream's input: the first byte picks text or raw float32 input and the input rate; the
//! rest is fed in chunks to the decoder and the causal filter, quality checks and windowing.
use cardiaffect_infer::{text_sample, F32Decoder, Preprocess, StreamState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let pre = Preprocess {
        fs: 128.0,
        window_s: 2.0,
        window_len: 256,
        band_hz: [0.5, 40.0],
        filter_order: 4,
        notch_hz: (mode & 4 != 0).then_some(50.0),
        normalisation: "z-score per window".into(),
    };
    let fs_in = [128.0, 250.0, 100.0, 512.0][(mode >> 3) as usize % 4];
    let Ok(mut st) = StreamState::new(&pre, fs_in, 0.5) else {
        return;
    };
    if mode & 1 == 0 {
        let mut dec = F32Decoder::default();
        for chunk in rest.chunks(1 + (mode as usize >> 5)) {
            for h in st.push(&dec.push(chunk)) {
                assert!(h.window.is_empty() || h.window.len() == pre.window_len);
            }
        }
    } else {
        for line in String::from_utf8_lossy(rest).lines() {
            let v = match text_sample(line) {
                None => continue,
                Some(Ok(v)) => v,
                Some(Err(_)) => f32::NAN,
            };
            for h in st.push(&[v]) {
                assert!(h.window.is_empty() || h.window.len() == pre.window_len);
                assert!(h.window.iter().all(|x| x.is_finite()), "a classified window is finite");
            }
        }
    }
});
