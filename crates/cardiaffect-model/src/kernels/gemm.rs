//! Matrix-product helpers on raw f32 rows (gemm with strides, per-thread scratch) and the
//! fused linear layer (`x W + b`, GELU and residual in one pass).

use burn::tensor::{DType, Shape};
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

use super::fastmath;

/// The contiguous f32 elements of a flex tensor.
pub(super) fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("kernels: a contiguous f32 tensor (checked by the caller)")
}

/// A contiguous f32 flex tensor of `values` (the inverse of [`f32_slice`]).
pub(super) fn contiguous(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(values),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// `f` over the elements of a float tensor, its result written over `x`'s buffer when nobody
/// else holds it, else into a new buffer (`f` then gets `x`'s elements as its source, to read
/// and write in one pass). Returns the tensor and what `f` returned.
pub(super) fn update<R>(
    x: FlexTensor,
    f: impl FnOnce(&mut [f32], Option<&[f32]>) -> R,
) -> (FlexTensor, R) {
    // `to_contiguous` clones the handle (so the buffer looks shared): only called when a copy
    // is needed, so that a tensor nobody else holds is written in place.
    let mut x = if x.is_contiguous() {
        x
    } else {
        x.to_contiguous()
    };
    let shape = x.layout().shape().clone();
    let n = shape.num_elements();
    if x.layout().start_offset() == 0 {
        if let Some(v) = x.try_storage_mut::<f32>() {
            let r = f(&mut v[..n], None);
            return (x, r);
        }
    }
    let mut out = vec![0.0f32; n];
    let r = f(&mut out, Some(f32_slice(&x)));
    (contiguous(out, shape), r)
}

/// The element-wise sum of `parts` (each at least `n` long, their first `n` summed), added in
/// their order: parallel partial sums whose total does not depend on which thread computed
/// which part.
pub(super) fn sum_in_order(parts: &[Vec<f32>], n: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; n];
    for p in parts {
        for (s, v) in sums.iter_mut().zip(p) {
            *s += v;
        }
    }
    sums
}

/// A pointer that may cross into rayon's workers: each task writes a disjoint set of elements.
///
/// Sending and sharing the address is sound by itself, as for any raw pointer: what needs care
/// is reading or writing through it, which takes an `unsafe` block at each use. Whoever does
/// must make sure that the elements a task writes are that task's alone (no other task reads
/// or writes them meanwhile) and that the buffer outlives the parallel loop (its owner, a
/// `Vec`, is neither used nor moved until the loop returns).
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: moving the address to another thread dereferences nothing; every write through it
// is an `unsafe` block of a task that owns the elements it writes (one head's columns of one
// batch item in the attention kernels, a block's rows of the panels in `layer`), as above.
unsafe impl Send for SendPtr {}
// SAFETY: a `&SendPtr` gives only a copy of the address (`ptr`); as for `Send`, the uses are
// the `unsafe` blocks that write disjoint elements per task.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer, through a method: a closure that named the field would capture the bare
    /// (not Sync) pointer instead of the wrapper.
    pub(super) fn ptr(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// Per-thread scratch of the in-tree kernels (attention scores, a layer's row blocks): it
    /// outlives the call, as a fresh buffer per call cost page faults and a memset each time.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch, at least `n` elements long.
pub(super) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut s = cell.borrow_mut();
        if s.len() < n {
            s.resize(n, 0.0);
        }
        f(&mut s[..n])
    })
}

/// `dst[m, n] = alpha * lhs[m, k] rhs[k, n]`, each operand given as (pointer, column stride,
/// row stride), on this thread.
///
/// # Safety
/// The regions must lie inside their allocations for these sizes and strides; `dst` must not
/// overlap the operands or be touched by another thread meanwhile.
pub(super) unsafe fn product(
    mnk: (usize, usize, usize),
    dst: (*mut f32, usize, usize),
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    alpha: f32,
) {
    // SAFETY: `product_into`'s contract is this function's, which the caller meets.
    unsafe { product_into(mnk, dst, lhs, rhs, alpha, false, gemm::Parallelism::None) }
}

/// [`product`] added to what `dst` holds: `dst += alpha * lhs rhs`.
///
/// # Safety
/// As [`product`].
pub(super) unsafe fn product_acc(
    mnk: (usize, usize, usize),
    dst: (*mut f32, usize, usize),
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    alpha: f32,
) {
    // SAFETY: `product_into`'s contract is this function's, which the caller meets.
    unsafe { product_into(mnk, dst, lhs, rhs, alpha, true, gemm::Parallelism::None) }
}

