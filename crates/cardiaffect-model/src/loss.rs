//! Losses shared by pre-training, fine-tuning, the benchmark and the parity tests.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Int};

/// Mean squared error over the samples of masked tokens only (`mask`: `[B, T]`, true =
/// masked; each token stands for `samples_per_token` samples of `x`: `[B, T * s]`).
pub fn masked_mse(
    recon: Tensor<2>,
    x: Tensor<2>,
    mask: Tensor<2, Bool>,
    samples_per_token: usize,
) -> Tensor<1> {
    let w = sample_weights(mask, samples_per_token);
    // Clamped so that a batch without a masked token gives 0, not NaN.
    let n = w.clone().sum().clamp_min(1.0);
    weighted_sse(recon, x, w).div(n)
}

/// Sum of squared errors over the samples of masked tokens (shapes as [`masked_mse`]): a
/// process's share of a batch in data-parallel training, divided by the whole batch's count
/// of hidden samples, so that the ranks' terms add up to the batch's [`masked_mse`].
pub fn masked_sse(
    recon: Tensor<2>,
    x: Tensor<2>,
    mask: Tensor<2, Bool>,
    samples_per_token: usize,
) -> Tensor<1> {
    weighted_sse(recon, x, sample_weights(mask, samples_per_token))
}

/// The token mask `[B, T]` as one weight per sample `[B, T * s]`: 1 where masked, else 0.
fn sample_weights(mask: Tensor<2, Bool>, samples_per_token: usize) -> Tensor<2> {
    let [b, t] = mask.dims();
    mask.float()
        .unsqueeze_dim::<3>(2)
        .expand([b, t, samples_per_token])
        .reshape([b, t * samples_per_token])
}

/// `sum(w (recon - x)^2)`.
fn weighted_sse(recon: Tensor<2>, x: Tensor<2>, w: Tensor<2>) -> Tensor<1> {
    (recon - x).powi_scalar(2).mul(w).sum()
}

/// Mean cross-entropy of `logits` `[B, C]` against class indices `[B]`, with optional
/// per-class weights (class-imbalance handling): sum(w_y * nll) / sum(w_y), as PyTorch.
pub fn cross_entropy(
    logits: Tensor<2>,
    labels: Tensor<1, Int>,
    class_weights: Option<Tensor<1>>,
) -> Tensor<1> {
    let nll = log_softmax(logits, 1)
        .gather(1, labels.clone().unsqueeze_dim(1))
        .reshape([-1])
        .neg();
    match class_weights {
        None => nll.mean(),
        Some(w) => {
            let wy = w.select(0, labels);
            (nll * wy.clone()).sum().div(wy.sum())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn weighted_cross_entropy_by_hand() {
        let d = Device::flex();
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0, 0.0, 1.0], [2, 2]), &d);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &d);
        let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 3.0], [2]), &d);
        let (n0, n1) = (
            (1.0f64 + (-2.0f64).exp()).ln(),
            (1.0f64 + (-1.0f64).exp()).ln(),
        );
        let plain: f32 = cross_entropy(logits.clone(), labels.clone(), None).into_scalar();
        let weighted: f32 = cross_entropy(logits, labels, Some(w)).into_scalar();
        assert!((plain as f64 - (n0 + n1) / 2.0).abs() < 1e-6);
        assert!((weighted as f64 - (n0 + 3.0 * n1) / 4.0).abs() < 1e-6);
    }

    #[test]
    fn masked_mse_counts_masked_samples_only() {
        let d = Device::flex();
        let x = Tensor::<2>::zeros([1, 4], &d);
        let recon =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 1.0, 3.0, 3.0], [1, 4]), &d);
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![false, true], [1, 2]), &d);
        let v: f32 = masked_mse(recon.clone(), x.clone(), mask, 2).into_scalar();
        assert_eq!(v, 9.0);
        let none = Tensor::<2, Bool>::from_data(TensorData::new(vec![false, false], [1, 2]), &d);
        assert_eq!(masked_mse(recon, x, none, 2).into_scalar::<f32>(), 0.0);
    }
}
