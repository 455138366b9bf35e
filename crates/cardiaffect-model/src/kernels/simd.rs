//! The vector operations of the in-tree register-tile kernels ([`super::fused_attention`]),
//! x86-64 only.

use std::arch::x86_64::*;

use crate::fastmath::{EXP_MAX, EXP_MIN, EXP_TAYLOR, LN2_HI, LN2_LO, LOG2E, ROUND_MAGIC};

/// The vector operations the tile loops use, for one instruction set (AVX-512 now; the
/// loops read as arithmetic, not as intrinsics). Every method is inlined into a function
/// compiled for that set (`#[target_feature(enable = "avx512f")]`), which the callers
/// enter only where the CPU has it.
pub(super) trait Simd {
    type V: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn reduce_max(v: Self::V) -> f32;
    unsafe fn reduce_add(v: Self::V) -> f32;
    /// `2^n` for the integer `n` that `t = n + 1.5 * 2^23` holds in its low mantissa bits.
    unsafe fn pow2_of_rounded(t: Self::V) -> Self::V;

    /// `exp(x)`, as `fastmath`'s scalar-written one (Cody–Waite reduction, degree-6
    /// Taylor polynomial, relative error < 3e-7; below -87.3 it gives exp(-87.3)).
    #[inline(always)]
    unsafe fn exp(x: Self::V) -> Self::V {
        unsafe {
            let x = Self::max(Self::min(x, Self::splat(EXP_MAX)), Self::splat(EXP_MIN));
            let t = Self::fma(x, Self::splat(LOG2E), Self::splat(ROUND_MAGIC));
            let n = Self::add(t, Self::splat(-ROUND_MAGIC));
            let r = Self::fma(n, Self::splat(-LN2_HI), x);
            let r = Self::fma(n, Self::splat(-LN2_LO), r);
            let mut p = Self::splat(EXP_TAYLOR[0]);
            for c in &EXP_TAYLOR[1..] {
                p = Self::fma(p, r, Self::splat(*c));
            }
            Self::mul(p, Self::pow2_of_rounded(t))
        }
    }
}

pub(super) struct Avx512;
impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn reduce_max(v: __m512) -> f32 {
        _mm512_reduce_max_ps(v)
    }
    #[inline(always)]
    unsafe fn reduce_add(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }
    #[inline(always)]
    unsafe fn pow2_of_rounded(t: __m512) -> __m512 {
        let n = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B40_0000));
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            n,
            _mm512_set1_epi32(127),
        )))
    }
}
