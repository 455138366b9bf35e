//! One head of attention for a block of queries in AVX-512 register tiles, for inference:
//! `q k^T`, the softmax and `p v` without gemm's packing.
//!
//! Through gemm, attention ran well below the rate of the linear layers (measured: BENCHMARKS.md):
//! with `k = dk = 32` the product `q k^T` is short, gemm packed both operands of each of the two
//! products on every call, and the softmax's rows of 321 ended in a serial sum and a scalar tail.
//! Here the keys come transposed in blocks of 32 (written once per layer beside the QKV projection:
//! transposing them per block of queries cost a large share of the kernel) and the values as a
//! contiguous `[t, dk]`; the queries and the probabilities are broadcast straight from their rows;
//! each tile keeps `ROWS` query rows × two vectors of keys (or of output columns) in registers.
//!
//! The softmax needs no pass of its own where it can: the panel's keys come multiplied by
//! `scale log2(e)`, so that a score is its own base-2 exponent, and Cauchy–Schwarz bounds a
//! tile's scores by `|q| max |k|` before they are computed. Where that bound is at most
//! [`ONE_PASS_BOUND`] (every tile of the models here: 4–8 for the base model's random
//! initialisation), the exponentials are taken unshifted on the tile's registers and summed
//! as they are stored; a softmax is the same for any shift, and `2^±60` stays far inside
//! f32's range. (Storing the scores with the rows' maxima, then a pass per row for the
//! exponentials, as beyond the bound still, took more of the kernel's time; measured:
//! BENCHMARKS.md.)

use super::gemm::{Mat, MatMut};

/// Query rows per tile (32 registers: 28 accumulators, 2 loads, 1 broadcast; 14 rows timed
/// faster than 12 and 8 at 107 queries against 321 keys, level with 12 at 321 queries in the
/// one-pass kernel; measured: BENCHMARKS.md).
const ROWS: usize = 14;
/// Lanes per vector (AVX-512).
const LANES: usize = 16;

/// Whether this CPU runs the tiles for heads `dk` wide: AVX-512, and a width of whole
/// vectors. Elsewhere the layer keeps gemm's products. (Tiles written for AVX2 ran well
/// behind these on an AVX-512 host, where gemm's AVX2 kernels could not be timed beside
/// them, so AVX2 hosts keep gemm, which is measured there; BENCHMARKS.md.)
pub(super) fn available(dk: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        dk > 0 && dk.is_multiple_of(LANES) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = dk;
        false
    }
}

/// The largest bound on a tile's scores (in base 2, scaled) for which the softmax runs in
/// one pass without the rows' maxima: exponentials within 2^±60 neither overflow nor leave
/// f32's normal range, in the sums or in the products with values.
const ONE_PASS_BOUND: f32 = 60.0;

/// Keys per block of the transposed key panel.
const KEY_BLOCK: usize = 32;

/// Keys in a transposed key panel: `t`, zero-padded to whole blocks.
pub(super) fn panel_len(t: usize) -> usize {
    t.next_multiple_of(KEY_BLOCK)
}

/// Where element `c` of key `j` lies in a panel of keys `dk` wide: blocks of 32 keys, each
/// `[dk, 32]`, so that a tile of keys reads one contiguous 4-kB run. (The panel `[dk, t]` row
/// by row, 1.4 kB between the rows a tile reads, with the values read in place, took a larger
/// share of a batch-32 inference than both laid out as now; measured: BENCHMARKS.md.)
pub(super) fn panel_index(j: usize, c: usize, dk: usize) -> usize {
    (j / KEY_BLOCK) * dk * KEY_BLOCK + c * KEY_BLOCK + j % KEY_BLOCK
}

/// The scratch [`attend`] needs for `t` keys: one tile's scores, its rows' sums (a vector
/// each) and inverse sums.
pub(super) fn scratch_len(t: usize) -> usize {
    ROWS * (panel_len(t) + LANES + 1)
}

