//! `xent`: soft-target cross-entropy, the paper's naive baseline.
use super::{LossKind, LossSettings, StudentLoss};
use candle_core::{Result, Tensor};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "xent",
    help: "soft cross-entropy on the weak labels (the paper's baseline)",
    build,
};

#[derive(Debug)]
struct Xent;

fn build(_: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Xent)
}

impl StudentLoss for Xent {
    fn params(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        let _ = step_frac;
        super::soft_ce(logits, targets)
    }
}
