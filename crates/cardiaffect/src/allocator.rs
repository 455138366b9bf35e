//! glibc's malloc thresholds, set once at start (`main`) and given to PyTorch's process by
//! `bench`.

/// glibc's malloc thresholds this process runs with (bytes): allocations below
/// `MMAP_THRESHOLD` come from the heap, and freed memory up to `TRIM_THRESHOLD` stays in it.
/// `bench` gives PyTorch's process the same (`MALLOC_*_` variables). 1 GiB of trim: a base
/// model's training step at batch 32 frees more than 256 MiB at its end, which was then
/// returned and faulted back every step (page faults and a slower step; measured:
/// BENCHMARKS.md).
pub(crate) const MMAP_THRESHOLD: i32 = 64 << 20;
pub(crate) const TRIM_THRESHOLD: i32 = 1 << 30;

/// glibc's malloc hands buffers above 128 kB back to the kernel on free and maps them afresh
/// on the next allocation, so every tensor op paid page faults and zeroing (batch-32 inference
/// ran faster with the thresholds raised; measured: BENCHMARKS.md). Freed memory is kept instead;
/// the peak stays the same.
#[allow(unsafe_code)]
pub(crate) fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