/// `out = softmax(scale q k^T) v` for `n` query rows against `t` keys and values, each `dk`
/// wide, with the keys given transposed and scaled: `kt` holds `dk * panel_len(t)` elements
/// laid out by [`panel_index`], the keys times `scale log2(e)` (the softmax runs in base 2:
/// e^(scale s) = 2^(scale log2(e) s)), zero past key `t`.
///
/// # Safety
/// [`available`]`(dk)` must hold; `q` must point at `n` rows and `v` at `t` rows of `dk`
/// elements at their row strides; `kt` at the panel; `out` at `n` rows of `dk` elements at
/// stride `out_rs` that nobody else touches meanwhile; `scratch` must hold
/// [`scratch_len`]`(t)` elements.
unsafe fn attend(
    (n, t, dk): (usize, usize, usize),
    (q, q_rs): (*const f32, usize),
    kt: *const f32,
    (v, v_rs): (*const f32, usize),
    scratch: &mut [f32],
    (out, out_rs): (*mut f32, usize),
) {
    assert!(
        available(dk) && scratch.len() >= scratch_len(t),
        "fused attention: width {dk} on this CPU, or scratch too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let args = ((n, t, dk), (q, q_rs), kt, (v, v_rs), scratch, (out, out_rs));
        // SAFETY: the CPU has AVX-512 (`available`); the rest is the caller's contract.
        unsafe { x86::attend_avx512(args) }
    }
}

/// [`attend`] over checked views: queries `q` `[n, dk]`, the keys' panel `kt` (at least
/// `dk * panel_len(t)`), values `v` `[t, dk]`, into `out` `[n, dk]`. Panics where the shapes
/// disagree or [`available`]`(dk)` does not hold.
pub(super) fn attend_views(
    q: Mat<'_>,
    kt: &[f32],
    v: Mat<'_>,
    scratch: &mut [f32],
    mut out: MatMut<'_>,
) {
    let (n, dk, t) = (q.rows(), q.cols(), v.rows());
    assert!(
        v.cols() == dk && out.dims() == (n, dk) && kt.len() >= dk * panel_len(t),
        "fused attention: queries [{n}, {dk}], values [{t}, {}], output {:?}, a key panel of {} for {t} keys",
        v.cols(),
        out.dims(),
        kt.len()
    );
    // SAFETY: each view lies inside its slice (checked when it was made) and their shapes
    // agree (above); `out` is borrowed exclusively; `attend` checks `available` and the
    // scratch's length.
    unsafe {
        attend(
            (n, t, dk),
            q.ptr_rows(),
            kt.as_ptr(),
            v.ptr_rows(),
            scratch,
            out.ptr_rows(),
        )
    }
}

