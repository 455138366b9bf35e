//! GELU (exact erf form) on flex, forward and derivative, and as a recorded op on the
//! autodiff backend whose backward runs the in-tree derivative.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex};
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::Autodiff;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::fastmath;
use super::gemm::{f32_slice, update};
use super::train_ops::record;
use super::GeluOps;

/// Elements per parallel task: large tensors (training-size batches) are split over the
/// threads.
const CHUNK: usize = 1 << 14;

impl GeluOps for Flex {
    fn gelu_erf(x: FlexTensor) -> FlexTensor {
        update(x, |v, src| match src {
            None => v.par_chunks_mut(CHUNK).for_each(fastmath::gelu_inplace),
            Some(src) => v
                .par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(o, s)| fastmath::gelu_into(s, o)),
        })
        .0
    }

    fn gelu_erf_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
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
}

impl<B: Backend + GeluOps, C: CheckpointStrategy> GeluOps for Autodiff<B, C> {
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C, _, _, 1>(
            [x],
            (),
            |(), x, grad, _| [B::gelu_erf_backward(x, grad)],
            |[x]| (B::gelu_erf(x.clone()), x),
            |[x]| B::gelu_erf(x),
        )
    }
}
