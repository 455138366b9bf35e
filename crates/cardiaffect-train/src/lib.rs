//! Training for cardiaffect: self-supervised pre-training by masked-signal reconstruction
//! and fine-tuning with honest evaluation (protocols, baselines, results files).
#![forbid(unsafe_code)]

pub mod curve;
pub mod decision;
pub mod distributed;
mod error;
pub mod finetune;
pub mod masking;
pub mod preprocess;
pub mod pretrain;
pub mod report;
pub mod schedule;
pub mod step;

pub use curve::{curve, Curve};
pub use distributed::{local_group, Alone, GradientReducer, Group, ReduceError};
pub use error::TrainError;
pub use finetune::{finetune, FinetuneConfig, FinetuneEvent, Fusion, OPERATING_POINT_FILE};
pub use masking::Masking;
pub use pretrain::{
    count_train_windows, pretrain, pretrain_group, CorpusSpec, Event, PretrainConfig, Summary,
    Trained,
};
