//! In-tree kernels for the flex backend, through Burn's backend extension
//! (`#[backend_extension]`): where profiles showed a hot spot that Burn's own ops leave
//! (BENCHMARKS.md), not a rewrite of what Burn has.
//!
//! - [`self_attention`]: scaled dot-product attention of all heads straight from the packed
//!   QKV projection (one matrix product, `[B, T, 3d]`) into a packed `[B, T, d]` output. burn-flex's attention needs
//!   `[B, H, T, dk]` inputs (three strided copies before it, one after it) and runs its
//!   softmax through scalar `expf` with per-element branches; here the two matrix products per
//!   head read and write the packed layouts through gemm's strides and the softmax is
//!   vectorised ([`crate::fastmath`]).
//! - [`gelu`]: exact-erf GELU with a vectorised erf (burn-flex calls a scalar erf per element),
//!   forward and derivative; on the autodiff backend a recorded op whose backward runs the
//!   in-tree derivative, so training takes it too.
//!
//! Attention takes the in-tree path on plain (non-autodiff) flex f32 tensors only: training
//! keeps Burn's attention and its gradients. Other backends (`cuda`) use Burn's ops throughout.
//! Setting `CARDIAFFECT_KERNELS=burn` sends everything through Burn's ops (to compare the two).

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, DispatchDevice, Flex};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::DType;
use burn_autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

use crate::fastmath;

/// Operations with an in-tree flex implementation.
#[backend_extension(Flex)]
pub trait CardiaffectOps: Backend {
    /// Self-attention core: `qkv` `[B, T, 3d]` (the query, key and value projections side by
    /// side, heads packed along each `d`) -> `softmax(q_h k_h^T / sqrt(d / n_heads)) v_h` for
    /// each head, packed `[B, T, d]`.
    fn packed_attention(qkv: FloatTensor<Self>, n_heads: usize) -> FloatTensor<Self>;

    /// `x w + b` (`x` `[.., in]`, `w` `[in, out]`, `b` `[out]`), then GELU when `gelu`.
    fn linear_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gelu: bool,
    ) -> FloatTensor<Self>;

    /// `r + x w + b`: a linear layer added to the residual stream `r` in one product.
    fn linear_bias_residual(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        r: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// GELU with an in-tree flex implementation, differentiable: the autodiff backend records a
/// backward pass that runs the in-tree derivative on the inner backend.
#[backend_extension(Flex, Autodiff)]
pub trait GeluOps: Backend {
    /// `0.5 x (1 + erf(x / sqrt 2))`.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `grad * gelu'(x)`.
    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as burn::backend::ops::ActivationOps<Self>>::gelu_backward(x, grad)
    }
}

/// Whether a tensor on `device` can take the in-tree path.
fn fast_path(device: &Device, dtype: DType) -> bool {
    in_tree_enabled()
        && matches!(device.as_dispatch(), DispatchDevice::Flex(_))
        && dtype == DType::F32
}

/// False when `CARDIAFFECT_KERNELS=burn` (read once).
pub fn in_tree_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CARDIAFFECT_KERNELS").map_or(true, |v| v != "burn"))
}

/// Multi-head self-attention core (no output projection) of `x` `[B, T, d]` through the
/// `query`, `key` and `value` projections (see the module doc).
pub fn self_attention(
    x: Tensor<3>,
    query: &Linear,
    key: &Linear,
    value: &Linear,
    n_heads: usize,
) -> Tensor<3> {
    if fast_path(&x.device(), x.dtype()) {
        // One matrix product for the three projections (weights side by side, [d, 3d]).
        let w = Tensor::cat(
            vec![query.weight.val(), key.weight.val(), value.weight.val()],
            1,
        );
        let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val());
        let qkv = match (bias(query), bias(key), bias(value)) {
            (Some(bq), Some(bk), Some(bv)) => {
                Tensor::from_dispatch(<burn::backend::Dispatch as CardiaffectOps>::linear_bias(
                    x.into_dispatch(),
                    w.into_dispatch(),
                    Tensor::cat(vec![bq, bk, bv], 0).into_dispatch(),
                    false,
                ))
            }
            _ => Tensor::cat(
                vec![
                    query.forward(x.clone()),
                    key.forward(x.clone()),
                    value.forward(x),
                ],
                2,
            ),
        };
        return Tensor::from_dispatch(
            <burn::backend::Dispatch as CardiaffectOps>::packed_attention(
                qkv.into_dispatch(),
                n_heads,
            ),
        );
    }
    let (q, k, v) = (
        query.forward(x.clone()),
        key.forward(x.clone()),
        value.forward(x),
    );
    let [b, t, d] = q.dims();
    let dk = d / n_heads;
    let split = |y: Tensor<3>| y.reshape([b, t, n_heads, dk]).swap_dims(1, 2);
    attention(split(q), split(k), split(v), None, None, Default::default())
        .swap_dims(1, 2)
        .reshape([b, t, d])
}