/// [`product`] (or, when `accumulate`, [`product_acc`]) split over the threads as `par` says.
///
/// # Safety
/// As [`product`].
#[allow(clippy::too_many_arguments)]
unsafe fn product_into(
    (m, n, k): (usize, usize, usize),
    (dst, dst_cs, dst_rs): (*mut f32, usize, usize),
    (lhs, lhs_cs, lhs_rs): (*const f32, usize, usize),
    (rhs, rhs_cs, rhs_rs): (*const f32, usize, usize),
    alpha: f32,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    // SAFETY: gemm reads `lhs` and `rhs` and writes `dst` at the given sizes and strides, all
    // inside their allocations, `dst` overlapping neither operand and touched by no other
    // thread (the caller's contract); with `par`, only gemm's own workers write it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// `dst += lhs rhs` (with `accumulate` false `dst = lhs rhs`, what `dst` held not read) on
/// one thread, all row-major with unit column stride: `dst` `[m, n]` (row stride `dst_rs`),
/// `lhs` `[m, k]` (`lhs_rs`), `rhs` `[k, n]` (`rhs_rs`).
///
/// # Safety
/// The three regions must lie inside their allocations for these sizes and strides, and
/// `dst` must not overlap the others or be written by another thread meanwhile.
pub(super) unsafe fn gemm_rows(
    m: usize,
    n: usize,
    k: usize,
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs): (*const f32, usize),
    (rhs, rhs_rs): (*const f32, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's contract.
    unsafe {
        product_into(
            (m, n, k),
            (dst, 1, dst_rs),
            (lhs, 1, lhs_rs),
            (rhs, 1, rhs_rs),
            1.0,
            accumulate,
            gemm::Parallelism::None,
        )
    }
}

/// Rows of `m` that one parallel task fills (bias/residual copy and GELU).
const ROWS_PER_TASK: usize = 64;
/// Outputs up to this many elements get their bias rows on the calling thread.
const SERIAL_FILL: usize = 1 << 18;
/// Below this many multiply-adds one thread does the product (as burn-flex's matmul decides).
const GEMM_PARALLEL_MACS: usize = 192 * 192 * 192;

pub(super) fn linear_flex(
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
    contiguous(out, oshape)
}

/// The backward of [`linear_flex`] without GELU or residual: from its input `x` `[.., k]`,
/// weight `[k, n]` and the output's gradient `g` `[.., n]`, the gradients of the input (empty
/// `[0]` unless `input_grad`), the weight and the bias. Both products read the transposed
/// operand through strides (no transposing copy), and the weight's runs over all rows at once.
pub(super) fn linear_backward_flex(
    x: FlexTensor,
    w: FlexTensor,
    g: FlexTensor,
    input_grad: bool,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (x, w, g) = (x.to_contiguous(), w.to_contiguous(), g.to_contiguous());
    let xshape = x.layout().shape().clone();
    let wshape = w.layout().shape().clone();
    let (k, n) = (wshape[0], wshape[1]);
    let (xs, ws, gs) = (f32_slice(&x), f32_slice(&w), f32_slice(&g));
    let m = xs.len() / k.max(1);
    assert!(
        gs.len() == m * n,
        "linear backward: input {xshape:?}, weight {wshape:?}, gradient of {} elements",
        gs.len()
    );
    let par = |macs: usize| {
        if macs >= GEMM_PARALLEL_MACS {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        }
    };
    let dx = if input_grad {
        let mut dx = vec![0.0f32; m * k];
        // SAFETY: dx is [m, k]; g [m, n]; W^T read from w [k, n] (column stride n, row 1).
        unsafe {
            product_into(
                (m, k, n),
                (dx.as_mut_ptr(), 1, k),
                (gs.as_ptr(), 1, n),
                (ws.as_ptr(), n, 1),
                1.0,
                false,
                par(m * n * k),
            );
        }
        contiguous(dx, xshape)
    } else {
        contiguous(Vec::new(), [0])
    };
    let mut dw = vec![0.0f32; k * n];
    // SAFETY: dw is [k, n]; x^T read from x [m, k] (column stride k, row 1); g [m, n].
    unsafe {
        product_into(
            (k, n, m),
            (dw.as_mut_ptr(), 1, n),
            (xs.as_ptr(), k, 1),
            (gs.as_ptr(), 1, n),
            1.0,
            false,
            par(m * n * k),
        );
    }
    // The bias' gradient: column sums per block of rows, added in block order (the same
    // result whichever thread summed which block).
    const SUM_ROWS: usize = 256;
    let partial: Vec<Vec<f32>> = gs
        .par_chunks((SUM_ROWS * n).max(1))
        .map(|rows| {
            let mut acc = vec![0.0f32; n];
            for row in rows.chunks_exact(n) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    let db = sum_in_order(&partial, n);
    (dx, contiguous(dw, [k, n]), contiguous(db, [n]))
}
