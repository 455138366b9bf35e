//! Matrix-product helpers (gemm with strides, over slice views checked once per call;
//! per-thread scratch) and the fused linear layer (`x W + b`, GELU and residual in one pass).

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

/// The number of elements from a view's first to its last, plus one (0 for an empty view),
/// or `None` where that overflows.
fn span(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

/// Where a `rows` × `cols` view at `row_stride` (columns adjacent) starts in a slice of `len`
/// elements from `start`: [`view_range`] of its [`span`], with a message naming the sizes
/// (`what` the view is) when it overflows or does not fit.
#[track_caller]
fn view_start(
    len: usize,
    start: usize,
    (rows, cols, row_stride): (usize, usize, usize),
    what: &str,
) -> usize {
    let need = span(rows, cols, row_stride, 1).unwrap_or_else(|| {
        panic!("kernels: [{rows}, {cols}] at row stride {row_stride} overflows")
    });
    view_range(
        len,
        start,
        need,
        format_args!("a [{rows}, {cols}] {what} at row stride {row_stride}"),
    )
}

/// The part of `len` elements from `start` that a view of `need` elements takes: `start..`
/// when it fits (an empty view takes nothing and fits anywhere), with a message naming the
/// sizes when it does not.
#[track_caller]
fn view_range(len: usize, start: usize, need: usize, what: std::fmt::Arguments<'_>) -> usize {
    if need == 0 {
        return len;
    }
    assert!(
        start <= len && need <= len - start,
        "kernels: {what} from element {start} needs {need} elements, the slice holds {len}"
    );
    start
}

/// A matrix read from a slice: `rows` × `cols`, element `(i, j)` at `i * row_stride + j *
/// col_stride` of `data`. Making one checks, once, that every element lies inside `data`;
/// the products below pass its pointer to gemm without further checks.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// `rows` × `cols` from `data[0]`, rows `row_stride` apart, columns adjacent.
    #[track_caller]
    pub(super) fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self::at(data, 0, rows, cols, row_stride)
    }

    /// As [`Mat::new`], from `data[start]`.
    #[track_caller]
    pub(super) fn at(
        data: &'a [f32],
        start: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        let from = view_start(data.len(), start, (rows, cols, row_stride), "matrix");
        Mat {
            data: &data[from..],
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// Rows.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub(super) fn cols(&self) -> usize {
        self.cols
    }

    /// The first element and the row stride, for a kernel that reads the matrix through a
    /// pointer (every element lies inside the slice; columns adjacent, asserted here).
    pub(super) fn ptr_rows(&self) -> (*const f32, usize) {
        assert_eq!(
            self.col_stride, 1,
            "kernels: a transposed view read by rows"
        );
        (self.data.as_ptr(), self.row_stride)
    }

    /// The transpose: the same elements, `cols` × `rows` (no copy; gemm reads it through the
    /// strides).
    pub(super) fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// A matrix written into a slice: `rows` × `cols`, element `(i, j)` at `i * row_stride + j`
/// of `data`, rows that do not overlap (`row_stride >= cols`). Making one checks that once.
pub(super) struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// `rows` × `cols` from `data[0]`, rows `row_stride` apart, columns adjacent.
    #[track_caller]
    pub(super) fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self::at(data, 0, rows, cols, row_stride)
    }

    /// As [`MatMut::new`], from `data[start]`.
    #[track_caller]
    pub(super) fn at(
        data: &'a mut [f32],
        start: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        assert!(
            rows <= 1 || cols == 0 || row_stride >= cols,
            "kernels: an output's rows of {cols} overlap at row stride {row_stride}"
        );
        let from = view_start(data.len(), start, (rows, cols, row_stride), "output");
        MatMut {
            data: &mut data[from..],
            rows,
            cols,
            row_stride,
        }
    }

    /// The same view for a shorter borrow (to write it again afterwards).
    pub(super) fn reborrow(&mut self) -> MatMut<'_> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
        }
    }

    /// Rows and columns.
    pub(super) fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The first element and the row stride, for a kernel that writes the matrix through a
    /// pointer (every element lies inside the exclusively borrowed slice).
    pub(super) fn ptr_rows(&mut self) -> (*mut f32, usize) {
        (self.data.as_mut_ptr(), self.row_stride)
    }

    /// Row `i` (`i < rows`).
    pub(super) fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "kernels: row {i} of {}", self.rows);
        &mut self.data[i * self.row_stride..][..self.cols]
    }
}

/// The shapes of `dst = lhs rhs` agree: `(m, n, k)`, with a message naming them otherwise.
#[track_caller]
fn product_dims(dst: (usize, usize), lhs: &Mat<'_>, rhs: &Mat<'_>) -> (usize, usize, usize) {
    assert!(
        dst.0 == lhs.rows && dst.1 == rhs.cols && lhs.cols == rhs.rows,
        "kernels: a [{}, {}] output from [{}, {}] times [{}, {}]",
        dst.0,
        dst.1,
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols
    );
    (lhs.rows, rhs.cols, lhs.cols)
}