/// `l(x)`, then GELU when `gelu`, then `+ residual` when given: one matrix product whose
/// output starts from the bias (and residual) rows, instead of three or four Burn ops.
pub fn linear(
    x: Tensor<3>,
    l: &Linear,
    gelu_after: bool,
    residual: Option<Tensor<3>>,
) -> Tensor<3> {
    if let (true, Some(b)) = (fast_path(&x.device(), x.dtype()), &l.bias) {
        let (xd, w, b) = (
            x.into_dispatch(),
            l.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        );
        type D = burn::backend::Dispatch;
        return Tensor::from_dispatch(match residual {
            Some(r) if !gelu_after => {
                <D as CardiaffectOps>::linear_bias_residual(xd, w, b, r.into_dispatch())
            }
            Some(r) => {
                let y =
                    Tensor::<3>::from_dispatch(<D as CardiaffectOps>::linear_bias(xd, w, b, true));
                (y + r).into_dispatch()
            }
            None => <D as CardiaffectOps>::linear_bias(xd, w, b, gelu_after),
        });
    }
    let y = l.forward(x);
    let y = if gelu_after { gelu(y) } else { y };
    match residual {
        Some(r) => r + y,
        None => y,
    }
}

/// GELU (exact erf form); on flex, with or without autodiff, the in-tree kernel.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let flex = matches!(
        x.device().as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    );
    if in_tree_enabled() && flex && x.dtype() == DType::F32 {
        return Tensor::from_dispatch(<burn::backend::Dispatch as GeluOps>::gelu_erf(
            x.into_dispatch(),
        ));
    }
    activation::gelu(x)
}

/// The contiguous f32 elements of a flex tensor.
fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("kernels: a contiguous f32 tensor (checked by the caller)")
}

/// A pointer that may cross into rayon's workers: each task writes a disjoint set of elements.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint elements (one head's columns of one batch item each).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

thread_local! {
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows of `m` that one parallel task fills (bias/residual copy and GELU).
const ROWS_PER_TASK: usize = 64;
/// Outputs up to this many elements get their bias rows on the calling thread.
const SERIAL_FILL: usize = 1 << 18;
/// Below this many multiply-adds one thread does the product (as burn-flex's matmul decides).
const GEMM_PARALLEL_MACS: usize = 192 * 192 * 192;

fn linear_flex(
    x: FlexTensor,
    w: FlexTensor,
    b: FlexTensor,
    r: Option<FlexTensor>,
    gelu: bool,
) -> FlexTensor {
    let (x, w, b) = (x.to_contiguous(), w.to_contiguous(), b.to_contiguous());
    let xshape = x.layout().shape().clone();
    let (wshape, rank) = (w.layout().shape().clone(), xshape.num_dims());
    let k = xshape[rank - 1];
    let n = wshape[1];
    assert!(
        wshape[0] == k && b.layout().num_elements() == n,
        "linear: input width {k}, weight {wshape:?}, bias {} elements",
        b.layout().num_elements()
    );
    let m = xshape.num_elements() / k.max(1);
    let mut oshape = xshape.clone();
    oshape[rank - 1] = n;
    let r = r.map(|r| r.to_contiguous());
    if let Some(r) = &r {
        assert_eq!(r.layout().shape(), &oshape, "linear: residual shape");
    }
    let (xs, ws, bs) = (f32_slice(&x), f32_slice(&w), f32_slice(&b));
    let rs = r.as_ref().map(f32_slice);
    let mut out = vec![0.0f32; m * n];
    // The product accumulates onto rows that already hold the bias (and residual). Small
    // outputs are filled on this thread: waking a worker costs more than the copy.
    let fill = |(c, rows): (usize, &mut [f32])| {
        for (i, row) in rows.chunks_exact_mut(n).enumerate() {
            match rs {
                Some(rs) => {
                    let rr = &rs[(c * ROWS_PER_TASK + i) * n..][..n];
                    for ((o, &bv), &rv) in row.iter_mut().zip(bs).zip(rr) {
                        *o = bv + rv;
                    }
                }
                None => row.copy_from_slice(bs),
            }
        }
    };
    if m * n <= SERIAL_FILL {
        out.chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(fill);
    } else {
        out.par_chunks_mut(ROWS_PER_TASK * n)
            .enumerate()
            .for_each(fill);
    }
    let par = if m.saturating_mul(n).saturating_mul(k) >= GEMM_PARALLEL_MACS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `out` is [m, n], `xs` [m, k], `ws` [k, n], all contiguous row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            xs.as_ptr(),
            1,
            k as isize,
            ws.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    if gelu {
        out.par_chunks_mut(ROWS_PER_TASK * n)
            .for_each(fastmath::gelu_inplace);
    }
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(out),
        Layout::contiguous(oshape),
        DType::F32,
    )
}

