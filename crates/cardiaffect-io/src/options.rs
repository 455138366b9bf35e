//! What a reader is asked to do beyond reading: the choices it cannot make alone. Kept apart
//! from [`crate::recording`] because it names the [`EventSource`] that [`crate::events`] defines,
//! and events are cut from recordings.

use std::collections::BTreeMap;

use crate::events::EventSource;

/// Choices a reader cannot make alone.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Sampling rate for formats that do not store one (CSV, NPY).
    pub fs: Option<f64>,
    /// Which ECG lead to take: a name ("ECG Left", "right", "MLII") or a 1-based index.
    pub lead: Option<String>,
    /// Cut each recording into trials at these events (BIDS reads its own `*_events.tsv`).
    pub events: Option<EventSource>,
    /// Seconds before each event's onset kept as the trial's baseline segment.
    pub baseline_s: Option<f64>,
    /// Label scales the user declares, `column -> (min, max)`.
    pub label_scales: BTreeMap<String, (f64, f64)>,
    /// Leave leads stored as uncompressed doubles in the mapped file
    /// ([`Recording::stored`](crate::Recording::stored)) instead of converting them into `samples` (for callers that
    /// want the values as stored, e.g. as numpy arrays, without a copy). Ignored with `events`.
    pub zero_copy: bool,
}
