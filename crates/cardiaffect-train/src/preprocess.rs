//! The preprocessing record (`preprocess.json`) of weights trained on a corpus: written by
//! pre-training and by fine-tuning alike, so it lives beside both rather than in either.

use cardiaffect_corpus::Corpus;

/// The preprocessing a model's inputs went through (read by `predict` and `stream`).
pub fn preprocess(corpus: &Corpus) -> cardiaffect_bundle::Preprocess {
    let c = &corpus.manifest.config;
    cardiaffect_bundle::Preprocess {
        fs: c.fs,
        window_s: c.window_s,
        band_hz: [c.clean.low_hz, c.clean.high_hz],
        filter_order: c.clean.order,
        notch_hz: c.clean.notch_hz,
        normalisation: cardiaffect_bundle::NORMALISATION.into(),
    }
}