impl CardiaffectOps for Flex {
    fn packed_attention(qkv: FlexTensor, n_heads: usize) -> FlexTensor {
        let qkv = qkv.to_contiguous();
        let shape = qkv.layout().shape().clone();
        let (b, t, d3) = (shape[0], shape[1], shape[2]);
        let d = d3 / 3;
        assert!(
            d3 % 3 == 0 && n_heads > 0 && d % n_heads == 0,
            "packed_attention: width {d3} is not 3 x a multiple of {n_heads} heads"
        );
        let dk = d / n_heads;
        let src = f32_slice(&qkv);
        let mut out = vec![0.0f32; b * t * d];
        let scale = 1.0 / (dk as f32).sqrt();
        let dst = SendPtr(out.as_mut_ptr());
        let run = |scores: &mut [f32], task: usize| {
            let (bi, h) = (task / n_heads, task % n_heads);
            // Row r of batch item bi: q at r * 3d, k at r * 3d + d, v at r * 3d + 2d.
            let q = bi * t * d3 + h * dk;
            let (k, v) = (q + d, q + 2 * d);
            let o = bi * t * d + h * dk;
            // SAFETY: for the given sizes and strides every pointer below stays inside `src`
            // ([B, T, 3d]), `scores` ([T, T]) and `out` ([B, T, d]); the output columns of
            // (bi, h) belong to this task alone.
            unsafe {
                // scores[T, T] = scale * q_h k_h^T
                gemm::gemm(
                    t,
                    t,
                    dk,
                    scores.as_mut_ptr(),
                    1,
                    t as isize,
                    false,
                    src.as_ptr().add(q),
                    1,
                    d3 as isize,
                    src.as_ptr().add(k),
                    d3 as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
                for row in scores.chunks_exact_mut(t) {
                    fastmath::softmax_row(row);
                }
                // out_h[T, dk] = scores v_h
                let out_ptr = dst;
                gemm::gemm(
                    t,
                    dk,
                    t,
                    out_ptr.0.add(o),
                    1,
                    d as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    t as isize,
                    src.as_ptr().add(v),
                    1,
                    d3 as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        // Score matrices live in a per-thread scratch buffer that outlives the call: a fresh
        // T x T buffer per call (412 kB at T = 321) cost page faults and a memset each time.
        let with_scores = |task: usize| {
            SCORES.with(|cell| {
                let mut scores = cell.borrow_mut();
                if scores.len() < t * t {
                    scores.resize(t * t, 0.0);
                }
                run(&mut scores[..t * t], task)
            })
        };
        let tasks = b * n_heads;
        if tasks > 1 && rayon::current_num_threads() > 1 {
            (0..tasks).into_par_iter().for_each(with_scores);
        } else {
            (0..tasks).for_each(with_scores);
        }
        FlexTensor::new(
            burn::tensor::Bytes::from_elems(out),
            Layout::contiguous(burn::tensor::Shape::new([b, t, d])),
            DType::F32,
        )
    }

    fn linear_bias(x: FlexTensor, w: FlexTensor, b: FlexTensor, gelu: bool) -> FlexTensor {
        linear_flex(x, w, b, None, gelu)
    }

    fn linear_bias_residual(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        r: FlexTensor,
    ) -> FlexTensor {
        linear_flex(x, w, b, Some(r), false)
    }
}

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
        FlexTensor::new(
            burn::tensor::Bytes::from_elems(out),
            Layout::contiguous(shape),
            DType::F32,
        )
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
        FlexTensor::new(
            burn::tensor::Bytes::from_elems(out),
            Layout::contiguous(shape),
            DType::F32,
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// Seeded normal values (the tests give the same numbers every run).
    fn normal<const D: usize>(shape: [usize; D], sd: f64, dev: &Device) -> Tensor<D> {
        let mut rng = cardiaffect_signal::Rng::new(shape.iter().product::<usize>() as u64);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * sd) as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), dev)
    }

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Burn's path: three projections, split heads, Burn's attention, merge heads.
    fn burns_attention(x: Tensor<3>, l: &[Linear; 3], h: usize) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (q, k, v) = (
            l[0].forward(x.clone()),
            l[1].forward(x.clone()),
            l[2].forward(x),
        );
        let d = q.dims()[2];
        let split = |y: Tensor<3>| y.reshape([b, t, h, d / h]).swap_dims(1, 2);
        attention(split(q), split(k), split(v), None, None, Default::default())
            .swap_dims(1, 2)
            .reshape([b, t, d])
    }

