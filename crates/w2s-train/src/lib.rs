//! Training for weak-to-strong experiments: the losses (one file, each checked by hand), the
//! shared training loop (AdamW, schedules, early stopping) and the probe head.
pub mod adamw;
pub mod choice;
pub mod finetune;
pub mod losses;
pub mod probe;
pub mod trainer;

pub use choice::{probe_head, ChoiceClassifier, ChoiceProbe, ChoiceRows};
pub use finetune::{Adapt, ClassifierRequest, EncoderClassifier};
pub use losses::{argmax, Configured, Loss, LossKind, LossSchedule, LossSettings, StudentLoss};
pub use probe::LinearProbe;
pub use trainer::{
    fit, fit_plain, EpochLog, FitReport, FitRequest, LrSchedule, Scored, TrainConfig, TrainError,
    Trainable,
};
