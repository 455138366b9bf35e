//! This CPU's f32 multiply-add peak on one thread, and gemm's rate on the base model's
//! products alone, for reading a profile against: `cargo run --release -p cardiaffect-model
//! --example fma_peak`. Expected: prints GFLOP/s, the products within a few percent of the
//! peak on a quiet host (x86-64 with AVX-512 for the peak line; the products anywhere).

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_chains(n: usize) -> f32 {
    use std::arch::x86_64::*;
    // Twelve independent chains: enough to keep both FMA ports busy through their latency.
    let mut acc = [_mm512_set1_ps(1.0); 12];
    let (b, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..n {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    let mut s = _mm512_setzero_ps();
    for a in acc {
        s = _mm512_add_ps(s, a);
    }
    _mm512_reduce_add_ps(s)
}

fn best_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let n = 20_000_000;
        let s = best_seconds(1, || {
            // SAFETY: `fma_chains` is compiled for AVX-512F, which this CPU has (checked just
            // above); it touches no memory but its own.
            std::hint::black_box(unsafe { fma_chains(n) });
        });
        println!(
            "multiply-add peak: {:.1} GFLOP/s (one thread, AVX-512)",
            n as f64 * 12.0 * 32.0 / s / 1e9
        );
    }
    // The base model's products for one window of 321 rows: QKV, feed-forward in and out,
    // output projection.
    for (m, n, k) in [
        (321, 384, 128),
        (321, 512, 128),
        (321, 128, 512),
        (321, 128, 128),
    ] {
        let (a, b) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
        let mut c = vec![0.0f32; m * n];
        let s = best_seconds(400, || {
            // SAFETY: `c` [m, n], `a` [m, k], `b` [k, n], row-major with the strides given, each
            // its own Vec (no overlap); one thread (`Parallelism::None`).
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        });
        println!(
            "gemm {m}x{n}x{k}: {:.1} GFLOP/s",
            2.0 * (m * n * k) as f64 / s / 1e9
        );
    }
}
