//! The figures, by what they show. Each returns a whole SVG document.

pub mod curve;
pub mod results;
pub mod timeline;
pub mod training;

pub use results::{confusion, fold_bars, Bar, Confusion};