/// Sixteen keys into their panel at once: for tokens `l` in `0..16` and columns `c` in
/// `0..dk`, `dst[c * 32 + l] = (src[l * src_rs + c] + bias[c]) * scale`, where `dst` is the
/// panel position of the first of 16 tokens starting at a multiple of 16. In 16 × 16
/// transposes: one element at a time, these stores showed in a batch's profile (measured:
/// BENCHMARKS.md).
///
/// # Safety
/// [`available`]`(dk)` must hold; `src` must point at 16 rows of `dk` at stride `src_rs`,
/// `bias` hold `dk`, and `dst` the run of 16 of `dk` rows at stride 32 that nobody else
/// touches meanwhile.
pub(super) unsafe fn keys_into_panel16(
    (src, src_rs): (*const f32, usize),
    bias: &[f32],
    scale: f32,
    dk: usize,
    dst: *mut f32,
) {
    assert!(
        available(dk) && bias.len() >= dk,
        "keys into the panel: width {dk} on this CPU, or bias too short"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512 (`available`); the rest is the caller's contract.
    unsafe {
        x86::keys_into_panel16_avx512((src, src_rs), bias, scale, dk, dst)
    }
}

// Register tiles are indexed by row and vector: the index loops say so more plainly than
// iterators would, and unroll the same.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod x86 {
    use super::super::simd::{transpose16, Avx512, Simd};
    use super::{panel_len, KEY_BLOCK, LANES, ONE_PASS_BOUND, ROWS};

    type Args<'a> = (
        (usize, usize, usize),
        (*const f32, usize),
        *const f32,
        (*const f32, usize),
        &'a mut [f32],
        (*mut f32, usize),
    );

    /// [`super::attend`] in AVX-512 register tiles of [`ROWS`] query rows.
    ///
    /// # Safety
    /// The CPU has AVX-512F, and `args` meet [`super::attend`]'s contract: `dk` a multiple of
    /// 16, `q`, `v`, `kt`, `out` and `scratch` as long as it says, `out` this call's alone.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn attend_avx512(args: Args<'_>) {
        const { assert!(Avx512::LANES == LANES && 2 * LANES == KEY_BLOCK) };
        // SAFETY: this function's contract is `attend_tiles`'s: the CPU has AVX-512F (which
        // `Avx512`'s methods need), `dk` is a multiple of `Avx512::LANES` and a panel block
        // two vectors wide (the assertion above).
        unsafe { attend_tiles::<Avx512, ROWS>(args) }
    }

    /// [`super::keys_into_panel16`] in AVX-512.
    ///
    /// # Safety
    /// The CPU has AVX-512F, and the arguments meet [`super::keys_into_panel16`]'s contract.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn keys_into_panel16_avx512(
        (src, src_rs): (*const f32, usize),
        bias: &[f32],
        scale: f32,
        dk: usize,
        dst: *mut f32,
    ) {
        let w = Avx512::LANES;
        // SAFETY: the caller's contract (`super::keys_into_panel16`): `bias` holds dk (asserted
        // there) and dk is a multiple of w, so the loads at c0 < dk stay inside it and inside
        // the 16 rows of `src`; the stores go to the run's rows c0 + c < dk at stride 32; the
        // CPU has AVX-512F.
        unsafe {
            let sv = Avx512::splat(scale);
            for c0 in (0..dk).step_by(w) {
                let b = Avx512::load(bias.as_ptr().add(c0));
                // The same two roundings as one key at a time: `(k + b) * scale`.
                let rows = std::array::from_fn(|l| {
                    Avx512::mul(Avx512::add(Avx512::load(src.add(l * src_rs + c0)), b), sv)
                });
                for (c, col) in transpose16(rows).into_iter().enumerate() {
                    Avx512::store(dst.add((c0 + c) * KEY_BLOCK), col);
                }
            }
        }
    }

    /// The kernel for `R` query rows per tile (see the module's text).
    ///
    /// # Safety
    /// As [`super::attend`], with `dk` a multiple of `S::LANES` and a tile of keys (a block of
    /// the panel) two vectors wide; the CPU has `S`'s instruction set.
    #[inline(always)]
    unsafe fn attend_tiles<S: Simd, const R: usize>(
        ((n, t, dk), (q, q_rs), kt, (v, v_rs), scratch, (out, out_rs)): Args<'_>,
    ) {
        let w = S::LANES;
        let tp = panel_len(t);
        let (scores, rest) = scratch.split_at_mut(R * tp);
        let (sums, inv) = rest.split_at_mut(R * w);
        // SAFETY: the panel holds dk * tp elements.
        let key_norm = unsafe { max_key_norm::<S>(kt, dk, tp) };
        let mut r0 = 0;
        while r0 < n {
            let rows = R.min(n - r0);
            // Rows past the block's end repeat its last query; their results are dropped.
            let qr: [*const f32; R] = std::array::from_fn(|r| {
                // SAFETY: r0 + min(r, rows - 1) < n, and `q` points at n rows at stride q_rs.
                unsafe { q.add((r0 + r.min(rows - 1)) * q_rs) }
            });
            // Cauchy–Schwarz bounds the tile's scores: |s| <= |q| max |k|.
            let mut bound = 0.0f32;
            for &row in &qr[..rows] {
                // SAFETY: query rows have dk columns.
                bound = bound.max(unsafe { norm::<S>(row, dk) } * key_norm);
            }
            let sc = scores.as_mut_ptr();
            if bound <= ONE_PASS_BOUND {
                // SAFETY: `qr` are rows of dk inside `q`; `kt` holds every block of the panel
                // (dk * tp elements); `sc` is `scores`, [R, tp], and `sums` [R, w], both split
                // off this call's scratch above (`scratch_len`).
                unsafe { one_pass::<S, R>((t, tp, rows, dk), &qr, kt, (sc, sums), inv) };
            } else {
                // SAFETY: as for `one_pass`, without the sums.
                unsafe { two_pass::<S, R>((t, tp, rows, dk), &qr, kt, sc, inv) };
            }
            let sc = scores.as_ptr();
            let mut c0 = 0;
            while c0 < dk {
                // SAFETY: columns [c0, c0 + 2w) or [c0, c0 + w) lie inside dk (a multiple of w).
                unsafe {
                    let o = out.add(r0 * out_rs + c0);
                    if dk - c0 >= 2 * w {
                        pv_tile::<S, R, 2>((t, tp, rows), sc, (v.add(c0), v_rs), inv, (o, out_rs));
                        c0 += 2 * w;
                    } else {
                        pv_tile::<S, R, 1>((t, tp, rows), sc, (v.add(c0), v_rs), inv, (o, out_rs));
                        c0 += w;
                    }
                }
            }
            r0 += R;
        }
    }

    /// The norm of the `dk` elements at `x`.
    ///
    /// # Safety
    /// `x` points at `dk` elements, a multiple of `S::LANES`; the CPU has `S`'s instruction
    /// set.
    #[inline(always)]
    unsafe fn norm<S: Simd>(x: *const f32, dk: usize) -> f32 {
        // SAFETY: loads at x + c for c < dk in steps of LANES, inside the dk elements (dk a
        // multiple of LANES); the CPU has S's instruction set (`attend_tiles`' contract).
        unsafe {
            let mut acc = S::zero();
            for c in (0..dk).step_by(S::LANES) {
                let v = S::load(x.add(c));
                acc = S::fma(v, v, acc);
            }
            S::reduce_add(acc).sqrt()
        }
    }

    /// The largest norm of the `tp` keys of a panel (its zero padding included).
    ///
    /// # Safety
    /// `kt` holds `dk * tp` elements laid out by [`super::panel_index`], `tp` a multiple of 32
    /// and 32 keys two vectors of `S`; the CPU has `S`'s instruction set.
    #[inline(always)]
    unsafe fn max_key_norm<S: Simd>(kt: *const f32, dk: usize, tp: usize) -> f32 {
        let w = S::LANES;
        // SAFETY: block b starts at b dk 32 < dk tp; its row c's two vectors (32 keys, w = 16)
        // end at b dk 32 + c 32 + 32 <= dk tp; the CPU has S's instruction set.
        unsafe {
            let mut mx = S::zero();
            for block in 0..tp / KEY_BLOCK {
                let b = kt.add(block * dk * KEY_BLOCK);
                let (mut n0, mut n1) = (S::zero(), S::zero());
                for c in 0..dk {
                    let (k0, k1) = (
                        S::load(b.add(c * KEY_BLOCK)),
                        S::load(b.add(c * KEY_BLOCK + w)),
                    );
                    n0 = S::fma(k0, k0, n0);
                    n1 = S::fma(k1, k1, n1);
                }
                mx = S::max(mx, S::max(n0, n1));
            }
            S::reduce_max(mx).sqrt()
        }
    }

    /// The scores of `R` query rows (at `qr`) against the first `V` vectors of keys of one
    /// block of the panel, into `sc` (`[R, ..]` at stride `tp`): with `EXP`, their base-2
    /// exponentials (keys from `valid` on zeroed), each row's added to its sum vector in
    /// `sums` (`mx` unused); without, the scores as they are, each row's maximum kept in
    /// `mx` (over whole blocks only).
    ///
    /// # Safety
    /// `qr` point at rows of `dk`; `block` at a panel block `[dk, 32]`; `sc` at R rows of
    /// `V` vectors at stride `tp`; with `EXP`, `sums` at R vectors; the CPU has `S`'s
    /// instruction set.
    #[inline(always)]
    unsafe fn qk_tile<S: Simd, const R: usize, const V: usize, const EXP: bool>(
        (qr, dk): (&[*const f32; R], usize),
        block: *const f32,
        (sc, tp): (*mut f32, usize),
        valid: usize,
        (sums, mx): (*mut f32, &mut [S::V; R]),
    ) {
        let w = S::LANES;
        // SAFETY: the function's contract: key row c's V <= 2 vectors lie inside the [dk, 32]
        // block, element c < dk of each query row inside it, the stores at r tp + i w inside
        // `sc`'s R rows of V vectors (and, with EXP, at r w inside `sums`); the CPU has S's
        // instruction set.
        unsafe {
            let mut acc = [[S::zero(); V]; R];
            for c in 0..dk {
                let k: [S::V; V] =
                    std::array::from_fn(|i| S::load(block.add(c * KEY_BLOCK + i * w)));
                for r in 0..R {
                    let qb = S::splat(*qr[r].add(c));
                    for i in 0..V {
                        acc[r][i] = S::fma(qb, k[i], acc[r][i]);
                    }
                }
            }
            for r in 0..R {
                if EXP {
                    let mut sum = S::load(sums.add(r * w));
                    for i in 0..V {
                        let mut e = S::exp2(acc[r][i]);
                        if valid < (i + 1) * w {
                            e = S::keep_first(e, valid.saturating_sub(i * w));
                        }
                        S::store(sc.add(r * tp + i * w), e);
                        sum = S::add(sum, e);
                    }
                    S::store(sums.add(r * w), sum);
                } else {
                    for i in 0..V {
                        S::store(sc.add(r * tp + i * w), acc[r][i]);
                    }
                    if valid >= KEY_BLOCK {
                        for i in 0..V {
                            mx[r] = S::max(mx[r], acc[r][i]);
                        }
                    }
                }
            }
        }
    }

    /// The softmax's numerators in one pass, for scores within [`ONE_PASS_BOUND`] of 0 (the
    /// caller's bound): every score lies in [-bound, bound], so its exponential needs no
    /// shift by the row's maximum and is taken while the tile is in registers; into `sc`,
    /// with the rows' inverse sums into `inv` (`sums`, `[R, w]`, the running sums).
    ///
    /// # Safety
    /// As [`qk_tile`] for every block of the panel `kt`; `sc` is `[R, tp]`, `sums` `[R, w]`,
    /// `inv` at least `rows` long.
    #[inline(always)]
    unsafe fn one_pass<S: Simd, const R: usize>(
        (t, tp, rows, dk): (usize, usize, usize, usize),
        qr: &[*const f32; R],
        kt: *const f32,
        (sc, sums): (*mut f32, &mut [f32]),
        inv: &mut [f32],
    ) {
        let w = S::LANES;
        sums.fill(0.0);
        // SAFETY: for tile < tp / 32, the block at tile dk 32 lies inside the panel (dk tp
        // elements) and the scores at tile 32 inside `sc`'s rows of tp, two vectors (32) wide;
        // `sums` is [R, w], so the loads at r w < rows w are inside it; the CPU has S's set.
        unsafe {
            let mut unused = [S::zero(); R];
            for tile in 0..tp / KEY_BLOCK {
                let valid = t - tile * KEY_BLOCK;
                let block = kt.add(tile * dk * KEY_BLOCK);
                let at = (sc.add(tile * KEY_BLOCK), tp);
                let sums = (sums.as_mut_ptr(), &mut unused);
                // A last block of at most 16 keys (the CLS token's 321st of the base model)
                // takes one vector's work: the second's would be all padding.
                if valid > w {
                    qk_tile::<S, R, 2, true>((qr, dk), block, at, valid, sums)
                } else {
                    qk_tile::<S, R, 1, true>((qr, dk), block, at, valid, sums)
                }
            }
            for r in 0..rows {
                inv[r] = 1.0 / S::reduce_add(S::load(sums.as_ptr().add(r * w)));
            }
        }
    }

    /// The softmax's numerators in two passes, for scores too large to exponentiate
    /// unshifted: the scores with the rows' maxima, then their exponentials shifted by the
    /// maxima, into `sc`, and the rows' inverse sums into `inv`.
    ///
    /// # Safety
    /// As [`qk_tile`] for every block of the panel `kt`; `sc` is `[R, tp]`, `inv` at least
    /// `rows` long.
    #[inline(always)]
    unsafe fn two_pass<S: Simd, const R: usize>(
        (t, tp, rows, dk): (usize, usize, usize, usize),
        qr: &[*const f32; R],
        kt: *const f32,
        sc: *mut f32,
        inv: &mut [f32],
    ) {
        let w = S::LANES;
        // SAFETY: as in `one_pass` for the tiles (null `sums`: unused without EXP); then row r
        // < rows of `sc` is tp long, and j, j + w < tp step through it in whole blocks of 32;
        // the CPU has S's instruction set.
        unsafe {
            let mut mx = [S::splat(f32::NEG_INFINITY); R];
            for tile in 0..tp / KEY_BLOCK {
                qk_tile::<S, R, 2, false>(
                    (qr, dk),
                    kt.add(tile * dk * KEY_BLOCK),
                    (sc.add(tile * KEY_BLOCK), tp),
                    t - tile * KEY_BLOCK,
                    (std::ptr::null_mut(), &mut mx),
                );
            }
            // A row at a time in whole vectors: the padding past `t` is set to -inf first, so
            // that it adds (at most) 31 times 2^-126 to the sum (a row's own maximum adds 1).
            let whole = t / KEY_BLOCK * KEY_BLOCK;
            for r in 0..rows {
                let row = sc.add(r * tp);
                let mut max = S::reduce_max(mx[r]);
                for j in whole..t {
                    max = max.max(*row.add(j));
                }
                for j in t..tp {
                    *row.add(j) = f32::NEG_INFINITY;
                }
                let shift = S::splat(-max);
                let (mut s0, mut s1) = (S::zero(), S::zero());
                for j in (0..tp).step_by(KEY_BLOCK) {
                    let e0 = S::exp2_nonpositive(S::add(S::load(row.add(j)), shift));
                    let e1 = S::exp2_nonpositive(S::add(S::load(row.add(j + w)), shift));
                    S::store(row.add(j), e0);
                    S::store(row.add(j + w), e1);
                    s0 = S::add(s0, e0);
                    s1 = S::add(s1, e1);
                }
                inv[r] = 1.0 / S::reduce_add(S::add(s0, s1));
            }
        }
    }

    /// `out[r, ..C vectors] = inv[r] * sum_j p[r, j] v[j, ..C vectors]` for the tile's rows.
    ///
    /// # Safety
    /// `p` is [R, tp] with t <= tp; `v` has t rows of at least `C` vectors at stride `v_rs`;
    /// `out` has `rows` rows of `C` vectors at stride `out_rs`, this call's alone; `inv` is at
    /// least `rows` long; the CPU has `S`'s instruction set.
    #[inline(always)]
    unsafe fn pv_tile<S: Simd, const R: usize, const C: usize>(
        (t, tp, rows): (usize, usize, usize),
        p: *const f32,
        (v, v_rs): (*const f32, usize),
        inv: &[f32],
        (out, out_rs): (*mut f32, usize),
    ) {
        let w = S::LANES;
        // SAFETY: the function's contract: value row j < t holds C vectors at v + j v_rs; `p`
        // row r < R is read at j < t <= tp; output row r < rows has C vectors at out + r out_rs;
        // the CPU has S's instruction set.
        unsafe {
            let mut acc = [[S::zero(); C]; R];
            for j in 0..t {
                let vr = v.add(j * v_rs);
                let vv: [S::V; C] = std::array::from_fn(|c| S::load(vr.add(c * w)));
                for r in 0..R {
                    let pb = S::splat(*p.add(r * tp + j));
                    for c in 0..C {
                        acc[r][c] = S::fma(pb, vv[c], acc[r][c]);
                    }
                }
            }
            for r in 0..rows {
                let s = S::splat(inv[r]);
                for c in 0..C {
                    S::store(out.add(r * out_rs + c * w), S::mul(acc[r][c], s));
                }
            }
        }
    }
}

