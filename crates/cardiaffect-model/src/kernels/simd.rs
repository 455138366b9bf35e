//! The vector operations of the in-tree register-tile kernels ([`super::fused_attention`]),
//! x86-64 only.

use std::arch::x86_64::*;

/// The vector operations the tile loops use, for one instruction set (AVX-512 now; the
/// loops read as arithmetic, not as intrinsics). Every method is inlined into a function
/// compiled for that set (`#[target_feature(enable = "avx512f")]`), which the callers
/// enter only where the CPU has it.
///
/// The methods are `unsafe` because they execute the impl's instructions: each one's
/// `# Safety` asks at least that the CPU have the impl's instruction set (AVX-512F for
/// [`Avx512`]; `fused_attention::available` checks it before any tile runs). Called from a
/// function not compiled for that set they are still sound on such a CPU, only not inlined.
pub(super) trait Simd {
    type V: Copy;
    const LANES: usize;
    /// All lanes 0.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` values read from `p`.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set, and `p` is valid for reads of `LANES`
    /// consecutive f32 (any alignment).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `v`'s `LANES` values written from `p` on.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set, and `p` is valid for writes of `LANES`
    /// consecutive f32 (any alignment) that no other thread reads or writes meanwhile.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a * b`, lane by lane.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// The larger of `a` and `b`, lane by lane.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `a + b`, lane by lane.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// The largest lane of `v`.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn reduce_max(v: Self::V) -> f32;
    /// The sum of `v`'s lanes.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn reduce_add(v: Self::V) -> f32;
    /// `2^x` for `x <= 0` (a softmax's shifted scores in base 2; below -126 it gives 2^-126).
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn exp2_nonpositive(x: Self::V) -> Self::V;
    /// `2^x` for `|x| <= 126` (scores known to lie within).
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn exp2(x: Self::V) -> Self::V;
    /// `v` with its lanes from `n` on zeroed.
    ///
    /// # Safety
    /// The CPU has the impl's instruction set.
    unsafe fn keep_first(v: Self::V, n: usize) -> Self::V;
}

pub(super) struct Avx512;
impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: `p` is readable for 16 f32 and the CPU has AVX-512F (the method's contract);
        // `loadu` needs no alignment.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: `p` is writable for 16 f32 that are ours alone and the CPU has AVX-512F (the
        // method's contract); `storeu` needs no alignment.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn reduce_max(v: __m512) -> f32 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_reduce_max_ps(v) }
    }
    #[inline(always)]
    unsafe fn reduce_add(v: __m512) -> f32 {
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    unsafe fn exp2_nonpositive(x: __m512) -> __m512 {
        // SAFETY: the CPU has AVX-512F (the method's contract, and `exp2`'s); the clamp to -126
        // puts `x` inside `exp2`'s range.
        unsafe { Self::exp2(_mm512_max_ps(x, _mm512_set1_ps(-126.0))) }
    }
    /// `n = round(x)`, `r = x - n` in [-1/2, 1/2], a degree-5 polynomial of `2^r` scaled by
    /// `2^n` in one instruction: 8 instructions where `fastmath`'s `exp` (Cody–Waite, `2^n`
    /// built in integer lanes) took 16, for the attention tiles' most frequent
    /// non-multiply-add. The polynomial is fitted for the least largest relative error with
    /// `2^0 = 1` exact: < 1.8e-7 in f32, where the degree-6 Taylor polynomial (one more
    /// multiply-add) had 2e-7.
    #[inline(always)]
    unsafe fn exp2(x: __m512) -> __m512 {
        // The fit's coefficients, highest degree first (the linear one is near ln 2, not it).
        #[allow(clippy::approx_constant)]
        const C: [f32; 6] = [
            1.326_472_7e-3,
            9.671_513e-3,
            5.550_733_6e-2,
            0.240_222_42,
            0.693_147,
            1.0,
        ];
        // SAFETY: the CPU has AVX-512F (the method's contract); no memory is touched.
        unsafe {
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
            let r = _mm512_sub_ps(x, n);
            let mut p = _mm512_set1_ps(C[0]);
            for c in &C[1..] {
                p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
            }
            _mm512_scalef_ps(p, n)
        }
    }
    #[inline(always)]
    unsafe fn keep_first(v: __m512, n: usize) -> __m512 {
        let mask = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
        // SAFETY: the CPU has AVX-512F (the method's contract).
        unsafe { _mm512_maskz_mov_ps(mask, v) }
    }
}

