//! Inference for cardiaffect: a fine-tuned model folder (`config.json`, `model.safetensors`,
//! `preprocess.json`, `labels.json`) is loaded with the preprocessing its training data had, and
//! applied to new recordings window by window ([`predict`]).
#![forbid(unsafe_code)]

pub mod predict;
pub mod stream;

pub use predict::{
    calibrate_per_person, predict_recording, predict_recording_calibrated, predict_source,
    Predictor, Preprocess, Timeline, TimelineRow, WindowAttention,
};
pub use stream::{text_sample, F32Decoder, Hop, StreamState};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Model(#[from] cardiaffect_model::ModelError),
    #[error(transparent)]
    Corpus(#[from] cardiaffect_corpus::CorpusError),
    #[error("{0}")]
    Mismatch(String),
    #[error("‹calibrate_from› {value}: {message}")]
    Calibration { value: String, message: String },
}
