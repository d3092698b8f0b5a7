//! The weak-to-strong experiment. So far: the metrics every run reports.
pub mod metrics;
