#![no_main]
//! Events tables (BIDS TSV or a user's CSV) cut into trials: the input's first byte sets the
//! recording's length and the baseline, the rest is the table's text.
use std::path::Path;

use libfuzzer_sys::fuzz_target;

use cardiaffect_io::events::{cut_trials, label_scales, Declared, Events, TrialOptions};
use cardiaffect_io::formats::tsv;
use cardiaffect_io::{ReadOutput, Recording};

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let delim = if k & 1 == 0 { '\t' } else { ',' };
    let Ok(t) = tsv::parse(&text, Some(delim)) else { return };
    let Ok(ev) = Events::from_table(Path::new("ev.tsv"), &t, None) else { return };
    let declared: Declared = if k & 2 == 0 {
        Declared::new()
    } else {
        ev.columns.iter().map(|c| (c.clone(), (0.0, 9.0))).collect()
    };
    let Ok(scales) = label_scales(&ev, &declared) else { return };
    let mut rec = Recording::new("fuzz", "f.edf", 10.0, vec![0.0; (k as usize) * 7]);
    rec.subject = "s".into();
    let opts = TrialOptions {
        baseline_s: (k & 4 != 0).then_some(1.5),
        start_s: if k & 8 != 0 { -1.0 } else { 0.0 },
        prefix: "t-".into(),
    };
    let rows: Vec<usize> = (0..ev.events.len()).collect();
    let mut out = ReadOutput::default();
    cut_trials(&rec, &ev, &rows, &scales, &opts, &mut out);
    assert_eq!(
        out.recordings.iter().filter(|r| r.segment.is_none()).count() + out.skipped.len(),
        ev.events.len()
    );
    for r in &out.recordings {
        assert!(r.samples.len() <= rec.samples.len());
    }
});
