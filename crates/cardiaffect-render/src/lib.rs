//! Every picture and page cardiaffect writes, in one place: a small SVG builder ([`svg`]), the
//! figures ([`figures`]: training curves, results, label efficiency, a prediction timeline),
//! their raster twin ([`png`]) and the parts of the HTML report ([`html`]).
//!
//! Figures take plain data (numbers and already-chosen titles), not the types of the crates
//! that call them, so that training, evaluation and the binary all draw with the same code.
//! Self-contained output: no fonts, scripts or network; every SVG opens in any browser.
#![forbid(unsafe_code)]

pub mod figures;
pub mod html;
pub mod png;
pub mod svg;
mod text;

pub use text::{esc, pm, pm_or_zero};
