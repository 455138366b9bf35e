//! What a fine-tuning run tells its caller as it goes: its own module, so that the parts that
//! report (folds, the trainer, the final model) need nothing of the entry point.

use cardiaffect_eval::report::FoldResult;
use cardiaffect_eval::{Labels, Method};

/// What the caller hears.
pub enum FinetuneEvent<'a> {
    Start {
        folds: usize,
        methods: &'a [Method],
        labels: &'a Labels,
        warning: Option<&'static str>,
    },
    FoldStart {
        fold: usize,
        method: Method,
        steps: usize,
        reused: bool,
    },
    Step {
        step: usize,
        loss: f64,
    },
    Eval {
        step: usize,
        val_macro_f1: f64,
    },
    FoldDone {
        result: &'a FoldResult,
    },
    Warning(String),
}