/// `dst = alpha lhs rhs` (with `accumulate`, `dst += alpha lhs rhs`; without, what `dst` held
/// is not read), split over the threads as `par` says. The shapes are checked once, here.
#[track_caller]
pub(super) fn matmul(
    dst: MatMut<'_>,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    alpha: f32,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    let mnk = product_dims((dst.rows, dst.cols), &lhs, &rhs);
    // SAFETY: each view's elements lie inside its slice (checked when it was made), at the
    // sizes just checked to agree; `dst` is a `&mut` slice, so it overlaps neither operand and
    // no other thread touches it, and its rows do not overlap each other.
    unsafe {
        product_into(
            mnk,
            (dst.data.as_mut_ptr(), 1, dst.row_stride),
            (lhs.data.as_ptr(), lhs.col_stride, lhs.row_stride),
            (rhs.data.as_ptr(), rhs.col_stride, rhs.row_stride),
            alpha,
            accumulate,
            par,
        )
    }
}

/// `dst = alpha lhs rhs` on this thread.
#[track_caller]
pub(super) fn product(dst: MatMut<'_>, lhs: Mat<'_>, rhs: Mat<'_>, alpha: f32) {
    matmul(dst, lhs, rhs, alpha, false, gemm::Parallelism::None)
}

/// [`product`] added to what `dst` holds: `dst += alpha lhs rhs`.
#[track_caller]
pub(super) fn product_acc(dst: MatMut<'_>, lhs: Mat<'_>, rhs: Mat<'_>, alpha: f32) {
    matmul(dst, lhs, rhs, alpha, true, gemm::Parallelism::None)
}

/// `dst += lhs rhs` (with `accumulate` false `dst = lhs rhs`, what `dst` held not read) on
/// this thread.
#[track_caller]
pub(super) fn gemm_rows(dst: MatMut<'_>, lhs: Mat<'_>, rhs: Mat<'_>, accumulate: bool) {
    matmul(dst, lhs, rhs, 1.0, accumulate, gemm::Parallelism::None)
}

/// [`product`] into rows that no `&mut` slice can hold: some of the columns of a buffer whose
/// other columns other tasks write at the same time (attention's heads). `dst` is `[m, n]` at
/// row stride `dst_rs`, with `m` and `n` from the operands.
///
/// # Safety
/// `dst`'s `[m, n]` elements at that stride must lie inside one allocation, overlap neither
/// operand, and be read or written by nobody else meanwhile.
pub(super) unsafe fn product_to_ptr(
    (dst, dst_rs): (*mut f32, usize),
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    alpha: f32,
) {
    let mnk = product_dims((lhs.rows, rhs.cols), &lhs, &rhs);
    // SAFETY: the operands' elements lie inside their slices (checked when the views were
    // made), at sizes that agree; `dst` as this function's contract has it.
    unsafe {
        product_into(
            mnk,
            (dst, 1, dst_rs),
            (lhs.data.as_ptr(), lhs.col_stride, lhs.row_stride),
            (rhs.data.as_ptr(), rhs.col_stride, rhs.row_stride),
            alpha,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `dst[m, n] = alpha * lhs[m, k] rhs[k, n]` (or, when `accumulate`, added to what `dst`
/// holds), each operand given as (pointer, column stride, row stride), split over the threads
/// as `par` says: the one call into gemm, behind the checked entry points above.
///
/// # Safety
/// The regions must lie inside their allocations for these sizes and strides; `dst` must not
/// overlap the operands or be touched by another thread meanwhile (with `par`, only gemm's
/// own workers write it).
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
    matmul(
        MatMut::new(&mut out, m, n, n),
        Mat::new(xs, m, k, k),
        Mat::new(ws, k, n, n),
        1.0,
        true,
        par,
    );
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
        // dx [m, k] = g [m, n] W^T (W [k, n] read transposed through its strides).
        matmul(
            MatMut::new(&mut dx, m, k, k),
            Mat::new(gs, m, n, n),
            Mat::new(ws, k, n, n).t(),
            1.0,
            false,
            par(m * n * k),
        );
        contiguous(dx, xshape)
    } else {
        contiguous(Vec::new(), [0])
    };
    let mut dw = vec![0.0f32; k * n];
    // dw [k, n] = x^T g (x [m, k] read transposed through its strides).
    matmul(
        MatMut::new(&mut dw, k, n, n),
        Mat::new(xs, m, k, k).t(),
        Mat::new(gs, m, n, n),
        1.0,
        false,
        par(m * n * k),
    );
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
