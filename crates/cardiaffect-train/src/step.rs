//! One optimizer step, shared by pre-training and fine-tuning: the loss is read first, and a
//! loss that is not finite stops training before it can poison the weights.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use cardiaffect_model::Model;

/// The loss of a step that was not taken (NaN or infinite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFiniteLoss(pub f32);

/// Back-propagate `loss` and update `model` at rate `lr`; returns the updated model and the
/// loss value, or the loss when it is not finite (training stops there).
pub fn step(
    optim: &mut ModuleOptimizer,
    lr: f64,
    model: Model,
    loss: Tensor<1>,
) -> Result<(Model, f32), NonFiniteLoss> {
    let lv: f32 = loss.clone().into_scalar();
    if !lv.is_finite() {
        return Err(NonFiniteLoss(lv));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    Ok((optim.step(lr, model, grads), lv))
}
