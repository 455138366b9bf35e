//! The scratch memory the kernels work in, as a value: made with a model (`Model::workspace`,
//! shared by its clones and its prepared form) and passed down to every op that needs it
//! (`ops::Pass`, the extension's `workspace` arguments, the recorded ops' backwards), never a
//! global. Buffers outlive a call: a fresh one per call cost page faults and a memset each
//! time (measured: BENCHMARKS.md).

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// The layer op's buffers of a thread's last call, kept for its next up to this many elements
/// each.
const KEEP_LAYER: usize = 1 << 24;

/// Scratch per thread of rayon's pool (and one for callers outside it): a buffer of `f32` for
/// the kernels' blocks (attention scores, a layer's row blocks, a convolution's padded rows),
/// and the layer op's three buffers (the QKV projection `[B T, 3d]` and, for the tiled
/// attention, the keys transposed and the values). Each thread locks its own slot, so the
/// locks are not contended; a slot already held (a nested call, two callers from outside the
/// pool, a thread of another pool with the same index) gives a fresh buffer for that call.
pub struct Workspace {
    scratch: Box<[Mutex<Vec<f32>>]>,
    layer: Box<[Mutex<[Vec<f32>; 3]>]>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("slots", &self.scratch.len())
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// Empty buffers for every thread of the current rayon pool and one for outside callers.
    pub fn new() -> Arc<Workspace> {
        let slots = rayon::current_num_threads() + 1;
        Arc::new(Workspace {
            scratch: (0..slots).map(|_| Mutex::new(Vec::new())).collect(),
            layer: (0..slots).map(|_| Mutex::new(Default::default())).collect(),
        })
    }

    /// This thread's slot: its index in the pool, or the last one outside the pool.
    fn slot(&self) -> usize {
        let outside = self.scratch.len() - 1;
        rayon::current_thread_index()
            .filter(|&i| i < outside)
            .unwrap_or(outside)
    }

    /// Runs `f` on this thread's scratch, `n` elements long (its values are whatever an
    /// earlier call left).
    pub(super) fn with_scratch<R>(&self, n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        match free(&self.scratch[self.slot()]) {
            Some(mut s) => {
                if s.len() < n {
                    s.resize(n, 0.0);
                }
                f(&mut s[..n])
            }
            None => f(&mut vec![0.0; n]),
        }
    }

    /// This thread's layer buffers of its last call (empty the first time, or while another
    /// call holds them).
    pub(super) fn take_layer(&self) -> [Vec<f32>; 3] {
        free(&self.layer[self.slot()])
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }

    /// Keeps `buffers` for this thread's next call, those up to [`KEEP_LAYER`] elements.
    pub(super) fn keep_layer(&self, buffers: [Vec<f32>; 3]) {
        if let Some(mut b) = free(&self.layer[self.slot()]) {
            *b = buffers.map(|v| {
                if v.capacity() <= KEEP_LAYER {
                    v
                } else {
                    Vec::new()
                }
            });
        }
    }
}

/// The slot's lock if nobody holds it (a panic while it was held left plain numbers, so a
/// poisoned lock is taken too).
fn free<T>(slot: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match slot.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_keeps_its_buffer_and_a_nested_call_gets_its_own() {
        let ws = Workspace::new();
        ws.with_scratch(8, |s| s.fill(3.0));
        // The same thread's next call sees what the last one left.
        ws.with_scratch(4, |s| assert_eq!(s, &[3.0; 4]));
        ws.with_scratch(8, |outer| {
            outer.fill(1.0);
            ws.with_scratch(8, |inner| {
                assert_eq!(inner, &[0.0; 8], "a fresh buffer, not the held one");
                inner.fill(2.0);
            });
            assert_eq!(outer, &[1.0; 8]);
        });
        let [q, k, v] = ws.take_layer();
        assert!(q.is_empty() && k.is_empty() && v.is_empty());
        ws.keep_layer([vec![1.0; 5], Vec::new(), vec![0.0; KEEP_LAYER + 1]]);
        let [q, _, v] = ws.take_layer();
        assert_eq!(q, vec![1.0; 5]);
        assert!(v.is_empty(), "a buffer above the limit is not kept");
    }
}