    #[test]
    fn packed_attention_equals_burns_attention() {
        let dev = Device::flex();
        for (b, t, d, h) in [(1, 321, 128, 4), (3, 17, 24, 3), (2, 5, 8, 1)] {
            let l = [0, 1, 2].map(|_| burn::nn::LinearConfig::new(d, d).init(&dev));
            let x = normal::<3>([b, t, d], 2.0, &dev);
            let ours = self_attention(x.clone(), &l[0], &l[1], &l[2], h);
            let e = max_diff(ours, burns_attention(x, &l, h));
            assert!(e < 2e-5, "({b},{t},{d},{h}): {e}");
        }
    }

    #[test]
    fn packed_attention_reads_strided_inputs() {
        // A transposed (non-contiguous) input gives what its contiguous copy gives.
        let dev = Device::flex();
        let l = [0, 1, 2].map(|_| burn::nn::LinearConfig::new(16, 16).init(&dev));
        let x = normal::<3>([2, 16, 9], 1.0, &dev);
        let xt = x.swap_dims(1, 2); // [2, 9, 16]
        let a = self_attention(xt.clone(), &l[0], &l[1], &l[2], 4);
        let c = Tensor::<3>::from_data(xt.into_data(), &dev);
        let e = max_diff(a, self_attention(c, &l[0], &l[1], &l[2], 4));
        assert!(e < 1e-6, "{e}");
    }

    #[test]
    fn fused_linear_equals_burns_linear_gelu_and_residual() {
        let dev = Device::flex();
        for (b, t, i, o) in [(1, 321, 128, 512), (3, 7, 5, 9), (40, 321, 128, 128)] {
            let l = burn::nn::LinearConfig::new(i, o).init(&dev);
            let x = normal::<3>([b, t, i], 1.0, &dev);
            let r = normal::<3>([b, t, o], 1.0, &dev);
            let plain = l.forward(x.clone());
            let e = max_rel_diff(linear(x.clone(), &l, false, None), plain.clone());
            assert!(e < 1e-5, "linear ({b},{t},{i},{o}): {e}");
            let e = max_rel_diff(
                linear(x.clone(), &l, true, None),
                activation::gelu(plain.clone()),
            );
            assert!(e < 1e-5, "linear + gelu: {e}");
            let e = max_rel_diff(
                linear(x.clone(), &l, false, Some(r.clone())),
                r.clone() + plain.clone(),
            );
            assert!(e < 1e-5, "linear + residual: {e}");
            let e = max_rel_diff(
                linear(x, &l, true, Some(r.clone())),
                r + activation::gelu(plain),
            );
            assert!(e < 1e-5, "linear + gelu + residual: {e}");
        }
    }

    #[test]
    fn gelu_equals_burns_gelu_in_place_and_shared() {
        let dev = Device::flex();
        let x = normal::<2>([300, 517], 3.0, &dev);
        // `x` is still held here, so the kernel may not write in place.
        let ours = gelu(x.clone());
        let e = max_diff(ours, activation::gelu(x.clone()));
        assert!(e < 2e-6, "{e}");
        // A view with an offset.
        let s = x.clone().slice([10..20, 5..400]);
        let e = max_diff(gelu(s.clone()), activation::gelu(s));
        assert!(e < 2e-6, "{e}");
        // Uniquely owned: written in place.
        let y = Tensor::<1>::from_data(TensorData::from([-1.0f32, 0.0, 2.0]), &dev);
        let g: Vec<f32> = gelu(y).into_data().try_to_vec().unwrap();
        assert!((g[0] + 0.158_655_26).abs() < 1e-6 && g[1] == 0.0, "{g:?}");
        assert!((g[2] - 1.954_499_7).abs() < 1e-6, "{g:?}");
    }

    /// max |a - b| / (1 + |b|): values here reach tens, where f32 rounding alone is ~4e-6.
    fn max_rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0, f32::max)
    }

    #[test]
    fn autodiff_gelu_gradient_equals_burns() {
        let dev = Device::flex().autodiff();
        let x = normal::<2>([64, 300], 3.0, &dev).require_grad();
        let w = normal::<2>([64, 300], 1.0, &dev);
        // A weighted sum so the incoming gradient is not all ones.
        let ours = gelu(x.clone()) * w.clone();
        let burns = activation::gelu(x.clone()) * w;
        let e = max_rel_diff(ours.clone().inner(), burns.clone().inner());
        // Burn's scalar erf is an approximation too: agreement within both errors.
        assert!(e < 5e-6, "forward {e}");
        let g1 = x.grad(&ours.sum().backward()).unwrap();
        let g2 = x.grad(&burns.sum().backward()).unwrap();
        let e = max_rel_diff(g1, g2);
        assert!(e < 1e-5, "gradient {e}");
    }
}
