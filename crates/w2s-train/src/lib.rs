//! Training for weak-to-strong experiments: the losses (one file, each checked by hand).
pub mod losses;

pub use losses::{Loss, LossSchedule};