/// The 16 × 16 transpose of `r` (row `i` in `r[i]`): element `j` of vector `i` becomes element
/// `i` of vector `j`. Four rounds of two-input shuffles, 64 in all, where writing the
/// columns out one element at a time took 256 stores.
///
/// # Safety
/// The CPU must have AVX-512F.
#[inline(always)]
pub(super) unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // SAFETY: the CPU has AVX-512F (the function's contract); only registers, no memory.
    unsafe {
        // Pairs of rows interleaved by element, then by pairs of elements, then by 128-bit lanes
        // twice: the standard network.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        let u: [__m512; 16] = std::array::from_fn(|i| {
            // Within each group of four: (t0, t2) lo, (t0, t2) hi, (t1, t3) lo, (t1, t3) hi.
            let g = i / 4 * 4;
            let (a, b) = match i % 4 {
                0 | 1 => (t[g], t[g + 2]),
                _ => (t[g + 1], t[g + 3]),
            };
            let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
            _mm512_castpd_ps(if i % 2 == 0 {
                _mm512_unpacklo_pd(a, b)
            } else {
                _mm512_unpackhi_pd(a, b)
            })
        });
        let v: [__m512; 16] = std::array::from_fn(|i| {
            // Within each half: lanes 0 and 2 of (u_k, u_k+4), then lanes 1 and 3.
            let h = i / 8 * 8;
            let k = h + i % 4;
            if i % 8 < 4 {
                _mm512_shuffle_f32x4::<0x88>(u[k], u[k + 4])
            } else {
                _mm512_shuffle_f32x4::<0xdd>(u[k], u[k + 4])
            }
        });
        std::array::from_fn(|i| {
            let k = i % 8;
            if i < 8 {
                _mm512_shuffle_f32x4::<0x88>(v[k], v[k + 8])
            } else {
                _mm512_shuffle_f32x4::<0xdd>(v[k], v[k + 8])
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fused_attention::has_avx512_else_skipped;
    use super::*;

    /// `2^x` lane by lane: `exp2_nonpositive` with `floor`, else `exp2`.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn exp2_of(x: &[f32; 16], floor: bool) -> [f32; 16] {
        let mut out = [0.0f32; 16];
        // SAFETY: `x` and `out` hold 16 f32 each, what `load` and `store` touch; the CPU has
        // AVX-512F (this function's contract).
        unsafe {
            let v = Avx512::load(x.as_ptr());
            let y = if floor {
                Avx512::exp2_nonpositive(v)
            } else {
                Avx512::exp2(v)
            };
            Avx512::store(out.as_mut_ptr(), y)
        };
        out
    }

    /// The largest relative error against `f64::exp2` over 320 000 points `x_at(0..)`.
    fn worst_error(floor: bool, x_at: impl Fn(usize) -> f32) -> f64 {
        let mut worst = 0.0f64;
        for i in 0..20_000 {
            let x: [f32; 16] = std::array::from_fn(|l| x_at(i * 16 + l));
            // SAFETY: both callers return early without AVX-512F (`has_avx512_else_skipped`).
            let y = unsafe { exp2_of(&x, floor) };
            for (&x, &y) in x.iter().zip(&y) {
                let r = (x as f64).exp2();
                worst = worst.max(((y as f64 - r) / r).abs());
            }
        }
        worst
    }

    #[test]
    fn exp2_matches_the_definition_on_both_sides_of_zero() {
        if !has_avx512_else_skipped("exp2_matches_the_definition_on_both_sides_of_zero") {
            return;
        }
        // -125 .. 125, every rounding boundary's neighbourhood included.
        let worst = worst_error(false, |i| i as f32 * 250.0 / 320_000.0 - 125.0);
        assert!(worst < 3e-7, "relative error {worst}");
        // Exact where it should be: 2^0 and the integers.
        let x: [f32; 16] = std::array::from_fn(|l| l as f32 * 8.0 - 60.0);
        // SAFETY: the CPU has AVX-512F (checked above).
        let y = unsafe { exp2_of(&x, false) };
        for (&x, &y) in x.iter().zip(&y) {
            assert_eq!(y, (x as f64).exp2() as f32, "2^{x}");
        }
    }

    #[test]
    fn exp2_matches_the_definition_down_to_its_floor() {
        if !has_avx512_else_skipped("exp2_matches_the_definition_down_to_its_floor") {
            return;
        }
        // -126 .. 0 and a little above 0 (a shifted maximum's rounding).
        let worst = worst_error(true, |i| 1e-6 - i as f32 * 126.0 / 320_000.0);
        assert!(worst < 3e-7, "relative error {worst}");
        // Below the floor, -inf included (a softmax's padding): 2^-126, tiny and not NaN.
        let x = [
            f32::NEG_INFINITY,
            -200.0,
            -126.0,
            0.0,
            -0.5,
            -1.0,
            -23.0,
            -127.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ];
        // SAFETY: the CPU has AVX-512F (checked above).
        let y = unsafe { exp2_of(&x, true) };
        let floor = 2f32.powi(-126);
        assert_eq!(&y[..4], &[floor, floor, floor, 1.0]);
        assert!((y[4] - std::f32::consts::FRAC_1_SQRT_2).abs() < 2e-7 && (y[5] - 0.5).abs() < 1e-7);
        assert_eq!(y[7], floor);
    }

    /// The transpose of the 16 × 16 matrix `m` (row-major), through [`transpose16`].
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn transposed(m: &[f32; 256]) -> [f32; 256] {
        let mut out = [0.0f32; 256];
        // SAFETY: `m` and `out` are 16 rows of 16 f32, and each `load`/`store` touches one
        // row (16 i .. 16 i + 16); the CPU has AVX-512F (this function's contract).
        unsafe {
            let r: [__m512; 16] = std::array::from_fn(|i| Avx512::load(m.as_ptr().add(16 * i)));
            for (i, v) in transpose16(r).into_iter().enumerate() {
                Avx512::store(out.as_mut_ptr().add(16 * i), v);
            }
        }
        out
    }

    #[test]
    fn transpose16_is_the_transpose() {
        if !has_avx512_else_skipped("transpose16_is_the_transpose") {
            return;
        }
        let m: [f32; 256] = std::array::from_fn(|i| i as f32);
        // SAFETY: the CPU has AVX-512F (checked above).
        let t = unsafe { transposed(&m) };
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(t[16 * j + i], m[16 * i + j], "row {i} column {j}");
            }
        }
    }
}
