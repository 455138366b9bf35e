//! Windows to model inputs, for training and inference alike: each window z-scored on its own
//! (the `z-score per window` of `preprocess.json`), rows stacked into one `[n, L]` batch.

use burn::prelude::*;
use burn::tensor::TensorData;
use cardiaffect_signal::zscore;

/// The windows (each `l` samples) z-scored and concatenated row after row.
pub fn zscored(windows: impl IntoIterator<Item = Vec<f32>>, l: usize) -> Vec<f32> {
    let windows = windows.into_iter();
    let mut x = Vec::with_capacity(windows.size_hint().0 * l);
    for mut w in windows {
        zscore(&mut w);
        x.extend(w);
    }
    x
}

/// Z-score every `l`-sample row of `x` in place.
pub fn zscore_rows(x: &mut [f32], l: usize) {
    for w in x.chunks_mut(l) {
        zscore(w);
    }
}

/// `x` (rows of `l` samples) as a `[rows, l]` tensor.
pub fn tensor(x: Vec<f32>, l: usize, device: &Device) -> Tensor<2> {
    let n = x.len() / l.max(1);
    Tensor::from_data(TensorData::new(x, [n, l]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_zscored_one_by_one() {
        let x = zscored([vec![1.0, 2.0, 3.0], vec![10.0, 10.0, 40.0]], 3);
        let mut y = vec![1.0, 2.0, 3.0, 10.0, 10.0, 40.0];
        zscore_rows(&mut y, 3);
        assert_eq!(x, y);
        for row in x.chunks(3) {
            assert!(row.iter().sum::<f32>().abs() < 1e-5);
        }
        let t = tensor(x, 3, &Device::flex());
        assert_eq!(t.dims(), [2, 3]);
    }
}
