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

use super::gemm::{contiguous, f32_slice};
use super::GeluOps;
use crate::fastmath;

impl GeluOps for Flex {
    fn gelu_erf(x: FlexTensor) -> FlexTensor {
        // Large tensors (training-size batches) are split over the threads.
        const CHUNK: usize = 1 << 14;
        // `to_contiguous` clones the handle (so the buffer looks shared): only call it when a
        // copy is needed, so that a tensor nobody else holds is written in place.
        let mut x = if x.is_contiguous() {
            x
        } else {
            x.to_contiguous()
        };
        let shape = x.layout().shape().clone();
        if x.layout().start_offset() == 0 {
            if let Some(s) = x.try_storage_mut::<f32>() {
                let n = shape.num_elements();
                s[..n]
                    .par_chunks_mut(CHUNK)
                    .for_each(fastmath::gelu_inplace);
                return x;
            }
        }
        let src = f32_slice(&x);
        let mut out = vec![0.0f32; src.len()];
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| fastmath::gelu_into(s, o));
        contiguous(out, shape)
    }

    fn gelu_erf_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        const CHUNK: usize = 1 << 14;
        let x = x.to_contiguous();
        let xs = f32_slice(&x);
        let mut grad = if grad.is_contiguous() {
            grad
        } else {
            grad.to_contiguous()
        };
        let shape = grad.layout().shape().clone();
        if grad.layout().start_offset() == 0 {
            if let Some(g) = grad.try_storage_mut::<f32>() {
                let n = shape.num_elements();
                g[..n]
                    .par_chunks_mut(CHUNK)
                    .zip(xs.par_chunks(CHUNK))
                    .for_each(|(g, x)| fastmath::gelu_backward_inplace(x, g));
                return grad;
            }
        }
        let gs = f32_slice(&grad);
        let mut out = vec![0.0f32; gs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(gs.par_chunks(CHUNK).zip(xs.par_chunks(CHUNK)))
            .for_each(|(o, (g, x))| fastmath::gelu_backward_into(x, g, o));
        contiguous(out, shape)
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
