//! GELU (exact erf form) on flex, forward and derivative (burn-flex calls a scalar erf per
//! element).

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::fastmath;
use super::gemm::{f32_slice, update};

/// Elements per parallel task: large tensors (training-size batches) are split over the
/// threads.
const CHUNK: usize = 1 << 14;

/// `0.5 x (1 + erf(x / sqrt 2))`, in place when `x` is not shared.
pub(super) fn forward(x: FlexTensor) -> FlexTensor {
    update(x, |v, src| match src {
        None => v.par_chunks_mut(CHUNK).for_each(fastmath::gelu_inplace),
        Some(src) => v
            .par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| fastmath::gelu_into(s, o)),
    })
    .0
}

/// `grad * gelu'(x)`.
pub(super) fn backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
    let x = x.to_contiguous();
    let xs = f32_slice(&x);
    update(grad, |g, src| match src {
        None => g
            .par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(g, x)| fastmath::gelu_backward_inplace(x, g)),
        Some(src) => g
            .par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK).zip(xs.par_chunks(CHUNK)))
            .for_each(|(o, (g, x))| fastmath::gelu_backward_into(x, g, o)),
    })
    .0
}
