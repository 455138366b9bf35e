//! One head of attention for a block of queries in AVX-512 register tiles, for inference:
//! `q k^T`, the softmax and `p v` without gemm's packing.
//!
//! Through gemm, attention ran at half the rate of the linear layers (perf, batch 32): with
//! `k = dk = 32` the product `q k^T` is short, gemm packed both operands of each of the two
//! products on every call, and the softmax's rows of 321 ended in a serial sum and a scalar
//! tail. Here the keys come transposed in blocks of 32 (written once per layer beside the
//! QKV projection: transposing them per block of queries cost a quarter of the kernel) and the
//! values as a contiguous `[t, dk]`; the queries and the probabilities are broadcast
//! straight from their rows; each tile keeps `ROWS` query rows × two vectors of keys (or of
//! output columns) in registers; the rows' maxima are kept while the scores are written, and
//! the exponentials run in whole vectors in the tile's own loop.

/// Query rows per tile (32 registers: 28 accumulators, 2 loads, 1 broadcast; 14 rows timed
/// about 5 % faster than 12 and 10 % faster than 8 at 107 queries against 321 keys).
const ROWS: usize = 14;
/// Lanes per vector (AVX-512).
const LANES: usize = 16;

/// Whether this CPU runs the tiles for heads `dk` wide: AVX-512, and a width of whole
/// vectors. Elsewhere the layer keeps gemm's products. (Tiles written for AVX2 ran 1.7x
/// slower than these on an AVX-512 host, where gemm's AVX2 kernels could not be timed
/// beside them, so AVX2 hosts keep gemm, which is measured there.)
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

/// Keys per block of the transposed key panel.
const KEY_BLOCK: usize = 32;

/// Keys in a transposed key panel: `t`, zero-padded to whole blocks.
pub(super) fn panel_len(t: usize) -> usize {
    t.next_multiple_of(KEY_BLOCK)
}

/// Where element `c` of key `j` lies in a panel of keys `dk` wide: blocks of 32 keys, each
/// `[dk, 32]`, so that a tile of keys reads one contiguous 4-kB run. (The panel `[dk, t]` row
/// by row, 1.4 kB between the rows a tile reads, with the values read in place: 28 % of a
/// batch-32 inference in perf, against 24 % with both laid out as now.)
pub(super) fn panel_index(j: usize, c: usize, dk: usize) -> usize {
    (j / KEY_BLOCK) * dk * KEY_BLOCK + c * KEY_BLOCK + j % KEY_BLOCK
}

/// The scratch [`attend`] needs for `t` keys: one tile's scores and inverse sums.
pub(super) fn scratch_len(t: usize) -> usize {
    ROWS * (panel_len(t) + 1)
}

/// `out = softmax(scale q k^T) v` for `n` query rows against `t` keys and values, each `dk`
/// wide, with the keys given transposed: `kt` holds `dk * panel_len(t)` elements laid out by
/// [`panel_index`], zero past key `t`.
///
/// # Safety
/// [`available`]`(dk)` must hold; `q` must point at `n` rows and `v` at `t` rows of `dk`
/// elements at their row strides; `kt` at the panel; `out` at `n` rows of `dk` elements at
/// stride `out_rs` that nobody else touches meanwhile; `scratch` must hold
/// [`scratch_len`]`(t)` elements.
pub(super) unsafe fn attend(
    (n, t, dk): (usize, usize, usize),
    (q, q_rs): (*const f32, usize),
    kt: *const f32,
    (v, v_rs): (*const f32, usize),
    scale: f32,
    scratch: &mut [f32],
    (out, out_rs): (*mut f32, usize),
) {
    assert!(
        available(dk) && scratch.len() >= scratch_len(t),
        "fused attention: width {dk} on this CPU, or scratch too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let args = (
            (n, t, dk),
            (q, q_rs),
            kt,
            (v, v_rs),
            scale,
            scratch,
            (out, out_rs),
        );
        // SAFETY: the CPU has AVX-512 (`available`); the rest is the caller's contract.
        unsafe { x86::attend_avx512(args) }
    }
}

