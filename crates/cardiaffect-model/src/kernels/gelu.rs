//! GELU (exact erf form) on flex, forward and derivative, and as a recorded op on the
//! autodiff backend whose backward runs the in-tree derivative.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex};
use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::gemm::{f32_slice, update};
use super::GeluOps;
use crate::fastmath;

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
        #[derive(Debug)]
        struct Gelu;

        impl<B: Backend + GeluOps> Backward<B, 1> for Gelu {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::gelu_erf_backward(x, grad)
                });
            }
        }

        let guard = x.node();
        let input = x.into_primitive();
        match Gelu.prepare::<C>([guard]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::gelu_erf(input.clone());
                prep.finish(input, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_erf(input)),
        }
    }
}
