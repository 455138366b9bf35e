//! Weights rearranged for the in-tree kernels (the QKV projections side by side, convolution
//! taps as rows), kept between calls with the tensors they came from.
//!
//! They were rearranged on every call (perf, batch 1: the convolutions' taps alone 2.2 %);
//! keeping them measured 0.88–0.93× the batch-1 time (BENCHMARKS.md). An entry holds a clone
//! of each source tensor: flex copies a shared buffer before writing to it, so the sources
//! cannot change or be freed while the entry lives, and their buffers' addresses identify
//! them. The price: a dropped model's weights stay in memory until their entries fall out.

use std::sync::{Arc, Mutex};

use burn_flex::FlexTensor;

struct Entry {
    tag: &'static str,
    sources: Vec<FlexTensor>,
    value: Arc<Vec<f32>>,
}

/// Entries kept, the most recently used last: a model's layers use a handful each; a
/// process that trains and evaluates in turn leaves entries of old weights behind, which
/// fall out in this order.
const KEEP: usize = 64;

/// The entries (one process-wide instance, [`prepared`]; tests make their own).
struct Cache(Mutex<Vec<Entry>>);

static CACHE: Cache = Cache::new();

fn same(a: &FlexTensor, b: &FlexTensor) -> bool {
    a.bytes().as_ptr() == b.bytes().as_ptr()
        && a.bytes().len() == b.bytes().len()
        && a.layout() == b.layout()
        && a.dtype() == b.dtype()
}

/// `build()` for these `sources` under `tag`, from the cache when it has them.
pub(super) fn prepared(
    tag: &'static str,
    sources: &[&FlexTensor],
    build: impl FnOnce() -> Vec<f32>,
) -> Arc<Vec<f32>> {
    CACHE.get(tag, sources, build)
}

impl Cache {
    const fn new() -> Cache {
        Cache(Mutex::new(Vec::new()))
    }

    fn get(
        &self,
        tag: &'static str,
        sources: &[&FlexTensor],
        build: impl FnOnce() -> Vec<f32>,
    ) -> Arc<Vec<f32>> {
        // A source nobody else holds is a temporary (a copy made contiguous for this call): a
        // new buffer every call, which would only fill the cache.
        if sources.iter().any(|t| t.is_unique()) {
            return Arc::new(build());
        }
        let hit = |e: &Entry| {
            e.tag == tag
                && e.sources.len() == sources.len()
                && e.sources.iter().zip(sources).all(|(a, b)| same(a, b))
        };
        {
            let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = cache.iter().position(hit) {
                let e = cache.remove(i);
                let value = e.value.clone();
                cache.push(e);
                return value;
            }
        }
        // Built outside the lock: another thread may build the same meanwhile (both correct).
        let value = Arc::new(build());
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= KEEP {
            cache.remove(0);
        }
        cache.push(Entry {
            tag,
            sources: sources.iter().map(|&t| t.clone()).collect(),
            value: value.clone(),
        });
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::contiguous;

    #[test]
    fn a_weight_is_rearranged_once_and_a_changed_one_again() {
        let calls = std::cell::Cell::new(0);
        let build = |t: &FlexTensor| {
            calls.set(calls.get() + 1);
            let v = t.as_slice::<f32>().unwrap();
            v.iter().map(|x| x * 10.0).collect()
        };
        let cache = Cache::new();
        let prepared =
            |tag, t: &FlexTensor, build: &dyn Fn() -> Vec<f32>| cache.get(tag, &[t], build);
        let w = contiguous(vec![1.0, 2.0, 3.0], [3]);
        // A tensor nobody else holds is a temporary: built every time, not kept.
        prepared("test-x10", &w, &|| build(&w));
        prepared("test-x10", &w, &|| build(&w));
        assert_eq!(calls.get(), 2);
        // As a model's parameter: the model holds the buffer too.
        let model = w.clone();
        let a = prepared("test-x10", &w, &|| build(&w));
        let b = prepared("test-x10", &w, &|| build(&w));
        assert_eq!((a.as_slice(), calls.get()), (&[10.0, 20.0, 30.0][..], 3));
        assert!(Arc::ptr_eq(&a, &b));
        // Another tag is another entry.
        prepared("test-other", &w, &|| build(&w));
        assert_eq!(calls.get(), 4);
        // Writing to the weight while others hold it copies it first (flex's copy on write):
        // the new values are a new buffer, so a new entry.
        let mut w2 = w.clone();
        w2.storage_mut::<f32>()[0] = 5.0;
        let _holder = w2.clone();
        let c = prepared("test-x10", &w2, &|| build(&w2));
        assert_eq!((c.as_slice(), calls.get()), (&[50.0, 20.0, 30.0][..], 5));
        // A view of the same buffer with another layout is another entry.
        let v = model
            .clone()
            .with_layout(burn_flex::Layout::contiguous([2].into()));
        let d = prepared("test-x10", &v, &|| vec![0.0]);
        assert_eq!(d.as_slice(), &[0.0]);
        // The first entry is still there, unchanged.
        let e = prepared("test-x10", &model, &|| build(&model));
        assert_eq!((e.as_slice(), calls.get()), (&[10.0, 20.0, 30.0][..], 5));
    }
}