// Register tiles are indexed by row and vector: the index loops say so more plainly than
// iterators would, and unroll the same.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod x86 {
    use super::super::simd::{Avx512, Simd};
    use super::{panel_len, KEY_BLOCK, LANES, ROWS};

    type Args<'a> = (
        (usize, usize, usize),
        (*const f32, usize),
        *const f32,
        (*const f32, usize),
        f32,
        &'a mut [f32],
        (*mut f32, usize),
    );

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn attend_avx512(args: Args<'_>) {
        const { assert!(Avx512::LANES == LANES && 2 * LANES == KEY_BLOCK) };
        unsafe { attend_tiles::<Avx512, ROWS>(args) }
    }

    /// The kernel for `R` query rows per tile (see the module's text).
    ///
    /// # Safety
    /// As [`super::attend`], with `dk` a multiple of `S::LANES` and a tile of keys (a block of
    /// the panel) two vectors wide.
    #[inline(always)]
    unsafe fn attend_tiles<S: Simd, const R: usize>(
        ((n, t, dk), (q, q_rs), kt, (v, v_rs), scale, scratch, (out, out_rs)): Args<'_>,
    ) {
        let w = S::LANES;
        let tp = panel_len(t);
        let (scores, inv) = scratch.split_at_mut(R * tp);
        // Keys in tiles whose every column is a real key (their maxima are kept in registers).
        let whole = t / KEY_BLOCK * KEY_BLOCK;
        let mut r0 = 0;
        while r0 < n {
            let rows = R.min(n - r0);
            let sc = scores.as_mut_ptr();
            // Rows past the block's end repeat its last query; their results are dropped.
            let qr: [*const f32; R] =
                std::array::from_fn(|r| unsafe { q.add((r0 + r.min(rows - 1)) * q_rs) });
            let mut mx = [unsafe { S::splat(f32::NEG_INFINITY) }; R];
            for tile in 0..tp / KEY_BLOCK {
                let j0 = tile * KEY_BLOCK;
                let block = kt.wrapping_add(tile * dk * KEY_BLOCK);
                let mut acc = [[unsafe { S::zero() }; 2]; R];
                for c in 0..dk {
                    // SAFETY: the block [dk, 32] holds this tile's keys j0..j0 + 2w in each
                    // of its rows; query rows have dk columns.
                    unsafe {
                        let k0 = S::load(block.add(c * KEY_BLOCK));
                        let k1 = S::load(block.add(c * KEY_BLOCK + w));
                        for r in 0..R {
                            let qb = S::splat(*qr[r].add(c));
                            acc[r][0] = S::fma(qb, k0, acc[r][0]);
                            acc[r][1] = S::fma(qb, k1, acc[r][1]);
                        }
                    }
                }
                // The unscaled products: `scale` (> 0) goes into the softmax's exponent.
                for r in 0..R {
                    // SAFETY: `scores` is [R, tp].
                    unsafe {
                        S::store(sc.add(r * tp + j0), acc[r][0]);
                        S::store(sc.add(r * tp + j0 + w), acc[r][1]);
                        if j0 + KEY_BLOCK <= t {
                            mx[r] = S::max(mx[r], S::max(acc[r][0], acc[r][1]));
                        }
                    }
                }
            }
            // The softmax's exponentials and sums, a row at a time in whole vectors: the
            // padding past `t` is set to -inf first, so that it adds (at most) 31 times
            // 2^-126 to the sum (a row's own maximum adds 1).
            for r in 0..rows {
                // SAFETY: row r of `scores` ([R, tp]).
                unsafe {
                    let row = sc.add(r * tp);
                    let mut max = S::reduce_max(mx[r]);
                    for j in whole..t {
                        max = max.max(*row.add(j));
                    }
                    for j in t..tp {
                        *row.add(j) = f32::NEG_INFINITY;
                    }
                    // In base 2: exp(scale (s - max)) = 2^(scale log2(e) (s - max)).
                    let scale2 = scale * std::f32::consts::LOG2_E;
                    let (sv, shift) = (S::splat(scale2), S::splat(-max * scale2));
                    let (mut s0, mut s1) = (S::zero(), S::zero());
                    for j in (0..tp).step_by(KEY_BLOCK) {
                        let e0 = S::exp2_nonpositive(S::fma(S::load(row.add(j)), sv, shift));
                        let e1 = S::exp2_nonpositive(S::fma(S::load(row.add(j + w)), sv, shift));
                        S::store(row.add(j), e0);
                        S::store(row.add(j + w), e1);
                        s0 = S::add(s0, e0);
                        s1 = S::add(s1, e1);
                    }
                    inv[r] = 1.0 / S::reduce_add(S::add(s0, s1));
                }
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

    /// `out[r, ..C vectors] = inv[r] * sum_j p[r, j] v[j, ..C vectors]` for the tile's rows.
    ///
    /// # Safety
    /// `p` is [R, tp] with t <= tp; `v` has t rows of at least `C` vectors at stride `v_rs`;
    /// `out` has `rows` rows of `C` vectors at stride `out_rs`.
    #[inline(always)]
    unsafe fn pv_tile<S: Simd, const R: usize, const C: usize>(
        (t, tp, rows): (usize, usize, usize),
        p: *const f32,
        (v, v_rs): (*const f32, usize),
        inv: &[f32],
        (out, out_rs): (*mut f32, usize),
    ) {
        let w = S::LANES;
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
        // Sizes that leave partial tiles of queries and keys, and every vector count per row.
        for &(n, t, dk) in &[
            (1, 1, 16),
            (5, 7, 16),
            (13, 33, 32),
            (107, 321, 32),
            (25, 65, 48),
            (12, 40, 64),
            (7, 19, 8),
            (3, 50, 24),
        ] {
            #[cfg(target_arch = "x86_64")]
            {
                let avx512 = std::arch::is_x86_feature_detected!("avx512f");
                assert_eq!(available(dk), avx512 && dk.is_multiple_of(16), "dk={dk}");
            }
            if !available(dk) {
                continue;
            }
            // A packed [t, 3 dk + 5] layout (q, k, v side by side, a ragged row stride).
            let in_rs = 3 * dk + 5;
            let qkv: Vec<f32> = (0..t.max(n) * in_rs)
                .map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 3.0)
                .collect();
            let (qo, ko, vo) = (0, dk, 2 * dk);
            let tp = panel_len(t);
            let mut kt = vec![0.0f32; dk * tp];
            for j in 0..t {
                for c in 0..dk {
                    kt[panel_index(j, c, dk)] = qkv[ko + j * in_rs + c];
                }
            }
            let out_rs = dk + 3;
            let mut out = vec![f32::NAN; n * out_rs];
            let mut scratch = vec![0.0f32; scratch_len(t)];
            let p = qkv.as_ptr();
            // SAFETY: q has n rows and v t rows of dk at stride in_rs inside `qkv`; `kt` is
            // the panel; `out` has n rows of dk at stride out_rs; the scratch is long enough.
            unsafe {
                attend(
                    (n, t, dk),
                    (p.add(qo), in_rs),
                    kt.as_ptr(),
                    (p.add(vo), in_rs),
                    1.0 / (dk as f32).sqrt(),
                    &mut scratch,
                    (out.as_mut_ptr(), out_rs),
                )
            };
            let want = reference((n, t, dk), &qkv, in_rs, (qo, ko, vo));
            for i in 0..n {
                for c in 0..dk {
                    let (g, w) = (out[i * out_rs + c] as f64, want[i * dk + c]);
                    assert!(
                        (g - w).abs() < 2e-5 * (1.0 + w.abs()),
                        "n={n} t={t} dk={dk} row {i} col {c}: {g} vs {w}"
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