/// For the tests of the AVX-512 code: whether this CPU has AVX-512F; where not, a line on
/// stderr that `test` was skipped, so that a run shows it. Written to `std::io::stderr()`
/// directly: libtest captures `eprintln!` of a test that passes, which would hide the line.
#[cfg(test)]
pub(super) fn has_avx512_else_skipped(test: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    let has = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let has = false;
    if !has {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test}: this CPU has no AVX-512F"
        );
    }
    has
}

#[cfg(test)]
mod tests {
    use super::*;

    /// softmax(scale q k^T) v in f64, straight from the definition.
    fn reference(
        (n, t, dk): (usize, usize, usize),
        qkv: &[f32],
        in_rs: usize,
        (qo, ko, vo): (usize, usize, usize),
    ) -> Vec<f64> {
        let scale = 1.0 / (dk as f64).sqrt();
        let mut out = vec![0.0; n * dk];
        for i in 0..n {
            let s: Vec<f64> = (0..t)
                .map(|j| {
                    (0..dk)
                        .map(|c| qkv[qo + i * in_rs + c] as f64 * qkv[ko + j * in_rs + c] as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for c in 0..dk {
                out[i * dk + c] = (0..t)
                    .map(|j| e[j] * qkv[vo + j * in_rs + c] as f64)
                    .sum::<f64>()
                    / z;
            }
        }
        out
    }

    #[test]
    fn tiled_attention_matches_the_definition() {
        // Without AVX-512 only the check of `available` below runs.
        let avx512 = has_avx512_else_skipped("tiled_attention_matches_the_definition");
        // Sizes that leave partial tiles of queries and keys, and every vector count per row;
        // inputs whose score bounds all lie within ONE_PASS_BOUND (amplitude 1) and all
        // beyond it (amplitude 5: the two-pass path for every tile).
        for (amp, &(n, t, dk)) in [1.0f32, 5.0].into_iter().flat_map(|a| {
            [
                (1, 1, 16),
                (5, 7, 16),
                (13, 33, 32),
                (107, 321, 32),
                (25, 65, 48),
                (12, 40, 64),
                (7, 19, 8),
                (3, 50, 24),
            ]
            .iter()
            .map(move |s| (a, s))
        }) {
            assert_eq!(available(dk), avx512 && dk.is_multiple_of(16), "dk={dk}");
            if !available(dk) {
                continue;
            }
            // A packed [t, 3 dk + 5] layout (q, k, v side by side, a ragged row stride).
            let in_rs = 3 * dk + 5;
            let qkv: Vec<f32> = (0..t.max(n) * in_rs)
                .map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 3.0 * amp)
                .collect();
            let (qo, ko, vo) = (0, dk, 2 * dk);
            let tp = panel_len(t);
            let scale2 = std::f32::consts::LOG2_E / (dk as f32).sqrt();
            let mut kt = vec![0.0f32; dk * tp];
            for j in 0..t {
                for c in 0..dk {
                    kt[panel_index(j, c, dk)] = qkv[ko + j * in_rs + c] * scale2;
                }
            }
            // The path each tile takes, from the same bound the kernel computes.
            let norm = |o: usize| {
                (0..dk)
                    .map(|c| (qkv[o + c] * qkv[o + c]) as f64)
                    .sum::<f64>()
                    .sqrt()
            };
            let k_max = (0..t).map(|j| norm(ko + j * in_rs)).fold(0.0, f64::max) * scale2 as f64;
            let q_norms: Vec<f64> = (0..n).map(|i| norm(qo + i * in_rs) * k_max).collect();
            if amp == 1.0 {
                assert!(q_norms.iter().all(|&b| b < 0.9 * ONE_PASS_BOUND as f64));
            } else {
                assert!(q_norms.iter().all(|&b| b > 1.1 * ONE_PASS_BOUND as f64));
            }
            let out_rs = dk + 3;
            let mut out = vec![f32::NAN; n * out_rs];
            let mut scratch = vec![0.0f32; scratch_len(t)];
            attend_views(
                Mat::at(&qkv, qo, n, dk, in_rs),
                &kt,
                Mat::at(&qkv, vo, t, dk, in_rs),
                &mut scratch,
                MatMut::new(&mut out, n, dk, out_rs),
            );
            let want = reference((n, t, dk), &qkv, in_rs, (qo, ko, vo));
            for i in 0..n {
                for c in 0..dk {
                    let (g, w) = (out[i * out_rs + c] as f64, want[i * dk + c]);
                    // f32 scores' rounding grows with their size (amplitude squared).
                    assert!(
                        (g - w).abs() < 2e-5 * f64::from(amp * amp) * (1.0 + w.abs()),
                        "amplitude {amp} n={n} t={t} dk={dk} row {i} col {c}: {g} vs {w}"
                    );
                }
                // The row stride's gap is left alone.
                for c in dk..out_rs {
                    assert!(out[i * out_rs + c].is_nan());
                }
            }
        }
    }
}
